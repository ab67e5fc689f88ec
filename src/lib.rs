//! rwsgi as a library: the binary (`main.rs`) is a thin shell over these
//! modules, and fuzz targets link the pure parsers in `protocol`.
//! Module map and dependency rules: DESIGN.md §6.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod body;
pub mod cli;
pub mod cli_hints;
pub mod config;
pub mod log;
pub mod master;
pub mod process;
pub mod protocol;
pub mod scoreboard;
pub mod socket;
pub mod start;
pub mod static_files;
pub mod stats;
pub mod supervise;
pub mod sys;
pub mod systemd;
pub mod worker;
pub mod wsgi;
