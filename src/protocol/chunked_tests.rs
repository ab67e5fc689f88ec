use super::*;

/// Decodes `input` fed in the pieces given by `cuts`; returns the body and
/// the bytes consumed, or the error.
fn feed(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize), &'static str> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.to_vec();
    bounds.push(input.len());
    for end in bounds {
        match d.decode(&input[start..end], &mut out) {
            Decoded::Done { consumed } => return Ok((out, start + consumed)),
            Decoded::NeedMore => start = end,
            Decoded::Error(e) => return Err(e),
        }
    }
    Err("incomplete")
}

const VALID: [(&[u8], &[u8]); 7] = [
    (b"0\r\n\r\n", b""),
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    (
        b"5;name=value;other\r\nhello\r\n0;x=\"q\"\r\n\r\n",
        b"hello",
    ),
    (b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", b"abc"),
    (b"00003\r\nabc\r\n0\r\n\r\n", b"abc"),
];

#[test]
fn valid_bodies_decode_at_every_split_point() {
    for (input, want) in VALID {
        for cut in 0..=input.len() {
            let (body, consumed) = feed(input, &[cut]).unwrap_or_else(|e| {
                panic!("{e} for {:?} cut {cut}", String::from_utf8_lossy(input))
            });
            assert_eq!(body, want, "cut {cut}");
            assert_eq!(consumed, input.len(), "cut {cut}");
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..input.len()).collect();
        assert_eq!(feed(input, &cuts).unwrap().0, want);
    }
}

#[test]
fn stops_at_the_end_of_the_body() {
    let input = b"2\r\nok\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    for cut in 0..=input.len() {
        let (body, consumed) = feed(input, &[cut]).unwrap();
        assert_eq!(body, b"ok");
        assert_eq!(&input[consumed..], b"GET / HTTP/1.1\r\n", "cut {cut}");
    }
}

#[test]
fn malformed_codings_are_errors_at_every_split_point() {
    let bad: [&[u8]; 14] = [
        b"\r\n",                             // no size
        b"-5\r\nhello\r\n0\r\n\r\n",         // signed
        b"+5\r\nhello\r\n0\r\n\r\n",         // signed
        b"0x5\r\nhello\r\n0\r\n\r\n",        // prefix
        b"5\nhello\r\n0\r\n\r\n",            // bare LF after size
        b"5\r\nhelloX\r\n0\r\n\r\n",         // data longer than size
        b"5\r\nhello\n0\r\n\r\n",            // bare LF after data
        b"5\r\nhello\r\n0\r\n\n",            // bare LF at end
        b"5\r\nhello\r\n0\r\nX: 1\n\r\n",    // bare LF in trailer
        b"5\r\nhello\r\n0\r\n X: 1\r\n\r\n", // obs-fold in trailer
        b"1ffffffffffffffff\r\n",            // overflow
        b"5;\x01\r\nhello\r\n0\r\n\r\n",     // control char in extension
        b"5 5\r\nhello\r\n0\r\n\r\n",        // space inside the size... then junk
        b"g\r\n",                            // not hex
    ];
    for input in bad {
        for cut in 0..=input.len() {
            let r = feed(input, &[cut]);
            assert!(
                matches!(r, Err(e) if e != "incomplete"),
                "{:?} cut {cut}: {r:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn oversized_lines_are_refused_without_unbounded_work() {
    let mut ext = b"5;".to_vec();
    ext.extend(std::iter::repeat_n(b'a', 10_000));
    assert_eq!(feed(&ext, &[]), Err("chunk size line too long"));
    let mut trailers = b"0\r\n".to_vec();
    for _ in 0..2000 {
        trailers.extend_from_slice(b"X-Long-Trailer: 1234567890\r\n");
    }
    assert_eq!(feed(&trailers, &[]), Err("trailer section too long"));
}

/// RFC 9110 §6.5.1: a trailer may not carry framing, routing,
/// authentication or content-format fields; each is refused, in any case,
/// at every split point. Other fields (and such names inside a value, or as
/// a prefix of a longer name) are fine.
#[test]
fn forbidden_trailer_fields_are_errors_at_every_split_point() {
    let forbidden = [
        "Content-Length: 5",
        "transfer-encoding: chunked",
        "HOST: evil.example",
        "Authorization: Basic eA==",
        "Content-Type: text/html",
        "TE: trailers",
        "Trailer: X",
        "Cookie: a=b",
        "If-Unmodified-Since: x",
    ];
    for field in forbidden {
        let input = format!("5\r\nhello\r\n0\r\nX-Ok: 1\r\n{field}\r\n\r\n");
        let input = input.as_bytes();
        for cut in 0..=input.len() {
            let r = feed(input, &[cut]);
            assert!(
                matches!(r, Err(e) if e.contains("not allowed in trailers")),
                "{field} cut {cut}: {r:?}"
            );
        }
    }
    let malformed: [(&[u8], &str); 3] = [
        (
            b"0\r\nContent-Length : 5\r\n\r\n",
            "whitespace in a trailer field name",
        ),
        (b"0\r\nNoColon\r\n\r\n", "trailer line without a colon"),
        (
            b"0\r\nX\x01Y: 1\r\n\r\n",
            "control character in trailer section",
        ),
    ];
    for (input, want) in malformed {
        for cut in 0..=input.len() {
            assert_eq!(feed(input, &[cut]), Err(want), "{input:?} cut {cut}");
        }
    }
    let fine: [&[u8]; 3] = [
        b"0\r\nX-Host: a\r\n\r\n",
        b"0\r\nX-A: Content-Length: 5\r\n\r\n",
        b"0\r\nContent-Length-Not: 1\r\nA-Very-Long-Trailer-Field-Name: 1\r\n\r\n",
    ];
    for input in fine {
        for cut in 0..=input.len() {
            assert!(feed(input, &[cut]).is_ok(), "{input:?} cut {cut}");
        }
    }
}
