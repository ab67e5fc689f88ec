//! One client connection: its socket, its read buffer and where it is in the
//! request cycle. Reading and parsing never block; a request is handed to the
//! app only once its head and whole body are here.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use mio::net::{TcpStream, UnixStream};

use super::job::Lent;
use super::outbound::Outbound;
use crate::body::Body;
use crate::config::{Limits, Protocol};
use crate::protocol::chunked;
use crate::protocol::http::{self, BodyFraming, HttpError, Parsed, RequestHead};
use crate::protocol::uwsgi::{self, Packet, UwsgiError};
use crate::wsgi::ConnInfo;

/// Read granularity; a typical request head fits in one read.
const READ_CHUNK: usize = 16 * 1024;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// The same socket on a descriptor numbered 3 or more: one that landed
    /// on 0–2 (the app closed that fd) is moved, and /dev/null put back, so
    /// whatever writes to "stdout" or "stderr" never reaches a client.
    pub fn above_std_fds(self) -> io::Result<Stream> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        if self.raw_fd() > 2 {
            return Ok(self);
        }
        let (fd, tcp) = match self {
            Stream::Tcp(s) => (s.into_raw_fd(), true),
            Stream::Unix(s) => (s.into_raw_fd(), false),
        };
        let high = crate::sys::lift_above_std(fd)?;
        // SAFETY: `high` is a fresh duplicate of the accepted socket that
        // nothing else owns (the low number now holds /dev/null).
        Ok(unsafe {
            if tcp {
                Stream::Tcp(TcpStream::from_raw_fd(high))
            } else {
                Stream::Unix(UnixStream::from_raw_fd(high))
            }
        })
    }

    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

/// Where the connection is in the request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for (more of) a request head; idle if the buffer is empty.
    Head,
    /// Head parsed (it occupies `buf[..head]`); body bytes after it are moved
    /// into `Conn::body` as they arrive.
    Body { head: usize },
    /// A complete request: its head is `buf[..head]`, its body in `Conn::body`.
    Ready { head: usize },
}

/// How the body still to come is framed.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(chunked::Decoder),
}

/// What reading made of the connection.
#[derive(Debug)]
pub enum Progress {
    /// Nothing complete yet.
    Waiting,
    /// A complete request is buffered.
    Ready,
    /// The head is parsed and the client expects `100 Continue` before the body.
    WantsContinue,
    /// The request is refused: answer with this error and close.
    Refused(HttpError),
    /// The body is larger than `--limit-post` (413).
    TooLarge { length: u64, limit: u64 },
    /// The peer closed or the socket failed: drop the connection.
    Closed,
    /// The peer closed with `got` bytes of an incomplete request sent.
    Truncated { got: usize },
    /// The body could not be stored (temp file): answer 500 and close.
    SpoolFailed(io::Error),
    /// A uwsgi PING: answer it and close.
    Ping,
    /// A malformed uwsgi packet: log and close.
    BadPacket(UwsgiError),
    /// A uwsgi packet for a modifier we do not serve: log and close.
    BadModifier(u8, u8),
}

/// A connection's allocations, kept by the worker when the connection closes
/// and given to the next one, so a connection (behind nginx: a request) costs
/// no heap allocation for its read buffer, parsed head or address strings.
#[derive(Default)]
pub struct Buffers {
    pub info: ConnInfo,
    buf: Vec<u8>,
    packet: Packet,
    head: RequestHead,
}

/// Buffers larger than this (a big request head) are freed, not kept.
const KEEP_BUFFER: usize = 64 << 10;

pub struct Conn {
    pub stream: Stream,
    pub protocol: Protocol,
    /// The parsed head of the current request (the one `protocol` speaks).
    pub packet: Packet,
    pub info: ConnInfo,
    pub buf: Vec<u8>,
    pub head: RequestHead,
    pub state: State,
    /// The body of the current request, as received so far.
    pub body: Body,
    framing: Framing,
    /// When the connection times out (idle, or a request too slow to arrive).
    pub deadline: Instant,
    /// When the head of the request in progress must be complete by
    /// (`--http-timeout` after its first byte), however steadily it drips.
    pub head_by: Instant,
    /// Body bytes beyond this many in memory go to a temp file: the lower of
    /// `--post-buffering` and what the worker's `--body-memory` leaves.
    pub spool_above: usize,
    /// This connection's share of the worker's body-memory total.
    pub mem_counted: usize,
    /// The socket may have more bytes than we took (edge-triggered readiness).
    pub readable: bool,
    pub sent_continue: bool,
    /// Registered with epoll (only once it had to wait for bytes).
    pub watched: bool,
    /// The peer has closed its side: answer what is buffered, then close.
    pub eof: bool,
    /// Where the connection is in serving a request (see [`Phase`]).
    pub phase: Phase,
    /// The output side; `None` while an app thread has it.
    pub out: Option<Box<Outbound>>,
    /// The box the request's buffers travel in to an app thread (kept, so
    /// lending costs no allocation after the first request).
    lent: Option<Box<Lent>>,
    /// Registered with epoll for writability (a response is being drained).
    pub writing: bool,
    limits: http::Limits,
}

