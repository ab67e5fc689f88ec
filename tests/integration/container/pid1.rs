//! rwsgi as PID 1 of its own PID namespace (`unshare --pid --fork
//! --mount-proc`), as in a container with no init in front of it. The kernel
//! drops every signal sent to a namespace's PID 1 that it has no handler for
//! (from inside, and from outside too except KILL and STOP), and PID 1 inherits
//! every orphan of the namespace, so rwsgi must handle its signals and reap.
//!
//! Needs root (CAP_SYS_ADMIN for the namespace), as on CI.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    children_of, is_rwsgi_process, project_dir, send_signal, TempDir, PROMPT, STARTUP,
};
use crate::http::{request, Client};

/// INT and QUIT: workers get at most one second (man page), plus slack for a
/// loaded machine.
const FAST: Duration = Duration::from_secs(3);

type Lines = Arc<Mutex<Vec<String>>>;

fn app() -> String {
    project_dir()
        .join("tests/integration/container/pid1_app.py")
        .to_string_lossy()
        .into_owned()
}

/// Collects `stream` line by line (echoed to the test's stderr as `tag| ...`).
fn collect(stream: impl Read + Send + 'static, tag: &'static str) -> Lines {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    // Not joined: an orphan may hold the pipe open for a while.
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("{tag}| {line}");
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string));
    assert_eq!(
        euid.as_deref(),
        Some("0"),
        "the PID 1 tests need root: `unshare --pid` needs CAP_SYS_ADMIN (CI runs as root)"
    );
}

