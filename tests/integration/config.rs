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

/// A port that was free a moment ago on every interface (another process
/// may still take it: callers retry).
fn free_port() -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// The example files

/// A scratch stand-in for the directories an example's `chdir` and `home`
/// name on its real host: `--check-config` checks that they exist.
struct Stand {
    dir: TempDir,
}

impl Stand {
    fn new() -> Stand {
        let dir = TempDir::new("cfg-stand");
        fs::create_dir_all(dir.path().join("venv/bin")).unwrap();
        fs::write(dir.path().join("venv/bin/python"), "").unwrap();
        Stand { dir }
    }

    /// Flags that replace the file's `chdir`/`home` when they do not exist here.
    fn overrides(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (key, stand_in) in [
            ("chdir", self.dir.path().to_path_buf()),
            ("home", self.dir.path().join("venv")),
        ] {
            let Some(value) = file_value(text, key) else {
                continue;
            };
            let present = match key {
                "home" => Path::new(&value).join("bin/python").exists(),
                _ => Path::new(&value).is_dir(),
            };
            if !present {
                out.push(format!("--{key}"));
                out.push(stand_in.to_string_lossy().into_owned());
            }
        }
        out
    }
}

/// The settings a flat TOML file makes: (line number, key, raw value) for
/// each `key = value` line that is not a comment.
fn file_settings(text: &str) -> Vec<(usize, String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.starts_with('#') || l.starts_with('[') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.split(" #").next().unwrap_or("").trim();
            Some((i + 1, k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The string value of `key` in a flat TOML file, if it sets it.
fn file_value(text: &str, key: &str) -> Option<String> {
    file_settings(text)
        .into_iter()
        .find(|(_, k, _)| k == key)
        .map(|(_, _, v)| v.trim_matches('"').to_string())
}

/// Every *.toml file under etc/, as paths relative to the project.
fn example_configs() -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::from("etc")];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(project_dir().join(&dir))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = dir.join(entry.unwrap().file_name());
            if project_dir().join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_example_config_passes_check_config() {
    let files = example_configs();
    for want in [
        "etc/rwsgi.toml",
        "etc/django.toml",
        "etc/nginx.toml",
        "etc/container.toml",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{want} is missing: {files:?}"
        );
    }
    let stand = Stand::new();
    for file in &files {
        let text = fs::read_to_string(project_dir().join(file)).unwrap();
        let overrides = stand.overrides(&text);
        let mut args = vec!["--config", file.as_str()];
        args.extend(overrides.iter().map(String::as_str));
        let report = check_ok(&args, &[]);
        assert!(
            report
                .text
                .starts_with(&format!("## configuration file: {file}\n")),
            "{file}: the report does not name the file:\n{}",
            report.text
        );
        // The directories an example's sockets and logs go in exist on the
        // server it describes (made by systemd), not here: only those may warn.
        let warnings: Vec<&str> = report
            .stderr
            .lines()
            .filter(|l| l.contains("warning") && !l.contains("does not exist; create it first"))
            .collect();
        assert!(warnings.is_empty(), "{file}: warnings:\n{}", report.stderr);
        // Every setting in the file is in effect, traced to its line.
        let settings = file_settings(&text);
        assert!(!settings.is_empty(), "{file} sets nothing");
        for (line, key, raw) in settings {
            // A `false` switch is the same as leaving it out: not listed.
            if overrides.contains(&format!("--{key}")) || raw == "false" {
                continue;
            }
            let (value, source) = report.set.get(&key).unwrap_or_else(|| {
                panic!(
                    "{file}:{line}: {key} is not in effect; report:\n{}",
                    report.text
                )
            });
            assert_eq!(
                source,
                &format!("{file}:{line}"),
                "{file}: {key} = {raw} comes from elsewhere"
            );
            let strip = |s: &str| s.replace(char::is_whitespace, "");
            assert_eq!(strip(value), strip(&raw), "{file}:{line}: {key}");
        }
    }
}

#[test]
fn container_example_takes_processes_from_web_concurrency_and_fits_kubernetes() {
    let file = "etc/container.toml";
    let text = fs::read_to_string(project_dir().join(file)).unwrap();
    let stand = Stand::new();
    let overrides = stand.overrides(&text);
    let mut args = vec!["--config", file];
    args.extend(overrides.iter().map(String::as_str));

    let report = check_ok(&args, &[("WEB_CONCURRENCY", "3"), ("PORT", "5000")]);
    report.expect("processes", "3", "env WEB_CONCURRENCY");
    // The file says where to listen, so PORT does not.
    let line = line_of(&text, "http");
    report.expect("http", "[\":8000\"]", &format!("{file}:{line}"));
    for key in ["stats", "metrics", "shutdown-delay", "shutdown-timeout"] {
        assert!(report.set.contains_key(key), "{file} should set {key}");
    }
    for key in ["daemonize", "pidfile", "logto"] {
        report.expect_unset(key);
    }

    // Kubernetes must not SIGKILL before the delay and the drain are over.
    let num = |key: &str| -> u64 { report.set[key].0.parse().unwrap() };
    let (delay, timeout) = (num("shutdown-delay"), num("shutdown-timeout"));
    assert!(delay > 0, "a pod keeps getting traffic after SIGTERM");
    let deployment = project_dir().join("etc/kubernetes/deployment.yaml");
    if let Ok(yaml) = fs::read_to_string(&deployment) {
        let grace: u64 = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("terminationGracePeriodSeconds in deployment.yaml");
        assert!(
            delay + timeout < grace,
            "shutdown-delay {delay} + shutdown-timeout {timeout} must stay below \
             terminationGracePeriodSeconds {grace}"
        );
    }
}

// ---------------------------------------------------------------------------
// Precedence

const PRECEDENCE_FILE: &str = "\
[server]
http = [\"127.0.0.1:8001\", \"127.0.0.1:8002\"]

[app]
wsgi-file = \"etc/apps/hello.py\"

[workers]
processes = 2
";

#[test]
fn file_env_and_flags_override_in_order_for_a_scalar_and_a_list() {
    let dir = TempDir::new("cfg-prec");
    let file = write_file(&dir, "app.toml", PRECEDENCE_FILE);
    let at = |key| format!("{file}:{}", line_of(PRECEDENCE_FILE, key));
    let config = ["--config", file.as_str()];
    let env_layer = [
        ("RWSGI_PROCESSES", "3"),
        ("RWSGI_HTTP", "127.0.0.1:8003, 127.0.0.1:8004"),
    ];

    // The file alone; WEB_CONCURRENCY and PORT are below it.
    let below: [&[(&str, &str)]; 2] = [&[], &[("WEB_CONCURRENCY", "9"), ("PORT", "9999")]];
    for env in below {
        let r = check_ok(&config, env);
        r.expect("processes", "2", &at("processes"));
        r.expect(
            "http",
            "[\"127.0.0.1:8001\", \"127.0.0.1:8002\"]",
            &at("http"),
        );
        r.expect("wsgi-file", "\"etc/apps/hello.py\"", &at("wsgi-file"));
    }

    // RWSGI_CONFIG names the file too.
    let r = check_ok(&[], &[("RWSGI_CONFIG", file.as_str())]);
    r.expect("processes", "2", &at("processes"));

    // RWSGI_* beats the file; a list is replaced whole, not merged.
    let r = check_ok(&config, &env_layer);
    r.expect("processes", "3", "env RWSGI_PROCESSES");
    r.expect(
        "http",
        "[\"127.0.0.1:8003\", \"127.0.0.1:8004\"]",
        "env RWSGI_HTTP",
    );
    r.expect("wsgi-file", "\"etc/apps/hello.py\"", &at("wsgi-file"));

    // Flags beat both, each option on its own.
    let mut args = config.to_vec();
    args.extend(["--processes", "4", "--http", "127.0.0.1:8005"]);
    let r = check_ok(&args, &env_layer);
    r.expect("processes", "4", "command line");
    r.expect("http", "[\"127.0.0.1:8005\"]", "command line");

    let mut args = config.to_vec();
    args.extend(["--workers", "5"]);
    let r = check_ok(&args, &env_layer);
    r.expect("processes", "5", "command line");
    r.expect(
        "http",
        "[\"127.0.0.1:8003\", \"127.0.0.1:8004\"]",
        "env RWSGI_HTTP",
    );
}

/// The hosts a server listens on (HTTP), sorted.
fn hosts(server: &Server) -> Vec<String> {
    let mut hosts: Vec<String> = server
        .listening("http")
        .iter()
        .map(|a| a.rsplit_once(':').unwrap().0.to_string())
        .collect();
    hosts.sort();
    hosts
}

#[test]
fn precedence_holds_when_serving() {
    // Distinct loopback addresses (all of 127/8 is loopback on Linux) tell
    // the layers apart; port 0 keeps them free.
    let dir = TempDir::new("cfg-prec-run");
    let file = write_file(
        &dir,
        "app.toml",
        &format!(
            "[server]\nhttp = [\"127.0.0.1:0\"]\n\n[app]\nwsgi-file = \"{}\"\n\n\
             [workers]\nprocesses = 1\n",
            app("hello.py")
        ),
    );
    let env_layer = [
        ("RWSGI_PROCESSES", "3"),
        ("RWSGI_HTTP", "127.0.0.2:0,127.0.0.3:0"),
    ];

    let server = start(&["--config", &file], &env_layer);
    server.wait_for_children(3, PROMPT);
    assert_eq!(
        hosts(&server),
        ["127.0.0.2", "127.0.0.3"],
        "{}",
        server.log_text()
    );
    for addr in server.listening("http") {
        assert_eq!(get(&addr, "/"), (200, "Hello, World!".into()), "via {addr}");
    }
    drop(server);

    let server = start(
        &[
            "--config",
            &file,
            "--processes",
            "2",
            "--http",
            "127.0.0.4:0",
        ],
        &env_layer,
    );
    server.wait_for_children(2, PROMPT);
    assert_eq!(hosts(&server), ["127.0.0.4"], "{}", server.log_text());
    let addr = &server.listening("http")[0];
    assert_eq!(get(addr, "/"), (200, "Hello, World!".into()));
}

#[test]
fn web_concurrency_and_port_apply_only_when_nothing_else_says() {
    let dir = TempDir::new("cfg-platform");
    let app_only = write_file(
        &dir,
        "app.toml",
        "[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let with_processes = write_file(
        &dir,
        "processes.toml",
        "[app]\nwsgi-file = \"etc/apps/hello.py\"\n\n[workers]\nprocesses = 2\n",
    );
    let with_http = write_file(
        &dir,
        "http.toml",
        "[server]\nhttp = \"127.0.0.1:8001\"\n\n[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let with_socket = write_file(
        &dir,
        "socket.toml",
        "[server]\nsocket = \"/tmp/app.sock\"\n\n[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let platform = [("WEB_CONCURRENCY", "3"), ("PORT", "5000")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env = platform.to_vec();
        env.extend_from_slice(extra);
        env
    };

    let r = check_ok(&["--config", &app_only], &platform);
    r.expect("processes", "3", "env WEB_CONCURRENCY");
    r.expect("http", "[\":5000\"]", "env PORT");

    let r = check_ok(&["--config", &with_processes], &platform);
    r.expect("processes", "2", &format!("{with_processes}:5"));
    let r = check_ok(&["--config", &app_only], &with(&[("RWSGI_PROCESSES", "5")]));
    r.expect("processes", "5", "env RWSGI_PROCESSES");
    let r = check_ok(&["--config", &app_only, "-p", "4"], &platform);
    r.expect("processes", "4", "command line");

    let r = check_ok(&["--config", &with_http], &platform);
    r.expect("http", "[\"127.0.0.1:8001\"]", &format!("{with_http}:2"));
    // Any listener from a higher layer, HTTP or uwsgi, replaces PORT.
    let r = check_ok(&["--config", &with_socket], &platform);
    r.expect_unset("http");
    r.expect("socket", "[\"/tmp/app.sock\"]", &format!("{with_socket}:2"));
    let r = check_ok(
        &["--config", &app_only],
        &with(&[("RWSGI_SOCKET", "/tmp/env.sock")]),
    );
    r.expect_unset("http");
    let r = check_ok(
        &["--config", &app_only, "--socket", "/tmp/flag.sock"],
        &platform,
    );
    r.expect_unset("http");
    r.expect("socket", "[\"/tmp/flag.sock\"]", "command line");
    let r = check_ok(
        &["--config", &app_only, "--http", "127.0.0.1:8009"],
        &platform,
    );
    r.expect("http", "[\"127.0.0.1:8009\"]", "command line");
}

#[test]
fn web_concurrency_and_port_when_serving() {
    let hello = app("hello.py");
    // PORT binds every interface: another process may take the free port
    // between our check and rwsgi's bind, so retry a few times.
    for attempt in 1..=5 {
        let port = free_port().to_string();
        let env = [
            ("WEB_CONCURRENCY", "3"),
            ("PORT", port.as_str()),
            ("RWSGI_PROCESES", "9"),
        ];
        let mut server = Server::spawn_command(rwsgi(&["--wsgi-file", &hello], &env));
        let line = server.wait_for_log_where("ready or a bind failure", STARTUP, |l| {
            l.contains("] ready: ") || l.contains("in use")
        });
        if line.contains("in use") {
            eprintln!("port {port} was taken (attempt {attempt}); retrying");
            continue;
        }
        assert_eq!(
            server.listening("http"),
            [format!("0.0.0.0:{port}")],
            "{}",
            server.log_text()
        );
        server.wait_for_children(3, PROMPT);
        assert_eq!(
            get(&format!("127.0.0.1:{port}"), "/"),
            (200, "Hello, World!".into())
        );
        // The unknown variable is a warning in the log, with the fix.
        let log = server.log_text();
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("RWSGI_PROCESES")
                && l.contains("did you mean RWSGI_PROCESSES?")),
            "no warning about RWSGI_PROCESES:\n{log}"
        );
        return;
    }
    panic!("no free port for PORT in 5 attempts");
}

