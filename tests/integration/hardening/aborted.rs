//! Responses the app cannot complete must not look complete (issue 12,
//! item 11), and an app Content-Length that does not fit u64 is an invalid
//! header (item 12). Behind nginx: tests/integration/nginx/aborted.rs.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::PROMPT;

/// Sends `req` and reads until the server closes: (bytes, whether the
/// connection ended with a reset rather than a clean close).
fn read_until_closed(port: u16, req: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, false),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!(
                "reading the response: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

#[test]
fn a_content_length_response_cut_short_is_reset() {
    let server = super::start(&[]);
    let (got, reset) =
        read_until_closed(server.port(), b"GET /short-cl HTTP/1.1\r\nHost: a\r\n\r\n");
    let text = String::from_utf8_lossy(&got);
    assert!(
        reset,
        "a 10-byte body for Content-Length 1000 ended with a clean close: {text:?}"
    );
}

#[test]
fn a_chunked_response_that_raises_gets_no_last_chunk_and_is_reset() {
    let mut server = super::start(&[]);
    let (got, reset) = read_until_closed(
        server.port(),
        b"GET /stream-raise HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("\r\n0\r\n\r\n"),
        "the cut response was terminated as complete: {text:?}"
    );
    assert!(reset, "the cut response ended with a clean close: {text:?}");
    server.wait_for_log("raised after the first chunk", PROMPT);
    // The worker serves on.
    let mut c = server.connect();
    c.set_read_timeout(Duration::from_secs(10));
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn an_app_content_length_beyond_u64_is_a_500_and_a_log_line() {
    let mut server = super::start(&[]);
    let r = server.connect().get("/huge-cl");
    assert_eq!(r.status, 500, "{:?}", r.headers);
    let lengths = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .count();
    assert!(lengths <= 1, "{:?}", r.headers);
    assert!(
        !r.text().contains('x'),
        "the app's body went out: {:?}",
        r.text()
    );
    server.wait_for_log("is too large (more than 2^64-1 bytes)", PROMPT);
}
