//! Validators and what clients do with them: 304s, byte ranges (first,
//! last, suffix, unsatisfiable, several, If-Range) and the precompressed
//! variant chosen by `Accept-Encoding`.

use super::{Site, CSS};
use crate::http::Response;

fn get(c: &mut crate::http::Client, target: &str, headers: &[&str]) -> Response {
    c.call("GET", target, headers, b"")
}

#[test]
fn conditional_requests_answer_304() {
    let site = Site::new("static-304");
    let server = site.serve(&["--static-expires", "60"]);
    let mut c = server.connect();
    let first = get(&mut c, "/static/app.css", &[]);
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let cases: Vec<(Vec<String>, u16)> = vec![
        (vec![format!("If-None-Match: {etag}")], 304),
        (vec![format!("If-None-Match: \"nope\", W/{etag}")], 304),
        (vec!["If-None-Match: *".into()], 304),
        (vec!["If-None-Match: \"nope\"".into()], 200),
        (vec![format!("If-Modified-Since: {lm}")], 304),
        (
            vec!["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT".into()],
            200,
        ),
        (vec!["If-Modified-Since: not a date".into()], 200),
        // If-None-Match takes precedence over If-Modified-Since.
        (
            vec![
                "If-None-Match: \"nope\"".into(),
                format!("If-Modified-Since: {lm}"),
            ],
            200,
        ),
    ];
    for (headers, want) in cases {
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = get(&mut c, "/static/app.css", &h);
        assert_eq!(r.status, want, "{headers:?}");
        if want == 304 {
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag"), Some(etag.as_str()));
            assert_eq!(r.header("cache-control"), Some("max-age=60"));
            assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        } else {
            assert_eq!(r.text(), CSS);
        }
    }
    // A changed file has a new ETag: the old one no longer matches.
    std::fs::write(
        site.dir.path().join("root/app.css"),
        b"changed, longer body\n",
    )
    .unwrap();
    let r = get(
        &mut c,
        "/static/app.css",
        &[&format!("If-None-Match: {etag}")],
    );
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
}

#[test]
fn byte_ranges() {
    let site = Site::new("static-range");
    let server = site.serve(&[]);
    let mut c = server.connect();
    // sub/a.txt is "0123456789".
    let cases: [(&str, u16, &str, Option<&str>); 9] = [
        ("bytes=0-0", 206, "0", Some("bytes 0-0/10")),
        ("bytes=0-3", 206, "0123", Some("bytes 0-3/10")),
        ("bytes=9-9", 206, "9", Some("bytes 9-9/10")),
        ("bytes=7-", 206, "789", Some("bytes 7-9/10")),
        ("bytes=-4", 206, "6789", Some("bytes 6-9/10")),
        ("bytes=5-100", 206, "56789", Some("bytes 5-9/10")),
        ("bytes=10-", 416, "", Some("bytes */10")),
        ("bytes=0-1,5-6", 200, "0123456789", None),
        ("lines=0-1", 200, "0123456789", None),
    ];
    for (range, status, body, content_range) in cases {
        let r = get(&mut c, "/static/sub/a.txt", &[&format!("Range: {range}")]);
        assert_eq!(r.status, status, "{range}");
        assert_eq!(r.text(), body, "{range}");
        assert_eq!(r.header("content-range"), content_range, "{range}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
    }
    let etag = get(&mut c, "/static/sub/a.txt", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let lm = get(&mut c, "/static/sub/a.txt", &[])
        .header("last-modified")
        .unwrap()
        .to_string();
    for (if_range, status) in [
        (etag.clone(), 206),
        (lm, 206),
        ("\"stale\"".to_string(), 200),
        (format!("W/{etag}"), 200),
        ("Thu, 01 Jan 1970 00:00:00 GMT".to_string(), 200),
    ] {
        let h = [
            "Range: bytes=2-3".to_string(),
            format!("If-Range: {if_range}"),
        ];
        let r = get(&mut c, "/static/sub/a.txt", &[&h[0], &h[1]]);
        assert_eq!(r.status, status, "If-Range: {if_range}");
    }
    // HEAD with a range: the head of the 206, no body.
    let r = c.call("HEAD", "/static/sub/a.txt", &["Range: bytes=0-1"], b"");
    assert_eq!((r.status, r.body.len()), (200, 0), "ranges are for GET");
}

#[test]
fn precompressed_variants_follow_accept_encoding() {
    let site = Site::new("static-enc");
    let server = site.serve(&[]);
    let mut c = server.connect();
    let cases: [(Option<&str>, &str, Option<&str>); 7] = [
        (None, CSS, None),
        (Some("gzip, deflate, br"), "brotli-variant", Some("br")),
        (Some("gzip"), "gzip-variant", Some("gzip")),
        (Some("br;q=0.2, gzip;q=0.9"), "gzip-variant", Some("gzip")),
        (Some("br;q=0, gzip;q=0"), CSS, None),
        (Some("*"), "brotli-variant", Some("br")),
        (Some("identity"), CSS, None),
    ];
    for (ae, body, encoding) in cases {
        let h = ae.map(|v| format!("Accept-Encoding: {v}"));
        let headers: Vec<&str> = h.iter().map(String::as_str).collect();
        let r = get(&mut c, "/static/app.css", &headers);
        assert_eq!(r.status, 200, "{ae:?}");
        assert_eq!(r.text(), body, "{ae:?}");
        assert_eq!(r.header("content-encoding"), encoding, "{ae:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae:?}");
        assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    }
    // A file with no variant: no Vary.
    let r = get(&mut c, "/static/sub/a.txt", &["Accept-Encoding: gzip"]);
    assert_eq!(
        (r.header("vary"), r.header("content-encoding")),
        (None, None)
    );
}
