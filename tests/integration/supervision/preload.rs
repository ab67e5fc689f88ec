//! Supervision under `--preload`: HUP loads new code through a new template
//! with no failed request, a broken new version changes nothing, crashed and
//! recycled workers come from the template, and a SIGKILLed template is
//! restarted while the workers keep serving.

use super::*;

fn template_of(server: &Server) -> u32 {
    let log = server.log();
    let line = log
        .iter()
        .rev()
        .find(|l| l.contains(") ready after"))
        .unwrap_or_else(|| panic!("no template ready:\n{}", server.log_text()));
    pid_in(line, "template (pid ")
}

fn start_preloaded(app_path: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--wsgi-file",
        app_path,
        "--preload",
        "--processes",
        "2",
        "--disable-logging",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn preload_hup_under_load_serves_the_new_code_and_drops_nothing() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let server = start_preloaded(&app.path(), &[]);
    let old_template = template_of(&server);
    let load = Load::start(server.port(), &LoadSpec::new(4, 4, "/"));
    load.run_for(Duration::from_millis(1000), 200, PROMPT);
    let old = server.children();
    app.set_version("v2");
    server.signal("HUP");
    wait_log_count(&server, "reload complete: 2 worker(s)", 1, PROMPT);
    let done_at = Instant::now();
    // The old template is stopped once the reload completes.
    let now = wait_children_where(&server, "the old template and workers gone", PROMPT, |k| {
        old.iter().all(|p| !k.contains(p))
    });
    let new_template = template_of(&server);
    assert_ne!(new_template, old_template);
    assert!(now.contains(&new_template), "{now:?}");
    load.run_for(Duration::from_millis(1000), 200, PROMPT);
    let report = load.finish();
    eprintln!("HUP (preload): {}", report.summary());
    report.assert_no_failures("HUP under --preload");
    let stale: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.start > done_at && o.body() != Some(b"v2"))
        .take(5)
        .map(|o| o.to_string())
        .collect();
    assert!(stale.is_empty(), "after the reload: {stale:?}");
    // The new workers were forked by the new template: one import per template.
    assert_eq!(count_log(&server, "imported the app in"), 2);
}

#[test]
fn preload_a_new_version_that_does_not_import_keeps_the_old_one_serving() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let server = start_preloaded(&app.path(), &[]);
    let template = template_of(&server);
    let before = server.children();
    app.set_version_with("v2", "\nraise RuntimeError('v2 is broken')\n");
    server.signal("HUP");
    wait_log_count(
        &server,
        "reload failed: the new code does not load",
        1,
        PROMPT,
    );
    assert!(server.log_text().contains("v2 is broken"));
    assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v1");
    let mut after = server.children();
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(after, before, "the same template and workers");
    assert_eq!(template_of(&server), template);
    // A fixed version then loads.
    app.set_version("v3");
    server.signal("HUP");
    wait_log_count(&server, "reload complete: 2 worker(s)", 1, PROMPT);
    assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v3");
}

/// New code that imports but whose workers cannot start (a failing
/// post-fork hook): the reload is abandoned and the previous template, kept
/// until the reload completes, forks the old code again.
#[test]
fn preload_a_new_version_whose_workers_fail_falls_back_to_the_old_template() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let server = start_preloaded(&app.path(), &[]);
    let old_template = template_of(&server);
    let hook =
        "\nimport rwsgi\n\n@rwsgi.postfork\ndef boom():\n    raise RuntimeError('no db in v2')\n";
    app.set_version_with("v2", hook);
    server.signal("HUP");
    wait_log_count(&server, "reload failed", 1, PROMPT);
    wait_log_count(&server, "fork from the previous template", 1, PROMPT);
    assert!(server.log_text().contains("no db in v2"));
    assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v1");
    // A replacement for a crashed worker comes from the old template: v1.
    let victim = server.logged_worker_pids()[0];
    send_signal(victim, "KILL");
    let kids = wait_children_where(&server, "2 workers and the template", PROMPT, |k| {
        k.len() == 3 && !k.contains(&victim) && k.contains(&old_template)
    });
    for _ in 0..10 {
        assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v1");
    }
    assert!(kids.contains(&old_template));
}

