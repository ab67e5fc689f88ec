//! The access log: one line per request in a format the operator chooses,
//! uWSGI-style `%(var)` placeholders or the presets `default`, `combined`
//! (Apache/nginx) and `json`. Client bytes are escaped in every field
//! (`\xHH` as nginx does; JSON escapes in `json`). Lines are written whole
//! with one write to the log descriptor, so lines from different workers
//! never interleave.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;

/// A placeholder of the access-log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Addr,
    Method,
    Uri,
    Proto,
    Status,
    Size,
    Msecs,
    Micros,
    Pid,
    Wid,
    Core,
    Host,
    Uagent,
    Referer,
    Ltime,
    Epoch,
    Iso,
}

const VARS: [(&str, Var); 17] = [
    ("addr", Var::Addr),
    ("method", Var::Method),
    ("uri", Var::Uri),
    ("proto", Var::Proto),
    ("status", Var::Status),
    ("size", Var::Size),
    ("msecs", Var::Msecs),
    ("micros", Var::Micros),
    ("pid", Var::Pid),
    ("wid", Var::Wid),
    ("core", Var::Core),
    ("host", Var::Host),
    ("uagent", Var::Uagent),
    ("referer", Var::Referer),
    ("ltime", Var::Ltime),
    ("epoch", Var::Epoch),
    ("iso", Var::Iso),
];

/// The default line: what rwsgi logged before formats existed.
pub const DEFAULT: &str = "%(iso) [pid %(pid)] %(addr) \"%(method) %(uri) %(proto)\" %(status) %(size) %(msecs)ms w%(wid)";
/// Apache/nginx "combined".
pub const COMBINED: &str =
    "%(addr) - - [%(ltime)] \"%(method) %(uri) %(proto)\" %(status) %(size) \"%(referer)\" \"%(uagent)\"";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Var(Var),
}

/// A compiled access-log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Template(Vec<Piece>),
    Json,
}

/// What one request contributes to its log line.
pub struct Record<'a> {
    pub addr: &'a str,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub proto: &'a str,
    pub status: u16,
    pub size: u64,
    pub micros: u64,
    pub wid: usize,
    /// The app thread (1-based) under `--threads N`; `None` with one thread.
    pub core: Option<usize>,
    pub host: Option<&'a [u8]>,
    pub uagent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
}

impl Format {
    /// Compiles `default`, `combined`, `json` or a `%(var)` template; the
    /// error names the unknown placeholder and lists the known ones.
    pub fn parse(spec: &str) -> Result<Format, String> {
        let template = match spec {
            "json" => return Ok(Format::Json),
            "default" => DEFAULT,
            "combined" => COMBINED,
            other => other,
        };
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("%(") {
            if start > 0 {
                pieces.push(Piece::Lit(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find(')')
                .ok_or_else(|| format!("--log-format: unclosed %( in {template:?}"))?;
            let name = &after[..end];
            let var = VARS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let known: Vec<&str> = VARS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "--log-format: unknown placeholder %({name}); known: {}",
                        known.join(", ")
                    )
                })?;
            pieces.push(Piece::Var(var));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        Ok(Format::Template(pieces))
    }

    /// Whether the format shows request headers (so they are looked up only then).
    pub fn uses_headers(&self) -> bool {
        match self {
            Format::Json => true,
            Format::Template(p) => p
                .iter()
                .any(|p| matches!(p, Piece::Var(Var::Host | Var::Uagent | Var::Referer))),
        }
    }

    /// Renders one line (with its newline) into `out`.
    pub fn render(&self, r: &Record<'_>, now: std::time::SystemTime, out: &mut String) {
        out.clear();
        match self {
            Format::Template(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Lit(s) => out.push_str(s),
                        Piece::Var(v) => var(out, *v, r, now, Text::Escaped),
                    }
                }
            }
            Format::Json => {
                out.push('{');
                for (i, (name, v)) in VARS.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\"{name}\":");
                    let numeric = matches!(
                        v,
                        Var::Status
                            | Var::Size
                            | Var::Msecs
                            | Var::Micros
                            | Var::Pid
                            | Var::Wid
                            | Var::Core
                            | Var::Epoch
                    );
                    if *v == Var::Wid {
                        // A number in JSON; the thread is its own field.
                        let _ = write!(out, "{}", r.wid);
                    } else if numeric {
                        var(out, *v, r, now, Text::Lossy);
                    } else {
                        let mut s = String::new();
                        var(&mut s, *v, r, now, Text::Lossy);
                        json_string(out, &s);
                    }
                }
                out.push('}');
            }
        }
        out.push('\n');
    }
}

