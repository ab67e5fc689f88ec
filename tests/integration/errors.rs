//! App exceptions: a 500 without the traceback for the client, the traceback
//! (with the request) in the log, and a worker that keeps serving.

use std::time::{Duration, Instant};

use crate::harness::{app, Server, PROMPT};

fn errors_app() -> Server {
    Server::start(&["--wsgi-file", &app("errors.py"), "--processes", "1"])
}

/// The logged error for `request` ("METHOD /path"): from the first line
/// naming the request (not its access-log line), through a traceback, to
/// the traceback's last line with `exception`, once all of it has arrived.
fn traceback_for(server: &Server, request: &str, exception: &str) -> String {
    let deadline = Instant::now() + PROMPT;
    loop {
        let log = server.log();
        let start = log
            .iter()
            .position(|l| l.contains(request) && !l.contains(" HTTP/1."));
        if let Some(start) = start {
            let rest = &log[start..log.len().min(start + 60)];
            let tb = rest
                .iter()
                .position(|l| l.contains("Traceback (most recent call last)"));
            if let Some(tb) = tb {
                if let Some(end) = rest[tb..].iter().position(|l| l.contains(exception)) {
                    return rest[..=tb + end].join("\n");
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no error naming {request:?} followed by {exception:?} in the log:\n{}",
            log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exception_before_start_response_is_a_500_and_logged() {
    let server = errors_app();
    let mut c = server.connect();
    let r = c.get("/raise");
    assert_eq!(r.status, 500);
    let body = r.text();
    assert!(
        !body.contains("SECRET-MARKER")
            && !body.contains("Traceback")
            && !body.contains("RuntimeError"),
        "the 500 leaks the exception: {body:?}"
    );
    let tb = traceback_for(&server, "GET /raise", "RuntimeError: SECRET-MARKER");
    assert!(
        tb.contains("errors.py"),
        "traceback without the app frame: {tb}"
    );
    // The same (only) worker serves the next request.
    let mut c = server.connect();
    let r = c.get("/ok");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
}

#[test]
fn exception_after_start_response_is_still_a_500() {
    let server = errors_app();
    let mut c = server.connect();
    let r = c.get("/raise-after-start");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(!r.text().contains("SECRET-MARKER"), "leak: {:?}", r.text());
    traceback_for(
        &server,
        "GET /raise-after-start",
        "ValueError: SECRET-MARKER",
    );
    let r = server.connect().get("/ok");
    assert_eq!(r.status, 200);
}

#[test]
fn exception_mid_stream_closes_the_connection() {
    let server = errors_app();
    for path in ["/gen-raise", "/gen-raise-length"] {
        let mut c = server.connect();
        c.send(&crate::http::request("GET", path, &[], b""));
        // The head and the first chunk went out; then the response must end
        // with the connection, not with a clean end of body.
        let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {raw:?}");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete head");
        assert!(!head.contains("500"), "{path}: {raw:?}");
        let chunked = head.contains("Transfer-Encoding: chunked");
        assert_eq!(chunked, path == "/gen-raise", "{path}: {raw:?}");
        let want = if chunked {
            "b\r\nfirst chunk\r\n"
        } else {
            "first chunk"
        };
        assert_eq!(
            body, want,
            "{path}: the body must stop after the first chunk"
        );
        traceback_for(
            &server,
            &format!("GET {path}"),
            "RuntimeError: SECRET-MARKER raised mid-stream",
        );
        let r = server.connect().get("/ok");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"ok"[..]),
            "after {path}"
        );
    }
}

#[test]
fn many_exceptions_do_not_kill_the_worker() {
    let server = errors_app();
    let pid_before = server.wait_for_children(1, PROMPT);
    for _ in 0..20 {
        assert_eq!(server.connect().get("/raise").status, 500);
    }
    assert_eq!(server.connect().get("/ok").status, 200);
    assert_eq!(server.children(), pid_before, "the worker was replaced");
    assert!(
        !server.log_text().contains("died after"),
        "a worker died:\n{}",
        server.log_text()
    );
}

/// Issue 12, correctness 14: the line that reports a worker killed by a
/// signal in mid-request names the request and how long it had run.
#[test]
fn a_worker_death_in_a_request_names_the_request() {
    let mut server = Server::start(&["--wsgi-file", &app("crash_in_request.py")]);
    let mut c = server.connect();
    c.send(b"GET /segv?id=7 HTTP/1.1\r\nHost: a\r\n\r\n");
    let died = server.wait_for_log(" died after ", PROMPT);
    assert!(died.contains("signal 11"), "{died}");
    let (_, rest) = died
        .split_once(" while serving \"GET /segv?id=7\" for ")
        .unwrap_or_else(|| panic!("the request is not named: {died}"));
    let secs: f64 = rest
        .split_once(" s: ")
        .and_then(|(s, _)| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration: {died}"));
    assert!((0.1..30.0).contains(&secs), "ran for {secs} s? {died}");
    // The replacement serves (the request waits in the listen queue).
    assert_eq!(server.connect().get("/").status, 200);
}
