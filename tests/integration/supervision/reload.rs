//! HUP: reloads under load drop nothing and serve the new code.

use super::*;

/// HUP twice under continuous load (keep-alive and connection-per-request
/// clients): no request fails, and once `reload complete` is logged every
/// response comes from the new code.
fn hup_under_load_drops_nothing(mode: &str, extra: &[&str]) {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let path = app.path();
    let mut args = vec![
        "--wsgi-file",
        &path,
        "--processes",
        "2",
        "--reload-mode",
        mode,
        "--disable-logging",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let load = Load::start(server.port(), &LoadSpec::new(4, 4, "/"));
    load.run_for(Duration::from_millis(1500), 300, PROMPT);
    // (version, HUP sent, reload complete seen)
    let mut reloads = Vec::new();
    for (n, version) in ["v2", "v3"].into_iter().enumerate() {
        let old = server.children();
        app.set_version(version);
        let hup_at = Instant::now();
        server.signal("HUP");
        wait_log_count(&server, "reload complete: 2 worker(s)", n + 1, PROMPT);
        let done_at = Instant::now();
        let now = server.children();
        assert!(
            old.iter().all(|p| !now.contains(p)),
            "old workers {old:?} still there after the reload: {now:?}"
        );
        // Keep the load on the new generation for a while.
        load.run_for(Duration::from_millis(1500), 300, PROMPT);
        reloads.push((version, hup_at, done_at));
    }
    let report = load.finish();
    eprintln!("HUP ({mode}): {}", report.summary());
    report.assert_no_failures(&format!("HUP in {mode} mode"));

    let first_hup = reloads[0].1;
    let v1 = report
        .outcomes
        .iter()
        .filter(|o| o.end < first_hup)
        .filter(|o| o.body() == Some(b"v1"))
        .count();
    assert!(v1 >= 300, "{v1} v1 responses before the first HUP");
    for (i, (version, _, done_at)) in reloads.iter().enumerate() {
        let until = reloads.get(i + 1).map(|r| r.1);
        let window: Vec<&Outcome> = report
            .outcomes
            .iter()
            .filter(|o| o.start > *done_at && until.map_or(true, |u| o.end < u))
            .collect();
        let stale: Vec<String> = window
            .iter()
            .filter(|o| o.body() != Some(version.as_bytes()))
            .take(5)
            .map(|o| o.to_string())
            .collect();
        assert!(
            stale.is_empty(),
            "after reload {} completed, responses other than {version}: {stale:?}",
            i + 1
        );
        assert!(
            window.len() >= 100,
            "{} responses after reload {}",
            window.len(),
            i + 1
        );
    }
    // Both kinds of clients went through the reloads, and keep-alive clients
    // were told to reconnect by the stopping workers.
    for m in [Mode::KeepAlive, Mode::PerRequest] {
        assert!(report.ok_of(m) >= 100, "{m:?}: {}", report.summary());
    }
    let told_to_close = report
        .outcomes
        .iter()
        .filter(|o| o.mode == Mode::KeepAlive && o.result.as_ref().is_ok_and(|r| r.close))
        .count();
    assert!(
        told_to_close >= 1,
        "no keep-alive response said Connection: close during two reloads"
    );
    let versions: Vec<String> = report.outcomes.iter().map(body_text).collect();
    assert!(
        versions.iter().any(|v| v == "v2") && versions.last().map(String::as_str) == Some("v3")
    );
}

#[test]
fn hup_rolling_under_load_drops_no_request_and_serves_the_new_code() {
    hup_under_load_drops_nothing("rolling", &[]);
}

#[test]
fn hup_with_threads_under_load_drops_no_request_and_serves_the_new_code() {
    hup_under_load_drops_nothing("rolling", &["--threads", "4"]);
}

#[test]
fn hup_all_under_load_drops_no_request_and_serves_the_new_code() {
    hup_under_load_drops_nothing("all", &[]);
}

/// A new connection made while an old worker finishes its last keep-alive
/// connections after HUP is accepted by the new worker, however many
/// connections that one already holds. (The old worker no longer accepts:
/// a new worker that left the connection to it would leave it queued until
/// some other client connects.)
#[test]
fn hup_a_new_connection_while_old_workers_wind_down_is_accepted() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "1",
        "--keepalive-timeout",
        "300",
    ]);
    let port = server.port();
    // Two keep-alive connections on the old worker.
    let mut k1 = Connection::connect(port).expect("connect");
    let mut k2 = Connection::connect(port).expect("connect");
    let old = k1.get("/").expect("k1").pid.expect("X-Pid");
    assert_eq!(k2.get("/").expect("k2").pid, Some(old));
    server.signal("HUP");
    server.wait_for_log(&format!("stopping worker 1 (pid {old})"), PROMPT);
    // The old worker, stopping, answers k1 once more (with Connection: close)
    // and keeps k2 open for its idle grace: it is between requests with one
    // connection, but it accepts no more.
    let mut told_to_close = false;
    for _ in 0..50 {
        let r = k1.get("/").expect("k1 after HUP");
        assert_eq!(r.pid, Some(old));
        if r.close {
            told_to_close = true;
            break;
        }
    }
    assert!(
        told_to_close,
        "the stopping worker never said Connection: close"
    );
    // Three keep-alive connections on the new worker, then one more.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = Connection::connect(port).expect("connect");
        let r = c.get("/").expect("a connection to the new worker");
        assert_ne!(r.pid, Some(old));
        held.push(c);
    }
    let mut late = Connection::connect(port).expect("connect");
    late.set_read_timeout(Duration::from_secs(5));
    let t = Instant::now();
    let r = late.get("/");
    assert!(
        r.is_ok(),
        "a new connection during the reload got no answer within {:?}: {r:?}",
        t.elapsed()
    );
    server.wait_for_log("reload complete", PROMPT);
    drop((k2, held));
}

