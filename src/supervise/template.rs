//! The template protocol of `--preload`, shared by the master (which asks
//! for workers) and the template (which forks them): what a template is
//! handed, its entry point, and the fork requests and answers on its pipes.

use std::os::fd::RawFd;

use super::WorkerContext;

/// The fds a template process reads requests from and answers on.
#[derive(Debug, Clone, Copy)]
pub struct TemplatePipes {
    pub commands: RawFd,
    pub replies: RawFd,
}

/// The template's entry point (the worker side implements it); its return
/// value is the template's exit code.
pub type TemplateEntry = fn(WorkerContext<'_>, TemplatePipes) -> i32;

/// The scoreboard slot a template names in its `Notice::Ready` (no worker
/// slot is ever this high).
pub const TEMPLATE_SLOT: usize = 0xFFFF;

/// Bytes of a fork request: seq u32, slot u16, id u32, generation u64.
pub const REQUEST_LEN: usize = 18;
/// Bytes of an answer: seq u32, pid i32 (negative: -errno of a failed fork).
pub const REPLY_LEN: usize = 8;

/// One worker to fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkRequest {
    pub seq: u32,
    pub slot: usize,
    pub id: usize,
    pub generation: u64,
}

impl ForkRequest {
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&self.seq.to_le_bytes());
        b[4..6].copy_from_slice(&(self.slot as u16).to_le_bytes());
        b[6..10].copy_from_slice(&(self.id as u32).to_le_bytes());
        b[10..18].copy_from_slice(&self.generation.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<ForkRequest> {
        let b: &[u8; REQUEST_LEN] = b.try_into().ok()?;
        Some(ForkRequest {
            seq: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            slot: usize::from(u16::from_le_bytes([b[4], b[5]])),
            id: u32::from_le_bytes([b[6], b[7], b[8], b[9]]) as usize,
            generation: u64::from_le_bytes(b[10..18].try_into().ok()?),
        })
    }
}

/// The answer to request `seq`: the worker's pid, or -errno.
pub fn encode_reply(seq: u32, pid: libc::pid_t) -> [u8; REPLY_LEN] {
    let mut b = [0u8; REPLY_LEN];
    b[0..4].copy_from_slice(&seq.to_le_bytes());
    b[4..8].copy_from_slice(&pid.to_le_bytes());
    b
}

pub fn decode_reply(b: &[u8; REPLY_LEN]) -> (u32, libc::pid_t) {
    (
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        libc::pid_t::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let r = ForkRequest {
            seq: 7,
            slot: 513,
            id: 42,
            generation: u64::MAX - 1,
        };
        assert_eq!(ForkRequest::decode(&r.encode()), Some(r));
        assert_eq!(ForkRequest::decode(&[0; 4]), None, "short");
        assert_eq!(
            decode_reply(&encode_reply(9, -libc::EAGAIN)),
            (9, -libc::EAGAIN)
        );
    }
}
