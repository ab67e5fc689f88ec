//! Hostile and malformed requests over raw TCP: each one gets its status and
//! a closed connection, the log says why, and the worker keeps serving.
//! Protocol features that hostile clients lean on (pipelining, chunked
//! bodies, 100-continue, slow clients, ...) are in `hostile/protocol.rs`.

mod protocol;

use std::time::{Duration, Instant};

use crate::harness::{app, Server, PROMPT};

/// One row of the table: a request, the status it must get, and a fragment
/// the log line that refuses it must contain.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    reason: &'static str,
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A POST with a body; `headers` are complete header lines (CRLF included).
fn post(headers: &str, body: &[u8]) -> Vec<u8> {
    cat(&[
        b"POST / HTTP/1.1\r\nHost: a\r\n",
        headers.as_bytes(),
        b"\r\n",
        body,
    ])
}

/// A chunked POST whose body is `chunks`.
fn chunked(chunks: &[u8]) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", chunks)
}

/// A GET whose head is `line` + a Host header + `headers` (raw bytes).
fn get_with(line: &[u8], headers: &[u8]) -> Vec<u8> {
    cat(&[line, b"\r\nHost: a\r\n", headers, b"\r\n"])
}

/// The limits the table runs under (the rows that test them depend on these).
const SERVER_ARGS: [&str; 10] = [
    "--processes",
    "1",
    "--buffer-size",
    "4096",
    "--max-headers",
    "10",
    "--limit-post",
    "1000",
    "--log-level",
    "debug",
];

