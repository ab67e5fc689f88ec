//! Serving a connection's progress: queueing complete requests, answering
//! refused ones, and handing one request at a time to the WSGI bridge.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::conn::{Progress, State};
use super::event_loop::EventLoop;
use crate::config::Protocol;
use crate::master::Notice;
use crate::protocol::date::{http_date, DATE_LEN};
use crate::protocol::http::Version;
use crate::protocol::http::{self, HttpError};
use crate::protocol::uwsgi;
use crate::sys;
use crate::wsgi::{Gil, Head, Request, ResponseParams};

/// The `Date` header value, formatted once per second.
pub struct DateCache {
    secs: u64,
    value: [u8; DATE_LEN],
}

impl DateCache {
    pub fn new() -> DateCache {
        DateCache {
            secs: u64::MAX,
            value: [b' '; DATE_LEN],
        }
    }

    pub fn now(&mut self) -> [u8; DATE_LEN] {
        self.at(wall_us() / 1_000_000)
    }

    /// The date for `secs` since the epoch (formatted once per second).
    pub fn at(&mut self, secs: u64) -> [u8; DATE_LEN] {
        if secs != self.secs {
            self.secs = secs;
            self.value = http_date(secs);
        }
        self.value
    }
}

/// Microseconds since the epoch: the one wall-clock read of a request.
fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `METHOD target` of a request, formatted only when a log line needs it.
struct Label<'a> {
    method: &'a [u8],
    target: &'a [u8],
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(self.method),
            String::from_utf8_lossy(self.target)
        )
    }
}

/// The client as logs name it (a unix socket peer has no address).
fn peer(info: &crate::wsgi::ConnInfo) -> &str {
    if info.remote_addr.is_empty() {
        "a unix socket peer"
    } else {
        &info.remote_addr
    }
}