/// A process's state letter, parent pid and start time (clock ticks since
/// boot: with the pid, it names one process even if the pid is reused).
fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// The pid `host_pid` has inside its own (innermost) PID namespace.
fn ns_pid(host_pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{host_pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// rwsgi started as PID 1 of a new PID namespace; everything in the
/// namespace dies with it (the kernel kills the rest when PID 1 exits).
struct Contained {
    unshare: Child,
    /// rwsgi's pid as seen from here (it is 1 inside).
    rwsgi: u32,
    stderr: Lines,
    stdout: Lines,
    port: u16,
    exited: Option<ExitStatus>,
}

impl Contained {
    /// Starts `rwsgi --http 127.0.0.1:0 --wsgi-file pid1_app.py ARGS` in a
    /// new PID namespace and waits until its workers are ready.
    fn start(args: &[&str]) -> Contained {
        require_root();
        let mut unshare = Command::new("unshare")
            // --kill-child: should unshare die, rwsgi (and so the namespace) dies too.
            .args(["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"])
            .arg(env!("CARGO_BIN_EXE_rwsgi"))
            .args(["--http", "127.0.0.1:0", "--wsgi-file", &app()])
            .args(args)
            .current_dir(project_dir())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let stdout = collect(unshare.stdout.take().unwrap(), "rwsgi stdout");
        let stderr = collect(unshare.stderr.take().unwrap(), "rwsgi");
        let mut ns = Contained {
            unshare,
            rwsgi: 0,
            stderr,
            stdout,
            port: 0,
            exited: None,
        };
        // unshare forks; its child mounts /proc and then execs rwsgi.
        let deadline = Instant::now() + STARTUP;
        ns.rwsgi = loop {
            let kids = children_of(ns.unshare.id());
            if let Some(&pid) = kids.iter().find(|&&p| is_rwsgi_process(p)) {
                break pid;
            }
            ns.assert_running("rwsgi to start");
            assert!(
                Instant::now() < deadline,
                "unshare did not start rwsgi within {STARTUP:?}; log:\n{}",
                ns.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        };
        let line = ns.wait_for_log("listening on http://", STARTUP);
        ns.port = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.rsplit(':').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        ns.wait_for_log("] ready: ", STARTUP);
        ns
    }

    fn log_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.unshare.try_wait().expect("waitpid on unshare");
        }
        self.exited
    }

    fn assert_running(&mut self, waiting_for: &str) {
        if let Some(status) = self.try_wait() {
            thread::sleep(Duration::from_millis(200)); // the last log lines
            panic!(
                "unshare/rwsgi exited ({status}) before {waiting_for}; log:\n{}",
                self.log_text()
            );
        }
    }

    /// Waits until a stderr line contains `pattern`; panics with the log if
    /// the deadline passes or rwsgi exits first.
    fn wait_for_log(&mut self, pattern: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(pattern))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            self.assert_running(&format!("logging {pattern:?}"));
            assert!(
                Instant::now() < deadline,
                "no log line {pattern:?} within {timeout:?}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for rwsgi (and so unshare, which passes its exit code on) to exit.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rwsgi did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to PID 1 from a process inside the namespace, where the
    /// kernel drops it unless rwsgi has a handler for it.
    fn signal_from_inside(&self, sig: &str) {
        let status = Command::new("nsenter")
            .args(["--target", &self.rwsgi.to_string(), "--pid", "--"])
            .args(["kill", &format!("-{sig}"), "1"])
            .status()
            .unwrap_or_else(|e| panic!("cannot run nsenter (util-linux): {e}"));
        assert!(status.success(), "nsenter ... kill -{sig} 1: {status}");
    }

    /// Every process in the namespace (rwsgi's descendants and rwsgi) with
    /// its state letter.
    fn processes(&self) -> Vec<(u32, char)> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some((state, ppid, _)) = proc_stat(pid) {
                all.push((pid, state, ppid));
            }
        }
        let mut inside = vec![(self.rwsgi, proc_stat(self.rwsgi).map_or('?', |s| s.0))];
        let mut i = 0;
        while i < inside.len() {
            let parent = inside[i].0;
            inside.extend(
                all.iter()
                    .filter(|&&(_, _, ppid)| ppid == parent)
                    .map(|&(pid, state, _)| (pid, state)),
            );
            i += 1;
        }
        inside
    }

    fn zombies(&self) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|&(_, state)| state == 'Z')
            .map(|(pid, _)| pid)
            .collect()
    }

    /// rwsgi's children that are rwsgi workers.
    fn workers(&self) -> Vec<u32> {
        let mut w: Vec<u32> = children_of(self.rwsgi)
            .into_iter()
            .filter(|&p| is_rwsgi_process(p))
            .collect();
        w.sort_unstable();
        w
    }

    fn wait_for_workers(&self, n: usize) -> Vec<u32> {
        let deadline = Instant::now() + PROMPT;
        loop {
            let w = self.workers();
            if w.len() == n {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "rwsgi has workers {w:?}, expected {n}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            // PID 1's death takes the whole namespace with it.
            if self.rwsgi != 0 {
                send_signal(self.rwsgi, "KILL");
            }
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

#[test]
fn rwsgi_is_pid_1_and_term_from_inside_drains_the_request_in_flight() {
    let mut ns = Contained::start(&["--processes", "2"]);
    assert_eq!(ns_pid(ns.rwsgi), Some(1), "rwsgi is not PID 1 inside");
    ns.wait_for_log("master pid 1 starting", PROMPT);
    let workers = ns.wait_for_workers(2);
    let mut c = Client::connect(ns.port);
    let r = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));

    c.send(&request("GET", "/sleep?ms=1500", &[], b""));
    ns.wait_for_log("sleep-begin", PROMPT);
    ns.signal_from_inside("TERM");
    let r = c
        .read_response(false)
        .expect("the in-flight request's response");
    assert_eq!((r.status, r.text().as_str()), (200, "slept"));
    let status = ns.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{status}; log:\n{}", ns.log_text());
    assert!(
        ns.log_text().contains("SIGTERM: graceful shutdown"),
        "{}",
        ns.log_text()
    );
    let left: Vec<u32> = workers
        .into_iter()
        .filter(|&p| is_rwsgi_process(p))
        .collect();
    assert!(left.is_empty(), "workers outlived PID 1: {left:?}");
}

#[test]
fn int_from_outside_and_quit_from_inside_stop_pid_1_fast() {
    for (sig, inside) in [("INT", false), ("QUIT", true)] {
        let mut ns = Contained::start(&["--processes", "1"]);
        let mut c = Client::connect(ns.port);
        c.send(&request("GET", "/sleep?ms=30000", &[], b""));
        ns.wait_for_log("sleep-begin", PROMPT);
        let t0 = Instant::now();
        if inside {
            ns.signal_from_inside(sig);
        } else {
            send_signal(ns.rwsgi, sig);
        }
        let status = ns.wait_exit(PROMPT);
        let took = t0.elapsed();
        assert!(
            took < FAST,
            "SIG{sig} took {took:?} (limit {FAST:?}); log:\n{}",
            ns.log_text()
        );
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status}");
        // Cut off (an error here), as a fast shutdown does; never finished.
        if let Ok(r) = c.read_response(false) {
            assert_ne!(
                r.text(),
                "slept",
                "SIG{sig}: the 30 s request finished, so it was not fast"
            );
        }
    }
}

