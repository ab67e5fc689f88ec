//! TCP_DEFER_ACCEPT on the listeners rwsgi binds: a connection reaches a
//! worker once its request arrives, so a worker wakes once per connection.

use std::time::{Duration, Instant};

use crate::harness::{app, Server, PROMPT};
use crate::http::request;

/// The kernel's state for the server side of the connection from
/// `client_port` to `server_port` on 127.0.0.1 (from /proc/net/tcp: "01"
/// established, "03" SYN_RECV), waiting up to a second for it to appear.
fn server_side_state(server_port: u16, client_port: u16) -> String {
    let (local, remote) = (
        format!("0100007F:{server_port:04X}"),
        format!("0100007F:{client_port:04X}"),
    );
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
        let state = table.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3 && f[1] == local && f[2] == remote).then(|| f[3].to_string())
        });
        if let Some(s) = state {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no server-side socket for {remote} -> {local} in /proc/net/tcp"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_silent_connection_waits_in_the_kernel_until_its_request_arrives() {
    let server = Server::start(&["--wsgi-file", &app("hello.py"), "--processes", "1"]);
    let mut c = server.connect();
    assert_eq!(
        server_side_state(server.port(), c.local_port()),
        "03",
        "with TCP_DEFER_ACCEPT (the default) a connection that has sent nothing is not \
         yet queued for accept (SYN_RECV on the server side)"
    );
    // The request completes the hand-over at once: no wait for the timeout.
    let started = Instant::now();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server_side_state(server.port(), c.local_port()), "01");
}

#[test]
fn no_defer_accept_queues_connections_as_soon_as_they_are_set_up() {
    let server = Server::start(&[
        "--wsgi-file",
        &app("hello.py"),
        "--processes",
        "1",
        "--no-defer-accept",
    ]);
    let mut c = server.connect();
    assert_eq!(server_side_state(server.port(), c.local_port()), "01");
    assert_eq!(c.get("/").status, 200);
}

/// The drain with deferred accept: every connection whose request the kernel
/// has already queued is answered after SIGTERM, none reset.
#[test]
fn sigterm_answers_every_connection_whose_request_was_queued() {
    let mut server = Server::start(&["--wsgi-file", &app("sup_app.py"), "--processes", "1"]);
    let mut busy = server.connect();
    busy.send(&request("GET", "/sleep?ms=1000", &[], b""));
    server.wait_for_log("sleep-begin", PROMPT);
    // The only worker is busy: these wait, with their requests, in the queue.
    let mut queued: Vec<_> = (0..3)
        .map(|i| {
            let mut c = server.connect();
            c.send(&request("GET", &format!("/q{i}"), &[], b""));
            c
        })
        .collect();
    for c in &queued {
        // Established (queued for accept) once its request has arrived.
        let deadline = Instant::now() + PROMPT;
        while server_side_state(server.port(), c.local_port()) != "01" {
            assert!(Instant::now() < deadline, "request never arrived");
            std::thread::yield_now();
        }
    }
    server.signal("TERM");
    let r = busy.read_response(false).expect("the in-flight request");
    assert_eq!(r.status, 200);
    for (i, c) in queued.iter_mut().enumerate() {
        let r = c
            .read_response(false)
            .unwrap_or_else(|e| panic!("queued connection {i} got no answer: {e}"));
        assert!(r.status == 200 || r.status == 503, "{i}: {r:?}");
    }
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}