#[test]
fn master_phases_follow_start_reload_and_shutdown() {
    let _x = exclusive();
    let mut server = Server::start(&["--wsgi-file", &app("sup_app.py"), "--processes", "2"]);
    assert!(get_once(server.port(), "/").is_ok());
    server.signal("HUP");
    server.wait_for_log("master phase: Reloading -> Running", PROMPT);
    assert!(get_once(server.port(), "/").is_ok());
    server.signal("TERM");
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{status}");
    let phases = phase_transitions(&server);
    let expected: Vec<(String, String)> = [
        ("Starting", "Running"),
        ("Running", "Reloading"),
        ("Reloading", "Running"),
        ("Running", "ShuttingDown"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(phases, expected, "log:\n{}", server.log_text());
    // Each transition follows what causes it.
    let log = server.log();
    let at = |p: &str| log.iter().position(|l| l.contains(p)).unwrap_or(usize::MAX);
    assert!(at("] ready: ") < at("Starting -> Running"));
    assert!(at("SIGHUP: reloading") < at("Running -> Reloading"));
    assert!(at("reload complete") < at("Reloading -> Running"));
    assert!(at("SIGTERM") < at("Running -> ShuttingDown"));
    assert!(at("Running -> ShuttingDown") < at("master exiting with code 0"));
}

/// A request that never ends must not keep a reload from completing: the old
/// worker is killed once --shutdown-timeout has passed since it was stopped.
#[test]
fn hup_completes_even_when_an_old_worker_never_finishes_its_request() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "1",
        "--shutdown-timeout",
        "1",
    ]);
    let mut stuck = Connection::connect(server.port()).expect("connect");
    stuck
        .send(get_request("/sleep?ms=600000", false).as_bytes())
        .expect("send");
    server.wait_for_log("sleep-begin", PROMPT);
    let hup = Instant::now();
    server.signal("HUP");
    server.wait_for_log("reload complete", PROMPT);
    let took = hup.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the reload waited {took:?} for a request that never ends"
    );
    let log = server.log_text();
    assert!(log.contains("(--shutdown-timeout); killing it"), "{log}");
    // And the new worker serves.
    let mut c = Connection::connect(server.port()).expect("connect");
    let r = c.get("/").expect("the new worker answers");
    assert!(r.pid.is_some());
}

/// 20 HUPs in 2 s with an app that takes 1.5 s to import: each HUP
/// supersedes the reload under way, so the master never has more than
/// 2 × processes + 1 children; no request fails, and once the last reload
/// completes the newest code answers.
fn hup_storm_stays_bounded(mode: &str) {
    let _x = exclusive();
    const SLOW_IMPORT: &str = "\ntime.sleep(1.5)\n";
    let app = TempApp::new("v0");
    app.set_version_with("v0", SLOW_IMPORT);
    let mut server = Server::start(&[
        "--wsgi-file",
        &app.path(),
        "--processes",
        "4",
        "--reload-mode",
        mode,
        "--disable-logging",
    ]);
    let master = server.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = std::sync::Arc::clone(&stop);
        thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(crate::harness::children_of(master).len());
                thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let load = Load::start(server.port(), &LoadSpec::new(2, 2, "/"));
    load.run_for(Duration::from_millis(500), 50, PROMPT);
    let mut last_hup_line = 0;
    for n in 1..=20 {
        app.set_version_with(&format!("v{n}"), SLOW_IMPORT);
        last_hup_line = server.log().len();
        server.signal("HUP");
        thread::sleep(Duration::from_millis(100)); // the storm's pace, not a wait
    }
    server.wait_for_log_from(last_hup_line, "the last HUP", PROMPT, |l| {
        l.contains("SIGHUP: reloading")
    });
    server.wait_for_log_from(last_hup_line, "reload complete", PROMPT, |l| {
        l.contains("reload complete")
    });
    let done_at = Instant::now();
    load.run_for(Duration::from_millis(500), 50, PROMPT);
    stop.store(true, Ordering::Relaxed);
    let peak = poller.join().expect("the poller");
    let report = load.finish();
    eprintln!(
        "HUP storm ({mode}): peak {peak} children; {}",
        report.summary()
    );
    report.assert_no_failures(&format!("a HUP storm in {mode} mode"));
    assert!(
        peak <= 9,
        "{peak} children for 4 workers\n{}",
        server.log_text()
    );
    let stale: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.start > done_at && o.body() != Some(b"v20"))
        .take(5)
        .map(|o| o.to_string())
        .collect();
    assert!(stale.is_empty(), "after the storm: {stale:?}");
    assert!(report.outcomes.iter().any(|o| o.start > done_at));
}

#[test]
fn hup_storm_rolling_keeps_at_most_twice_the_workers_and_serves_the_newest_code() {
    hup_storm_stays_bounded("rolling");
}

#[test]
fn hup_storm_all_keeps_at_most_twice_the_workers_and_serves_the_newest_code() {
    hup_storm_stays_bounded("all");
}
