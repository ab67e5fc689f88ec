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
        "10.1.2.3 - - [14/Nov/2023:22:13:20 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 13 \"-\" \"curl/8 \\x22quoted\\x22\\x01\"\n"
    );
    Format::parse("default")
        .unwrap()
        .render(&record(), now(), &mut out);
    assert!(out.starts_with("2023-11-14T22:13:20.123Z [pid "), "{out}");
    assert!(
        out.ends_with(" 10.1.2.3 \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 13 1.234ms w2\n"),
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

/// A hostile client's fields: CR/LF (forged lines), ESC (terminal codes),
/// NUL, DEL, quotes, backslashes and non-UTF-8 bytes.
fn hostile<'a>() -> Record<'a> {
    Record {
        addr: "1.2.3.4\r\n5.6.7.8",
        method: b"GET\x1b[2J",
        uri: b"/x\r\n2026-01-01T00:00:00.000Z [pid 1] forged \"GET / HTTP/1.1\" 200",
        proto: "HTTP/1.1",
        status: 200,
        size: 1,
        micros: 1,
        wid: 1,
        core: Some(3),
        host: Some(b"h\0\x7f\\"),
        uagent: Some(b"ua\"\nx\xff"),
        referer: Some(b"r\x1b]0;title\x07"),
    }
}

#[test]
fn no_format_lets_a_client_forge_or_break_a_line() {
    let every_var: String = VARS.iter().map(|(n, _)| format!("%({n}) ")).collect();
    for spec in ["default", "combined", every_var.as_str()] {
        let mut out = String::new();
        Format::parse(spec)
            .unwrap()
            .render(&hostile(), now(), &mut out);
        let line = out.strip_suffix('\n').unwrap();
        assert!(
            line.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{spec}: a control or non-ASCII byte got through: {line:?}"
        );
        assert!(line.contains("/x\\x0D\\x0A2026"), "{spec}: {line}");
        // The only quotes left are the format's own.
        let template = match spec {
            "default" => DEFAULT,
            "combined" => COMBINED,
            other => other,
        };
        assert_eq!(
            line.matches('"').count(),
            template.matches('"').count(),
            "{spec}: {line}"
        );
    }
    let mut out = String::new();
    Format::parse("combined")
        .unwrap()
        .render(&hostile(), now(), &mut out);
    assert!(
        out.ends_with("\"r\\x1B]0;title\\x07\" \"ua\\x22\\x0Ax\\xFF\"\n"),
        "{out}"
    );
    assert!(out.starts_with("1.2.3.4\\x0D\\x0A5.6.7.8 - - "), "{out}");
}

#[test]
fn json_escapes_every_control_byte_and_stays_valid() {
    let mut out = String::new();
    Format::parse("json")
        .unwrap()
        .render(&hostile(), now(), &mut out);
    let line = out.strip_suffix('\n').unwrap();
    assert!(
        !line.contains(['\n', '\r', '\u{1b}', '\0', '\u{7f}', '\u{7}']),
        "{line:?}"
    );
    assert!(line.contains("\"method\":\"GET\\u001b[2J\""), "{line}");
    assert!(line.contains("\"host\":\"h\\u0000\\u007f\\\\\""), "{line}");
    assert!(line.contains("\"uagent\":\"ua\\\"\\nx\u{fffd}\""), "{line}");
}
