//! The response side of one request: the head the app set with
//! `start_response`, the framing we choose for it, and sending bytes to the
//! client (blocking with a timeout, DESIGN §1). Shared by `write()` and the
//! result iteration, so both go through one state machine.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::protocol::http::Version;
use crate::sys;

/// Per-request facts the worker knows before the app runs.
#[derive(Debug, Clone, Copy)]
pub struct ResponseParams {
    pub fd: RawFd,
    pub timeout: Duration,
    pub version: Version,
    /// HEAD: headers only, whatever the app returns.
    pub head_only: bool,
    /// Whether the connection may stay open (client asked, server allows).
    pub keep_alive: bool,
    /// The peer reads the body until the connection closes (uwsgi behind
    /// nginx): never chunk, send no Connection header.
    pub close_delimited: bool,
    pub date: [u8; crate::protocol::date::DATE_LEN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// HTTP/1.0 with unknown length: the close of the connection ends the body.
    Close,
    NoBody,
}

pub struct Response {
    params: ResponseParams,
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
}

/// A send to the client failed: the client went away or was too slow.
#[derive(Debug)]
pub struct ClientGone(pub io::Error);

impl Response {
    pub fn new() -> Response {
        Response {
            params: ResponseParams {
                fd: -1,
                timeout: Duration::from_secs(60),
                version: Version::Http11,
                head_only: false,
                keep_alive: false,
                close_delimited: false,
                date: [b' '; crate::protocol::date::DATE_LEN],
            },
            started: false,
            status: 0,
            head: Vec::with_capacity(512),
            app_length: None,
            head_sent: false,
            framing: Framing::NoBody,
            body_bytes: 0,
            must_close: false,
        }
    }

    /// Resets for a new request.
    pub fn begin(&mut self, params: ResponseParams) {
        self.params = params;
        self.started = false;
        self.status = 0;
        self.head.clear();
        self.app_length = None;
        self.head_sent = false;
        self.framing = Framing::NoBody;
        self.body_bytes = 0;
        self.must_close = !params.keep_alive;
    }

    /// Starts (or, for `exc_info`, restarts) the head with a status line.
    /// `status` is the app's status string, already validated (`NNN reason`).
    pub fn set_status(&mut self, code: u16, status: &[u8]) {
        self.started = true;
        self.status = code;
        self.app_length = None;
        self.head.clear();
        self.head
            .extend_from_slice(self.params.version.as_str().as_bytes());
        self.head.push(b' ');
        self.head.extend_from_slice(status);
        self.head.extend_from_slice(b"\r\n");
    }

    /// Adds one app header (name and value already validated).
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.app_length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
        self.head.extend_from_slice(name);
        self.head.extend_from_slice(b": ");
        self.head.extend_from_slice(value);
        self.head.extend_from_slice(b"\r\n");
    }

