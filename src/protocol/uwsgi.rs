//! The uwsgi wire protocol (what nginx's `uwsgi_pass` sends): a pure parser
//! over a byte slice that returns complete / need-more / a specific error,
//! and an encoder for tests, fuzzing and test clients.
//!
//! A packet is a 4-byte header — `modifier1` (u8), `datasize` (u16
//! little-endian), `modifier2` (u8) — then `datasize` bytes of vars, each a
//! u16 LE key length, the key, a u16 LE value length and the value; then the
//! body, exactly `CONTENT_LENGTH` bytes.
//!
//! The parser never does I/O, never logs and never touches Python. It waits
//! for the header and the whole vars block, not for the body: everything it
//! returns refers to the input buffer by byte range, so the caller keeps
//! reading the body into the same buffer, starting at [`Packet::head_len`].

use std::ops::Range;

/// Length of the fixed header (`modifier1`, `datasize`, `modifier2`).
pub const HEADER_LEN: usize = 4;
/// `modifier1` of a WSGI request (what nginx sends by default).
pub const MODIFIER_WSGI: u8 = 0;
/// `modifier1` of a PING (`uwsgi --ping`); answered with [`ping_response`].
pub const MODIFIER_PING: u8 = 100;
/// Largest vars block the header can announce (`datasize` is a u16).
pub const MAX_DATASIZE: usize = u16::MAX as usize;

/// The HTTP methods whose request line, sent to a uwsgi socket by mistake,
/// we recognise from the first [`HEADER_LEN`] bytes (method + space, cut to
/// four bytes). `PRI ` is the HTTP/2 prior-knowledge preface.
const HTTP_PREFIXES: [&[u8; HEADER_LEN]; 10] = [
    b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI ",
];

/// One var: byte ranges of its key and value in the parsed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarSpan {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// A parsed packet head. Ranges index the buffer that was parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    pub modifier1: u8,
    pub modifier2: u8,
    /// `HEADER_LEN + datasize`: the body starts here.
    pub head_len: usize,
    /// The vars in wire order (duplicates kept). Only filled in for
    /// `modifier1 == MODIFIER_WSGI`; other modifiers' payloads are opaque.
    /// The caller reuses this vector between packets.
    pub vars: Vec<VarSpan>,
    /// From `CONTENT_LENGTH` (0 if absent or empty): the body's length.
    pub content_length: u64,
}

/// Test helpers: the server reads `head_len` and `content_length` directly.
#[cfg(test)]
impl Packet {
    /// The vars block, `HEADER_LEN..head_len`.
    fn vars_range(&self) -> Range<usize> {
        HEADER_LEN..self.head_len
    }

    /// Where the body lies in the buffer once it has all been read.
    /// Saturates instead of overflowing on absurd lengths.
    fn body_range(&self) -> Range<usize> {
        let len = usize::try_from(self.content_length).unwrap_or(usize::MAX);
        self.head_len..self.head_len.saturating_add(len)
    }
}

/// Why a packet was refused. Every variant means the connection cannot be
/// trusted to be in sync any more: log [`UwsgiError::reason`] and close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UwsgiError {
    /// The first bytes are an HTTP request line (`GET `, `POST`…): an HTTP
    /// client is talking to a uwsgi socket.
    LooksLikeHttp,
    /// `datasize` is larger than `--buffer-size`.
    VarsTooLarge { size: usize, limit: usize },
    /// A var at this offset (from the start of the packet) has an empty key.
    ZeroLengthKey { at: usize },
    /// A key or value length at this offset runs past the end of the vars
    /// block (or a length field itself is cut off).
    TruncatedVar { at: usize },
    /// `CONTENT_LENGTH` is not a plain decimal u64 (sign, spaces, other
    /// characters, overflow). Carries the value, escaped and shortened for
    /// the log.
    BadContentLength(String),
    /// `CONTENT_LENGTH` appears more than once with different values (the
    /// same value twice is accepted; empty counts as 0).
    ConflictingContentLength { first: u64, second: u64 },
    /// `REQUEST_URI` or `QUERY_STRING` (raw, not decoded, as in the request
    /// line) holds a control byte: nginx (since 1.21.1) refuses such request
    /// lines itself, so this packet did not come from a client through it.
    ControlInTarget(&'static str),
}

