//! systemd integration: `sd_notify` messages on a real datagram socket, and
//! socket activation with listeners this test binds and passes as fds 3, 4
//! (as systemd does). The unit files and the init script are exercised in
//! `systemd/scripts.rs`.

mod scripts;

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{app, Server, TempDir, PROMPT, STARTUP};
use crate::http::Client;
use crate::uwsgi::{request_packet, Addr};

/// An app that answers with the activation / notify variables it can see in
/// `os.environ` ("env:none" when rwsgi removed them all, as it must).
const ENV_APP: &str = r#"
import os

def application(environ, start_response):
    seen = sorted(k for k in os.environ if k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_")))
    body = ("env:" + (" ".join(seen) or "none")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

fn env_app(dir: &TempDir) -> String {
    let path = dir.file("env_app.py");
    std::fs::write(&path, ENV_APP).expect("write the test app");
    path
}

/// Makes `fds[i]` the child's fd `3 + i`, as systemd passes sockets. Runs
/// between fork and exec, so only async-signal-safe calls (fcntl, dup2):
/// each fd is first copied above every target, then moved into place, so a
/// source sitting on another's target is not clobbered.
fn pass_fds(cmd: &mut Command, fds: Vec<RawFd>) {
    assert!(fds.len() <= 8, "pass_fds handles up to 8 fds");
    let hook = move || {
        let mut high = [0 as RawFd; 8];
        for (i, &fd) in fds.iter().enumerate() {
            // SAFETY: fcntl on an fd this (forked) process has; no memory effects.
            let h = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64) };
            if h < 0 {
                return Err(io::Error::last_os_error());
            }
            high[i] = h;
        }
        for (i, &h) in high[..fds.len()].iter().enumerate() {
            // SAFETY: dup2 between fds of this process; the target loses CLOEXEC.
            if unsafe { libc::dup2(h, 3 + i as RawFd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook only calls async-signal-safe functions and allocates nothing.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// rwsgi started the way systemd starts a socket-activated service: the fds
/// passed from 3, `LISTEN_FDS`, and `LISTEN_PID` set to rwsgi's own pid (a
/// shell learns its pid, sets it, and execs rwsgi in its place).
fn activated(fds: &[RawFd], names: Option<&str>, args: &[&str]) -> Server {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_rwsgi"))
        .args(args)
        .env("LISTEN_FDS", fds.len().to_string());
    if let Some(names) = names {
        cmd.env("LISTEN_FDNAMES", names);
    }
    pass_fds(&mut cmd, fds.to_vec());
    Server::spawn_command(cmd)
}

/// rwsgi with `fds` as 3, 4, … but no activation variables.
fn with_fds(fds: &[RawFd], args: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(args);
    pass_fds(&mut cmd, fds.to_vec());
    Server::spawn_command(cmd)
}

fn tcp_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a test listener");
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Receives notifications until one contains `want`; returns it. Panics
/// (with everything received and the server's log) on a timeout.
fn until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>, server: &Server) -> String {
    let mut buf = [0u8; 4096];
    for _ in 0..50 {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.push(msg.clone());
                if msg.lines().any(|l| l == want) {
                    return msg;
                }
            }
            Err(e) => panic!(
                "no {want:?} notification ({e}); got {seen:?}; log:\n{}",
                server.log_text()
            ),
        }
    }
    panic!("no {want:?} among 50 notifications: {seen:?}");
}

fn monotonic_usec() -> u64 {
    // SAFETY: a zeroed timespec is valid; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a valid, writable timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// rwsgi serving the env app (`-p workers`) with a notify socket of the
/// test's own in `dir`, and `env` set.
fn notified(dir: &TempDir, workers: &str, env: &[(&str, &str)]) -> (UnixDatagram, Server) {
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_read_timeout(Some(STARTUP)).unwrap();
    let envapp = env_app(dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args([
        "--http",
        "127.0.0.1:0",
        "--wsgi-file",
        &envapp,
        "-p",
        workers,
    ])
    .env("NOTIFY_SOCKET", &path)
    .envs(env.iter().copied());
    (sock, Server::spawn_command(cmd))
}

/// `WatchdogSec=`: systemd passes WATCHDOG_USEC (and WATCHDOG_PID); the
/// master pings WATCHDOG=1 at half that period, and the app does not inherit
/// the variables.
#[test]
fn watchdog_pings_come_at_half_the_watchdog_period() {
    let dir = TempDir::new("watchdog");
    let (sock, mut server) = notified(&dir, "1", &[("WATCHDOG_USEC", "400000")]);
    let mut seen = Vec::new();
    until(&sock, "READY=1", &mut seen, &server);
    let first = Instant::now();
    for _ in 0..3 {
        until(&sock, "WATCHDOG=1", &mut seen, &server);
    }
    // Three pings 200 ms apart take at least 400 ms after the first.
    let took = first.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}: {seen:?}");
    server.wait_for_log("WATCHDOG=1 every 200ms", PROMPT);
    let port: u16 = server.listening("http")[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the bound port");
    assert_eq!(Client::connect(port).get("/").text(), "env:none");
    server.signal("TERM");
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
}

#[test]
fn notify_socket_hears_ready_reloading_and_stopping() {
    let dir = TempDir::new("notify");
    let (sock, mut server) = notified(&dir, "2", &[]);
    let mut seen = Vec::new();

    let ready = until(&sock, "READY=1", &mut seen, &server);
    // READY=1 comes after every worker is ready, which the master logs first.
    server.wait_for_log("] ready: ", PROMPT);
    let port = server.listening("http")[0]
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let status = format!("STATUS=serving 2 worker(s) on http://127.0.0.1:{port}");
    assert!(
        ready.lines().any(|l| l == status),
        "{ready:?}, want {status:?}"
    );
    assert!(
        seen[..seen.len() - 1]
            .iter()
            .all(|m| !m.contains("READY=1")),
        "{seen:?}"
    );
    // The app (and whatever it runs) does not see NOTIFY_SOCKET.
    let mut client = Client::connect(port.parse().unwrap());
    assert_eq!(client.get("/").text(), "env:none");

    server.signal("HUP");
    let reloading = until(&sock, "RELOADING=1", &mut seen, &server);
    let stamp: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    let now = monotonic_usec();
    assert!(
        stamp <= now && now - stamp < 60_000_000,
        "{stamp} vs now {now}"
    );
    until(&sock, "READY=1", &mut seen, &server);
    server.wait_for_log("reload complete", PROMPT);

    server.signal("TERM");
    until(&sock, "STOPPING=1", &mut seen, &server);
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    assert!(
        seen.iter().any(|m| m.starts_with("STATUS=starting 2")),
        "{seen:?}"
    );
}

#[test]
fn activated_socket_is_served_without_binding_and_outlives_rwsgi() {
    let dir = TempDir::new("activation");
    let envapp = env_app(&dir);
    let (listener, port) = tcp_listener();
    let fd = listener.as_raw_fd();
    // The configured address is the passed socket's own: binding it would
    // fail (address in use), so serving proves rwsgi bound nothing.
    let addr = format!("127.0.0.1:{port}");
    let args = ["--http", &addr, "--wsgi-file", &envapp, "-p", "2"];
    let mut first = activated(&[fd], None, &args);
    first.wait_for_log("] ready: ", STARTUP);
    first.wait_for_log(&format!("listening on http://{addr} (fd 3)"), PROMPT);
    first.wait_for_log(&format!("not binding --http {addr}"), PROMPT);
    let mut client = Client::connect(port);
    // Neither the app nor its subprocesses see the activation variables.
    assert_eq!(client.get("/").text(), "env:none");
    drop(client);

    // A graceful stop leaves the socket listening (systemd owns it): a client
    // connecting in between waits in its queue for the next instance.
    first.signal("TERM");
    assert_eq!(first.wait_exit(PROMPT).code(), Some(0));
    let mut waiting = Client::connect(port);
    waiting.send(&crate::http::request("GET", "/", &[], b""));
    let mut second = activated(&[fd], Some("web"), &args);
    second.wait_for_log("socket activation: fd 3 (\"web\") speaks http", STARTUP);
    let resp = waiting.read_response(false).unwrap_or_else(|e| {
        panic!(
            "queued request not served: {e}; log:\n{}",
            second.log_text()
        )
    });
    assert_eq!(resp.text(), "env:none");
}

#[test]
fn http_and_uwsgi_fds_each_speak_their_protocol() {
    let (web, web_port) = tcp_listener();
    let (api, api_port) = tcp_listener();
    let args = [
        "--http",
        "fd://3",
        "--socket",
        "fd://4",
        "--wsgi-file",
        &app("hello.py"),
    ];
    let mut server = activated(&[web.as_raw_fd(), api.as_raw_fd()], Some("web:api"), &args);
    server.wait_for_log("] ready: ", STARTUP);
    let log = server.log_text();
    assert!(log.contains("fd 3 (\"web\") speaks http"), "{log}");
    assert!(log.contains("fd 4 (\"api\") speaks uwsgi"), "{log}");
    assert_eq!(Client::connect(web_port).get("/").text(), "Hello, World!");
    let packet = request_packet("GET", "/", "", "HTTP/1.1", &[], b"");
    let resp = Addr::Tcp(api_port).connect().call(&packet);
    assert!(resp.status_line.contains("200"), "{resp:?}");
    assert_eq!(resp.body, b"Hello, World!");
}

#[test]
fn fd_urls_work_without_activation_and_vacuum_spares_inherited_files() {
    let dir = TempDir::new("fd-url");
    let (web, web_port) = tcp_listener();
    let sock_path = dir.path().join("app.sock");
    let unix = UnixListener::bind(&sock_path).expect("bind a unix listener");
    let (stats, stats_port) = tcp_listener();
    let args = [
        "--http",
        "fd://3",
        "--socket",
        "fd://4",
        "--stats",
        "fd://5",
        "--vacuum",
        "--wsgi-file",
        &app("hello.py"),
    ];
    let fds = [web.as_raw_fd(), unix.as_raw_fd(), stats.as_raw_fd()];
    let mut server = with_fds(&fds, &args);
    server.wait_for_log("] ready: ", STARTUP);
    let logged = format!("listening on uwsgi://unix:{} (fd 4)", sock_path.display());
    assert!(server.log_text().contains(&logged), "{}", server.log_text());
    assert_eq!(Client::connect(web_port).get("/").text(), "Hello, World!");
    let packet = request_packet("GET", "/", "", "HTTP/1.1", &[], b"");
    let resp = Addr::Unix(sock_path.clone()).connect().call(&packet);
    assert_eq!(resp.body, b"Hello, World!");
    let stats_doc = Addr::Tcp(stats_port).connect().read_to_close();
    assert!(
        stats_doc.starts_with(b"{"),
        "{}",
        String::from_utf8_lossy(&stats_doc)
    );
    server.signal("TERM");
    assert_eq!(server.wait_exit(PROMPT).code(), Some(0));
    assert!(
        sock_path.exists(),
        "--vacuum removed an inherited socket's file"
    );
}

#[test]
fn listen_fds_for_another_pid_are_ignored() {
    let (passed, passed_port) = tcp_listener();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(["--http", "127.0.0.1:0", "--wsgi-file", &app("hello.py")])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1");
    pass_fds(&mut cmd, vec![passed.as_raw_fd()]);
    let mut server = Server::spawn_command(cmd);
    server.wait_for_log("] ready: ", STARTUP);
    server.wait_for_log("LISTEN_PID=1 is not this process", PROMPT);
    let bound = &server.listening("http")[0];
    assert!(!bound.ends_with(&format!(":{passed_port}")), "{bound}");
    let port: u16 = bound.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(Client::connect(port).get("/").text(), "Hello, World!");
}

/// Runs a server expected to exit on its own; returns its exit code and log.
fn fails(mut server: Server) -> (Option<i32>, String) {
    let status = server.wait_exit(STARTUP);
    let log = server.log_text();
    assert!(!log.contains("] ready: "), "claimed to be ready:\n{log}");
    (status.code(), log)
}

#[test]
fn unusable_inherited_fds_are_named_in_a_clear_error() {
    let dir = TempDir::new("bad-fds");
    let file = std::fs::File::create(dir.file("not-a-socket")).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (peer, port) = tcp_listener();
    let connected = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let hello = app("hello.py");
    let cases: [(RawFd, &str, &str); 4] = [
        (
            file.as_raw_fd(),
            "fd://3",
            "fd 3 is a regular file, not a socket",
        ),
        (
            udp.as_raw_fd(),
            "fd://3",
            "fd 3 is not a TCP or unix stream socket",
        ),
        (
            connected.as_raw_fd(),
            "fd://3",
            "fd 3 is a socket but not listening",
        ),
        (file.as_raw_fd(), "fd://40", "fd 40 is not open"),
    ];
    for (fd, url, message) in cases {
        let server = with_fds(&[fd], &["--http", url, "--wsgi-file", &hello]);
        let (code, log) = fails(server);
        assert_eq!(code, Some(3), "{url} on {message:?}:\n{log}");
        assert!(
            log.contains(&format!("cannot listen on {url}: {message}")),
            "{log}"
        );
    }
    drop(peer);

    // Both protocols configured by address: which passed socket is which?
    let (a, _) = tcp_listener();
    let (b, _) = tcp_listener();
    let args = [
        "--http",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &hello,
    ];
    let (code, log) = fails(activated(&[a.as_raw_fd(), b.as_raw_fd()], None, &args));
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("systemd passed fd 3, fd 4") && log.contains("--http fd://N"),
        "{log}"
    );

    let args = [
        "--http",
        "fd://3",
        "--socket",
        "fd://3",
        "--wsgi-file",
        &hello,
    ];
    let (code, log) = fails(with_fds(&[a.as_raw_fd()], &args));
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("fd://3 is named twice"), "{log}");
}