#[test]
fn unknown_rwsgi_variable_is_a_warning_with_a_suggestion() {
    let r = check_ok(
        &["--http", "127.0.0.1:0", "--wsgi-file", "etc/apps/hello.py"],
        &[("RWSGI_PROCESES", "3"), ("RWSGI_MAX_REQUEST", "10")],
    );
    for (wrong, right) in [
        ("RWSGI_PROCESES", "RWSGI_PROCESSES"),
        ("RWSGI_MAX_REQUEST", "RWSGI_MAX_REQUESTS"),
    ] {
        assert!(
            r.stderr.lines().any(|l| l.contains("warning")
                && l.contains(wrong)
                && l.contains(&format!("did you mean {right}?"))),
            "no warning for {wrong}:\n{}",
            r.stderr
        );
    }
    // Ignored, not applied.
    assert!(!r.set.contains_key("processes"), "{}", r.text);
    assert!(!r.set.contains_key("max-requests"), "{}", r.text);
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn config_file_mistakes_exit_2_with_the_place_and_the_fix() {
    let dir = TempDir::new("cfg-errors");
    let app_table = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n";
    let server_table = "[server]\nhttp = \"127.0.0.1:0\"\n";
    // (name, text, the line the message must name (the first line starting
    // with this; "" for none), what else the message must say)
    let cases: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "unknown-key",
            format!("{app_table}{server_table}\n[workers]\nproceses = 3\n"),
            "proceses",
            vec![
                "unknown key \"proceses\" in [workers]",
                "did you mean \"processes\"?",
            ],
        ),
        (
            "wrong-type",
            format!("{app_table}{server_table}\n[workers]\nprocesses = \"3\"\n"),
            "processes",
            vec!["processes", "whole number", "not a string"],
        ),
        (
            "wrong-type-bool",
            format!("{app_table}{server_table}vacuum = \"yes\"\n"),
            "vacuum",
            vec!["vacuum", "true or false"],
        ),
        (
            "wrong-table",
            format!("{app_table}{server_table}processes = 3\n"),
            "processes",
            vec!["\"processes\" belongs in the [workers] table, not [server]"],
        ),
        (
            "top-level-key",
            format!("processes = 3\n{app_table}{server_table}"),
            "processes",
            vec!["processes", "[workers] processes = "],
        ),
        (
            "processes-zero",
            format!("{app_table}{server_table}\n[workers]\nprocesses = 0\n"),
            "processes",
            vec!["--processes must be at least 1"],
        ),
        (
            "port-too-big",
            format!("{app_table}[server]\nhttp = [\"127.0.0.1:70000\"]\n"),
            "http",
            vec!["70000", "65535"],
        ),
        (
            "missing-app",
            server_table.to_string(),
            "",
            vec!["no app given", "--module", "--wsgi-file"],
        ),
        (
            "uwsgi-master-key",
            format!("{app_table}{server_table}\n[workers]\nmaster = true\n"),
            "master",
            vec![
                "unknown key \"master\"",
                "what rwsgi always does",
                "--master",
            ],
        ),
        (
            "uwsgi-ini",
            "[uwsgi]\nhttp = :8000\nmodule = mysite.wsgi\n".to_string(),
            "http",
            vec!["not valid TOML", "uWSGI ini file", "rwsgi.toml(5)"],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, text, marker, needles) in cases {
        let path = write_file(&dir, &format!("{name}.toml"), &text);
        wrong.extend(bad_file_message(&path, &text, marker, &needles));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));

    // A real start fails the same way, before serving anything.
    let path = dir.file("unknown-key.toml");
    let mut server = Server::spawn_command(rwsgi(&["--config", &path], &[]));
    let status = server.wait_exit(STARTUP);
    assert_eq!(status.code(), Some(2), "{}", server.log_text());
    assert!(
        server
            .log_text()
            .contains(&format!("{path}:7: unknown key")),
        "{}",
        server.log_text()
    );

    // A file that is not there.
    let missing = dir.file("nope.toml");
    let msg = check_fails(&["--config", &missing], &[]);
    assert!(msg.contains(&missing), "{msg}");
    let msg = check_fails(&[], &[("RWSGI_CONFIG", missing.as_str())]);
    assert!(msg.contains(&missing), "{msg}");
}