impl UwsgiError {
    /// A sentence for the log, naming the option to change where one applies.
    pub fn reason(&self) -> String {
        match self {
            UwsgiError::LooksLikeHttp => "this looks like an HTTP request on a uwsgi socket; \
                 use --http for HTTP clients (uwsgi sockets expect nginx's uwsgi_pass)"
                .to_string(),
            UwsgiError::VarsTooLarge { size, limit } => format!(
                "uwsgi vars block of {size} bytes is larger than the {limit}-byte limit \
                 (raise --buffer-size to accept it)"
            ),
            UwsgiError::ZeroLengthKey { at } => {
                format!("malformed uwsgi packet: the var at byte {at} has an empty key")
            }
            UwsgiError::TruncatedVar { at } => format!(
                "malformed uwsgi packet: the var at byte {at} runs past the end of the vars block"
            ),
            UwsgiError::BadContentLength(v) => {
                format!("malformed uwsgi packet: CONTENT_LENGTH \"{v}\" is not a decimal number")
            }
            UwsgiError::ConflictingContentLength { first, second } => format!(
                "malformed uwsgi packet: conflicting CONTENT_LENGTH values {first} and {second}"
            ),
            UwsgiError::ControlInTarget(key) => format!(
                "malformed uwsgi packet: a control byte in {key} (it must be percent-encoded)"
            ),
        }
    }
}

/// Outcome of [`parse_packet`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The header and all vars are buffered; `packet` was filled in.
    Complete,
    /// Not enough bytes yet; read more. (`packet` is unspecified.)
    Partial,
    /// The packet is refused. (`packet` is unspecified.)
    Error(UwsgiError),
}

/// Parses the uwsgi packet head at the start of `buf`.
///
/// Returns `Partial` until the header and all `datasize` bytes of vars are
/// buffered; it does not wait for the body (`packet.content_length` bytes
/// from `packet.head_len`). `max_vars_size` is `--buffer-size`: a larger
/// `datasize` is refused as soon as the header is in, before its vars are
/// read. HTTP sent to a uwsgi socket is recognised from the first four bytes.
///
/// Any `modifier1` parses; the caller decides which it serves. Only for
/// [`MODIFIER_WSGI`] is the vars block read as vars (other modifiers define
/// their own payloads): for the rest `vars` is empty and `content_length` 0.
///
/// `packet.vars` is cleared and refilled, so a caller that reuses its
/// `Packet` does not allocate in the steady state.
pub fn parse_packet(buf: &[u8], max_vars_size: usize, packet: &mut Packet) -> Parsed {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Parsed::Partial;
    };
    if HTTP_PREFIXES.contains(&header) {
        return Parsed::Error(UwsgiError::LooksLikeHttp);
    }
    let [modifier1, lo, hi, modifier2] = *header;
    let datasize = usize::from(u16::from_le_bytes([lo, hi]));
    if datasize > max_vars_size {
        return Parsed::Error(UwsgiError::VarsTooLarge {
            size: datasize,
            limit: max_vars_size,
        });
    }
    let head_len = HEADER_LEN + datasize;
    if buf.len() < head_len {
        return Parsed::Partial;
    }

    packet.modifier1 = modifier1;
    packet.modifier2 = modifier2;
    packet.head_len = head_len;
    packet.vars.clear();
    packet.content_length = 0;
    if modifier1 != MODIFIER_WSGI {
        return Parsed::Complete;
    }

    let mut content_length: Option<u64> = None;
    let mut pos = HEADER_LEN;
    while pos < head_len {
        let at = pos;
        let Some(key) = take(buf, &mut pos, head_len) else {
            return Parsed::Error(UwsgiError::TruncatedVar { at });
        };
        if key.is_empty() {
            return Parsed::Error(UwsgiError::ZeroLengthKey { at });
        }
        let Some(value) = take(buf, &mut pos, head_len) else {
            return Parsed::Error(UwsgiError::TruncatedVar { at });
        };
        let raw_target = match &buf[key.clone()] {
            b"REQUEST_URI" => Some("REQUEST_URI"),
            b"QUERY_STRING" => Some("QUERY_STRING"),
            _ => None,
        };
        if let Some(k) = raw_target {
            if buf[value.clone()].iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Parsed::Error(UwsgiError::ControlInTarget(k));
            }
        }
        if &buf[key.clone()] == b"CONTENT_LENGTH" {
            let v = &buf[value.clone()];
            let Some(len) = parse_content_length(v) else {
                return Parsed::Error(UwsgiError::BadContentLength(escape_for_log(v)));
            };
            match content_length {
                Some(first) if first != len => {
                    return Parsed::Error(UwsgiError::ConflictingContentLength {
                        first,
                        second: len,
                    });
                }
                _ => content_length = Some(len),
            }
        }
        packet.vars.push(VarSpan { key, value });
    }
    packet.content_length = content_length.unwrap_or(0);
    Parsed::Complete
}