#[test]
fn preload_crashed_and_recycled_workers_are_forked_from_the_template() {
    let _x = exclusive();
    let server = start_preloaded(
        &app("sup_app.py"),
        &["--max-requests", "20", "--min-worker-lifetime", "0"],
    );
    let template = template_of(&server);
    let workers = server.logged_worker_pids();
    send_signal(workers[0], "KILL");
    wait_log_count(&server, "spawned worker", 3, PROMPT);
    // Recycling: 100 requests retire workers at 20 each.
    for _ in 0..100 {
        assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v1");
    }
    wait_log_count(&server, "spawned worker", 5, PROMPT);
    // Nobody imported the app again, and every worker is the master's child.
    assert_eq!(count_log(&server, "imported the app in"), 1);
    assert_eq!(template_of(&server), template);
    let kids = wait_children_where(&server, "template + 2 workers", PROMPT, |k| k.len() == 3);
    for w in server.logged_worker_pids().iter().rev().take(2) {
        assert!(
            kids.contains(w) || !is_rwsgi_process(*w),
            "{w} not the master's child"
        );
    }
    // The master measures fork-to-ready for each of them.
    assert!(count_log(&server, "ms after its fork") >= 5);
}

#[test]
fn preload_a_sigkilled_template_is_restarted_and_serving_never_stops() {
    let _x = exclusive();
    let server = start_preloaded(&app("sup_app.py"), &[]);
    let template = template_of(&server);
    let load = Load::start(server.port(), &LoadSpec::new(2, 2, "/"));
    load.run_for(Duration::from_millis(500), 100, PROMPT);
    send_signal(template, "KILL");
    wait_log_count(
        &server,
        &format!("template (pid {template}) died"),
        1,
        PROMPT,
    );
    wait_log_count(&server, "ready after", 2, PROMPT);
    let restarted = template_of(&server);
    assert_ne!(restarted, template);
    load.run_for(Duration::from_millis(500), 100, PROMPT);
    // Workers fork from the new template.
    let worker = server.logged_worker_pids()[0];
    send_signal(worker, "KILL");
    wait_log_count(&server, "spawned worker", 3, PROMPT);
    load.run_for(Duration::from_millis(500), 100, PROMPT);
    let report = load.finish();
    // Only requests on the killed worker's connections may fail.
    assert!(report.failures().len() <= 4, "{}", report.describe());
    // TERM stops the template with the workers.
    let mut server = server;
    server.signal("TERM");
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    assert!(server
        .log_text()
        .contains(&format!("template (pid {restarted}) stopped")));
}

/// A template that does not answer a fork request in time (here: stopped)
/// costs the master a bounded wait; the worker it forks late is killed, not
/// left serving unsupervised, and the pool is refilled.
#[test]
fn preload_a_worker_forked_after_the_master_gave_up_is_killed() {
    let _x = exclusive();
    let server = start_preloaded(&app("sup_app.py"), &["--processes", "1"]);
    let template = template_of(&server);
    let worker = server.logged_worker_pids()[0];
    send_signal(template, "STOP");
    send_signal(worker, "KILL");
    wait_log_count(&server, "did not answer within", 1, PROMPT);
    send_signal(template, "CONT");
    wait_log_count(
        &server,
        "forked for a request the master gave up on: killed",
        1,
        PROMPT,
    );
    // A worker the pool knows is forked, and it is the one that serves.
    let kids = wait_children_where(&server, "the template and a known worker", PROMPT, |k| {
        let known = server.logged_worker_pids();
        k.len() == 2
            && k.contains(&template)
            && k.iter().all(|p| *p == template || known.contains(p))
    });
    let serving = *kids.iter().find(|&&p| p != template).unwrap();
    let r = get_once(server.port(), "/").expect("GET /");
    assert_eq!((r.pid, r.body), (Some(serving), b"v1".to_vec()));
}

