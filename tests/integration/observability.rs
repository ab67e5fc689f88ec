//! Observability: the uWSGI-format stats server (`--stats`, `--stats-http`,
//! read by the real `uwsgitop`), Prometheus metrics (`--metrics`, parsed by
//! the real `prometheus_client`), access-log formats and `--log-slow`, and
//! quiet client disconnects. JSON and Prometheus text are parsed by Python
//! from the test virtualenv (scripts/test installs uwsgitop and
//! prometheus_client); this file holds the helpers the three parts share.

mod access_log;
mod metrics;
mod stats;
mod threads;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{app, project_dir, Server, PROMPT};
use crate::http::{Client, Response};

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
        unquote(self.raw(path))
            .unwrap_or_else(|| panic!("{path} is {}, not a string", self.raw(path)))
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
