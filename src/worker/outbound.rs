//! A connection's output side: sends what the socket takes at once and
//! queues the rest (bytes, and file ranges for sendfile) for the I/O thread
//! to finish as the client reads. The app thread that produced a response is
//! free as soon as its output is handed over: a slow client costs a queue
//! bounded by [`OUT_BOUND`] for streamed bodies, never a thread.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::sys;
use crate::wsgi::{Flow, Gone, Sink};

/// Bytes queued for a slow client beyond which a streamed response is
/// suspended (its iterator resumes once the queue has drained).
pub const OUT_BOUND: usize = 256 * 1024;

enum Seg {
    Bytes {
        data: Vec<u8>,
        pos: usize,
    },
    File {
        file: OwnedFd,
        offset: u64,
        left: u64,
    },
}

pub struct Outbound {
    fd: RawFd,
    queue: VecDeque<Seg>,
    /// Bytes waiting in `Bytes` segments.
    queued: usize,
    /// An emptied byte buffer kept for the next queued bytes.
    spare: Vec<u8>,
    /// How long `write()` may wait for a client that reads nothing.
    timeout: Duration,
    failed: bool,
    /// The harakiri watch of the app thread producing into this output.
    watch: Option<&'static sys::Watch>,
}

impl Outbound {
    pub fn new(fd: RawFd, timeout: Duration) -> Outbound {
        Outbound {
            fd,
            queue: VecDeque::new(),
            queued: 0,
            spare: Vec::new(),
            timeout,
            failed: false,
            watch: None,
        }
    }

    /// The connection's descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Tells the app thread's harakiri watch when the response starts.
    pub fn set_watch(&mut self, watch: Option<&'static sys::Watch>) {
        self.watch = watch;
    }

