//! TERM, INT and --shutdown-delay.

use super::*;

/// A connection made after TERM: when it connected, and what it got.
type Probe = (Duration, Result<Reply, Failure>);

/// After TERM: a new connection every 20 ms, each sending a request at
/// once, until one is refused. The servers probed run with
/// `--no-defer-accept`: with TCP_DEFER_ACCEPT the kernel queues a connection
/// only once its request arrives, so one whose request is still on its way
/// when the listener is shut is reset like one still in the handshake (the
/// server never saw it). Under a loaded test machine that gap between this
/// probe's connect() and send() is wide enough to hit. Returns when each
/// connected (after `since`) with its response, and when the first refusal
/// came.
fn probe_until_refused(port: u16, since: Instant) -> (Vec<Probe>, Duration) {
    let mut probes: Vec<(Duration, Connection)> = Vec::new();
    let refused_after = loop {
        assert!(
            since.elapsed() < PROMPT && probes.len() < 1000,
            "new connections still accepted {:?} after TERM",
            since.elapsed()
        );
        match Connection::connect(port) {
            Ok(mut c) => {
                let at = since.elapsed();
                // A failure to send shows when reading the response.
                let _ = c.send(get_request("/", false).as_bytes());
                probes.push((at, c));
            }
            // Refused; or reset during the handshake, as the last listener
            // closes: connect() fails either way, nothing was accepted.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break since.elapsed();
            }
            Err(e) => panic!("connect after TERM: {e}"),
        }
        thread::sleep(Duration::from_millis(20));
    };
    let answers = probes
        .into_iter()
        .map(|(at, mut c)| (at, c.read_response()))
        .collect();
    (answers, refused_after)
}

/// The probes that connected but got no complete response (any status
/// counts as an answer: the server may refuse politely, never by a reset).
///
/// One exception, the kernel's: a draining worker accepts what is queued,
/// then shuts the listener, and Linux resets whatever completed its
/// handshake in the microseconds between its last accept and the shutdown.
/// Only the last probe before the first refusal can fall in that window
/// (the next, 20 ms later, was refused), so a reset there is not counted.
/// Every earlier probe must be answered.
fn unanswered(probes: &[Probe]) -> Vec<String> {
    let at_the_shutdown = |i: usize, r: &Result<Reply, Failure>| {
        i + 1 == probes.len() && matches!(r, Err(Failure::NoResponse(why)) if why.contains("reset"))
    };
    probes
        .iter()
        .enumerate()
        .filter(|&(i, (_, r))| !at_the_shutdown(i, r))
        .map(|(_, p)| p)
        .filter(|(_, r)| !matches!(r, Ok(_) | Err(Failure::Status(_))))
        .map(|(at, r)| format!("connected {at:.1?} after TERM: {:?}", r.as_ref().err()))
        .collect()
}

#[test]
fn sigterm_finishes_the_slow_request_then_refuses_new_connections() {
    sigterm_drains(&[]);
}

/// The same with app threads: the slow request holds one thread while the
/// others answer what the kernel accepted after TERM.
#[test]
fn sigterm_with_threads_finishes_every_request_in_flight() {
    sigterm_drains(&["--threads", "4"]);
}

