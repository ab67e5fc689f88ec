//! A 1 GiB sparse file served with flat worker memory, static files on a
//! uwsgi listener, and a static file answered while the app is busy.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{Site, APP_BODY, CSS, SECRET};
use crate::harness::{app, Server, PROMPT};
use crate::uwsgi::{request_packet, uwsgi_addrs};

/// Resident memory of `pid` in KiB, from /proc.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[test]
fn a_1_gib_sparse_file_is_sent_with_flat_worker_memory() {
    const SIZE: u64 = 1 << 30;
    let site = Site::new("static-large");
    let path = site.dir.path().join("root/big.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    f.set_len(SIZE).unwrap();
    f.seek(SeekFrom::Start(SIZE - 3)).unwrap();
    f.write_all(b"END").unwrap();
    drop(f);
    let server = site.serve(&[]);
    let worker = server.wait_for_children(1, PROMPT)[0];
    // Warm up the path once, then measure.
    assert_eq!(server.connect().get("/static/sub/a.txt").status, 200);
    let before = vm_rss_kib(worker);

    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut body_start = Vec::new();
    while body_start.is_empty() {
        let n = s.read(&mut buf).expect("read the head");
        assert!(n > 0, "closed before the head");
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            body_start = head.split_off(i + 4);
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {SIZE}\r\n")),
        "{head}"
    );
    let mut got = body_start.len() as u64;
    let mut tail = body_start;
    let mut peak = before;
    let mut next_sample = 0u64;
    while got < SIZE {
        let want = ((SIZE - got) as usize).min(buf.len());
        let n = s.read(&mut buf[..want]).expect("read the body");
        assert!(n > 0, "closed after {got} of {SIZE} bytes");
        got += n as u64;
        if got >= SIZE - 3 {
            tail.extend_from_slice(&buf[..n]);
        }
        if got >= next_sample {
            peak = peak.max(vm_rss_kib(worker));
            next_sample += 64 << 20;
        }
    }
    assert!(tail.ends_with(b"END"), "the last bytes are the file's");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "worker RSS grew by {growth} KiB while sending 1 GiB ({before} KiB before, {peak} KiB peak)"
    );
    // Keep-alive survives the big response.
    let mut c = crate::http::Client::connect(server.port());
    assert_eq!(c.get("/static/app.css").text(), CSS);
}

#[test]
fn static_files_are_served_on_a_uwsgi_listener() {
    let site = Site::new("static-uwsgi");
    let a = app("sup_app.py");
    let map = site.map_arg();
    let server = Server::start_exact(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &a,
        "--static-map",
        &map,
    ]);
    let addr = uwsgi_addrs(&server)
        .into_iter()
        .next()
        .expect("a uwsgi listener");
    let call = |path: &str, extra: &[(&str, &[u8])]| {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        addr.connect()
            .call(&request_packet("GET", path, query, "HTTP/1.1", extra, b""))
    };
    let r = call("/static/app.css", &[]);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, CSS.as_bytes());
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("connection"), None, "nginx reads to the close");
    let etag = r.header("etag").unwrap().to_string();
    let r = call(
        "/static/app.css",
        &[("HTTP_IF_NONE_MATCH", etag.as_bytes())],
    );
    assert_eq!(r.status(), 304);
    let r = call("/static/sub/a.txt", &[("HTTP_RANGE", b"bytes=-2")]);
    assert_eq!((r.status(), r.body.as_slice()), (206, &b"89"[..]));
    let r = call("/static/app.css", &[("HTTP_ACCEPT_ENCODING", b"gzip")]);
    assert_eq!(r.body, b"gzip-variant");
    let r = call("/static/%2e%2e/secret.txt", &[]);
    assert_eq!(r.status(), 404);
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    let r = call("/static/missing?x=1", &[]);
    assert_eq!(r.body, APP_BODY.as_bytes());
    let r = request_packet("HEAD", "/static/app.css", "", "HTTP/1.0", &[], b"");
    let r = addr.connect().call(&r);
    assert_eq!(r.status_line, "HTTP/1.0 200 OK");
    assert!(r.body.is_empty());
}

#[test]
fn a_static_file_is_answered_while_every_app_thread_is_busy() {
    let site = Site::new("static-busy");
    let mut server = site.serve(&["--threads", "2"]);
    let _slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
            s.write_all(b"GET /sleep?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    server.wait_for_log_count("sleep-begin", 2, PROMPT);
    let started = Instant::now();
    let mut c = crate::http::Client::connect(server.port());
    c.set_read_timeout(Duration::from_secs(2));
    let r = c.get("/static/app.css");
    assert_eq!(r.text(), CSS);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the static answer waited {:?} for the app",
        started.elapsed()
    );
}
