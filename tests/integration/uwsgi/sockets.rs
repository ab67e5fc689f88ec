//! uwsgi and HTTP listeners side by side, and the unix socket file's life:
//! `--chmod-socket`, `--vacuum`, stale files.

use super::*;

#[test]
fn http_and_uwsgi_listeners_on_one_server_both_serve() {
    let dir = TempDir::new("both");
    let sock = dir.path().join("app.sock");
    let server = Server::start(&[
        "--wsgi-file",
        &app("nginx_app.py"),
        "--socket",
        "127.0.0.1:0",
        "--uwsgi-socket",
        sock.to_str().unwrap(),
    ]);
    let r = server.connect().get("/");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"ok"[..]),
        "HTTP: {r:?}"
    );
    let addrs = uwsgi_addrs(&server);
    assert_eq!(addrs.len(), 2, "{addrs:?}; log:\n{}", server.log_text());
    assert!(
        matches!(&addrs[1], Addr::Unix(p) if *p == sock),
        "{addrs:?}"
    );
    for a in &addrs {
        assert_serves(a, &format!("uwsgi on {a:?}"));
    }
    // And HTTP again, after the uwsgi requests.
    assert_eq!(server.connect().get("/").body, b"ok");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn chmod_socket_sets_the_socket_file_mode() {
    let dir = TempDir::new("chmod");
    for (flag, want) in [(Some("660"), 0o660), (None, 0o666)] {
        let sock = dir.path().join("app.sock");
        let mut args = vec!["--socket", sock.to_str().unwrap(), "--wsgi-file"];
        let a = app("nginx_app.py");
        args.push(&a);
        args.push("--chmod-socket");
        args.extend(flag);
        let server = Server::start_exact(&args);
        assert_eq!(
            mode_of(&sock),
            want,
            "--chmod-socket {flag:?} gave mode {:o}",
            mode_of(&sock)
        );
        assert_serves(&Addr::Unix(sock.clone()), "unix socket");
        drop(server);
    }
}

#[test]
fn vacuum_removes_the_socket_file_on_exit_and_without_it_the_file_stays() {
    let dir = TempDir::new("vacuum");
    for vacuum in [true, false] {
        let sock = dir.path().join(if vacuum { "v.sock" } else { "nv.sock" });
        let a = app("nginx_app.py");
        let mut args = vec!["--socket", sock.to_str().unwrap(), "--wsgi-file", &a];
        if vacuum {
            args.push("--vacuum");
        }
        let mut server = Server::start_exact(&args);
        assert!(sock.exists());
        assert_serves(&Addr::Unix(sock.clone()), "before TERM");
        server.signal("TERM");
        let status = server.wait_exit(PROMPT);
        assert_eq!(status.code(), Some(0), "{}", server.log_text());
        assert_eq!(
            sock.exists(),
            !vacuum,
            "vacuum={vacuum}: socket file exists={}; log:\n{}",
            sock.exists(),
            server.log_text()
        );
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let sock = dir.path().join("app.sock");
    // A socket file nobody listens on, as a killed server leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(UnixStream::connect(&sock).is_err(), "stale socket accepts");
    let a = app("nginx_app.py");
    let server = Server::start_exact(&["--socket", sock.to_str().unwrap(), "--wsgi-file", &a]);
    assert_serves(&Addr::Unix(sock.clone()), "on the replaced socket");
    drop(server);
}

#[test]
fn a_regular_file_at_the_socket_path_is_an_error_and_is_kept() {
    let dir = TempDir::new("regular");
    let path = dir.path().join("app.sock");
    std::fs::write(&path, "precious data").unwrap();
    let a = app("nginx_app.py");
    let mut server = Server::spawn(&["--socket", path.to_str().unwrap(), "--wsgi-file", &a]);
    let status = server.wait_exit(STARTUP);
    let log = server.log_text();
    assert_eq!(status.code(), Some(3), "{status}; log:\n{log}");
    assert!(
        log.contains(path.to_str().unwrap()),
        "the error does not name {}:\n{log}",
        path.display()
    );
    assert!(!log.contains("] ready: "), "{log}");
    assert_eq!(
        std::fs::read_to_string(&path).ok().as_deref(),
        Some("precious data"),
        "the regular file was changed or deleted"
    );
}
