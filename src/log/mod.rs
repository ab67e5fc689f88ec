//! Logging: `log` + `env_logger`, one line per event, each with a
//! timestamp, the level and the pid (master and workers share the log
//! descriptor, a private copy of stderr: see [`sink`]).

pub mod access;
pub mod escape;
pub mod sink;

pub use escape::Escaped;

use std::io::Write;

/// Sets up the logger. `level` comes from `--log-level`; `RUST_LOG` may refine
/// it per module.
pub fn init(level: log::LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(|buf, record| {
        let ts = buf.timestamp_millis();
        writeln!(
            buf,
            "[{ts}] {:<5} [pid {}] {}",
            record.level(),
            std::process::id(),
            record.args()
        )
    });
    builder.target(env_logger::Target::Pipe(Box::new(sink::Sink)));
    // A second init (never expected) must not abort the server.
    let _ = builder.try_init();
}
