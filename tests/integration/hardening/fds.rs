//! Out of descriptors (issue 12, item 5): clients that queue while the
//! worker has none left are answered (503 through the reserve descriptor)
//! within a deadline, the log says so once, and service resumes once the
//! app lets go of its files.

use std::time::{Duration, Instant};

use crate::harness::PROMPT;
use crate::http::Client;

#[test]
fn clients_queued_without_descriptors_are_answered_and_service_resumes() {
    // rwsgi raises its soft limit to the hard one: `ulimit -n` sets both.
    let mut server = super::start_via_shell("ulimit -n 64", &[], &[]);
    let mut keeper = server.connect();
    let r = keeper.get("/open-files");
    assert_eq!(r.status, 200);
    let opened: usize = r.text().parse().expect("a count");
    assert!(opened > 0, "the app opened no file");

    // Clients connect and send a request while the worker has no
    // descriptor to accept them with.
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..5)
        .map(|_| {
            let mut c = server.connect();
            c.set_read_timeout(Duration::from_secs(15));
            c.send(b"GET /queued HTTP/1.1\r\nHost: a\r\n\r\n");
            c
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let r = c.read_response(false).unwrap_or_else(|e| {
            panic!(
                "queued client {i} got no answer within {:?} ({e}); log:\n{}",
                started.elapsed(),
                server.log_text()
            )
        });
        assert!(
            r.status == 503 || r.status == 200,
            "queued client {i}: {}",
            r.status
        );
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    server.wait_for_log("cannot accept connections", PROMPT);

    // The app lets go of its files through the connection it kept.
    let r = keeper.get("/release");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), opened.to_string());

    // Service is back (the retry timer, or the next connection).
    let deadline = Instant::now() + PROMPT;
    loop {
        let mut c = server.connect();
        c.set_read_timeout(Duration::from_secs(5));
        c.send(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        match c.read_response(false) {
            Ok(r) if r.status == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "no normal service after the release: {:?}; log:\n{}",
                other.map(|r| r.status),
                server.log_text()
            ),
        }
    }
    // One log line for the episode, however many accepts failed.
    let lines = server
        .log()
        .iter()
        .filter(|l| l.contains("cannot accept connections"))
        .count();
    assert_eq!(lines, 1, "{}", server.log_text());
}