fn sigterm_drains(extra: &[&str]) {
    let _x = exclusive();
    let app = app("sup_app.py");
    let mut args = vec![
        "--wsgi-file",
        &app,
        "--processes",
        "2",
        "--no-defer-accept", // see probe_until_refused
    ];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args);
    let port = server.port();
    let mut slow = Connection::connect(port).expect("connect");
    slow.send(get_request("/sleep?ms=2000", false).as_bytes())
        .expect("send");
    let sent = Instant::now();
    server.wait_for_log("sleep-begin", PROMPT);
    server.signal("TERM");
    let term_at = Instant::now();
    let slow_reader = thread::spawn(move || (slow.read_response(), Instant::now()));
    let (probes, refused_after) = probe_until_refused(port, term_at);

    let (slow_result, slow_end) = slow_reader.join().unwrap();
    let slow_reply = slow_result.unwrap_or_else(|e| panic!("the in-flight request: {e:?}"));
    assert_eq!(slow_reply.body, b"slept");
    assert!(
        slow_end - sent >= Duration::from_millis(1900),
        "the slow request ended early"
    );
    // Connections the kernel accepted after TERM (before the drain shut the
    // listeners) are answered in full.
    let bad = unanswered(&probes);
    eprintln!(
        "TERM: {} connections accepted after TERM ({} answered), refused from {refused_after:?}",
        probes.len(),
        probes.len() - bad.len()
    );
    assert!(
        bad.is_empty(),
        "connections accepted after TERM but not answered: {bad:#?}"
    );
    // (Whether each says `Connection: close` depends on whether its worker
    // had seen the TERM when it answered: the master may take a moment.)
    for (_, r) in &probes {
        assert_eq!(r.as_ref().unwrap().body, b"v1");
    }
    let status = server.wait_exit(PROMPT);
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; log:\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("master exiting with code 0"));
}

/// A request outlives `--shutdown-timeout`: its worker is killed (the request
/// is lost, as configured), but connections made meanwhile must still be
/// refused or answered, never accepted and then reset.
#[test]
fn sigterm_straggler_killed_after_shutdown_timeout_resets_no_accepted_connection() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--shutdown-timeout",
        "1",
        "--no-defer-accept", // see probe_until_refused
    ]);
    let port = server.port();
    let mut slow = Connection::connect(port).expect("connect");
    slow.send(get_request("/sleep?ms=4000", false).as_bytes())
        .expect("send");
    server.wait_for_log("sleep-begin", PROMPT);
    server.signal("TERM");
    let term_at = Instant::now();
    let (probes, refused_after) = probe_until_refused(port, term_at);
    assert!(
        slow.read_response().is_err(),
        "the request outliving --shutdown-timeout was not cut"
    );
    let status = server.wait_exit(PROMPT);
    assert!(
        server
            .log_text()
            .contains("shutdown grace over: killing 1 worker(s)"),
        "{}",
        server.log_text()
    );
    let bad = unanswered(&probes);
    eprintln!(
        "TERM, straggler killed: {} connections accepted after TERM ({} answered), refused from {refused_after:?}, exit {status}",
        probes.len(),
        probes.len() - bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {} connections accepted after TERM were reset without an answer \
         when the straggler was killed; the first: {:#?}",
        bad.len(),
        probes.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn sigint_exits_fast_even_with_a_stuck_request() {
    let _x = exclusive();
    let mut server = Server::start(&["--wsgi-file", &app("sup_app.py"), "--processes", "2"]);
    let workers = server.wait_for_children(2, PROMPT);
    let mut slow = Connection::connect(server.port()).expect("connect");
    slow.send(get_request("/sleep?ms=10000", false).as_bytes())
        .expect("send");
    server.wait_for_log("sleep-begin", PROMPT);
    let t = Instant::now();
    server.signal("INT");
    let status = server.wait_exit(PROMPT);
    let took = t.elapsed();
    eprintln!("SIGINT: exit {status} after {took:?}");
    assert!(
        took <= Duration::from_millis(2500),
        "SIGINT took {took:?} to exit ({status})"
    );
    assert!(status.code().is_some(), "{status}");
    assert!(
        slow.read_response().is_err(),
        "the stuck request was not cut"
    );
    let left: Vec<u32> = workers
        .into_iter()
        .filter(|&p| is_rwsgi_process(p))
        .collect();
    assert!(left.is_empty(), "workers left after SIGINT: {left:?}");
}

#[test]
fn shutdown_delay_keeps_serving_for_that_long_then_exits_zero() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--shutdown-delay",
        "1",
    ]);
    let port = server.port();
    let mut kept = Connection::connect(port).expect("connect");
    assert!(kept.get("/").is_ok());
    server.signal("TERM");
    let term_at = Instant::now();
    // Right after TERM: a new connection and the open keep-alive one are served.
    let first = get_once(port, "/");
    assert!(first.is_ok(), "right after TERM: {first:?}");
    let again = kept.get("/");
    assert!(again.is_ok(), "keep-alive right after TERM: {again:?}");
    // Then until refused, a request every 20 ms on a new connection.
    let mut last_ok = Duration::ZERO;
    let mut served = 0;
    let mut unexpected = Vec::new();
    let refused_after = loop {
        assert!(
            term_at.elapsed() < PROMPT,
            "still served {:?} after TERM",
            term_at.elapsed()
        );
        match get_once(port, "/") {
            Ok(_) => {
                served += 1;
                last_ok = term_at.elapsed();
            }
            // Refused (or reset in the handshake as the listener closes).
            Err(Failure::Connect(
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset,
                _,
            )) => break term_at.elapsed(),
            Err(e) => unexpected.push((term_at.elapsed(), e)),
        }
        thread::sleep(Duration::from_millis(20));
    };
    let status = server.wait_exit(PROMPT);
    let exited_after = term_at.elapsed();
    eprintln!(
        "shutdown-delay 1: {served} served until {last_ok:?}, refused from {refused_after:?}, exit after {exited_after:?}"
    );
    assert!(
        unexpected.is_empty(),
        "requests failed other than refused: {unexpected:?}"
    );
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        last_ok >= Duration::from_millis(700),
        "served only until {last_ok:?} after TERM"
    );
    assert!(
        exited_after >= Duration::from_millis(900),
        "exited {exited_after:?} after TERM, before the delay"
    );
    assert!(server
        .log_text()
        .contains("still serving for 1 s before draining (--shutdown-delay)"));
}

