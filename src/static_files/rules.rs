//! The HTTP rules for a static file, as pure functions: validators and
//! conditional requests (RFC 9110 §8.8, §13), byte ranges (§14), the
//! encoding a client accepts (§12.5.3), the content type and cache lifetime.

/// A file's validators: what `ETag` and `Last-Modified` are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators {
    pub ino: u64,
    pub size: u64,
    pub mtime_secs: u64,
    pub mtime_nsec: u64,
}

impl Validators {
    /// A strong ETag: any change to the inode, size or mtime changes it.
    pub fn etag(&self) -> String {
        format!(
            "\"{:x}-{:x}-{:x}\"",
            self.ino,
            self.size,
            self.mtime_secs
                .wrapping_mul(1_000_000_000)
                .wrapping_add(self.mtime_nsec)
        )
    }
}

/// Whether `If-None-Match` matches `etag` (weak comparison, §13.1.2).
pub fn none_match(header: &[u8], etag: &str) -> bool {
    let header = trim(header);
    if header == b"*" {
        return true;
    }
    let want = etag.as_bytes();
    header.split(|&b| b == b',').map(trim).any(|t| {
        let t = t.strip_prefix(b"W/").unwrap_or(t);
        t == want
    })
}

/// Whether an `If-Range` value still names this representation: a strong
/// ETag equal to ours, or exactly our `Last-Modified` date (§13.1.5).
pub fn if_range_holds(header: &[u8], etag: &str, last_modified: &[u8]) -> bool {
    let header = trim(header);
    if header.starts_with(b"\"") {
        header == etag.as_bytes()
    } else {
        !header.starts_with(b"W/") && header == last_modified
    }
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable single range (absent, malformed, another unit, or several
    /// ranges): the whole file, 200.
    Whole,
    /// `first..=last` within the file: 206.
    Part { first: u64, last: u64 },
    /// A valid range wholly outside the file: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (one range only).
pub fn parse_range(header: &[u8], size: u64) -> RangeAsk {
    let header = trim(header);
    let Some(spec) = header
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case(b"bytes="))
        .map(|_| trim(&header[6..]))
    else {
        return RangeAsk::Whole;
    };
    if spec.contains(&b',') {
        return RangeAsk::Whole; // several ranges: answered whole (§14.2 allows it)
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    match (number(a), number(b)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || size == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part {
                    first: size - n.min(size),
                    last: size - 1,
                }
            }
        }
        (Some(first), None) if b.is_empty() => {
            if first >= size {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part {
                    first,
                    last: size - 1,
                }
            }
        }
        (Some(first), Some(last)) if first <= last => {
            if first >= size {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part {
                    first,
                    last: last.min(size - 1),
                }
            }
        }
        _ => RangeAsk::Whole,
    }
}

/// 1*DIGIT that fits in a u64.
/// A byte position. One past u64 is still a valid position, beyond any
/// file: it saturates (a last position is then clamped to the file's end,
/// a first one is unsatisfiable), as RFC 9110 §14.1.2 reads them.
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A precompressed variant beside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Gzip => ".gz",
        }
    }
    pub fn token(self) -> &'static [u8] {
        match self {
            Encoding::Brotli => b"br",
            Encoding::Gzip => b"gzip",
        }
    }
}

/// The q-value `Accept-Encoding` gives `coding` (0 to 1000), through its own
/// entry, `x-gzip` for gzip, or `*`; `None` if none of them is listed.
fn q_of(header: &[u8], coding: Encoding) -> Option<u16> {
    let mut star = None;
    for item in header.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let name = trim(parts.next().unwrap_or_default());
        let q = parts
            .map(trim)
            .find_map(|p| {
                p.get(..2)
                    .filter(|k| k.eq_ignore_ascii_case(b"q="))
                    .map(|_| p)
            })
            .map_or(Some(1000), |p| parse_q(&p[2..]));
        let Some(q) = q else { continue };
        let matches = name.eq_ignore_ascii_case(coding.token())
            || (coding == Encoding::Gzip && name.eq_ignore_ascii_case(b"x-gzip"));
        if matches {
            return Some(q);
        }
        if name == b"*" {
            star = Some(q);
        }
    }
    star
}

/// A qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` if malformed.
fn parse_q(v: &[u8]) -> Option<u16> {
    let v = trim(v);
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut q = match int[0] {
        b'0' => 0u16,
        b'1' => 1000,
        _ => return None,
    };
    for (i, &d) in frac.iter().enumerate() {
        q += u16::from(d - b'0') * [100, 10, 1][i];
    }
    (q <= 1000).then_some(q)
}

/// The variant to send among those `available`, for `Accept-Encoding`:
/// the highest q-value above 0, Brotli before gzip on a tie; `None` means
/// the file itself (identity is always acceptable here).
pub fn choose_encoding(header: Option<&[u8]>, available: &[Encoding]) -> Option<Encoding> {
    let header = header?;
    available
        .iter()
        .filter_map(|&e| q_of(header, e).filter(|&q| q > 0).map(|q| (q, e)))
        // max_by_key keeps the last maximum: iterate so Brotli wins ties.
        .rev()
        .max_by_key(|(q, _)| *q)
        .map(|(_, e)| e)
}

/// The `Content-Type` of a file name; text types get `charset=utf-8`.
pub fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let essence = mime.essence_str();
    let texty = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript" | "application/json" | "application/xml"
        )
        || essence.ends_with("+xml")
        || essence.ends_with("+json");
    if texty && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

/// Whether a type is worth looking for `.br`/`.gz` variants of (already
/// compressed images, fonts and archives never have them).
pub fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/javascript")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/xml")
        || content_type.starts_with("application/wasm")
        || content_type.starts_with("image/svg+xml")
        || content_type.starts_with("image/x-icon")
        || content_type.starts_with("image/vnd.microsoft.icon")
        || content_type.starts_with("font/ttf")
        || content_type.starts_with("font/otf")
        || content_type.contains("+json")
        || content_type.contains("+xml")
}

/// A name with a content hash, as Django's `ManifestStaticFilesStorage`
/// writes them: `name.0123456789ab.ext` (12 lower-case hex digits).
pub fn is_hashed_name(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let mut parts = base.rsplit('.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !stem.is_empty()
        && !ext.is_empty()
        && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        && hash.len() == 12
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The `Cache-Control` value: immutable for hashed names, else
/// `max-age` from `--static-expires`, else none.
pub fn cache_control(name: &str, expires: Option<u64>) -> Option<String> {
    if is_hashed_name(name) {
        Some("public, max-age=31536000, immutable".to_string())
    } else {
        expires.map(|s| format!("max-age={s}"))
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