/// A unix socket, log file or pidfile in a directory that does not exist:
/// a start refuses it (exit 2) naming the directory; --check-config warns,
/// because a service manager may create it at start (RuntimeDirectory=).
#[test]
fn files_in_missing_directories_are_refused_naming_the_directory() {
    let dir = TempDir::new("cfg-nodir");
    let missing = dir.path().join("missing");
    let inside = |name: &str| missing.join(name).display().to_string();
    let hello = "etc/apps/hello.py";
    for (flag, args) in [
        ("--socket", vec!["--socket".to_string(), inside("app.sock")]),
        ("--http", vec!["--http".to_string(), inside("http.sock")]),
        (
            "--logto",
            vec![
                "--http".into(),
                "127.0.0.1:0".into(),
                "--logto".into(),
                inside("x.log"),
            ],
        ),
        (
            "--pidfile",
            vec![
                "--http".into(),
                "127.0.0.1:0".into(),
                "--pidfile".into(),
                inside("x.pid"),
            ],
        ),
        (
            "--stats",
            vec![
                "--http".into(),
                "127.0.0.1:0".into(),
                "--stats".into(),
                inside("s.sock"),
            ],
        ),
    ] {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--wsgi-file", hello]);
        let want = format!("directory {} does not exist", missing.display());
        let started = run(&all, &[]);
        assert_eq!(started.code, Some(2), "{flag}: {}", started.show());
        assert!(
            started.stderr.contains(flag) && started.stderr.contains(&want),
            "{flag}: {}",
            started.show()
        );
        all.push("--check-config");
        let checked = run(&all, &[]);
        assert_eq!(checked.code, Some(0), "{flag}: {}", checked.show());
        assert!(
            checked.stderr.contains("warning") && checked.stderr.contains(&want),
            "{flag}: {}",
            checked.show()
        );
    }
}

