//! `--logto` and `--pidfile` are never written through a symbolic link, a
//! hard link or a file someone unexpected owns (issue 12, security 1).

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

use crate::harness::{app, send_signal, wait_for_file, Server, TempDir, PROMPT, STARTUP};

const PRECIOUS: &str = "precious contents\n";

fn is_root() -> bool {
    // The real uid, from /proc/self/status (root is 0).
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn needs_root() {
    assert!(
        is_root(),
        "this test needs root (it checks what the root master does for --uid); \
         run the tests as root, as the CI does, or skip it with `--skip needs_root`"
    );
}

/// Runs rwsgi with `args` until it exits; returns its exit code and log.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let hello = app("hello.py");
    let mut all = vec!["--http", "127.0.0.1:0", "--wsgi-file", hello.as_str()];
    all.extend_from_slice(args);
    let mut server = Server::spawn(&all);
    let status = server.wait_exit(STARTUP);
    (status.code(), server.log_text())
}

fn victim(dir: &TempDir) -> String {
    let path = dir.file("victim");
    fs::write(&path, PRECIOUS).unwrap();
    path
}

/// The victim's contents are intact and its owner and group are `owner`.
fn assert_untouched(path: &str, owner: (u32, u32)) {
    assert_eq!(
        fs::read_to_string(path).unwrap(),
        PRECIOUS,
        "{path} was written"
    );
    let m = fs::metadata(path).unwrap();
    assert_eq!((m.uid(), m.gid()), owner, "{path} was chowned");
}

fn owner(path: &str) -> (u32, u32) {
    let m = fs::metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn logto_through_a_symbolic_link_is_refused() {
    let dir = TempDir::new("sec-logto-link");
    let target = victim(&dir);
    let log = dir.file("app.log");
    symlink(&target, &log).unwrap();
    let (code, text) = run_to_exit(&["--logto", &log]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("--logto {log}: is a symbolic link"))
            && text.contains("readlink -f"),
        "the error names the path, why and the fix: {text}"
    );
    assert_untouched(&target, owner(&target));
}

#[test]
fn logto_dev_stderr_still_works() {
    // The one kind of link that is followed: the kernel's name for our own
    // stream, as containers use it.
    let mut server = Server::start(&["--wsgi-file", &app("hello.py"), "--logto", "/dev/stderr"]);
    assert_eq!(server.connect().get("/via-dev-stderr").status, 200);
    server.wait_for_log("GET /via-dev-stderr ", PROMPT);
}

#[test]
fn pidfile_through_a_symbolic_link_is_refused() {
    let dir = TempDir::new("sec-pid-link");
    let target = victim(&dir);
    let pidfile = dir.file("rwsgi.pid");
    symlink(&target, &pidfile).unwrap();
    let (code, text) = run_to_exit(&["--pidfile", &pidfile]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("--pidfile {pidfile}: is a symbolic link")),
        "{text}"
    );
    assert_untouched(&target, owner(&target));
}

#[test]
fn pidfile_is_renamed_into_place_not_written_through_a_hard_link() {
    let dir = TempDir::new("sec-pid-hardlink");
    let target = victim(&dir);
    let pidfile = dir.file("rwsgi.pid");
    fs::hard_link(&target, &pidfile).unwrap();
    let mut server = Server::start(&["--wsgi-file", &app("hello.py"), "--pidfile", &pidfile]);
    let text = fs::read_to_string(&pidfile).unwrap();
    assert_eq!(text.trim(), server.pid().to_string());
    assert_untouched(&target, owner(&target));
    // No temporary file is left beside it.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    server.signal("TERM");
    server.wait_exit(PROMPT);
    assert!(
        !Path::new(&pidfile).exists(),
        "the pidfile outlived the master"
    );
}

/// With `--uid`, the root master refuses a log path that is a symbolic
/// link, a hard link to root's file, or a file another user owns — at start
/// and on SIGUSR1 — and never chowns the file behind it.
#[test]
fn needs_root_logto_never_hands_a_root_file_to_the_workers_user() {
    needs_root();
    let dir = TempDir::new("sec-logto-root");
    let target = victim(&dir); // root's
    let uid = ["--uid", "nobody", "--gid", "nogroup"];

    let link = dir.file("link.log");
    symlink(&target, &link).unwrap();
    let (code, text) = run_to_exit(&[&uid[..], &["--logto", &link]].concat());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is a symbolic link"), "{text}");
    assert_untouched(&target, (0, 0));

    let hard = dir.file("hard.log");
    fs::hard_link(&target, &hard).unwrap();
    let (code, text) = run_to_exit(&[&uid[..], &["--logto", &hard]].concat());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("--logto {hard}: has 2 hard links")),
        "{text}"
    );
    assert_untouched(&target, (0, 0));
    fs::remove_file(&hard).unwrap();

    let foreign = dir.file("foreign.log");
    fs::write(&foreign, "").unwrap();
    std::os::unix::fs::chown(&foreign, Some(12345), None).unwrap();
    let (code, text) = run_to_exit(&[&uid[..], &["--logto", &foreign]].concat());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("--logto {foreign}: is owned by uid 12345")),
        "{text}"
    );

    // A good start, then the workers' group swaps the file for a link, and
    // logrotate sends USR1: the master refuses, and the link's target stays
    // root's. (--gid alone: the workers keep a uid that can read Python.)
    let log = dir.file("rwsgi.log");
    let hello = app("hello.py");
    let mut server = Server::spawn(&[
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        hello.as_str(),
        "--gid",
        "nogroup",
        "--logto",
        &log,
    ]);
    wait_for_file(Path::new(&log), "the master's start", STARTUP, |t| {
        t.contains("] ready: ")
    });
    let nogroup = fs::metadata(&log).unwrap().gid();
    assert_ne!(nogroup, 0, "the log file is handed to the workers' group");
    let rotated = dir.file("rwsgi.log.1");
    fs::rename(&log, &rotated).unwrap();
    symlink(&target, &log).unwrap();
    send_signal(server.pid(), "USR1");
    let master = server.pid();
    wait_for_file(Path::new(&rotated), "the refused reopen", PROMPT, |t| {
        t.contains(&format!(
            "[pid {master}] cannot reopen the log file: --logto {log}: is a symbolic link"
        ))
    });
    assert_untouched(&target, (0, 0));
    assert!(
        server.try_wait().is_none(),
        "a refused reopen stops nothing"
    );
}
