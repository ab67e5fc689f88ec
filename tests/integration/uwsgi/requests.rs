//! What a uwsgi packet becomes: the environ, PING, magic vars, the vars
//! block's limits, and the log line each malformed packet gets.

use super::*;

#[test]
fn response_status_line_follows_server_protocol_and_is_never_chunked() {
    let (_server, addr) = uwsgi_server(&[]);
    for proto in ["HTTP/1.0", "HTTP/1.1"] {
        // A streamed body (no Content-Length): close-delimited, not chunked.
        let r = addr
            .connect()
            .call(&request_packet("GET", "/stream", "", proto, &[], b""));
        assert_eq!(r.status_line, format!("{proto} 200 OK"), "{r:?}");
        assert_eq!(r.header("Transfer-Encoding"), None, "{proto}: {r:?}");
        assert_eq!(r.header("Content-Length"), None, "{proto}");
        assert!(
            r.body == stream_body(),
            "{proto}: streamed body differs: {} bytes, starts {:?}",
            r.body.len(),
            String::from_utf8_lossy(&r.body[..r.body.len().min(80)])
        );
        // A body with a length keeps it.
        let r = addr
            .connect()
            .call(&request_packet("POST", "/echo", "", proto, &[], b"hello"));
        assert_eq!(r.status_line, format!("{proto} 200 OK"), "{r:?}");
        assert_eq!(r.header("Content-Length"), Some("5"), "{r:?}");
        assert_eq!(r.body, b"hello");
    }
}

