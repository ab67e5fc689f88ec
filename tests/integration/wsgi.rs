//! PEP 3333 conformance: the environ an app sees, and wsgiref's validator
//! finding nothing to complain about.

use std::collections::HashMap;

use crate::harness::{app, Server, TempDir};

fn assert_entry(env: &HashMap<String, String>, key: &str, want: &str) {
    assert_eq!(
        env.get(key).map(String::as_str),
        Some(want),
        "environ[{key:?}]; whole environ: {env:#?}"
    );
}

#[test]
fn repeated_headers_are_joined_in_the_environ() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    let r = c.call(
        "GET",
        "/",
        &[
            "Accept: text/html",
            "X-Twice: 1",
            "Accept: */*",
            "Cookie: a=1",
            "X-Twice: 2",
            "Cookie: b=2",
        ],
        b"",
    );
    let env = crate::http::environ(&r);
    assert_entry(&env, "HTTP_ACCEPT", "'text/html, */*'");
    assert_entry(&env, "HTTP_X_TWICE", "'1, 2'");
    assert_entry(&env, "HTTP_COOKIE", "'a=1; b=2'");
    // The next request on the connection starts afresh.
    let env = crate::http::environ(&c.call("GET", "/", &["Accept: text/plain"], b""));
    assert_entry(&env, "HTTP_ACCEPT", "'text/plain'");
    assert!(!env.contains_key("HTTP_COOKIE"), "{env:#?}");
}

/// A worker reuses a closed connection's buffers for the next one: nothing of
/// an earlier connection (headers, query, body, a half-sent head, a refused
/// request) shows in a later request's environ.
#[test]
fn nothing_of_an_earlier_connection_reaches_the_next_environ() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py"), "--processes", "1"]);
    let mut c = server.connect();
    let r = c.call(
        "POST",
        "/first?q=1",
        &["Cookie: a=1", "X-Extra: yes", "Content-Type: text/plain"],
        b"body one",
    );
    assert_entry(&crate::http::environ(&r), "HTTP_COOKIE", "'a=1'");
    drop(c);
    let mut half = server.connect();
    half.send(b"GET /half HTTP/1.1\r\nHost: x\r\nX-Stale: 1\r\n");
    drop(half);
    let mut bad = server.connect();
    bad.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(bad.read_response(false).expect("a 400").status, 400);
    let mut c = server.connect();
    c.send(b"GET /last HTTP/1.0\r\n\r\n");
    let env = crate::http::environ(&c.read_response(false).expect("a response"));
    assert_entry(&env, "PATH_INFO", "'/last'");
    assert_entry(&env, "QUERY_STRING", "''");
    assert_entry(&env, "SERVER_PROTOCOL", "'HTTP/1.0'");
    assert_entry(&env, "BODY", "b''");
    for stale in [
        "HTTP_COOKIE",
        "HTTP_X_EXTRA",
        "HTTP_X_STALE",
        "HTTP_HOST",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
    ] {
        assert!(!env.contains_key(stale), "{stale} leaked: {env:#?}");
    }
}

#[test]
fn environ_of_a_get() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    let r = c.call("GET", "/a%20b?x=1&y=%20z", &["X-Custom: custom value"], b"");
    let env = crate::http::environ(&r);
    assert_entry(&env, "REQUEST_METHOD", "'GET'");
    assert_entry(&env, "PATH_INFO", "'/a b'");
    assert_entry(&env, "QUERY_STRING", "'x=1&y=%20z'");
    assert_entry(&env, "SCRIPT_NAME", "''");
    assert_entry(&env, "SERVER_PROTOCOL", "'HTTP/1.1'");
    assert_entry(&env, "REMOTE_ADDR", "'127.0.0.1'");
    assert_entry(&env, "REMOTE_PORT", &format!("'{}'", c.local_port()));
    assert_entry(&env, "HTTP_X_CUSTOM", "'custom value'");
    assert_entry(&env, "HTTP_HOST", "'localhost'");
    assert_entry(&env, "SERVER_NAME", "'localhost'");
    assert_entry(&env, "wsgi.multiprocess", "True");
    assert_entry(&env, "wsgi.multithread", "False");
    assert_entry(&env, "wsgi.run_once", "False");
    assert_entry(&env, "wsgi.url_scheme", "'http'");
    assert_entry(&env, "wsgi.version", "(1, 0)");
    assert_entry(&env, "BODY", "b''");
    assert!(env.contains_key("SERVER_PORT"), "{env:#?}");
    assert!(
        env.contains_key("wsgi.input") && env.contains_key("wsgi.errors"),
        "{env:#?}"
    );
    for (key, value) in &env {
        let is_str = value.starts_with('\'') || value.starts_with('"');
        if !key.contains('.') && key != "BODY" {
            assert!(is_str, "environ[{key:?}] = {value} is not a str (PEP 3333)");
        }
    }
    for absent in ["HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"] {
        assert!(
            !env.contains_key(absent),
            "{absent} in the environ: {env:#?}"
        );
    }
}

