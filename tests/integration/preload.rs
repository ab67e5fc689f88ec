//! `--preload`: workers forked from a template share its memory, the
//! post-fork hooks run once in each worker, fork-unsafe imports are named,
//! and the mode is chosen and reported as documented. (Supervision under
//! preload — HUP, crashes, the template's death — is in
//! `supervision/preload.rs`.)

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::harness::{app, apps_dir, Server, TempDir, PROMPT};
use crate::http::Client;

const MIB: u64 = 1024 * 1024;

/// `/state` of whichever worker answers a fresh connection.
fn state(port: u16) -> HashMap<String, String> {
    let r = Client::connect(port).get("/state");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `/state` of every worker in `pids`, asking until each has answered.
fn states_of(port: u16, pids: &[u32]) -> HashMap<u32, HashMap<String, String>> {
    let deadline = Instant::now() + PROMPT;
    let mut seen = HashMap::new();
    while seen.len() < pids.len() {
        assert!(
            Instant::now() < deadline,
            "only {seen:?} of {pids:?} answered"
        );
        let s = state(port);
        let pid: u32 = s["pid"].parse().expect("pid");
        seen.insert(pid, s);
    }
    seen
}

/// The template's pid, from its `ready` line.
fn template_pid(server: &mut Server) -> u32 {
    let line = server.wait_for_log("template (pid ", PROMPT);
    let rest = &line[line.find("template (pid ").unwrap() + 14..];
    rest[..rest.find(')').unwrap()]
        .parse()
        .expect("template pid")
}

/// (shared, private) bytes of a process, from /proc/PID/smaps_rollup.
fn shared_private(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    let (mut shared, mut private) = (0, 0);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(key), Some(kb)) = (f.next(), f.next()) else {
            continue;
        };
        let kb: u64 = kb.parse().unwrap_or(0);
        match key {
            "Shared_Clean:" | "Shared_Dirty:" => shared += kb * 1024,
            "Private_Clean:" | "Private_Dirty:" => private += kb * 1024,
            _ => {}
        }
    }
    (shared, private)
}

#[test]
fn preloaded_workers_share_the_templates_memory_even_after_collections() {
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("preload_app.py"),
        "--preload",
        "--processes",
        "2",
        "--disable-logging",
        "--stats",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let ready = server.wait_for_log("] ready: ", PROMPT);
    assert!(
        ready.contains("preload: workers forked from template pid"),
        "{ready}"
    );
    assert!(
        ready.contains("private") && ready.contains("shared"),
        "{ready}"
    );
    let template = template_pid(&mut server);
    let workers = server.logged_worker_pids();
    assert_eq!(workers.len(), 2);
    for s in states_of(server.port(), &workers).values() {
        assert_eq!(
            s["imported_in"],
            template.to_string(),
            "imported once, in the template"
        );
        assert_eq!(s["preload"], "True");
    }
    // DATA is ~30 MiB of tracked objects built by the template's import.
    for &w in &workers {
        let (shared, private) = shared_private(w);
        assert!(
            shared > 30 * MIB,
            "worker {w}: shared {shared}, private {private}"
        );
        assert!(
            private < shared,
            "worker {w}: shared {shared}, private {private}"
        );
    }
    // gc.freeze() keeps collections from writing to the frozen objects, so
    // the pages stay shared after many requests that each collect.
    let before: Vec<u64> = workers.iter().map(|&w| shared_private(w).0).collect();
    for _ in 0..40 {
        assert_eq!(
            Client::connect(server.port()).get("/gc").text(),
            "collected"
        );
    }
    for (i, &w) in workers.iter().enumerate() {
        let (shared, private) = shared_private(w);
        assert!(
            shared * 10 >= before[i] * 8 && private < 25 * MIB,
            "worker {w} after collections: shared {shared} (was {}), private {private}",
            before[i]
        );
    }
    // The stats document and /metrics show the split for each worker.
    let stats = read_to_end(&endpoint(&server, "Stats"));
    let workers_json = &stats[stats.find("\"workers\":").expect("workers")..];
    let shared: Vec<u64> = workers_json
        .match_indices("\"shared\":")
        .filter_map(|(i, m)| {
            let rest = &workers_json[i + m.len()..];
            rest[..rest.find(|c: char| !c.is_ascii_digit())?]
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(shared.len(), 2, "{stats}");
    assert!(shared.iter().all(|&b| b > 30 * MIB), "{stats}");
    assert!(
        stats.contains("\"uss\":") && stats.contains("\"pss\":"),
        "{stats}"
    );
    let metrics_addr = endpoint(&server, "Metrics");
    let metrics_port: u16 = metrics_addr.rsplit(':').next().unwrap().parse().unwrap();
    let metrics = Client::connect(metrics_port).get("/metrics").text();
    for w in &workers {
        for kind in ["pss", "uss", "shared"] {
            let sample = format!("rwsgi_worker_{kind}_bytes{{worker=");
            let pid = format!("pid=\"{w}\"");
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with(&sample) && l.contains(&pid)),
                "{kind} of {w} in {metrics}"
            );
        }
    }
}

