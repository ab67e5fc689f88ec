//! `protocol::uwsgi::parse_packet` on arbitrary bytes.
//! Invariants: no panic; when Complete, `head_len <= buf.len()`, every span
//! lies within the vars block, `var` finds every key, parsing exactly the head
//! gives the same result, and for WSGI packets re-encoding the spans
//! reproduces the head byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::protocol::uwsgi::{
    encode_packet, parse_packet, var, Packet, Parsed, HEADER_LEN, MODIFIER_WSGI,
};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the vars limit: the default, or a small one.
    let [a, buf @ ..] = data else { return };
    let limit = if *a == 0 { 65536 } else { usize::from(*a) * 16 };
    let mut packet = Packet::default();
    if parse_packet(buf, limit, &mut packet) != Parsed::Complete {
        return;
    }
    let end = packet.head_len;
    assert!(end <= buf.len(), "head_len {end} > {}", buf.len());
    assert!(end >= HEADER_LEN && end - HEADER_LEN <= limit);
    for v in &packet.vars {
        for r in [&v.key, &v.value] {
            assert!(
                HEADER_LEN <= r.start && r.start <= r.end && r.end <= end,
                "{v:?} outside {HEADER_LEN}..{end}"
            );
        }
        assert!(var(buf, &packet, &buf[v.key.clone()]).is_some());
    }

    let mut again = Packet::default();
    assert_eq!(
        parse_packet(&buf[..end], limit, &mut again),
        Parsed::Complete
    );
    assert_eq!(again, packet);

    if packet.modifier1 == MODIFIER_WSGI {
        let vars: Vec<(&[u8], &[u8])> = packet
            .vars
            .iter()
            .map(|v| (&buf[v.key.clone()], &buf[v.value.clone()]))
            .collect();
        let mut out = Vec::new();
        encode_packet(packet.modifier1, packet.modifier2, &vars, &mut out).unwrap();
        assert_eq!(out, &buf[..end]);
    }
});