impl EventLoop<'_> {
    pub(super) fn on_progress(&mut self, idx: usize, progress: Progress) {
        match progress {
            Progress::Waiting => {}
            Progress::Ready => self.ready.push_back(idx),
            Progress::WantsContinue => {
                let Some(conn) = self.conns.get_mut(idx) else {
                    return;
                };
                conn.sent_continue = true;
                let fd = conn.stream.raw_fd();
                let timeout = self.config.limits.http_timeout;
                if sys::send_all(fd, &[b"HTTP/1.1 100 Continue\r\n\r\n"], timeout).is_err() {
                    self.close(idx);
                }
            }
            Progress::Refused(e) => {
                self.log_refusal(idx, &e);
                self.refuse(idx, e.status());
            }
            Progress::TooLarge { length, limit } => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    log::warn!(
                        "refused a request body of {length} bytes from {}: larger than --limit-post {limit}",
                        conn.info.remote_addr
                    );
                }
                self.refuse(idx, 413);
            }
            Progress::Closed => self.close(idx),
            Progress::Truncated { got } => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    let what = format!(
                        "the peer closed it after {got} byte(s), before a complete request"
                    );
                    // On a uwsgi socket the peer is nginx: a cut packet is worth a warning.
                    match conn.protocol {
                        Protocol::Uwsgi => log::warn!(
                            "closing a uwsgi connection from {}: {what}",
                            peer(&conn.info)
                        ),
                        Protocol::Http => {
                            log::debug!("closing a connection from {}: {what}", peer(&conn.info))
                        }
                    }
                }
                self.close(idx);
            }
            Progress::SpoolFailed(e) => {
                log::error!("{e} (see --post-buffering)");
                self.refuse(idx, 500);
            }
            Progress::Ping => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    let pong = uwsgi::ping_response();
                    let timeout = self.config.limits.http_timeout;
                    let _ = sys::send_all(conn.stream.raw_fd(), &[&pong], timeout);
                }
                self.close(idx);
            }
            Progress::BadPacket(e) => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    log::warn!(
                        "closing a uwsgi connection from {}: {}",
                        peer(&conn.info),
                        e.reason()
                    );
                }
                self.close(idx);
            }
            Progress::BadModifier(m1, m2) => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    log::warn!(
                        "closing a uwsgi connection from {}: modifier1 {m1} (modifier2 {m2}) is not served; \
                         only WSGI requests (modifier1 0) and PING (100) are",
                        peer(&conn.info)
                    );
                }
                self.close(idx);
            }
        }
    }

    fn log_refusal(&mut self, idx: usize, e: &HttpError) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let addr = &conn.info.remote_addr;
        match e {
            // A limit the operator may want to raise: say so at warn level.
            HttpError::HeadTooLarge(_)
            | HttpError::TooManyHeaders(_)
            | HttpError::UriTooLong(_) => {
                log::warn!("refused a request from {addr}: {}", e.reason())
            }
            _ => log::debug!("refused a request from {addr}: {}", e.reason()),
        }
    }

    /// Answers with a server-generated error and closes the connection.
    pub(super) fn refuse(&mut self, idx: usize, status: u16) {
        let date = self.date.now();
        if let Some(conn) = self.conns.get_mut(idx) {
            let mut out = Vec::with_capacity(192);
            http::write_simple_response(&mut out, status, &date, true);
            let _ = sys::send_all(
                conn.stream.raw_fd(),
                &[&out],
                self.config.limits.http_timeout,
            );
        }
        self.close(idx);
    }

    /// Serves the complete request buffered on connection `idx`.
    pub(super) fn serve(&mut self, gil: &Gil<'_>, idx: usize) {
        let wall = wall_us();
        let date = self.date.at(wall / 1_000_000);
        // Static files first: answered without Python (see static_hook.rs).
        if let Some(done) = self.serve_static(idx, &date) {
            self.after_request(idx, done.served, done.finished, done.keep_alive);
            return;
        }
        let limits = self.config.limits;
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let State::Ready { .. } = conn.state else {
            return;
        };
        let body = std::mem::take(&mut conn.body);
        let buf = &conn.buf;
        let (head, _head_len, label, version, keep_alive) = match conn.protocol {
            Protocol::Http => {
                let h = &conn.head;
                let label = Label {
                    method: &buf[h.method.clone()],
                    target: &buf[h.target.clone()],
                };
                (Head::Http(h), h.head_len, label, h.version(), h.keep_alive)
            }
            Protocol::Uwsgi => {
                let p = &conn.packet;
                let var = |k: &[u8]| uwsgi::var(buf, p, k);
                let label = Label {
                    method: var(b"REQUEST_METHOD").unwrap_or(b"GET"),
                    target: var(b"REQUEST_URI")
                        .or_else(|| var(b"PATH_INFO"))
                        .unwrap_or(b"/"),
                };
                let version = match var(b"SERVER_PROTOCOL") {
                    Some(b"HTTP/1.1") => Version::Http11,
                    _ => Version::Http10,
                };
                // nginx reads a uwsgi response to the close: one request per connection.
                (Head::Uwsgi(p), p.head_len, label, version, false)
            }
        };
        let params = ResponseParams {
            fd: conn.stream.raw_fd(),
            timeout: limits.http_timeout,
            version,
            head_only: label.method == b"HEAD",
            keep_alive: keep_alive && !self.stopping && !conn.eof,
            close_delimited: conn.protocol == Protocol::Uwsgi,
            date,
        };
        let started = Instant::now();
        self.slot.set_label(&[label.method, b" ", label.target]);
        // Monotonic, for harakiri: a wall clock stepped forward (a VM
        // resumed, NTP at boot) must not look like a request running long.
        self.slot.begin_request(sys::monotonic_usec());
        let outcome = self.bridge.call(
            gil,
            Request {
                buf,
                head,
                body,
                conn: &conn.info,
            },
            params,
            &label,
        );
        let finished = Instant::now();
        let micros = finished.duration_since(started).as_micros() as u64;
        let served = self.slot.end_request(
            outcome.body_bytes,
            outcome.exception,
            outcome.status,
            micros,
        );
        super::access::log_request(
            self.config,
            conn,
            &super::access::Served {
                method: label.method,
                uri: label.target,
                proto: version.as_str(),
                outcome: &outcome,
                micros,
                wid: self.id,
            },
            &mut self.log_line,
        );
        self.after_request(idx, served, finished, outcome.keep_alive);
    }

    /// After a response: recycling, then the connection's next request
    /// (or its close).
    fn after_request(&mut self, idx: usize, served: u64, finished: Instant, keep_alive: bool) {
        let limits = self.config.limits;
        if let Some(reason) = self.recycler.after_request(served, self.slot, finished) {
            log::info!(
                "worker {} asks to be recycled ({}) after {served} request(s)",
                self.id,
                reason.flag()
            );
            let notice = Notice::Retire(reason).encode(self.slot_index, sys::getpid());
            if let Err(e) = sys::write_pipe(self.notify_fd, &notice) {
                log::warn!("worker {}: cannot notify the master: {e}", self.id);
            }
        }
        if !keep_alive {
            self.close(idx);
            return;
        }
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        conn.consume_request();
        conn.deadline = finished + limits.keepalive_timeout;
        let watched = conn.watched;
        // Pipelined bytes may already hold the next request; it waits for the
        // next round so other connections get their turn first.
        let progress = conn.read_and_parse(&limits);
        if !conn.is_idle() {
            conn.deadline = finished + limits.http_timeout;
        }
        if !watched {
            self.watch(idx); // a kept-alive connection waits for its next request
        }
        self.on_progress(idx, progress);
    }
}
