//! Observability: the uWSGI-format stats server (`--stats`, `--stats-http`,
//! read by the real `uwsgitop`), Prometheus metrics (`--metrics`, parsed by
//! the real `prometheus_client`), access-log formats, `--log-slow`, and quiet
//! client disconnects. JSON and Prometheus text are parsed by Python from the
//! test virtualenv (scripts/test installs uwsgitop and prometheus_client).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{app, project_dir, send_signal, Server, TempDir, PROMPT, STARTUP};
use crate::http::{request, Client, Response};

// ---------------------------------------------------------------- helpers

/// The test virtualenv; a missing one (or a missing package) fails the test.
fn venv() -> PathBuf {
    let venv = std::env::var_os("RWSGI_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_dir().join(".venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no virtualenv at {}: run scripts/test (it creates .venv with uwsgitop and \
         prometheus_client)",
        venv.display()
    );
    venv
}

/// Fails the test unless the venv's Python can import `module`.
fn require_module(module: &str) {
    let ok = Command::new(venv().join("bin/python"))
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the test virtualenv ({}) has no {module}: run scripts/test (it installs uwsgitop \
         and prometheus_client), or `.venv/bin/pip install uwsgitop prometheus_client`",
        venv().display()
    );
}

/// Runs `script` with the venv's Python, `input` on its stdin; returns its
/// stdout. Panics with stderr if it fails.
fn python(script: &str, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new(venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the venv's python");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("python output");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "python failed ({}): {}\ninput:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(input)
    );
    String::from_utf8(out.stdout).expect("python printed UTF-8")
}

/// Parses JSON with Python's `json` and prints it flattened: one
/// `path<TAB>value` line per node; objects are `{}`, lists `[N]`, leaves
/// `json.dumps(value)`. Paths join keys and list indexes with dots.
const FLATTEN_JSON: &str = r#"
import json, sys
def walk(path, v):
    if isinstance(v, dict):
        print(path + "\t{}")
        for k, x in v.items():
            walk(path + "." + k if path else k, x)
    elif isinstance(v, list):
        print("%s\t[%d]" % (path, len(v)))
        for i, x in enumerate(v):
            walk("%s.%d" % (path, i), x)
    else:
        print(path + "\t" + json.dumps(v))
walk("", json.loads(sys.stdin.read()))
"#;

/// A JSON document as parsed (and flattened) by Python.
struct Json(BTreeMap<String, String>);

impl Json {
    fn parse(text: &str) -> Json {
        let out = python(FLATTEN_JSON, &[], text.as_bytes());
        Json(
            out.lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn raw(&self, path: &str) -> &str {
        self.0.get(path).unwrap_or_else(|| {
            panic!(
                "no {path:?} in the JSON; it has: {:?}",
                self.0.keys().collect::<Vec<_>>()
            )
        })
    }

    fn int(&self, path: &str) -> i64 {
        let v = self.raw(path);
        v.parse()
            .unwrap_or_else(|_| panic!("{path} is {v}, not an integer"))
    }

    fn string(&self, path: &str) -> String {
        unquote(self.raw(path)).unwrap_or_else(|| panic!("{path} is {}, not a string", self.raw(path)))
    }

    /// Length of the list at `path`.
    fn len(&self, path: &str) -> usize {
        let v = self.raw(path);
        v.strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{path} is {v}, not a list"))
    }

    fn is_object(&self, path: &str) -> bool {
        self.0.get(path).is_some_and(|v| v == "{}")
    }

    /// The sum of an integer field over the workers.
    fn workers_sum(&self, field: &str) -> i64 {
        (0..self.len("workers"))
            .map(|i| self.int(&format!("workers.{i}.{field}")))
            .sum()
    }

    fn keys(&self) -> BTreeSet<String> {
        self.0.keys().cloned().collect()
    }
}

/// Decodes a JSON string literal as printed by Python's json.dumps (ASCII).
fn unquote(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Polls `f` until it returns `Ok`, at most `timeout`; panics with `what`
/// and the last `Err` otherwise.
fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// The address the master logged as `KIND endpoint on ADDR (fd N)`:
/// `127.0.0.1:PORT` or `unix:/path`.
fn endpoint(server: &Server, kind: &str) -> String {
    let marker = format!("] {kind} endpoint on ");
    server
        .log()
        .iter()
        .find_map(|l| {
            let rest = &l[l.find(&marker)? + marker.len()..];
            Some(rest.rsplit_once(" (fd ")?.0.to_string())
        })
        .unwrap_or_else(|| panic!("no {marker:?} line; log:\n{}", server.log_text()))
}

fn endpoint_port(server: &Server, kind: &str) -> u16 {
    let addr = endpoint(server, kind);
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Reads a raw stats socket (`127.0.0.1:PORT` or `unix:/path`) to EOF.
fn fetch_raw_stats(addr: &str) -> String {
    let mut out = Vec::new();
    if let Some(path) = addr.strip_prefix("unix:") {
        let mut s = UnixStream::connect(path).expect("connect to the unix stats socket");
        s.set_read_timeout(Some(PROMPT)).unwrap();
        s.read_to_end(&mut out).expect("read the stats document");
    } else {
        let mut s = TcpStream::connect(addr).expect("connect to the stats socket");
        s.set_read_timeout(Some(PROMPT)).unwrap();
        s.read_to_end(&mut out).expect("read the stats document");
    }
    String::from_utf8(out).expect("the stats document is UTF-8")
}

fn raw_stats(addr: &str) -> Json {
    Json::parse(&fetch_raw_stats(addr))
}

/// One GET to a master endpoint (stats-http or metrics) on `port`.
fn endpoint_get(port: u16, target: &str) -> Response {
    Client::connect(port).get(target)
}

/// A complete GET to the app on a new connection; asserts the status.
fn get_ok(server: &Server, target: &str, status: u16) -> Response {
    let r = server.connect().get(target);
    assert_eq!(r.status, status, "GET {target}: {}", r.text());
    r
}

/// Prometheus text as parsed by prometheus_client: family name -> type, and
/// sample `name{k="v",...}` (labels sorted; no braces without labels) -> value.
struct Metrics {
    families: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
    text: String,
}

const PARSE_PROMETHEUS: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    print("family\t%s\t%s" % (fam.name, fam.type))
    for s in fam.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        key = "%s{%s}" % (s.name, labels) if labels else s.name
        print("sample\t%s\t%r" % (key, float(s.value)))
"#;

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let out = python(PARSE_PROMETHEUS, &[], text.as_bytes());
        let mut m = Metrics {
            families: BTreeMap::new(),
            samples: BTreeMap::new(),
            text: text.to_string(),
        };
        for line in out.lines() {
            let mut f = line.split('\t');
            match (f.next(), f.next(), f.next()) {
                (Some("family"), Some(name), Some(kind)) => {
                    m.families.insert(name.into(), kind.into());
                }
                (Some("sample"), Some(key), Some(v)) => {
                    let v = v.parse().unwrap_or_else(|_| panic!("value {v:?}"));
                    m.samples.insert(key.into(), v);
                }
                _ => panic!("unexpected parser output {line:?}"),
            }
        }
        m
    }

    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key}; metrics:\n{}", self.text))
    }

