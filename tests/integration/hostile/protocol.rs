//! HTTP/1.1 features a hostile or odd client leans on: pipelined bodies,
//! chunked bodies with extensions and trailers, `Expect: 100-continue`,
//! absolute-form targets, fragments, padded header values, slow clients,
//! HEAD on a streamed body, and HTTP/1.0 streaming.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::harness::{app, Server};
use crate::http::{request, Client, Response};

fn entry<'a>(env: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(String::as_str)
}

fn read(c: &mut Client, what: &str) -> Response {
    c.read_response(false)
        .unwrap_or_else(|e| panic!("{what}: no response: {e}"))
}

#[test]
fn pipelined_requests_with_bodies_are_answered_in_order() {
    let server = Server::start(&["--wsgi-file", &app("pep_input.py")]);
    let mut c = server.connect();
    let mut batch = request("POST", "/echo", &[], b"first body\n");
    batch.extend_from_slice(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          6\r\nsecond\r\n5\r\n body\r\n0\r\n\r\n",
    );
    batch.extend(request("GET", "/read-all", &[], b""));
    c.send(&batch); // three requests in one write
    for (i, want) in [&b"first body\n"[..], b"second body", b"b''"]
        .iter()
        .enumerate()
    {
        let r = read(&mut c, &format!("pipelined response {i}"));
        assert_eq!(
            (r.status, r.text()),
            (200, String::from_utf8_lossy(want).into_owned()),
            "pipelined response {i}"
        );
    }
}

#[test]
fn chunked_body_with_extensions_and_trailers_reaches_wsgi_input() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    c.send(
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0;last=1\r\n\
          X-Trailer: smuggled\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
    );
    let env = crate::http::environ(&read(&mut c, "chunked POST"));
    assert_eq!(entry(&env, "BODY"), Some("b'hello world'"), "{env:#?}");
    assert_eq!(entry(&env, "CONTENT_LENGTH"), Some("'11'"), "{env:#?}");
    assert_eq!(entry(&env, "wsgi.input_terminated"), Some("True"));
    // Trailer fields never become request headers (RFC 9110 §6.5.1).
    for key in [
        "HTTP_X_TRAILER",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_TRANSFER_ENCODING",
    ] {
        assert!(!env.contains_key(key), "{key} in the environ: {env:#?}");
    }
    // The trailers were consumed exactly: the connection parses on.
    let r = c.get("/next");
    assert_eq!(
        entry(&crate::http::environ(&r), "PATH_INFO"),
        Some("'/next'")
    );
}

#[test]
fn expect_100_continue_with_a_chunked_body() {
    // (Content-Length + 100-continue is in protocol.rs.)
    let server = Server::start(&["--wsgi-file", &app("pep_input.py")]);
    let mut c = server.connect();
    for i in 0..2 {
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n");
        // Only the head has been sent: the interim answer must come first.
        let interim = read(&mut c, "100 Continue");
        assert_eq!(
            (interim.status, interim.version.as_str()),
            (100, "HTTP/1.1"),
            "request {i}: {interim:?}"
        );
        assert!(interim.headers.is_empty(), "{interim:?}");
        c.send(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n");
        let r = read(&mut c, "the final response");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello world"),
            "request {i}"
        );
    }
}

#[test]
fn absolute_form_fragments_and_padded_header_values() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    let cases: [(&[u8], &str, &str); 4] = [
        (
            b"GET http://example.com:8080/abs/path?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
            "'/abs/path'",
            "'q=1'",
        ),
        (
            b"GET HTTP://Example.com/upper HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "'/upper'",
            "''",
        ),
        (
            b"GET /frag?x=1#section HTTP/1.1\r\nHost: a\r\n\r\n",
            "'/frag'",
            "'x=1'",
        ),
        (
            b"GET /frag#sec?not=query HTTP/1.1\r\nHost: a\r\n\r\n",
            "'/frag'",
            "''",
        ),
    ];
    for (req, path, query) in cases {
        c.send(req);
        let env = crate::http::environ(&read(&mut c, &String::from_utf8_lossy(req)));
        let got = (entry(&env, "PATH_INFO"), entry(&env, "QUERY_STRING"));
        assert_eq!(
            got,
            (Some(path), Some(query)),
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    c.send(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Padded: \t  padded value \t \r\nX-Inner:  a  b  \r\n\r\n",
    );
    let env = crate::http::environ(&read(&mut c, "padded headers"));
    assert_eq!(entry(&env, "HTTP_X_PADDED"), Some("'padded value'"));
    assert_eq!(entry(&env, "HTTP_X_INNER"), Some("'a  b'"));
}

#[test]
fn a_slow_client_gets_408_and_does_not_block_others() {
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("hello.py"),
        "--processes",
        "1",
        "--http-timeout",
        "2",
        "--log-level",
        "debug",
    ]);
    let started = Instant::now();
    let mut slow = server.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: loc");
    for i in 0..3 {
        let mut c = server.connect();
        let r = c.call("GET", &format!("/fast{i}"), &[], b"");
        assert_eq!(r.status, 200, "client {i} while one client idles");
    }
    // The others were answered while the slow client was still waiting.
    slow.set_read_timeout(Duration::from_millis(1));
    assert!(
        !slow.closed_by_server(),
        "the slow client was closed before the others were served ({:?})",
        started.elapsed()
    );
    slow.set_read_timeout(Duration::from_secs(15));
    let r = read(&mut slow, "the slow client");
    let took = started.elapsed();
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(slow.closed_by_server(), "408 without closing");
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_secs(8),
        "408 after {took:?} with --http-timeout 2"
    );
    server.wait_for_log("not complete within --http-timeout", Duration::from_secs(5));
}

#[test]
fn head_of_a_streamed_body_sends_no_body_bytes() {
    let server = Server::start(&["--wsgi-file", &app("pep_response.py")]);
    let mut c = server.connect();
    let r = c.call("HEAD", "/stream", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    // A stray body byte would be read here as the next status line.
    let r = c.get("/after-head");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let r = c.get("/stream");
    assert_eq!(r.text(), "one two three");
}

#[test]
fn http10_keepalive_gets_a_close_delimited_stream_and_a_close() {
    // (Plain HTTP/1.0 streaming is in protocol.rs.) The client asks for
    // keep-alive, but a body without a length can only end with the close.
    let server = Server::start(&["--wsgi-file", &app("pep_response.py")]);
    let mut c = server.connect();
    c.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = read(&mut c, "HTTP/1.0 stream");
    assert_eq!((r.status, r.version.as_str()), (200, "HTTP/1.0"), "{r:?}");
    assert_eq!(r.header("Transfer-Encoding"), None, "{r:?}");
    assert_eq!(r.header("Content-Length"), None, "{r:?}");
    assert_ne!(r.header("Connection"), Some("keep-alive"), "{r:?}");
    // read_response read to the close: the close ended the body.
    assert_eq!(r.text(), "one two three");
}