/// The address the master logged as `KIND endpoint on ADDR (fd N)`.
fn endpoint(server: &Server, kind: &str) -> String {
    let marker = format!("] {kind} endpoint on ");
    server
        .log()
        .iter()
        .find_map(|l| {
            let rest = &l[l.find(&marker)? + marker.len()..];
            Some(rest.rsplit_once(" (fd ")?.0.to_string())
        })
        .unwrap_or_else(|| panic!("no {marker:?} line; log:\n{}", server.log_text()))
}

fn read_to_end(addr: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the stats socket");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the stats document");
    out
}

#[test]
fn without_preload_each_worker_imports_and_shares_little() {
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("preload_app.py"),
        "--processes",
        "2",
        "--disable-logging",
    ]);
    let ready = server.wait_for_log("] ready: ", PROMPT);
    assert!(
        ready.contains("lazy apps: each worker imported the app"),
        "{ready}"
    );
    let workers = server.logged_worker_pids();
    for (pid, s) in states_of(server.port(), &workers) {
        assert_eq!(s["imported_in"], pid.to_string());
        assert_eq!(s["preload"], "False");
        // The hooks run in both modes, once, after the import.
        assert_eq!(s["ran"], format!("decorator:{pid}"));
        let (shared, private) = shared_private(pid);
        assert!(
            private > 30 * MIB,
            "worker {pid}: shared {shared}, private {private}"
        );
    }
}

#[test]
fn post_fork_hooks_run_once_in_each_worker_after_its_fork() {
    let server = Server::start(&[
        "--wsgi-file",
        &app("preload_app.py"),
        "--pythonpath",
        &apps_dir().to_string_lossy(),
        "--post-fork",
        "preload_app:hook",
        "--preload",
        "--processes",
        "3",
        "--threads",
        "2",
        "--disable-logging",
    ]);
    let workers = server.logged_worker_pids();
    let states = states_of(server.port(), &workers);
    let mut randoms = Vec::new();
    for (pid, s) in &states {
        // The decorator's hook (registered at import), then --post-fork's,
        // each exactly once, in the worker itself (not in the template).
        assert_eq!(
            s["ran"],
            format!("decorator:{pid},post-fork:{pid}"),
            "{s:?}"
        );
        assert_eq!(s["ppid"], server.pid().to_string(), "the master's child");
        randoms.push(s["random"].clone());
    }
    randoms.sort();
    randoms.dedup();
    assert_eq!(
        randoms.len(),
        3,
        "random was reseeded in each worker: {states:?}"
    );
}

#[test]
fn a_failing_post_fork_hook_stops_the_start_with_status_4() {
    let dir = TempDir::new("preload-hook");
    let hooks = dir.file("bad_hooks.py");
    std::fs::write(
        &hooks,
        "def boom():\n    raise RuntimeError('no database')\n",
    )
    .unwrap();
    let mut server = Server::spawn(&[
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--pythonpath",
        &dir.path().to_string_lossy(),
        "--post-fork",
        "bad_hooks:boom",
        "--preload",
    ]);
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(4), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("post-fork hook boom failed") && log.contains("no database"),
        "{log}"
    );
}

#[test]
fn threads_and_sockets_left_by_the_import_are_named_in_a_warning() {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let connect = format!("PRELOAD_CONNECT={port}");
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("preload_app.py"),
        "--env",
        "PRELOAD_THREAD=1",
        "--env",
        &connect,
        "--preload",
    ]);
    let threads = server.wait_for_log("besides the main one", PROMPT);
    assert!(threads.contains("poller"), "{threads}");
    assert!(threads.contains("post-fork hook"), "{threads}");
    let sockets = server.wait_for_log("the import opened", PROMPT);
    assert!(sockets.contains(&format!("127.0.0.1:{port}")), "{sockets}");
    // Still serving: a warning, not a refusal.
    assert_eq!(Client::connect(server.port()).get("/").text(), "ok");
}

