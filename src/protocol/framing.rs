//! Request body framing from the head (RFC 9112 §6): Content-Length and the
//! Transfer-Encoding list, judged strictly (laxness here is smuggling).

use super::http::HttpError;

pub(super) fn trim_bytes(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Content-Length is 1*DIGIT: no sign, no spaces inside, and it must fit in u64.
pub(super) fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The codings of every Transfer-Encoding field, in order, judged as the one
/// combined list they make (RFC 9110 §5.3). Chunked is the only coding we
/// decode; nothing is ever guessed at.
#[derive(Default)]
pub(super) struct TransferCodings {
    present: bool,
    empty: bool,
    chunked: u32,
    others: u32,
    last_is_chunked: bool,
}

impl TransferCodings {
    pub(super) fn add(&mut self, field: &[u8]) {
        self.present = true;
        for c in field.split(|&b| b == b',').map(trim_bytes) {
            self.empty |= c.is_empty();
            self.last_is_chunked = c.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                self.chunked += 1;
            } else {
                self.others += 1;
            }
        }
    }

    /// Whether the body is chunked; an error for a list that is not usable.
    pub(super) fn judge(&self) -> Result<bool, HttpError> {
        if !self.present {
            return Ok(false);
        }
        if self.empty {
            return Err(HttpError::BadRequest("empty Transfer-Encoding"));
        }
        // RFC 9112 §6.3: not ending in chunked means no knowable length.
        if !self.last_is_chunked {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding does not end in chunked, so the body length is unknown",
            ));
        }
        // RFC 9112 §6.1: chunked is applied at most once.
        if self.chunked > 1 {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding applies chunked more than once",
            ));
        }
        if self.others > 0 {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        Ok(true)
    }
}