/// How client bytes go into a field: escaped nginx-style (templates), or
/// decoded as UTF-8 for [`json_string`] to escape (JSON must stay UTF-8).
#[derive(Clone, Copy)]
enum Text {
    Escaped,
    Lossy,
}

fn client(out: &mut String, b: &[u8], how: Text) {
    match how {
        Text::Escaped => super::escape::push_escaped(out, b),
        Text::Lossy => out.push_str(&String::from_utf8_lossy(b)),
    }
}

fn var(out: &mut String, v: Var, r: &Record<'_>, now: std::time::SystemTime, how: Text) {
    let field = |out: &mut String, b: &[u8]| client(out, b, how);
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match v {
        Var::Addr => field(out, r.addr.as_bytes()),
        Var::Method => field(out, r.method),
        Var::Uri => field(out, r.uri),
        Var::Proto => out.push_str(r.proto),
        Var::Status => {
            let _ = write!(out, "{}", r.status);
        }
        Var::Size => {
            let _ = write!(out, "{}", r.size);
        }
        Var::Msecs => {
            let _ = write!(out, "{}.{:03}", r.micros / 1000, r.micros % 1000);
        }
        Var::Micros => {
            let _ = write!(out, "{}", r.micros);
        }
        Var::Pid => {
            let _ = write!(out, "{}", std::process::id());
        }
        Var::Wid => {
            // Under --threads the label names the thread too: w2.5.
            let _ = match r.core {
                Some(core) => write!(out, "{}.{core}", r.wid),
                None => write!(out, "{}", r.wid),
            };
        }
        Var::Core => {
            let _ = write!(out, "{}", r.core.unwrap_or(1));
        }
        Var::Host => field(out, r.host.unwrap_or(b"-")),
        Var::Uagent => field(out, r.uagent.unwrap_or(b"-")),
        Var::Referer => field(out, r.referer.unwrap_or(b"-")),
        Var::Ltime => out.push_str(&clf_time(secs)),
        Var::Epoch => {
            let _ = write!(out, "{secs}");
        }
        Var::Iso => {
            let millis = now
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_millis())
                .unwrap_or(0);
            out.push_str(&iso_time(secs, millis));
        }
    }
}

/// `25/Nov/2026:11:06:36 +0000` (times are UTC).
fn clf_time(secs: u64) -> String {
    let d = crate::protocol::date::http_date(secs);
    // http_date: "Wed, 25 Nov 2026 11:06:36 GMT"
    let s = String::from_utf8_lossy(&d);
    format!(
        "{}/{}/{}:{} +0000",
        &s[5..7],
        &s[8..11],
        &s[12..16],
        &s[17..25]
    )
}

/// `2026-11-25T11:06:36.624Z`.
fn iso_time(secs: u64, millis: u32) -> String {
    let (y, m, d) = crate::protocol::date::civil_date(secs);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a rendered line to the log in one write.
pub fn emit(line: &str) {
    let _ = super::sink::Sink.write_all(line.as_bytes());
}

/// `--trusted-proxies`: addresses and networks (`10.0.0.0/8`) whose
/// `X-Forwarded-For` is believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted(Vec<(IpAddr, u8)>);

impl Trusted {
    pub fn parse(spec: &str) -> Result<Trusted, String> {
        let mut nets = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (ip, bits) = match item.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (item, None),
            };
            let ip: IpAddr = ip.parse().map_err(|_| {
                format!("--trusted-proxies: {item:?} is not an IP address or network")
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits =
                match bits {
                    Some(b) => b.parse::<u8>().ok().filter(|&b| b <= max).ok_or_else(|| {
                        format!("--trusted-proxies: bad prefix length in {item:?}")
                    })?,
                    None => max,
                };
            nets.push((ip, bits));
        }
        Ok(Trusted(nets))
    }

    pub fn contains(&self, addr: &str) -> bool {
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return false;
        };
        self.0.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
}

/// The client address to log: the first `X-Forwarded-For` entry when the
/// peer is a trusted proxy, else the peer.
pub fn client_addr<'a>(
    peer: &'a str,
    xff: Option<&'a [u8]>,
    trusted: &Trusted,
) -> std::borrow::Cow<'a, str> {
    if let Some(first) = xff
        .filter(|_| trusted.contains(peer))
        .and_then(|v| v.split(|&b| b == b',').next())
        .map(|f| String::from_utf8_lossy(f).trim().to_string())
        .filter(|f| !f.is_empty())
    {
        return std::borrow::Cow::Owned(first);
    }
    std::borrow::Cow::Borrowed(peer)
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