/// Reads one length-prefixed string at `*pos`, which must end by `end`;
/// advances `*pos` past it and returns its range.
fn take(buf: &[u8], pos: &mut usize, end: usize) -> Option<Range<usize>> {
    let start = pos.checked_add(2).filter(|&s| s <= end)?;
    let len = usize::from(u16::from_le_bytes([buf[*pos], buf[*pos + 1]]));
    let stop = start.checked_add(len).filter(|&s| s <= end)?;
    *pos = stop;
    Some(start..stop)
}

/// `CONTENT_LENGTH` is empty (0) or 1*DIGIT that fits in u64.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// At most 32 bytes of a hostile value, escaped so it cannot forge log lines.
fn escape_for_log(v: &[u8]) -> String {
    const MAX: usize = 32;
    let mut s = v[..v.len().min(MAX)].escape_ascii().to_string();
    if v.len() > MAX {
        s.push_str("...");
    }
    s
}

/// The value of the last var named `key` (uwsgi keys are case-sensitive),
/// as a slice of `buf`, the buffer `packet` was parsed from. The last, as in
/// the environ: a later `uwsgi_param` replaces an earlier one.
pub fn var<'a>(buf: &'a [u8], packet: &Packet, key: &[u8]) -> Option<&'a [u8]> {
    packet
        .vars
        .iter()
        .rev()
        .find(|v| buf.get(v.key.clone()) == Some(key))
        .and_then(|v| buf.get(v.value.clone()))
}

/// Appends one packet head (header + vars, no body) to `out`.
///
/// For tests, fuzzing and test clients. It encodes what it is given —
/// including empty keys and duplicate or malformed `CONTENT_LENGTH` — so it
/// can build hostile packets. It refuses (leaving `out` untouched) a key or
/// value longer than 65535 bytes or a vars block over 65535 bytes, which the
/// wire format cannot express; it never truncates.
pub fn encode_packet(
    modifier1: u8,
    modifier2: u8,
    vars: &[(&[u8], &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut datasize = 0usize;
    for (key, value) in vars {
        for (what, s) in [("key", key), ("value", value)] {
            if s.len() > MAX_DATASIZE {
                return Err(format!(
                    "uwsgi var {what} of {} bytes is longer than {MAX_DATASIZE}",
                    s.len()
                ));
            }
        }
        datasize += 4 + key.len() + value.len();
    }
    let Ok(datasize) = u16::try_from(datasize) else {
        return Err(format!(
            "uwsgi vars block of {datasize} bytes is larger than {MAX_DATASIZE}"
        ));
    };
    out.reserve(HEADER_LEN + usize::from(datasize));
    out.push(modifier1);
    out.extend_from_slice(&datasize.to_le_bytes());
    out.push(modifier2);
    for (key, value) in vars {
        for s in [key, value] {
            // Lengths were checked above.
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s);
        }
    }
    Ok(())
}

/// What uWSGI answers to a PING (`modifier1` 100): its ping plugin echoes the
/// request header with `datasize` 0 and `modifier2` set to 1 (a non-zero
/// `datasize` would carry a warning message; `uwsgi --ping` exits 0 on an
/// empty one).
pub fn ping_response() -> [u8; HEADER_LEN] {
    [MODIFIER_PING, 0, 0, 1]
}

#[cfg(test)]
#[path = "uwsgi_tests.rs"]
mod tests;
