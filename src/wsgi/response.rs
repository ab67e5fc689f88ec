//! The response side of one request: the head the app set with
//! `start_response`, the framing chosen for it (by `protocol::response`), and
//! emitting bytes into the connection's [`Sink`]. Shared by `write()` and the
//! result iteration, so both go through one state machine.

use std::os::fd::OwnedFd;

use super::sink::{Flow, Gone, Sink};
use crate::protocol::response::{self as wire, Framing, Meta};

pub struct Response {
    meta: Meta,
    /// `start_response` has been called.
    pub started: bool,
    pub status: u16,
    /// Status line and the app's headers, without framing headers or the blank line.
    head: Vec<u8>,
    app_length: Option<u64>,
    pub head_sent: bool,
    framing: Framing,
    pub body_bytes: u64,
    /// The connection must be closed after this response.
    pub must_close: bool,
    /// The response was cut short after its head went out: the connection
    /// must end so that the peer sees an error, never a complete reply.
    pub aborted: bool,
    sink: Option<Box<dyn Sink>>,
}

fn gone() -> Gone {
    Gone(std::io::Error::other("the response has no connection"))
}

impl Response {
    pub fn new(meta: Meta) -> Response {
        Response {
            meta,
            started: false,
            status: 0,
            head: Vec::with_capacity(512),
            app_length: None,
            head_sent: false,
            framing: Framing::NoBody,
            body_bytes: 0,
            must_close: false,
            aborted: false,
            sink: None,
        }
    }

    /// Resets for a new request that writes into `sink`.
    pub fn begin(&mut self, meta: Meta, sink: Box<dyn Sink>) {
        self.meta = meta;
        self.started = false;
        self.status = 0;
        self.head.clear();
        self.app_length = None;
        self.head_sent = false;
        self.framing = Framing::NoBody;
        self.body_bytes = 0;
        self.must_close = !meta.keep_alive;
        self.aborted = false;
        self.sink = Some(sink);
    }

    /// Gives the sink back to the worker when the request is done.
    pub fn take_sink(&mut self) -> Option<Box<dyn Sink>> {
        self.sink.take()
    }

    /// Puts back a sink taken for a wait (`write()`).
    pub fn put_sink(&mut self, sink: Box<dyn Sink>) {
        self.sink = Some(sink);
    }

    /// Starts (or, for `exc_info`, restarts) the head with a status line.
    /// `status` is the app's status string, already validated (`NNN reason`).
    pub fn set_status(&mut self, code: u16, status: &[u8]) {
        self.started = true;
        self.status = code;
        self.app_length = None;
        self.head.clear();
        wire::status_line(&mut self.head, self.meta.version, status);
    }

