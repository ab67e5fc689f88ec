//! `--threads N`: app threads per worker, and the I/O thread that keeps slow
//! clients from holding them (with `--threads 1` too).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{app, Server, PROMPT};
use crate::http::{request, Client};

fn threads_app(extra: &[&str]) -> Server {
    let a = app("threads_app.py");
    let mut args = vec!["--wsgi-file", a.as_str()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Sends a request on a raw socket and returns it (for requests whose
/// response the test reads later, or never).
fn send_raw(server: &Server, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.write_all(&request("GET", target, &[], b""))
        .expect("send");
    s
}

/// Asserts `target` is answered 200 within `within` on a new connection.
fn answered_within(server: &Server, target: &str, within: Duration) {
    let started = Instant::now();
    let mut c = server.connect();
    c.set_read_timeout(within + Duration::from_secs(2));
    let r = c.get(target);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < within,
        "{target} took {:?} (limit {within:?})",
        started.elapsed()
    );
}

#[test]
fn a_request_waiting_in_one_thread_does_not_delay_another() {
    let mut server = threads_app(&["--processes", "1", "--threads", "4"]);
    let _slow = send_raw(&server, "/sleep?ms=5000");
    server.wait_for_log("sleep-begin", PROMPT);
    // The same worker (the only one) answers on another thread at once.
    answered_within(&server, "/", Duration::from_secs(1));
    // Keep-alive requests on one connection go to any free thread.
    let mut c = server.connect();
    for _ in 0..20 {
        assert_eq!(c.get("/").body, b"ok");
    }
}

#[test]
fn threads_are_real_python_threads_whose_locals_survive_between_requests() {
    let server = threads_app(&["--processes", "1", "--threads", "3"]);
    let mut c = server.connect();
    let mut most = 0;
    for _ in 0..30 {
        let text = c.get("/local").text();
        let mut parts = text.split(' ');
        let name = parts.next().unwrap_or_default().to_string();
        let n: u32 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(name.starts_with("rwsgi-worker-1-thread-"), "{text}");
        assert_eq!(parts.next(), Some("True"), "wsgi.multithread: {text}");
        most = most.max(n);
    }
    assert!(
        most >= 2,
        "no thread saw its threading.local again ({most})"
    );
    let names = c.get("/threads").text();
    for t in 1..=3 {
        assert!(
            names.contains(&format!("rwsgi-worker-1-thread-{t}")),
            "{names}"
        );
    }
    let one = threads_app(&["--threads", "1"]);
    let text = one.connect().get("/local").text();
    assert!(
        text.ends_with(" False"),
        "wsgi.multithread with one thread: {text}"
    );
}

#[test]
fn sixty_four_keepalive_clients_on_two_workers_of_eight_threads_all_answered() {
    let server = threads_app(&["--processes", "2", "--threads", "8"]);
    let port = server.port();
    let started = Instant::now();
    let clients: Vec<_> = (0..64)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.set_read_timeout(Duration::from_secs(20));
                (0..10)
                    .map(|_| c.get("/sleep?ms=20").status)
                    .filter(|&s| s == 200)
                    .count()
            })
        })
        .collect();
    let ok: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(ok, 640, "every request of every client answered 200");
    // 640 requests of 20 ms on 16 threads: 0.8 s of waiting at best;
    // a server serving one request per worker at a time needs 6.4 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Clients that never read an 8 MB response — buffered or streamed — cost a
/// buffer, not the worker: with one thread, and with several.
#[test]
fn clients_that_never_read_do_not_delay_other_requests() {
    for threads in ["1", "4"] {
        let server = threads_app(&["--processes", "1", "--threads", threads]);
        let stuck: Vec<TcpStream> = ["/big", "/big", "/stream", "/stream"]
            .iter()
            .map(|t| send_raw(&server, t))
            .collect();
        for _ in 0..5 {
            answered_within(&server, "/", Duration::from_secs(1));
        }
        // The stuck clients still get their whole responses when they read.
        for (mut s, want) in stuck
            .into_iter()
            .zip([8usize << 20, 8 << 20, 8 << 20, 8 << 20])
        {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut got = vec![0u8; 64 << 10];
            let mut total = 0usize;
            let started = Instant::now();
            // Headers plus at least the body (chunk framing adds a little).
            while total < want && started.elapsed() < Duration::from_secs(20) {
                match s.read(&mut got) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            assert!(total >= want, "--threads {threads}: read {total} of {want}");
        }
    }
}

/// A wsgi.file_wrapper body goes out by sendfile from the I/O thread: the
/// app's thread is free while a slow client downloads.
#[test]
fn a_file_wrapper_download_to_a_slow_reader_leaves_the_thread_free() {
    let server = threads_app(&["--processes", "1", "--threads", "1"]);
    let mut slow = send_raw(&server, "/file?mb=20");
    for _ in 0..5 {
        answered_within(&server, "/", Duration::from_secs(1));
    }
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut all = Vec::new();
    slow.read_to_end(&mut all).ok();
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&all[..head_end]).to_string();
    assert!(head.contains("Content-Length: 20971520"), "{head}");
    assert_eq!(all.len() - head_end, 20 << 20, "the whole file");
}

