//! Runs the real `rwsgi` binary as a user would: on port 0, with its stderr
//! collected line by line, and always stopped (master and workers) on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::Client;

/// Generous for a loaded 2-core CI machine: starting CPython in every worker.
pub const STARTUP: Duration = Duration::from_secs(20);
/// How long a test waits for any one thing the server should do promptly.
pub const PROMPT: Duration = Duration::from_secs(20);

pub fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An app under `etc/apps`, as an absolute path string.
pub fn app(name: &str) -> String {
    apps_dir().join(name).to_string_lossy().into_owned()
}

pub fn apps_dir() -> PathBuf {
    project_dir().join("etc/apps")
}

/// A running (or exited) rwsgi master and what it logged.
pub struct Server {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    port: Option<u16>,
    exited: Option<ExitStatus>,
}

impl Server {
    /// Starts rwsgi with `--http 127.0.0.1:0` plus `args` and waits until the
    /// master says all workers are ready. Panics (with the log) otherwise.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--http", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut server = Server::spawn(&all);
        let line = server.wait_for_log("listening on http://", STARTUP);
        server.port = Some(parse_port(&line));
        server.wait_for_log("] ready: ", STARTUP);
        server
    }

    /// Like `start`, for a prepared command (rwsgi, or a wrapper that execs
    /// it with a lower limit or extra env) whose arguments include
    /// `--http 127.0.0.1:0`.
    pub fn start_command(cmd: Command) -> Server {
        let mut server = Server::spawn_command(cmd);
        let line = server.wait_for_log("listening on http://", STARTUP);
        server.port = Some(parse_port(&line));
        server.wait_for_log("] ready: ", STARTUP);
        server
    }

    /// Starts rwsgi with exactly `args` (bring your own `--http` / `--socket`)
    /// and waits until the master says all workers are ready. `port()` is the
    /// first HTTP listener's, if there is one; see `listening` for the others.
    pub fn start_exact(args: &[&str]) -> Server {
        let mut server = Server::spawn(args);
        server.wait_for_log("] ready: ", STARTUP);
        server.port = server
            .listening("http")
            .first()
            .and_then(|a| a.rsplit(':').next()?.parse().ok());
        server
    }

    /// The addresses the master logged as `listening on PROTO://ADDR (fd N)`
    /// for `proto` ("http" or "uwsgi"), in order: `127.0.0.1:PORT` or
    /// `unix:/path`.
    pub fn listening(&self, proto: &str) -> Vec<String> {
        let marker = format!("listening on {proto}://");
        self.log()
            .iter()
            .filter_map(|l| {
                let rest = &l[l.find(&marker)? + marker.len()..];
                Some(rest.strip_suffix(')')?.rsplit_once(" (fd ")?.0.to_string())
            })
            .collect()
    }

    /// Spawns rwsgi with exactly `args` (no `--http` added), without waiting.
    pub fn spawn(args: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
        cmd.args(args);
        Server::spawn_command(cmd)
    }

    /// Like `spawn`, for a prepared command: rwsgi itself, or a wrapper that
    /// execs it (so the pid stays the master's), with extra env or fds.
    pub fn spawn_command(mut cmd: Command) -> Server {
        // In the project directory, unless the command says otherwise.
        if cmd.get_current_dir().is_none() {
            cmd.current_dir(project_dir());
        }
        let mut child = cmd
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run the rwsgi binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        // Not joined: a worker that outlives the master would keep the pipe open.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("rwsgi| {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            log,
            port: None,
            exited: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
            .expect("the server was not started with Server::start")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new keep-alive connection to the server.
    pub fn connect(&self) -> Client {
        Client::connect(self.port())
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.log().join("\n")
    }

    /// Waits until a log line contains `pattern` and returns it. Panics with
    /// the whole log if the deadline passes or the master exits first.
    pub fn wait_for_log(&mut self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_log_where(pattern, timeout, |l| l.contains(pattern))
    }

    /// Waits until `n` log lines contain `pattern` (e.g. one per app thread).
    pub fn wait_for_log_count(&mut self, pattern: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(pattern))
                .count();
            if seen >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{seen} of {n} log lines {pattern:?} within {timeout:?}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like `wait_for_log`, for lines matching a predicate.
    pub fn wait_for_log_where(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.wait_for_log_from(0, what, timeout, pred)
    }

    /// Like `wait_for_log_where`, among the lines logged at index `from` or later.
    pub fn wait_for_log_from(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let find = |log: &Vec<String>| log.iter().skip(from).find(|l| pred(l)).cloned();
        loop {
            if let Some(l) = find(&self.log.lock().unwrap()) {
                return l;
            }
            if let Some(status) = self.try_wait() {
                // The reader thread may still be draining the last lines.
                thread::sleep(Duration::from_millis(200));
                if let Some(l) = find(&self.log.lock().unwrap()) {
                    return l;
                }
                panic!(
                    "rwsgi exited ({status}) before logging {what:?}; log:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "no log line {what:?} within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the master to exit; panics (with the log) after `timeout`.
    /// Also waits briefly for the last log lines to arrive.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                self.wait_log_closed(Duration::from_secs(5));
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "rwsgi did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// After exit: gives the reader thread time to collect the final lines
    /// (it stops growing once every writer of the pipe is gone).
    fn wait_log_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = usize::MAX;
        while Instant::now() < deadline {
            let n = self.log.lock().unwrap().len();
            if n == last {
                return;
            }
            last = n;
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("waitpid on rwsgi");
        }
        self.exited
    }

    /// Sends a signal (by name, e.g. "TERM") to the master.
    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// The master's current child processes (its workers).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Waits until the master has exactly `n` children and returns them.
    pub fn wait_for_children(&self, n: usize, timeout: Duration) -> Vec<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let kids = self.children();
            if kids.len() == n {
                return kids;
            }
            if Instant::now() >= deadline {
                panic!(
                    "master has children {kids:?}, expected {n}; log:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Worker pids the master announced (`spawned worker N (pid P`).
    pub fn logged_worker_pids(&self) -> Vec<u32> {
        self.log()
            .iter()
            .filter_map(|l| {
                let rest = &l[l.find("spawned worker ")?..];
                let rest = &rest[rest.find("(pid ")? + 5..];
                rest[..rest.find(|c: char| !c.is_ascii_digit())?]
                    .parse()
                    .ok()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut workers = self.logged_worker_pids();
        if self.try_wait().is_none() {
            workers.extend(self.children());
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.try_wait().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if self.try_wait().is_none() {
                self.signal("KILL");
                let _ = self.child.wait();
            }
        }
        for pid in workers {
            if is_rwsgi_process(pid) {
                send_signal(pid, "KILL");
            }
        }
    }
}

fn parse_port(line: &str) -> u16 {
    let after = &line[line.find("listening on http://").expect("listen line") + 20..];
    let addr = after.split_whitespace().next().unwrap_or("");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Children of `pid` from /proc (the master is single-threaded).
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A live (not zombie) process running the rwsgi binary.
pub fn is_rwsgi_process(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    if state == Some("Z") {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let argv0 = c.split(|&b| b == 0).next().unwrap_or(&[]);
            argv0.ends_with(b"rwsgi")
        })
        .unwrap_or(false)
}

/// A fresh directory under the system temp dir, removed (with its contents)
/// on drop; unique per process and call.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rwsgi-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory, as a string.
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls the file at `path` until its text satisfies `pred` (returned);
/// panics with the text after `timeout`.
pub fn wait_for_file(
    path: &Path,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!(
                "not within {timeout:?}: {what}; {}:\n{text}",
                path.display()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}
