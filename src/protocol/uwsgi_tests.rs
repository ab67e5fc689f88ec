use super::*;

/// The default `--buffer-size`.
const LIMIT: usize = 65536;

fn parse(buf: &[u8]) -> (Parsed, Packet) {
    let mut packet = Packet::default();
    let r = parse_packet(buf, LIMIT, &mut packet);
    (r, packet)
}

fn encode(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_packet(modifier1, modifier2, vars, &mut out).unwrap();
    out
}

fn error(buf: &[u8]) -> UwsgiError {
    match parse(buf).0 {
        Parsed::Error(e) => e,
        other => panic!("{other:?} for {buf:?}"),
    }
}

/// What nginx's stock `uwsgi_params` sends for a small POST.
const NGINX_VARS: [(&[u8], &[u8]); 10] = [
    (b"QUERY_STRING", b"x=1&y=2"),
    (b"REQUEST_METHOD", b"POST"),
    (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
    (b"CONTENT_LENGTH", b"5"),
    (b"REQUEST_URI", b"/a/b?x=1&y=2"),
    (b"PATH_INFO", b"/a/b"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"HTTP_HOST", b"example.com"),
    (b"HTTP_X_EMPTY", b""),
    (b"SERVER_PORT", b"80"),
];

#[test]
fn nginx_request_is_complete_at_every_split_point_only_at_the_end() {
    let pkt = encode(MODIFIER_WSGI, 0, &NGINX_VARS);
    for cut in 0..pkt.len() {
        let (r, _) = parse(&pkt[..cut]);
        assert_eq!(r, Parsed::Partial, "cut at {cut}");
    }
    let (r, packet) = parse(&pkt);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(packet.modifier1, MODIFIER_WSGI);
    assert_eq!(packet.modifier2, 0);
    assert_eq!(packet.head_len, pkt.len());
    assert_eq!(packet.vars_range(), HEADER_LEN..pkt.len());
    assert_eq!(packet.content_length, 5);
    assert_eq!(packet.vars.len(), NGINX_VARS.len());
    for (span, (key, value)) in packet.vars.iter().zip(NGINX_VARS) {
        assert_eq!(&pkt[span.key.clone()], key);
        assert_eq!(&pkt[span.value.clone()], value);
    }
    assert_eq!(var(&pkt, &packet, b"PATH_INFO"), Some(&b"/a/b"[..]));
    assert_eq!(var(&pkt, &packet, b"HTTP_X_EMPTY"), Some(&b""[..]));
    assert_eq!(var(&pkt, &packet, b"path_info"), None);
    assert_eq!(var(&pkt, &packet, b"MISSING"), None);
}

#[test]
fn a_repeated_var_reads_as_its_last_value() {
    let pkt = encode(
        MODIFIER_WSGI,
        0,
        &[
            (b"REQUEST_URI", b"/first"),
            (b"X", b"x"),
            (b"REQUEST_URI", b"/last"),
        ],
    );
    let (r, packet) = parse(&pkt);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(var(&pkt, &packet, b"REQUEST_URI"), Some(&b"/last"[..]));
}

#[test]
fn vars_are_spans_at_known_offsets() {
    // 4-byte header, then "\x01\x00A\x02\x00bc" and "\x02\x00DE\x00\x00".
    let pkt = b"\x00\x0d\x00\x07\x01\x00A\x02\x00bc\x02\x00DE\x00\x00";
    let (r, packet) = parse(pkt);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(packet.modifier2, 7);
    assert_eq!(packet.head_len, 17);
    assert_eq!(
        packet.vars,
        [
            VarSpan {
                key: 6..7,
                value: 9..11,
            },
            VarSpan {
                key: 13..15,
                value: 17..17,
            },
        ]
    );
    assert_eq!(packet.content_length, 0);
}

#[test]
fn encoding_round_trips() {
    let cases: [&[(&[u8], &[u8])]; 4] = [
        &[],
        &[(b"K", b"")],
        &NGINX_VARS,
        &[
            (b"\x00\xff binary", b"\r\n\x00"),
            (b"K", b"v"),
            (b"K", b"w"),
        ],
    ];
    for vars in cases {
        for (m1, m2) in [(MODIFIER_WSGI, 0), (MODIFIER_WSGI, 255)] {
            let pkt = encode(m1, m2, vars);
            let (r, packet) = parse(&pkt);
            assert_eq!(r, Parsed::Complete, "{vars:?}");
            assert_eq!((packet.modifier1, packet.modifier2), (m1, m2));
            assert_eq!(packet.head_len, pkt.len());
            let decoded: Vec<(&[u8], &[u8])> = packet
                .vars
                .iter()
                .map(|s| (&pkt[s.key.clone()], &pkt[s.value.clone()]))
                .collect();
            assert_eq!(decoded, vars);
        }
    }
}

#[test]
fn encode_appends_and_refuses_what_the_format_cannot_express() {
    let mut out = b"prefix".to_vec();
    encode_packet(1, 2, &[(b"A", b"b")], &mut out).unwrap();
    assert_eq!(out, b"prefix\x01\x06\x00\x02\x01\x00A\x01\x00b");

    let big = vec![b'x'; 65536];
    let mut out = b"keep".to_vec();
    let e = encode_packet(0, 0, &[(&big, b"")], &mut out).unwrap_err();
    assert!(e.contains("key of 65536 bytes"), "{e}");
    let e = encode_packet(0, 0, &[(b"K", &big)], &mut out).unwrap_err();
    assert!(e.contains("value of 65536 bytes"), "{e}");
    // Each var fits on its own, together they do not: 2 * (4 + 1 + 32767).
    let half = vec![b'x'; 32767];
    let e = encode_packet(0, 0, &[(b"K", &half), (b"L", &half)], &mut out).unwrap_err();
    assert!(e.contains("65544 bytes"), "{e}");
    assert_eq!(out, b"keep");
}

#[test]
fn body_and_a_pipelined_packet_follow_the_head() {
    let first = encode(MODIFIER_WSGI, 0, &NGINX_VARS);
    let second = encode(
        MODIFIER_WSGI,
        0,
        &[(b"REQUEST_METHOD", b"GET"), (b"CONTENT_LENGTH", b"")],
    );
    let mut buf = first.clone();
    buf.extend_from_slice(b"hello");
    buf.extend_from_slice(&second);

    let mut packet = Packet::default();
    assert_eq!(parse_packet(&buf, LIMIT, &mut packet), Parsed::Complete);
    assert_eq!(packet.head_len, first.len());
    assert_eq!(&buf[packet.body_range()], b"hello");

    let rest = &buf[packet.body_range().end..];
    assert_eq!(parse_packet(rest, LIMIT, &mut packet), Parsed::Complete);
    assert_eq!(packet.head_len, second.len());
    assert_eq!(packet.content_length, 0);
    assert_eq!(var(rest, &packet, b"REQUEST_METHOD"), Some(&b"GET"[..]));
    assert_eq!(var(rest, &packet, b"PATH_INFO"), None);
}

#[test]
fn reused_packet_does_not_keep_old_vars() {
    let mut packet = Packet::default();
    let a = encode(MODIFIER_WSGI, 0, &NGINX_VARS);
    assert_eq!(parse_packet(&a, LIMIT, &mut packet), Parsed::Complete);
    let capacity = packet.vars.capacity();
    let b = encode(MODIFIER_WSGI, 0, &[(b"A", b"1")]);
    assert_eq!(parse_packet(&b, LIMIT, &mut packet), Parsed::Complete);
    assert_eq!(packet.vars.len(), 1);
    assert_eq!(packet.content_length, 0);
    assert_eq!(packet.vars.capacity(), capacity);
}

#[test]
fn largest_vars_block_fits_the_default_limit_and_names_a_smaller_one() {
    // One var of 4 + 1 + 65530 = 65535 bytes, the most datasize can say.
    let value = vec![b'v'; 65530];
    let pkt = encode(MODIFIER_WSGI, 0, &[(b"K", &value)]);
    assert_eq!(pkt.len(), HEADER_LEN + 65535);
    let (r, packet) = parse(&pkt);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(packet.head_len, pkt.len());
    assert_eq!(var(&pkt, &packet, b"K"), Some(&value[..]));

    let mut packet = Packet::default();
    assert_eq!(parse_packet(&pkt, 65535, &mut packet), Parsed::Complete);
    // Refused from the header alone, before the vars arrive.
    for buffered in [HEADER_LEN, pkt.len()] {
        match parse_packet(&pkt[..buffered], 4096, &mut packet) {
            Parsed::Error(e) => {
                assert_eq!(
                    e,
                    UwsgiError::VarsTooLarge {
                        size: 65535,
                        limit: 4096
                    }
                );
                let reason = e.reason();
                assert!(reason.contains("65535"), "{reason}");
                assert!(reason.contains("4096"), "{reason}");
                assert!(reason.contains("--buffer-size"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn http_is_recognised_from_four_bytes() {
    for req in [
        &b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"POST /form HTTP/1.1\r\n",
        b"HEAD / HTTP/1.0\r\n",
        b"PUT /x HTTP/1.1\r\n",
        b"DELETE /x HTTP/1.1\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
        b"PATCH /x HTTP/1.1\r\n",
        b"CONNECT h:443 HTTP/1.1\r\n",
        b"TRACE / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        for cut in 0..HEADER_LEN {
            assert_eq!(parse(&req[..cut]).0, Parsed::Partial);
        }
        for cut in HEADER_LEN..=req.len() {
            let e = error(&req[..cut]);
            assert_eq!(e, UwsgiError::LooksLikeHttp);
            assert!(e.reason().contains("--http"));
        }
    }
    // Not methods: lower case, or no space after a short method.
    for not_http in [&b"get / HTTP/1.1"[..], b"GETX"] {
        assert!(!matches!(
            parse(not_http).0,
            Parsed::Error(UwsgiError::LooksLikeHttp)
        ));
    }
}

#[test]
fn malformed_vars_get_specific_errors() {
    let cases: [(&[u8], UwsgiError); 7] = [
        // Empty key.
        (
            b"\x00\x05\x00\x00\x00\x00\x01\x00v",
            UwsgiError::ZeroLengthKey { at: 4 },
        ),
        // Second var's key is empty.
        (
            b"\x00\x08\x00\x00\x01\x00k\x01\x00v\x00\x00",
            UwsgiError::ZeroLengthKey { at: 10 },
        ),
        // A single stray byte where a key length should be.
        (b"\x00\x01\x00\x00\x01", UwsgiError::TruncatedVar { at: 4 }),
        // Key length runs past datasize.
        (
            b"\x00\x04\x00\x00\x05\x00ab",
            UwsgiError::TruncatedVar { at: 4 },
        ),
        // Value length field missing.
        (
            b"\x00\x03\x00\x00\x01\x00k",
            UwsgiError::TruncatedVar { at: 4 },
        ),
        // Value length field cut in half.
        (
            b"\x00\x04\x00\x00\x01\x00k\x01",
            UwsgiError::TruncatedVar { at: 4 },
        ),
        // Value runs past datasize, even though the buffer has more bytes
        // (they are the body, not the value).
        (
            b"\x00\x06\x00\x00\x01\x00k\x09\x00vBODYBODY",
            UwsgiError::TruncatedVar { at: 4 },
        ),
    ];
    for (pkt, want) in cases {
        let e = error(pkt);
        assert_eq!(e, want, "{pkt:?}");
        assert!(e.reason().starts_with("malformed uwsgi packet"));
    }
}

#[test]
fn content_length_is_strict() {
    for (value, want) in [
        (&b""[..], Some(0)),
        (b"0", Some(0)),
        (b"007", Some(7)),
        (b"18446744073709551615", Some(u64::MAX)),
        (b"18446744073709551616", None),
        (b"99999999999999999999999", None),
        (b"-1", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1,1", None),
        (b"0x10", None),
        (b"\xd9\xa1", None),
    ] {
        let pkt = encode(MODIFIER_WSGI, 0, &[(b"CONTENT_LENGTH", value)]);
        match (parse(&pkt), want) {
            ((Parsed::Complete, packet), Some(n)) => assert_eq!(packet.content_length, n),
            ((Parsed::Error(UwsgiError::BadContentLength(shown)), _), None) => {
                assert_eq!(shown, value.escape_ascii().to_string());
                assert!(UwsgiError::BadContentLength(shown)
                    .reason()
                    .contains("CONTENT_LENGTH"));
            }
            (got, _) => panic!("{got:?} for {value:?}"),
        }
    }
    // Only the exact key counts.
    let pkt = encode(MODIFIER_WSGI, 0, &[(b"HTTP_CONTENT_LENGTH", b"x")]);
    assert_eq!(parse(&pkt).1.content_length, 0);
    // A hostile value is shortened and escaped in the log.
    let long = [b"1\n".as_slice(), &[b'x'; 100]].concat();
    let pkt = encode(MODIFIER_WSGI, 0, &[(b"CONTENT_LENGTH", &long)]);
    let reason = error(&pkt).reason();
    assert!(!reason.contains('\n') && reason.contains("1\\nxx") && reason.contains("..."));
    assert!(reason.len() < 120, "{reason}");
}

#[test]
fn repeated_content_length_must_agree() {
    let same = encode(
        MODIFIER_WSGI,
        0,
        &[(b"CONTENT_LENGTH", b"3"), (b"CONTENT_LENGTH", b"03")],
    );
    let (r, packet) = parse(&same);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(packet.content_length, 3);
    for (a, b, first, second) in [
        (&b"3"[..], &b"4"[..], 3, 4),
        (b"", b"4", 0, 4),
        (b"4", b"", 4, 0),
    ] {
        let pkt = encode(
            MODIFIER_WSGI,
            0,
            &[(b"CONTENT_LENGTH", a), (b"CONTENT_LENGTH", b)],
        );
        let e = error(&pkt);
        assert_eq!(e, UwsgiError::ConflictingContentLength { first, second });
        assert!(e.reason().contains(&format!("{first} and {second}")));
    }
}

#[test]
fn other_modifiers_parse_with_an_opaque_payload() {
    // A PING as `uwsgi --ping` sends it.
    let (r, packet) = parse(&[MODIFIER_PING, 0, 0, 0]);
    assert_eq!(r, Parsed::Complete);
    assert_eq!(packet.modifier1, MODIFIER_PING);
    assert_eq!(packet.head_len, HEADER_LEN);
    assert!(packet.vars.is_empty());

    // A payload that is not vars does not make a parse error: the caller
    // refuses the modifier by number. It still waits for the whole payload.
    let pkt = b"\x05\x03\x00\x09\xff\xff\xff";
    for cut in 0..pkt.len() {
        assert_eq!(parse(&pkt[..cut]).0, Parsed::Partial, "cut at {cut}");
    }
    let (r, packet) = parse(pkt);
    assert_eq!(r, Parsed::Complete);
    assert_eq!((packet.modifier1, packet.modifier2), (5, 9));
    assert_eq!(packet.head_len, pkt.len());
    assert!(packet.vars.is_empty());
    assert_eq!(packet.content_length, 0);
    // The size limit applies to every modifier.
    let mut packet = Packet::default();
    assert_eq!(
        parse_packet(pkt, 2, &mut packet),
        Parsed::Error(UwsgiError::VarsTooLarge { size: 3, limit: 2 })
    );
}

#[test]
fn ping_response_matches_uwsgi() {
    let r = ping_response();
    assert_eq!(r, [100, 0, 0, 1]);
    // It is itself a well-formed packet with an empty payload.
    let (parsed, packet) = parse(&r);
    assert_eq!(parsed, Parsed::Complete);
    assert_eq!(packet.modifier1, MODIFIER_PING);
    assert_eq!(packet.head_len, HEADER_LEN);
}

#[test]
fn every_reason_is_a_sentence() {
    for e in [
        UwsgiError::LooksLikeHttp,
        UwsgiError::VarsTooLarge { size: 2, limit: 1 },
        UwsgiError::ZeroLengthKey { at: 4 },
        UwsgiError::TruncatedVar { at: 4 },
        UwsgiError::BadContentLength("x".into()),
        UwsgiError::ConflictingContentLength {
            first: 1,
            second: 2,
        },
    ] {
        let r = e.reason();
        assert!(
            r.len() > 20 && !r.ends_with('.') && !r.contains('\n'),
            "{r}"
        );
    }
}

/// The raw target vars nginx forwards (as the client sent them) never hold
/// control bytes: nginx refuses those request lines. PATH_INFO is decoded
/// (`%0A` becomes a real LF) and is left alone; so are raw 8-bit bytes,
/// which nginx accepts and forwards.
#[test]
fn control_bytes_in_raw_target_vars_are_refused() {
    for (key, value) in [
        (&b"REQUEST_URI"[..], &b"/a\r\nb"[..]),
        (b"REQUEST_URI", b"/a\x1bb"),
        (b"REQUEST_URI", b"/a\0"),
        (b"QUERY_STRING", b"a=\x7f"),
    ] {
        let pkt = encode(MODIFIER_WSGI, 0, &[(key, value)]);
        let e = error(&pkt);
        assert!(
            e.reason().contains(std::str::from_utf8(key).unwrap()),
            "{e:?}"
        );
    }
    let nginx_sends: [(&[u8], &[u8]); 3] = [
        (b"REQUEST_URI", "/caf\u{e9}?q=\u{e9}".as_bytes()),
        (b"PATH_INFO", b"/a\nb"),
        (b"HTTP_X_A", b"tab\tin value"),
    ];
    let pkt = encode(MODIFIER_WSGI, 0, &nginx_sends);
    assert_eq!(parse(&pkt).0, Parsed::Complete);
}
