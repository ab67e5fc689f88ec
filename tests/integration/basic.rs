//! The hello app over HTTP/1.1 and HTTP/1.0: framing, keep-alive and close.

use crate::harness::{app, Server, PROMPT};
use crate::http::request;

fn hello() -> Server {
    Server::start(&["--wsgi-file", &app("hello.py")])
}

#[test]
fn get_returns_hello_world_with_date_and_length() {
    let server = hello();
    let mut c = server.connect();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(r.header("Content-Length"), Some("13"));
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    let date = r.header("Date").expect("a Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "Date {date:?}");
    // Keep-alive is the HTTP/1.1 default: the same connection serves again.
    assert_eq!(c.get("/again").body, b"Hello, World!");
}

#[test]
fn head_has_headers_but_no_body() {
    let server = hello();
    let mut c = server.connect();
    let r = c.call("HEAD", "/", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("13"));
    // Body bytes sent after the HEAD response would break the next parse.
    let r = c.get("/");
    assert_eq!(r.status, 200, "after HEAD: {r:?}");
    assert_eq!(r.body, b"Hello, World!");
}

#[test]
fn http10_without_keepalive_is_closed_after_the_response() {
    let server = hello();
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response(false).expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.body, b"Hello, World!");
    assert!(c.closed_by_server(), "HTTP/1.0 connection left open");
}

#[test]
fn http10_keepalive_is_honoured() {
    let server = hello();
    let mut c = server.connect();
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response(false).expect("a response");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Connection"), Some("keep-alive"));
        assert_eq!(r.body, b"Hello, World!");
    }
}

#[test]
fn connection_close_is_honoured() {
    let server = hello();
    let mut c = server.connect();
    let r = c.call("GET", "/", &["Connection: close"], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed_by_server(), "Connection: close not honoured");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut server = hello();
    let mut c = server.connect();
    let mut batch = request("GET", "/1", &[], b"");
    batch.extend(request("HEAD", "/2", &[], b""));
    batch.extend(request("GET", "/3", &[], b""));
    c.send(&batch);
    let heads = [false, true, false];
    for (i, head) in heads.into_iter().enumerate() {
        let r = c.read_response(head).expect("a pipelined response");
        assert_eq!(r.status, 200, "response {i}");
        let want: &[u8] = if head { b"" } else { b"Hello, World!" };
        assert_eq!(r.body, want, "response {i}");
    }
    server.wait_for_log("\"GET /3 ", PROMPT);
    let log = server.log_text();
    let order: Vec<usize> = ["GET /1 ", "HEAD /2 ", "GET /3 "]
        .iter()
        .map(|p| {
            log.find(p)
                .unwrap_or_else(|| panic!("{p} not in the access log"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "served out of order");
}

/// A uWSGI command line keeps working: the flags for what rwsgi always does
/// are accepted, and the log says they change nothing.
#[test]
fn uwsgi_flags_for_what_rwsgi_always_does_are_accepted() {
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("hello.py"),
        "--master",
        "--die-on-term",
        "--enable-threads",
        "--need-app",
        "--lazy-apps",
        "--single-interpreter",
        "-M",
        "-T",
    ]);
    assert_eq!(server.connect().get("/").body, b"Hello, World!");
    let line = server.wait_for_log("accepted for uWSGI compatibility", PROMPT);
    for flag in [
        "--master",
        "--die-on-term",
        "--enable-threads",
        "--single-interpreter",
    ] {
        assert!(line.contains(flag), "{flag} not named: {line}");
    }
}
