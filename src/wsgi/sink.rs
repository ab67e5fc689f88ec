//! Where a response goes. The bridge never touches a socket (DESIGN §4): it
//! emits the head and body into a [`Sink`] the worker provides, which sends
//! what the socket takes now and queues the rest for the worker's I/O side.

use std::io;
use std::os::fd::OwnedFd;

/// Whether the app may produce more output now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Below the connection's bound: go on.
    Open,
    /// The client is slower than the app: stop producing until it drains.
    Full,
}

/// The client went away (or the connection failed): nothing more can be sent.
#[derive(Debug)]
pub struct Gone(pub io::Error);

/// A connection's output side, as the bridge sees it.
pub trait Sink: Send + Sync {
    /// Sends or queues `bufs` in order. Never blocks.
    fn send(&mut self, bufs: &[&[u8]]) -> Result<Flow, Gone>;
    /// Queues `len` bytes of `file` from `offset`, sent after what is queued
    /// (sendfile, by the I/O side when the client is slow).
    fn send_file(&mut self, file: OwnedFd, offset: u64, len: u64) -> Result<(), Gone>;
    /// Waits (without the GIL: the caller releases it) until the queue is
    /// below the bound, for `write()`, whose caller cannot be suspended.
    fn wait_drained(&mut self) -> Result<(), Gone>;
    /// The sink as `Any`, so the worker gets its own type back.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}