#[test]
fn lazy_apps_turns_preload_off_and_the_file_and_env_turn_it_on() {
    let server = Server::start(&["--wsgi-file", &app("hello.py"), "--preload", "--lazy-apps"]);
    assert!(server
        .log_text()
        .contains("lazy apps: each worker imported the app"));
    assert!(!server.log_text().contains("template (pid"));
    drop(server);

    let dir = TempDir::new("preload-toml");
    let toml = dir.file("rwsgi.toml");
    std::fs::write(&toml, "[app]\npreload = true\n").unwrap();
    let server = Server::start(&["--wsgi-file", &app("hello.py"), "--config", &toml]);
    assert!(server
        .log_text()
        .contains("preload: workers forked from template"));
    drop(server);

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(["--http", "127.0.0.1:0", "--wsgi-file", &app("hello.py")])
        .env("RWSGI_PRELOAD", "true");
    let mut server = Server::spawn_command(cmd);
    let ready = server.wait_for_log("] ready: ", PROMPT);
    assert!(
        ready.contains("preload: workers forked from template"),
        "{ready}"
    );
}

#[test]
fn a_post_fork_value_that_is_not_module_colon_callable_is_refused() {
    let mut server = Server::spawn(&[
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--post-fork",
        "hooks",
    ]);
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(2), "{}", server.log_text());
    assert!(server.log_text().contains("expected MODULE:CALLABLE"));
}

#[test]
fn preload_imports_a_module_after_chdir_with_threads() {
    let server = Server::start(&[
        "--chdir",
        &apps_dir().to_string_lossy(),
        "--module",
        "preload_app",
        "--preload",
        "--threads",
        "4",
        "--processes",
        "2",
        "--disable-logging",
    ]);
    let s = state(server.port());
    assert_eq!(s["cwd"], apps_dir().to_string_lossy());
    assert_eq!(s["items"], "300000");
    // Each worker started its own app threads after the fork.
    let workers = server.logged_worker_pids();
    let deadline = Instant::now() + PROMPT;
    for w in workers {
        let threads = || std::fs::read_dir(format!("/proc/{w}/task")).map_or(0, |d| d.count());
        while threads() < 5 {
            assert!(
                Instant::now() < deadline,
                "worker {w} has {} threads",
                threads()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn preload_runs_the_template_and_workers_in_the_virtualenv() {
    let venv = crate::flask::venv();
    let mut server = Server::start(&[
        "--home",
        venv.to_str().unwrap(),
        "--pythonpath",
        apps_dir().to_str().unwrap(),
        "--module",
        "flask_app:app",
        "--preload",
        "--processes",
        "2",
    ]);
    template_pid(&mut server);
    let r = Client::connect(server.port()).get("/where");
    assert_eq!(r.status, 200, "{}", r.text());
    let prefix = r.text().lines().next().unwrap_or_default().to_string();
    assert_eq!(
        std::path::Path::new(&prefix).canonicalize().unwrap(),
        venv.canonicalize().unwrap(),
        "sys.prefix is not the venv"
    );
}

/// Harakiri reaches a preloaded worker as any other: the stuck thread's
/// stack is dumped, the client gets 504, and the replacement is a fork.
#[test]
fn harakiri_in_a_preloaded_worker_dumps_stacks_answers_504_and_forks_a_successor() {
    use std::io::Write;
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("threads_app.py"),
        "--preload",
        "--threads",
        "2",
        "--harakiri",
        "1",
    ]);
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    stuck
        .write_all(&crate::http::request("GET", "/sleep?ms=10000", &[], b""))
        .expect("send");
    let line = server.wait_for_log("harakiri: worker 1", Duration::from_secs(5));
    assert!(line.contains("\"GET /sleep?ms=10000\""), "{line}");
    server.wait_for_log("threads_app.py\", line", PROMPT);
    let r = Client::from_stream(stuck)
        .read_response(false)
        .expect("the 504");
    assert_eq!(r.status, 504);
    // The successor (a fork of the template) is ready too.
    let deadline = Instant::now() + PROMPT;
    while server.log_text().matches("ms after its fork").count() < 2 {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.log_text().matches("imported the app in").count(), 1);
}