/// Flags from uWSGI or Gunicorn that rwsgi does not have get the rwsgi way
/// to do the same, not clap's nearest spelling; Gunicorn's `-w 4` (uWSGI's
/// and rwsgi's -w is --module) is caught too.
#[test]
fn foreign_flags_get_the_rwsgi_way() {
    let hello = "etc/apps/hello.py";
    for (args, needle) in [
        (vec!["--threads", "4"], "add capacity with --processes"),
        (vec!["--cheaper", "2"], "SIGTTIN and SIGTTOU"),
        (vec!["--graceful-timeout=5"], "--shutdown-timeout"),
        (vec!["--py-autoreload", "1"], "kill -HUP"),
        (vec!["--max-worker-lifetime", "60"], "--max-requests"),
    ] {
        let mut all = vec!["--http", "127.0.0.1:0", "--wsgi-file", hello];
        all.extend(args.iter().copied());
        let msg = check_fails(&all, &[]);
        assert!(
            msg.contains("is not an rwsgi option") && msg.contains(needle),
            "{args:?}: {msg}"
        );
    }
    let msg = check_fails(&["--http", "127.0.0.1:0", "-w", "4"], &[]);
    assert!(msg.contains("--processes 4"), "{msg}");
}

/// Checks `--check-config` on the bad file `path`: exit code 2, a message
/// naming `path` and the first line of `text` starting with `marker` (none
/// if empty), and every needle. Returns what is wrong.
fn bad_file_message(path: &str, text: &str, marker: &str, needles: &[&str]) -> Option<String> {
    let ran = run(&["--config", path, "--check-config"], &[]);
    let msg = &ran.stderr;
    let mut missing: Vec<String> = needles
        .iter()
        .filter(|n| !msg.contains(*n))
        .map(|n| format!("{n:?}"))
        .collect();
    if !marker.is_empty() {
        let line = text.lines().position(|l| l.starts_with(marker)).unwrap() + 1;
        let place = format!("{path}:{line}");
        if !msg.contains(&place) {
            missing.push(format!("the place {place}"));
        }
    }
    if ran.code != Some(2) {
        missing.push("exit code 2".into());
    }
    (!missing.is_empty()).then(|| {
        format!(
            "{path}: the error lacks {}:\n{}\nfile:\n{text}",
            missing.join(", "),
            ran.show()
        )
    })
}