#[test]
fn hup_from_inside_reloads_pid_1s_workers() {
    let mut ns = Contained::start(&["--processes", "2"]);
    let old = ns.wait_for_workers(2);
    ns.signal_from_inside("HUP");
    ns.wait_for_log("reload complete", PROMPT);
    let new = ns.wait_for_workers(2);
    assert!(
        new.iter().all(|p| !old.contains(p)),
        "old {old:?}, new {new:?}"
    );
    assert_eq!(Client::connect(ns.port).get("/").status, 200);
}

/// The app double-forks: each grandchild is re-parented to PID 1, rwsgi's
/// master, which must reap it when it exits, or it stays a zombie forever.
#[test]
fn orphans_are_reaped_by_pid_1() {
    let mut ns = Contained::start(&["--processes", "1", "--log-level", "debug"]);
    let workers = ns.wait_for_workers(1);
    let dir = TempDir::new("orphans");
    let release = dir.file("release");
    // Several, released at once: their SIGCHLDs coalesce into fewer signals.
    let mut orphans = Vec::new();
    let mut c = Client::connect(ns.port);
    for _ in 0..5 {
        let r = c.get(&format!("/orphan?release={release}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        let inner: u32 = text
            .split(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad /orphan answer {text:?}"));
        // Find it from here: the master's child whose pid inside is `inner`.
        let deadline = Instant::now() + PROMPT;
        let host = loop {
            let found = children_of(ns.rwsgi)
                .into_iter()
                .find(|&p| ns_pid(p) == Some(inner));
            if let Some(p) = found {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "orphan {inner} (inside) was not re-parented to rwsgi; processes: {:?}",
                ns.processes()
            );
            thread::sleep(Duration::from_millis(20));
        };
        let (_, ppid, start) = proc_stat(host).expect("the orphan's /proc entry");
        assert_eq!(ppid, ns.rwsgi, "orphan {host}'s parent is not PID 1");
        orphans.push((inner, host, start));
    }

    std::fs::write(&release, b"").unwrap();
    let deadline = Instant::now() + PROMPT;
    loop {
        // Gone, or the pid reused by another process: reaped.
        let left: Vec<_> = orphans
            .iter()
            .filter_map(|&(_, host, start)| {
                proc_stat(host)
                    .filter(|s| s.2 == start)
                    .map(|s| (host, s.0))
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orphans not reaped within {PROMPT:?} (Z = zombie): {left:?}; log:\n{}",
            ns.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let zombies = ns.zombies();
    assert!(zombies.is_empty(), "zombies in the namespace: {zombies:?}");
    for (inner, _, _) in &orphans {
        ns.wait_for_log(&format!("reaped process {inner} ("), PROMPT);
    }
    // Supervision did not mistake them for workers.
    assert_eq!(ns.workers(), workers, "the worker was replaced");
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn pid_1_logs_to_stderr_and_the_apps_stdout_is_unbuffered() {
    let mut ns = Contained::start(&["--processes", "1"]);
    let marker = "pid1-stdout-marker";
    let r = Client::connect(ns.port).get(&format!("/print?marker={marker}"));
    assert_eq!(r.status, 200);
    // The container runtime collects stdout and stderr as they are written:
    // a print() must not wait in a buffer for the process to exit.
    let deadline = Instant::now() + PROMPT;
    while !ns.stdout_lines().iter().any(|l| l == marker) {
        assert!(
            Instant::now() < deadline,
            "the app's print() did not reach stdout within {PROMPT:?}: {:?}",
            ns.stdout_lines()
        );
        thread::sleep(Duration::from_millis(20));
    }
    ns.wait_for_log(
        &format!("\"GET /print?marker={marker} HTTP/1.1\" 200"),
        PROMPT,
    );
    ns.wait_for_log("master pid 1 starting", PROMPT);
    assert_eq!(
        ns.stdout_lines(),
        vec![marker.to_string()],
        "rwsgi wrote to stdout; its logs belong on stderr"
    );
}
