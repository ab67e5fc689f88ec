//! PEP 3333 in full, through the real server: `wsgi.input` in every reading
//! style, spooled bodies, `wsgi.errors`, `start_response` with `write()` and
//! `exc_info`, invalid heads from the app, and `Connection: close` from the
//! app. `close()`, `wsgi.file_wrapper` and streaming are in `pep3333/close.rs`;
//! wsgiref's validator in `pep3333/validate.rs`.

mod close;
mod validate;

use crate::harness::{app, Server, PROMPT};
use crate::http::{Client, Response};

pub(crate) fn start(app_file: &str, extra: &[&str]) -> Server {
    let path = app(app_file);
    let mut args = vec!["--wsgi-file", path.as_str(), "--processes", "1"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Percent-encodes a path for a query string.
pub(crate) fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The same body as a chunked request, in chunks of `size` bytes.
pub(crate) fn chunked_request(target: &str, body: &[u8], size: usize) -> Vec<u8> {
    let mut out =
        format!("POST {target} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for chunk in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn post_both_ways(c: &mut Client, target: &str, body: &[u8]) -> [Response; 2] {
    let by_length = c.call("POST", target, &[], body);
    c.send(&chunked_request(target, body, 7));
    let by_chunks = c
        .read_response(false)
        .unwrap_or_else(|e| panic!("chunked POST {target}: {e}"));
    [by_length, by_chunks]
}

#[test]
fn wsgi_input_read_readline_readlines_iteration_and_eof() {
    let server = start("pep_input.py", &[]);
    let mut c = server.connect();
    let want = "input_terminated\tTrue\n\
                read(3)\tb'alp'\n\
                readline()\tb'ha\\n'\n\
                readline(5)\tb'bravo'\n\
                readline(-1)\tb' charlie\\n'\n\
                readlines(3)\t[b'delta\\n']\n\
                read(0)\tb''\n\
                iter\t[b'echo\\n', b'foxtrot']\n\
                eof read()\tb''\n\
                eof read(10)\tb''\n\
                eof readline()\tb''\n\
                eof readlines()\t[]\n";
    let body = b"alpha\nbravo charlie\ndelta\necho\nfoxtrot";
    for (r, how) in post_both_ways(&mut c, "/ops", body)
        .iter()
        .zip(["length", "chunked"])
    {
        assert_eq!((r.status, r.text().as_str()), (200, want), "{how}");
    }
    let lines = "[b'a\\n', b'b\\n', b'\\n', b'c']";
    for route in ["/readlines", "/iter"] {
        for r in post_both_ways(&mut c, route, b"a\nb\n\nc") {
            assert_eq!(r.text(), lines, "{route}");
        }
        // An empty body is an immediate EOF.
        let r = c.call("POST", route, &[], b"");
        assert_eq!(r.text(), "[]", "{route} of an empty body");
    }
    for r in post_both_ways(&mut c, "/read-all", b"all\x00of\xffit") {
        assert_eq!(r.text(), "b'all\\x00of\\xffit'");
    }
    assert_eq!(c.get("/read-all").text(), "b''", "a GET has an empty input");
}

#[test]
fn bodies_above_post_buffering_arrive_intact() {
    // (protocol.rs sends 3 MB with the default threshold; this spools from
    // the first read, and sends chunked too.)
    let server = start("pep_input.py", &["--post-buffering", "1000"]);
    let mut c = server.connect();
    let big: Vec<u8> = (0..3usize << 20).map(|i| (i * 7 % 251) as u8).collect();
    for body in [&big[..999], &big[..1001], &big[..]] {
        let r = c.call("POST", "/echo", &[], body);
        assert_eq!(r.status, 200);
        assert!(
            r.body == body,
            "{} bytes in, {} out",
            body.len(),
            r.body.len()
        );
        assert_eq!(r.header("X-Eof"), Some("(b'', b'', b'')"), "{}", body.len());
    }
    c.send(&chunked_request("/echo", &big, 65536 + 3));
    let r = c.read_response(false).expect("the chunked 3 MB echo");
    assert!(
        r.body == big,
        "chunked: {} bytes in, {} out",
        big.len(),
        r.body.len()
    );
}

#[test]
fn wsgi_errors_lines_go_to_the_log() {
    let mut server = start("pep_response.py", &[]);
    let r = server.connect().get("/errors");
    assert_eq!(r.status, 200);
    server.wait_for_log("PEP-ERRORS partial", PROMPT);
    let log = server.log();
    for marker in ["line one", "line two", "line three", "partial"] {
        let marker = format!("PEP-ERRORS {marker}");
        let lines: Vec<_> = log.iter().filter(|l| l.contains(&marker)).collect();
        assert!(
            lines.len() == 1 && lines[0].ends_with(&marker) && lines[0].contains("[pid "),
            "{marker:?}: want one log line of its own, got {lines:?}"
        );
    }
}

#[test]
fn write_data_precedes_the_iterables() {
    let server = start("pep_response.py", &[]);
    let mut c = server.connect();
    let r = c.get("/write");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "from write; from iterable")
    );
    // The response ended cleanly: the connection serves on.
    assert_eq!(c.get("/").text(), "ok");
}

#[test]
fn start_response_twice_without_exc_info_is_a_500() {
    let mut server = start("pep_response.py", &[]);
    let r = server.connect().get("/twice");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(!r.text().contains("must not be sent"));
    server.wait_for_log_where("the twice log line", PROMPT, |l| {
        l.contains("GET /twice: exception in the app")
            && l.contains("start_response called a second time without exc_info")
    });
}

#[test]
fn exc_info_before_the_body_replaces_the_head() {
    let server = start("pep_response.py", &[]);
    let mut c = server.connect();
    let r = c.get("/exc-replace");
    assert_eq!((r.status, r.text().as_str()), (503, "replaced"), "{r:?}");
    assert_eq!(r.header("X-Replaced"), Some("yes"), "{r:?}");
    assert_eq!(r.header("X-Original"), None, "the first head leaked: {r:?}");
    assert_eq!(c.get("/").text(), "ok");
}

#[test]
fn exc_info_after_the_head_reraises_and_closes() {
    let mut server = start("pep_response.py", &[]);
    let mut c = server.connect();
    c.send(&crate::http::request("GET", "/exc-after-head", &[], b""));
    let raw = String::from_utf8_lossy(&c.read_to_close()).into_owned();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw:?}");
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(
        body, "5\r\nfirst\r\n",
        "the body must stop (unterminated) after the first chunk"
    );
    server.wait_for_log("GET /exc-after-head: exception in the app", PROMPT);
    server.wait_for_log("ValueError: PEP-EXC-AFTER-HEAD", PROMPT);
    let log = server.log_text();
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert_eq!(server.connect().get("/").text(), "ok");
}

