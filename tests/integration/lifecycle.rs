//! Processes and signals: the worker count, and graceful shutdown on SIGTERM.

use crate::harness::{app, is_rwsgi_process, Server, PROMPT};
use crate::http::request;

#[test]
fn processes_flag_forks_that_many_workers() {
    let server = Server::start(&["--wsgi-file", &app("hello.py"), "--processes", "3"]);
    let kids = server.wait_for_children(3, PROMPT);
    assert!(kids.iter().all(|&p| is_rwsgi_process(p)), "{kids:?}");
    assert!(
        server.log_text().contains("ready: 3 worker(s)"),
        "{}",
        server.log_text()
    );
    let mut logged = server.logged_worker_pids();
    logged.sort_unstable();
    let mut kids = kids;
    kids.sort_unstable();
    assert_eq!(logged, kids, "logged worker pids differ from the children");
    // Still exactly 3 after serving.
    assert_eq!(server.connect().get("/").status, 200);
    assert_eq!(server.children().len(), 3);
}

#[test]
fn sigterm_exits_zero_and_leaves_no_workers() {
    let mut server = Server::start(&["--wsgi-file", &app("hello.py"), "--processes", "2"]);
    let workers = server.wait_for_children(2, PROMPT);
    assert_eq!(server.connect().get("/").status, 200);
    server.signal("TERM");
    let status = server.wait_exit(PROMPT);
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; log:\n{}",
        server.log_text()
    );
    let left: Vec<u32> = workers
        .into_iter()
        .filter(|&p| is_rwsgi_process(p))
        .collect();
    assert!(
        left.is_empty(),
        "workers still running after the master exited: {left:?}"
    );
}

#[test]
fn sigterm_lets_the_request_in_progress_finish() {
    let mut server = Server::start(&["--wsgi-file", &app("environ_dump.py"), "--processes", "1"]);
    let mut c = server.connect();
    c.send(&request("GET", "/sleep?ms=1500", &[], b""));
    server.wait_for_log("sleep-begin", PROMPT);
    server.signal("TERM");
    let r = c
        .read_response(false)
        .expect("the in-flight request's response");
    assert_eq!((r.status, r.text().as_str()), (200, "slept"));
    let status = server.wait_exit(PROMPT);
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; log:\n{}",
        server.log_text()
    );
}

#[test]
fn sigterm_with_idle_keepalive_connections_is_prompt() {
    // Idle keep-alive clients must not hold up the shutdown for their
    // keep-alive timeout.
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("hello.py"),
        "--processes",
        "2",
        "--keepalive-timeout",
        "300",
        "--shutdown-timeout",
        "120",
    ]);
    let mut idle: Vec<_> = (0..4).map(|_| server.connect()).collect();
    for c in &mut idle {
        assert_eq!(c.get("/").status, 200);
    }
    server.signal("TERM");
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{status}");
    for c in &mut idle {
        assert!(
            c.closed_by_server(),
            "idle connection left open after shutdown"
        );
    }
}
