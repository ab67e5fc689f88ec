use super::*;

const LIMITS: Limits = Limits {
    max_head: 8192,
    max_headers: 100,
};

fn parse(buf: &[u8]) -> (Parsed, RequestHead) {
    let mut head = RequestHead::default();
    let r = parse_head(buf, &LIMITS, &mut head);
    (r, head)
}

fn text<'a>(buf: &'a [u8], r: &Range<usize>) -> &'a str {
    std::str::from_utf8(&buf[r.clone()]).unwrap()
}

#[test]
fn simple_get_is_complete_at_every_split_point_only_at_the_end() {
    let req =
        b"GET /a/b?x=1&y=2#frag HTTP/1.1\r\nHost: example.com\r\nX-Thing:  padded value \t\r\n\r\n";
    for cut in 0..req.len() {
        let (r, _) = parse(&req[..cut]);
        assert_eq!(r, Parsed::Partial, "cut at {cut}");
    }
    let (r, head) = parse(req);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(head.head_len, req.len());
    assert_eq!(text(req, &head.method), "GET");
    assert_eq!(text(req, &head.path), "/a/b");
    assert_eq!(text(req, &head.query), "x=1&y=2");
    assert_eq!(head.version(), Version::Http11);
    assert!(head.keep_alive);
    assert_eq!(head.body_framing(), BodyFraming::None);
    assert_eq!(head.headers.len(), 2);
    assert_eq!(text(req, &head.headers[1].value), "padded value");
    assert_eq!(head.host, Some(0));
}

#[test]
fn body_start_is_after_head_with_pipelined_bytes() {
    let req = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n";
    let (r, head) = parse(req);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(&req[head.head_len..head.head_len + 5], b"hello");
    assert_eq!(head.body_framing(), BodyFraming::Length(5));
}

#[test]
fn keep_alive_rules_per_version() {
    let cases: [(&[u8], bool); 6] = [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n", false),
    ];
    for (req, want) in cases {
        let (r, head) = parse(req);
        assert_eq!(r, Parsed::Complete, "{}", String::from_utf8_lossy(req));
        assert_eq!(head.keep_alive, want, "{}", String::from_utf8_lossy(req));
    }
}

#[test]
fn absolute_form_target_yields_path() {
    let req = b"GET http://example.com:8080/x/y?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let (r, head) = parse(req);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(text(req, &head.path), "/x/y");
    assert_eq!(text(req, &head.query), "q=1");
    let req = b"GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let (_, head) = parse(req);
    assert_eq!(text(req, &head.path), "");
}

#[test]
fn hostile_heads_get_specific_errors() {
    let cases: [(&[u8], u16); 14] = [
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -3\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417),
        (b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    ];
    for (req, status) in cases {
        match parse(req).0 {
            Parsed::Error(e) => assert_eq!(e.status(), status, "{}", String::from_utf8_lossy(req)),
            other => panic!("{:?} for {}", other, String::from_utf8_lossy(req)),
        }
    }
}

/// Transfer-Encoding fields are judged as the one list they combine to.
#[test]
fn transfer_codings_across_fields() {
    let te = |fields: &[&str]| {
        let mut req = String::from("POST / HTTP/1.1\r\nHost: h\r\n");
        for f in fields {
            req.push_str(&format!("Transfer-Encoding: {f}\r\n"));
        }
        req.push_str("\r\n");
        match parse(req.as_bytes()) {
            (Parsed::Complete, head) => Ok(head.body),
            (Parsed::Error(e), _) => Err((e.status(), e.reason())),
            (other, _) => panic!("{other:?} for {fields:?}"),
        }
    };
    assert_eq!(te(&["chunked"]), Ok(Some(BodyFraming::Chunked)));
    assert_eq!(te(&["Chunked "]), Ok(Some(BodyFraming::Chunked)));
    let refused = |fields: &[&str], status: u16, why: &str| {
        let (got, text) = te(fields).expect_err("refused");
        assert_eq!(got, status, "{fields:?}: {text}");
        assert!(text.contains(why), "{fields:?}: {text}");
    };
    let twice = "chunked more than once";
    refused(&["chunked", "chunked"], 400, twice);
    refused(&["chunked, chunked"], 400, twice);
    refused(&["chunked", "gzip, chunked"], 400, twice);
    refused(&["gzip", "chunked"], 501, "");
    refused(&["gzip, chunked"], 501, "");
    refused(&["chunked", "gzip"], 400, "does not end in chunked");
    refused(&["chunked", ""], 400, "empty");
    refused(&["chunked,", "x"], 400, "empty");
}

