//! Client bytes cannot forge or break log lines (issue 12, security 3): CR,
//! LF, ESC, NUL and other control bytes, `"` and `\` are escaped as nginx
//! does (`\x0A`), over HTTP and uwsgi, in the access log (every format) and
//! in error lines that name the request.

use crate::harness::{app, Server, PROMPT};
use crate::uwsgi::{request_packet, uwsgi_addrs};

/// Every line of the log that mentions `marker` has it escaped: no raw
/// control byte, and `marker` never starts a line of its own.
fn assert_no_forged_line(server: &Server, marker: &str) {
    for line in server.log() {
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "a control byte reached the log: {line:?}"
        );
        if let Some(at) = line.find(marker) {
            assert!(
                line[..at].ends_with("\\x0A") || line[..at].ends_with("\\n"),
                "a forged line: {line:?}"
            );
        }
    }
}

#[test]
fn uwsgi_vars_are_escaped_in_access_and_error_lines() {
    for format in ["default", "combined", "json"] {
        let mut server = Server::start_exact(&[
            "--socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("errors.py"),
            "--log-format",
            format,
        ]);
        let addr = uwsgi_addrs(&server)[0].clone();
        let hostile: &[(&str, &[u8])] = &[
            // (Control bytes in REQUEST_URI are refused: see uwsgi.rs.)
            ("REQUEST_URI", "/raise?\"q\" \\ caf\u{e9}".as_bytes()),
            ("HTTP_USER_AGENT", b"ua\"\r\nFORGED-UA\x1b]0;t\x07"),
            ("REMOTE_ADDR", b"10.0.0.1\nFORGED-ADDR"),
        ];
        let mut c = addr.connect();
        // PATH_INFO /raise: the app raises, so the error line names it too.
        c.send(&request_packet(
            "GET", "/raise", "", "HTTP/1.1", hostile, b"",
        ));
        let reply = c.read_to_close();
        assert!(reply.starts_with(b"HTTP/1.1 500"), "{format}");
        let access = server.wait_for_log("FORGED-ADDR", PROMPT);
        let error = server.wait_for_log("exception in the app", PROMPT);
        assert!(
            error.contains("GET /raise?\\x22q\\x22 \\x5C caf\\xC3\\xA9: exception in the app"),
            "{format}: {error}"
        );
        if format == "json" {
            assert!(
                access.contains(r#""uagent":"ua\"\r\nFORGED-UA\u001b]0;t\u0007""#),
                "{format}: {access}"
            );
        } else {
            assert!(
                access.contains("/raise?\\x22q\\x22 \\x5C caf\\xC3\\xA9"),
                "{format}: {access}"
            );
            assert!(
                access.contains("10.0.0.1\\x0AFORGED-ADDR"),
                "{format}: {access}"
            );
        }
        if format == "combined" {
            assert!(
                access.contains("\"ua\\x22\\x0D\\x0AFORGED-UA\\x1B]0;t\\x07\""),
                "{access}"
            );
        }
        assert_no_forged_line(&server, "FORGED");
    }
}

#[test]
fn http_quotes_and_8bit_bytes_are_escaped_in_the_combined_log() {
    let mut server = Server::start(&["--wsgi-file", &app("hello.py"), "--log-format", "combined"]);
    let mut c = server.connect();
    c.send(
        b"GET /q HTTP/1.1\r\nHost: a\r\nUser-Agent: x\" 200 \"forged\\\xc3\xa9\r\n\
          Referer: r\"\r\n\r\n",
    );
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let line = server.wait_for_log("GET /q ", PROMPT);
    assert!(
        line.ends_with(" \"r\\x22\" \"x\\x22 200 \\x22forged\\x5C\\xC3\\xA9\""),
        "{line}"
    );
    assert_eq!(
        line.matches('"').count(),
        6,
        "only the format's quotes: {line}"
    );
}
