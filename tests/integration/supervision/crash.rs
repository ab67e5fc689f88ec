//! Crashes: a SIGKILLed worker, harakiri, request-triggered crash storms and
//! workers that fail before they are ready (the back-off).

use super::*;

#[test]
fn sigkilled_worker_is_replaced_within_a_second_and_only_its_connections_fail() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--disable-logging",
    ]);
    let workers = server.wait_for_children(2, PROMPT);
    let spec = LoadSpec::new(4, 4, "/");
    let clients = spec.keepalive + spec.per_request;
    let load = Load::start(server.port(), &spec);
    // Both workers serve part of the load, so the victim holds connections.
    load.wait_until("both workers serving", PROMPT, |l| {
        let by_pid = l.by_pid();
        workers
            .iter()
            .all(|p| by_pid.get(p).copied().unwrap_or(0) >= 50)
    });
    let victim = workers[0];
    // SAFETY: kill(2) on a pid that is our server's worker (a child of the master).
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let killed_at = Instant::now();

    let kids = wait_children_where(
        &server,
        "a replacement worker",
        Duration::from_secs(1),
        |k| k.len() == 2 && !k.contains(&victim),
    );
    let replaced_after = killed_at.elapsed();
    let successor = *kids.iter().find(|p| !workers.contains(p)).unwrap();
    assert!(is_rwsgi_process(successor));
    let died = server.wait_for_log(&format!("(pid {victim}) died after"), PROMPT);
    assert!(died.contains("signal 9"), "{died}");
    // The successor serves its share, and the load goes on.
    load.wait_until("the successor serving", PROMPT, |l| {
        l.by_pid().get(&successor).copied().unwrap_or(0) >= 20
    });
    load.run_for(Duration::from_secs(1), 300, PROMPT);
    let report = load.finish();
    eprintln!(
        "replacement after {replaced_after:?}; {}",
        report.describe()
    );

    // Each client has at most one connection at a time, so at most one of
    // its requests can be caught on the victim: the one in flight (or about
    // to be sent on an idle keep-alive connection) when it was killed. Those
    // fail as a connection closed or reset, on a connection opened before
    // the kill; nothing else may fail.
    let failures = report.failures();
    assert!(
        failures.len() <= clients,
        "{} failures for {clients} clients: {}",
        failures.len(),
        report.describe()
    );
    for client in 0..clients {
        let n = failures.iter().filter(|o| o.client == client).count();
        assert!(
            n <= 1,
            "client {client} failed {n} times: {}",
            report.describe()
        );
    }
    for f in &failures {
        assert!(
            matches!(
                f.result,
                Err(Failure::NoResponse(_) | Failure::Truncated(_) | Failure::Send(_))
            ),
            "a failure that is not a connection lost with the victim: {f}"
        );
        let opened = f.conn_opened.expect("connected");
        assert!(
            opened < killed_at,
            "a connection opened after the kill failed: {f}\n{}",
            report.describe()
        );
        // On a keep-alive connection, earlier answers show which worker held it.
        let served_by: Vec<Option<u32>> = report
            .outcomes
            .iter()
            .filter(|o| o.client == f.client && o.conn == f.conn && o.ok())
            .map(|o| o.pid())
            .collect();
        assert!(
            served_by.iter().all(|p| *p == Some(victim)),
            "failed on a connection served by {served_by:?}, not the victim {victim}: {f}"
        );
    }
    let ok_after = report
        .outcomes
        .iter()
        .filter(|o| o.ok() && o.start > killed_at)
        .count();
    assert!(ok_after >= 300, "{ok_after} successes after the kill");
    assert!(report.ok_of(Mode::KeepAlive) > 0 && report.ok_of(Mode::PerRequest) > 0);
}

#[test]
fn harakiri_kills_the_stuck_worker_in_time_while_others_serve() {
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--harakiri",
        "1",
    ]);
    let port = server.port();
    let mut slow = Connection::connect(port).expect("connect");
    let sent = Instant::now();
    slow.send(get_request("/sleep?ms=5000", false).as_bytes())
        .expect("send");
    let begin = server.wait_for_log("sleep-begin pid=", PROMPT);
    let victim = pid_in(&begin, "sleep-begin pid=");
    let slow_reader = thread::spawn(move || (slow.read_response(), Instant::now()));

    // Meanwhile the other worker serves new connections.
    let mut others = Vec::new();
    for _ in 0..10 {
        let r = get_once(port, "/");
        others.push((r, Instant::now()));
    }
    let (slow_result, slow_end) = slow_reader.join().unwrap();
    let took = slow_end - sent;
    // Nothing of its response had gone out: the client is told 504.
    assert!(
        matches!(slow_result, Err(Failure::Status(504))),
        "the stuck request should end with a 504: {slow_result:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_secs(3),
        "the stuck request ended after {took:?} (--harakiri 1)"
    );
    for (r, _) in &others {
        let r = r
            .as_ref()
            .unwrap_or_else(|e| panic!("a request meanwhile: {e:?}"));
        assert_ne!(r.pid, Some(victim), "served by the stuck worker");
        assert!(r.pid.is_some());
    }
    assert!(
        others[0].1 < slow_end,
        "no other request was served while the stuck one ran"
    );
    let line = server.wait_for_log("harakiri: worker", PROMPT);
    assert!(
        line.contains(&format!("(pid {victim})"))
            && line.contains("\"GET /sleep?ms=5000\"")
            && line.contains("limit --harakiri 1"),
        "{line}"
    );
    // faulthandler's dump names where the request was stuck.
    let stack = server.wait_for_log("sup_app.py\", line", PROMPT);
    assert!(stack.contains("in application"), "{stack}");
    wait_children_where(&server, "the stuck worker replaced", PROMPT, |k| {
        k.len() == 2 && !k.contains(&victim)
    });
    assert!(get_once(port, "/").is_ok());
}