/// Where a connection is in serving a request.
pub enum Phase {
    /// Reading and parsing (the request `State` says how far).
    Reading,
    /// A complete request waits for a free app thread.
    Queued,
    /// An app thread has the request (and the connection's buffers).
    InApp,
    /// The app is done for now; the I/O side sends what is queued, then
    /// carries on as `After` says.
    Draining(After),
}

/// What follows once a response's queued bytes are sent.
pub enum After {
    /// The response is complete: log it, then keep the connection or close it.
    Finish(crate::wsgi::Outcome),
    /// A streamed response was suspended: ask an app thread for more.
    Resume(crate::wsgi::Stream),
}

impl Conn {
    pub fn new(
        stream: Stream,
        protocol: Protocol,
        spare: Buffers,
        deadline: Instant,
        limits: &Limits,
    ) -> Conn {
        Conn {
            limits: http::Limits {
                max_head: limits.buffer_size,
                max_headers: limits.max_headers,
            },
            stream,
            protocol,
            packet: spare.packet,
            info: spare.info,
            buf: spare.buf,
            head: spare.head,
            state: State::Head,
            body: Body::default(),
            framing: Framing::Length(0),
            deadline,
            head_by: deadline,
            spool_above: limits.post_buffering,
            mem_counted: 0,
            readable: true,
            sent_continue: false,
            watched: false,
            eof: false,
            phase: Phase::Reading,
            out: None,
            lent: None,
            writing: false,
        }
    }

    /// Moves the complete request's buffers out for an app thread.
    pub fn lend(&mut self) -> Box<Lent> {
        let mut lent = self.lent.take().unwrap_or_default();
        std::mem::swap(&mut lent.buf, &mut self.buf);
        std::mem::swap(&mut lent.head, &mut self.head);
        std::mem::swap(&mut lent.packet, &mut self.packet);
        std::mem::swap(&mut lent.info, &mut self.info);
        lent.body = std::mem::take(&mut self.body);
        lent
    }

    /// Takes the buffers back from a finished app call.
    pub fn restore(&mut self, mut lent: Box<Lent>) {
        std::mem::swap(&mut lent.buf, &mut self.buf);
        std::mem::swap(&mut lent.head, &mut self.head);
        std::mem::swap(&mut lent.packet, &mut self.packet);
        std::mem::swap(&mut lent.info, &mut self.info);
        lent.body = Body::default();
        self.lent = Some(lent);
    }

