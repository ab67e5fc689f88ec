//! rwsgi behind a real nginx (`uwsgi_pass`), over TCP and over a unix
//! socket: the environ, request bodies, a big cookie jar, streaming, app
//! errors, and a killed rwsgi.
//!
//! Each test runs its own nginx in the foreground with a config written to a
//! temp dir (pid, logs and temp paths there, one worker, a free loopback
//! port). nginx is `$RWSGI_TEST_NGINX`, else `nginx` on PATH or in
//! /usr/sbin; `scripts/test` installs it.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{app, children_of, send_signal, Server, TempDir, PROMPT, STARTUP};
use crate::http::{request, Client, Response};
use crate::uwsgi::{parse_json_object, stream_body, uwsgi_addrs, Addr};

mod aborted;
mod http_proxy;

/// The nginx binary, or a failure telling the user how to get one.
fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RWSGI_TEST_NGINX").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "RWSGI_TEST_NGINX={} is not a file; run scripts/test (it installs nginx)",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx not found (not on PATH, RWSGI_TEST_NGINX unset): \
                 run scripts/test (it installs nginx)"
            )
        })
}

/// nginx's own `uwsgi_params`: next to its compiled-in config file, else
/// the usual places.
fn uwsgi_params(nginx: &Path) -> PathBuf {
    let out = Command::new(nginx)
        .arg("-V")
        .output()
        .expect("run nginx -V");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let conf_dir = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--conf-path="))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf));
    conf_dir
        .into_iter()
        .chain([
            PathBuf::from("/etc/nginx"),
            PathBuf::from("/usr/local/nginx/conf"),
        ])
        .map(|d| d.join("uwsgi_params"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no uwsgi_params found for {} ({text})", nginx.display()))
}

/// A port that was free a moment ago (nginx may still lose it to a race:
/// `Nginx::start` retries).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// A response for a failure message: status, headers, the body as text
/// (shortened).
fn show(r: &Response) -> String {
    let text = r.text();
    let cut: String = text.chars().take(1000).collect();
    format!("{} {:?} {cut:?}", r.status, r.headers)
}

/// Asserts a 200, showing the response and both logs otherwise.
fn assert_ok(r: &Response, nginx: &Nginx, server: &Server) {
    assert_eq!(
        r.status,
        200,
        "{}\n{}\n{}",
        show(r),
        nginx.logs(),
        server.log_text()
    );
}

/// A foreground nginx (master + 1 worker), stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with `server_block(port, uwsgi_params)` as its only
    /// server and waits until it accepts connections.
    fn start(dir: &Path, server_block: impl Fn(u16, &Path) -> String) -> Nginx {
        let bin = nginx_binary();
        let params = uwsgi_params(&bin);
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let conf = config(dir, &server_block(port, &params));
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let _ = std::fs::remove_file(dir.join("error.log"));
            let stderr = File::create(dir.join("nginx.stderr")).unwrap();
            let child = Command::new(&bin)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let mut nginx = Nginx {
                child,
                port,
                dir: dir.to_path_buf(),
            };
            match nginx.wait_ready() {
                Ok(()) => return nginx,
                Err(e) => last_error = e, // dropped (stopped) here; try another port
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// Ready = the master has started its worker (so the port is bound by
    /// nginx, not by whoever raced us to it) and a connection is accepted.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited ({status}):\n{}", self.logs()));
            }
            let started = std::fs::read_to_string(self.dir.join("error.log"))
                .unwrap_or_default()
                .contains("start worker process");
            if started && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx not ready within {STARTUP:?}:\n{}",
                    self.logs()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "--- nginx stderr\n{}--- error.log\n{}",
            read("nginx.stderr"),
            read("error.log")
        )
    }

    fn connect(&self) -> Client {
        Client::connect(self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id();
        let workers = children_of(pid);
        if let Ok(None) = self.child.try_wait() {
            send_signal(pid, "TERM"); // fast shutdown
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = self.child.try_wait() {
                send_signal(pid, "KILL");
                let _ = self.child.wait();
            }
        }
        for w in workers {
            let alive =
                std::fs::read(format!("/proc/{w}/cmdline")).is_ok_and(|c| c.starts_with(b"nginx"));
            if alive {
                send_signal(w, "KILL");
            }
        }
    }
}

/// The main config: everything nginx writes goes to `dir`.
fn config(dir: &Path, server_block: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log {d}/error.log notice;

events {{
    worker_connections 64;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;

{server_block}
}}
"#
    )
}