/// Every request crashes the worker that takes it: ready workers are
/// replaced without back-off, within the fork budget (a burst of 2 ×
/// processes, then `processes` per second), beyond which only a pool left
/// empty gets a worker at once.
#[test]
fn a_crash_storm_is_replaced_within_the_fork_budget_without_back_off() {
    let _x = exclusive();
    let server = Server::start(&["--wsgi-file", &app("sup_crash.py"), "--processes", "2"]);
    let load = Load::start(server.port(), &LoadSpec::new(0, 4, "/"));
    wait_log_count(&server, " died after ", 1, PROMPT);
    // Measure the fork rate over 2 s, after the first second of the storm
    // (the initial burst is spent by then).
    let window_start = Instant::now() + Duration::from_secs(1);
    thread::sleep(window_start.saturating_duration_since(Instant::now()));
    let spawned = |s: &Server| count_log(s, "spawned worker ");
    let floor = |s: &Server| count_log(s, "fork budget spent, but no worker is left");
    let (spawned_before, floor_before) = (spawned(&server), floor(&server));
    let t0 = Instant::now();
    let mut most = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        most = most.max(server.children().len());
        thread::sleep(Duration::from_millis(5));
    }
    let window = t0.elapsed().as_secs_f64();
    let budgeted = (spawned(&server) - spawned_before) - (floor(&server) - floor_before);
    drop(load);
    let deaths = count_log(&server, " died after ");
    let log = server.log_text();
    eprintln!(
        "crash storm: {deaths} deaths; in {window:.1} s {} forks, {budgeted} within the budget",
        spawned(&server) - spawned_before
    );
    assert!(deaths >= 4, "the app did not crash: {deaths} deaths\n{log}");
    assert!(
        !log.contains("next respawn in"),
        "back-off for crashes:\n{log}"
    );
    assert!(
        log.contains("workers keep crashing in requests: replacing them at most 2 per second"),
        "{log}"
    );
    // 2 per second; a token of slack at each edge of the window (what was
    // left in the bucket, a log line read late).
    assert!(
        budgeted as f64 <= 2.0 * window + 2.0,
        "{budgeted} budgeted forks in {window:.1} s\n{log}"
    );
    assert!(most <= 2, "{most} workers for --processes 2");
}

/// A worker that dies before it is ready (the app no longer imports) makes
/// the next fork wait, longer each time; once the app imports again the pool
/// fills up, and the surviving worker serves throughout.
#[test]
fn workers_failing_before_ready_back_off_and_the_pool_recovers() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let server = Server::start(&["--wsgi-file", &app.path(), "--processes", "2"]);
    let workers = server.wait_for_children(2, PROMPT);
    app.set_version_with("v2", "\nraise RuntimeError('broken on purpose')\n");
    send_signal(workers[0], "KILL");
    let delays = |s: &Server| -> Vec<u64> {
        s.log()
            .iter()
            .filter(|l| l.contains("workers keep dying before they are ready"))
            .filter_map(|l| {
                let rest = &l[l.find("next respawn in ")? + 16..];
                rest.split_whitespace().next()?.parse().ok()
            })
            .collect()
    };
    let deadline = Instant::now() + PROMPT;
    while delays(&server).iter().max() < Some(&400) {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        let r = get_once(server.port(), "/").expect("the surviving worker serves");
        assert_eq!(r.pid, Some(workers[1]));
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(delays(&server)[..4], [50, 100, 200, 400]);
    app.set_version("v3");
    let kids = wait_children_where(&server, "a worker with the fixed code", PROMPT, |k| {
        k.len() == 2 && k.contains(&workers[1])
    });
    let new = kids.iter().copied().find(|&p| p != workers[1]);
    let deadline = Instant::now() + PROMPT;
    loop {
        let r = get_once(server.port(), "/").expect("served");
        if r.pid == new && r.body == b"v3" {
            break;
        }
        assert!(Instant::now() < deadline, "the new worker never served");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Requests that segfault ready workers are not an import failure: each
/// worker is replaced at once (no back-off), and a normal request sent
/// between the crashes is answered promptly.
#[test]
fn request_crashes_are_replaced_at_once_and_normal_requests_still_served() {
    let _x = exclusive();
    let server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--min-worker-lifetime",
        "0",
    ]);
    let port = server.port();
    let mut latencies = Vec::new();
    for i in 1..=13 {
        let crash = get_once(port, "/segv");
        assert!(crash.is_err(), "/segv answered: {crash:?}");
        wait_log_count(&server, " died after ", i, PROMPT);
        if i % 4 == 0 || i == 13 {
            // Alone in the queue: no crash request shares its worker.
            let t = Instant::now();
            let normal = get_once(port, "/");
            latencies.push(t.elapsed());
            assert!(normal.is_ok(), "after {i} crashes: {normal:?}");
        }
    }
    let log = server.log_text();
    eprintln!("normal requests during the crash storm took {latencies:?}");
    assert_eq!(count_log(&server, "signal 11"), 13, "{log}");
    assert!(
        !log.contains("next respawn in"),
        "back-off for crashes:\n{log}"
    );
    let worst = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_secs(5),
        "a normal request took {worst:?} during the crash storm\n{log}"
    );
}