#[test]
fn an_exception_in_one_thread_fails_only_its_request() {
    let mut server = threads_app(&["--processes", "1", "--threads", "4"]);
    let mut sleeper = send_raw(&server, "/sleep?ms=1000");
    server.wait_for_log("sleep-begin", PROMPT);
    let r = server.connect().get("/raise");
    assert_eq!(r.status, 500);
    server.wait_for_log("RuntimeError: boom in rwsgi-worker-1-thread-", PROMPT);
    let mut c = Client::from_stream(sleeper.try_clone().unwrap());
    let r = c.read_response(false).expect("the sleeper's response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"slept"[..]));
    sleeper.flush().ok();
    answered_within(&server, "/", Duration::from_secs(1));
}

#[test]
fn the_access_log_names_the_thread() {
    let mut server = threads_app(&["--processes", "1", "--threads", "2"]);
    server.connect().get("/");
    let line = server.wait_for_log("\"GET / HTTP/1.1\" 200", PROMPT);
    assert!(
        line.ends_with(" w1.1") || line.ends_with(" w1.2"),
        "worker.thread label: {line}"
    );
}

/// Harakiri with threads: the line names the stuck thread, the stacks of
/// every thread are logged, and the client gets 504.
#[test]
fn harakiri_names_the_stuck_thread_and_answers_504() {
    let mut server = threads_app(&["--processes", "1", "--threads", "2", "--harakiri", "1"]);
    let stuck = send_raw(&server, "/sleep?ms=10000");
    let line = server.wait_for_log("harakiri: worker 1", Duration::from_secs(5));
    assert!(
        line.contains("[thread ") && line.contains("\"GET /sleep?ms=10000\""),
        "{line}"
    );
    server.wait_for_log("threads_app.py\", line", PROMPT);
    let mut c = Client::from_stream(stuck);
    let r = c.read_response(false).expect("the 504");
    assert_eq!(r.status, 504);
}

/// A worker whose threads are all busy leaves new connections to a sibling
/// with a free thread: with 3 of 2 × 2 threads sleeping, one worker is full,
/// and no new request may wait behind it.
#[test]
fn a_worker_with_every_thread_busy_leaves_new_connections_to_a_sibling() {
    let mut server = threads_app(&["--processes", "2", "--threads", "2"]);
    server.wait_for_children(2, PROMPT);
    // All three run at once: none is queued behind a full worker.
    let _sleepers: Vec<TcpStream> = (0..3)
        .map(|i| {
            let s = send_raw(&server, "/sleep?ms=4000");
            // One at a time, so each sees the others' threads taken.
            server.wait_for_log_count("sleep-begin", i + 1, Duration::from_secs(2));
            s
        })
        .collect();
    // A new connection goes to the worker with a free thread (the counts
    // are exact now: no request is finishing), and keeps being served there.
    let started = Instant::now();
    let mut c = server.connect();
    c.set_read_timeout(Duration::from_secs(3));
    for _ in 0..10 {
        assert_eq!(c.get("/").body, b"ok");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a new connection waited {:?} behind a full worker",
        started.elapsed()
    );
}

/// A response waiting for a slow reader is not a request stuck in the app:
/// harakiri leaves its worker alone (it watches the app threads' cores).
#[test]
fn a_slow_download_outliving_harakiri_is_not_killed() {
    let mut server = threads_app(&["--processes", "1", "--harakiri", "1"]);
    let mut s = send_raw(&server, "/stream?mb=8");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 32 << 10];
    let mut total = 0usize;
    // About 3 MB/s: the download lasts well past --harakiri 1.
    while total < 8 << 20 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(started.elapsed() > Duration::from_millis(1500));
    assert!(total >= 8 << 20, "read {total} bytes");
    answered_within(&server, "/", Duration::from_secs(1));
    server.signal("TERM");
    server.wait_exit(PROMPT);
    assert!(
        !server.log_text().contains("harakiri:"),
        "{}",
        server.log_text()
    );
}