/// The tests' server: everything to `upstream` (a `uwsgi_pass` argument).
fn test_server_block(port: u16, upstream: &str, params: &Path) -> String {
    format!(
        r#"    # As in etc/nginx/rwsgi.conf: a modern cookie jar, big uploads.
    large_client_header_buffers 4 64k;
    client_max_body_size 16m;

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

        location / {{
            include {params};
            uwsgi_pass {upstream};
            uwsgi_connect_timeout 5s;
        }}
    }}
"#,
        params = params.display()
    )
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Tcp,
    Unix,
}

/// rwsgi (serving `nginx_app.py` on one uwsgi socket) behind nginx.
/// Fields drop in order: nginx, then rwsgi, then the temp dir.
struct Stack {
    nginx: Nginx,
    server: Server,
    _dir: TempDir,
}

impl Stack {
    fn start(via: Via) -> Stack {
        let dir = TempDir::new("nginx");
        // Under root nginx's worker runs as nobody: it must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sock = dir.path().join("rwsgi.sock");
        let a = app("nginx_app.py");
        let listen = match via {
            Via::Tcp => "127.0.0.1:0".to_string(),
            Via::Unix => sock.to_str().unwrap().to_string(),
        };
        // Under root, nginx's worker runs as nobody and needs write access
        // to the socket file (see etc/nginx/rwsgi.conf).
        let server = Server::start_exact(&[
            "--socket",
            &listen,
            "--chmod-socket",
            "666",
            "--wsgi-file",
            &a,
        ]);
        let addr = uwsgi_addrs(&server)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no uwsgi listener:\n{}", server.log_text()));
        match (via, &addr) {
            (Via::Tcp, Addr::Tcp(_)) | (Via::Unix, Addr::Unix(_)) => {}
            _ => panic!("{via:?}: rwsgi listens on {addr:?}"),
        }
        let upstream = addr.nginx_upstream();
        let nginx = Nginx::start(dir.path(), |port, params| {
            test_server_block(port, &upstream, params)
        });
        Stack {
            nginx,
            server,
            _dir: dir,
        }
    }

    /// A request through nginx; panics with both logs if it gets no response.
    fn call(&self, method: &str, target: &str, extra: &[&str], body: &[u8]) -> Response {
        let mut c = self.nginx.connect();
        c.send(&request(method, target, extra, body));
        c.read_response(method == "HEAD").unwrap_or_else(|e| {
            panic!(
                "{method} {target} via nginx: no response ({e})\n{}\n--- rwsgi\n{}",
                self.nginx.logs(),
                self.server.log_text()
            )
        })
    }

    fn expect_ok(&self, r: &Response, what: &str) {
        assert_eq!(
            r.status,
            200,
            "{what}: {}\n{}\n--- rwsgi\n{}",
            show(r),
            self.nginx.logs(),
            self.server.log_text()
        );
    }
}