#[test]
fn invalid_toml_is_reported_at_file_and_line() {
    // Like every other mistake in the file: `FILE:LINE: what is wrong`, so
    // editors and people find the place the same way.
    let dir = TempDir::new("cfg-syntax");
    let text = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n[server\nhttp = \"127.0.0.1:0\"\n";
    let path = write_file(&dir, "syntax.toml", text);
    if let Some(wrong) = bad_file_message(&path, text, "[server", &["TOML", "]"]) {
        panic!("{wrong}");
    }
}

#[test]
fn values_the_flag_parser_rejects_still_name_their_source() {
    let dir = TempDir::new("cfg-badvalue");
    let text = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n\n[server]\nhttp = \"127.0.0.1:0\"\n\
                listen = 99999999999\n";
    let path = write_file(&dir, "listen.toml", text);
    let mut wrong = Vec::new();
    wrong.extend(bad_file_message(&path, text, "listen", &["listen"]));

    let msg = check_fails(
        &["--http", "127.0.0.1:0", "--wsgi-file", "etc/apps/hello.py"],
        &[("RWSGI_PROCESSES", "many")],
    );
    if !msg.contains("RWSGI_PROCESSES") {
        wrong.push(format!(
            "RWSGI_PROCESSES=many: the message does not name the variable:\n{msg}"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn toml_octal_literals_mean_what_they_say() {
    // `umask = 0o077` is the number 63 to TOML. rwsgi may refuse it (and say
    // to write "077") or take it as 0o077, but never as some other mask.
    let dir = TempDir::new("cfg-octal");
    let text = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n\n[server]\nhttp = \"127.0.0.1:0\"\n\
                umask = 0o077\nchmod-socket = 0o660\n";
    let path = write_file(&dir, "octal.toml", text);
    let ran = run(&["--config", &path, "--check-config"], &[]);
    match ran.code {
        Some(2) => assert!(
            ran.stderr.contains(&format!("{path}:6")) || ran.stderr.contains(&format!("{path}:7")),
            "{}",
            ran.show()
        ),
        Some(0) => {
            let r = Report::parse(&ran.stdout, ran.stderr.clone());
            let octal = |key: &str| {
                let v = r.set[key].0.trim_matches('"').trim_start_matches("0o");
                u32::from_str_radix(v, 8).ok()
            };
            assert_eq!(octal("umask"), Some(0o077), "umask; {}", ran.show());
            assert_eq!(
                octal("chmod-socket"),
                Some(0o660),
                "chmod-socket; {}",
                ran.show()
            );
        }
        _ => panic!("{}", ran.show()),
    }
}

// ---------------------------------------------------------------------------
// Process options

#[test]
fn pidfile_has_the_master_pid_and_is_removed_on_exit() {
    let dir = TempDir::new("cfg-pidfile");
    let pidfile = dir.file("rwsgi.pid");
    let mut server = start(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--pidfile",
            &pidfile,
        ],
        &[],
    );
    let text = fs::read_to_string(&pidfile).expect("the pidfile exists once rwsgi is ready");
    assert_eq!(text.trim(), server.pid().to_string(), "pidfile {text:?}");
    server.signal("TERM");
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(
        !Path::new(&pidfile).exists(),
        "the pidfile is still there after exit"
    );
}

/// Stops every rwsgi process whose command line names `tag` (a test's
/// temporary directory): the daemon and its workers, which are not our
/// children. TERM first, KILL after a few seconds.
struct Reaper {
    tag: String,
}

impl Reaper {
    fn processes(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                is_rwsgi_process(pid)
                    && fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(&self.tag))
                        .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for sig in ["TERM", "KILL"] {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            for pid in &left {
                send_signal(*pid, sig);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.processes().is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn daemonize_detaches_logs_to_the_file_and_writes_the_pidfile() {
    let dir = TempDir::new("cfg-daemon");
    let _reaper = Reaper {
        tag: dir.path().to_string_lossy().into_owned(),
    };
    let (log, pidfile) = (dir.file("rwsgi.log"), dir.file("rwsgi.pid"));
    let terminal = dir.file("terminal.txt");
    let out = fs::File::create(&terminal).unwrap();
    let started = Instant::now();
    let mut launcher = rwsgi(
        &[
            "--daemonize",
            &log,
            "--pidfile",
            &pidfile,
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
        ],
        &[],
    )
    .stdin(Stdio::null())
    .stdout(out.try_clone().unwrap())
    .stderr(out)
    .spawn()
    .expect("run rwsgi");
    let status = wait_child(&mut launcher, PROMPT, "rwsgi --daemonize");
    assert_eq!(status.code(), Some(0), "the launching command failed");
    eprintln!("rwsgi --daemonize returned after {:?}", started.elapsed());
    assert_eq!(
        fs::read_to_string(&terminal).unwrap(),
        "",
        "output on the terminal"
    );

    let text = wait_file(&log, "the daemon is ready", STARTUP, None, |t| {
        t.contains("] ready: ")
    });
    let pid: u32 = fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("no pidfile once ready ({e}); log:\n{text}"))
        .trim()
        .parse()
        .expect("a pid in the pidfile");
    assert_ne!(pid, launcher.id(), "the pidfile has the launcher's pid");
    assert!(is_rwsgi_process(pid), "pid {pid} is not a running rwsgi");
    assert!(
        text.contains(&format!("master pid {pid} ")),
        "the pidfile's {pid} is not the master's; log:\n{text}"
    );
    // Detached: not our child, in a session of its own.
    assert_ne!(proc_status(pid, "PPid"), [std::process::id()]);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let own_stat = fs::read_to_string("/proc/self/stat").unwrap();
    let own: Vec<&str> = own_stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_ne!(fields[3], own[3], "the daemon is still in our session");

    // It serves, and its access log goes to the file.
    let addr = http_addr(&text);
    assert_eq!(get(&addr, "/daemon-check"), (200, "Hello, World!".into()));
    wait_file(&log, "the access-log line", PROMPT, None, |t| {
        t.contains("\"GET /daemon-check HTTP/1.0\" 200")
    });

    // Stopped through its pidfile.
    send_signal(pid, "TERM");
    assert!(wait_gone(pid, PROMPT), "the daemon did not exit after TERM");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("master exiting with code 0"), "log:\n{text}");
    assert!(
        !Path::new(&pidfile).exists(),
        "the pidfile outlived the daemon"
    );
}

/// A relative --logto is the start directory's, also when the workers,
/// after --chdir, reopen it on USR1.
#[test]
fn a_relative_logto_stays_in_the_start_directory_after_chdir() {
    let dir = TempDir::new("cfg-logto-rel");
    fs::create_dir(dir.path().join("app")).unwrap();
    let log = dir.file("rel.log");
    let hello = app("hello.py");
    let mut cmd = rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &hello,
            "--chdir",
            "app",
            "--logto",
            "rel.log",
        ],
        &[],
    );
    cmd.current_dir(dir.path());
    let mut server = Server::spawn_command(cmd);
    wait_file(&log, "ready", STARTUP, Some(&mut server), |t| {
        t.contains("] ready: ")
    });
    let worker = server.wait_for_children(1, PROMPT)[0];
    fs::rename(&log, dir.file("rel.log.1")).unwrap();
    server.signal("USR1");
    let reopened = format!("[pid {worker}] reopened the log file");
    wait_file(
        &log,
        "the worker reopened the log",
        PROMPT,
        Some(&mut server),
        |t| t.contains(&reopened),
    );
    assert!(
        !dir.path().join("app/rel.log").exists(),
        "the worker reopened the log under --chdir"
    );
}

#[test]
fn logto_is_reopened_on_sigusr1() {
    let dir = TempDir::new("cfg-logto");
    let log = dir.file("rwsgi.log");
    let rotated = dir.file("rwsgi.log.1");
    let mut server = Server::spawn_command(rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--processes",
            "2",
            "--logto",
            &log,
        ],
        &[],
    ));
    let text = wait_file(&log, "ready", STARTUP, Some(&mut server), |t| {
        t.contains("] ready: ")
    });
    assert!(
        server.log().is_empty(),
        "with --logto nothing goes to stderr:\n{}",
        server.log_text()
    );
    let addr = http_addr(&text);
    let workers = server.wait_for_children(2, PROMPT);
    assert_eq!(get(&addr, "/before"), (200, "Hello, World!".into()));
    wait_file(
        &log,
        "the first access-log line",
        PROMPT,
        Some(&mut server),
        |t| t.contains("\"GET /before HTTP/1.0\" 200"),
    );

    // logrotate: move the file away, then USR1 to the master.
    fs::rename(&log, &rotated).unwrap();
    server.signal("USR1");
    let reopened = |pid: u32| format!("[pid {pid}] reopened the log file");
    let master = server.pid();
    wait_file(
        &log,
        "every process reopened the log",
        PROMPT,
        Some(&mut server),
        |t| {
            std::iter::once(master)
                .chain(workers.iter().copied())
                .all(|pid| t.contains(&reopened(pid)))
        },
    );
    // Whichever worker takes them, new requests are logged in the new file.
    for i in 0..4 {
        assert_eq!(
            get(&addr, &format!("/after-{i}")),
            (200, "Hello, World!".into())
        );
    }
    wait_file(
        &log,
        "the new access-log lines",
        PROMPT,
        Some(&mut server),
        |t| (0..4).all(|i| t.contains(&format!("\"GET /after-{i} HTTP/1.0\" 200"))),
    );
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("GET /before"), "{old}");
    assert!(
        !old.contains("GET /after-"),
        "new lines went to the old file:\n{old}"
    );
}