/// During a --shutdown-delay the workers still serve, so one that dies is
/// replaced (the last one dying must not end the delay early), and SIGTTIN
/// is ignored with a log line.
#[test]
fn a_worker_dying_during_the_shutdown_delay_is_replaced_and_the_delay_holds() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("crash_in_request.py"),
        "--processes",
        "1",
        "--shutdown-delay",
        "2",
    ]);
    let port = server.port();
    server.signal("TERM");
    let term_at = Instant::now();
    server.wait_for_log("before draining (--shutdown-delay)", PROMPT);
    server.signal("TTIN");
    server.wait_for_log("SIGTTIN: ignored, the server is shutting down", PROMPT);
    // The only worker dies in a request.
    assert!(
        get_once(port, "/segv").is_err(),
        "the crash answers nothing"
    );
    server.wait_for_log("died after", PROMPT);
    // Still within the delay: a replacement serves.
    let deadline = Instant::now() + PROMPT;
    let served = loop {
        assert!(
            Instant::now() < deadline,
            "no worker serves after the crash"
        );
        match get_once(port, "/") {
            Ok(reply) => break reply,
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(served.body, b"ok", "a 200 from the replacement");
    assert!(
        term_at.elapsed() < Duration::from_millis(1900),
        "served only at {:?}, too late to tell",
        term_at.elapsed()
    );
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        term_at.elapsed() >= Duration::from_millis(1900),
        "exited {:?} after TERM, before the delay ended",
        term_at.elapsed()
    );
    assert_eq!(server.log_text().matches("spawned worker").count(), 2);
}

/// TERM (with a --shutdown-delay) before the app has loaded, and then it
/// does not: the start-up still ends at once with the load-error status,
/// rather than forking failing workers for the whole delay.
#[test]
fn an_app_that_does_not_load_after_an_early_term_still_exits_4_at_once() {
    let _x = exclusive();
    let dir = crate::harness::TempDir::new("slow-broken");
    let path = dir.file("slow_broken.py");
    std::fs::write(
        &path,
        "import time\ntime.sleep(0.8)\nraise RuntimeError('broken')\n",
    )
    .expect("write the app");
    let mut server = Server::spawn(&[
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        &path,
        "--shutdown-delay",
        "5",
    ]);
    server.wait_for_log("spawned worker", PROMPT);
    server.signal("TERM");
    let term_at = Instant::now();
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(4), "{}", server.log_text());
    assert!(
        term_at.elapsed() < Duration::from_secs(4),
        "exited {:?} after TERM: it sat out the delay",
        term_at.elapsed()
    );
    assert_eq!(server.log_text().matches("spawned worker").count(), 1);
}
