//! Startup failures: rwsgi exits non-zero within a deadline and says what is
//! wrong, naming the thing the user has to fix.

use std::net::TcpListener;

use crate::harness::{app, apps_dir, Server, STARTUP};

/// Runs rwsgi with `args`, expects it to exit on its own with a failure, and
/// returns the exit code and the log.
fn fails(args: &[&str]) -> (i32, String) {
    let mut server = Server::spawn(args);
    let status = server.wait_exit(STARTUP);
    let log = server.log_text();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("rwsgi killed by a signal ({status}); log:\n{log}"));
    assert_ne!(code, 0, "rwsgi {args:?} exited 0; log:\n{log}");
    assert!(
        !log.contains("] ready: "),
        "rwsgi {args:?} claimed to be ready; log:\n{log}"
    );
    (code, log)
}

fn fails_serving(args: &[&str]) -> (i32, String) {
    let mut all = vec!["--http", "127.0.0.1:0"];
    all.extend_from_slice(args);
    fails(&all)
}

#[test]
fn missing_wsgi_file_absolute() {
    let path = apps_dir().join("no_such_app.py");
    let path = path.to_str().unwrap();
    let (code, log) = fails_serving(&["--wsgi-file", path]);
    assert!(log.contains(path), "log does not name {path}:\n{log}");
    assert!(log.contains("no such file"), "{log}");
    assert_eq!(code, 2, "a config error; log:\n{log}");
}

#[test]
fn missing_wsgi_file_relative() {
    // Relative paths are resolved in the worker (after --chdir).
    let (_, log) = fails_serving(&["--wsgi-file", "etc/apps/no_such_app.py"]);
    assert!(
        log.contains("etc/apps/no_such_app.py"),
        "log does not name the file:\n{log}"
    );
    assert!(log.contains("no such file"), "{log}");
}

#[test]
fn module_that_raises_at_import() {
    let dir = apps_dir();
    let (_, log) = fails_serving(&[
        "--pythonpath",
        dir.to_str().unwrap(),
        "--module",
        "import_error",
    ]);
    assert!(
        log.contains("import_error"),
        "log does not name the module:\n{log}"
    );
    assert!(
        log.contains("RuntimeError: IMPORT-TIME-MARKER: this module refuses to load"),
        "log lacks the exception:\n{log}"
    );
}

#[test]
fn wsgi_file_that_raises_at_import() {
    let (_, log) = fails_serving(&["--wsgi-file", &app("import_error.py")]);
    assert!(
        log.contains("import_error.py"),
        "log does not name the file:\n{log}"
    );
    assert!(
        log.contains("IMPORT-TIME-MARKER"),
        "log lacks the exception:\n{log}"
    );
}

#[test]
fn missing_module() {
    let dir = apps_dir();
    let (_, log) = fails_serving(&[
        "--pythonpath",
        dir.to_str().unwrap(),
        "--module",
        "no_such_module_xyz:application",
    ]);
    assert!(
        log.contains("no_such_module_xyz"),
        "log does not name the module:\n{log}"
    );
    assert!(log.contains("ModuleNotFoundError"), "{log}");
}

#[test]
fn missing_callable() {
    let (_, log) = fails_serving(&["--wsgi-file", &app("hello.py"), "--callable", "nope"]);
    assert!(
        log.contains("\"nope\""),
        "log does not name the callable:\n{log}"
    );
    // The hint lists what the file does define.
    assert!(log.contains("application"), "{log}");
}

#[test]
fn missing_callable_in_module_spec() {
    let dir = apps_dir();
    let (_, log) = fails_serving(&[
        "--pythonpath",
        dir.to_str().unwrap(),
        "--module",
        "hello:nope",
    ]);
    assert!(
        log.contains("\"nope\""),
        "log does not name the callable:\n{log}"
    );
}

#[test]
fn no_app_given() {
    let (code, log) = fails_serving(&[]);
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("--module"),
        "message does not mention --module:\n{log}"
    );
}

#[test]
fn invalid_http_address() {
    for bad in ["not-an-address", "127.0.0.1:99999", "127.0.0.1:http"] {
        let (code, log) = fails(&["--http", bad, "--wsgi-file", &app("hello.py")]);
        assert_eq!(code, 2, "--http {bad}: {log}");
        assert!(
            log.contains("--http"),
            "--http {bad}: message does not name the flag:\n{log}"
        );
        assert!(
            log.contains(bad),
            "--http {bad}: message does not quote it:\n{log}"
        );
    }
}

#[test]
fn address_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, log) = fails(&["--http", &addr, "--wsgi-file", &app("hello.py")]);
    assert!(log.contains(&addr), "log does not name {addr}:\n{log}");
    assert_eq!(code, 3, "{log}");
}

#[test]
fn home_that_is_not_a_virtualenv() {
    let dir = apps_dir();
    let (code, log) = fails_serving(&[
        "--home",
        dir.to_str().unwrap(),
        "--wsgi-file",
        &app("hello.py"),
    ]);
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains(dir.to_str().unwrap()) && log.contains("--home"),
        "{log}"
    );
}
