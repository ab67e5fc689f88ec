//! What differs between the two protocols once a request is parsed: its
//! label, version, whether the connection may be kept, and its headers.
//! Every protocol branch of the request cycle is here, in one place.

use std::fmt;

use crate::config::Protocol;
use crate::protocol::http::{RequestHead, Version};
use crate::protocol::uwsgi::{self, Packet};

/// A parsed request, read-only: the buffer its head's ranges point into.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    pub protocol: Protocol,
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    pub packet: &'a Packet,
}

impl<'a> RequestView<'a> {
    fn var(&self, key: &[u8]) -> Option<&'a [u8]> {
        uwsgi::var(self.buf, self.packet, key)
    }

    /// `METHOD target`, for logs and the scoreboard.
    pub fn label(&self) -> Label<'a> {
        match self.protocol {
            Protocol::Http => Label {
                method: &self.buf[self.head.method.clone()],
                target: &self.buf[self.head.target.clone()],
            },
            Protocol::Uwsgi => Label {
                method: self.var(b"REQUEST_METHOD").unwrap_or(b"GET"),
                target: self
                    .var(b"REQUEST_URI")
                    .or_else(|| self.var(b"PATH_INFO"))
                    .unwrap_or(b"/"),
            },
        }
    }

    pub fn version(&self) -> Version {
        match self.protocol {
            Protocol::Http => self.head.version(),
            Protocol::Uwsgi => match self.var(b"SERVER_PROTOCOL") {
                Some(b"HTTP/1.1") => Version::Http11,
                _ => Version::Http10,
            },
        }
    }

    /// The client allows another request on this connection. nginx reads a
    /// uwsgi response to the close: one request per connection there.
    pub fn keep_alive(&self) -> bool {
        match self.protocol {
            Protocol::Http => self.head.keep_alive,
            Protocol::Uwsgi => false,
        }
    }

    /// The peer reads the body until the connection closes (uwsgi).
    pub fn close_delimited(&self) -> bool {
        self.protocol == Protocol::Uwsgi
    }

    /// A request header by its HTTP name (lower-case) or, for uwsgi, its CGI name.
    pub fn header(&self, http: &[u8], cgi: &[u8]) -> Option<&'a [u8]> {
        match self.protocol {
            Protocol::Http => self
                .head
                .headers
                .iter()
                .find(|h| self.buf[h.name.clone()].eq_ignore_ascii_case(http))
                .map(|h| &self.buf[h.value.clone()]),
            Protocol::Uwsgi => self.var(cgi),
        }
    }

    /// The client as the access log names it: behind nginx (uwsgi) it is
    /// REMOTE_ADDR, not the socket peer.
    pub fn client<'b>(&self, socket_peer: &'b str) -> std::borrow::Cow<'b, str>
    where
        'a: 'b,
    {
        match self.protocol {
            Protocol::Uwsgi => self
                .var(b"REMOTE_ADDR")
                .map(String::from_utf8_lossy)
                .unwrap_or_default(),
            Protocol::Http => socket_peer.into(),
        }
    }
}

/// `METHOD target` of a request, formatted only when a log line needs it.
/// Client bytes are escaped: a log line never carries raw control bytes.
#[derive(Clone, Copy)]
pub struct Label<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            crate::log::Escaped(self.method),
            crate::log::Escaped(self.target)
        )
    }
}

/// A peer as logs name it (a unix socket peer has no address).
pub fn peer(remote_addr: &str) -> &str {
    if remote_addr.is_empty() {
        "a unix socket peer"
    } else {
        remote_addr
    }
}

/// What a log line calls a connection of this protocol.
pub fn conn_kind(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Uwsgi => "a uwsgi connection",
        Protocol::Http => "a connection",
    }
}

/// How loudly to report a connection cut mid-request: on a uwsgi socket the
/// peer is nginx, which does not stall or cut packets, so it is a warning.
pub fn cut_level(protocol: Protocol) -> log::Level {
    match protocol {
        Protocol::Uwsgi => log::Level::Warn,
        Protocol::Http => log::Level::Debug,
    }
}
