//! What a new user tripped over (issue 17, defects 1–8 but 6): relative
//! paths with `--chdir`, a second instance on a live unix socket, the
//! embedded Python and `--home`, the level of app log lines, a
//! `--check-config` report that is TOML line by line, bare socket
//! activation, and unix-socket permissions nginx cannot use.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::{run, run_command, rwsgi};
use crate::harness::{app, Server, TempDir, PROMPT, STARTUP};
use crate::http::{request, Client};
use crate::uwsgi::{request_packet, Addr, RawResponse};

/// Polls `ok` until it holds; panics with `what` after PROMPT.
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROMPT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The port of the first `listening on http://` line.
fn http_port(server: &Server) -> u16 {
    let addr = server.listening("http");
    let first = addr.first().expect("an http listener");
    first.rsplit(':').next().unwrap().parse().expect("a port")
}

fn uwsgi_get(path: &Path) -> RawResponse {
    let packet = request_packet("GET", "/", "", "HTTP/1.1", &[], b"");
    Addr::Unix(path.to_path_buf()).connect().call(&packet)
}

// ---------------------------------------------------------------------------
// 1. Relative paths

/// `cd DIR; rwsgi --chdir mysite --module mysite.wsgi --home venv`: the
/// relative home is DIR's, although the workers change into mysite.
#[test]
fn relative_home_and_chdir_are_both_the_start_directorys() {
    let dir = TempDir::new("relpaths");
    let venv = crate::flask::venv();
    std::os::unix::fs::symlink(&venv, dir.path().join("venv")).expect("symlink the venv");
    let pkg = dir.path().join("mysite/mysite");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(pkg.join("__init__.py"), "").expect("write");
    std::fs::write(
        pkg.join("wsgi.py"),
        "import flask  # only in the venv\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [b'flask ' + flask.__name__.encode()]\n",
    )
    .expect("write");
    let mut cmd = rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--chdir",
            "mysite",
            "--module",
            "mysite.wsgi",
            "--home",
            "venv",
        ],
        &[],
    );
    cmd.current_dir(dir.path());
    let mut server = Server::spawn_command(cmd);
    server.wait_for_log("] ready: ", STARTUP);
    let r = Client::connect(http_port(&server)).get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "flask flask"));

    // A path that only exists under --chdir (uWSGI's reading) is refused
    // before any worker starts, with the path to write instead.
    std::fs::write(dir.path().join("mysite/app.py"), "application = None\n").expect("write");
    let mut cmd = rwsgi(
        &["--chdir", "mysite", "--wsgi-file", "app.py", "--http", ":0"],
        &[],
    );
    cmd.current_dir(dir.path()).arg("--check-config");
    let ran = run_command(cmd, "rwsgi --check-config");
    assert_eq!(ran.code, Some(2), "{}", ran.show());
    let want = format!(
        "write --wsgi-file {}",
        dir.path().join("mysite/app.py").display()
    );
    assert!(
        ran.stderr.contains("start directory") && ran.stderr.contains(&want),
        "{}",
        ran.show()
    );
}

// ---------------------------------------------------------------------------
// 2. A live unix socket is not taken over

#[test]
fn a_second_instance_refuses_a_live_socket_and_vacuum_spares_a_successor() {
    let dir = TempDir::new("steal");
    let sock = dir.path().join("app.sock");
    let s = sock.to_str().unwrap();
    let hello = app("hello.py");
    let mut a = Server::start_exact(&["--socket", s, "--vacuum", "--wsgi-file", &hello]);

    let b = run(&["--socket", s, "--wsgi-file", &hello], &[]);
    assert_eq!(b.code, Some(3), "{}", b.show());
    assert!(
        b.stderr.contains("another process is serving"),
        "{}",
        b.show()
    );
    assert!(
        uwsgi_get(&sock).status_line.contains("200"),
        "A still serves"
    );

    // Another server replaces the file (as a restarted service would):
    // A's --vacuum must leave it alone.
    std::fs::remove_file(&sock).expect("remove A's socket");
    let successor = UnixListener::bind(&sock).expect("bind the successor");
    a.signal("TERM");
    assert!(a.wait_exit(PROMPT).success());
    assert!(
        sock.exists() && UnixStream::connect(&sock).is_ok(),
        "--vacuum removed another server's socket; log:\n{}",
        a.log_text()
    );
    drop(successor);

    // Now the file is stale (nothing answers): a start replaces it, and
    // its --vacuum removes it again.
    let mut c = Server::start_exact(&["--socket", s, "--vacuum", "--wsgi-file", &hello]);
    assert!(uwsgi_get(&sock).status_line.contains("200"));
    c.signal("TERM");
    assert!(c.wait_exit(PROMPT).success());
    assert!(!sock.exists(), "--vacuum left its own socket");
}

// ---------------------------------------------------------------------------
// 3. The embedded Python

#[test]
fn the_embedded_python_is_named_and_a_venv_of_another_version_is_refused() {
    let version = run(&["--version"], &[]);
    let embedded = version
        .stdout
        .split("embedded Python ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("--version names no Python: {}", version.show()))
        .to_string();
    assert!(
        version.stdout.contains("libpython in "),
        "{}",
        version.show()
    );

    let dir = TempDir::new("pyvenv");
    let venv = dir.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).expect("mkdir");
    std::fs::write(venv.join("bin/python"), "").expect("write");
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /usr/bin\nversion = 3.99.1\n",
    )
    .expect("write");
    let hello = app("hello.py");
    let args = [
        "--http",
        ":0",
        "--wsgi-file",
        &hello,
        "--home",
        venv.to_str().unwrap(),
    ];
    for check in [true, false] {
        let mut all = args.to_vec();
        if check {
            all.push("--check-config");
        }
        let ran = run(&all, &[]);
        assert_eq!(ran.code, Some(2), "{}", ran.show());
        let e = &ran.stderr;
        assert!(
            e.contains("Python 3.99")
                && e.contains(&format!("embeds Python {embedded}"))
                && e.contains("PYO3_PYTHON"),
            "{}",
            ran.show()
        );
    }

    let mut server = Server::start(&["--wsgi-file", &hello]);
    server.wait_for_log(&format!("embedded Python {embedded}"), PROMPT);
}

