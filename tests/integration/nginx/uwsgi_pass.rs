//! Requests through nginx's `uwsgi_pass`, each over TCP and over a unix
//! socket, and the nginx configuration rwsgi ships.

use super::*;

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
