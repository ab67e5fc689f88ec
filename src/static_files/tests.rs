use super::*;
use std::collections::HashMap;

const DATE: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";

struct Site {
    base: PathBuf,
    files: StaticFiles,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn site(tag: &str) -> Site {
    let base = std::env::temp_dir().join(format!("rwsgi-static-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("app.css"), b"body{color:red}\n").unwrap();
    std::fs::write(root.join("app.css.gz"), b"GZ").unwrap();
    std::fs::write(root.join("app.css.br"), b"BR").unwrap();
    std::fs::write(root.join("docs/index.html"), b"<p>hi</p>").unwrap();
    std::fs::write(root.join("logo.png"), b"\x89PNG....").unwrap();
    std::fs::write(root.join("logo.png.gz"), b"no").unwrap();
    let files =
        StaticFiles::open(&[("/static/".into(), root)], Some("index.html"), Some(60)).unwrap();
    Site { base, files }
}

fn get(s: &Site, method: &str, path: &str, headers: &[(Header, &str)]) -> Option<StaticReply> {
    let h: HashMap<Header, Vec<u8>> = headers
        .iter()
        .map(|(k, v)| (*k, v.as_bytes().to_vec()))
        .collect();
    let lookup = |k: Header| h.get(&k).map(Vec::as_slice);
    s.files.respond(&Request {
        method: method.as_bytes(),
        path: path.as_bytes(),
        headers: &lookup,
        version: Version::Http11,
        end: ConnectionEnd::KeepAlive,
        date: DATE,
    })
}

fn header(r: &StaticReply, name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(&r.head);
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

fn body(r: &StaticReply) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let b = r.body.as_ref().expect("a body");
    let mut f = &b.file;
    f.seek(SeekFrom::Start(b.offset)).unwrap();
    let mut out = vec![0; b.len as usize];
    f.read_exact(&mut out).unwrap();
    out
}

#[test]
fn serves_a_file_with_validators_and_type() {
    let s = site("basic");
    let r = get(&s, "GET", "/static/app.css", &[]).expect("served");
    assert_eq!(r.status, 200);
    assert!(r.head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(r.head.ends_with(b"\r\n\r\n"));
    assert_eq!(
        header(&r, "Content-Type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(header(&r, "Content-Length").as_deref(), Some("16"));
    assert_eq!(header(&r, "Accept-Ranges").as_deref(), Some("bytes"));
    assert_eq!(header(&r, "Vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(header(&r, "Cache-Control").as_deref(), Some("max-age=60"));
    assert!(header(&r, "ETag").is_some() && header(&r, "Last-Modified").is_some());
    assert_eq!(body(&r), b"body{color:red}\n");
    let h = get(&s, "HEAD", "/static/app.css", &[]).unwrap();
    assert!(h.body.is_none());
    assert_eq!(header(&h, "Content-Length").as_deref(), Some("16"));
}

#[test]
fn falls_through_to_the_app() {
    let s = site("fall");
    assert!(get(&s, "GET", "/static/missing.css", &[]).is_none());
    assert!(get(&s, "POST", "/static/app.css", &[]).is_none());
    assert!(get(&s, "GET", "/other/app.css", &[]).is_none());
    assert!(
        get(&s, "GET", "/static/docs", &[]).is_none(),
        "no slash: the app's"
    );
    assert!(get(&s, "GET", "/static/app.css/", &[]).is_none());
}

#[test]
fn directory_index_and_refusals() {
    let s = site("index");
    let r = get(&s, "GET", "/static/docs/", &[]).unwrap();
    assert_eq!(body(&r), b"<p>hi</p>");
    assert_eq!(
        header(&r, "Content-Type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let r = get(&s, "GET", "/static/../root/app.css", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.head.ends_with(b"404 Not Found\n"));
    let r = get(&s, "HEAD", "/static/%2e%2e/x", &[]).unwrap();
    assert!(r.head.ends_with(b"\r\n\r\n"), "HEAD: no body");
}

#[test]
fn precompressed_variants_follow_accept_encoding() {
    let s = site("enc");
    let ae = |v: &'static str| [(Header::AcceptEncoding, v)];
    let r = get(&s, "GET", "/static/app.css", &ae("gzip, br")).unwrap();
    assert_eq!(header(&r, "Content-Encoding").as_deref(), Some("br"));
    assert_eq!(
        header(&r, "Content-Type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(body(&r), b"BR");
    let r = get(&s, "GET", "/static/app.css", &ae("gzip;q=1, br;q=0.5")).unwrap();
    assert_eq!(body(&r), b"GZ");
    let r = get(&s, "GET", "/static/app.css", &ae("identity")).unwrap();
    assert_eq!(header(&r, "Content-Encoding"), None);
    assert_eq!(header(&r, "Vary").as_deref(), Some("Accept-Encoding"));
    // A PNG's .gz beside it is not looked for: no Vary, no encoding.
    let r = get(&s, "GET", "/static/logo.png", &ae("gzip")).unwrap();
    assert_eq!(
        (header(&r, "Content-Encoding"), header(&r, "Vary")),
        (None, None)
    );
}

#[test]
fn conditional_requests() {
    let s = site("cond");
    let first = get(&s, "GET", "/static/app.css", &[]).unwrap();
    let etag = header(&first, "ETag").unwrap();
    let lm = header(&first, "Last-Modified").unwrap();
    let r = get(
        &s,
        "GET",
        "/static/app.css",
        &[(Header::IfNoneMatch, &etag)],
    )
    .unwrap();
    assert_eq!((r.status, r.body.is_none()), (304, true));
    assert_eq!(header(&r, "ETag").as_deref(), Some(etag.as_str()));
    let r = get(
        &s,
        "GET",
        "/static/app.css",
        &[(Header::IfModifiedSince, &lm)],
    )
    .unwrap();
    assert_eq!(r.status, 304);
    // If-None-Match wins over If-Modified-Since.
    let both = [
        (Header::IfNoneMatch, "\"other\""),
        (Header::IfModifiedSince, &lm),
    ];
    assert_eq!(
        get(&s, "GET", "/static/app.css", &both).unwrap().status,
        200
    );
    let old = [(Header::IfModifiedSince, "Thu, 01 Jan 1970 00:00:01 GMT")];
    assert_eq!(get(&s, "GET", "/static/app.css", &old).unwrap().status, 200);
}

#[test]
fn ranges_and_if_range() {
    let s = site("range");
    let range = |v: &'static str| (Header::Range, v);
    let r = get(&s, "GET", "/static/app.css", &[range("bytes=0-3")]).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(header(&r, "Content-Range").as_deref(), Some("bytes 0-3/16"));
    assert_eq!(body(&r), b"body");
    let r = get(&s, "GET", "/static/app.css", &[range("bytes=-2")]).unwrap();
    assert_eq!(body(&r), b"}\n");
    let r = get(&s, "GET", "/static/app.css", &[range("bytes=16-")]).unwrap();
    assert_eq!((r.status, r.body.is_none()), (416, true));
    assert_eq!(header(&r, "Content-Range").as_deref(), Some("bytes */16"));
    let r = get(&s, "GET", "/static/app.css", &[range("bytes=0-1,4-5")]).unwrap();
    assert_eq!(r.status, 200);
    let etag = header(&r, "ETag").unwrap();
    let fresh = [range("bytes=0-0"), (Header::IfRange, &etag)];
    assert_eq!(
        get(&s, "GET", "/static/app.css", &fresh).unwrap().status,
        206
    );
    let stale = [range("bytes=0-0"), (Header::IfRange, "\"stale\"")];
    assert_eq!(
        get(&s, "GET", "/static/app.css", &stale).unwrap().status,
        200
    );
}

#[test]
fn the_walk_serves_the_same() {
    let mut s = site("walk");
    s.files.walk_only = true;
    assert_eq!(get(&s, "GET", "/static/app.css", &[]).unwrap().status, 200);
    assert_eq!(get(&s, "GET", "/static/docs/", &[]).unwrap().status, 200);
    assert!(get(&s, "GET", "/static/nope", &[]).is_none());
}
