//! etc/nginx/rwsgi-http.conf: nginx in front of rwsgi over HTTP, reusing its
//! upstream connections.

use std::collections::HashSet;

use super::{assert_ok, Nginx};
use crate::harness::{app, Server, TempDir};
use crate::uwsgi::parse_json_object;

/// The shipped config (only its listen address and upstream port changed)
/// serves requests through a few kept-alive upstream connections and passes
/// the client's address in X-Forwarded-For.
#[test]
fn the_shipped_http_proxy_config_reuses_upstream_connections() {
    let shipped =
        std::fs::read_to_string(crate::harness::project_dir().join("etc/nginx/rwsgi-http.conf"))
            .expect("read etc/nginx/rwsgi-http.conf");
    let dir = TempDir::new("shipped-http");
    let server = Server::start(&["--wsgi-file", &app("nginx_app.py")]);
    let upstream_line = "server 127.0.0.1:8000;";
    assert!(shipped.contains("listen 80;"), "{shipped}");
    assert!(shipped.contains(upstream_line), "{shipped}");
    let nginx = Nginx::start(dir.path(), |port, _params| {
        shipped
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace(
                upstream_line,
                &format!("server 127.0.0.1:{};", server.port()),
            )
    });
    let mut ports = HashSet::new();
    let mut c = nginx.connect();
    for i in 0..20 {
        let r = c.call("GET", &format!("/environ?i={i}"), &[], b"");
        assert_ok(&r, &nginx, &server);
        let env = parse_json_object(&r.text());
        assert_eq!(
            env.get("HTTP_X_FORWARDED_FOR").map(String::as_str),
            Some("127.0.0.1"),
            "{env:#?}"
        );
        assert_eq!(
            env.get("SERVER_PROTOCOL").map(String::as_str),
            Some("HTTP/1.1")
        );
        ports.insert(env.get("REMOTE_PORT").cloned().unwrap_or_default());
    }
    // One connection from nginx would do; a second is allowed for an
    // upstream connection nginx chose to drop.
    assert!(
        ports.len() <= 2,
        "nginx opened {} upstream connections for 20 sequential requests: {ports:?}",
        ports.len()
    );
}
