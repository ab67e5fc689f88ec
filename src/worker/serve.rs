//! The I/O side of the request cycle: a parsed request becomes a job for an
//! app thread; its completion is logged and counted, and its output drained
//! to the client without blocking; then the connection reads its next
//! request, resumes a suspended stream, or closes.

use std::time::Instant;

use super::conn::{After, Phase, Progress};
use super::connections::Connections;
use super::job::{Completion, Job, Result as JobResult, Work};
use super::outbound::Outbound;
use super::session::{conn_kind, cut_level, peer};
use crate::protocol::http::HttpError;
use crate::protocol::response::{self as wire, Meta};
use crate::protocol::uwsgi;
use crate::supervise::Notice;
use crate::sys;
use crate::wsgi::{Outcome, Sink, Stream};

impl Connections<'_> {
    /// Acts on what reading made of connection `idx`.
    pub fn on_progress(&mut self, idx: usize, progress: Progress) {
        match progress {
            Progress::Waiting => {}
            Progress::Ready => self.request_ready(idx),
            Progress::WantsContinue => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    conn.sent_continue = true;
                }
                self.send_now(idx, &[wire::CONTINUE]);
            }
            Progress::Refused(e) => {
                self.log_refusal(idx, &e);
                self.refuse(idx, e.status());
            }
            Progress::TooLarge { length, limit } => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    log::warn!(
                        "refused a request body of {length} bytes from {}: larger than --limit-post {limit}",
                        peer(&conn.info.remote_addr)
                    );
                }
                self.refuse(idx, 413);
            }
            Progress::Closed => self.close(idx),
            Progress::Truncated { got } => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    log::log!(
                        cut_level(conn.protocol),
                        "closing {} from {}: the peer closed it after {got} byte(s), before a complete request",
                        conn_kind(conn.protocol),
                        peer(&conn.info.remote_addr)
                    );
                }
                self.close(idx);
            }
            Progress::SpoolFailed(e) => {
                log::error!("{e} (see --post-buffering)");
                self.refuse(idx, 500);
            }
            Progress::Ping => {
                self.send_now(idx, &[&uwsgi::ping_response()]);
                self.finish_after_drain(idx);
            }
            Progress::BadPacket(e) => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    log::warn!(
                        "closing a uwsgi connection from {}: {}",
                        peer(&conn.info.remote_addr),
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
                        peer(&conn.info.remote_addr)
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
        let addr = peer(&conn.info.remote_addr);
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

    /// Queues bytes of our own (100-continue, a refusal, a pong) on the
    /// connection's output; a failure closes it.
    fn send_now(&mut self, idx: usize, bufs: &[&[u8]]) {
        let Some(out) = self.conns.get_mut(idx).and_then(|c| c.out.as_mut()) else {
            return;
        };
        if out.send(bufs).is_err() {
            self.close(idx);
        }
    }

    /// Answers with a server-generated error and closes the connection once
    /// the answer is sent.
    pub fn refuse(&mut self, idx: usize, status: u16) {
        let date = self.date.now();
        let mut out = Vec::with_capacity(192);
        wire::simple(&mut out, status, &date, true, false);
        self.send_now(idx, &[&out]);
        self.finish_after_drain(idx);
    }

    /// Closes the connection once what is queued has gone out.
    fn finish_after_drain(&mut self, idx: usize) {
        let closing = Outcome {
            keep_alive: false,
            ..Outcome::default()
        };
        self.drain(idx, After::Finish(closing));
    }

    /// A complete request: hand it to an app thread (or to this one's turn).
    fn request_ready(&mut self, idx: usize) {
        let date = self.date.now();
        let stopping = self.stopping;
        let timeout = self.config.limits.http_timeout;
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let view = conn.view();
        let meta = Meta {
            version: view.version(),
            head_only: view.label().method == b"HEAD",
            keep_alive: view.keep_alive() && !stopping && !conn.eof,
            close_delimited: view.close_delimited(),
            date,
        };
        // Static files first: answered here, without Python.
        if self.serve_static(idx, &date, meta.keep_alive) {
            return;
        }
        self.uncount_body(idx);
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if self.slot.request_start_us() == 0 {
            self.slot.begin_request(sys::monotonic_usec());
        }
        let protocol = conn.protocol;
        let fd = conn.stream.raw_fd();
        let out = conn
            .out
            .take()
            .unwrap_or_else(|| Box::new(Outbound::new(fd, timeout)));
        let lent = conn.lend();
        conn.phase = Phase::Queued;
        self.submit(Job {
            conn: idx,
            work: Work::Request {
                lent,
                protocol,
                meta,
                out,
                queued: Instant::now(),
            },
        });
    }

    /// An app thread finished a job.
    pub fn on_completion(&mut self, c: Completion) {
        self.job_done();
        let now = Instant::now();
        let micros = now.saturating_duration_since(c.started).as_micros() as u64;
        let Some(conn) = self.conns.get_mut(c.conn) else {
            return;
        };
        if c.abandoned {
            // The client is gone: account for the request, then close.
            conn.phase = Phase::Reading;
            if let JobResult::Finished(outcome) = &c.result {
                if outcome.aborted {
                    sys::reset_on_close(conn.stream.raw_fd());
                }
                self.note_request_end(outcome, (micros, now), c.thread, c.conn);
            }
            self.close(c.conn);
            return;
        }
        if let Some(lent) = c.lent {
            conn.restore(lent);
        }
        if let Some(us) = c.waited_us {
            self.slot.add_queue_wait(us);
        }
        conn.out = c.out;
        if conn.out.is_none() {
            log::error!("worker {}: a response lost its connection state", self.id);
            conn.phase = Phase::Reading;
            self.close(c.conn);
            return;
        }
        match c.result {
            JobResult::Finished(outcome) => {
                self.note_request_end(&outcome, (micros, now), c.thread, c.conn);
                self.drain(c.conn, After::Finish(outcome));
            }
            JobResult::Suspended(stream) => self.drain(c.conn, After::Resume(stream)),
        }
    }

    /// Sends what is queued; once it is all out, carries on as `after` says.
    pub fn drain(&mut self, idx: usize, after: After) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let flushed = match conn.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(true),
        };
        match flushed {
            Ok(true) => self.proceed(idx, after),
            Ok(false) => {
                conn.phase = Phase::Draining(after);
                // --http-timeout bounds a client that stops reading.
                conn.deadline = sys::deadline(Instant::now(), self.config.limits.http_timeout);
                self.want_writable(idx, true);
            }
            Err(e) => {
                log::debug!(
                    "closing a connection from {}: the client went away during the response: {e}",
                    peer(&conn.info.remote_addr)
                );
                conn.phase = Phase::Reading;
                match after {
                    After::Resume(stream) => self.abandon(idx, stream),
                    After::Finish(_) => self.close(idx),
                }
            }
        }
    }

    /// The socket of a draining connection has room again.
    pub fn on_writable(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if let Phase::Draining(_) = conn.phase {
            let Phase::Draining(after) = std::mem::replace(&mut conn.phase, Phase::Reading) else {
                return;
            };
            self.drain(idx, after);
        }
    }

    fn proceed(&mut self, idx: usize, after: After) {
        match after {
            After::Finish(outcome) => self.finish_request(idx, &outcome),
            After::Resume(stream) => {
                let Some(conn) = self.conns.get_mut(idx) else {
                    return;
                };
                let Some(out) = conn.out.take() else {
                    self.abandon(idx, stream);
                    return;
                };
                conn.phase = Phase::InApp;
                self.submit(Job {
                    conn: idx,
                    work: Work::Resume { stream, out },
                });
            }
        }
    }

    /// A stream whose client left (or stopped reading) is closed by an app
    /// thread (its `close()` is Python). The connection stays, held by that
    /// job, until then: the request is still logged and counted, and ended
    /// on the scoreboard (else harakiri would see it running forever).
    pub fn abandon(&mut self, idx: usize, stream: Stream) {
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.phase = Phase::InApp;
        }
        self.submit(Job {
            conn: idx,
            work: Work::Abandon { stream },
        });
    }

    /// The response is all out: keep the connection for the next request,
    /// or close it (resetting it if the response was cut short).
    fn finish_request(&mut self, idx: usize, outcome: &Outcome) {
        let limits = self.config.limits;
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        conn.phase = Phase::Reading;
        if outcome.aborted {
            sys::reset_on_close(conn.stream.raw_fd());
        }
        if !outcome.keep_alive {
            self.close(idx);
            return;
        }
        let now = Instant::now();
        conn.consume_request();

        conn.deadline = sys::deadline(now, limits.keepalive_timeout);
        // The next request's head (pipelined bytes may hold some) must be
        // complete within --http-timeout.
        conn.head_by = sys::deadline(now, limits.http_timeout);
        if conn.is_idle() && !conn.readable && !conn.eof {
            // Nothing buffered and the socket drained: the next request is
            // a new readable event (the usual keep-alive case).
            if self.stopping {
                conn.deadline = conn.deadline.min(now + super::connections::STOP_IDLE_GRACE);
            }
            self.want_writable(idx, false);
            return;
        }
        let Some(progress) = self.read_request(idx, now) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if !conn.is_idle() {
            conn.deadline = sys::deadline(now, limits.http_timeout);
        } else if self.stopping {
            // The worker stops: a request already on its way still gets a
            // short grace, as at the start of the stop.
            conn.deadline = conn.deadline.min(now + super::connections::STOP_IDLE_GRACE);
        }
        self.want_writable(idx, false);
        self.on_progress(idx, progress);
    }

    /// Scoreboard, access log and recycling for a finished request.
    /// `took`: the request's duration in µs, and when it ended.
    pub fn note_request_end(
        &mut self,
        outcome: &Outcome,
        took: (u64, Instant),
        thread: usize,
        idx: usize,
    ) {
        let (micros, now) = took;
        let served = self.slot.end_request(
            outcome.body_bytes,
            outcome.exception,
            outcome.status,
            micros,
        );
        // Other threads may still be serving: the slot shows the oldest.
        if let Some(start) = self.oldest_in_flight() {
            self.slot.begin_request(start);
        }
        if let Some(conn) = self.conns.get_mut(idx) {
            super::access::log_request(
                self.config,
                conn,
                outcome,
                micros,
                (self.id, thread),
                &mut self.log_line,
            );
        }
        if let Some(reason) = self.recycler.after_request(served, self.slot, now) {
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
    }

    /// The start of the oldest request an app thread is serving.
    fn oldest_in_flight(&self) -> Option<u64> {
        self.cores
            .iter()
            .map(|c| c.request_start_us())
            .filter(|&start| start > 0)
            .min()
    }
}