#[test]
fn vars_become_the_environ_as_sent() {
    let (_server, addr) = uwsgi_server(&[]);
    let env = environ_over(
        &addr,
        &request_packet(
            "GET",
            "/environ",
            "x=1&y=%20z",
            "HTTP/1.1",
            &[
                ("SCRIPT_NAME", b"/app"),
                ("HTTP_X_CUSTOM", b"custom value"),
                ("REQUEST_SCHEME", b"http"),
            ],
            b"",
        ),
    );
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("REQUEST_METHOD"), Some("GET"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    assert_eq!(get("QUERY_STRING"), Some("x=1&y=%20z"), "{env:#?}");
    assert_eq!(get("SCRIPT_NAME"), Some("/app"), "{env:#?}");
    assert_eq!(get("HTTP_X_CUSTOM"), Some("custom value"), "{env:#?}");
    // The client nginx saw, not the socket peer.
    assert_eq!(get("REMOTE_ADDR"), Some("10.1.2.3"), "{env:#?}");
    assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.1"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("http"), "{env:#?}");

    // An empty QUERY_STRING (nginx always sends one) stays empty.
    let env = environ_over(
        &addr,
        &request_packet("GET", "/environ", "", "HTTP/1.1", &[], b""),
    );
    assert_eq!(
        env.get("QUERY_STRING").map(String::as_str),
        Some(""),
        "{env:#?}"
    );
    assert_eq!(
        env.get("SCRIPT_NAME").map(String::as_str),
        Some(""),
        "{env:#?}"
    );

    // HTTPS=on (nginx's `$https if_not_empty`) makes the scheme https.
    let env = environ_over(
        &addr,
        &request_packet(
            "GET",
            "/environ",
            "",
            "HTTP/1.1",
            &[("HTTPS", b"on"), ("REQUEST_SCHEME", b"https")],
            b"",
        ),
    );
    assert_eq!(
        env.get("wsgi.url_scheme").map(String::as_str),
        Some("https"),
        "{env:#?}"
    );
}

#[test]
fn missing_vars_get_defaults_and_repeated_headers_are_joined() {
    let (_server, addr) = uwsgi_server(&[]);
    let env = environ_over(
        &addr,
        &encode(
            0,
            0,
            &[
                (b"REQUEST_URI", b"/environ?q=1"),
                (b"HTTP_ACCEPT", b"text/html"),
                (b"HTTP_X_TWICE", b"1"),
                (b"HTTP_ACCEPT", b"*/*"),
                (b"HTTP_COOKIE", b"a=1"),
                (b"HTTP_X_TWICE", b"2"),
                (b"HTTP_COOKIE", b"b=2"),
                (b"HTTPS", b"1"),
            ],
        ),
    );
    let get = |k: &str| env.get(k).map(String::as_str);
    // No REQUEST_METHOD, SERVER_PROTOCOL or PATH_INFO: GET, HTTP/1.0, and
    // the path of REQUEST_URI.
    assert_eq!(get("REQUEST_METHOD"), Some("GET"), "{env:#?}");
    assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.0"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    // A known header, an unknown one and cookies, each sent twice.
    assert_eq!(get("HTTP_ACCEPT"), Some("text/html, */*"), "{env:#?}");
    assert_eq!(get("HTTP_X_TWICE"), Some("1, 2"), "{env:#?}");
    assert_eq!(get("HTTP_COOKIE"), Some("a=1; b=2"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("https"), "{env:#?}");
    assert_eq!(get("SERVER_NAME"), Some("127.0.0.1"), "{env:#?}");
}

/// A CGI var sent twice (a `uwsgi_param` on top of `uwsgi_params`): the last
/// one is the environ's, and what rwsgi derives from it follows it too.
#[test]
fn a_repeated_cgi_var_is_the_last_one_everywhere() {
    let (_server, addr) = uwsgi_server(&[]);
    let env = environ_over(
        &addr,
        &encode(
            0,
            0,
            &[
                (b"REQUEST_URI", b"/first"),
                (b"HTTPS", b"off"),
                (b"REQUEST_URI", b"/environ?x=1"),
                (b"HTTPS", b"on"),
            ],
        ),
    );
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("REQUEST_URI"), Some("/environ?x=1"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    assert_eq!(get("HTTPS"), Some("on"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("https"), "{env:#?}");
}

#[test]
fn ping_gets_the_four_byte_pong() {
    let (_server, addr) = uwsgi_server(&[]);
    let mut c = addr.connect();
    c.send(&[100, 0, 0, 0]);
    assert_eq!(c.read_to_close(), [100, 0, 0, 1], "PING answer");
    assert_serves(&addr, "after a PING");
}

#[test]
fn uwsgi_magic_vars_load_no_code() {
    let dir = TempDir::new("magic");
    let marker = dir.path().join("imported");
    let evil = format!(
        "open({:?}, 'w').write('x')\n\
         def application(environ, start_response):\n    \
             start_response('200 OK', [])\n    \
             return [b'EVIL']\n",
        marker.to_str().unwrap()
    );
    std::fs::write(dir.path().join("evil.py"), evil).unwrap();
    let (server, addr) = uwsgi_server(&[]);
    let evil_path = dir.path().join("evil.py");
    let dir_str = dir.path().to_str().unwrap();
    let packet = request_packet(
        "GET",
        "/environ",
        "",
        "HTTP/1.1",
        &[
            ("UWSGI_FILE", evil_path.to_str().unwrap().as_bytes()),
            ("UWSGI_SCRIPT", b"evil"),
            ("UWSGI_MODULE", b"evil"),
            ("UWSGI_CALLABLE", b"application"),
            ("UWSGI_CHDIR", dir_str.as_bytes()),
            ("UWSGI_PYHOME", dir_str.as_bytes()),
        ],
        b"",
    );
    let r = addr.connect().call(&packet);
    assert_eq!(r.status(), 200, "{r:?}");
    assert_ne!(r.body, b"EVIL", "UWSGI_FILE / UWSGI_SCRIPT loaded code");
    let env = parse_json_object(&String::from_utf8_lossy(&r.body));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some("/environ"));
    let leaked: Vec<&String> = env.keys().filter(|k| k.starts_with("UWSGI_")).collect();
    assert!(leaked.is_empty(), "UWSGI_* vars in the environ: {leaked:?}");
    assert!(
        !marker.exists(),
        "evil.py was imported; log:\n{}",
        server.log_text()
    );
    assert_serves(&addr, "after magic vars");
}

#[test]
fn a_65535_byte_vars_block_is_accepted_by_default() {
    let (_server, addr) = uwsgi_server(&[]);
    let base = request_packet("GET", "/environ", "", "HTTP/1.1", &[], b"");
    let base_datasize = base.len() - 4;
    // One more var, padded so the block is exactly 65535 bytes.
    let pad_len = 65535 - base_datasize - 4 - "HTTP_X_PAD".len();
    let pad = vec![b'p'; pad_len];
    let packet = request_packet(
        "GET",
        "/environ",
        "",
        "HTTP/1.1",
        &[("HTTP_X_PAD", &pad)],
        b"",
    );
    assert_eq!(u16::from_le_bytes([packet[1], packet[2]]), 65535);
    let env = environ_over(&addr, &packet);
    assert_eq!(
        env.get("HTTP_X_PAD").map(String::len),
        Some(pad_len),
        "the padding var did not arrive whole"
    );
}

#[test]
fn a_vars_block_over_buffer_size_is_refused_and_logged() {
    let (mut server, addr) = uwsgi_server(&["--buffer-size", "4096"]);
    let pad = vec![b'p'; 5000];
    let packet = request_packet("GET", "/", "", "HTTP/1.1", &[("HTTP_X_PAD", &pad)], b"");
    let datasize = u16::from_le_bytes([packet[1], packet[2]]).to_string();
    let from = server.log().len();
    let mut c = addr.connect();
    c.send(&packet);
    let got = c.read_to_close();
    assert!(
        got.is_empty(),
        "refused packet answered {:?}",
        String::from_utf8_lossy(&got)
    );
    let line = server.wait_for_log_from(from, "naming the limit", PROMPT, |l| {
        l.contains(&datasize) && l.contains("4096") && l.contains("--buffer-size")
    });
    assert!(line.contains("uwsgi"), "{line}");
    // Just under the limit still works.
    let pad = vec![b'p'; 3000];
    let r = addr.connect().call(&request_packet(
        "GET",
        "/",
        "",
        "HTTP/1.1",
        &[("HTTP_X_PAD", &pad)],
        b"",
    ));
    assert_eq!(r.status(), 200, "{r:?}");
}

/// A POST whose body stops 90 bytes short of its CONTENT_LENGTH.
fn good_head_then_short_body() -> Vec<u8> {
    let mut p = request_packet("POST", "/echo", "", "HTTP/1.1", &[], &[b'b'; 100]);
    p.truncate(p.len() - 90);
    p
}

#[test]
fn malformed_input_closes_the_connection_with_a_specific_log_line() {
    let (server, addr) = uwsgi_server(&[]);
    let worker = server.children();
    assert_eq!(worker.len(), 1, "{}", server.log_text());
    let good = request_packet("GET", "/", "", "HTTP/1.1", &[], b"");
    let has = |words: &'static [&'static str]| move |l: &str| words.iter().all(|w| l.contains(w));
    let incomplete = |l: &str| {
        l.contains("uwsgi")
            && ["incomplete", "truncated", "before a complete"]
                .iter()
                .any(|w| l.contains(w))
    };
    // (what, bytes, close our side after sending, log line check)
    type Check = Box<dyn Fn(&str) -> bool>;
    let cases: Vec<(&str, Vec<u8>, bool, Check)> =
        vec![
        (
            "truncated header, then close",
            good[..2].to_vec(),
            true,
            Box::new(incomplete),
        ),
        (
            "datasize beyond the bytes sent, then close",
            good[..good.len() - 7].to_vec(),
            true,
            Box::new(incomplete),
        ),
        (
            "body shorter than CONTENT_LENGTH, then close",
            good_head_then_short_body(),
            true,
            Box::new(incomplete),
        ),
        (
            "truncated var (value length past the block)",
            {
                // key "A", then a value length of 50 with 3 bytes in the block.
                let block = [1u8, 0, b'A', 50, 0, b'x', b'y', b'z'];
                let mut p = vec![0, block.len() as u8, 0, 0];
                p.extend_from_slice(&block);
                p
            },
            false,
            Box::new(has(&["uwsgi", "runs past the end of the vars block"])),
        ),
        (
            "zero-length key",
            encode(0, 0, &[(b"REQUEST_METHOD", b"GET"), (b"", b"x")]),
            false,
            Box::new(has(&["uwsgi", "empty key"])),
        ),
        (
            "CONTENT_LENGTH not a number",
            encode(0, 0, &[(b"CONTENT_LENGTH", b"12x")]),
            false,
            Box::new(has(&["CONTENT_LENGTH", "12x", "not a decimal number"])),
        ),
        (
            "conflicting CONTENT_LENGTH",
            encode(0, 0, &[(b"CONTENT_LENGTH", b"1"), (b"CONTENT_LENGTH", b"2")]),
            false,
            Box::new(has(&["conflicting CONTENT_LENGTH"])),
        ),
        (
            "CR LF in REQUEST_URI (nginx never forwards one)",
            encode(0, 0, &[(b"REQUEST_URI", b"/a\r\nforged")]),
            false,
            Box::new(has(&["a control byte in REQUEST_URI"])),
        ),
        (
            "ESC in QUERY_STRING",
            encode(0, 0, &[(b"QUERY_STRING", b"a=\x1b[2J")]),
            false,
            Box::new(has(&["a control byte in QUERY_STRING"])),
        ),
        (
            "modifier1 5",
            encode(5, 0, &[(b"REQUEST_METHOD", b"GET")]),
            false,
            Box::new(has(&["uwsgi", "modifier1 5"])),
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            false,
            Box::new(has(&[
                "this looks like an HTTP request on a uwsgi socket; use --http for HTTP clients",
            ])),
        ),
    ];
    let mut failures = Vec::new();
    for (what, bytes, close, check) in cases {
        let from = server.log().len();
        let mut c = addr.connect();
        c.send(&bytes);
        if close {
            c.shutdown_write();
        }
        match c.try_read_to_close() {
            Ok(got) if got.is_empty() => {}
            Ok(got) => failures.push(format!(
                "{what}: answered {:?} instead of just closing",
                String::from_utf8_lossy(&got)
            )),
            Err((e, _)) => failures.push(format!("{what}: connection not closed ({e})")),
        }
        // The log line may follow the close by a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let logged = loop {
            if let Some(l) = server.log().iter().skip(from).find(|l| check(l)) {
                break Some(l.clone());
            }
            if Instant::now() >= deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        if logged.is_none() {
            failures.push(format!(
                "{what}: no specific log line; new lines: {:?}",
                &server.log()[from..]
            ));
        }
        // The same worker serves a good request right after.
        assert_serves(&addr, &format!("after {what}"));
        assert_eq!(server.children(), worker, "after {what}: worker changed");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_sender_that_stalls_midway_is_cut_off_after_http_timeout() {
    let (mut server, addr) = uwsgi_server(&["--http-timeout", "2"]);
    let good = request_packet("GET", "/", "", "HTTP/1.1", &[("HTTP_X_A", b"b")], b"");
    let from = server.log().len();
    let mut c = addr.connect();
    c.set_read_timeout(Duration::from_secs(15));
    let started = Instant::now();
    c.send(&good[..good.len() / 2]);
    let got = c.try_read_to_close();
    let took = started.elapsed();
    let got = match got {
        Ok(got) => got,
        Err((e, _)) => panic!("stalled connection still open after {took:?} ({e})"),
    };
    // Nothing, or a 408 (which nginx would pass on to its client).
    if !got.is_empty() {
        assert_eq!(RawResponse::parse(&got).status(), 408, "{got:?}");
    }
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "closed after {took:?}; --http-timeout is 2 s"
    );
    assert_serves(&addr, "after a stalled sender");
    server.wait_for_log_from(
        from,
        "about the stalled uwsgi peer",
        Duration::from_secs(5),
        |l| l.contains("--http-timeout"),
    );
}
