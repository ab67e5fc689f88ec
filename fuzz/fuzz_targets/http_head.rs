//! `protocol::http::parse_head` on arbitrary bytes with small limits.
//! Invariants: no panic; when Complete, `head_len <= buf.len()`, every range
//! lies within the head, and parsing exactly the head gives the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::protocol::http::{parse_head, Limits, Parsed, RequestHead};
use std::ops::Range;

fn within(r: &Range<usize>, end: usize) -> bool {
    r.start <= r.end && r.end <= end
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes pick the limits, so the limit paths are reached.
    let [a, b, buf @ ..] = data else { return };
    let limits = Limits {
        max_head: 16 + usize::from(*a) * 4,
        max_headers: 1 + usize::from(*b % 32),
    };
    let mut head = RequestHead::default();
    if parse_head(buf, &limits, &mut head) != Parsed::Complete {
        return;
    }
    let end = head.head_len;
    assert!(end <= buf.len(), "head_len {end} > {}", buf.len());
    assert!(end <= limits.max_head);
    for r in [&head.method, &head.target, &head.path, &head.query] {
        assert!(within(r, end), "{r:?} outside 0..{end}");
    }
    assert!(head.target.start <= head.path.start && head.path.end <= head.target.end);
    assert!(head.query.end <= head.target.end);
    for h in &head.headers {
        assert!(
            within(&h.name, end) && within(&h.value, end),
            "{h:?} outside 0..{end}"
        );
    }
    assert!(head.host.is_none_or(|i| i < head.headers.len()));

    let mut again = RequestHead::default();
    assert_eq!(
        parse_head(&buf[..end], &limits, &mut again),
        Parsed::Complete
    );
    assert_eq!(again, head);
});