    fn note_sent(&self) {
        if let Some(w) = self.watch {
            w.mark_sent();
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = true;
        self.queue.clear();
        self.queued = 0;
        e
    }

    /// Sends what the socket takes of the queue. `Ok(true)` once it is
    /// empty, `Ok(false)` when the socket is full; an error is final.
    pub fn flush(&mut self) -> io::Result<bool> {
        while let Some(seg) = self.queue.front_mut() {
            match seg {
                Seg::Bytes { data, pos } => match sys::try_send(self.fd, &[&data[*pos..]]) {
                    Ok(n) => {
                        *pos += n;
                        self.queued -= n;
                        if *pos == data.len() {
                            if let Some(Seg::Bytes { mut data, .. }) = self.queue.pop_front() {
                                if data.capacity() <= OUT_BOUND {
                                    data.clear();
                                    self.spare = data;
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(self.fail(e)),
                },
                Seg::File { file, offset, left } => {
                    match sys::try_send_file(self.fd, file.as_raw_fd(), offset, *left) {
                        Ok(0) => {
                            let e = io::Error::other("the file shrank while it was being sent");
                            return Err(self.fail(e));
                        }
                        Ok(n) => {
                            *left -= n as u64;
                            if *left == 0 {
                                self.queue.pop_front();
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(self.fail(e)),
                    }
                }
            }
        }
        Ok(true)
    }

    /// Queues `bufs` minus the first `skip` bytes (what the socket took).
    fn enqueue(&mut self, bufs: &[&[u8]], mut skip: usize) {
        for b in bufs {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            let rest = &b[skip..];
            skip = 0;
            self.queued += rest.len();
            if let Some(Seg::Bytes { data, .. }) = self.queue.back_mut() {
                data.extend_from_slice(rest);
                continue;
            }
            let mut data = std::mem::take(&mut self.spare);
            data.extend_from_slice(rest);
            self.queue.push_back(Seg::Bytes { data, pos: 0 });
        }
    }

    fn flow(&self) -> Flow {
        if self.queued >= OUT_BOUND {
            Flow::Full
        } else {
            Flow::Open
        }
    }
}

impl Sink for Outbound {
    fn send(&mut self, bufs: &[&[u8]]) -> Result<Flow, Gone> {
        if self.failed {
            return Err(Gone(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        self.note_sent();
        // Bytes still queued from before go first: the client may have read
        // since. Without this, a stream's items would wait behind them until
        // the bound fills or the stream ends (an event stream would stall).
        if !self.queue.is_empty() {
            self.flush().map_err(Gone)?;
        }
        let mut sent = 0;
        if self.queue.is_empty() {
            // One send: a short one means the socket is full (or the gather
            // was longer than the kernel's iovec limit); the rest is queued.
            match sys::try_send(self.fd, bufs) {
                Ok(n) => sent = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Gone(self.fail(e))),
            }
        }
        self.enqueue(bufs, sent);
        Ok(self.flow())
    }

    fn send_file(&mut self, file: OwnedFd, mut offset: u64, mut len: u64) -> Result<(), Gone> {
        if self.failed {
            return Err(Gone(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        self.note_sent();
        if !self.queue.is_empty() {
            self.flush().map_err(Gone)?;
        }
        if self.queue.is_empty() {
            while len > 0 {
                match sys::try_send_file(self.fd, file.as_raw_fd(), &mut offset, len) {
                    Ok(0) => {
                        let e = io::Error::other("the file shrank while it was being sent");
                        return Err(Gone(self.fail(e)));
                    }
                    Ok(n) => len -= n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(Gone(self.fail(e))),
                }
            }
        }
        if len > 0 {
            self.queue.push_back(Seg::File {
                file,
                offset,
                left: len,
            });
        }
        Ok(())
    }

    fn wait_drained(&mut self) -> Result<(), Gone> {
        loop {
            self.flush().map_err(Gone)?;
            if self.queued < OUT_BOUND {
                return Ok(());
            }
            // A client that reads nothing for --http-timeout is given up on.
            sys::wait_writable(self.fd, sys::deadline(Instant::now(), self.timeout))
                .map_err(|e| Gone(self.fail(e)))?;
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn sends_at_once_what_fits_and_queues_the_rest_in_order() {
        let (a, mut b) = pair();
        let mut out = Outbound::new(a.as_raw_fd(), Duration::from_secs(5));
        let big = vec![7u8; 4 << 20];
        let mut flow = Flow::Open;
        for _ in 0..3 {
            flow = out.send(&[b"head", &big]).unwrap();
        }
        assert_eq!(flow, Flow::Full, "12 MiB to a reader that reads nothing");
        assert!(!out.queue.is_empty());
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            b.read_to_end(&mut all).unwrap();
            all
        });
        while !out.flush().unwrap() {
            sys::wait_writable(a.as_raw_fd(), Instant::now() + Duration::from_secs(5)).unwrap();
        }
        drop(out);
        drop(a);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 3 * (4 + big.len()));
        assert_eq!(&all[..4], b"head");
        assert_eq!(&all[4 + big.len()..8 + big.len()], b"head");
    }

    #[test]
    fn bytes_queued_earlier_go_out_with_the_next_send() {
        let (a, mut b) = pair();
        let mut out = Outbound::new(a.as_raw_fd(), Duration::from_secs(5));
        // More than the socket takes, less than the bound: the app goes on.
        let flow = out.send(&[&vec![1u8; OUT_BOUND - 1]]).unwrap();
        assert_eq!(flow, Flow::Open);
        assert!(out.queued > 0, "the socket took it all");
        // The client reads all the socket has; then the app's next (small)
        // item comes: what waited goes out with it, not at the bound.
        b.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut read = 0;
        while let Ok(n) = b.read(&mut buf) {
            read += n;
        }
        assert!(read > 0);
        assert_eq!(out.send(&[b"event"]).unwrap(), Flow::Open);
        assert_eq!(out.queued, 0, "still queued after the client read");
        assert!(out.queue.is_empty());
    }

    #[test]
    fn a_gone_client_is_reported_and_nothing_is_kept() {
        let (a, b) = pair();
        drop(b);
        let mut out = Outbound::new(a.as_raw_fd(), Duration::from_secs(1));
        assert!(out.send(&[b"x"]).is_err());
        assert!(out.failed && out.queue.is_empty());
        assert!(out.send(&[b"y"]).is_err());
    }
}
