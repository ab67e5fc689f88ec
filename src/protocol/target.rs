//! Request targets (RFC 9112 §3.2): which forms are allowed for which
//! method, which bytes may appear raw, and the path and query inside.

use std::ops::Range;

/// Checks the request target's form against the method, and its bytes:
/// origin-form (`/path`) or absolute-form (`http://host/path`) for every
/// method but CONNECT, `*` for OPTIONS only, authority-form (`host:port`)
/// for CONNECT only. Bytes >= 0x80 and controls must be percent-encoded.
pub fn check_target(method: &[u8], target: &[u8]) -> Result<(), &'static str> {
    if target.iter().any(|&b| b >= 0x80) {
        return Err("a raw byte >= 0x80 in the request target (it must be percent-encoded)");
    }
    if target.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return Err("invalid character (NUL or control) in the request line");
    }
    if method == b"CONNECT" {
        return if is_authority(target) {
            Ok(())
        } else {
            Err("CONNECT needs an authority-form target (host:port)")
        };
    }
    if target == b"*" {
        return if method == b"OPTIONS" {
            Ok(())
        } else {
            Err("'*' is a request target for OPTIONS only")
        };
    }
    if target.starts_with(b"/") || absolute_http(target) {
        return Ok(());
    }
    if is_authority(target) {
        return Err("an authority-form target (host:port) is for CONNECT only");
    }
    Err("the request target is neither /path, http(s)://host/path, host:port (CONNECT) nor * (OPTIONS)")
}

/// `http://` or `https://` (any case) and an authority.
fn absolute_http(t: &[u8]) -> bool {
    [&b"http://"[..], b"https://"]
        .iter()
        .any(|scheme| t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme))
}

/// `host:port`: no path, a port of digits after the last colon.
fn is_authority(t: &[u8]) -> bool {
    match t.iter().rposition(|&b| b == b':') {
        Some(colon) => {
            let port = &t[colon + 1..];
            colon > 0
                && !port.is_empty()
                && port.iter().all(u8::is_ascii_digit)
                && !t.contains(&b'/')
                && !t.contains(&b'?')
        }
        None => false,
    }
}

/// Splits a request target into path and query ranges; the fragment is dropped
/// and an absolute-form target (`http://host/path`) yields just its path.
pub(super) fn split_target(buf: &[u8], target: Range<usize>) -> (Range<usize>, Range<usize>) {
    let t = &buf[target.clone()];
    let mut start = target.start;
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = target.start + scheme.len();
            start = buf[after..target.end]
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .map_or(target.end, |p| after + p);
        }
    }
    let end = buf[start..target.end]
        .iter()
        .position(|&b| b == b'#')
        .map_or(target.end, |p| start + p);
    match buf[start..end].iter().position(|&b| b == b'?') {
        Some(q) => (start..start + q, start + q + 1..end),
        None => (start..end, end..end),
    }
}

/// Percent-decodes a path into `out` (bytes; PEP 3333 then maps them 1:1 to
/// latin-1 characters). Invalid escapes are kept as they are, like other servers.
pub fn percent_decode(src: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b == b'%' && i + 2 < src.len() {
            if let (Some(h), Some(l)) = (hex(src[i + 1]), hex(src[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
