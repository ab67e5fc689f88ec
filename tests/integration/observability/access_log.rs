//! Access-log formats (default, combined, json, templates), X-Forwarded-For
//! from trusted proxies, and `--log-slow`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use super::{get_ok, obs_server, python, unix_now, Json};
use crate::harness::{app, Server, PROMPT, STARTUP};
use crate::http::request;

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
    assert_eq!(
        python(check, &[&without, &bare], b"").trim(),
        "ok",
        "{bare}"
    );
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
    assert_eq!(
        status.code(),
        Some(2),
        "{status}; log:\n{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(
        log.contains("%(bogus)"),
        "the error names the placeholder:\n{log}"
    );
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
    assert_eq!(
        status.code(),
        Some(2),
        "{status}; log:\n{}",
        server.log_text()
    );
    let log = server.log_text();
    assert!(
        log.contains("not-an-ip"),
        "the error names the bad entry:\n{log}"
    );
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
    assert!(
        out.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
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
    let mut server = obs_server(&["--processes", "1", "--log-slow", "200", "--disable-logging"]);
    get_ok(&server, "/?fast-probe=1", 200);
    get_ok(&server, "/sleep?ms=300&slow-probe=1", 200);
    let line = server.wait_for_log("slow-probe", PROMPT);
    assert!(line.contains("WARN"), "a warn-level line: {line}");
    assert!(line.contains("slow request"), "{line}");
    // One worker serves both in order: the fast one would be logged by now.
    let log = server.log_text();
    assert!(
        !log.contains("fast-probe"),
        "the fast request was logged:\n{log}"
    );
    let access = server.log().iter().filter(|l| l.contains("\"GET ")).count();
    assert_eq!(access, 1, "only the slow request is logged:\n{log}");
}
