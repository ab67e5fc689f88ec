//! Writing a request's access-log line (and the `--log-slow` line).

use std::time::SystemTime;

use super::conn::Conn;
use crate::config::{Config, Protocol};
use crate::log::access::{client_addr, emit, Record};
use crate::protocol::uwsgi;
use crate::wsgi::Outcome;

/// A request header by its HTTP name (lower-case) or, for uwsgi, its CGI name.
fn header<'a>(conn: &'a Conn, http: &[u8], cgi: &[u8]) -> Option<&'a [u8]> {
    match conn.protocol {
        Protocol::Http => conn
            .head
            .headers
            .iter()
            .find(|h| conn.buf[h.name.clone()].eq_ignore_ascii_case(http))
            .map(|h| &conn.buf[h.value.clone()]),
        Protocol::Uwsgi => uwsgi::var(&conn.buf, &conn.packet, cgi),
    }
}

/// What the access log needs to know about a served request.
pub struct Served<'a> {
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub proto: &'a str,
    pub outcome: &'a Outcome,
    pub micros: u64,
    pub wid: usize,
}

/// Logs the request if the access log is on, or if it was slower than
/// `--log-slow` (then at warn level, so it stands out).
pub fn log_request(config: &Config, conn: &Conn, s: &Served<'_>, line: &mut String) {
    let access = &config.access;
    let slow = access
        .slow
        .is_some_and(|t| s.micros >= t.as_micros() as u64);
    if !config.access_log && !slow {
        return;
    }
    // Behind nginx the client is REMOTE_ADDR, not the socket peer.
    let peer: std::borrow::Cow<'_, str> = match conn.protocol {
        Protocol::Uwsgi => header(conn, b"", b"REMOTE_ADDR")
            .map(String::from_utf8_lossy)
            .unwrap_or_default(),
        Protocol::Http => conn.info.remote_addr.as_str().into(),
    };
    let xff = access
        .x_forwarded_for
        .then(|| header(conn, b"x-forwarded-for", b"HTTP_X_FORWARDED_FOR"))
        .flatten();
    let addr = client_addr(&peer, xff, &access.trusted);
    let with_headers = access.format.uses_headers();
    let get = |http: &[u8], cgi: &[u8]| with_headers.then(|| header(conn, http, cgi)).flatten();
    let record = Record {
        addr: &addr,
        method: s.method,
        uri: s.uri,
        proto: s.proto,
        status: s.outcome.status,
        size: s.outcome.body_bytes,
        micros: s.micros,
        wid: s.wid,
        host: get(b"host", b"HTTP_HOST"),
        uagent: get(b"user-agent", b"HTTP_USER_AGENT"),
        referer: get(b"referer", b"HTTP_REFERER"),
    };
    access.format.render(&record, SystemTime::now(), line);
    if config.access_log {
        emit(line);
    }
    if slow {
        log::warn!(
            "slow request ({} ms, --log-slow): {}",
            s.micros / 1000,
            line.trim_end()
        );
    }
}