// ---------------------------------------------------------------------------
// 4. App output keeps its level

#[test]
fn flask_log_records_keep_their_level() {
    let dir = TempDir::new("applog");
    std::fs::write(
        dir.path().join("logapp.py"),
        "import logging\nfrom flask import Flask\n\
         app = Flask(__name__)\napp.logger.setLevel(logging.INFO)\n\
         @app.route('/')\ndef index():\n\
         \x20   app.logger.info('APPLOG-info')\n\
         \x20   app.logger.warning('APPLOG-warning')\n\
         \x20   return 'ok'\n",
    )
    .expect("write");
    let venv = crate::flask::venv();
    let mut server = Server::start(&[
        "--home",
        venv.to_str().unwrap(),
        "--wsgi-file",
        &dir.path().join("logapp.py").to_string_lossy(),
        "--callable",
        "app",
    ]);
    assert_eq!(server.connect().get("/").status, 200);
    let info = server.wait_for_log("APPLOG-info", PROMPT);
    let warning = server.wait_for_log("APPLOG-warning", PROMPT);
    assert!(
        info.contains("] INFO  [pid ") && info.contains("INFO in logapp"),
        "{info}"
    );
    assert!(warning.contains("] WARN  [pid "), "{warning}");
}

// ---------------------------------------------------------------------------
// 5. --check-config is TOML, commented lines too

#[test]
fn every_check_config_line_is_toml_when_uncommented() {
    let hello = app("hello.py");
    let ran = run(
        &[
            "--http",
            ":0",
            "--wsgi-file",
            &hello,
            "--gid",
            "0",
            "--chmod-socket",
            "--trusted-proxies",
            "10.0.0.0/8",
            "--env",
            "A=\"quoted\"\\x",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(ran.code, Some(0), "{}", ran.show());
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let parse = |text: &str| text.parse::<toml::Table>().map(|_| ());
    parse(&ran.stdout).unwrap_or_else(|e| panic!("not TOML: {e}\n{}", ran.stdout));
    let mut uncommented = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let mut doc = lines.clone();
        doc[i] = rest;
        let text = doc.join("\n");
        if let Err(e) = parse(&text) {
            panic!("line {} uncommented is not TOML: {rest:?}: {e}", i + 1);
        }
        uncommented += usize::from(!rest.trim_start().starts_with('#'));
    }
    assert!(uncommented > 20, "too few value lines: {}", ran.stdout);
    for want in [
        "# callable = \"application\"  # default",
        "# reload-mode = \"rolling\"  # default",
        "trusted-proxies = \"10.0.0.0/8\"",
        "gid = \"0\"",
    ] {
        assert!(ran.stdout.contains(want), "{want:?} in:\n{}", ran.stdout);
    }
}

// ---------------------------------------------------------------------------
// 7. Bare socket activation

#[test]
fn bare_socket_activation_serves_http() {
    let dir = TempDir::new("bare-activation");
    let sock = dir.path().join("web.sock");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(&sock)
        .arg(env!("CARGO_BIN_EXE_rwsgi"))
        .args(["--wsgi-file", &app("hello.py")]);
    let mut server = Server::spawn_command(cmd);
    until(
        "systemd-socket-activate's socket (install the systemd package)",
        || {
            assert!(server.try_wait().is_none(), "exited: {}", server.log_text());
            sock.exists()
        },
    );
    // systemd-socket-activate starts rwsgi on the first connection.
    let mut c = Addr::Unix(sock.clone()).connect();
    c.send(&request("GET", "/", &["Connection: close"], b""));
    let r = RawResponse::parse(&c.read_to_close());
    assert!(r.status_line.contains("200"), "{}", server.log_text());
    assert_eq!(r.body, b"Hello, World!");
    server.wait_for_log("serving HTTP on the passed socket", PROMPT);
}

// ---------------------------------------------------------------------------
// 8. Socket permissions nginx cannot use

#[test]
fn a_socket_only_its_owner_can_use_gets_a_warning_naming_the_flags() {
    let dir = TempDir::new("perms");
    let hello = app("hello.py");
    let private = dir.path().join("private.sock");
    let mut server = Server::start_exact(&[
        "--socket",
        private.to_str().unwrap(),
        "--chmod-socket",
        "600",
        "--wsgi-file",
        &hello,
    ]);
    let w = server.wait_for_log("only user", PROMPT);
    assert!(
        w.contains("WARN") && w.contains("--chmod-socket") && w.contains("--chown-socket"),
        "{w}"
    );
    drop(server);

    let open = dir.path().join("open.sock");
    let server = Server::start_exact(&[
        "--socket",
        open.to_str().unwrap(),
        "--chmod-socket",
        "666",
        "--wsgi-file",
        &hello,
    ]);
    assert!(
        !server.log_text().contains("--chown-socket"),
        "a mode anyone can use was warned about:\n{}",
        server.log_text()
    );
}