    fn bodyless_status(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// Appends framing, Date and Connection headers and the blank line.
    /// `known_len` is the body length when the whole body is already known.
    fn finish_head(&mut self, known_len: Option<u64>) {
        let p = self.params;
        self.framing = if self.bodyless_status() {
            Framing::NoBody
        } else if let Some(n) = self.app_length {
            Framing::Length(n)
        } else if let Some(n) = known_len {
            self.head.extend_from_slice(b"Content-Length: ");
            self.head.extend_from_slice(n.to_string().as_bytes());
            self.head.extend_from_slice(b"\r\n");
            Framing::Length(n)
        } else if p.head_only {
            Framing::NoBody
        } else if p.version == Version::Http11 && !p.close_delimited {
            self.head
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            Framing::Chunked
        } else {
            self.must_close = true;
            Framing::Close
        };
        self.head.extend_from_slice(b"Date: ");
        self.head.extend_from_slice(&p.date);
        self.head.extend_from_slice(b"\r\n");
        if p.close_delimited {
            // nginx reads to the close; Connection headers mean nothing here.
        } else if self.must_close {
            if p.version == Version::Http11 {
                self.head.extend_from_slice(b"Connection: close\r\n");
            }
        } else if p.version == Version::Http10 {
            self.head.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        self.head.extend_from_slice(b"\r\n");
    }

    fn send(&mut self, bufs: &[&[u8]]) -> Result<(), ClientGone> {
        sys::send_all(self.params.fd, bufs, self.params.timeout).map_err(|e| {
            self.must_close = true;
            ClientGone(e)
        })
    }

    /// Sends the whole body at once (a list result): one gathered write with
    /// the head and an exact Content-Length.
    pub fn send_all_body(&mut self, items: &[&[u8]]) -> Result<(), ClientGone> {
        let total: u64 = items.iter().map(|b| b.len() as u64).sum();
        if self.head_sent {
            for item in items {
                self.send_body(item)?;
            }
            return Ok(());
        }
        self.finish_head(Some(total));
        self.head_sent = true;
        let head = std::mem::take(&mut self.head);
        let result = if self.params.head_only || self.framing == Framing::NoBody {
            self.send(&[&head])
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
            self.send(&bufs)
        };
        self.head = head;
        result
    }

    /// Never send more than the app's Content-Length promised; a short or
    /// long body means the connection cannot be reused.
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

    /// Sends one body chunk (from `write()` or an iterated item), sending the
    /// head first if it has not gone yet.
    pub fn send_body(&mut self, data: &[u8]) -> Result<(), ClientGone> {
        if data.is_empty() {
            return Ok(());
        }
        let head_first = !self.head_sent;
        if head_first {
            self.finish_head(None);
            self.head_sent = true;
        }
        let head = if head_first {
            std::mem::take(&mut self.head)
        } else {
            Vec::new()
        };
        let result = match self.framing {
            _ if self.params.head_only => self.send(&[&head]),
            Framing::NoBody => self.send(&[&head]),
            Framing::Chunked => {
                let size = format!("{:x}\r\n", data.len());
                self.body_bytes += data.len() as u64;
                self.send(&[&head, size.as_bytes(), data, b"\r\n"])
            }
            Framing::Length(_) | Framing::Close => {
                let n = self.clip(data.len() as u64) as usize;
                self.body_bytes += n as u64;
                self.send(&[&head, &data[..n]])
            }
        };
        if head_first {
            self.head = head;
        }
        result
    }

    /// Sends `len` bytes of an open file from `offset` with sendfile(2),
    /// framed with an exact Content-Length when the head has not gone yet.
    pub fn send_file(&mut self, file_fd: RawFd, offset: u64, len: u64) -> Result<(), ClientGone> {
        if !self.head_sent {
            self.finish_head(Some(len));
            self.head_sent = true;
            let head = std::mem::take(&mut self.head);
            let r = self.send(&[&head]);
            self.head = head;
            r?;
        }
        if self.params.head_only || self.framing == Framing::NoBody {
            return Ok(());
        }
        if self.framing == Framing::Chunked {
            // The head already promised chunks (write() came first): frame it.
            let size = format!("{len:x}\r\n");
            self.send(&[size.as_bytes()])?;
            self.sendfile_raw(file_fd, offset, len)?;
            return self.send(&[b"\r\n"]);
        }
        let len = self.clip(len);
        self.sendfile_raw(file_fd, offset, len)
    }

    fn sendfile_raw(&mut self, file_fd: RawFd, offset: u64, len: u64) -> Result<(), ClientGone> {
        match sys::send_file(self.params.fd, file_fd, offset, len, self.params.timeout) {
            Ok(n) => {
                self.body_bytes += n;
                if n < len {
                    self.must_close = true; // the file shrank: the length was a lie
                }
                Ok(())
            }
            Err(e) => {
                self.must_close = true;
                Err(ClientGone(e))
            }
        }
    }

    /// Ends the response: sends a head not yet sent (empty body) or the last chunk.
    pub fn finish(&mut self) -> Result<(), ClientGone> {
        if !self.head_sent {
            self.send_all_body(&[])?;
        }
        match self.framing {
            Framing::Chunked if !self.params.head_only => self.send(&[b"0\r\n\r\n"]),
            Framing::Length(n) if self.body_bytes < n && !self.params.head_only => {
                // The app sent less than it promised: the client would wait
                // for the rest, so the connection ends here.
                self.must_close = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends a server-generated error response instead of the app's (only
    /// possible before any byte of the head went out).
    pub fn send_error(&mut self, status: u16) -> Result<(), ClientGone> {
        self.must_close = true;
        self.status = status;
        self.head_sent = true;
        let mut out = Vec::with_capacity(160);
        crate::protocol::http::write_simple_response(&mut out, status, &self.params.date, true);
        if self.params.head_only {
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                out.truncate(end + 4);
            }
        }
        self.send(&[&out])
    }
}