fn environ_reaches_the_app(via: Via) {
    let s = Stack::start(via);
    let r = s.call(
        "GET",
        "/environ?x=1&y=%20z",
        &["X-Custom: custom value"],
        b"",
    );
    s.expect_ok(&r, "GET /environ");
    let env = parse_json_object(&r.text());
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("REQUEST_METHOD"), Some("GET"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    assert_eq!(get("QUERY_STRING"), Some("x=1&y=%20z"), "{env:#?}");
    assert_eq!(get("HTTP_X_CUSTOM"), Some("custom value"), "{env:#?}");
    assert_eq!(get("REMOTE_ADDR"), Some("127.0.0.1"), "{env:#?}");
    assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.1"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("http"), "{env:#?}");
    assert_eq!(get("SCRIPT_NAME"), Some(""), "{env:#?}");
    assert_eq!(
        get("HTTP_HOST").map(|h| h.starts_with("localhost")),
        Some(true),
        "{env:#?}"
    );

    // A percent-escaped path arrives decoded in PATH_INFO, raw in
    // REQUEST_URI; an absent query is an empty QUERY_STRING.
    let r = s.call("GET", "/environ/a%20b", &[], b"");
    s.expect_ok(&r, "GET /environ/a%20b");
    let env = parse_json_object(&r.text());
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("PATH_INFO"), Some("/environ/a b"), "{env:#?}");
    assert_eq!(get("REQUEST_URI"), Some("/environ/a%20b"), "{env:#?}");
    assert_eq!(get("QUERY_STRING"), Some(""), "{env:#?}");
}

#[test]
fn environ_reaches_the_app_over_tcp() {
    environ_reaches_the_app(Via::Tcp);
}

#[test]
fn environ_reaches_the_app_over_unix_socket() {
    environ_reaches_the_app(Via::Unix);
}

/// Bytes that are not one repeated value, so a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn post_bodies_arrive_intact(via: Via) {
    let s = Stack::start(via);
    for len in [0, 1024, 5 * 1024 * 1024] {
        let body = pattern(len);
        let r = s.call(
            "POST",
            "/echo",
            &["Content-Type: application/octet-stream"],
            &body,
        );
        s.expect_ok(&r, &format!("POST of {len} bytes"));
        assert_eq!(r.body.len(), len, "POST of {len} bytes: echoed length");
        assert!(r.body == body, "POST of {len} bytes: echoed bytes differ");
    }
    // The app sees the length nginx announced.
    let r = s.call("POST", "/environ", &[], &pattern(1024));
    let env = parse_json_object(&r.text());
    assert_eq!(env.get("BODY_LENGTH").map(String::as_str), Some("1024"));
    assert_eq!(env.get("CONTENT_LENGTH").map(String::as_str), Some("1024"));
}

#[test]
fn post_bodies_arrive_intact_over_tcp() {
    post_bodies_arrive_intact(Via::Tcp);
}

#[test]
fn post_bodies_arrive_intact_over_unix_socket() {
    post_bodies_arrive_intact(Via::Unix);
}

fn a_40k_cookie_jar_works(via: Via) {
    let s = Stack::start(via);
    let jar: Vec<String> = (0..420)
        .map(|i| format!("cookie{i:03}={}", "v".repeat(90)))
        .collect();
    let jar = jar.join("; ");
    assert!(jar.len() >= 40 * 1024, "{}", jar.len());
    let header = format!("Cookie: {jar}");
    let r = s.call("GET", "/environ", &[&header], b"");
    s.expect_ok(&r, "GET with 40 KiB of cookies");
    let env = parse_json_object(&r.text());
    assert!(
        env.get("HTTP_COOKIE") == Some(&jar),
        "HTTP_COOKIE differs: {} bytes arrived, {} sent",
        env.get("HTTP_COOKIE").map_or(0, String::len),
        jar.len()
    );
}

#[test]
fn a_40k_cookie_jar_works_over_tcp() {
    a_40k_cookie_jar_works(Via::Tcp);
}

#[test]
fn a_40k_cookie_jar_works_over_unix_socket() {
    a_40k_cookie_jar_works(Via::Unix);
}

fn streaming_response_arrives_complete(via: Via) {
    let s = Stack::start(via);
    let r = s.call("GET", "/stream", &[], b"");
    s.expect_ok(&r, "GET /stream");
    let want = stream_body();
    assert_eq!(r.body.len(), want.len(), "streamed length");
    assert!(r.body == want, "streamed body differs");
    // HEAD of the same: headers only, and nginx still answers after it.
    let r = s.call("HEAD", "/stream", &[], b"");
    s.expect_ok(&r, "HEAD /stream");
    let r = s.call("GET", "/", &[], b"");
    assert_eq!(r.body, b"ok");
}

#[test]
fn streaming_response_arrives_complete_over_tcp() {
    streaming_response_arrives_complete(Via::Tcp);
}

#[test]
fn streaming_response_arrives_complete_over_unix_socket() {
    streaming_response_arrives_complete(Via::Unix);
}

fn app_error_is_a_500(via: Via) {
    let s = Stack::start(via);
    let r = s.call("GET", "/raise", &[], b"");
    assert_eq!(r.status, 500, "{}\n{}", show(&r), s.nginx.logs());
    assert!(
        !r.text().contains("raised on purpose"),
        "the exception reached the client: {}",
        r.text()
    );
    // The worker goes on serving.
    let r = s.call("GET", "/", &[], b"");
    s.expect_ok(&r, "after the 500");
}

#[test]
fn app_error_is_a_500_over_tcp() {
    app_error_is_a_500(Via::Tcp);
}

