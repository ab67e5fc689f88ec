//! From a request path to a relative path beneath a mapped directory: the
//! longest matching prefix, one percent-decoding, and a refusal for every
//! path that could mean something other than a plain file name beneath it.

use crate::protocol::http::percent_decode;

/// What a request path means for the static map.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapped {
    /// No prefix matches: the request is the app's.
    Unmapped,
    /// Mount `index`, and the relative path beneath its directory
    /// (components joined by `/`; empty for the directory itself).
    /// `dir_request`: the path ended in `/` (or was the prefix itself).
    Path {
        mount: usize,
        rel: String,
        dir_request: bool,
    },
    /// A path no file may be served for (traversal, encoded slash, NUL,
    /// backslash, invalid UTF-8, dotfile): answered 404, never looked up.
    Refused,
}

/// The mount whose prefix is the longest one `raw` starts with, at a `/`
/// boundary (`/static` matches `/static/x` and `/static`, not `/staticx`).
/// `prefixes` are normalised: they start with `/` and do not end with one,
/// except the root prefix `/` itself, stored as the empty string.
pub fn longest_prefix(prefixes: &[String], raw: &[u8]) -> Option<(usize, usize)> {
    prefixes
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let p = p.as_bytes();
            raw.starts_with(p) && (raw.len() == p.len() || raw[p.len()] == b'/')
        })
        .max_by_key(|(_, p)| p.len())
        .map(|(i, p)| (i, p.len()))
}

/// Maps the raw (undecoded) request path, without its query, onto the mounts.
pub fn map(prefixes: &[String], raw: &[u8]) -> Mapped {
    let Some((mount, len)) = longest_prefix(prefixes, raw) else {
        return Mapped::Unmapped;
    };
    let rest = &raw[len..];
    // An encoded `/` or `\` would turn into a separator only after decoding:
    // refused, as nginx and Apache (AllowEncodedSlashes Off) do.
    let encoded_separator =
        |w: &[u8]| w.eq_ignore_ascii_case(b"%2f") || w.eq_ignore_ascii_case(b"%5c");
    if rest.windows(3).any(encoded_separator) {
        return Mapped::Refused;
    }
    let mut decoded = Vec::with_capacity(rest.len());
    percent_decode(rest, &mut decoded);
    // Decoded once only: a `%25` stays a literal `%` in the file name.
    let Ok(text) = String::from_utf8(decoded) else {
        return Mapped::Refused; // overlong forms and other invalid UTF-8
    };
    if text.contains(['\0', '\\']) || text.chars().any(char::is_control) {
        return Mapped::Refused;
    }
    let dir_request = text.is_empty() || text.ends_with('/');
    let mut rel = String::with_capacity(text.len());
    for seg in text.split('/').filter(|s| !s.is_empty()) {
        // `.` and `..` are traversal; any other leading dot is a dotfile
        // (`.env`, `.git`), never served.
        if seg.starts_with('.') {
            return Mapped::Refused;
        }
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(seg);
    }
    Mapped::Path {
        mount,
        rel,
        dir_request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        vec!["/static".into(), "/static/admin".into(), "/media".into()]
    }

    fn path(mount: usize, rel: &str, dir: bool) -> Mapped {
        Mapped::Path {
            mount,
            rel: rel.into(),
            dir_request: dir,
        }
    }

    #[test]
    fn longest_prefix_wins_at_a_slash_boundary() {
        let p = prefixes();
        assert_eq!(map(&p, b"/static/app.css"), path(0, "app.css", false));
        assert_eq!(map(&p, b"/static/admin/x.js"), path(1, "x.js", false));
        assert_eq!(
            map(&p, b"/static/administrator"),
            path(0, "administrator", false)
        );
        assert_eq!(map(&p, b"/staticx/a"), Mapped::Unmapped);
        assert_eq!(map(&p, b"/"), Mapped::Unmapped);
        assert_eq!(map(&p, b"/media"), path(2, "", true));
        assert_eq!(map(&p, b"/media/"), path(2, "", true));
        assert_eq!(map(&p, b"/media/d/"), path(2, "d", true));
        assert_eq!(map(&p, b"/media//a//b"), path(2, "a/b", false));
        let root = vec![String::new()];
        assert_eq!(map(&root, b"/x/y.txt"), path(0, "x/y.txt", false));
    }

    #[test]
    fn decodes_once() {
        let p = prefixes();
        assert_eq!(map(&p, b"/static/a%20b.css"), path(0, "a b.css", false));
        assert_eq!(map(&p, b"/static/a%252e"), path(0, "a%2e", false));
        assert_eq!(map(&p, b"/static/caf%C3%A9"), path(0, "caf\u{e9}", false));
    }

    #[test]
    fn hostile_paths_are_refused() {
        let p = prefixes();
        for raw in [
            &b"/static/../etc/passwd"[..],
            b"/static/%2e%2e/etc/passwd",
            b"/static/%2E%2E/x",
            b"/static/.%2e/x",
            b"/static/a/../../x",
            b"/static/./x",
            b"/static/..",
            b"/static/%2fetc/passwd",
            b"/static/a%2F..%2Fb",
            b"/static/a%5c..%5cb",
            b"/static/a\\..\\b",
            b"/static/a%00.css",
            b"/static/%c0%ae%c0%ae/x",
            b"/static/%e0%80%ae/x",
            b"/static/%ff",
            b"/static/.env",
            b"/static/.git/config",
            b"/static/a/.hidden",
            b"/static/a%0a",
        ] {
            assert_eq!(
                map(&p, raw),
                Mapped::Refused,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
