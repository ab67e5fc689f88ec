//! Static files (`--static-map`): served by the worker without Python, on
//! HTTP and uwsgi listeners. This file has the site every test serves and
//! the basic behaviour; the parts are split by behaviour:
//! `hostile` (the path table), `caching` (validators, 304, ranges,
//! precompressed variants), `large` (a 1 GiB sparse file, uwsgi, busy app).

mod caching;
mod hostile;
mod large;

use std::process::Command;

use crate::harness::{app, project_dir, Server, TempDir, PROMPT};

/// What the app (sup_app.py) answers for any path it gets: a request that
/// fell through the static map.
const APP_BODY: &str = "v1";
/// A file outside the mapped directory that no request may reach.
const SECRET: &str = "TOPSECRET-outside-the-root";
const CSS: &str = "body { color: #123456 }\n";

/// A directory tree to serve: `root/` is mapped at `/static`, with a secret
/// beside it and symlinks that try to reach it.
pub struct Site {
    pub dir: TempDir,
}

impl Site {
    pub fn new(tag: &str) -> Site {
        let dir = TempDir::new(tag);
        let p = dir.path();
        let root = p.join("root");
        for d in ["sub", "docs", ".git", "inner"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(p.join("outside")).unwrap();
        let files: [(&str, &[u8]); 12] = [
            ("secret.txt", SECRET.as_bytes()),
            ("outside/secret.txt", SECRET.as_bytes()),
            ("root/app.css", CSS.as_bytes()),
            ("root/app.css.gz", b"gzip-variant"),
            ("root/app.css.br", b"brotli-variant"),
            ("root/app.0123456789ab.js", b"console.log(1)\n"),
            ("root/sub/a.txt", b"0123456789"),
            ("root/docs/index.html", b"<p>docs</p>\n"),
            ("root/.env", SECRET.as_bytes()),
            ("root/.git/config", SECRET.as_bytes()),
            ("root/inner/target.txt", b"inner"),
            ("root/logo.png", b"\x89PNG\r\n\x1a\n"),
        ];
        for (name, body) in files {
            std::fs::write(p.join(name), body).unwrap();
        }
        let links = [
            ("../secret.txt", "root/escape"),
            ("/etc", "root/etc"),
            ("../outside", "root/dirlink"),
            ("inner/target.txt", "root/inlink"),
            ("/proc/self/root/etc/hostname", "root/magic"),
        ];
        for (target, link) in links {
            std::os::unix::fs::symlink(target, p.join(link)).unwrap();
        }
        Site { dir }
    }

    pub fn root(&self) -> String {
        self.dir.file("root")
    }

    /// `--static-map /static=ROOT`.
    pub fn map_arg(&self) -> String {
        format!("/static={}", self.root())
    }

    /// rwsgi serving sup_app.py and this site at `/static`, plus `extra`.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let a = app("sup_app.py");
        let map = self.map_arg();
        let mut args = vec![
            "--wsgi-file",
            &a,
            "--static-map",
            &map,
            "--static-index",
            "index.html",
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    }
}

#[test]
fn serves_files_with_type_length_and_validators() {
    let site = Site::new("static-basic");
    let server = site.serve(&["--static-expires", "600"]);
    let mut c = server.connect();
    let r = c.get("/static/app.css");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), CSS);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        r.header("content-length"),
        Some(CSS.len().to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("cache-control"), Some("max-age=600"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.header("etag").is_some_and(|e| e.starts_with('"')));
    assert!(r
        .header("last-modified")
        .is_some_and(|d| d.ends_with(" GMT")));
    // Same connection (keep-alive): a hashed name is immutable.
    let r = c.get("/static/app.0123456789ab.js");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let r = c.get("/static/logo.png");
    assert_eq!(
        (r.header("content-type"), r.header("vary")),
        (Some("image/png"), None)
    );
    // A directory with a trailing slash gets its index.
    let r = c.get("/static/docs/");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>docs</p>\n"));
    // A symlink that stays inside the directory is followed.
    assert_eq!(c.get("/static/inlink").text(), "inner");
}

#[test]
fn head_sends_the_headers_without_a_body() {
    let site = Site::new("static-head");
    let server = site.serve(&[]);
    let mut c = server.connect();
    let r = c.call("HEAD", "/static/app.css", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(CSS.len().to_string().as_str())
    );
    assert!(r.body.is_empty());
    // The connection is still in step: the next response is the right one.
    assert_eq!(c.get("/static/sub/a.txt").text(), "0123456789");
}

#[test]
fn what_is_not_a_static_file_falls_through_to_the_app() {
    let site = Site::new("static-fall");
    let server = site.serve(&[]);
    let mut c = server.connect();
    for target in [
        "/static/missing.css",
        "/static/docs",
        "/static/app.css/",
        "/staticx/app.css",
        "/",
        "/static/sub/a.txt/x",
    ] {
        let r = c.get(target);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, APP_BODY),
            "GET {target}"
        );
    }
    // Only GET and HEAD are served statically.
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = c.call(method, "/static/app.css", &[], b"x");
        assert_eq!(r.text(), APP_BODY, "{method}");
    }
}

