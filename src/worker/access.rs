//! Writing a request's access-log line (and the `--log-slow` line).

use std::time::SystemTime;

use super::conn::Conn;
use crate::config::Config;
use crate::log::access::{client_addr, emit, Record};
use crate::wsgi::Outcome;

/// Logs the request if the access log is on, or if it was slower than
/// `--log-slow` (then at warn level, so it stands out). `who` is the worker
/// and its app thread.
pub fn log_request(
    config: &Config,
    conn: &Conn,
    outcome: &Outcome,
    micros: u64,
    who: (usize, usize),
    line: &mut String,
) {
    let access = &config.access;
    let slow = access.slow.is_some_and(|t| micros >= t.as_micros() as u64);
    if !config.access_log && !slow {
        return;
    }
    let view = conn.view();
    let peer = view.client(&conn.info.remote_addr);
    let xff = access
        .x_forwarded_for
        .then(|| view.header(b"x-forwarded-for", b"HTTP_X_FORWARDED_FOR"))
        .flatten();
    let addr = client_addr(&peer, xff, &access.trusted);
    let with_headers = access.format.uses_headers();
    let get = |http: &[u8], cgi: &[u8]| with_headers.then(|| view.header(http, cgi)).flatten();
    let label = view.label();
    let record = Record {
        addr: &addr,
        method: label.method,
        uri: label.target,
        proto: view.version().as_str(),
        status: outcome.status,
        size: outcome.body_bytes,
        micros,
        wid: who.0,
        core: (config.threads > 1).then_some(who.1 + 1),
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
            micros / 1000,
            line.trim_end()
        );
    }
}
