//! Process options: --pidfile, --daemonize, --logto (+ SIGUSR1), --umask, --env.

use super::*;

#[test]
fn pidfile_has_the_master_pid_and_is_removed_on_exit() {
    let dir = TempDir::new("cfg-pidfile");
    let pidfile = dir.file("rwsgi.pid");
    let mut server = start(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--pidfile",
            &pidfile,
        ],
        &[],
    );
    let text = fs::read_to_string(&pidfile).expect("the pidfile exists once rwsgi is ready");
    assert_eq!(text.trim(), server.pid().to_string(), "pidfile {text:?}");
    server.signal("TERM");
    let status = server.wait_exit(PROMPT);
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(
        !Path::new(&pidfile).exists(),
        "the pidfile is still there after exit"
    );
}

/// Stops every rwsgi process whose command line names `tag` (a test's
/// temporary directory): the daemon and its workers, which are not our
/// children. TERM first, KILL after a few seconds.
struct Reaper {
    tag: String,
}

impl Reaper {
    fn processes(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                is_rwsgi_process(pid)
                    && fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(&self.tag))
                        .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for sig in ["TERM", "KILL"] {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            for pid in &left {
                send_signal(*pid, sig);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.processes().is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn daemonize_detaches_logs_to_the_file_and_writes_the_pidfile() {
    let dir = TempDir::new("cfg-daemon");
    let _reaper = Reaper {
        tag: dir.path().to_string_lossy().into_owned(),
    };
    let (log, pidfile) = (dir.file("rwsgi.log"), dir.file("rwsgi.pid"));
    let terminal = dir.file("terminal.txt");
    let out = fs::File::create(&terminal).unwrap();
    let started = Instant::now();
    let mut launcher = rwsgi(
        &[
            "--daemonize",
            &log,
            "--pidfile",
            &pidfile,
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
        ],
        &[],
    )
    .stdin(Stdio::null())
    .stdout(out.try_clone().unwrap())
    .stderr(out)
    .spawn()
    .expect("run rwsgi");
    let status = wait_child(&mut launcher, PROMPT, "rwsgi --daemonize");
    assert_eq!(status.code(), Some(0), "the launching command failed");
    eprintln!("rwsgi --daemonize returned after {:?}", started.elapsed());
    assert_eq!(
        fs::read_to_string(&terminal).unwrap(),
        "",
        "output on the terminal"
    );

    let text = wait_file(&log, "the daemon is ready", STARTUP, None, |t| {
        t.contains("] ready: ")
    });
    let pid: u32 = fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("no pidfile once ready ({e}); log:\n{text}"))
        .trim()
        .parse()
        .expect("a pid in the pidfile");
    assert_ne!(pid, launcher.id(), "the pidfile has the launcher's pid");
    assert!(is_rwsgi_process(pid), "pid {pid} is not a running rwsgi");
    assert!(
        text.contains(&format!("master pid {pid} ")),
        "the pidfile's {pid} is not the master's; log:\n{text}"
    );
    // Detached: not our child, in a session of its own.
    assert_ne!(proc_status(pid, "PPid"), [std::process::id()]);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let own_stat = fs::read_to_string("/proc/self/stat").unwrap();
    let own: Vec<&str> = own_stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_ne!(fields[3], own[3], "the daemon is still in our session");

    // It serves, and its access log goes to the file.
    let addr = http_addr(&text);
    assert_eq!(get(&addr, "/daemon-check"), (200, "Hello, World!".into()));
    wait_file(&log, "the access-log line", PROMPT, None, |t| {
        t.contains("\"GET /daemon-check HTTP/1.0\" 200")
    });

    // Stopped through its pidfile.
    send_signal(pid, "TERM");
    assert!(wait_gone(pid, PROMPT), "the daemon did not exit after TERM");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("master exiting with code 0"), "log:\n{text}");
    assert!(
        !Path::new(&pidfile).exists(),
        "the pidfile outlived the daemon"
    );
}

/// A relative --logto is the start directory's, also when the workers,
/// after --chdir, reopen it on USR1.
#[test]
fn a_relative_logto_stays_in_the_start_directory_after_chdir() {
    let dir = TempDir::new("cfg-logto-rel");
    fs::create_dir(dir.path().join("app")).unwrap();
    let log = dir.file("rel.log");
    let hello = app("hello.py");
    let mut cmd = rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &hello,
            "--chdir",
            "app",
            "--logto",
            "rel.log",
        ],
        &[],
    );
    cmd.current_dir(dir.path());
    let mut server = Server::spawn_command(cmd);
    wait_file(&log, "ready", STARTUP, Some(&mut server), |t| {
        t.contains("] ready: ")
    });
    let worker = server.wait_for_children(1, PROMPT)[0];
    fs::rename(&log, dir.file("rel.log.1")).unwrap();
    server.signal("USR1");
    let reopened = format!("[pid {worker}] reopened the log file");
    wait_file(
        &log,
        "the worker reopened the log",
        PROMPT,
        Some(&mut server),
        |t| t.contains(&reopened),
    );
    assert!(
        !dir.path().join("app/rel.log").exists(),
        "the worker reopened the log under --chdir"
    );
}