#[test]
fn static_requests_are_logged_and_counted_in_metrics() {
    let site = Site::new("static-metrics");
    let mut server = site.serve(&["--metrics", "127.0.0.1:0"]);
    let mut c = server.connect();
    let r = c.get("/static/sub/a.txt");
    let etag = r.header("etag").unwrap().to_string();
    let r = c.call(
        "GET",
        "/static/sub/a.txt",
        &[&format!("If-None-Match: {etag}")],
        b"",
    );
    assert_eq!(r.status, 304);
    assert_eq!(c.get("/static/missing").text(), APP_BODY);
    server.wait_for_log("\"GET /static/sub/a.txt HTTP/1.1\" 200 10 ", PROMPT);
    server.wait_for_log("\"GET /static/sub/a.txt HTTP/1.1\" 304 0 ", PROMPT);
    server.wait_for_log("\"GET /static/missing HTTP/1.1\" 200 2 ", PROMPT);
    let port = metrics_port(&server);
    let want = [
        ("rwsgi_static_requests_total", 2.0),
        ("rwsgi_static_bytes_total", 10.0),
        ("rwsgi_static_not_modified_total", 1.0),
        ("rwsgi_requests_total{class=\"2xx\"}", 2.0),
        ("rwsgi_requests_total{class=\"3xx\"}", 1.0),
    ];
    let text = crate::http::Client::connect(port).get("/metrics").text();
    for (name, value) in want {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        let got: f64 = line[name.len()..].trim().parse().unwrap();
        assert_eq!(got, value, "{name}");
    }
}

/// The port of the `--metrics` endpoint the master logged.
fn metrics_port(server: &Server) -> u16 {
    let marker = "] Metrics endpoint on ";
    server
        .log()
        .iter()
        .find_map(|l| {
            let rest = &l[l.find(marker)? + marker.len()..];
            rest.split(" (fd ").next()?.rsplit(':').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no metrics endpoint logged:\n{}", server.log_text()))
}

/// `rwsgi ARGS --check-config` with a clean environment plus `env`:
/// (exit code, stdout, stderr).
fn check_config(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(args)
        .arg("--check-config")
        .current_dir(project_dir());
    for (name, _) in std::env::vars() {
        if name.starts_with("RWSGI_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.envs(env.iter().copied()).output().expect("run rwsgi");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_map_comes_from_flags_file_and_environment_and_is_checked() {
    let site = Site::new("static-config");
    let a = app("hello.py");
    let base = ["--http", "127.0.0.1:0", "--wsgi-file", a.as_str()];
    let toml = site.dir.file("rwsgi.toml");
    std::fs::write(
        &toml,
        format!(
            "[static]\nmap = [\"/static={}\"]\nindex = \"index.html\"\nexpires = 60\n",
            site.root()
        ),
    )
    .unwrap();
    let mut args = base.to_vec();
    args.extend(["--config", toml.as_str()]);
    let (code, out, err) = check_config(&args, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("\nmap = [\"/static={}\"]", site.root())),
        "{out}"
    );
    assert!(out.contains("\nexpires = 60"), "{out}");
    let map = site.map_arg();
    let (code, out, err) = check_config(&base, &[("RWSGI_STATIC_MAP", &map)]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("env RWSGI_STATIC_MAP"), "{out}");

    let file = format!("/static={}", site.dir.file("secret.txt"));
    let relative = format!("static={}", site.root());
    for (value, needle) in [
        (file.as_str(), "is not a directory"),
        (relative.as_str(), "must start with '/'"),
        ("/static", "URL_PREFIX=DIR"),
    ] {
        let mut args = base.to_vec();
        args.extend(["--static-map", value]);
        let (code, _, err) = check_config(&args, &[]);
        assert_eq!(code, Some(2), "{value}: {err}");
        assert!(
            err.contains("--static-map") && err.contains(needle),
            "{value}: {err}"
        );
    }
    // A directory not there yet only warns in --check-config (a deploy may
    // check before collectstatic) but stops a start.
    let missing = format!("/static={}", site.dir.file("nope"));
    let mut args = base.to_vec();
    args.extend(["--static-map", missing.as_str()]);
    let (code, _, err) = check_config(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: --static-map") && err.contains("collectstatic"),
        "{err}"
    );
    let mut server = Server::spawn(&args);
    let status = server.wait_exit(crate::harness::STARTUP);
    assert_eq!(status.code(), Some(2), "{}", server.log_text());
    assert!(server
        .log_text()
        .contains("does not exist; create it first"));
    // The environment variable serves for real.
    let mut server = Server::spawn_command({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
        cmd.args(base).env("RWSGI_STATIC_MAP", &map);
        cmd
    });
    let line = server.wait_for_log("listening on http://", crate::harness::STARTUP);
    server.wait_for_log("] ready: ", crate::harness::STARTUP);
    let port: u16 = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.rsplit(':').next()?.parse().ok())
        .expect("a port");
    let r = crate::http::Client::connect(port).get("/static/sub/a.txt");
    assert_eq!(r.text(), "0123456789");
}
