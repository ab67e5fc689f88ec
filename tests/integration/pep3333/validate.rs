//! wsgiref's validator around what `wsgi.rs` does not put through it:
//! `wsgi.file_wrapper` (real file and BytesIO), `exc_info`, `wsgi.input`
//! read line by line (with Content-Length and chunked), and a streamed body
//! for HEAD and HTTP/1.0. The app turns warnings into errors, so a complaint
//! is a 500 here; the log must stay clean too.

use super::{chunked_request, q, start};
use crate::harness::{TempDir, PROMPT};

#[test]
fn validator_accepts_file_wrapper_exc_info_and_line_reads() {
    validate(&[]);
}

/// The same through app threads (the environ says `wsgi.multithread`).
#[test]
fn validator_finds_nothing_with_threads() {
    validate(&["--threads", "4"]);
}

fn validate(extra: &[&str]) {
    let mut server = start("pep_validate.py", extra);
    let tmp = TempDir::new("validate");
    let file = tmp.file("page.txt");
    let data: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let mut c = server.connect();

    let r = c.get(&format!("/file?path={}", q(&file)));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == data, "file_wrapper body: {} bytes", r.body.len());
    let r = c.get("/bytesio");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "bytesio body"),
        "{r:?}"
    );

    let r = c.get("/exc-info");
    assert_eq!((r.status, r.text().as_str()), (500, "handled"), "{r:?}");

    let body = b"abcdef\nline2\nline3\nline4\n";
    let want = "abcd|ef\n|line2\n|line3\n|line4\n";
    let r = c.call("POST", "/lines", &[], body);
    assert_eq!((r.status, r.text().as_str()), (200, want), "{r:?}");
    c.send(&chunked_request("/lines", body, 5));
    let r = c
        .read_response(false)
        .expect("a response to the chunked POST");
    assert_eq!((r.status, r.text().as_str()), (200, want), "{r:?}");

    let r = c.call("HEAD", "/stream", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let mut old = server.connect();
    old.send(b"GET /stream HTTP/1.0\r\n\r\n");
    let r = old.read_response(false).expect("an HTTP/1.0 response");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "streamed through the validator")
    );

    // Stop the server so everything the worker wrote is in the log.
    server.signal("TERM");
    server.wait_exit(PROMPT);
    let log = server.log_text();
    for bad in [
        "Warning",
        "AssertionError",
        "Traceback",
        "Exception ignored",
        "exception in",
    ] {
        assert!(
            !log.contains(bad),
            "the validator complained ({bad}):\n{log}"
        );
    }
}
