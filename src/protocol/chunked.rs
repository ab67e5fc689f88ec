//! The chunked transfer coding of request bodies (RFC 9112 §7.1): an
//! incremental, pure decoder. Feed it the bytes after the head as they arrive;
//! it appends the decoded data to `out` and says how many input bytes it
//! consumed, so the caller never re-decodes what it already saw.
//!
//! Strict where laxness enables request smuggling: sizes are hex digits only
//! (no sign, no `0x`, no spaces inside), lines end in CRLF (a bare LF is an
//! error), and the CRLF after each chunk's data is required. Trailer fields
//! are never used, but one a sender may not put in a trailer (RFC 9110
//! §6.5.1: framing, routing, authentication, ...) is an error, as it means
//! the sender and any proxy between may disagree about the request.

/// Longest chunk-size line we accept (size + extensions), and longest trailer
/// section. Real clients send a few bytes; anything near these is hostile.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// Fields a trailer may not carry (RFC 9110 §6.5.1), lower case: message
/// framing, routing, connection and request modifiers, authentication,
/// content format.
const FORBIDDEN_TRAILERS: &[&[u8]] = &[
    b"content-length",
    b"transfer-encoding",
    b"trailer",
    b"te",
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"upgrade",
    b"authorization",
    b"proxy-authorization",
    b"www-authenticate",
    b"proxy-authenticate",
    b"cookie",
    b"set-cookie",
    b"content-type",
    b"content-encoding",
    b"content-range",
    b"range",
    b"expect",
    b"max-forwards",
    b"cache-control",
    b"pragma",
    b"if-match",
    b"if-none-match",
    b"if-modified-since",
    b"if-unmodified-since",
    b"if-range",
];
/// Longer names than this are none of the above.
const NAME_MAX: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size (`digits` so far).
    Size {
        digits: u8,
    },
    /// Whitespace after the size: only more whitespace, `;` or CR may follow.
    SizeWs,
    /// After `;`: extensions until CR.
    Ext,
    /// Expecting the LF that ends the size line.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting CR then LF after chunk data.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    TrailerLf {
        last: bool,
    },
    Done,
}

/// Result of one [`Decoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The body is complete; `consumed` input bytes belonged to it.
    Done { consumed: usize },
    /// All input was consumed; more is needed.
    NeedMore,
    /// The coding is malformed.
    Error(&'static str),
}

#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// Chunk size being read, then bytes left in the current chunk.
    remaining: u64,
    line_len: usize,
    trailer_len: usize,
    /// The current trailer field's name so far (lower case), until its colon.
    name: [u8; NAME_MAX],
    /// Bytes of the name seen (may exceed NAME_MAX); None once the colon is.
    name_len: Option<usize>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            line_len: 0,
            trailer_len: 0,
            name: [0; NAME_MAX],
            name_len: Some(0),
        }
    }

    /// One byte of a trailer line: the name is collected up to the colon,
    /// which must come before the line ends, and then judged.
    fn trailer_name_byte(&mut self, b: u8) -> Result<(), &'static str> {
        let Some(n) = self.name_len else {
            return Ok(()); // in the value
        };
        match b {
            b':' => {
                self.name_len = None;
                let name = &self.name[..n.min(NAME_MAX)];
                if n <= NAME_MAX && FORBIDDEN_TRAILERS.contains(&name) {
                    return Err("a field not allowed in trailers (framing, routing or \
                                authentication, RFC 9110 §6.5.1) in the trailer section");
                }
            }
            b' ' | b'\t' => return Err("whitespace in a trailer field name"),
            b'\r' => return Err("trailer line without a colon"),
            0..=31 | 127 => return Err("control character in trailer section"),
            _ => {
                if let Some(slot) = self.name.get_mut(n) {
                    *slot = b.to_ascii_lowercase();
                }
                self.name_len = Some(n + 1);
            }
        }
        Ok(())
    }

    /// Decodes as much of `input` as possible, appending body bytes to `out`.
    /// After `Done` the decoder must not be fed again.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Decoded {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return Decoded::Done { consumed: i },
                State::Data => {
                    let take = (self.remaining.min((input.len() - i) as u64)) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    self.remaining -= take as u64;
                    i += take;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size { digits } => match hex(b) {
                    Some(v) => {
                        if digits >= 15 {
                            return Decoded::Error("chunk size too large");
                        }
                        self.remaining = self.remaining * 16 + v;
                        self.state = State::Size { digits: digits + 1 };
                    }
                    None if digits == 0 => return Decoded::Error("invalid chunk size"),
                    None => match b {
                        b';' => self.state = State::Ext,
                        b' ' | b'\t' => self.state = State::SizeWs,
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => return Decoded::Error("bare LF in chunk size line"),
                        _ => return Decoded::Error("invalid chunk size"),
                    },
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Ext,
                    b'\r' => self.state = State::SizeLf,
                    _ => return Decoded::Error("invalid chunk size"),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Decoded::Error("bare LF in chunk extension"),
                    0..=8 | 10..=31 | 127 => {
                        return Decoded::Error("control character in chunk extension")
                    }
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Decoded::Error("chunk size line not ended by CRLF");
                    }
                    self.line_len = 0;
                    self.state = if self.remaining == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Decoded::Error("chunk data not followed by CRLF");
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Decoded::Error("chunk data not followed by CRLF");
                    }
                    self.remaining = 0;
                    self.line_len = 0;
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => match b {
                    b'\r' => self.state = State::TrailerLf { last: true },
                    b'\n' => return Decoded::Error("bare LF in trailer section"),
                    b' ' | b'\t' => return Decoded::Error("obs-fold in trailer section"),
                    _ => {
                        self.name_len = Some(0);
                        if let Err(e) = self.trailer_name_byte(b) {
                            return Decoded::Error(e);
                        }
                        self.state = State::TrailerLine;
                    }
                },
                State::TrailerLine if self.name_len.is_some() && b != b'\n' => {
                    if let Err(e) = self.trailer_name_byte(b) {
                        return Decoded::Error(e);
                    }
                }
                State::TrailerLine => match b {
                    b'\r' => self.state = State::TrailerLf { last: false },
                    b'\n' => return Decoded::Error("bare LF in trailer section"),
                    0..=8 | 11..=31 | 127 => {
                        return Decoded::Error("control character in trailer section")
                    }
                    _ => {}
                },
                State::TrailerLf { last } => {
                    if b != b'\n' {
                        return Decoded::Error("trailer line not ended by CRLF");
                    }
                    self.state = if last {
                        State::Done
                    } else {
                        State::TrailerStart
                    };
                }
            }
            i += 1;
            if matches!(
                self.state,
                State::Size { .. } | State::SizeWs | State::Ext | State::SizeLf
            ) {
                self.line_len += 1;
                if self.line_len > MAX_LINE {
                    return Decoded::Error("chunk size line too long");
                }
            }
            if matches!(
                self.state,
                State::TrailerStart | State::TrailerLine | State::TrailerLf { .. }
            ) {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILERS {
                    return Decoded::Error("trailer section too long");
                }
            }
            if self.state == State::Done {
                return Decoded::Done { consumed: i };
            }
        }
        if self.state == State::Done {
            Decoded::Done { consumed: i }
        } else {
            Decoded::NeedMore
        }
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
