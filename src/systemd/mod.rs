//! systemd integration, without libsystemd:
//!
//! - [`notify`]: the `sd_notify` protocol (`READY=1`, `RELOADING=1`,
//!   `STOPPING=1`, `STATUS=`) to `$NOTIFY_SOCKET`, for `Type=notify` units;
//! - [`activation`]: socket activation (`LISTEN_FDS`, `LISTEN_PID`,
//!   `LISTEN_FDNAMES`) and how inherited sockets replace the listeners the
//!   configuration names.
//!
//! Both read their environment variables once, in the master before any
//! fork, and remove them, so neither the workers nor the app's subprocesses
//! see them.

pub mod activation;
pub mod notify;

pub use activation::{activated, listen_specs};
pub use notify::Notifier;
