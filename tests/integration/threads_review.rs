//! Regressions found reviewing the worker core (issue 13): streams whose
//! client leaves, streamed responses' durations, pipelined static requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{app, Server, TempDir, PROMPT};
use crate::http::request;

fn review_app(extra: &[&str]) -> Server {
    let a = app("review_app.py");
    let mut args = vec!["--wsgi-file", a.as_str(), "--processes", "1"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The milliseconds of an access-log line (`... 200 1234 56.789ms w1`).
fn logged_ms(line: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_suffix("ms")?.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line:?}"))
}

/// A client that reads the head of a long stream and leaves: the stream is
/// closed once, and the request is still logged and ended (before the fix
/// it was neither: the worker's scoreboard slot stayed "in request", so
/// `--harakiri` killed the idle worker, and the request was never counted).
#[test]
fn a_stream_whose_client_leaves_is_closed_once_and_still_logged() {
    for threads in ["1", "4"] {
        let mut server = review_app(&["--threads", threads]);
        for i in 0..3 {
            let tag = format!("gone{i}");
            let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
            let target = format!("/stream?n=2000&tag={tag}");
            s.write_all(&request("GET", &target, &[], b""))
                .expect("send");
            let mut head = [0u8; 64];
            s.set_read_timeout(Some(PROMPT)).expect("timeout");
            let n = s.read(&mut head).expect("the response starts");
            assert!(head[..n].starts_with(b"HTTP/1.1 200"), "threads {threads}");
            drop(s);
            let line = server.wait_for_log(&format!("\"GET {target} HTTP/1.1\" 200"), PROMPT);
            assert!(line.contains(" w1"), "{line}");
            server.wait_for_log(&format!("closed {tag}"), PROMPT);
        }
        let mut c = server.connect();
        assert_eq!(c.get("/").body, b"ok", "threads {threads}");
        let log = server.log_text();
        for i in 0..3 {
            let closes = log.matches(&format!("closed gone{i}\n")).count();
            assert_eq!(
                closes, 1,
                "threads {threads}: close() of gone{i}; log:\n{log}"
            );
        }
    }
}

/// A streamed response suspended on a slow client is one request: its
/// logged duration spans all its slices (it was the last slice's only).
#[test]
fn a_suspended_streams_duration_covers_the_whole_response() {
    for threads in ["1", "4"] {
        let mut server = review_app(&["--threads", threads]);
        // 32 MiB: more than loopback buffers hold, so the stream suspends.
        let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        s.write_all(&request(
            "GET",
            "/stream?n=512&tag=slow",
            &["Connection: close"],
            b"",
        ))
        .expect("send");
        s.set_read_timeout(Some(PROMPT)).expect("timeout");
        let started = Instant::now();
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        // A slow reader: about 600 ms for the whole response.
        let mut pause_at = 1usize << 20;
        loop {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            got += n;
            if got >= pause_at {
                pause_at += 2 << 20;
                thread::sleep(Duration::from_millis(40));
            }
        }
        let took = started.elapsed();
        assert!(got > 32 << 20, "threads {threads}: {got} bytes");
        let line = server.wait_for_log("\"GET /stream?n=512&tag=slow HTTP/1.1\" 200", PROMPT);
        let ms = logged_ms(&line);
        assert!(
            ms >= took.as_millis() as f64 / 2.0,
            "threads {threads}: logged {ms} ms for a response the client took {took:?} to read: {line}"
        );
    }
}

/// The resident stack of a process, from /proc (KiB).
fn stack_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmStk:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmStk")
}

/// A client pipelining many static requests while reading fast: each
/// answer drained at once went on to the next request from inside the
/// previous one, so the I/O thread's stack grew with the pipeline (to 8 MB,
/// the limit, with 200,000 requests here).
#[test]
fn pipelined_static_requests_do_not_grow_the_stack() {
    let dir = TempDir::new("review-static");
    std::fs::write(dir.path().join("a.txt"), b"static").expect("write");
    let map = format!("/s={}", dir.path().display());
    let server = review_app(&["--static-map", &map, "--disable-logging"]);
    let worker = server.wait_for_children(1, PROMPT)[0];
    let before = stack_kib(worker);
    let count = 200_000usize;
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = s.try_clone().expect("clone");
    let counting = thread::spawn(move || {
        let mut seen = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let mut tail = Vec::new();
        while seen < count {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tail.extend_from_slice(&buf[..n]);
            seen += tail.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
            // Keep a partial status line for the next read.
            let keep = tail.len().min(11);
            tail.drain(..tail.len() - keep);
        }
        seen
    });
    let batch: Vec<u8> = request("GET", "/s/a.txt", &[], b"").repeat(1000);
    for _ in 0..count / 1000 {
        s.write_all(&batch).expect("send (the worker died?)");
    }
    let seen = counting.join().expect("reader");
    assert_eq!(seen, count, "static answers");
    let after = stack_kib(worker);
    assert!(
        after < before + 1024,
        "the worker's stack grew from {before} KiB to {after} KiB"
    );
}

/// HEAD on an endless stream (server-sent events): nothing but the head is
/// ever sent, so the server never learnt that the client left and iterated
/// on for ever, holding the app thread (the only one with `--threads 1`).
#[test]
fn head_on_an_endless_stream_frees_the_thread() {
    for threads in ["1", "2"] {
        let mut server = review_app(&["--threads", threads]);
        let mut c = server.connect();
        // 100,000 items 10 ms apart: 1,000 s if iterated to the end.
        let r = c.call("HEAD", "/trickle?n=100000&kb=1&ms=10&tag=endless", &[], b"");
        assert_eq!(r.status, 200, "threads {threads}");
        assert!(r.body.is_empty());
        server.wait_for_log("closed endless", PROMPT);
        assert_eq!(c.get("/").body, b"ok", "threads {threads}");
    }
}

/// TERM while a stream waits for a client that reads nothing: once
/// `--http-timeout` gives up on the client, the stream is still closed
/// (with `--threads 1` the worker used to exit first, its close() job left
/// in the queue) and the request logged, then the worker exits.
#[test]
fn a_stream_given_up_on_during_a_stop_is_closed_before_the_worker_exits() {
    let mut server = review_app(&["--threads", "1", "--http-timeout", "1"]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.write_all(&request("GET", "/stream?n=2000&tag=stopping", &[], b""))
        .expect("send");
    let mut head = [0u8; 64];
    s.set_read_timeout(Some(PROMPT)).expect("timeout");
    let n = s.read(&mut head).expect("the response starts");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    server.signal("TERM");
    let status = server.wait_exit(PROMPT);
    assert!(status.success(), "{status}");
    let log = server.log_text();
    assert_eq!(log.matches("closed stopping\n").count(), 1, "log:\n{log}");
    assert!(
        log.contains("\"GET /stream?n=2000&tag=stopping HTTP/1.1\" 200"),
        "log:\n{log}"
    );
    drop(s);
}