#[test]
fn app_error_is_a_500_over_unix_socket() {
    app_error_is_a_500(Via::Unix);
}

fn killed_rwsgi_is_a_prompt_502(via: Via) {
    let mut s = Stack::start(via);
    let r = s.call("GET", "/", &[], b"");
    s.expect_ok(&r, "before the kill");
    // A request in flight when rwsgi dies…
    let mut inflight = s.nginx.connect();
    inflight.send(&request("GET", "/sleep?ms=60000", &[], b""));
    s.server.wait_for_log("sleep-begin", PROMPT);
    // The master first, so it cannot replace the workers killed after it.
    let master = s.server.pid();
    let mut victims = s.server.children();
    victims.extend(s.server.logged_worker_pids());
    send_signal(master, "KILL");
    for pid in &victims {
        send_signal(*pid, "KILL");
    }
    victims.push(master);
    let deadline = Instant::now() + PROMPT;
    while victims.iter().any(|&p| crate::harness::is_rwsgi_process(p)) {
        assert!(
            Instant::now() < deadline,
            "rwsgi survived SIGKILL: {victims:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let quick = Duration::from_secs(5);
    inflight.set_read_timeout(quick);
    let started = Instant::now();
    let r = inflight
        .read_response(false)
        .unwrap_or_else(|e| panic!("in-flight request: no response within {quick:?} ({e})"));
    assert_eq!(r.status, 502, "in-flight request: {}", show(&r));
    assert!(started.elapsed() < quick, "{:?}", started.elapsed());
    // …and a new one.
    let mut c = s.nginx.connect();
    c.set_read_timeout(quick);
    let started = Instant::now();
    c.send(&request("GET", "/", &[], b""));
    let r = c
        .read_response(false)
        .unwrap_or_else(|e| panic!("new request: no response within {quick:?} ({e})"));
    assert_eq!(
        r.status,
        502,
        "new request: {}\n{}",
        show(&r),
        s.nginx.logs()
    );
    assert!(started.elapsed() < quick, "{:?}", started.elapsed());
}

#[test]
fn killed_rwsgi_is_a_prompt_502_over_tcp() {
    killed_rwsgi_is_a_prompt_502(Via::Tcp);
}

#[test]
fn killed_rwsgi_is_a_prompt_502_over_unix_socket() {
    killed_rwsgi_is_a_prompt_502(Via::Unix);
}

/// etc/nginx/rwsgi.conf as shipped (only its listen address and socket path
/// changed) serves a big cookie jar and a 5 MiB upload.
#[test]
fn the_shipped_nginx_config_works() {
    let shipped =
        std::fs::read_to_string(crate::harness::project_dir().join("etc/nginx/rwsgi.conf"))
            .expect("read etc/nginx/rwsgi.conf");
    let dir = TempDir::new("shipped");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("app.sock");
    let a = app("nginx_app.py");
    let server = Server::start_exact(&[
        "--socket",
        sock.to_str().unwrap(),
        "--chmod-socket",
        "--wsgi-file",
        &a,
    ]);
    let sock_line = "server unix:/run/rwsgi/app.sock;";
    assert!(shipped.contains("listen 80;"), "{shipped}");
    assert!(shipped.contains(sock_line), "{shipped}");
    assert!(shipped.contains("include uwsgi_params;"), "{shipped}");
    let nginx = Nginx::start(dir.path(), |port, params| {
        // `include uwsgi_params;` is relative to the main config's directory.
        std::fs::copy(params, dir.path().join("uwsgi_params")).unwrap();
        shipped
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace(sock_line, &format!("server unix:{};", sock.display()))
    });
    let jar: Vec<String> = (0..420)
        .map(|i| format!("cookie{i:03}={}", "v".repeat(90)))
        .collect();
    let jar = jar.join("; ");
    let mut c = nginx.connect();
    let r = c.call("GET", "/environ", &[&format!("Cookie: {jar}")], b"");
    assert_ok(&r, &nginx, &server);
    let env = parse_json_object(&r.text());
    assert!(env.get("HTTP_COOKIE") == Some(&jar), "cookie jar differs");
    let body = pattern(5 * 1024 * 1024);
    let r = nginx.connect().call("POST", "/echo", &[], &body);
    assert_eq!(r.status, 200, "{}\n{}", show(&r), nginx.logs());
    assert!(r.body == body, "5 MiB upload echoed differently");
    drop(nginx);
}