    /// Adds one app header (name and value already validated; a
    /// Content-Length value is known to fit u64).
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.app_length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
        wire::header(&mut self.head, name, value);
    }

    fn finish_head(&mut self, known_len: Option<u64>) {
        let (framing, must_close) = wire::finish_head(
            &mut self.head,
            &self.meta,
            self.status,
            self.app_length,
            known_len,
            self.must_close,
        );
        self.framing = framing;
        self.must_close = must_close;
        self.head_sent = true;
    }

    fn emit(&mut self, bufs: &[&[u8]]) -> Result<Flow, Gone> {
        let Some(sink) = self.sink.as_mut() else {
            return Err(gone());
        };
        sink.send(bufs).inspect_err(|_| self.must_close = true)
    }

    /// The head is out and no body follows it (HEAD, 204, 304).
    pub fn bodyless(&self) -> bool {
        self.head_sent && self.framing == Framing::NoBody
    }

    /// Never send more than the app's Content-Length promised; a long body
    /// means the connection cannot be reused.
    fn clip(&mut self, len: u64) -> u64 {
        match self.framing {
            Framing::Length(max) => {
                let left = max.saturating_sub(self.body_bytes);
                if len > left {
                    self.must_close = true;
                }
                len.min(left)
            }
            _ => len,
        }
    }

    /// Emits the whole body at once (a list result): the head gets an exact
    /// Content-Length and goes out with the body in one gathered send.
    pub fn send_all_body(&mut self, items: &[&[u8]]) -> Result<Flow, Gone> {
        if self.head_sent {
            let mut flow = Flow::Open;
            for item in items {
                flow = self.send_body(item)?;
            }
            return Ok(flow);
        }
        let total: u64 = items.iter().map(|b| b.len() as u64).sum();
        self.finish_head(Some(total));
        let head = std::mem::take(&mut self.head);
        let result = if self.framing == Framing::NoBody {
            self.emit(&[&head])
        } else {
            let allowed = self.clip(total);
            let mut bufs: Vec<&[u8]> = Vec::with_capacity(items.len() + 1);
            bufs.push(&head);
            let mut left = allowed;
            for item in items {
                let n = (item.len() as u64).min(left) as usize;
                bufs.push(&item[..n]);
                left -= n as u64;
            }
            self.body_bytes += allowed;
            self.emit(&bufs)
        };
        self.head = head;
        result
    }

    /// Emits one body chunk (from `write()` or an iterated item), the head
    /// first if it has not gone yet.
    pub fn send_body(&mut self, data: &[u8]) -> Result<Flow, Gone> {
        if data.is_empty() {
            return Ok(Flow::Open);
        }
        let head_first = !self.head_sent;
        if head_first {
            self.finish_head(None);
        }
        let head = if head_first {
            std::mem::take(&mut self.head)
        } else {
            Vec::new()
        };
        let result = match self.framing {
            Framing::NoBody if head_first => self.emit(&[&head]),
            Framing::NoBody => Ok(Flow::Open),
            Framing::Chunked => {
                let size = wire::chunk_prefix(data.len());
                self.body_bytes += data.len() as u64;
                self.emit(&[&head, size.as_bytes(), data, wire::CHUNK_END])
            }
            Framing::Length(_) | Framing::Close => {
                let n = self.clip(data.len() as u64) as usize;
                self.body_bytes += n as u64;
                self.emit(&[&head, &data[..n]])
            }
        };
        if head_first {
            self.head = head;
        }
        result
    }

    /// Hands `len` bytes of an open file from `offset` to the sink
    /// (sendfile), framed with an exact Content-Length when the head has not
    /// gone yet.
    pub fn send_file(&mut self, file: OwnedFd, offset: u64, len: u64) -> Result<(), Gone> {
        if !self.head_sent {
            self.finish_head(Some(len));
            let head = std::mem::take(&mut self.head);
            let r = self.emit(&[&head]);
            self.head = head;
            r?;
        }
        let len = match self.framing {
            Framing::NoBody => return Ok(()),
            Framing::Chunked => {
                // The head already promised chunks (write() came first): frame it.
                let size = wire::chunk_prefix(len as usize);
                self.emit(&[size.as_bytes()])?;
                self.body_bytes += len;
                let Some(sink) = self.sink.as_mut() else {
                    return Err(gone());
                };
                sink.send_file(file, offset, len)?;
                return self.emit(&[wire::CHUNK_END]).map(|_| ());
            }
            _ => self.clip(len),
        };
        self.body_bytes += len;
        let Some(sink) = self.sink.as_mut() else {
            return Err(gone());
        };
        sink.send_file(file, offset, len)
    }

    /// Ends the response: emits a head not yet sent (empty body) or the last
    /// chunk. A body shorter than its Content-Length aborts the connection.
    pub fn finish(&mut self) -> Result<(), Gone> {
        if !self.head_sent {
            self.send_all_body(&[])?;
        }
        match self.framing {
            Framing::Chunked => self.emit(&[wire::LAST_CHUNK]).map(|_| ()),
            Framing::Length(n) if self.body_bytes < n => {
                // The app sent less than it promised: the client must not
                // take the short body for the whole one.
                self.must_close = true;
                self.aborted = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Ends a response the app failed in the middle of: the head is out, so
    /// the only honest signal left is an aborted connection.
    pub fn abort(&mut self) {
        self.must_close = true;
        self.aborted = true;
    }

    /// Sends a server-generated error response instead of the app's (only
    /// possible before any byte of the head went out).
    pub fn send_error(&mut self, status: u16) -> Result<(), Gone> {
        self.must_close = true;
        self.status = status;
        self.head_sent = true;
        self.framing = Framing::NoBody;
        let mut out = Vec::with_capacity(160);
        wire::simple(&mut out, status, &self.meta.date, true, self.meta.head_only);
        self.emit(&[&out]).map(|_| ())
    }
}