/// A template restarted while the code on disk does not import backs off
/// like workers that die before they are ready; the workers keep serving,
/// and once the code imports again a template is back and forks workers.
#[test]
fn preload_template_restarts_back_off_while_the_code_does_not_import() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let server = start_preloaded(&app.path(), &[]);
    let template = template_of(&server);
    app.set_version_with("v2", "\nraise RuntimeError('v2 is broken')\n");
    send_signal(template, "KILL");
    wait_log_count(
        &server,
        "templates keep dying before they are ready",
        2,
        PROMPT,
    );
    assert!(server.log_text().contains("next start in"));
    // The workers forked from the dead template still serve the old code.
    for _ in 0..5 {
        assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v1");
    }
    app.set_version("v3");
    wait_log_count(&server, ") ready after", 2, PROMPT);
    let victim = server.logged_worker_pids()[0];
    send_signal(victim, "KILL");
    wait_log_count(&server, "spawned worker", 3, PROMPT);
    // The replacement comes from the new template: it serves v3.
    let successor = *server.logged_worker_pids().last().unwrap();
    let deadline = Instant::now() + PROMPT;
    loop {
        let r = get_once(server.port(), "/").expect("GET /");
        if r.pid == Some(successor) {
            assert_eq!(r.body, b"v3");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker {successor} never answered"
        );
    }
}

/// INT and QUIT (fast shutdown) stop the template with the workers.
#[test]
fn preload_int_and_quit_stop_the_template_too() {
    let _x = exclusive();
    for sig in ["INT", "QUIT"] {
        let mut server = start_preloaded(&app("sup_app.py"), &[]);
        let template = template_of(&server);
        server.signal(sig);
        assert_eq!(server.wait_exit(PROMPT).code(), Some(0), "{sig}");
        let log = server.log_text();
        assert!(
            log.contains(&format!("template (pid {template}) stopped")),
            "{sig}: {log}"
        );
        assert!(
            !is_rwsgi_process(template),
            "{sig}: the template outlived the master"
        );
    }
}

/// USR2 under --preload: the new master starts its own template and
/// workers; the old master stops its template with its workers and exits 0,
/// and no request fails.
#[test]
fn preload_usr2_upgrade_stops_the_old_template_and_drops_nothing() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let mut server = start_preloaded(&app.path(), &[]);
    let old_template = template_of(&server);
    let load = Load::start(server.port(), &LoadSpec::new(2, 2, "/"));
    load.run_for(Duration::from_millis(500), 100, PROMPT);
    app.set_version("v2");
    server.signal("USR2");
    let line = server.wait_for_log("upgrade: the new master (pid ", PROMPT);
    let new_master = pid_in(&line, "(pid ");
    // Not the harness's child: stopped however the test ends.
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            send_signal(self.0, "INT");
        }
    }
    let _stop = Stop(new_master);
    let status = server.wait_exit(PROMPT);
    assert!(status.success(), "the old master: {status}");
    assert!(
        server
            .log_text()
            .contains(&format!("template (pid {old_template}) stopped")),
        "{}",
        server.log_text()
    );
    assert!(
        !is_rwsgi_process(old_template),
        "the old template outlived its master"
    );
    load.run_for(Duration::from_millis(500), 100, PROMPT);
    let report = load.finish();
    report.assert_no_failures("USR2 under --preload");
    assert_eq!(get_once(server.port(), "/").expect("GET /").body, b"v2");
    // The new master and its own template and workers stop with INT.
    let kids = crate::harness::children_of(new_master);
    assert_eq!(kids.len(), 3, "template + 2 workers: {kids:?}");
    send_signal(new_master, "INT");
    let deadline = Instant::now() + PROMPT;
    while (is_rwsgi_process(new_master) || kids.iter().any(|&k| is_rwsgi_process(k)))
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!is_rwsgi_process(new_master) && kids.iter().all(|&k| !is_rwsgi_process(k)));
}

/// TERM with a --shutdown-delay while a reload's new template is importing
/// code that then fails: the failed reload must not undo the shutdown.
#[test]
fn preload_a_reload_failing_during_the_shutdown_delay_does_not_cancel_it() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let mut server = start_preloaded(&app.path(), &["--shutdown-delay", "1"]);
    app.set_version_with(
        "v2",
        "\nimport time\ntime.sleep(0.8)\nraise RuntimeError('v2 is broken')\n",
    );
    server.signal("HUP");
    server.wait_for_log("importing the app for a reload", PROMPT);
    server.signal("TERM");
    let term_at = Instant::now();
    server.wait_for_log("v2 is broken", PROMPT);
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        term_at.elapsed() >= Duration::from_millis(900),
        "exited {:?} after TERM, before the delay",
        term_at.elapsed()
    );
    assert!(!server.log_text().contains("ShuttingDown -> Running"));
}
