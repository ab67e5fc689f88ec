//! A real Flask app from a virtualenv (`--home`), as most users run rwsgi.
//! The venv comes from scripts/test (RWSGI_TEST_VENV) or `<project>/.venv`.

use std::path::{Path, PathBuf};

use crate::harness::{apps_dir, project_dir, Server};

fn venv_as_given() -> PathBuf {
    std::env::var_os("RWSGI_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_dir().join(".venv"))
}

/// The test virtualenv with Flask in it; a missing one fails the test.
pub(crate) fn venv() -> PathBuf {
    let venv = venv_as_given();
    assert!(
        venv.join("bin/python").exists(),
        "no virtualenv at {}: run scripts/test (it creates .venv with Flask), or \
         `python3 -m venv .venv && .venv/bin/pip install flask` and set RWSGI_TEST_VENV",
        venv.display()
    );
    venv
}

fn flask_server() -> Server {
    let venv = venv();
    Server::start(&[
        "--home",
        venv.to_str().unwrap(),
        "--pythonpath",
        apps_dir().to_str().unwrap(),
        "--module",
        "flask_app:app",
        "--processes",
        "2",
    ])
}

/// JSON without insignificant whitespace (the values tested have no spaces).
fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn flask_json_route() {
    let server = flask_server();
    assert!(
        server.log_text().contains("ready: 2 worker(s)"),
        "{}",
        server.log_text()
    );
    let mut c = server.connect();
    let r = c.get("/json");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let json = compact(&r.text());
    for part in [
        "\"framework\":\"flask\"",
        "\"items\":[1,2,3]",
        "\"method\":\"GET\"",
    ] {
        assert!(json.contains(part), "{part} not in {json}");
    }
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    // Flask's own 404 comes through as well.
    assert_eq!(c.get("/missing").status, 404);
}

#[test]
fn flask_post_routes() {
    let server = flask_server();
    let mut c = server.connect();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = c.call(
        "POST",
        "/echo",
        &["Content-Type: application/octet-stream"],
        &body,
    );
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert!(
        r.body == body,
        "echoed {} bytes, not the {} sent",
        r.body.len(),
        body.len()
    );
    let r = c.call(
        "POST",
        "/sum",
        &["Content-Type: application/json"],
        br#"{"a": 2, "b": 40}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(compact(&r.text()), "{\"sum\":42}");
    // GET on a POST-only route: Flask's 405.
    assert_eq!(c.get("/echo").status, 405);
}

#[test]
fn flask_runs_in_the_virtualenv() {
    // `--home` must make the venv the interpreter's prefix: its packages
    // (Flask) are the ones imported and its python is sys.executable.
    let venv = venv().canonicalize().unwrap();
    let server = flask_server();
    let r = server.connect().get("/where");
    assert_eq!(r.status, 200, "{r:?}");
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    let [prefix, flask_file, executable] = lines[..] else {
        panic!("unexpected /where answer {text:?}");
    };
    let canon = |p: &str| Path::new(p).canonicalize().unwrap_or_else(|_| p.into());
    assert_eq!(canon(prefix), venv, "sys.prefix is not the venv");
    assert!(
        canon(flask_file).starts_with(&venv),
        "Flask imported from {flask_file}, not the venv"
    );
    assert!(
        Path::new(executable).starts_with(venv_as_given()),
        "sys.executable {executable} is not the venv's python"
    );
}
