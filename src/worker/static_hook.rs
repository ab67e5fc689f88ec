//! The one place today's worker asks `static_files` for an answer before a
//! request goes to Python: it builds the request view for either protocol,
//! sends the head and `sendfile`s the body (blocking, with the usual
//! timeout), logs and counts it. The worker rewrite moves this function
//! into its I/O thread, where the sends become non-blocking.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::conn::State;
use super::event_loop::EventLoop;
use crate::config::Protocol;
use crate::protocol::http::Version;
use crate::protocol::response::ConnectionEnd;
use crate::protocol::uwsgi;
use crate::static_files::{Header, Request};
use crate::sys;
use crate::wsgi::Outcome;

/// A request answered from the static map.
pub(super) struct Answered {
    /// Requests the worker has served, this one included.
    pub served: u64,
    pub finished: Instant,
    pub keep_alive: bool,
}

impl EventLoop<'_> {
    /// Answers the complete request on `idx` from `--static-map`, if it is
    /// a static one; `None` leaves it to the app.
    pub(super) fn serve_static(&mut self, idx: usize, date: &[u8]) -> Option<Answered> {
        let statics = self.static_files.as_ref()?;
        let conn = self.conns.get_mut(idx)?;
        let State::Ready { .. } = conn.state else {
            return None;
        };
        let started = Instant::now();
        let buf = &conn.buf;
        let (method, target, path, version, keep_alive) = match conn.protocol {
            Protocol::Http => {
                let h = &conn.head;
                let keep = h.keep_alive && !self.stopping && !conn.eof;
                let (m, t, p) = (
                    &buf[h.method.clone()],
                    &buf[h.target.clone()],
                    &buf[h.path.clone()],
                );
                (m, t, p, h.version(), keep)
            }
            Protocol::Uwsgi => {
                let p = &conn.packet;
                let var = |k: &[u8]| uwsgi::var(buf, p, k);
                // REQUEST_URI is the path as sent; PATH_INFO is decoded
                // already, and decoding twice is how traversals slip in.
                let uri = var(b"REQUEST_URI")?;
                let path = uri.split(|&b| b == b'?' || b == b'#').next().unwrap_or(uri);
                let version = match var(b"SERVER_PROTOCOL") {
                    Some(b"HTTP/1.1") => Version::Http11,
                    _ => Version::Http10,
                };
                (
                    var(b"REQUEST_METHOD").unwrap_or(b"GET"),
                    uri,
                    path,
                    version,
                    false,
                )
            }
        };
        let headers = |name: Header| -> Option<&[u8]> {
            match conn.protocol {
                Protocol::Http => conn
                    .head
                    .headers
                    .iter()
                    .find(|h| buf[h.name.clone()].eq_ignore_ascii_case(name.http_name()))
                    .map(|h| &buf[h.value.clone()]),
                Protocol::Uwsgi => uwsgi::var(buf, &conn.packet, name.cgi_name()),
            }
        };
        let end = match (conn.protocol, keep_alive) {
            (Protocol::Uwsgi, _) => ConnectionEnd::ProxyDelimited,
            (_, true) => ConnectionEnd::KeepAlive,
            (_, false) => ConnectionEnd::Close,
        };
        let reply = statics.respond(&Request {
            method,
            path,
            headers: &headers,
            version,
            end,
            date,
        })?;

        let fd = conn.stream.raw_fd();
        let timeout = self.config.limits.http_timeout;
        let mut keep_alive = keep_alive;
        let mut body_bytes = reply.inline_body;
        if sys::send_all(fd, &[&reply.head], timeout).is_err() {
            keep_alive = false;
            body_bytes = 0;
        } else if let Some(body) = &reply.body {
            match sys::send_file(fd, body.file.as_raw_fd(), body.offset, body.len, timeout) {
                Ok(n) => {
                    body_bytes += n;
                    if n < body.len {
                        // The file shrank under us: the length sent is wrong,
                        // so the connection can't carry another response.
                        log::warn!(
                            "static file shrank while being sent ({n} of {} bytes): {}",
                            body.len,
                            String::from_utf8_lossy(path)
                        );
                        keep_alive = false;
                    }
                }
                Err(_) => keep_alive = false,
            }
        }
        let finished = Instant::now();
        let micros = finished.duration_since(started).as_micros() as u64;
        let served = self
            .slot
            .end_request(body_bytes, false, reply.status, micros);
        self.slot.count_static(reply.status, body_bytes);
        let outcome = Outcome {
            status: reply.status,
            body_bytes,
            keep_alive,
            exception: false,
        };
        super::access::log_request(
            self.config,
            conn,
            &super::access::Served {
                method,
                uri: target,
                proto: version.as_str(),
                outcome: &outcome,
                micros,
                wid: self.id,
            },
            &mut self.log_line,
        );
        // The body was read whole before serving; a static answer drops it.
        drop(std::mem::take(&mut conn.body));
        Some(Answered {
            served,
            finished,
            keep_alive,
        })
    }
}
