//! An app that closes fd 1 and 2 must not get other clients' log lines sent
//! to its clients (issue 12, security 2): the log has a descriptor of its own.

use std::time::Duration;

use crate::harness::{app, Server, PROMPT};
use crate::http::Client;

#[test]
fn log_lines_never_reach_a_client_after_the_app_closes_stdio() {
    let mut server = Server::start(&["--wsgi-file", &app("close_stdio.py"), "--processes", "1"]);
    let mut c = server.connect();
    assert_eq!(c.get("/close-stdio").status, 200);
    // Fds 1 and 2 are free in the worker now: the next connections the
    // worker accepts take them. Each sends half a head, so the worker has
    // accepted it (TCP_DEFER_ACCEPT waits for data) and holds it open.
    let mut waiting: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for w in &mut waiting {
        w.send(b"GET /waiting HTTP/1.1\r\nHost: a\r\n");
    }
    // Requests that log, with something secret in them.
    for i in 0..5 {
        let r = server
            .connect()
            .get(&format!("/logged-{i}?token=SECRET{i}"));
        assert_eq!(r.status, 200);
    }
    server.wait_for_log("GET /logged-4?token=SECRET4", PROMPT);
    // No client socket took the numbers the app freed: whatever writes to
    // fd 1 or 2 (a print(), a C library) reaches /dev/null, not a client.
    let worker = server.wait_for_children(1, PROMPT)[0];
    for fd in [1, 2] {
        let target = std::fs::read_link(format!("/proc/{worker}/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(!target.starts_with("socket:"), "fd {fd} is {target}");
    }
    // Each waiting client gets exactly its own response, no log text.
    for (i, w) in waiting.iter_mut().enumerate() {
        w.set_read_timeout(Duration::from_secs(10));
        w.send(b"Connection: close\r\n\r\n");
        let got = w.read_to_close();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nok"),
            "waiting client {i} got {text:?}"
        );
        assert!(
            !text.contains("SECRET") && !text.contains("GET /"),
            "{text:?}"
        );
    }
    // The log still works, and the worker is the same one.
    assert_eq!(server.connect().get("/after").status, 200);
    server.wait_for_log("GET /after ", PROMPT);
}
