//! Fairness: many keep-alive connections, and idle or slow clients, never
//! keep other clients from being served (DESIGN §1).

use std::time::{Duration, Instant};

use crate::harness::{app, Server, PROMPT};
use crate::http::{request, Client};

/// Two workers; idle connections are kept far longer than any test deadline,
/// so a worker pinned by one would show up as a timeout here.
fn two_workers() -> Server {
    Server::start(&[
        "--wsgi-file",
        &app("hello.py"),
        "--processes",
        "2",
        "--keepalive-timeout",
        "300",
        "--http-timeout",
        "300",
    ])
}

fn assert_hello(c: &mut Client, what: &str) {
    let r = c
        .read_response(false)
        .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
    assert_eq!(r.status, 200, "{what}");
    assert_eq!(r.body, b"Hello, World!", "{what}");
}

#[test]
fn thirty_two_keepalive_connections_are_all_served() {
    let server = two_workers();
    let started = Instant::now();
    let mut conns: Vec<Client> = (0..32).map(|_| server.connect()).collect();
    for round in 0..4 {
        for (i, c) in conns.iter_mut().enumerate() {
            c.send(&request("GET", &format!("/r{round}/c{i}"), &[], b""));
        }
        for (i, c) in conns.iter_mut().enumerate() {
            assert_hello(c, &format!("round {round}, connection {i}"));
        }
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "32x4 requests took {took:?}"
    );
}

#[test]
fn idle_keepalive_connections_do_not_pin_the_workers() {
    let mut server = two_workers();
    // Idle connections until each worker holds some: each sent one request,
    // got its answer and then stays open without a word.
    let mut idle: Vec<Client> = Vec::new();
    let mut holders = std::collections::BTreeSet::new();
    while holders.len() < 2 {
        let i = idle.len();
        assert!(
            i < 64,
            "64 connections all went to {holders:?}; cannot test pinning:\n{}",
            server.log_text()
        );
        let mut c = server.connect();
        c.send(&request("GET", &format!("/idle{i}"), &[], b""));
        assert_hello(&mut c, &format!("idle connection {i}"));
        let line = server.wait_for_log(&format!("\"GET /idle{i} "), PROMPT);
        holders.insert(line.rsplit(' ').next().unwrap_or_default().to_string());
        idle.push(c);
    }
    // New clients are served promptly (the idle ones would keep a pinned
    // worker for --keepalive-timeout, 300 s).
    for i in 0..8 {
        let mut c = server.connect();
        c.send(&request(
            "GET",
            &format!("/new{i}"),
            &["Connection: close"],
            b"",
        ));
        assert_hello(
            &mut c,
            &format!("new client {i} while {} connections idle", idle.len()),
        );
    }
    // And the idle connections still work.
    for (i, c) in idle.iter_mut().enumerate() {
        c.send(&request("GET", "/", &[], b""));
        assert_hello(c, &format!("idle connection {i}, second request"));
    }
}

#[test]
fn a_slow_client_does_not_pin_the_workers() {
    let server = two_workers();
    // Clients that sent half a request head and stop there.
    let mut slow: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for c in &mut slow {
        c.send(b"GET /slow HTTP/1.1\r\nHost: loc");
    }
    for i in 0..8 {
        let mut c = server.connect();
        c.send(&request("GET", "/", &[], b""));
        assert_hello(&mut c, &format!("client {i} while 4 clients are slow"));
    }
    // The slow clients finish their requests and are answered.
    for (i, c) in slow.iter_mut().enumerate() {
        c.send(b"alhost\r\n\r\n");
        assert_hello(c, &format!("slow client {i}"));
    }
}
