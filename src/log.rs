//! Logging: `log` + `env_logger` to stderr, one line per event, each with a
//! timestamp, the level and the pid (master and workers share stderr).

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
    builder.target(env_logger::Target::Stderr);
    // A second init (never expected) must not abort the server.
    let _ = builder.try_init();
}

/// The access-log line for one request, in the documented default format:
/// `ADDR "METHOD URI PROTO" STATUS BYTES DURATIONms wWORKER`.
#[allow(clippy::too_many_arguments)]
pub fn access(
    addr: &str,
    method: &str,
    uri: &str,
    proto: &str,
    status: u16,
    bytes: u64,
    micros: u64,
    worker: usize,
) {
    log::info!(
        target: "rwsgi::access",
        "{addr} \"{method} {uri} {proto}\" {status} {bytes} {}.{:03}ms w{worker}",
        micros / 1000,
        micros % 1000
    );
}
