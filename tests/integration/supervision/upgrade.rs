//! USR2: upgrade in place. The master runs the binary again with the same
//! sockets; the new one serves, the old one stops its workers and exits,
//! and the pidfile moves as nginx's does (`.oldbin` while both run).

use super::*;
use crate::harness::{wait_for_file, TempDir};

/// Stops the master a test's upgrade started (it is not the harness's
/// child), however the test ends.
struct NewMaster(u32);

impl Drop for NewMaster {
    fn drop(&mut self) {
        send_signal(self.0, "INT");
        let deadline = Instant::now() + PROMPT;
        while is_rwsgi_process(self.0) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn pid_of(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// Under continuous load, USR2 hands the server to a new master running the
/// new code: no request fails, the old master exits 0 once the new one is
/// ready, the pidfile names the new master and `.oldbin` is gone.
#[test]
fn usr2_hands_over_to_a_new_master_without_dropping_a_request() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let dir = TempDir::new("upgrade");
    let pidfile = dir.path().join("rwsgi.pid");
    let oldbin = dir.path().join("rwsgi.pid.oldbin");
    let mut server = Server::start(&[
        "--wsgi-file",
        &app.path(),
        "--processes",
        "2",
        "--pidfile",
        pidfile.to_str().expect("a UTF-8 path"),
        "--disable-logging",
    ]);
    let old = server.pid();
    wait_for_file(&pidfile, "the old master's pid", PROMPT, |t| {
        pid_of(t) == Some(old)
    });
    let load = Load::start(server.port(), &LoadSpec::new(4, 4, "/"));
    load.run_for(Duration::from_millis(1000), 200, PROMPT);
    app.set_version("v2");
    server.signal("USR2");
    let line = server.wait_for_log("upgrade: the new master (pid ", PROMPT);
    let new = NewMaster(pid_in(&line, "(pid "));
    assert_ne!(new.0, old);
    let status = server.wait_exit(PROMPT);
    assert!(status.success(), "the old master: {status}");
    let done_at = Instant::now();
    load.run_for(Duration::from_millis(1000), 200, PROMPT);
    let report = load.finish();
    eprintln!("USR2: {}", report.summary());
    report.assert_no_failures("USR2 upgrade");
    let after: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| o.start > done_at)
        .map(body_text)
        .collect();
    assert!(
        after.len() >= 100,
        "{} responses after the handover",
        after.len()
    );
    assert!(
        after.iter().all(|v| v == "v2"),
        "the old code answered after the handover: {:?}",
        after
            .iter()
            .filter(|v| *v != "v2")
            .take(5)
            .collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(&pidfile).expect("the pidfile");
    assert_eq!(
        pid_of(&text),
        Some(new.0),
        "the pidfile names the new master"
    );
    assert!(!oldbin.exists(), "{} left behind", oldbin.display());
    assert!(is_rwsgi_process(new.0), "the new master is serving");
}

/// A new master whose code does not load exits; the old one keeps serving
/// on its sockets (the unix socket file too), with its pidfile back, and a
/// later USR2 with working code succeeds.
#[test]
fn a_failed_usr2_upgrade_leaves_the_old_master_serving() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let dir = TempDir::new("upgrade-fail");
    let pidfile = dir.path().join("rwsgi.pid");
    let sock = dir.path().join("app.sock");
    let mut server = Server::start(&[
        "--wsgi-file",
        &app.path(),
        "--socket",
        sock.to_str().expect("a UTF-8 path"),
        "--vacuum",
        "--pidfile",
        pidfile.to_str().expect("a UTF-8 path"),
    ]);
    let old = server.pid();
    app.set_version_with("v2", "raise RuntimeError('broken v2')");
    server.signal("USR2");
    server.wait_for_log("upgrade failed: the new master (pid ", PROMPT);
    assert!(
        server.log_text().contains("broken v2"),
        "the new master's traceback is in the log"
    );
    wait_for_file(&pidfile, "the old master's pid back", PROMPT, |t| {
        pid_of(t) == Some(old)
    });
    assert!(sock.exists(), "the failed master removed the socket file");
    for _ in 0..20 {
        let r = get_once(server.port(), "/").expect("the old master serves");
        assert_eq!(r.body, b"v1");
    }
    assert!(server.try_wait().is_none(), "the old master exited");

    app.set_version("v3");
    server.signal("USR2");
    let line = server.wait_for_log("upgrade: the new master (pid ", PROMPT);
    let new = NewMaster(pid_in(&line, "(pid "));
    assert!(server.wait_exit(PROMPT).success());
    assert_eq!(get_once(server.port(), "/").expect("served").body, b"v3");
    assert!(
        sock.exists(),
        "the old master removed the new one's socket file"
    );
    drop(new);
    assert!(
        !sock.exists(),
        "--vacuum: the new master removes its socket file"
    );
}

/// TERM to the old master while the new one is still starting leaves the
/// shared socket alone (no server-wide shut): the new master serves on it.
#[test]
fn term_to_the_old_master_during_an_upgrade_leaves_the_socket_to_the_new_one() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let mut server = Server::start(&["--wsgi-file", &app.path(), "--processes", "2"]);
    let port = server.port();
    app.set_version_with("v2", "import time; time.sleep(2)");
    server.signal("USR2");
    let line = server.wait_for_log("SIGUSR2: started the new master (pid ", PROMPT);
    let new = NewMaster(pid_in(&line, "(pid "));
    server.signal("TERM");
    server.wait_for_log("the sockets are left to the new master", PROMPT);
    assert!(server.wait_exit(PROMPT).success());
    // The new master finishes starting and serves on the same socket.
    let deadline = Instant::now() + PROMPT;
    let reply = loop {
        match get_once(port, "/") {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < deadline, "nothing serves on {port}: {e:?}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(reply.body, b"v2");
    assert!(is_rwsgi_process(new.0));
}

/// USR2 while a reload is under way is refused with a log line, not
/// ignored in silence.
#[test]
fn usr2_during_a_reload_is_refused_with_a_reason() {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let mut server = Server::start(&["--wsgi-file", &app.path()]);
    app.set_version_with("v2", "import time; time.sleep(3)");
    server.signal("HUP");
    server.wait_for_log("master phase: Running -> Reloading", PROMPT);
    server.signal("USR2");
    let line = server.wait_for_log("SIGUSR2 ignored: ", PROMPT);
    assert!(line.contains("Reloading"), "{line}");
    assert!(
        !server.log_text().contains("started the new master"),
        "{}",
        server.log_text()
    );
}
