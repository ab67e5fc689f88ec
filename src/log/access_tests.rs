use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn record<'a>() -> Record<'a> {
    Record {
        addr: "10.1.2.3",
        method: b"GET",
        uri: b"/a?b=\"c\"",
        proto: "HTTP/1.1",
        status: 200,
        size: 13,
        micros: 1234,
        wid: 2,
        core: None,
        host: Some(b"example.com"),
        uagent: Some(b"curl/8 \"quoted\"\x01"),
        referer: None,
    }
}

fn now() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

#[test]
fn presets_render() {
    let mut out = String::new();
    Format::parse("combined")
        .unwrap()
        .render(&record(), now(), &mut out);
    assert_eq!(
        out,
        "10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET /a?b=\"c\" HTTP/1.1\" 200 13 \"-\" \"curl/8 \"quoted\"\u{1}\"\n"
    );
    Format::parse("default")
        .unwrap()
        .render(&record(), now(), &mut out);
    assert!(out.starts_with("2023-11-14T22:13:20.123Z [pid "), "{out}");
    assert!(
        out.ends_with(" 10.1.2.3 \"GET /a?b=\"c\" HTTP/1.1\" 200 13 1.234ms w2\n"),
        "{out}"
    );
}

#[test]
fn json_is_one_valid_object_with_escaped_values() {
    let mut out = String::new();
    Format::parse("json")
        .unwrap()
        .render(&record(), now(), &mut out);
    assert!(out.ends_with("}\n") && !out[..out.len() - 1].contains('\n'));
    assert!(out.contains("\"uri\":\"/a?b=\\\"c\\\"\""), "{out}");
    assert!(
        out.contains("\"uagent\":\"curl/8 \\\"quoted\\\"\\u0001\""),
        "{out}"
    );
    assert!(out.contains("\"status\":200,"), "{out}");
    assert!(out.contains("\"referer\":\"-\""), "{out}");
}

#[test]
fn templates_and_their_errors() {
    let mut out = String::new();
    Format::parse("%(method) %(status) %(micros)us %(host)")
        .unwrap()
        .render(&record(), now(), &mut out);
    assert_eq!(out, "GET 200 1234us example.com\n");
    let e = Format::parse("%(nope)").unwrap_err();
    assert!(e.contains("%(nope)") && e.contains("addr"), "{e}");
    assert!(Format::parse("%(addr").is_err());
    assert!(!Format::parse("%(addr)").unwrap().uses_headers());
    assert!(Format::parse("%(uagent)").unwrap().uses_headers());
}

#[test]
fn forwarded_for_only_from_trusted_proxies() {
    let t = Trusted::parse("127.0.0.1, 10.0.0.0/8, ::1").unwrap();
    assert!(t.contains("10.200.3.4") && t.contains("::1") && !t.contains("11.0.0.1"));
    let xff: &[u8] = b" 203.0.113.9 , 10.0.0.2";
    assert_eq!(client_addr("10.0.0.2", Some(xff), &t), "203.0.113.9");
    assert_eq!(client_addr("192.0.2.1", Some(xff), &t), "192.0.2.1");
    assert_eq!(client_addr("10.0.0.2", None, &t), "10.0.0.2");
    assert!(Trusted::parse("10.0.0.0/33").is_err());
    assert!(Trusted::parse("example.com").is_err());
    let net = Trusted::parse("192.168.1.0/23").unwrap();
    assert!(net.contains("192.168.0.7") && !net.contains("192.168.2.1"));
}
