//! `close()` on the app's result exactly once (normal end, client gone,
//! app raising), `wsgi.file_wrapper` (sendfile and fallback), and streaming
//! that really streams. The app (etc/apps/pep_close.py) appends a line to a
//! file in a temp dir for every close() call.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{q, start};
use crate::harness::{Server, TempDir, PROMPT};

fn records(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Polls the record file until it holds `line`.
fn wait_record(path: &str, line: &str) {
    let deadline = Instant::now() + PROMPT;
    while !records(path).iter().any(|l| l == line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} recorded in {PROMPT:?}; records: {:?}",
            records(path)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Serves one more request on the (only) worker: anything the previous
/// request would still do (a second close()) has happened by its answer.
/// Waits for the barrier's own last record too, so no write of the app can
/// race the temp dir's removal.
fn barrier(server: &Server, tmp: &TempDir) {
    let rec = tmp.file("barrier");
    let _ = std::fs::remove_file(&rec);
    let r = server.connect().get(&format!("/normal?rec={}", q(&rec)));
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
    wait_record(&rec, "yielded 3");
}

/// Reads from `s` into `buf` until `done(buf)`; panics on EOF or after PROMPT.
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) -> Instant {
    let deadline = Instant::now() + PROMPT;
    let mut tmp = [0u8; 64 * 1024];
    while !done(buf) {
        assert!(
            Instant::now() < deadline,
            "timed out; got {:?}",
            String::from_utf8_lossy(buf)
        );
        let n = s.read(&mut tmp).expect("read from rwsgi");
        assert!(
            n > 0,
            "closed early; got {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    }
    Instant::now()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn close_is_called_once_after_a_normal_response() {
    let server = start("pep_close.py", &[]);
    let tmp = TempDir::new("close-normal");
    let rec = tmp.file("rec");
    let r = server.connect().get(&format!("/normal?rec={}", q(&rec)));
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
    wait_record(&rec, "close");
    barrier(&server, &tmp);
    assert_eq!(records(&rec), ["close", "yielded 3"]);
}

#[test]
fn close_is_called_once_when_the_client_disconnects_mid_response() {
    let server = start("pep_close.py", &["--log-level", "debug"]);
    let tmp = TempDir::new("close-gone");
    let rec = tmp.file("rec");
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let req = format!(
        "GET /disconnect?rec={} HTTP/1.1\r\nHost: a\r\n\r\n",
        q(&rec)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    read_until(&mut s, &mut got, |b| {
        contains(b, b"\r\n\r\n") && contains(b, b"xxxx")
    });
    drop(s); // gone after the first chunk; the app would send 400
    wait_record(&rec, "close");
    barrier(&server, &tmp);
    let recs = records(&rec);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0], "close", "{recs:?}");
    let yielded: usize = recs[1]
        .strip_prefix("yielded ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{recs:?}"));
    assert!(
        (1..400).contains(&yielded),
        "iteration went on after the client left: {recs:?}"
    );
}

#[test]
fn close_is_called_once_when_the_app_raises_mid_iteration() {
    let mut server = start("pep_close.py", &[]);
    let tmp = TempDir::new("close-raise");
    let rec = tmp.file("rec");
    let mut c = server.connect();
    c.send(&crate::http::request(
        "GET",
        &format!("/raise?rec={}", q(&rec)),
        &[],
        b"",
    ));
    let raw = c.read_to_close();
    assert!(
        contains(&raw, b"first") && !contains(&raw, b"second"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    server.wait_for_log("RuntimeError: PEP-CLOSE-RAISE", PROMPT);
    wait_record(&rec, "close");
    barrier(&server, &tmp);
    assert_eq!(records(&rec), ["close", "yielded 1"]);
}

#[test]
fn file_wrapper_sends_a_real_file_with_its_exact_length() {
    let server = start("pep_close.py", &[]);
    let tmp = TempDir::new("file-wrapper");
    let rec = tmp.file("rec");
    let data: Vec<u8> = (0..300_001u32).map(|i| (i % 253) as u8).collect();
    let file = tmp.file("data.bin");
    std::fs::write(&file, &data).unwrap();
    let target = |skip: usize| format!("/file?path={}&rec={}&skip={skip}", q(&file), q(&rec));
    let mut c = server.connect();
    for skip in [0, 1000, data.len()] {
        let r = c.get(&target(skip));
        assert_eq!(r.status, 200, "skip {skip}");
        // An exact length the app never set: the sendfile path, not chunks.
        let want_len = (data.len() - skip).to_string();
        assert_eq!(
            r.header("Content-Length"),
            Some(want_len.as_str()),
            "skip {skip}: {:?}",
            r.headers
        );
        assert_eq!(r.header("Transfer-Encoding"), None, "skip {skip}");
        assert!(
            r.body == data[skip..],
            "skip {skip}: body differs ({} bytes)",
            r.body.len()
        );
    }
    let r = c.call("HEAD", &target(0), &[], b"");
    assert_eq!(r.header("Content-Length"), Some("300001"));
    // Same connection: no stray bytes after the HEAD, exact lengths before it.
    let r = c.get(&target(7));
    assert!(r.body == data[7..]);
    barrier(&server, &tmp);
    assert_eq!(
        records(&rec),
        vec!["file-close"; 5],
        "one file close() per response"
    );
}

#[test]
fn file_wrapper_on_bytesio_falls_back_to_iteration() {
    let server = start("pep_close.py", &[]);
    let tmp = TempDir::new("file-wrapper-bytesio");
    let rec = tmp.file("rec");
    let mut c = server.connect();
    let r = c.get(&format!("/bytesio?size=2500&rec={}", q(&rec)));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Transfer-Encoding"),
        Some("chunked"),
        "{:?}",
        r.headers
    );
    let want: Vec<u8> = b"0123456789".iter().copied().cycle().take(2500).collect();
    assert!(r.body == want, "{} bytes", r.body.len());
    barrier(&server, &tmp);
    assert_eq!(records(&rec), ["file-close"]);
}

#[test]
fn a_streamed_chunk_arrives_before_the_app_continues() {
    let server = start("pep_response.py", &[]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let sent = Instant::now();
    s.write_all(b"GET /stream-sleep HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let first = read_until(&mut s, &mut got, |b| contains(b, b"first"));
    assert!(!contains(&got, b"second"), "both chunks arrived together");
    read_until(&mut s, &mut got, |b| b.ends_with(b"0\r\n\r\n"));
    let whole = sent.elapsed();
    let first = first - sent;
    // The app sleeps 1 s between its two chunks.
    assert!(
        first < Duration::from_millis(700),
        "first chunk after {first:?}: buffered, not streamed"
    );
    assert!(
        whole >= Duration::from_secs(1),
        "whole response in {whole:?}"
    );
    assert!(contains(&got, b"second"));
}
