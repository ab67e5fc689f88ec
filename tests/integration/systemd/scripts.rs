//! The service manager files in `scripts/`: the systemd units pass
//! `systemd-analyze verify` (which works without systemd running as PID 1),
//! and the SysV init script starts, reloads, upgrades, restarts and stops a
//! real, daemonized rwsgi through its pidfile.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{app, children_of, is_rwsgi_process, project_dir, send_signal, TempDir};
use crate::harness::{PROMPT, STARTUP};
use crate::http::Client;

const INSTALLED_BINARY: &str = "/usr/local/bin/rwsgi";

fn read(rel: &str) -> String {
    let path = project_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze verify` on `units`: (success, everything it printed).
fn verify(units: &[&Path]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .expect("systemd-analyze is needed (scripts/test installs the systemd package)");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.into_owned())
}

/// Lines systemd-analyze wrote about our files (it may also talk about units
/// of the host, which are not ours to judge).
fn complaints(output: &str, dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    output
        .lines()
        .filter(|l| l.contains(dir.as_ref()) || l.contains("rwsgi."))
        .map(str::to_string)
        .collect()
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let service = read("scripts/systemd/rwsgi.service");
    let socket = read("scripts/systemd/rwsgi.socket");
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/usr/local/bin/rwsgi --config /etc/rwsgi/rwsgi.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/run/rwsgi",
        "RuntimeDirectory=rwsgi",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "rwsgi.service lacks {line:?}"
        );
    }
    let stop: u64 = service
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec=SECONDS");
    assert!(
        stop > 30,
        "TimeoutStopSec={stop} leaves no margin over the 30 s shutdown"
    );
    assert!(socket.lines().any(|l| l == "Service=rwsgi.service"));
    assert!(socket.lines().any(|l| l.starts_with("FileDescriptorName=")));
    // The socket listens where the example configuration says to serve HTTP.
    let example = read("etc/rwsgi.toml");
    let http = example
        .lines()
        .find_map(|l| l.strip_prefix("http = [\"")?.split('"').next())
        .expect("http = [...] in etc/rwsgi.toml");
    assert!(
        socket.lines().any(|l| l == format!("ListenStream={http}")),
        "{http}"
    );
    // The flags in ExecStart exist.
    let check = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
        .args([
            "--config",
            &project_dir().join("etc/rwsgi.toml").to_string_lossy(),
        ])
        .arg("--check-config")
        .current_dir(project_dir())
        .output()
        .expect("run rwsgi --check-config");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // verify checks that ExecStart's binary exists: point it at the build.
    let dir = TempDir::new("units");
    assert!(service.contains(INSTALLED_BINARY));
    let built = service.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_rwsgi"));
    let service_path = dir.path().join("rwsgi.service");
    let socket_path = dir.path().join("rwsgi.socket");
    std::fs::write(&service_path, &built).unwrap();
    std::fs::write(&socket_path, &socket).unwrap();
    let (ok, out) = verify(&[&socket_path, &service_path]);
    assert!(ok, "systemd-analyze verify failed:\n{out}");
    let bad = complaints(&out, dir.path());
    assert!(
        bad.is_empty(),
        "systemd-analyze verify complains:\n{}",
        bad.join("\n")
    );

    // The check can fail: a misspelt key is reported.
    let typo = built.replace("KillMode=mixed", "KilMode=mixed");
    std::fs::write(&service_path, typo).unwrap();
    let (_, out) = verify(&[&service_path]);
    let bad = complaints(&out, dir.path());
    assert!(
        bad.iter().any(|l| l.contains("KilMode")),
        "a typo went unnoticed:\n{out}"
    );
}

/// Runs the init script with `action` and `env`; returns its exit code and
/// output. Its output goes to a file, not a pipe, so a daemon that kept the
/// pipe open could not hang the test.
fn init(action: &str, env: &[(&str, String)], dir: &TempDir) -> (i32, String) {
    let out_path = dir.path().join("init.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(project_dir().join("scripts/init.d/rwsgi"))
        .arg(action)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("run scripts/init.d/rwsgi");
    let deadline = Instant::now() + STARTUP + PROMPT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("init script {action} hung");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("{action} killed: {text}"));
    (code, text)
}

/// Kills every master the test saw (and its workers) if the test fails.
struct Masters(Vec<u32>);

impl Drop for Masters {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_rwsgi_process(pid) {
                let workers = children_of(pid);
                send_signal(pid, "KILL");
                for w in workers {
                    if is_rwsgi_process(w) {
                        send_signal(w, "KILL");
                    }
                }
            }
        }
    }
}

/// Polls `path` until it contains `n` lines containing `pattern`.
fn wait_in_file(path: &Path, pattern: &str, n: usize) -> String {
    let deadline = Instant::now() + STARTUP;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().filter(|l| l.contains(pattern)).count() >= n {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {pattern:?} (x{n}) in the log:\n{text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn pid_in(pidfile: &Path) -> u32 {
    let text = std::fs::read_to_string(pidfile).expect("the pidfile after start");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pidfile holds {text:?}"))
}

/// start, status, reload, restart, stop, status with the script's settings
/// from the environment and a defaults file (as /etc/default/rwsgi).
fn init_script_cycle(start_stop_daemon: Option<&str>) {
    let dir = TempDir::new("initd");
    let pidfile = dir.path().join("rwsgi.pid");
    let logfile = dir.path().join("rwsgi.log");
    let defaults = dir.path().join("default");
    let args = format!(
        "--http 127.0.0.1:0 --wsgi-file {} --processes 1",
        app("hello.py")
    );
    std::fs::write(
        &defaults,
        format!("DAEMON_ARGS=\"{args}\"\nSTOP_TIMEOUT=20\n"),
    )
    .unwrap();
    let env = [
        ("DAEMON", env!("CARGO_BIN_EXE_rwsgi").to_string()),
        ("PIDFILE", pidfile.to_string_lossy().into_owned()),
        ("LOGFILE", logfile.to_string_lossy().into_owned()),
        ("DEFAULTS_FILE", defaults.to_string_lossy().into_owned()),
        (
            "START_STOP_DAEMON",
            start_stop_daemon.unwrap_or("").to_string(),
        ),
    ];
    let mut masters = Masters(Vec::new());

    let (code, out) = init("start", &env, &dir);
    assert_eq!(code, 0, "start: {out}");
    let pid = pid_in(&pidfile);
    masters.0.push(pid);
    assert!(out.contains(&format!("started (pid {pid})")), "{out}");
    let log = wait_in_file(&logfile, "] ready: ", 1);
    let port: u16 = log
        .lines()
        .find_map(|l| l.split("listening on http://127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("the port in the log");
    assert_eq!(Client::connect(port).get("/").text(), "Hello, World!");

    let (code, out) = init("status", &env, &dir);
    assert_eq!(
        (code, out.contains(&format!("running (pid {pid})"))),
        (0, true),
        "{out}"
    );

    let (code, out) = init("reload", &env, &dir);
    assert_eq!(code, 0, "reload: {out}");
    let log = wait_in_file(&logfile, "reload complete", 1);
    assert!(
        log.contains("spawned worker 2 (pid "),
        "no new worker:\n{log}"
    );
    assert_eq!(Client::connect(port).get("/").text(), "Hello, World!");

    let (code, out) = init("restart", &env, &dir);
    assert_eq!(code, 0, "restart: {out}");
    let new_pid = pid_in(&pidfile);
    masters.0.push(new_pid);
    assert_ne!(new_pid, pid, "restart kept the old master");
    assert!(!is_rwsgi_process(pid), "the old master {pid} still runs");
    wait_in_file(&logfile, "] ready: ", 2);

    let (code, out) = init("stop", &env, &dir);
    assert_eq!(code, 0, "stop: {out}");
    assert!(!pidfile.exists(), "the pidfile outlived the master");
    assert!(
        !is_rwsgi_process(new_pid),
        "master {new_pid} still runs after stop"
    );
    wait_in_file(&logfile, "master exiting with code 0", 2);

    let (code, out) = init("status", &env, &dir);
    assert_eq!(code, 3, "status after stop: {out}");
    let (code, out) = init("stop", &env, &dir);
    assert_eq!(code, 0, "stopping a stopped service: {out}");
}

#[test]
fn init_script_with_start_stop_daemon() {
    let ssd = ["/sbin/start-stop-daemon", "/usr/sbin/start-stop-daemon"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("start-stop-daemon (Debian's dpkg) is needed");
    init_script_cycle(Some(ssd));
}

#[test]
fn init_script_with_plain_kill() {
    init_script_cycle(None);
}

/// `upgrade`: SIGUSR2 through the pidfile; the script returns once the new
/// master serves and the old one is gone.
#[test]
fn init_script_upgrade_hands_over_to_a_new_master() {
    let dir = TempDir::new("initd-upgrade");
    let pidfile = dir.path().join("rwsgi.pid");
    let logfile = dir.path().join("rwsgi.log");
    let args = format!(
        "--http 127.0.0.1:0 --wsgi-file {} --processes 1",
        app("hello.py")
    );
    let env = [
        ("DAEMON", env!("CARGO_BIN_EXE_rwsgi").to_string()),
        ("DAEMON_ARGS", args),
        ("PIDFILE", pidfile.to_string_lossy().into_owned()),
        ("LOGFILE", logfile.to_string_lossy().into_owned()),
        (
            "DEFAULTS_FILE",
            dir.path().join("none").to_string_lossy().into_owned(),
        ),
        ("START_STOP_DAEMON", String::new()),
    ];
    let mut masters = Masters(Vec::new());
    let (code, out) = init("start", &env, &dir);
    assert_eq!(code, 0, "start: {out}");
    let old = pid_in(&pidfile);
    masters.0.push(old);
    let log = wait_in_file(&logfile, "] ready: ", 1);
    let port: u16 = log
        .lines()
        .find_map(|l| l.split("listening on http://127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("the port in the log");

    let (code, out) = init("upgrade", &env, &dir);
    let new = pid_in(&pidfile);
    masters.0.push(new);
    assert_eq!(code, 0, "upgrade: {out}");
    assert!(
        out.contains(&format!("upgraded (pid {old} -> {new})")),
        "{out}"
    );
    assert!(!is_rwsgi_process(old), "the old master {old} still runs");
    assert!(
        !dir.path().join("rwsgi.pid.oldbin").exists(),
        ".oldbin left behind"
    );
    assert_eq!(Client::connect(port).get("/").text(), "Hello, World!");

    let (code, out) = init("stop", &env, &dir);
    assert_eq!(code, 0, "stop: {out}");
    assert!(!is_rwsgi_process(new), "master {new} still runs after stop");
}
