//! The unit of work an app thread takes: a complete request (its buffers lent
//! by the connection), or the rest of a streamed response whose client has
//! drained the connection. Run the same way by the I/O thread itself
//! (`--threads 1`) or by a pool thread; what comes back is a [`Completion`].

use std::time::Instant;

use super::outbound::Outbound;
use super::session::RequestView;
use crate::body::Body;
use crate::config::Protocol;
use crate::protocol::http::RequestHead;
use crate::protocol::response::Meta;
use crate::protocol::uwsgi::Packet;
use crate::scoreboard::Core;
use crate::wsgi::{Caller, ConnInfo, Done, Gil, Head, Outcome, Request, Sink, Stream};

/// A request's buffers, lent by its connection for the time of the call.
#[derive(Default)]
pub struct Lent {
    pub buf: Vec<u8>,
    pub head: RequestHead,
    pub packet: Packet,
    pub info: ConnInfo,
    pub body: Body,
}

impl Lent {
    pub fn view(&self, protocol: Protocol) -> RequestView<'_> {
        RequestView {
            protocol,
            buf: &self.buf,
            head: &self.head,
            packet: &self.packet,
        }
    }
}

pub enum Work {
    Request {
        lent: Box<Lent>,
        protocol: Protocol,
        meta: Meta,
        out: Box<Outbound>,
        /// When the request was complete and queued for a thread.
        queued: Instant,
    },
    /// The client drained what was queued: produce more of the stream.
    Resume { stream: Stream, out: Box<Outbound> },
    /// The client left mid-stream: `close()` the result.
    Abandon { stream: Stream },
}

pub struct Job {
    /// The connection's key in the worker's slab.
    pub conn: usize,
    pub work: Work,
}

/// What a job hands back to the I/O thread.
pub struct Completion {
    pub conn: usize,
    /// The request's buffers, returned (the body is consumed).
    pub lent: Option<Box<Lent>>,
    /// The connection's output side, with whatever the socket did not take.
    pub out: Option<Box<Outbound>>,
    pub result: Result,
    /// When the app call began (for the request's duration).
    pub started: Instant,
    /// How long a request waited for a free thread, µs (requests only).
    pub waited_us: Option<u64>,
    pub thread: usize,
    /// The job closed a stream whose client left: the connection waited
    /// for it only to log the request and close.
    pub abandoned: bool,
}

pub enum Result {
    Finished(Outcome),
    Suspended(Stream),
}

fn back(sink: Option<Box<dyn Sink>>) -> Option<Box<Outbound>> {
    let mut out = sink.and_then(|s| s.into_any().downcast::<Outbound>().ok())?;
    out.set_watch(None);
    Some(out)
}

/// Runs one job on the calling app thread (which holds the GIL).
pub fn run(caller: &mut Caller, gil: &Gil<'_>, core: &Core, thread: usize, job: Job) -> Completion {
    // A stream's slices are one response: its duration counts from the call.
    let started = match &job.work {
        Work::Resume { stream, .. } | Work::Abandon { stream } => stream.started(),
        Work::Request { .. } => Instant::now(),
    };
    let abandoned = matches!(job.work, Work::Abandon { .. });
    let mut waited_us = None;
    let (lent, (done, sink)) = match job.work {
        Work::Request {
            mut lent,
            protocol,
            meta,
            mut out,
            queued,
        } => {
            waited_us = Some(started.saturating_duration_since(queued).as_micros() as u64);
            let body = std::mem::take(&mut lent.body);
            let view = lent.view(protocol);
            let label = view.label();
            // Monotonic, for harakiri: a wall clock stepped forward must
            // not look like a request running long.
            core.begin(
                &[label.method, b" ", label.target],
                crate::sys::monotonic_usec(),
            );
            let head = match protocol {
                Protocol::Http => Head::Http(&lent.head),
                Protocol::Uwsgi => Head::Uwsgi(&lent.packet),
            };
            let req = Request {
                buf: &lent.buf,
                head,
                body,
                conn: &lent.info,
                started,
            };
            // Harakiri answers 504 on this connection if nothing was sent.
            let watch = crate::sys::Watch::of_thread(thread);
            watch.arm(out.fd());
            out.set_watch(Some(watch));
            let r = caller.call(gil, req, meta, out, &label);
            watch.disarm();
            core.end();
            (Some(lent), r)
        }
        // The rest of a stream is app time too: harakiri watches it.
        Work::Resume { stream, out } => {
            core.begin(&[stream.label().as_bytes()], crate::sys::monotonic_usec());
            let r = stream.resume(gil, out);
            core.end();
            (None, r)
        }
        Work::Abandon { stream } => {
            core.begin(&[stream.label().as_bytes()], crate::sys::monotonic_usec());
            let r = (Done::Finished(stream.abandon(gil)), None);
            core.end();
            (None, r)
        }
    };
    Completion {
        conn: job.conn,
        lent,
        out: back(sink),
        result: match done {
            Done::Finished(o) => Result::Finished(o),
            Done::Suspended(s) => Result::Suspended(s),
        },
        started,
        waited_us,
        thread,
        abandoned,
    }
}
