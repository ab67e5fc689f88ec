//! The configuration layers and the process options, through the real
//! binary: the example files in etc/, precedence (file < RWSGI_* env < flags,
//! with WEB_CONCURRENCY/PORT below all three), the errors a bad file gets,
//! and --pidfile, --daemonize, --logto (+ SIGUSR1), --umask, --env,
//! --uid/--gid.
//!
//! Every rwsgi here runs with a clean configuration environment: inherited
//! `RWSGI_*`, `WEB_CONCURRENCY` and `PORT` variables are removed, so the
//! machine running the tests cannot change their outcome.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod errors;
mod examples;
mod precedence;
mod privileges;
mod process;

use crate::harness::{
    app, children_of, is_rwsgi_process, project_dir, send_signal, Server, TempDir, PROMPT, STARTUP,
};

// ---------------------------------------------------------------------------
// Running rwsgi

/// rwsgi with `args`, in the project directory, with `env` added to an
/// environment cleaned of every configuration variable.
pub(crate) fn rwsgi(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(args)
        .current_dir(project_dir())
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("RWSGI_") || name == "WEB_CONCURRENCY" || name == "PORT" {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// What a short run of rwsgi (`--check-config`, a failing start) did.
pub(crate) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs rwsgi to completion (killed after PROMPT: it must not start serving).
pub(crate) fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    run_command(rwsgi(args, env), &format!("rwsgi {args:?}"))
}

/// Runs `cmd` (see `rwsgi`) to completion, as `run` does.
pub(crate) fn run_command(mut cmd: Command, what: &str) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the rwsgi binary");
    let (tx, rx) = mpsc::channel();
    drain(child.stdout.take().unwrap(), 0, tx.clone());
    drain(child.stderr.take().unwrap(), 1, tx);
    let status = wait_child(&mut child, PROMPT, what);
    let mut out = [String::new(), String::new()];
    for _ in 0..2 {
        if let Ok((n, text)) = rx.recv_timeout(Duration::from_secs(5)) {
            out[n] = text;
        }
    }
    let [stdout, stderr] = out;
    Ran {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Reads a pipe to its end in a thread and sends (n, text).
fn drain(mut pipe: impl Read + Send + 'static, n: usize, tx: mpsc::Sender<(usize, String)>) {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send((n, String::from_utf8_lossy(&buf).into_owned()));
    });
}

/// Waits for a direct child with a deadline; kills it (and its children)
/// and panics when it does not exit in time.
fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            return status;
        }
        if Instant::now() >= deadline {
            for pid in children_of(child.id()) {
                send_signal(pid, "KILL");
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `--check-config` with `args`; asserts it succeeded and returns the report.
fn check_ok(args: &[&str], env: &[(&str, &str)]) -> Report {
    let mut all = args.to_vec();
    all.push("--check-config");
    let ran = run(&all, env);
    assert_eq!(
        ran.code,
        Some(0),
        "rwsgi {all:?} with {env:?}:\n{}",
        ran.show()
    );
    assert!(
        ran.stdout.trim_end().ends_with("# configuration OK"),
        "{}",
        ran.show()
    );
    Report::parse(&ran.stdout, ran.stderr)
}

/// `--check-config` with `args`; asserts it failed with exit code 2 and
/// returns the message.
fn check_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = args.to_vec();
    all.push("--check-config");
    let ran = run(&all, env);
    assert_eq!(
        ran.code,
        Some(2),
        "rwsgi {all:?} with {env:?} should fail as a configuration error:\n{}",
        ran.show()
    );
    assert!(
        !ran.stdout.contains("configuration OK"),
        "a failed check printed a report:\n{}",
        ran.show()
    );
    ran.stderr
}

/// The `--check-config` report: for each option set by some layer, its
/// value as TOML and where it came from.
struct Report {
    set: BTreeMap<String, (String, String)>,
    unset: Vec<String>,
    text: String,
    stderr: String,
}

impl Report {
    fn parse(stdout: &str, stderr: String) -> Report {
        let mut set = BTreeMap::new();
        let mut unset = Vec::new();
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix('#') {
                let rest = rest.trim_start_matches('#').trim_start();
                if let Some(key) = rest.strip_suffix(" is not set") {
                    unset.push(key.to_string());
                }
                continue;
            }
            if line.starts_with('[') || line.trim().is_empty() {
                continue;
            }
            let (kv, source) = line
                .rsplit_once("  # ")
                .unwrap_or_else(|| panic!("no source comment on {line:?} in:\n{stdout}"));
            let (k, v) = kv.split_once(" = ").expect("key = value");
            set.insert(k.to_string(), (v.to_string(), source.to_string()));
        }
        Report {
            set,
            unset,
            text: stdout.to_string(),
            stderr,
        }
    }

    /// Asserts `key` is `value` (as TOML) from `source`.
    fn expect(&self, key: &str, value: &str, source: &str) {
        let got = self.set.get(key);
        assert_eq!(
            got,
            Some(&(value.to_string(), source.to_string())),
            "{key}: expected {value} from {source}; report:\n{}",
            self.text
        );
    }

    fn expect_unset(&self, key: &str) {
        assert!(
            self.unset.iter().any(|k| k == key),
            "{key} should not be set; report:\n{}",
            self.text
        );
    }
}

/// Starts rwsgi with exactly `args` and `env` (see `rwsgi`) and waits until
/// the master says all workers are ready.
fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut server = Server::spawn_command(rwsgi(args, env));
    server.wait_for_log("] ready: ", STARTUP);
    server
}

/// GET `path` from `addr` (`HOST:PORT`) over HTTP/1.0: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.set_write_timeout(Some(PROMPT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send the request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path} from {addr}: no response head in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// Writes `text` to `name` in `dir`; returns the path.
fn write_file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.file(name);
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
    path
}

/// The 1-based line of `text` that sets `key` (`key = ...`).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .unwrap_or_else(|| panic!("no line setting {key:?} in:\n{text}"))
        + 1
}

/// Polls `path` until its contents satisfy `pred`; returns them. Panics
/// with the contents after `timeout`, or when `server` exits first.
fn wait_file(
    path: &str,
    what: &str,
    timeout: Duration,
    mut server: Option<&mut Server>,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        if let Some(status) = server.as_mut().and_then(|s| s.try_wait()) {
            thread::sleep(Duration::from_millis(200));
            let text = fs::read_to_string(path).unwrap_or_default();
            if pred(&text) {
                return text;
            }
            panic!("rwsgi exited ({status}) before {what}; {path}:\n{text}");
        }
        if Instant::now() >= deadline {
            panic!("not within {timeout:?}: {what}; {path}:\n{text}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The address of the first `listening on http://ADDR (fd N)` line in a log.
fn http_addr(log: &str) -> String {
    let marker = "listening on http://";
    let line = log
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line in:\n{log}"));
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().to_string()
}

/// Polls until `pid` is gone (or a zombie nobody reaps); false on timeout.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_rwsgi_process(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    !is_rwsgi_process(pid)
}

/// A numeric field of /proc/PID/status (`Uid`, `Gid`, `PPid`, ...).
fn proc_status(pid: u32, field: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn is_root() -> bool {
    proc_status(std::process::id(), "Uid").first() == Some(&0)
}

/// A test of what the root master does for `--uid`/`--gid` fails, rather
/// than passes without checking anything, when not run as root.
fn needs_root() {
    assert!(
        is_root(),
        "this test needs root (it checks what the root master does for --uid); \
         run the tests as root, as the CI does, or skip it with `--skip needs_root`"
    );
}

/// A port that was free a moment ago on every interface (another process
/// may still take it: callers retry).
fn free_port() -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}
