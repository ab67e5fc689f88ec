//! HTTP/1.1 details a proxy or a real client relies on: request bodies in
//! every framing, `Expect: 100-continue`, limits, and strictness where
//! laxness is a request-smuggling risk (DESIGN §3).

use crate::harness::{app, Server, PROMPT};
use crate::http::{request, Response};

fn dump_app(extra: &[&str]) -> Server {
    let mut args = vec!["--wsgi-file".to_string(), app("environ_dump.py")];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Sends `raw` on a new connection, expects an error response of `status`
/// and the connection closed after it.
fn refused(server: &Server, raw: &[u8], status: u16) -> Response {
    let mut c = server.connect();
    c.send(raw);
    let what = String::from_utf8_lossy(raw).into_owned();
    let r = c
        .read_response(false)
        .unwrap_or_else(|e| panic!("{what:?}: no response: {e}"));
    assert_eq!(r.status, status, "{what:?}: {r:?}");
    assert_eq!(r.header("Connection"), Some("close"), "{what:?}");
    assert!(c.closed_by_server(), "{what:?}: connection left open");
    r
}

#[test]
fn large_bodies_arrive_whole() {
    // Above one read, above the head limit, and above --post-buffering (1 MiB
    // by default, so spooled to a temp file).
    let server = dump_app(&[]);
    let mut c = server.connect();
    for size in [100_000usize, 3 << 20] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let r = c.call("POST", "/echo", &[], &body);
        assert_eq!(r.status, 200, "{size} bytes");
        assert!(
            r.body == body,
            "{size} bytes sent, {} echoed (or different)",
            r.body.len()
        );
    }
}

#[test]
fn chunked_request_body() {
    let server = dump_app(&[]);
    let mut c = server.connect();
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    c.send(head);
    // In pieces, split inside the size line, the data and the last chunk.
    for piece in [
        &b"5\r\nhel"[..],
        b"lo\r\n7;ext=1\r",
        b"\n, world\r\n0",
        b"\r\n\r\n",
    ] {
        c.send(piece);
    }
    let r = c
        .read_response(false)
        .expect("a response to a chunked request");
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world"));
    // The connection stays usable: the body's end was found exactly.
    let r = c.call("POST", "/echo", &[], b"next");
    assert_eq!(r.text(), "next");
}

#[test]
fn expect_100_continue() {
    let server = dump_app(&[]);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    let interim = c.read_response(false).expect("an interim response");
    assert_eq!(interim.status, 100, "{interim:?}");
    c.send(b"hello world");
    let r = c.read_response(false).expect("the final response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
}

#[test]
fn streamed_responses_over_http10_and_http11() {
    let server = Server::start(&["--wsgi-file", &app("validate.py")]);
    // HTTP/1.1: chunked (the client decodes it).
    let mut c = server.connect();
    let r = c.get("/stream");
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.text(), "streamed body");
    // HTTP/1.0 has no chunked coding: the close ends the body.
    let mut c = server.connect();
    c.send(b"GET /stream HTTP/1.0\r\n\r\n");
    let r = c.read_response(false).expect("a response");
    assert_eq!(r.header("Transfer-Encoding"), None);
    assert_eq!((r.status, r.text().as_str()), (200, "streamed body"));
    assert!(c.closed_by_server());
}

#[test]
fn ambiguous_framing_is_refused() {
    let server = dump_app(&[]);
    let cases: [(&[u8], u16); 10] = [
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        // RFC 9112 §6.3: a coding list not ending in chunked has no knowable length.
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ];
    for (raw, status) in cases {
        refused(&server, raw, status);
    }
    // None of them reached the app.
    assert_eq!(server.connect().get("/").status, 200);
    assert!(
        !server.log_text().contains("\"POST /echo"),
        "a refused request reached the app:\n{}",
        server.log_text()
    );
}

#[test]
fn oversized_head_is_431_and_names_the_limit() {
    let mut server = dump_app(&["--buffer-size", "4096"]);
    let big = format!("X-Big: {}", "a".repeat(8000));
    refused(&server, &request("GET", "/", &[&big], b""), 431);
    server.wait_for_log("--buffer-size", PROMPT);
    // A head under the limit is fine.
    let ok = format!("X-Big: {}", "a".repeat(2000));
    assert_eq!(server.connect().call("GET", "/", &[&ok], b"").status, 200);
}

#[test]
fn body_over_limit_post_is_413() {
    let mut server = dump_app(&["--limit-post", "1000"]);
    refused(&server, &request("POST", "/echo", &[], &[b'x'; 2000]), 413);
    server.wait_for_log("--limit-post", PROMPT);
    // Chunked: the limit applies to the decoded body as it arrives.
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    refused(&server, &chunked, 413);
    // At the limit is fine.
    let r = server.connect().call("POST", "/echo", &[], &[b'z'; 1000]);
    assert_eq!((r.status, r.body.len()), (200, 1000));
}