#[test]
fn path_info_is_percent_decoded_then_latin1() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    // UTF-8 bytes of "café", each byte one latin-1 character (PEP 3333).
    let env = crate::http::environ(&c.get("/caf%C3%A9"));
    assert_entry(&env, "PATH_INFO", "'/caf\\xc3\\xa9'");
    let env = crate::http::environ(&c.get("/caf%c3%a9/%2Fslash"));
    assert_entry(&env, "PATH_INFO", "'/caf\\xc3\\xa9//slash'");
    // The raw target stays available undecoded.
    assert_entry(&env, "REQUEST_URI", "'/caf%c3%a9/%2Fslash'");
}

#[test]
fn environ_of_a_post() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    let body = b"name=value&binary=\x00\xff";
    let r = c.call(
        "POST",
        "/submit",
        &["Content-Type: application/x-www-form-urlencoded"],
        body,
    );
    let env = crate::http::environ(&r);
    assert_entry(&env, "REQUEST_METHOD", "'POST'");
    assert_entry(&env, "CONTENT_TYPE", "'application/x-www-form-urlencoded'");
    assert_entry(&env, "CONTENT_LENGTH", &format!("'{}'", body.len()));
    assert_entry(&env, "BODY", "b'name=value&binary=\\x00\\xff'");
}

#[test]
fn environ_of_http10() {
    let server = Server::start(&["--wsgi-file", &app("environ_dump.py")]);
    let mut c = server.connect();
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let env = crate::http::environ(&c.read_response(false).expect("a response"));
    assert_entry(&env, "SERVER_PROTOCOL", "'HTTP/1.0'");
    assert_entry(&env, "PATH_INFO", "'/old'");
    // No Host header: the listener's address.
    assert_entry(&env, "SERVER_NAME", "'127.0.0.1'");
    assert_entry(&env, "SERVER_PORT", &format!("'{}'", server.port()));
}

#[test]
fn wsgiref_validator_finds_nothing() {
    let server = Server::start(&["--wsgi-file", &app("validate.py")]);
    let mut c = server.connect();
    let r = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "validated"), "{r:?}");
    let body = b"first line\nsecond line\n\x00\x01binary";
    let r = c.call(
        "POST",
        "/",
        &["Content-Type: application/octet-stream"],
        body,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, body);
    let r = c.get("/stream");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "streamed body"),
        "{r:?}"
    );
    let r = c.get("/write");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "written body"),
        "{r:?}"
    );
    let r = c.call("HEAD", "/", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.get("/after-head");
    assert_eq!(r.status, 200, "{r:?}");
    // Stop the server so everything the workers wrote (an "Exception ignored
    // in __del__" too) is in the log before it is checked.
    let mut server = server;
    server.signal("TERM");
    server.wait_exit(crate::harness::PROMPT);
    let log = server.log_text();
    for bad in [
        "Warning",
        "AssertionError",
        "Traceback",
        "Exception ignored",
    ] {
        assert!(
            !log.contains(bad),
            "the validator complained ({bad}):\n{log}"
        );
    }
}

/// uWSGI's Django recipe, `--chdir project --wsgi-file project/wsgi.py`: the
/// working directory is importable, so the file can import its package.
#[test]
fn a_wsgi_file_imports_its_package_from_the_chdir() {
    let dir = TempDir::new("chdir-pkg");
    let pkg = dir.path().join("mysite");
    std::fs::create_dir(&pkg).expect("mkdir");
    std::fs::write(pkg.join("__init__.py"), "").expect("write");
    std::fs::write(pkg.join("settings.py"), "VALUE = b'from the package'\n").expect("write");
    std::fs::write(
        pkg.join("wsgi.py"),
        "from mysite import settings\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [settings.VALUE]\n",
    )
    .expect("write");
    // Relative paths are the start directory's, so the file is named in full.
    let file = pkg.join("wsgi.py");
    let server = Server::start(&[
        "--chdir",
        dir.path().to_str().expect("utf-8 path"),
        "--wsgi-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(server.connect().get("/").body, b"from the package");
}
