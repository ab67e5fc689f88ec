//! Recycling (max-requests, reload-on-rss) and resizing (TTIN/TTOU).

use super::*;

#[test]
fn max_requests_recycles_workers_under_load_without_failures() {
    max_requests_recycles(&[]);
}

/// With app threads a retiring worker finishes every thread's request.
#[test]
fn max_requests_with_threads_recycles_without_failures() {
    max_requests_recycles(&["--threads", "4"]);
}

fn max_requests_recycles(extra: &[&str]) {
    let _x = exclusive();
    let app = app("sup_app.py");
    let mut args = vec![
        "--wsgi-file",
        &app,
        "--processes",
        "2",
        "--max-requests",
        "100",
        "--min-worker-lifetime",
        "0",
        "--disable-logging",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let first = server.wait_for_children(2, PROMPT);
    let load = Load::start(server.port(), &LoadSpec::new(4, 4, "/"));
    load.wait_until("six workers serving in turn", PROMPT, |l| {
        l.by_pid().len() >= 6
    });
    wait_log_count(
        &server,
        "retiring (--max-requests); starting its successor",
        4,
        PROMPT,
    );
    load.run_for(Duration::from_secs(1), 200, PROMPT);
    let report = load.finish();
    eprintln!("max-requests: {}", report.summary());
    report.assert_no_failures("recycling with --max-requests 100");
    let pids: std::collections::BTreeSet<u32> =
        report.outcomes.iter().filter_map(|o| o.pid()).collect();
    assert!(pids.len() >= 6, "served by {pids:?}");
    assert!(
        first.iter().all(|p| !server.children().contains(p)),
        "the first workers were never recycled"
    );
    // Retired workers are stopped gracefully, never lost.
    let log = server.log_text();
    assert!(!log.contains(" died after "), "a worker died:\n{log}");
    assert!(count_log(&server, "stopped (exit code 0)") >= 4, "{log}");
}

#[test]
fn ttin_and_ttou_resize_the_pool_but_never_below_one() {
    let _x = exclusive();
    let server = Server::start(&["--wsgi-file", &app("sup_app.py"), "--processes", "2"]);
    let port = server.port();
    server.wait_for_children(2, PROMPT);
    // Signals are sent one at a time, each after the previous one is logged
    // (two pending TTOUs would merge into one).
    let steps = [
        ("TTIN", 3),
        ("TTIN", 4),
        ("TTOU", 3),
        ("TTOU", 2),
        ("TTOU", 1),
        ("TTOU", 1),
        ("TTOU", 1),
    ];
    for (i, (sig, n)) in steps.into_iter().enumerate() {
        let logged = count_log(&server, &format!("SIG{sig}: now "));
        server.signal(sig);
        wait_log_count(&server, &format!("SIG{sig}: now "), logged + 1, PROMPT);
        let last = server
            .log()
            .into_iter()
            .rfind(|l| l.contains(&format!("SIG{sig}: now ")))
            .unwrap();
        assert!(
            last.contains(&format!("SIG{sig}: now {n} worker(s)")),
            "step {i}: {sig} should leave {n}: {last}"
        );
        wait_children_where(&server, &format!("{n} workers after {sig}"), PROMPT, |k| {
            k.len() == n
        });
    }
    let r = get_once(port, "/").expect("served by the last worker");
    assert_eq!(r.body, b"v1");
    assert_eq!(server.children().len(), 1);
}

#[test]
fn reload_on_rss_retires_workers_without_failures() {
    let _x = exclusive();
    let server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--reload-on-rss",
        "1",
        "--min-worker-lifetime",
        "0",
        "--disable-logging",
    ]);
    let load = Load::start(server.port(), &LoadSpec::new(2, 2, "/"));
    wait_log_count(
        &server,
        "retiring (--reload-on-rss); starting its successor",
        3,
        PROMPT,
    );
    load.run_for(Duration::from_secs(1), 100, PROMPT);
    let report = load.finish();
    eprintln!("reload-on-rss: {}", report.summary());
    report.assert_no_failures("recycling with --reload-on-rss 1");
    let pids: std::collections::BTreeSet<u32> =
        report.outcomes.iter().filter_map(|o| o.pid()).collect();
    assert!(pids.len() >= 3, "served by {pids:?}");
    let log = server.log_text();
    assert!(
        log.contains("asks to be recycled (--reload-on-rss) after "),
        "{log}"
    );
    assert!(!log.contains(" died after "), "a worker died:\n{log}");
}

/// A worker that grew past --reload-on-rss in a request and then stays idle
/// is replaced by the master's own RSS check, with no further request.
#[test]
fn reload_on_rss_replaces_an_idle_worker_without_further_requests() {
    let _x = exclusive();
    let server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "1",
        "--reload-on-rss",
        "100",
        "--min-worker-lifetime",
        "0",
    ]);
    let mut c = Connection::connect(server.port()).expect("connect");
    // The first request has the worker read its RSS; it then waits a second
    // before reading it again, so the hog that follows goes unseen by it.
    let first = c.get("/").expect("first request");
    let hog = c.get("/hog?mb=150").expect("the hog request");
    assert_eq!(hog.body, b"held");
    let hog_pid = hog.pid.expect("X-Pid");
    assert_eq!(first.pid, Some(hog_pid));
    drop(c);
    let kids = wait_children_where(&server, "the hog replaced", PROMPT, |k| {
        k.len() == 1 && !k.contains(&hog_pid)
    });
    assert!(is_rwsgi_process(kids[0]));
    let log = server.log_text();
    assert!(
        log.contains(&format!("(pid {hog_pid}) uses "))
            && log.contains("above --reload-on-rss 100 MiB"),
        "no RSS line from the master:\n{log}"
    );
    let again = get_once(server.port(), "/").expect("the successor answers");
    assert_eq!(again.pid, Some(kids[0]));
}
