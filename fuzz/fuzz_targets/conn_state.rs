//! The whole connection state machine (`worker::drive`): head parsing, bodies
//! (Content-Length and chunked), pipelining and uwsgi packets, fed arbitrary
//! bytes through a real socket pair in pieces of arbitrary size.
//! Invariants (checked inside `drive`): no panic, bounded buffering, and an
//! outcome for every input: requests served, a wait for more, or a close.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi::config::Protocol;
use rwsgi::worker::drive::drive;

fuzz_target!(|data: &[u8]| {
    // First byte: protocol and piece size; the rest is what the client sends.
    let [a, input @ ..] = data else { return };
    let protocol = if a & 1 == 0 { Protocol::Http } else { Protocol::Uwsgi };
    let piece = usize::from(a >> 1) + 1;
    let seen = drive(input, piece, protocol);
    // A request needs at least a few bytes: no input can yield more requests
    // than it has bytes.
    assert!(seen.requests <= input.len());
});