#[rustfmt::skip]
fn table() -> Vec<Case> {
    let long_path = "a".repeat(5000);
    let big_header = format!("X-Big: {}\r\n", "b".repeat(900));
    let many_headers: String = (0..12).map(|i| format!("X-H{i}: v\r\n")).collect();
    let case = |name, request, status, reason| Case {
        name,
        request,
        status,
        reason,
    };
    let both = "both Content-Length and Transfer-Encoding";
    let bad_cl = "invalid Content-Length";
    let te = "unsupported Transfer-Encoding";
    let size = "invalid chunk size";
    let data_crlf = "chunk data not followed by CRLF";
    let line = "in the request line";
    let name = "header name";
    let value = "header value";
    let bare_lf = "bare LF in request head";
    let malformed = "malformed request line";
    vec![
        // Framing that a proxy in front could read differently: smuggling.
        case("CL and TE", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400, both),
        case("TE and CL", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), 400, both),
        case("TE and CL 0", post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", b"0\r\n\r\n"), 400, both),
        case("two different CLs", post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), 400, "conflicting Content-Length"),
        case("CL list", post("Content-Length: 5, 6\r\n", b"hello!"), 400, bad_cl),
        case("non-numeric CL", post("Content-Length: abc\r\n", b"abc"), 400, bad_cl),
        case("signed CL", post("Content-Length: +5\r\n", b"hello"), 400, bad_cl),
        case("negative CL", post("Content-Length: -1\r\n", b""), 400, bad_cl),
        case("huge CL", post("Content-Length: 99999999999999999999999\r\n", b""), 400, bad_cl),
        case("hex CL", post("Content-Length: 0x5\r\n", b"hello"), 400, bad_cl),
        case("CL with a space inside", post("Content-Length: 1 0\r\n", b"0123456789"), 400, bad_cl),
        case("empty CL", post("Content-Length: \r\n", b""), 400, bad_cl),
        // RFC 9112 §6.3: not ending in chunked means no knowable length: 400.
        case("TE gzip", post("Transfer-Encoding: gzip\r\n", b""), 400, "does not end in chunked"),
        case("TE chunked, gzip", post("Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), 400, "does not end in chunked"),
        case("TE gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 501, te),
        // RFC 9112 §6.1: chunked at most once, whether in one field or two.
        case("TE chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), 400, "chunked more than once"),
        case("TE chunked twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400, "chunked more than once"),
        case("TE chunked, then gzip, chunked", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 400, "chunked more than once"),
        case("TE gzip, then chunked", post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 501, te),
        case("empty TE", post("Transfer-Encoding: \r\n", b""), 400, "empty Transfer-Encoding"),
        case("TE on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400, "Transfer-Encoding on HTTP/1.0"),
        // Malformed chunked bodies.
        case("chunk size -5", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400, size),
        case("chunk size 0x5", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400, size),
        case("chunk size 5 5", chunked(b"5 5\r\nhello\r\n0\r\n\r\n"), 400, size),
        case("chunk size g", chunked(b"g\r\nhello\r\n0\r\n\r\n"), 400, size),
        case("empty chunk size", chunked(b"\r\nhello\r\n0\r\n\r\n"), 400, size),
        case("chunk size overflow", chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400, "chunk size too large"),
        case("chunk data longer than its size", chunked(b"5\r\nhello, world\r\n0\r\n\r\n"), 400, data_crlf),
        case("bare LF after chunk data", chunked(b"5\r\nhello\n0\r\n\r\n"), 400, data_crlf),
        case("bare LF after chunk size", chunked(b"5\nhello\r\n0\r\n\r\n"), 400, "bare LF in chunk size line"),
        case("CTL in chunk extension", chunked(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), 400, "control character in chunk extension"),
        case("obs-fold in trailers", chunked(b"0\r\nX-T: a\r\n b\r\n\r\n"), 400, "obs-fold in trailer section"),
        // Head syntax.
        case("obs-fold", get_with(b"GET / HTTP/1.1", b"X-A: a\r\n b\r\n"), 400, "obs-fold"),
        case("space before colon", get_with(b"GET / HTTP/1.1", b"X-A : a\r\n"), 400, "whitespace between a header name and its colon"),
        case("tab before colon", get_with(b"GET / HTTP/1.1", b"X-A\t: a\r\n"), 400, "whitespace between a header name and its colon"),
        case("NUL in target", get_with(b"GET /a\x00b HTTP/1.1", b""), 400, line),
        case("CTL in target", get_with(b"GET /a\x01b HTTP/1.1", b""), 400, line),
        case("DEL in target", get_with(b"GET /a\x7fb HTTP/1.1", b""), 400, line),
        case("NUL in header name", get_with(b"GET / HTTP/1.1", b"X-A\x00B: a\r\n"), 400, name),
        case("CTL in header name", get_with(b"GET / HTTP/1.1", b"X-A\x01B: a\r\n"), 400, name),
        case("header without colon", get_with(b"GET / HTTP/1.1", b"NoColon\r\n"), 400, name),
        case("empty header name", get_with(b"GET / HTTP/1.1", b": a\r\n"), 400, name),
        case("NUL in header value", get_with(b"GET / HTTP/1.1", b"X-A: a\x00b\r\n"), 400, value),
        case("CTL in header value", get_with(b"GET / HTTP/1.1", b"X-A: a\x01b\r\n"), 400, value),
        case("bare CR in header value", get_with(b"GET / HTTP/1.1", b"X-A: a\rb\r\n"), 400, value),
        case("bare LF after request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n".to_vec(), 400, bare_lf),
        case("bare LF after a header", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n".to_vec(), 400, bare_lf),
        case("head ended by bare LFs", b"GET / HTTP/1.1\r\nHost: a\n\n".to_vec(), 400, bare_lf),
        case("missing Host on HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, "missing Host"),
        case("two Host headers", get_with(b"GET / HTTP/1.1", b"Host: a\r\n"), 400, "more than one Host"),
        case("two different Hosts", get_with(b"GET / HTTP/1.1", b"host: evil.example\r\n"), 400, "more than one Host"),
        // Request line and version (RFC 9112 §2.3, §3): a well-formed
        // HTTP-version we do not serve is 505; a malformed line is 400.
        case("HTTP/2.0", get_with(b"GET / HTTP/2.0", b""), 505, "HTTP version not supported"),
        case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505, "HTTP version not supported"),
        case("HTTP/0.9 version", b"GET / HTTP/0.9\r\n\r\n".to_vec(), 505, "HTTP version not supported"),
        case("HTTP/0.9 request (no version)", b"GET /\r\n\r\n".to_vec(), 400, malformed),
        case("lowercase http/1.1", get_with(b"GET / http/1.1", b""), 400, malformed),
        case("two spaces after the method", get_with(b"GET  / HTTP/1.1", b""), 400, malformed),
        case("two spaces before the version", get_with(b"GET /  HTTP/1.1", b""), 400, malformed),
        case("space inside the target", get_with(b"GET /a b HTTP/1.1", b""), 400, malformed),
        case("space after the version", get_with(b"GET / HTTP/1.1 ", b""), 400, "bad request: "),
        case("invalid byte in method", get_with(b"G(T / HTTP/1.1", b""), 400, malformed),
        case("8-bit byte in method", get_with(b"G\xc9T / HTTP/1.1", b""), 400, malformed),
        case("CTL in method", get_with(b"G\x01T / HTTP/1.1", b""), 400, line),
        // Limits: each names the option that raises it.
        case("absurdly long method", "A".repeat(6000).into_bytes(), 414, "--buffer-size"),
        case("long request line, unfinished", format!("GET /{long_path}").into_bytes(), 414, "--buffer-size"),
        case("long request line, whole request", get_with(format!("GET /{long_path} HTTP/1.1").as_bytes(), b""), 414, "--buffer-size"),
        case("header section too large", get_with(b"GET / HTTP/1.1", big_header.repeat(5).as_bytes()), 431, "--buffer-size"),
        case("too many headers", get_with(b"GET / HTTP/1.1", many_headers.as_bytes()), 431, "--max-headers"),
        case("CL over --limit-post", post("Content-Length: 1001\r\n", b""), 413, "--limit-post"),
        case("CL over --limit-post, Expect 100-continue", post("Content-Length: 1001\r\nExpect: 100-continue\r\n", b""), 413, "--limit-post"),
        case("chunked body over --limit-post", chunked(&cat(&[b"4b0\r\n", &[b'x'; 1200], b"\r\n0\r\n\r\n"])), 413, "--limit-post"),
        case("Expect: something-else", get_with(b"GET / HTTP/1.1", b"Expect: something-else\r\n"), 417, "unsupported Expect"),
        // Issue 12's strict rules (RFC 9112 §2.2, §3.2, §7.1.2; RFC 9110 §5.3, §6.5.1).
        case("Content-Length in trailers", chunked(b"0\r\nContent-Length: 5\r\n\r\n"), 400, "not allowed in trailers"),
        case("Host in trailers", chunked(b"0\r\nhost: evil.example\r\n\r\n"), 400, "not allowed in trailers"),
        case("Transfer-Encoding in trailers", chunked(b"0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, "not allowed in trailers"),
        case("Authorization in trailers", chunked(b"0\r\nAuthorization: Basic eA==\r\n\r\n"), 400, "not allowed in trailers"),
        case("two empty lines before the request", cat(&[b"\r\n\r\n", &get_with(b"GET / HTTP/1.1", b"")]), 400, "more than one empty line"),
        case("* for GET", get_with(b"GET * HTTP/1.1", b""), 400, "for OPTIONS only"),
        case("authority-form for GET", get_with(b"GET example.com:80 HTTP/1.1", b""), 400, "for CONNECT only"),
        case("CONNECT to a path", get_with(b"CONNECT /x HTTP/1.1", b""), 400, "authority-form"),
        case("relative target", get_with(b"GET foo/bar HTTP/1.1", b""), 400, "neither /path"),
        case("raw UTF-8 in target", get_with("GET /caf\u{e9} HTTP/1.1".as_bytes(), b""), 400, "0x80"),
        case("two different Content-Types", post("Content-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 0\r\n", b""), 400, "more than one Content-Type"),
    ]
}

fn refusals(server: &Server) -> Vec<String> {
    server
        .log()
        .into_iter()
        .filter(|l| l.contains("refused a request"))
        .collect()
}

/// Sends one case on a fresh connection; returns what went wrong, if anything.
fn check(server: &Server, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let logged_before = refusals(server).len();
    let mut c = server.connect();
    c.set_read_timeout(Duration::from_secs(10));
    c.send(&case.request);
    match c.read_response(false) {
        Err(e) => problems.push(format!("no response: {e}")),
        Ok(r) => {
            if r.status != case.status {
                problems.push(format!("status {} (want {})", r.status, case.status));
            }
            if r.header("Connection") != Some("close") {
                problems.push(format!("no Connection: close in {:?}", r.headers));
            }
            if !c.closed_by_server() {
                problems.push("connection left open".into());
            }
        }
    }
    // The refusal is logged (before the answer is sent) with a reason.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let lines = refusals(server);
        if lines.len() > logged_before {
            break Some(lines[logged_before].clone());
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    match line {
        None => problems.push("no \"refused a request\" log line".into()),
        Some(l) if !l.contains(case.reason) => {
            problems.push(format!("log line {l:?} lacks {:?}", case.reason))
        }
        Some(_) => {}
    }
    problems
}

#[test]
fn hostile_requests_get_their_status_and_are_closed() {
    let hello = app("hello.py");
    let mut args = vec!["--wsgi-file", hello.as_str()];
    args.extend_from_slice(&SERVER_ARGS);
    let server = Server::start(&args);
    let workers = server.wait_for_children(1, PROMPT);
    let cases = table();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let problems = check(&server, case);
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    // Still serving, on the same worker.
    let r = server.connect().get("/after-the-table");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    assert_eq!(server.children(), workers, "the worker was replaced");
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were mishandled:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
