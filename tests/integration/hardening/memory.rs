//! Memory and time bounds on requests being received (issue 12, item 6):
//! half-sent bodies spool to disk past the worker's --body-memory, and a
//! head dripped a byte at a time is cut at --http-timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{TempDir, PROMPT};

const MIB: usize = 1024 * 1024;

/// A process's resident set in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Bytes a process has read through read(2) and friends (rchar).
fn read_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar")
}

#[test]
fn a_flood_of_half_sent_bodies_stays_within_body_memory() {
    const CLIENTS: usize = 400;
    const SENT: usize = MIB;
    const BODY: usize = 2_000_000;
    // Spooled bodies go to a directory of the test's own.
    let spool = TempDir::new("spool");
    let server = super::start_via_shell(
        "true",
        &[("TMPDIR", spool.path().to_str().unwrap())],
        &["--body-memory", "16777216"],
    );
    let worker = super::worker(&server);
    // Warm up (first request imports what the app needs).
    assert_eq!(server.connect().get("/").status, 200);
    let rss_before = rss_kib(worker);
    let read_before = read_bytes(worker);

    let head = format!("POST /len HTTP/1.1\r\nHost: a\r\nContent-Length: {BODY}\r\n\r\n");
    let chunk = vec![b'b'; SENT];
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.set_write_timeout(Some(PROMPT)).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&chunk).unwrap();
        clients.push(s);
    }
    // Wait until the worker has read all of it.
    let want = (CLIENTS * SENT) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_bytes(worker) - read_before < want {
        assert!(
            Instant::now() < deadline,
            "the worker read {} of {want} bytes",
            read_bytes(worker) - read_before
        );
        thread::sleep(Duration::from_millis(50));
    }
    let rss_after = rss_kib(worker);
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!("worker RSS: {rss_before} KiB before, {rss_after} KiB after {CLIENTS} half-sent bodies (+{grown_mib} MiB)");
    // 16 MiB of bodies, plus each connection's read buffer (up to ~80 KiB).
    assert!(
        grown_mib < 100,
        "the worker grew by {grown_mib} MiB holding {CLIENTS} x 1 MiB of bodies"
    );

    // Spooled or not, the bodies arrive whole.
    let rest = vec![b'b'; BODY - SENT];
    for s in clients.iter_mut().take(3) {
        s.set_read_timeout(Some(PROMPT)).unwrap();
        s.write_all(&rest).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(BODY.to_string().as_bytes()) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
    drop(clients);
    assert_eq!(server.connect().get("/").status, 200);
    assert!(!server.log_text().contains("cannot spool"));
}

#[test]
fn a_dripped_head_is_cut_with_408_within_http_timeout() {
    let server = super::start(&["--http-timeout", "2"]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Drip: ")
        .unwrap();
    let started = Instant::now();
    // A byte every 500 ms: steady progress, never a complete head.
    let mut writer = s.try_clone().unwrap();
    let dripper = thread::spawn(move || {
        while started.elapsed() < Duration::from_secs(20) {
            thread::sleep(Duration::from_millis(500));
            if writer.write_all(b"a").is_err() {
                return;
            }
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "after {took:?} of dripping: {text:?}"
    );
    // --http-timeout 2 plus the 1 s sweep, with slack for a loaded machine.
    assert!(took < Duration::from_secs(8), "cut only after {took:?}");
    let _ = s.shutdown(std::net::Shutdown::Both);
    dripper.join().unwrap();
}