#[test]
fn umask_applies_to_the_files_rwsgi_creates() {
    for (mask, mode) in [("077", 0o600), ("027", 0o640)] {
        let dir = TempDir::new("cfg-umask");
        let pidfile = dir.file("rwsgi.pid");
        let _server = start(
            &[
                "--http",
                "127.0.0.1:0",
                "--wsgi-file",
                &app("hello.py"),
                "--umask",
                mask,
                "--pidfile",
                &pidfile,
            ],
            &[],
        );
        let meta = fs::metadata(&pidfile).expect("the pidfile");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "--umask {mask}: pidfile mode {:o}",
            meta.permissions().mode() & 0o777
        );
    }
}

#[test]
fn env_reaches_the_app() {
    let server = start(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("cfg_env.py"),
            "--env",
            "FOO=bar",
            "--env",
            "WITH_EQUALS=a=b",
        ],
        &[],
    );
    let addr = server.listening("http")[0].clone();
    assert_eq!(get(&addr, "/FOO"), (200, "bar".into()));
    assert_eq!(get(&addr, "/WITH_EQUALS"), (200, "a=b".into()));
    assert_eq!(get(&addr, "/RWSGI_NOT_SET"), (200, "<unset>".into()));
}

// ---------------------------------------------------------------------------
// --uid / --gid (the tests run as root)

