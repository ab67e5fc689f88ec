//! The security holes of issue 12: files the (root) master writes are never
//! reached through a link or a foreign file, the log never writes to
//! whatever fd 2 has become, and client bytes cannot forge log lines.
//!
//! Tests whose name contains `needs_root` need root (the CI runs as root)
//! and fail, saying so, without it; skip them with `--skip needs_root`.

mod files;
mod log_fd;
mod log_injection;
