//! rwsgi behind a real nginx (`uwsgi_pass`), over TCP and over a unix
//! socket: the environ, request bodies, a big cookie jar, streaming, app
//! errors, and a killed rwsgi (in `uwsgi_pass`); `http_proxy` puts nginx's
//! `proxy_pass` in front of `--http`. This file holds the harness: an nginx
//! per test, and a stack of nginx and rwsgi.
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
mod uwsgi_pass;

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