    /// Samples whose key starts with `prefix`.
    fn with_prefix(&self, prefix: &str) -> Vec<(&str, f64)> {
        self.samples
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    fn requests(&self, class: &str) -> f64 {
        self.get(&format!("rwsgi_requests_total{{class=\"{class}\"}}"))
    }

    fn respawns(&self, cause: &str) -> f64 {
        self.get(&format!("rwsgi_respawns_total{{cause=\"{cause}\"}}"))
    }
}

fn scrape(port: u16) -> Metrics {
    let r = endpoint_get(port, "/metrics");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    let ctype = r.header("content-type").unwrap_or("");
    assert!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "metrics Content-Type {ctype:?}"
    );
    Metrics::parse(&r.text())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// (uid, gid) of this process, from /proc/self/status.
fn own_ids() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> i64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().nth(1)) // effective id
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("Uid:"), field("Gid:"))
}

fn obs_server(extra: &[&str]) -> Server {
    let app = app("obs_app.py");
    let mut args = vec!["--wsgi-file", app.as_str()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

// ---------------------------------------------------------------- stats

const WORKER_FIELDS: [&str; 13] = [
    "id",
    "pid",
    "requests",
    "delta_requests",
    "exceptions",
    "status",
    "rss",
    "vsz",
    "running_time",
    "last_spawn",
    "respawn_count",
    "tx",
    "avg_rt",
];

#[test]
fn raw_stats_document_has_uwsgi_fields_and_counts_requests() {
    let started = unix_now();
    let server = obs_server(&[
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--listen",
        "77",
    ]);
    let addr = endpoint(&server, "Stats");
    let kids = server.wait_for_children(2, PROMPT);
    let doc = raw_stats(&addr);

    assert!(doc.is_object(""), "the document is not a JSON object");
    assert_eq!(doc.string("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(doc.int("listen_queue"), 0);
    assert_eq!(doc.int("load"), 0);
    assert_eq!(doc.int("pid"), i64::from(server.pid()), "pid is the master's");
    let (uid, gid) = own_ids();
    assert_eq!((doc.int("uid"), doc.int("gid")), (uid, gid));
    assert_eq!(doc.string("cwd"), project_dir().to_string_lossy());

    assert_eq!(doc.len("sockets"), 1);
    assert_eq!(
        doc.string("sockets.0.name"),
        format!("127.0.0.1:{}", server.port())
    );
    assert_eq!(doc.string("sockets.0.proto"), "http");
    assert_eq!(doc.int("sockets.0.queue"), 0);
    assert_eq!(doc.int("sockets.0.max_queue"), 77, "max_queue is --listen");

    assert_eq!(doc.len("workers"), 2);
    let pids: Vec<i64> = (0..2).map(|i| doc.int(&format!("workers.{i}.pid"))).collect();
    assert_eq!(
        sorted(pids),
        sorted(kids.iter().map(|&p| i64::from(p)).collect()),
        "worker pids are the master's children"
    );
    let ids: Vec<i64> = (0..2).map(|i| doc.int(&format!("workers.{i}.id"))).collect();
    assert_eq!(sorted(ids), vec![1, 2]);
    for i in 0..2 {
        let w = |f: &str| format!("workers.{i}.{f}");
        for f in WORKER_FIELDS {
            doc.raw(&w(f));
        }
        assert_eq!(doc.string(&w("status")), "idle");
        assert_eq!(doc.int(&w("requests")), 0);
        assert_eq!(doc.int(&w("exceptions")), 0);
        assert_eq!(doc.int(&w("tx")), 0);
        assert_eq!(doc.int(&w("respawn_count")), 1);
        let spawn = doc.int(&w("last_spawn"));
        assert!(
            (started - 5..=unix_now() + 5).contains(&spawn),
            "last_spawn {spawn} is not the unix time of the spawn (test started at {started})"
        );
    }

    const N: i64 = 10;
    for _ in 0..N {
        get_ok(&server, "/", 200);
    }
    // delta_requests: what each snapshot adds since the previous one.
    let mut deltas = doc.workers_sum("delta_requests");
    let doc = eventually("stats show N requests", PROMPT, || {
        let d = raw_stats(&addr);
        deltas += d.workers_sum("delta_requests");
        match d.workers_sum("requests") {
            N => Ok(d),
            n => Err(format!("{n} requests")),
        }
    });
    assert_eq!(deltas, N, "delta_requests over all snapshots add up to N");
    assert_eq!(doc.workers_sum("tx"), N * 13, "tx: 13 body bytes per hello");
    for i in 0..2 {
        let w = |f: &str| format!("workers.{i}.{f}");
        let requests = doc.int(&w("requests"));
        if requests == 0 {
            continue;
        }
        let running = doc.int(&w("running_time"));
        assert!(running > 0, "worker {i} served {requests} in {running} us");
        assert_eq!(doc.int(&w("avg_rt")), running / requests, "avg_rt");
        assert!(doc.int(&w("rss")) > 0, "rss of a worker that served requests");
        assert!(doc.int(&w("vsz")) > 0, "vsz of a worker that served requests");
    }
    let again = raw_stats(&addr);
    assert_eq!(again.workers_sum("delta_requests"), 0, "no requests since");

    get_ok(&server, "/raise", 500);
    let doc = eventually("stats count the exception", PROMPT, || {
        let d = raw_stats(&addr);
        match (d.workers_sum("requests"), d.workers_sum("exceptions")) {
            (r, 1) if r == N + 1 => Ok(d),
            other => Err(format!("(requests, exceptions) = {other:?}")),
        }
    });
    assert_eq!(doc.workers_sum("exceptions"), 1);
}

#[test]
fn raw_stats_on_a_unix_socket_and_unix_listener_queues() {
    let dir = TempDir::new("obs-unix-stats");
    let stats_path = dir.file("stats.sock");
    let app_path = dir.file("app.sock");
    let server = obs_server(&[
        "--processes",
        "1",
        "--stats",
        &stats_path,
        "--socket",
        &app_path,
        "--listen",
        "77",
    ]);
    let addr = endpoint(&server, "Stats");
    assert_eq!(addr, format!("unix:{stats_path}"));
    let kids = server.wait_for_children(1, PROMPT);
    get_ok(&server, "/", 200);
    let doc = eventually("the request in unix-socket stats", PROMPT, || {
        let d = raw_stats(&addr);
        match d.workers_sum("requests") {
            1 => Ok(d),
            n => Err(format!("{n} requests")),
        }
    });
    assert_eq!(doc.int("pid"), i64::from(server.pid()));
    assert_eq!(doc.len("workers"), 1);
    assert_eq!(doc.int("workers.0.pid"), i64::from(kids[0]));
    assert_eq!(doc.int("workers.0.tx"), 13);
    // Both listeners, each with its kernel accept queue and backlog.
    assert_eq!(doc.len("sockets"), 2);
    let socket = |name: &str| {
        (0..2)
            .find(|i| doc.string(&format!("sockets.{i}.name")) == name)
            .unwrap_or_else(|| panic!("no socket {name:?} in the stats"))
    };
    let http = socket(&format!("127.0.0.1:{}", server.port()));
    let unix = socket(&app_path);
    for (i, proto) in [(http, "http"), (unix, "uwsgi")] {
        assert_eq!(doc.string(&format!("sockets.{i}.proto")), proto);
        assert_eq!(doc.int(&format!("sockets.{i}.queue")), 0);
        assert_eq!(doc.int(&format!("sockets.{i}.max_queue")), 77, "{proto}");
    }
}

/// uwsgitop and Prometheus show each worker's memory; a worker that has not
/// served a request yet still uses memory.
#[test]
fn stats_show_the_memory_of_workers_before_their_first_request() {
    let server = obs_server(&[
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    require_module("prometheus_client");
    let addr = endpoint(&server, "Stats");
    let metrics = endpoint_port(&server, "Metrics");
    server.wait_for_children(2, PROMPT);
    eventually(
        "every worker's rss and vsz > 0 (no request served)",
        Duration::from_secs(5),
        || {
            let d = raw_stats(&addr);
            let mem: Vec<(i64, i64)> = (0..d.len("workers"))
                .map(|i| {
                    (
                        d.int(&format!("workers.{i}.rss")),
                        d.int(&format!("workers.{i}.vsz")),
                    )
                })
                .collect();
            if mem.len() == 2 && mem.iter().all(|&(r, v)| r > 0 && v > 0) {
                Ok(())
            } else {
                Err(format!("(rss, vsz) per worker: {mem:?}"))
            }
        },
    );
    let m = scrape(metrics);
    let rss = m.with_prefix("rwsgi_worker_rss_bytes{");
    assert_eq!(rss.len(), 2, "{rss:?}");
    assert!(rss.iter().all(|&(_, v)| v > 0.0), "{rss:?}");
}

#[test]
fn listen_queue_counts_connections_waiting_for_a_busy_worker() {
    require_module("prometheus_client");
    let dir = TempDir::new("listen-queue");
    let release = dir.path().join("release");
    let server = obs_server(&[
        "--processes",
        "1",
        "--stats",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = endpoint(&server, "Stats");
    let metrics = endpoint_port(&server, "Metrics");
    server.wait_for_children(1, PROMPT);

    // Occupy the only worker inside the app call: it accepts nothing then.
    let mut blocker = server.connect();
    let target = format!("/block?until={}", release.display());
    blocker.send(&request("GET", &target, &[], b""));
    eventually("the worker is busy", PROMPT, || {
        let d = raw_stats(&addr);
        match (d.int("load"), d.string("workers.0.status")) {
            (1, s) if s == "busy" => Ok(()),
            other => Err(format!("(load, status) = {other:?}")),
        }
    });

    // Each connect completes in the kernel and waits in the accept queue.
    const K: i64 = 5;
    let mut waiting: Vec<Client> = (0..K).map(|_| server.connect()).collect();
    for c in &mut waiting {
        c.send(&request("GET", "/", &[], b""));
    }
    let doc = eventually("listen_queue reaches K", PROMPT, || {
        let d = raw_stats(&addr);
        match d.int("listen_queue") {
            q if q >= K => Ok(d),
            q => Err(format!("listen_queue {q}")),
        }
    });
    let q = doc.int("listen_queue");
    assert!(q <= K + 1, "listen_queue {q}: only {K} clients are waiting");
    assert_eq!(doc.int("sockets.0.queue"), q, "the socket's queue");
    let m = scrape(metrics);
    let key = format!("rwsgi_listen_queue{{socket=\"127.0.0.1:{}\"}}", server.port());
    assert_eq!(m.get(&key), K as f64, "the metric agrees");
    assert_eq!(m.get("rwsgi_workers{state=\"busy\"}"), 1.0);

    std::fs::write(&release, b"").unwrap();
    let r = blocker.read_response(false).expect("the blocked response");
    assert_eq!((r.status, r.text().as_str()), (200, "released"));
    for c in &mut waiting {
        let r = c.read_response(false).expect("a queued client's response");
        assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
    }
    eventually("listen_queue back to 0", PROMPT, || {
        let d = raw_stats(&addr);
        match (d.int("listen_queue"), d.int("sockets.0.queue"), d.int("load")) {
            (0, 0, 0) => Ok(()),
            other => Err(format!("(listen_queue, socket queue, load) = {other:?}")),
        }
    });
}

/// Runs a program in a pseudo-terminal (200x50, TERM=xterm) until its
/// output contains every needle or the time is up, then kills it; prints
/// everything it wrote.
const RUN_IN_PTY: &str = r#"
import fcntl, os, pty, select, signal, struct, sys, termios, time
prog, addr, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
needles = [n.encode() for n in sys.argv[4:]]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    os.environ["TERM"] = "xterm"
    os.execv(prog, [prog, addr])
out = b""
deadline = time.monotonic() + secs
while time.monotonic() < deadline and not all(n in out for n in needles):
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;

#[test]
fn uwsgitop_shows_the_live_workers() {
    let uwsgitop = venv().join("bin/uwsgitop");
    assert!(
        uwsgitop.exists(),
        "no {}: run scripts/test (it installs uwsgitop and prometheus_client into .venv)",
        uwsgitop.display()
    );
    let server = obs_server(&["--processes", "2", "--stats", "127.0.0.1:0"]);
    let addr = endpoint(&server, "Stats");
    let kids = server.wait_for_children(2, PROMPT);
    for _ in 0..7 {
        get_ok(&server, "/", 200);
    }
    eventually("stats count 7 requests", PROMPT, || {
        match raw_stats(&addr).workers_sum("requests") {
            7 => Ok(()),
            n => Err(format!("{n}")),
        }
    });
    let mut needles = vec![
        "WID".to_string(),
        "PID".to_string(),
        "REQ".to_string(),
        "req: 7 ".to_string(),
        format!("masterpid: {}", server.pid()),
    ];
    needles.extend(kids.iter().map(|p| p.to_string()));
    let mut args = vec![uwsgitop.to_str().unwrap(), addr.as_str(), "10"];
    args.extend(needles.iter().map(String::as_str));
    let screen = python(RUN_IN_PTY, &args, b"");
    let visible = screen.replace('\x1b', "^[");
    for n in &needles {
        assert!(
            screen.contains(n.as_str()),
            "uwsgitop's screen lacks {n:?}:\n{visible}"
        );
    }
    assert!(
        !screen.contains("Traceback"),
        "uwsgitop crashed:\n{visible}"
    );
}

#[test]
fn stats_http_serves_the_same_document_over_http() {
    let raw = obs_server(&["--processes", "2", "--stats", "127.0.0.1:0"]);
    let http = obs_server(&["--processes", "2", "--stats", "127.0.0.1:0", "--stats-http"]);
    let port = endpoint_port(&http, "StatsHttp");
    let kids = http.wait_for_children(2, PROMPT);
    raw.wait_for_children(2, PROMPT);

    let r = endpoint_get(port, "/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = Json::parse(&r.text());
    assert_eq!(doc.int("pid"), i64::from(http.pid()));
    let pids: Vec<i64> = (0..doc.len("workers"))
        .map(|i| doc.int(&format!("workers.{i}.pid")))
        .collect();
    assert_eq!(
        sorted(pids),
        sorted(kids.iter().map(|&p| i64::from(p)).collect())
    );
    let raw_doc = raw_stats(&endpoint(&raw, "Stats"));
    assert_eq!(
        doc.keys(),
        raw_doc.keys(),
        "the HTTP document has the raw document's fields"
    );
}

// ---------------------------------------------------------------- metrics

#[test]
fn metrics_parse_with_prometheus_client_and_have_every_family() {
    require_module("prometheus_client");
    let server = obs_server(&["--processes", "2", "--metrics", "127.0.0.1:0"]);
    let port = endpoint_port(&server, "Metrics");
    let kids = server.wait_for_children(2, PROMPT);
    for _ in 0..3 {
        get_ok(&server, "/", 200);
    }
    get_ok(&server, "/raise", 500);
    get_ok(&server, "/status?code=404", 404);
    get_ok(&server, "/status?code=302", 302);

    let m = eventually("6 requests in the histogram", PROMPT, || {
        let m = scrape(port);
        match m.get("rwsgi_request_duration_seconds_count") {
            6.0 => Ok(m),
            n => Err(format!("count {n}")),
        }
    });
    let fam = |name: &str, kind: &str| {
        assert_eq!(
            m.families.get(name).map(String::as_str),
            Some(kind),
            "family {name}; families: {:?}",
            m.families
        )
    };
    fam("rwsgi_build_info", "gauge");
    fam("rwsgi_workers", "gauge");
    fam("rwsgi_requests", "counter");
    fam("rwsgi_request_duration_seconds", "histogram");
    fam("rwsgi_exceptions", "counter");
    fam("rwsgi_respawns", "counter");
    fam("rwsgi_harakiri", "counter");
    fam("rwsgi_listen_queue", "gauge");
    fam("rwsgi_worker_rss_bytes", "gauge");

    let version = format!("rwsgi_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(m.get(&version), 1.0);
    let states: f64 = ["starting", "idle", "busy", "stopping"]
        .iter()
        .map(|s| m.get(&format!("rwsgi_workers{{state=\"{s}\"}}")))
        .sum();
    assert_eq!(states, 2.0, "workers by state add up to --processes");
    let classes: Vec<f64> = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| m.requests(c))
        .collect();
    assert_eq!(classes, vec![0.0, 3.0, 1.0, 1.0, 1.0], "requests by class");
    assert_eq!(m.get("rwsgi_exceptions_total"), 1.0);

    // Histogram: cumulative buckets ending in +Inf == count; a positive sum.
    let buckets = m.with_prefix("rwsgi_request_duration_seconds_bucket{");
    assert!(buckets.len() >= 5, "buckets: {buckets:?}");
    let mut by_le: Vec<(f64, f64)> = buckets
        .iter()
        .map(|(k, v)| {
            let le = k.split("le=\"").nth(1).and_then(|s| s.split('"').next());
            let le = match le {
                Some("+Inf") => f64::INFINITY,
                Some(x) => x.parse().unwrap_or_else(|_| panic!("le in {k}")),
                None => panic!("no le in {k}"),
            };
            (le, *v)
        })
        .collect();
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        by_le.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets are cumulative: {by_le:?}"
    );
    assert_eq!(by_le.last().unwrap(), &(f64::INFINITY, 6.0));
    assert!(m.get("rwsgi_request_duration_seconds_sum") > 0.0);

    for cause in ["crash", "max-requests", "rss", "harakiri", "reload"] {
        assert_eq!(m.respawns(cause), 0.0, "respawns {cause}");
    }
    assert_eq!(m.get("rwsgi_harakiri_total"), 0.0);
    let lq = format!("rwsgi_listen_queue{{socket=\"127.0.0.1:{}\"}}", server.port());
    assert_eq!(m.get(&lq), 0.0);
    for pid in &kids {
        let per_worker = m.with_prefix("rwsgi_worker_rss_bytes{");
        assert!(
            per_worker
                .iter()
                .any(|(k, _)| k.contains(&format!("pid=\"{pid}\""))),
            "no rss sample for worker pid {pid}: {per_worker:?}"
        );
    }

    let other = endpoint_get(port, "/other");
    assert_eq!(other.status, 404, "{}", other.text());
}

#[test]
fn metrics_counters_move_and_survive_crashes_and_reloads() {
    require_module("prometheus_client");
    let mut server = obs_server(&[
        "--processes",
        "2",
        "--metrics",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    let port = endpoint_port(&server, "Metrics");
    let stats = endpoint(&server, "Stats");
    let kids = server.wait_for_children(2, PROMPT);
    let m0 = scrape(port);
    assert_eq!(m0.requests("2xx"), 0.0);

    const M: f64 = 7.0;
    for _ in 0..M as usize {
        get_ok(&server, "/", 200);
    }
    eventually("2xx grows by M", PROMPT, || {
        let m = scrape(port);
        match m.requests("2xx") {
            M => Ok(()),
            n => Err(format!("2xx {n}")),
        }
    });
    get_ok(&server, "/raise", 500);
    eventually("5xx and exceptions grow", PROMPT, || {
        let m = scrape(port);
        match (m.requests("5xx"), m.get("rwsgi_exceptions_total")) {
            (1.0, 1.0) => Ok(()),
            other => Err(format!("(5xx, exceptions) = {other:?}")),
        }
    });

    // A crash: counted, replaced, and the dead worker's requests kept.
    let doc = raw_stats(&stats);
    let victim_id = (0..2)
        .find(|i| doc.int(&format!("workers.{i}.pid")) == i64::from(kids[0]))
        .map(|i| doc.int(&format!("workers.{i}.id")))
        .expect("the victim in the stats");
    send_signal(kids[0], "KILL");
    eventually("a crash respawn", PROMPT, || {
        let m = scrape(port);
        match (m.respawns("crash"), m.get("rwsgi_workers{state=\"idle\"}")) {
            (1.0, 2.0) => Ok(()),
            other => Err(format!("(crash respawns, idle workers) = {other:?}")),
        }
    });
    let m = scrape(port);
    assert_eq!(
        (m.requests("2xx"), m.requests("5xx"), m.get("rwsgi_exceptions_total")),
        (M, 1.0, 1.0),
        "totals after a crash"
    );
    assert_eq!(m.get("rwsgi_request_duration_seconds_count"), M + 1.0);
    let doc = raw_stats(&stats);
    for i in 0..2 {
        let (id, pid) = (doc.int(&format!("workers.{i}.id")), doc.int(&format!("workers.{i}.pid")));
        let respawns = doc.int(&format!("workers.{i}.respawn_count"));
        if id == victim_id {
            assert_ne!(pid, i64::from(kids[0]), "the dead worker is gone from the stats");
            assert_eq!(respawns, 2, "worker {id} was spawned twice");
        } else {
            assert_eq!(respawns, 1, "worker {id} was spawned once");
        }
    }

    // A reload replaces both workers.
    server.signal("HUP");
    server.wait_for_log("reload complete", PROMPT);
    let m = eventually("reload respawns", PROMPT, || {
        let m = scrape(port);
        match m.respawns("reload") {
            2.0 => Ok(m),
            n => Err(format!("reload respawns {n}")),
        }
    });
    assert_eq!(m.respawns("crash"), 1.0);
    assert_eq!(
        (m.requests("2xx"), m.requests("5xx"), m.get("rwsgi_exceptions_total")),
        (M, 1.0, 1.0),
        "totals after a reload"
    );
    for _ in 0..3 {
        get_ok(&server, "/", 200);
    }
    eventually("new workers add to the totals", PROMPT, || {
        match scrape(port).requests("2xx") {
            n if n == M + 3.0 => Ok(()),
            n => Err(format!("2xx {n}")),
        }
    });
}

#[test]
fn metrics_count_max_requests_recycling() {
    require_module("prometheus_client");
    let mut server = obs_server(&[
        "--processes",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--max-requests",
        "5",
        "--min-worker-lifetime",
        "0",
    ]);
    let port = endpoint_port(&server, "Metrics");
    const N: usize = 12;
    for _ in 0..N {
        get_ok(&server, "/", 200);
    }
    server.wait_for_log("stopped", PROMPT);
    let m = eventually("max-requests respawns and all requests", PROMPT, || {
        let m = scrape(port);
        match (m.respawns("max-requests"), m.requests("2xx")) {
            (r, n) if r >= 1.0 && n == N as f64 => Ok(m),
            other => Err(format!("(max-requests respawns, 2xx) = {other:?}")),
        }
    });
    let live: f64 = m
        .with_prefix("rwsgi_worker_requests_total{")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert!(
        live < N as f64,
        "a worker retired, so live workers served fewer than {N} ({live}); the total keeps them"
    );
    assert_eq!(m.respawns("crash"), 0.0);
}

#[test]
fn metrics_count_harakiri() {
    require_module("prometheus_client");
    let dir = TempDir::new("harakiri");
    let never = dir.path().join("never-created");
    let mut server = obs_server(&[
        "--processes",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--harakiri",
        "1",
    ]);
    let port = endpoint_port(&server, "Metrics");
    let mut c = server.connect();
    let target = format!("/block?until={}", never.display());
    c.send(&request("GET", &target, &[], b""));
    server.wait_for_log("harakiri:", PROMPT);
    assert!(c.read_response(false).is_err(), "the killed request has no response");
    eventually("harakiri counted", PROMPT, || {
        let m = scrape(port);
        match (
            m.get("rwsgi_harakiri_total"),
            m.respawns("harakiri"),
            m.respawns("crash"),
            m.get("rwsgi_workers{state=\"idle\"}"),
        ) {
            (1.0, 1.0, 0.0, 1.0) => Ok(()),
            other => Err(format!("(harakiri, respawns harakiri, crash, idle) = {other:?}")),
        }
    });
    get_ok(&server, "/", 200);
}

/// A scraper that sends its request and then half-closes its side (as
/// `nc -N` or a shell health check does) still gets the answer.
#[test]
fn endpoints_answer_a_request_followed_by_a_half_close() {
    let server = obs_server(&[
        "--processes",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
        "--stats-http",
    ]);
    for kind in ["Metrics", "StatsHttp"] {
        let port = endpoint_port(&server, kind);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(PROMPT)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.starts_with(b"HTTP/1.1 200 "),
            "{kind}: a complete request then FIN got {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// The endpoints live in the master's loop: clients that connect and send
/// nothing (or half a request) must not delay other scrapes or supervision,
/// and are dropped after a while.
#[test]
fn stalled_endpoint_clients_do_not_stall_the_master() {
    require_module("prometheus_client");
    let server = obs_server(&["--processes", "1", "--metrics", "127.0.0.1:0"]);
    let port = endpoint_port(&server, "Metrics");
    let kids = server.wait_for_children(1, PROMPT);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial.write_all(b"GET /metr").unwrap();
    idle.push(partial);

    let t = Instant::now();
    let m = scrape(port);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a scrape behind stalled clients took {:?}",
        t.elapsed()
    );
    assert_eq!(m.get("rwsgi_workers{state=\"idle\"}"), 1.0);
    send_signal(kids[0], "KILL");
    eventually("the crashed worker is replaced", PROMPT, || {
        let now = server.children();
        if now.len() == 1 && now != kids {
            Ok(())
        } else {
            Err(format!("children {now:?}"))
        }
    });
    for s in &mut idle {
        s.set_read_timeout(Some(PROMPT)).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a stalled client is closed without an answer");
    }
}

// ---------------------------------------------------------------- access log

/// Waits for the access-log line containing `needle` (the request's URI).
fn access_line(server: &mut Server, needle: &str) -> String {
    server.wait_for_log(needle, PROMPT)
}

#[test]
fn log_format_combined_is_apache_combined() {
    let mut server = obs_server(&["--processes", "1", "--log-format", "combined"]);
    let mut c = server.connect();
    let r = c.call(
        "GET",
        "/c?x=1",
        &[
            "Referer: http://ref.example/page",
            "User-Agent: obs-agent/1.0 (combined)",
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    get_ok(&server, "/c2", 200);
    let line = access_line(&mut server, "/c?x=1");
    let bare = access_line(&mut server, "/c2");
    // Checked with Python's re and strptime: the shape and the time itself.
    let check = r#"
import re, sys, time
from datetime import datetime, timezone
pat, line = sys.argv[1], sys.argv[2]
m = re.fullmatch(pat, line)
if not m:
    sys.exit("no match: %r" % line)
t = datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z")
if abs(t.timestamp() - time.time()) > 120:
    sys.exit("time %s is not now" % m.group(1))
print("ok")
"#;
    let time = r"\[(\d{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\]";
    let full = format!(
        r#"127\.0\.0\.1 - - {time} "GET /c\?x=1 HTTP/1\.1" 200 13 "http://ref\.example/page" "obs-agent/1\.0 \(combined\)""#
    );
    assert_eq!(python(check, &[&full, &line], b"").trim(), "ok", "{line}");
    let without = format!(r#"127\.0\.0\.1 - - {time} "GET /c2 HTTP/1\.1" 200 13 "-" "-""#);
    assert_eq!(python(check, &[&without, &bare], b"").trim(), "ok", "{bare}");
}

#[test]
fn log_format_json_is_one_escaped_object_per_line() {
    let mut server = obs_server(&["--processes", "1", "--log-format", "json"]);
    let worker = server.wait_for_children(1, PROMPT)[0];
    let agent = r#"evil "quoted" agent \ with backslash"#;
    let ua = format!("User-Agent: {agent}");
    let r = server
        .connect()
        .call("GET", "/j?a=1", &[&ua, "Referer: http://r.example/"], b"");
    assert_eq!(r.status, 200);
    get_ok(&server, "/j2", 200);
    get_ok(&server, "/raise", 500);
    access_line(&mut server, "/raise\"");

    let lines: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| !l.starts_with('[') && !l.starts_with("Traceback") && !l.starts_with(' '))
        .collect();
    let objects: Vec<&String> = lines.iter().filter(|l| l.starts_with('{')).collect();
    assert_eq!(objects.len(), 3, "one JSON line per request: {lines:#?}");
    let docs: Vec<Json> = objects.iter().map(|l| Json::parse(l)).collect();
    for (d, l) in docs.iter().zip(&objects) {
        assert!(d.is_object(""), "not a JSON object: {l}");
    }
    let d = &docs[0];
    assert_eq!(d.string("uagent"), agent, "{}", objects[0]);
    assert_eq!(d.string("referer"), "http://r.example/");
    assert_eq!(d.string("method"), "GET");
    assert_eq!(d.string("uri"), "/j?a=1");
    assert_eq!(d.string("proto"), "HTTP/1.1");
    assert_eq!(d.string("addr"), "127.0.0.1");
    assert_eq!(d.string("host"), "localhost");
    assert_eq!(d.int("status"), 200);
    assert_eq!(d.int("size"), 13);
    assert_eq!(d.int("pid"), i64::from(worker));
    assert_eq!(d.int("wid"), 1);
    assert!((d.int("epoch") - unix_now()).abs() < 120);
    for key in ["msecs", "micros", "ltime", "iso"] {
        d.raw(key);
    }
    assert_eq!(docs[1].string("uagent"), "-");
    assert_eq!(docs[2].int("status"), 500);
}

#[test]
fn log_format_template_renders_exactly() {
    let mut server = obs_server(&[
        "--processes",
        "1",
        "--log-format",
        "%(method) %(uri) %(status) %(uagent)",
    ]);
    let r = server
        .connect()
        .call("GET", "/tpl?a=b", &["User-Agent: tpl-agent/2.0"], b"");
    assert_eq!(r.status, 200);
    let line = access_line(&mut server, "/tpl?a=b");
    assert_eq!(line, "GET /tpl?a=b 200 tpl-agent/2.0");
}

#[test]
fn log_format_template_renders_every_variable() {
    let vars = [
        "addr", "method", "uri", "proto", "status", "size", "msecs", "micros", "pid", "wid",
        "host", "uagent", "referer", "ltime", "epoch", "iso",
    ];
    let format: Vec<String> = vars.iter().map(|v| format!("%({v})")).collect();
    let format = format!("ALL|{}", format.join("|"));
    let mut server = obs_server(&["--processes", "1", "--log-format", &format]);
    let worker = server.wait_for_children(1, PROMPT)[0];
    get_ok(&server, "/all-vars", 200);
    let line = access_line(&mut server, "ALL|");
    let fields: Vec<&str> = line.split('|').skip(1).collect();
    assert_eq!(fields.len(), vars.len(), "{line}");
    let f: BTreeMap<&str, &str> = vars.iter().copied().zip(fields).collect();
    assert_eq!(f["addr"], "127.0.0.1");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["uri"], "/all-vars");
    assert_eq!(f["proto"], "HTTP/1.1");
    assert_eq!(f["status"], "200");
    assert_eq!(f["size"], "13");
    assert_eq!(f["pid"], worker.to_string());
    assert_eq!(f["wid"], "1");
    assert_eq!(f["host"], "localhost");
    assert_eq!(f["uagent"], "-");
    assert_eq!(f["referer"], "-");
    let micros: u64 = f["micros"].parse().expect("micros is an integer");
    assert_eq!(
        f["msecs"],
        format!("{}.{:03}", micros / 1000, micros % 1000),
        "msecs is micros in ms"
    );
    // The three clocks agree with each other and with now.
    let check = r#"
import sys, time
from datetime import datetime
ltime, epoch, iso = sys.argv[1:4]
a = datetime.strptime(ltime, "%d/%b/%Y:%H:%M:%S %z").timestamp()
b = float(epoch)
c = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
if not iso.endswith("Z") or len(iso) != 24:
    sys.exit("iso %r" % iso)
if max(a, b, c) - min(a, b, c) > 2 or abs(b - time.time()) > 120:
    sys.exit("clocks disagree: %r %r %r" % (ltime, epoch, iso))
print("ok")
"#;
    let out = python(check, &[f["ltime"], f["epoch"], f["iso"]], b"");
    assert_eq!(out.trim(), "ok", "{line}");
}

#[test]
fn log_format_with_an_unknown_placeholder_fails_at_startup() {
    let app = app("obs_app.py");
    let mut server = Server::spawn(&[
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
        "--log-format",
        "%(method) %(bogus)",
    ]);
    let status = server.wait_exit(STARTUP);
    assert_eq!(status.code(), Some(2), "{status}; log:\n{}", server.log_text());
    let log = server.log_text();
    assert!(log.contains("%(bogus)"), "the error names the placeholder:\n{log}");
    assert!(!log.contains("spawned worker"), "{log}");
}

#[test]
fn trusted_proxies_that_do_not_parse_fail_at_startup() {
    let app = app("obs_app.py");
    let mut server = Server::spawn(&[
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
        "--log-x-forwarded-for",
        "--trusted-proxies",
        "10.0.0.0/8,not-an-ip",
    ]);
    let status = server.wait_exit(STARTUP);
    assert_eq!(status.code(), Some(2), "{status}; log:\n{}", server.log_text());
    let log = server.log_text();
    assert!(log.contains("not-an-ip"), "the error names the bad entry:\n{log}");
}

#[test]
fn log_x_forwarded_for_trusts_ipv6_loopback_by_default() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; nothing to test");
        return;
    }
    let app = app("obs_app.py");
    let mut server = Server::start_exact(&[
        "--http",
        "[::1]:0",
        "--wsgi-file",
        &app,
        "--log-x-forwarded-for",
        "--log-format",
        "ADDR %(addr) %(uri)",
    ]);
    let port = server.port();
    let mut s = TcpStream::connect(("::1", port)).expect("connect to [::1]");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(&request(
        "GET",
        "/xff6",
        &["X-Forwarded-For: 2001:db8::7", "Connection: close"],
        b"",
    ))
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(access_line(&mut server, "/xff6"), "ADDR 2001:db8::7 /xff6");
}

#[test]
fn log_x_forwarded_for_only_from_trusted_proxies() {
    let xff = "X-Forwarded-For: 203.0.113.7, 198.51.100.2";
    let fmt = "ADDR %(addr) %(uri)";
    // Default trusted proxies include 127.0.0.1, the test's address.
    let mut trusted = obs_server(&["--log-x-forwarded-for", "--log-format", fmt]);
    let r = trusted.connect().call("GET", "/xff1", &[xff], b"");
    assert_eq!(r.status, 200);
    get_ok(&trusted, "/xff0", 200);
    assert_eq!(access_line(&mut trusted, "/xff1"), "ADDR 203.0.113.7 /xff1");
    assert_eq!(access_line(&mut trusted, "/xff0"), "ADDR 127.0.0.1 /xff0");

    let mut untrusted = obs_server(&[
        "--log-x-forwarded-for",
        "--trusted-proxies",
        "10.0.0.0/8",
        "--log-format",
        fmt,
    ]);
    let r = untrusted.connect().call("GET", "/xff2", &[xff], b"");
    assert_eq!(r.status, 200);
    assert_eq!(access_line(&mut untrusted, "/xff2"), "ADDR 127.0.0.1 /xff2");

    let mut off = obs_server(&["--log-format", fmt]);
    let r = off.connect().call("GET", "/xff3", &[xff], b"");
    assert_eq!(r.status, 200);
    assert_eq!(access_line(&mut off, "/xff3"), "ADDR 127.0.0.1 /xff3");
}

#[test]
fn log_slow_logs_only_slow_requests_even_with_logging_disabled() {
    let mut server = obs_server(&[
        "--processes",
        "1",
        "--log-slow",
        "200",
        "--disable-logging",
    ]);
    get_ok(&server, "/?fast-probe=1", 200);
    get_ok(&server, "/sleep?ms=300&slow-probe=1", 200);
    let line = server.wait_for_log("slow-probe", PROMPT);
    assert!(line.contains("WARN"), "a warn-level line: {line}");
    assert!(line.contains("slow request"), "{line}");
    // One worker serves both in order: the fast one would be logged by now.
    let log = server.log_text();
    assert!(!log.contains("fast-probe"), "the fast request was logged:\n{log}");
    let access = server
        .log()
        .iter()
        .filter(|l| l.contains("\"GET "))
        .count();
    assert_eq!(access, 1, "only the slow request is logged:\n{log}");
}

// ---------------------------------------------------------------- disconnects

#[test]
fn clients_leaving_mid_response_are_not_errors() {
    require_module("prometheus_client");
    let server = obs_server(&["--processes", "1", "--metrics", "127.0.0.1:0"]);
    let port = endpoint_port(&server, "Metrics");
    let worker = server.wait_for_children(1, PROMPT);
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.set_read_timeout(Some(PROMPT)).unwrap();
        // 20 MiB in 1 KiB chunks: far more than the socket buffers hold.
        s.write_all(&request("GET", "/stream?n=20480", &[], b""))
            .unwrap();
        let mut first = [0u8; 256];
        let n = s.read(&mut first).expect("the first bytes of the stream");
        assert!(
            first[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&first[..n])
        );
        drop(s); // unread data: the kernel resets the connection
    }
    get_ok(&server, "/", 200);
    let m = eventually("every request counted", PROMPT, || {
        let m = scrape(port);
        match m.requests("2xx") {
            n if n == (ROUNDS + 1) as f64 => Ok(m),
            n => Err(format!("2xx {n}")),
        }
    });
    assert_eq!(m.get("rwsgi_exceptions_total"), 0.0, "a client leaving is no app error");
    assert_eq!(server.children(), worker, "the worker survived");
    let log = server.log();
    let noisy: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(noisy.is_empty(), "client disconnects logged as problems: {noisy:#?}");
}