#[test]
fn invalid_heads_from_the_app_are_500_with_a_clear_log_line() {
    let mut server = start("pep_response.py", &[]);
    let cases = [
        (
            "/bad-status-str",
            "status \"200\" is not a valid HTTP status",
        ),
        ("/bad-status-int", "status must be a str, not int"),
        ("/headers-tuple", "response headers must be a list"),
        ("/header-int", "name and value must be str"),
        ("/header-crlf", "contains a control character"),
        ("/hop-by-hop", "\"Transfer-Encoding\" is hop-by-hop"),
        ("/hop-by-hop-lower", "\"keep-alive\" is hop-by-hop"),
        ("/header-euro", "has a character outside latin-1"),
        ("/header-bad-name", "\"X Bad\" is not a valid HTTP token"),
    ];
    for (path, why) in cases {
        let mut c = server.connect();
        let r = c.get(path);
        assert_eq!(r.status, 500, "{path}: {r:?}");
        assert_eq!(r.header("X-Injected"), None, "{path}: header injection");
        assert!(!r.text().contains("must not be sent"), "{path}: {r:?}");
        let what = format!("GET {path}: exception in the app");
        server.wait_for_log_where(&what, PROMPT, |l| l.contains(&what) && l.contains(why));
    }
    assert_eq!(server.connect().get("/").text(), "ok");
}

#[test]
fn header_values_go_out_as_latin1() {
    let server = start("pep_response.py", &[]);
    let r = server.connect().get("/header-latin1");
    assert_eq!(r.status, 200, "{r:?}");
    // One byte 0xE9 (not UTF-8's two), which the test client shows as U+FFFD.
    assert_eq!(r.header("X-Latin"), Some("caf\u{fffd}"), "{r:?}");
}

#[test]
fn connection_close_from_the_app_is_honoured() {
    let server = start("pep_response.py", &[]);
    let mut c = server.connect();
    let r = c.get("/conn-close");
    assert_eq!((r.status, r.text().as_str()), (200, "bye"));
    assert_eq!(r.header("Connection"), Some("close"), "{r:?}");
    assert!(
        c.closed_by_server(),
        "the app's Connection: close was ignored"
    );
}