#[test]
fn malformed_request_lines_are_400_and_other_versions_505() {
    let cases: [(&[u8], u16); 8] = [
        (b"GET / http/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/11\r\nHost: h\r\n\r\n", 400),
        (b"GET / FOO/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ];
    for (req, status) in cases {
        match parse(req).0 {
            Parsed::Error(e) => assert_eq!(e.status(), status, "{}", String::from_utf8_lossy(req)),
            other => panic!("{other:?} for {}", String::from_utf8_lossy(req)),
        }
    }
}

#[test]
fn a_long_request_line_is_414_however_it_arrives() {
    let limits = Limits {
        max_head: 64,
        max_headers: 10,
    };
    let req = [
        b"GET /".as_slice(),
        &[b'a'; 100],
        b" HTTP/1.1\r\nHost: h\r\n\r\n",
    ]
    .concat();
    let mut head = RequestHead::default();
    for cut in [64, 100, req.len()] {
        match parse_head(&req[..cut], &limits, &mut head) {
            Parsed::Error(e) => assert_eq!(e.status(), 414, "cut {cut}"),
            other => panic!("{other:?} at cut {cut}"),
        }
    }
}

#[test]
fn same_content_length_twice_is_fine() {
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
    let (r, head) = parse(req);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(head.body_framing(), BodyFraming::Length(3));
}

#[test]
fn oversized_heads_name_the_limit() {
    let limits = Limits {
        max_head: 64,
        max_headers: 2,
    };
    let mut head = RequestHead::default();
    let long_line = [b"GET /".as_slice(), &[b'a'; 100]].concat();
    match parse_head(&long_line, &limits, &mut head) {
        Parsed::Error(e) => {
            assert_eq!(e.status(), 414);
            assert!(e.reason().contains("--buffer-size"));
        }
        other => panic!("{other:?}"),
    }
    let big_head = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 100]].concat();
    match parse_head(&big_head, &limits, &mut head) {
        Parsed::Error(e) => assert_eq!(e.status(), 431),
        other => panic!("{other:?}"),
    }
    let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    match parse_head(many, &limits, &mut head) {
        Parsed::Error(e) => {
            assert_eq!(e.status(), 431);
            assert!(e.reason().contains("--max-headers"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn chunked_and_expect_are_reported() {
    let req =
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n";
    let (r, head) = parse(req);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(head.body_framing(), BodyFraming::Chunked);
    assert!(head.expect_continue);
}

#[test]
fn percent_decoding() {
    let mut out = Vec::new();
    for (src, want) in [
        (&b"/a%20b"[..], &b"/a b"[..]),
        (b"/%e4%BD%A0", b"/\xe4\xbd\xa0"),
        (b"/bad%zz%", b"/bad%zz%"),
        (b"/end%4", b"/end%4"),
        (b"/x%2Fy", b"/x/y"),
    ] {
        percent_decode(src, &mut out);
        assert_eq!(out, want);
    }
}

#[test]
fn simple_responses_are_well_formed() {
    let mut out = Vec::new();
    write_simple_response(&mut out, 431, b"Thu, 01 Jan 1970 00:00:00 GMT", true);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert!(text.contains("Connection: close\r\n"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), len);
}

#[test]
fn smuggling_vectors_are_refused_with_the_reason() {
    let cases: [(&[u8], &str); 8] = [
        (b"GET / HTTP/1.1\nHost: h\n\n", "bare LF"),
        (b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", "bare LF"),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n z\r\n\r\n",
            "obs-fold",
        ),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", "whitespace between"),
        (b"GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n", "request line"),
        (b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", "request line"),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
            "header value",
        ),
        (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "request line"),
    ];
    for (req, why) in cases {
        match parse(req).0 {
            Parsed::Error(e) => {
                assert_eq!(e.status(), 400);
                assert!(
                    e.reason().contains(why),
                    "{:?}: {}",
                    String::from_utf8_lossy(req),
                    e.reason()
                );
            }
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(req)),
        }
    }
}

#[test]
fn expect_on_http10_is_ignored() {
    let req = b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    let (r, head) = parse(req);
    assert_eq!(r, Parsed::Complete);
    assert!(!head.expect_continue);
}

/// Issue 12's strict rules (RFC 9112 §2.2, §3.2; RFC 9110 §5.3): each row
/// was accepted before, and is now a 400 with its reason.
#[rustfmt::skip]
const STRICT: &[(&str, &[u8], &str)] = &[
    ("two empty lines first", b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "more than one empty line"),
    ("three empty lines first", b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "more than one empty line"),
    ("* for GET", b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", "for OPTIONS only"),
    ("authority-form for GET", b"GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", "for CONNECT only"),
    ("CONNECT to a path", b"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", "authority-form"),
    ("relative target", b"GET foo/bar HTTP/1.1\r\nHost: h\r\n\r\n", "neither /path"),
    ("other scheme", b"GET ftp://example.com/x HTTP/1.1\r\nHost: h\r\n\r\n", "neither /path"),
    ("raw UTF-8 in target", "GET /caf\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes(), "0x80"),
    ("two Content-Types", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\ncontent-type: application/json\r\nContent-Length: 0\r\n\r\n", "Content-Type"),
];

#[test]
fn strict_request_rules_are_400_with_a_reason() {
    for (name, req, reason) in STRICT {
        let (r, _) = parse(req);
        match r {
            Parsed::Error(e) => {
                assert_eq!(e.status(), 400, "{name}");
                assert!(e.reason().contains(reason), "{name}: {}", e.reason());
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // What stays allowed.
    let fine: [&[u8]; 6] = [
        b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"GET HTTP://example.com/x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /caf%C3%A9?q=%FF HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Type: a/b\r\n\r\n",
    ];
    for req in fine {
        assert_eq!(
            parse(req).0,
            Parsed::Complete,
            "{}",
            String::from_utf8_lossy(req)
        );
    }
}