/// What a worker running as an unprivileged user needs to start Python.
/// When the embedded Python's standard library is not readable by others
/// (pyenv under a 0700 /root, say), the workers get a PYTHONHOME with a
/// world-readable copy of the part of it that Python needs to start and to
/// serve `cfg_env.py`; nothing else about the run changes.
struct UnprivilegedPython {
    _home: Option<TempDir>,
    env: Vec<(String, String)>,
}

impl UnprivilegedPython {
    fn new() -> UnprivilegedPython {
        let Some(stdlib) = embedded_stdlib() else {
            return UnprivilegedPython {
                _home: None,
                env: Vec::new(),
            };
        };
        if world_readable(&stdlib.join("os.py")) {
            return UnprivilegedPython {
                _home: None,
                env: Vec::new(),
            };
        }
        let home = TempDir::new("cfg-pyhome");
        let lib = home.path().join("lib").join(stdlib.file_name().unwrap());
        copy_tree(&stdlib, &lib, true);
        for sub in ["encodings", "importlib", "collections", "json"] {
            copy_tree(&stdlib.join(sub), &lib.join(sub), false);
        }
        for d in [home.path().to_path_buf(), home.path().join("lib")] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        eprintln!(
            "{} is not readable by other users: workers get PYTHONHOME={}",
            stdlib.display(),
            home.path().display()
        );
        let env = vec![(
            "PYTHONHOME".to_string(),
            home.path().to_string_lossy().into_owned(),
        )];
        UnprivilegedPython {
            _home: Some(home),
            env,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// The standard library of the libpython rwsgi is linked against (from ldd).
fn embedded_stdlib() -> Option<PathBuf> {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_rwsgi"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lib = text
        .lines()
        .find(|l| l.contains("libpython"))?
        .split("=>")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    let lib = Path::new(&lib);
    // libpython3.11.so.1.0 -> python3.11
    let name = lib.file_name()?.to_str()?;
    let version = name.strip_prefix("libpython")?.split(".so").next()?;
    let stdlib = lib.parent()?.join(format!("python{version}"));
    stdlib.is_dir().then_some(stdlib)
}

/// Whether a user other than the owner can read `path` (every directory on
/// the way must be searchable by others).
fn world_readable(path: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    path.ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .all(|d| mode(d) & 0o001 != 0)
        && mode(path) & 0o004 != 0
}

/// Copies the files of `from` (and, unless `flat`, its subdirectories) to
/// `to`, world-readable.
fn copy_tree(from: &Path, to: &Path, flat: bool) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !flat && name != "__pycache__" {
                copy_tree(&path, &to.join(&name), false);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            fs::copy(&path, to.join(&name)).unwrap();
            fs::set_permissions(to.join(&name), fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// The uid and gid of `user` from /etc/passwd.
fn passwd_ids(user: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .unwrap_or_else(|| panic!("no user {user} in /etc/passwd"));
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// The gid of `group` from /etc/group.
fn group_id(group: &str) -> u32 {
    let groups = fs::read_to_string("/etc/group").unwrap();
    groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == group)
        .unwrap_or_else(|| panic!("no group {group} in /etc/group"))[2]
        .parse()
        .unwrap()
}

/// Starts cfg_env.py with `extra` flags as an unprivileged worker user.
fn start_unprivileged(python: &UnprivilegedPython, extra: &[&str]) -> Server {
    let app = app("cfg_env.py");
    assert!(
        world_readable(Path::new(&app)),
        "{app} must be readable by the worker user"
    );
    let mut args = vec!["--http", "127.0.0.1:0", "--wsgi-file", app.as_str()];
    args.extend_from_slice(extra);
    start(&args, &python.env())
}

#[test]
fn uid_and_gid_drop_the_workers_privileges() {
    if !is_root() {
        eprintln!("skipped: --uid/--gid need root");
        return;
    }
    let (uid, _) = passwd_ids("nobody");
    let gid = group_id("nogroup");
    let python = UnprivilegedPython::new();
    let server = start_unprivileged(&python, &["--uid", "nobody", "--gid", "nogroup", "-p", "2"]);
    let workers = server.wait_for_children(2, PROMPT);
    for w in &workers {
        assert_eq!(proc_status(*w, "Uid"), [uid; 4], "worker {w}");
        assert_eq!(proc_status(*w, "Gid"), [gid; 4], "worker {w}");
        assert_eq!(
            proc_status(*w, "Groups"),
            [gid],
            "worker {w}: supplementary groups"
        );
    }
    assert_eq!(
        proc_status(server.pid(), "Uid"),
        [0; 4],
        "the master stays root"
    );
    let addr = server.listening("http")[0].clone();
    assert_eq!(get(&addr, "/"), (200, format!("{uid} {gid}")));
}

#[test]
fn numeric_uid_without_gid_takes_the_users_group() {
    if !is_root() {
        eprintln!("skipped: --uid needs root");
        return;
    }
    // --gid defaults to the user's group, whether --uid is a name or a number.
    let (uid, gid) = passwd_ids("nobody");
    let python = UnprivilegedPython::new();
    let uid_arg = uid.to_string();
    let server = start_unprivileged(&python, &["--uid", &uid_arg]);
    let worker = server.wait_for_children(1, PROMPT)[0];
    assert_eq!(proc_status(worker, "Uid"), [uid; 4]);
    assert_eq!(
        proc_status(worker, "Gid"),
        [gid; 4],
        "--uid {uid} left the worker in another group"
    );
    assert_eq!(proc_status(worker, "Groups"), [gid], "supplementary groups");
}

#[test]
fn logto_reopen_works_for_workers_that_dropped_privileges() {
    if !is_root() {
        eprintln!("skipped: --uid needs root");
        return;
    }
    let dir = TempDir::new("cfg-logto-uid");
    let (log, rotated) = (dir.file("rwsgi.log"), dir.file("rwsgi.log.1"));
    let python = UnprivilegedPython::new();
    let app = app("cfg_env.py");
    let mut server = Server::spawn_command(rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app,
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "--logto",
            &log,
        ],
        &python.env(),
    ));
    let text = wait_file(&log, "ready", STARTUP, Some(&mut server), |t| {
        t.contains("] ready: ")
    });
    let addr = http_addr(&text);
    let worker = server.wait_for_children(1, PROMPT)[0];
    fs::rename(&log, &rotated).unwrap();
    server.signal("USR1");
    let master = server.pid();
    wait_file(
        &log,
        "the master reopened the log",
        PROMPT,
        Some(&mut server),
        |t| t.contains(&format!("[pid {master}] reopened the log file")),
    );
    // Once the worker has handled the USR1 (it logs either way, in one of
    // the two files), a request it serves must be logged in the new file.
    let both = || {
        fs::read_to_string(&log).unwrap_or_default()
            + &fs::read_to_string(&rotated).unwrap_or_default()
    };
    let deadline = Instant::now() + PROMPT;
    let handled = |t: &str| {
        t.contains(&format!("[pid {worker}] reopened"))
            || t.contains(&format!("[pid {worker}] cannot reopen"))
    };
    while !handled(&both()) {
        assert!(
            Instant::now() < deadline,
            "worker {worker} never handled USR1:\n{}",
            both()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&addr, "/after-rotate").0, 200);
    while !both().contains("GET /after-rotate") {
        assert!(
            Instant::now() < deadline,
            "no access-log line for /after-rotate:\n{}",
            both()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let new = fs::read_to_string(&log).unwrap_or_default();
    let old = fs::read_to_string(&rotated).unwrap_or_default();
    assert!(
        new.contains("GET /after-rotate"),
        "after USR1 the worker (uid nobody) still logs to the rotated file.\n\
         new file:\n{new}\nrotated file:\n{old}"
    );
}
