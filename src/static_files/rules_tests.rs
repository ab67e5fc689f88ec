use super::*;

#[test]
fn etag_changes_with_each_validator() {
    let v = Validators {
        ino: 1,
        size: 2,
        mtime_secs: 3,
        mtime_nsec: 4,
    };
    let e = v.etag();
    assert!(e.starts_with('"') && e.ends_with('"'), "{e}");
    for other in [
        Validators { ino: 9, ..v },
        Validators { size: 9, ..v },
        Validators { mtime_secs: 9, ..v },
        Validators { mtime_nsec: 9, ..v },
    ] {
        assert_ne!(other.etag(), e);
    }
}

#[test]
fn if_none_match_compares_weakly() {
    let e = "\"a-1-2\"";
    assert!(none_match(b"\"a-1-2\"", e));
    assert!(none_match(b"W/\"a-1-2\"", e));
    assert!(none_match(b"\"x\", \"a-1-2\"", e));
    assert!(none_match(b" * ", e));
    assert!(!none_match(b"\"a-1-3\"", e));
    assert!(!none_match(b"a-1-2", e));
}

#[test]
fn if_range_needs_a_strong_match() {
    let (e, lm) = ("\"a\"", &b"Sun, 06 Nov 1994 08:49:37 GMT"[..]);
    assert!(if_range_holds(b"\"a\"", e, lm));
    assert!(!if_range_holds(b"W/\"a\"", e, lm));
    assert!(!if_range_holds(b"\"b\"", e, lm));
    assert!(if_range_holds(lm, e, lm));
    assert!(!if_range_holds(b"Mon, 07 Nov 1994 08:49:37 GMT", e, lm));
}

#[test]
fn ranges() {
    use RangeAsk::*;
    let cases: [(&[u8], u64, RangeAsk); 19] = [
        (b"bytes=0-0", 10, Part { first: 0, last: 0 }),
        (b"bytes=0-99", 10, Part { first: 0, last: 9 }),
        (b"bytes=5-", 10, Part { first: 5, last: 9 }),
        (b"bytes=-3", 10, Part { first: 7, last: 9 }),
        (b"bytes=-30", 10, Part { first: 0, last: 9 }),
        (b"BYTES = 2-3", 10, Whole),
        (b"Bytes=2-3", 10, Part { first: 2, last: 3 }),
        (b"bytes=10-", 10, Unsatisfiable),
        (b"bytes=10-20", 10, Unsatisfiable),
        (b"bytes=-0", 10, Unsatisfiable),
        (b"bytes=0-", 0, Unsatisfiable),
        (b"bytes=3-2", 10, Whole),
        (b"bytes=0-1,3-4", 10, Whole),
        (b"items=0-1", 10, Whole),
        (b"bytes=a-b", 10, Whole),
        (b"bytes=99999999999999999999-", 10, Unsatisfiable),
        (
            b"bytes=0-99999999999999999999999",
            10,
            Part { first: 0, last: 9 },
        ),
        (
            b"bytes=-99999999999999999999999",
            10,
            Part { first: 0, last: 9 },
        ),
        (b"bytes=-", 10, Whole),
    ];
    for (h, size, want) in cases {
        assert_eq!(parse_range(h, size), want, "{}", String::from_utf8_lossy(h));
    }
}

#[test]
fn encoding_choice_honours_q_values() {
    use Encoding::*;
    let both = [Brotli, Gzip];
    /// (Accept-Encoding, variants on disk, the choice)
    type Case<'a> = (Option<&'a [u8]>, &'a [Encoding], Option<Encoding>);
    let cases: [Case<'_>; 11] = [
        (None, &both, None),
        (Some(b"gzip, deflate, br"), &both, Some(Brotli)),
        (Some(b"gzip"), &both, Some(Gzip)),
        (Some(b"br;q=0.5, gzip;q=0.8"), &both, Some(Gzip)),
        (Some(b"br;q=0, gzip;q=0"), &both, None),
        (Some(b"*"), &both, Some(Brotli)),
        (Some(b"*;q=0.1, br;q=0"), &both, Some(Gzip)),
        (Some(b"identity"), &both, None),
        (Some(b"x-gzip"), &[Gzip], Some(Gzip)),
        (Some(b"br"), &[Gzip], None),
        (Some(b"BR ; Q=1.0"), &both, Some(Brotli)),
    ];
    for (h, avail, want) in cases {
        assert_eq!(choose_encoding(h, avail), want, "{h:?}");
    }
}

#[test]
fn q_values_parse_strictly() {
    assert_eq!(parse_q(b"1"), Some(1000));
    assert_eq!(parse_q(b"0.5"), Some(500));
    assert_eq!(parse_q(b"0.125"), Some(125));
    assert_eq!(parse_q(b"1.000"), Some(1000));
    for bad in [&b"1.5"[..], b"2", b"0.1234", b"", b"-1", b"0.x"] {
        assert_eq!(parse_q(bad), None, "{bad:?}");
    }
}

#[test]
fn content_types() {
    assert_eq!(content_type("a/app.css"), "text/css; charset=utf-8");
    assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
    assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
    assert_eq!(content_type("data.json"), "application/json; charset=utf-8");
    assert_eq!(content_type("logo.png"), "image/png");
    assert_eq!(content_type("icon.svg"), "image/svg+xml; charset=utf-8");
    assert_eq!(content_type("noext"), "application/octet-stream");
    assert!(compressible("text/css; charset=utf-8"));
    assert!(!compressible("image/png"));
}

#[test]
fn hashed_names_are_immutable() {
    for name in ["app.0123456789ab.css", "admin/js/x.y.abcdef012345.js"] {
        assert!(is_hashed_name(name), "{name}");
        assert_eq!(
            cache_control(name, Some(60)).as_deref(),
            Some("public, max-age=31536000, immutable")
        );
    }
    for name in [
        "app.css",
        "app.0123456789AB.css",
        "app.0123456789a.css",
        ".0123456789ab.css",
        "app.0123456789ab.",
    ] {
        assert!(!is_hashed_name(name), "{name}");
    }
    assert_eq!(
        cache_control("app.css", Some(60)).as_deref(),
        Some("max-age=60")
    );
    assert_eq!(cache_control("app.css", None), None);
}