    /// The parsed request, read-only.
    pub fn view(&self) -> super::session::RequestView<'_> {
        super::session::RequestView {
            protocol: self.protocol,
            buf: &self.buf,
            head: &self.head,
            packet: &self.packet,
        }
    }

    /// Closes the connection and returns its allocations for reuse, unless
    /// its buffer grew too big to keep.
    pub fn into_buffers(self) -> Option<Buffers> {
        let Conn {
            mut buf,
            info,
            packet,
            head,
            ..
        } = self;
        if buf.capacity() > KEEP_BUFFER {
            return None;
        }
        buf.clear();
        Some(Buffers {
            info,
            buf,
            packet,
            head,
        })
    }

    /// No request is in progress (between requests on a keep-alive connection).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.buf.is_empty()
    }

    /// Reads what the socket has (until it would block, or until a complete
    /// request plus one head's worth is buffered) and advances the state.
    /// Body bytes leave the read buffer as they are parsed, so a large upload
    /// is read in bounded steps.
    pub fn read_and_parse(&mut self, limits: &Limits) -> Progress {
        let mut peer_closed = self.eof;
        loop {
            while self.readable {
                let cap = match self.state {
                    State::Head => limits.buffer_size + READ_CHUNK,
                    State::Body { head } => head + 4 * READ_CHUNK,
                    State::Ready { head } => head + limits.buffer_size,
                };
                if self.buf.len() >= cap {
                    break; // enough for now; `readable` stays set to come back later
                }
                let want = READ_CHUNK.min(cap - self.buf.len()).max(1);
                match crate::sys::read_into(self.stream.raw_fd(), &mut self.buf, want) {
                    Ok(0) => {
                        self.readable = false;
                        peer_closed = true;
                        self.eof = true;
                    }
                    // A short read drained the socket: the next arrival is a
                    // new edge (or is reported when the socket is registered),
                    // so another read now would only return EAGAIN.
                    Ok(n) if n < want => self.readable = false,
                    Ok(_) => {}
                    Err(e) => match e.kind() {
                        io::ErrorKind::WouldBlock => self.readable = false,
                        io::ErrorKind::Interrupted => {}
                        _ => return Progress::Closed,
                    },
                }
            }
            let progress = self.parse(limits);
            let body_in_progress = matches!(self.state, State::Body { .. });
            match progress {
                // A half-sent request from a peer that closed can never complete.
                Progress::Waiting | Progress::WantsContinue if peer_closed => {
                    return if self.is_idle() {
                        Progress::Closed
                    } else {
                        Progress::Truncated {
                            got: self.buf.len() + self.body.len() as usize,
                        }
                    };
                }
                // Mid-body with more to read: the parse made room, read on.
                Progress::Waiting if self.readable && body_in_progress => continue,
                p => return p,
            }
        }
    }

    /// Advances the state machine over what is buffered.
    pub fn parse(&mut self, limits: &Limits) -> Progress {
        if self.state == State::Head {
            if self.buf.is_empty() {
                return Progress::Waiting;
            }
            let (head, framing) = match self.protocol {
                Protocol::Http => match self.parse_http_head() {
                    Ok(v) => v,
                    Err(p) => return p,
                },
                Protocol::Uwsgi => match self.parse_uwsgi_head(limits) {
                    Ok(v) => v,
                    Err(p) => return p,
                },
            };
            if let Framing::Length(n) = framing {
                if limits.limit_post > 0 && n > limits.limit_post {
                    return Progress::TooLarge {
                        length: n,
                        limit: limits.limit_post,
                    };
                }
            }
            self.framing = framing;
            self.body = Body::default();
            self.sent_continue = false;
            self.state = State::Body { head };
        }
        if let State::Body { head } = self.state {
            let done = match self.take_body(head, limits) {
                Ok(done) => done,
                Err(p) => return p,
            };
            if limits.limit_post > 0 && self.body.len() > limits.limit_post {
                return Progress::TooLarge {
                    length: self.body.len(),
                    limit: limits.limit_post,
                };
            }
            if done {
                self.state = State::Ready { head };
            } else if self.protocol == Protocol::Http
                && self.head.expect_continue
                && !self.sent_continue
                && self.body.is_empty()
            {
                return Progress::WantsContinue;
            } else {
                return Progress::Waiting;
            }
        }
        Progress::Ready
    }

    /// Moves the body bytes buffered after the head into `self.body`;
    /// true once the body is complete.
    fn take_body(&mut self, head: usize, limits: &Limits) -> Result<bool, Progress> {
        let data = &self.buf[head..];
        let threshold = self.spool_above.min(limits.post_buffering);
        let (consumed, done) = match &mut self.framing {
            Framing::Length(left) => {
                let take = (*left).min(data.len() as u64) as usize;
                self.body
                    .push(&data[..take], threshold)
                    .map_err(Progress::SpoolFailed)?;
                *left -= take as u64;
                (take, *left == 0)
            }
            Framing::Chunked(decoder) => {
                let mut out = Vec::new();
                let r = decoder.decode(data, &mut out);
                self.body
                    .push(&out, threshold)
                    .map_err(Progress::SpoolFailed)?;
                match r {
                    chunked::Decoded::Done { consumed } => (consumed, true),
                    chunked::Decoded::NeedMore => (data.len(), false),
                    chunked::Decoded::Error(why) => {
                        return Err(Progress::Refused(HttpError::BadChunked(why)))
                    }
                }
            }
        };
        self.buf.drain(head..head + consumed);
        Ok(done)
    }

    /// Parses an HTTP head: (head length, body framing).
    fn parse_http_head(&mut self) -> Result<(usize, Framing), Progress> {
        match http::parse_head(&self.buf, &self.limits, &mut self.head) {
            Parsed::Partial => return Err(Progress::Waiting),
            Parsed::Error(e) => return Err(Progress::Refused(e)),
            Parsed::Complete => {}
        }
        let framing = match self.head.body_framing() {
            BodyFraming::None => Framing::Length(0),
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked(chunked::Decoder::new()),
        };
        Ok((self.head.head_len, framing))
    }

    /// Parses a uwsgi packet head: (head length, body framing).
    fn parse_uwsgi_head(&mut self, limits: &Limits) -> Result<(usize, Framing), Progress> {
        match uwsgi::parse_packet(&self.buf, limits.buffer_size, &mut self.packet) {
            uwsgi::Parsed::Partial => Err(Progress::Waiting),
            uwsgi::Parsed::Error(e) => Err(Progress::BadPacket(e)),
            uwsgi::Parsed::Complete => match self.packet.modifier1 {
                uwsgi::MODIFIER_WSGI => Ok((
                    self.packet.head_len,
                    Framing::Length(self.packet.content_length),
                )),
                uwsgi::MODIFIER_PING => Err(Progress::Ping),
                m => Err(Progress::BadModifier(m, self.packet.modifier2)),
            },
        }
    }

    /// Drops the served request from the buffer; pipelined bytes stay.
    pub fn consume_request(&mut self) {
        if let State::Ready { head } = self.state {
            self.buf.drain(..head.min(self.buf.len()));
        }
        self.state = State::Head;
        if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() < READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK); // a big upload should not pin memory
        }
    }
}