#[test]
fn logto_is_reopened_on_sigusr1() {
    let dir = TempDir::new("cfg-logto");
    let log = dir.file("rwsgi.log");
    let rotated = dir.file("rwsgi.log.1");
    let mut server = Server::spawn_command(rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--processes",
            "2",
            "--logto",
            &log,
        ],
        &[],
    ));
    let text = wait_file(&log, "ready", STARTUP, Some(&mut server), |t| {
        t.contains("] ready: ")
    });
    assert!(
        server.log().is_empty(),
        "with --logto nothing goes to stderr:\n{}",
        server.log_text()
    );
    let addr = http_addr(&text);
    let workers = server.wait_for_children(2, PROMPT);
    assert_eq!(get(&addr, "/before"), (200, "Hello, World!".into()));
    wait_file(
        &log,
        "the first access-log line",
        PROMPT,
        Some(&mut server),
        |t| t.contains("\"GET /before HTTP/1.0\" 200"),
    );

    // logrotate: move the file away, then USR1 to the master.
    fs::rename(&log, &rotated).unwrap();
    server.signal("USR1");
    let reopened = |pid: u32| format!("[pid {pid}] reopened the log file");
    let master = server.pid();
    wait_file(
        &log,
        "every process reopened the log",
        PROMPT,
        Some(&mut server),
        |t| {
            std::iter::once(master)
                .chain(workers.iter().copied())
                .all(|pid| t.contains(&reopened(pid)))
        },
    );
    // Whichever worker takes them, new requests are logged in the new file.
    for i in 0..4 {
        assert_eq!(
            get(&addr, &format!("/after-{i}")),
            (200, "Hello, World!".into())
        );
    }
    wait_file(
        &log,
        "the new access-log lines",
        PROMPT,
        Some(&mut server),
        |t| (0..4).all(|i| t.contains(&format!("\"GET /after-{i} HTTP/1.0\" 200"))),
    );
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("GET /before"), "{old}");
    assert!(
        !old.contains("GET /after-"),
        "new lines went to the old file:\n{old}"
    );
}

#[test]
fn umask_applies_to_the_files_rwsgi_creates() {
    for (mask, mode) in [("077", 0o600), ("027", 0o640)] {
        let dir = TempDir::new("cfg-umask");
        let pidfile = dir.file("rwsgi.pid");
        let _server = start(
            &[
                "--http",
                "127.0.0.1:0",
                "--wsgi-file",
                &app("hello.py"),
                "--umask",
                mask,
                "--pidfile",
                &pidfile,
            ],
            &[],
        );
        let meta = fs::metadata(&pidfile).expect("the pidfile");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "--umask {mask}: pidfile mode {:o}",
            meta.permissions().mode() & 0o777
        );
    }
}

#[test]
fn env_reaches_the_app() {
    let server = start(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("cfg_env.py"),
            "--env",
            "FOO=bar",
            "--env",
            "WITH_EQUALS=a=b",
        ],
        &[],
    );
    let addr = server.listening("http")[0].clone();
    assert_eq!(get(&addr, "/FOO"), (200, "bar".into()));
    assert_eq!(get(&addr, "/WITH_EQUALS"), (200, "a=b".into()));
    assert_eq!(get(&addr, "/RWSGI_NOT_SET"), (200, "<unset>".into()));
}
