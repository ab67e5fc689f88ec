//! The largest value each numeric option takes. A timeout of
//! 18446744073709551615 seconds is a typo, not a wish, and would overflow
//! the deadline arithmetic (`Instant + Duration`) later; it is refused when
//! the configuration is read, with the maximum in the message (and the file
//! and line, added by `layers::annotate`, when a file set it).

use super::ConfigError;
use crate::cli::Cli;

const DAY: u64 = 86_400;
const MIB: u64 = 1024 * 1024;

/// (option, maximum, what the maximum is in words). The man pages list the
/// same numbers.
pub const MAXIMA: &[(&str, u64, &str)] = &[
    ("http-timeout", DAY, "seconds (one day)"),
    ("keepalive-timeout", DAY, "seconds (one day)"),
    ("shutdown-timeout", DAY, "seconds (one day)"),
    ("shutdown-delay", DAY, "seconds (one day)"),
    ("harakiri", DAY, "seconds (one day)"),
    ("min-worker-lifetime", DAY, "seconds (one day)"),
    ("log-slow", DAY * 1000, "milliseconds (one day)"),
    ("buffer-size", 16 * MIB, "bytes (16 MiB)"),
    ("post-buffering", 1024 * MIB, "bytes (1 GiB)"),
    ("body-memory", 1024 * 1024 * MIB, "bytes (1 TiB)"),
    ("limit-post", 1024 * 1024 * MIB, "bytes (1 TiB)"),
    ("reload-on-rss", 1024 * 1024, "MB (1 TiB)"),
    ("max-requests", 1_000_000_000_000, "requests"),
    ("max-requests-jitter", 1_000_000_000_000, "requests"),
    ("static-expires", 3650 * DAY, "seconds (ten years)"),
];

/// The numeric options' values (given or default).
fn given(cli: &Cli) -> [(&'static str, u64); 15] {
    let size = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    [
        ("http-timeout", cli.http_timeout),
        ("keepalive-timeout", cli.keepalive_timeout),
        ("shutdown-timeout", cli.shutdown_timeout),
        ("shutdown-delay", cli.shutdown_delay),
        ("harakiri", cli.harakiri),
        ("min-worker-lifetime", cli.min_worker_lifetime),
        ("log-slow", cli.log_slow.unwrap_or(0)),
        ("buffer-size", size(cli.buffer_size)),
        ("post-buffering", size(cli.post_buffering)),
        ("body-memory", size(cli.body_memory)),
        ("limit-post", cli.limit_post),
        ("reload-on-rss", cli.reload_on_rss),
        ("max-requests", cli.max_requests),
        ("max-requests-jitter", cli.max_requests_jitter),
        ("static-expires", cli.static_expires.unwrap_or(0)),
    ]
}

/// Refuses the first option above its maximum.
pub fn check(cli: &Cli) -> Result<(), ConfigError> {
    for (name, value) in given(cli) {
        let Some(&(_, max, unit)) = MAXIMA.iter().find(|(n, _, _)| *n == name) else {
            continue;
        };
        if value > max {
            return Err(ConfigError::invalid(format!(
                "--{name} {value} is more than the maximum, {max} {unit}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        use clap::Parser;
        let base = ["rwsgi", "--http", ":8000", "--module", "m"];
        Cli::try_parse_from(base.iter().chain(args)).unwrap()
    }

    #[test]
    fn every_maximum_is_checked_and_named() {
        let given_names: Vec<&str> = given(&cli(&[])).iter().map(|g| g.0).collect();
        let table_names: Vec<&str> = MAXIMA.iter().map(|m| m.0).collect();
        assert_eq!(given_names, table_names);
        for (name, max, unit) in MAXIMA {
            let flag = format!("--{name}");
            assert!(
                check(&cli(&[&flag, &max.to_string()])).is_ok(),
                "{name} at its maximum"
            );
            let over = (max + 1).to_string();
            let e = check(&cli(&[&flag, &over]))
                .unwrap_err()
                .message()
                .to_string();
            assert_eq!(
                e,
                format!("{flag} {over} is more than the maximum, {max} {unit}")
            );
            let e = check(&cli(&[&flag, &u64::MAX.to_string()]))
                .unwrap_err()
                .message()
                .to_string();
            assert!(e.contains(&max.to_string()), "{e}");
        }
    }

    /// A number option without a maximum here is bounded some other way,
    /// and says so in its own check; a new one must be placed.
    #[test]
    fn every_number_option_has_a_maximum() {
        let bounded_elsewhere = ["processes", "threads", "max-headers", "listen"];
        for (_, key, kind) in super::super::schema::options() {
            if *kind != super::super::schema::Kind::Int || bounded_elsewhere.contains(key) {
                continue;
            }
            assert!(
                MAXIMA.iter().any(|(name, _, _)| name == key),
                "--{key} takes a number but has no maximum in MAXIMA"
            );
        }
    }
}
