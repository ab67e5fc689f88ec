//! `--static-map` on the I/O thread: a complete GET or HEAD whose path maps
//! to a file is answered here, before any app thread sees it — no GIL, never
//! queued behind busy threads. The head and the file go into the
//! connection's output like any response (sendfile, without blocking).

use std::os::fd::OwnedFd;
use std::time::Instant;

use super::conn::{After, Phase};
use super::connections::Connections;
use crate::config::Protocol;
use crate::protocol::response::ConnectionEnd;
use crate::static_files::{Header, Request};
use crate::wsgi::{Outcome, Sink};

impl Connections<'_> {
    /// Answers the complete request on `idx` from the static map, if it is a
    /// static one; false leaves it to the app.
    pub fn serve_static(&mut self, idx: usize, date: &[u8], keep_alive: bool) -> bool {
        let Some(statics) = self.statics.as_ref() else {
            return false;
        };
        let Some(conn) = self.conns.get_mut(idx) else {
            return false;
        };
        let started = Instant::now();
        let view = conn.view();
        let label = view.label();
        let path = match conn.protocol {
            Protocol::Http => &conn.buf[conn.head.path.clone()],
            // REQUEST_URI is the path as sent; PATH_INFO is decoded already,
            // and decoding twice is how traversals slip in.
            Protocol::Uwsgi => match view.header(b"", b"REQUEST_URI") {
                Some(uri) => uri.split(|&b| b == b'?' || b == b'#').next().unwrap_or(uri),
                None => return false,
            },
        };
        let headers = |name: Header| view.header(name.http_name(), name.cgi_name());
        let end = match (conn.protocol, keep_alive) {
            (Protocol::Uwsgi, _) => ConnectionEnd::ProxyDelimited,
            (_, true) => ConnectionEnd::KeepAlive,
            (_, false) => ConnectionEnd::Close,
        };
        let Some(reply) = statics.respond(&Request {
            method: label.method,
            path,
            headers: &headers,
            version: view.version(),
            end,
            date,
        }) else {
            return false;
        };
        let Some(out) = conn.out.as_mut() else {
            return false;
        };
        let mut outcome = Outcome {
            status: reply.status,
            body_bytes: reply.inline_body,
            keep_alive,
            ..Outcome::default()
        };
        let sent = out.send(&[&reply.head]).and_then(|_| match reply.body {
            Some(body) => {
                outcome.body_bytes += body.len;
                out.send_file(OwnedFd::from(body.file), body.offset, body.len)
            }
            None => Ok(()),
        });
        if sent.is_err() {
            outcome.keep_alive = false;
        }
        // A body sent with a static request is not needed.
        conn.body = Default::default();
        let now = Instant::now();
        let micros = now.saturating_duration_since(started).as_micros() as u64;
        self.note_request_end(&outcome, (micros, now), 0, idx);
        self.slot.count_static(outcome.status, outcome.body_bytes);
        // Drained at the loop's top level (`drain_answered`), not from here:
        // draining goes on to the next pipelined request, which may be
        // static too, and a client pipelining thousands of them would
        // recurse through this function until the stack overflowed.
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.phase = Phase::Draining(After::Finish(outcome));
            self.answered.push(idx);
        }
        true
    }

    /// Drains the connections answered from the static map during this
    /// turn; requests that follow on them are answered in the next turn.
    pub fn drain_answered(&mut self) {
        let mut batch = std::mem::take(&mut self.answered);
        for idx in batch.drain(..) {
            let Some(conn) = self.conns.get_mut(idx) else {
                continue;
            };
            // (A connection closed and its index reused meanwhile is not
            // draining a static answer: left alone.)
            if let Phase::Draining(After::Finish(_)) = conn.phase {
                let Phase::Draining(after) = std::mem::replace(&mut conn.phase, Phase::Reading)
                else {
                    continue;
                };
                self.drain(idx, after);
            }
        }
        if self.answered.is_empty() {
            self.answered = batch; // keep the allocation
        }
    }
}
