//! Client bytes in log lines: escaped as nginx does, so a client cannot forge
//! a log line (CR, LF), drive a terminal (ESC) or break a quoted field (`"`).
//! Every byte outside printable ASCII, and `"` and `\`, becomes `\xHH`; the
//! rest is copied. The result is always ASCII, one line.

use std::fmt;

/// Displays bytes with every control, non-ASCII, `"` and `\` byte as `\xHH`.
pub struct Escaped<'a>(pub &'a [u8]);

/// Whether `b` is copied as-is into a log line.
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while !rest.is_empty() {
            let run = rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len());
            // The run is printable ASCII, hence valid UTF-8.
            f.write_str(std::str::from_utf8(&rest[..run]).map_err(|_| fmt::Error)?)?;
            if let Some(&b) = rest.get(run) {
                write!(f, "\\x{b:02X}")?;
                rest = &rest[run + 1..];
            } else {
                rest = &[];
            }
        }
        Ok(())
    }
}

/// Appends `bytes` escaped to `out`.
pub fn push_escaped(out: &mut String, bytes: &[u8]) {
    use fmt::Write as _;
    let _ = write!(out, "{}", Escaped(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_quotes_and_non_ascii_are_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (b"/plain?a=b&c=d", "/plain?a=b&c=d"),
            (b"a\r\nforged line", "a\\x0D\\x0Aforged line"),
            (b"\x1b[31mred", "\\x1B[31mred"),
            (b"nul\0byte", "nul\\x00byte"),
            (b"say \"hi\"", "say \\x22hi\\x22"),
            (b"back\\slash", "back\\x5Cslash"),
            (b"del\x7f", "del\\x7F"),
            ("caf\u{e9}".as_bytes(), "caf\\xC3\\xA9"),
            (b"\xff", "\\xFF"),
            (b"", ""),
        ];
        for (input, want) in cases {
            assert_eq!(Escaped(input).to_string(), *want, "{input:?}");
        }
    }
}
