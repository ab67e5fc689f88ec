//! Drives a connection's state machine over arbitrary bytes, for fuzzing and
//! tests: the bytes go through a real socket pair, so the read path is the
//! one clients exercise. The invariants: no panic, bounded buffering, and
//! every outcome is a served request, a wait for more, or a close.

use std::io::Write;
use std::time::{Duration, Instant};

use super::conn::{Conn, Progress, State, Stream};
use crate::config::{Limits, Protocol};

/// What one drive saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drive {
    /// Complete requests parsed (and consumed, as if served).
    pub requests: usize,
    /// The connection would be answered with an error or closed.
    pub closed: bool,
}

/// Feeds `input` (in pieces of `piece` bytes) to a connection speaking
/// `protocol` with small limits, serving every complete request.
pub fn drive(input: &[u8], piece: usize, protocol: Protocol) -> Drive {
    let limits = Limits {
        buffer_size: 4096,
        max_headers: 32,
        limit_post: 1 << 20,
        post_buffering: 8192,
        body_memory: 1 << 20,
        http_timeout: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(1),
    };
    let Ok((mut writer, reader)) = mio::net::UnixStream::pair() else {
        return Drive::default();
    };
    let mut conn = Conn::new(
        Stream::Unix(reader),
        protocol,
        super::conn::Buffers::default(),
        Instant::now(),
        &limits,
    );
    let mut seen = Drive::default();
    for chunk in input.chunks(piece.max(1)) {
        if writer.write_all(chunk).is_err() {
            break;
        }
        loop {
            conn.readable = true;
            let progress = conn.read_and_parse(&limits);
            // Bounded buffering whatever the input: a head's worth plus read-ahead.
            assert!(
                conn.buf.len() <= 2 * limits.buffer_size + 64 * 1024,
                "buffer grew to {}",
                conn.buf.len()
            );
            match progress {
                Progress::Ready => {
                    assert!(matches!(conn.state, State::Ready { .. }));
                    seen.requests += 1;
                    conn.body = crate::body::Body::default();
                    conn.consume_request();
                }
                Progress::Waiting | Progress::WantsContinue => break,
                _ => {
                    seen.closed = true;
                    return seen;
                }
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_requests_are_all_seen_at_any_piece_size() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for piece in [1, 2, 3, 7, 16, 64, 1000] {
            assert_eq!(
                drive(input, piece, Protocol::Http),
                Drive {
                    requests: 3,
                    closed: false
                },
                "piece {piece}"
            );
        }
    }

    #[test]
    fn garbage_closes() {
        let d = drive(b"\x00\x01\x02 nonsense\r\n\r\n", 5, Protocol::Http);
        assert!(d.closed);
        assert_eq!(d.requests, 0);
    }

    #[test]
    fn uwsgi_packets_are_seen() {
        let mut pkt = Vec::new();
        crate::protocol::uwsgi::encode_packet(
            0,
            0,
            &[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"2")],
            &mut pkt,
        )
        .expect("encode");
        pkt.extend_from_slice(b"hi");
        assert_eq!(drive(&pkt, 3, Protocol::Uwsgi).requests, 1);
    }
}
