//! Supervision under real load (DESIGN §2): a SIGKILLed worker is replaced,
//! HUP reloads and recycling drop no request, TERM drains, harakiri ends a
//! stuck request, TTIN/TTOU resize the pool, a crash loop backs off, and the
//! master's phases follow Starting → Running → Reloading → Running →
//! ShuttingDown.
//!
//! The tests in this file run one at a time (`exclusive`): each drives the
//! machine hard, and their deadlines assume they do not compete with each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{app, is_rwsgi_process, Server, PROMPT};
use crate::load::{
    get_once, get_request, Connection, Failure, Load, LoadSpec, Mode, Outcome, Reply,
};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Serialises the tests of this file (a failed test must not block the rest).
fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Log lines containing `pattern`.
fn count_log(server: &Server, pattern: &str) -> usize {
    server.log().iter().filter(|l| l.contains(pattern)).count()
}

/// Waits until at least `n` log lines contain `pattern`.
fn wait_log_count(server: &Server, pattern: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while count_log(server, pattern) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} log lines {pattern:?} within {timeout:?}; log:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the master's children until `pred` holds; returns them.
fn wait_children_where(
    server: &Server,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[u32]) -> bool,
) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let kids = server.children();
        if pred(&kids) {
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "children {kids:?}: {what} not within {timeout:?}; log:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The `(from, to)` of every `master phase: From -> To` line, in order.
fn phase_transitions(server: &Server) -> Vec<(String, String)> {
    server
        .log()
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("master phase: ")? + 14..];
            let (from, to) = rest.split_once(" -> ")?;
            Some((from.trim().to_string(), to.trim().to_string()))
        })
        .collect()
}

/// The number after `pid=` / `(pid ` in a log line.
fn pid_in(line: &str, marker: &str) -> u32 {
    let rest = &line[line
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in {line:?}"))
        + marker.len()..];
    rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())]
        .parse()
        .unwrap_or_else(|_| panic!("no pid after {marker:?} in {line:?}"))
}

/// A copy of `etc/apps/sup_app.py` in a fresh temporary directory, whose
/// `VERSION` the test rewrites (the server must serve the new code after HUP).
struct TempApp {
    dir: PathBuf,
    file: PathBuf,
    template: String,
}

impl TempApp {
    fn new(version: &str) -> TempApp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-supervision-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        let template = std::fs::read_to_string(app("sup_app.py")).expect("read sup_app.py");
        assert!(
            template.contains("\nVERSION = \"v1\"\n"),
            "sup_app.py changed"
        );
        let app = TempApp {
            file: dir.join("sup_app.py"),
            dir,
            template,
        };
        app.set_version(version);
        app
    }

    /// Rewrites the file. Each version has a different file size: CPython
    /// trusts a cached .pyc whose source has the same size and mtime (in whole
    /// seconds), so an equal-size rewrite within the second could go unseen.
    fn set_version(&self, version: &str) {
        let padding = "#".repeat(version.len() * 7 + 1);
        let text = self.template.replace(
            "\nVERSION = \"v1\"\n",
            &format!("\nVERSION = \"{version}\"  {padding}\n"),
        );
        std::fs::write(&self.file, text).expect("write the app");
    }

    fn path(&self) -> String {
        self.file.to_string_lossy().into_owned()
    }
}

impl Drop for TempApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn body_text(o: &Outcome) -> String {
    String::from_utf8_lossy(o.body().unwrap_or_default()).into_owned()
}

// ---------------------------------------------------------------------------

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

/// HUP twice under continuous load (keep-alive and connection-per-request
/// clients): no request fails, and once `reload complete` is logged every
/// response comes from the new code.
fn hup_under_load_drops_nothing(mode: &str) {
    let _x = exclusive();
    let app = TempApp::new("v1");
    let server = Server::start(&[
        "--wsgi-file",
        &app.path(),
        "--processes",
        "2",
        "--reload-mode",
        mode,
        "--disable-logging",
    ]);
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
    hup_under_load_drops_nothing("rolling");
}

#[test]
fn hup_all_under_load_drops_no_request_and_serves_the_new_code() {
    hup_under_load_drops_nothing("all");
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
fn max_requests_recycles_workers_under_load_without_failures() {
    let _x = exclusive();
    let server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--max-requests",
        "100",
        "--min-worker-lifetime",
        "0",
        "--disable-logging",
    ]);
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
    let _x = exclusive();
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("sup_app.py"),
        "--processes",
        "2",
        "--no-defer-accept", // see probe_until_refused
    ]);
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
    assert!(
        matches!(slow_result, Err(Failure::NoResponse(_))),
        "the stuck request should end without a response: {slow_result:?}"
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
    wait_children_where(&server, "the stuck worker replaced", PROMPT, |k| {
        k.len() == 2 && !k.contains(&victim)
    });
    assert!(get_once(port, "/").is_ok());
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
fn crash_loop_backs_off_instead_of_forking_in_a_loop() {
    let _x = exclusive();
    let server = Server::start(&["--wsgi-file", &app("sup_crash.py"), "--processes", "2"]);
    // Every request kills the worker that takes it.
    let load = Load::start(server.port(), &LoadSpec::new(0, 4, "/"));
    wait_log_count(&server, " died after ", 1, PROMPT);
    let crashing = Instant::now();
    // Measure the fork rate over 2 s, after the first second of the crash loop.
    let window_start = crashing + Duration::from_secs(1);
    thread::sleep(window_start.saturating_duration_since(Instant::now()));
    let spawned_before = count_log(&server, "spawned worker ");
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let spawned = count_log(&server, "spawned worker ") - spawned_before;
    let window = t0.elapsed().as_secs_f64();
    drop(load);
    let rate = spawned as f64 / window;
    let deaths = count_log(&server, " died after ");
    let log = server.log_text();
    eprintln!("crash loop: {deaths} deaths, {spawned} forks in {window:.1} s ({rate:.1}/s)");
    assert!(
        deaths >= 4,
        "the app did not crash-loop: {deaths} deaths\n{log}"
    );
    assert!(rate <= 10.0, "{spawned} forks in {window:.1} s\n{log}");
    let delays: Vec<u64> = server
        .log()
        .iter()
        .filter(|l| l.contains("workers keep dying right after start"))
        .filter_map(|l| {
            let rest = &l[l.find("next respawn in ")? + 16..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    assert!(!delays.is_empty(), "no back-off logged:\n{log}");
    assert!(
        delays.iter().max() >= Some(&400),
        "the back-off does not grow: {delays:?}"
    );
    assert!(
        server.children().len() <= 2,
        "more workers than --processes"
    );
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
