//! Hostile paths: traversal in every encoding, symlinks out of the root,
//! NUL, overlong UTF-8, backslashes, encoded slashes, dotfiles. Each is
//! refused with a bare 404 (or by the HTTP parser with 400), or falls
//! through to the app when it names no file; none ever shows the secret.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::{Site, APP_BODY, SECRET};
use crate::harness::PROMPT;

/// What a row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The static map refuses it: 404 with the plain body.
    Refused,
    /// The HTTP parser refuses the request line: 400.
    BadRequest,
    /// No file by that (literal) name: the app answers.
    App,
}

use Want::*;

const TABLE: &[(&str, Want)] = &[
    ("/static/../secret.txt", Refused),
    ("/static/%2e%2e/secret.txt", Refused),
    ("/static/%2E%2E/secret.txt", Refused),
    ("/static/.%2e/secret.txt", Refused),
    ("/static/%2e./secret.txt", Refused),
    ("/static/sub/../../secret.txt", Refused),
    ("/static/sub/%2e%2e/%2e%2e/secret.txt", Refused),
    ("/static//../secret.txt", Refused),
    ("/static/./app.css", Refused),
    ("/static/..;/secret.txt", Refused),
    // Encoded separators never become separators.
    ("/static/..%2fsecret.txt", Refused),
    ("/static/%2e%2e%2fsecret.txt", Refused),
    ("/static/sub%2F..%2F..%2Fsecret.txt", Refused),
    ("/static/..%5csecret.txt", Refused),
    ("/static/..%5Csecret.txt", Refused),
    ("/static/..\\secret.txt", Refused),
    // Overlong UTF-8 for `.` and `/`, and other invalid UTF-8.
    ("/static/%c0%ae%c0%ae/secret.txt", Refused),
    ("/static/%e0%80%ae%e0%80%ae/secret.txt", Refused),
    ("/static/%c0%af..%c0%afsecret.txt", Refused),
    ("/static/%ff%fe", Refused),
    // NUL and control bytes, encoded (raw ones are the parser's).
    ("/static/app.css%00.png", Refused),
    ("/static/%00", Refused),
    ("/static/app.css%0a", Refused),
    ("/static/app.css\0", BadRequest),
    // Symlinks out of the root: relative, absolute, to a directory, magic.
    ("/static/escape", Refused),
    ("/static/etc/passwd", Refused),
    ("/static/dirlink/secret.txt", Refused),
    ("/static/magic", Refused),
    // Dotfiles, plain and encoded.
    ("/static/.env", Refused),
    ("/static/%2eenv", Refused),
    ("/static/.git/config", Refused),
    // Absolute-form targets are mapped by their path like any other.
    ("http://localhost/static/../secret.txt", Refused),
    // Decoded once: these are literal names that do not exist.
    ("/static/%252e%252e/secret.txt", App),
    ("/static/%252e%252e%252fsecret.txt", App),
    ("/static/%u002e%u002e/secret.txt", App),
];

/// Sends `target` as is (no client-side normalisation) and returns the
/// whole exchange, read to the close.
fn raw_get(port: u16, target: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the response");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hostile_paths_never_leave_the_directory() {
    assert!(TABLE.len() >= 20);
    let site = Site::new("static-hostile");
    let server = site.serve(&[]);
    let mut failures = Vec::new();
    for &(target, want) in TABLE {
        let resp = raw_get(server.port(), target);
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let status = head.split(' ').nth(1).unwrap_or("");
        let ok = !resp.contains(SECRET)
            && match want {
                Refused => status == "404" && body == "404 Not Found\n",
                BadRequest => status == "400",
                App => status == "200" && body == APP_BODY,
            };
        if !ok {
            failures.push(format!("{target:?}: wanted {want:?}, got:\n{resp}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn a_refusal_does_not_tell_whether_the_target_exists() {
    let site = Site::new("static-oracle");
    let server = site.serve(&[]);
    let strip_date = |r: String| {
        r.lines()
            .filter(|l| !l.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let exists = strip_date(raw_get(server.port(), "/static/../secret.txt"));
    let absent = strip_date(raw_get(server.port(), "/static/../no-such-file"));
    assert_eq!(exists, absent);
    let link_exists = strip_date(raw_get(server.port(), "/static/escape"));
    assert_eq!(link_exists, exists);
}
