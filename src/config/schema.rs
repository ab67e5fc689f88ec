//! The configuration schema: every option, the TOML table it lives in, and
//! its kind. The TOML file and the `RWSGI_*` environment use the same names
//! as the command-line flags, so one list serves all three layers.

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `true` turns it on.
    Bool,
    /// A whole number (>= 0).
    Int,
    Str,
    /// Repeatable: a string or an array of strings.
    List,
}

/// (table, key, kind). Keys are the long flag names.
pub const OPTIONS: &[(&str, &str, Kind)] = &[
    ("server", "http", Kind::List),
    ("server", "socket", Kind::List),
    ("server", "chmod-socket", Kind::Str),
    ("server", "chown-socket", Kind::Str),
    ("server", "vacuum", Kind::Bool),
    ("server", "listen", Kind::Int),
    ("server", "no-defer-accept", Kind::Bool),
    ("server", "stats", Kind::Str),
    ("server", "stats-http", Kind::Bool),
    ("server", "metrics", Kind::Str),
    ("server", "pidfile", Kind::Str),
    ("server", "daemonize", Kind::Str),
    ("server", "uid", Kind::Str),
    ("server", "gid", Kind::Str),
    ("server", "umask", Kind::Str),
    ("app", "module", Kind::Str),
    ("app", "wsgi-file", Kind::Str),
    ("app", "callable", Kind::Str),
    ("app", "chdir", Kind::Str),
    ("app", "home", Kind::Str),
    ("app", "pythonpath", Kind::List),
    ("app", "env", Kind::List),
    ("app", "preload", Kind::Bool),
    ("app", "lazy-apps", Kind::Bool),
    ("app", "post-fork", Kind::Str),
    ("workers", "processes", Kind::Int),
    ("workers", "threads", Kind::Int),
    ("workers", "max-requests", Kind::Int),
    ("workers", "max-requests-jitter", Kind::Int),
    ("workers", "reload-on-rss", Kind::Int),
    ("workers", "min-worker-lifetime", Kind::Int),
    ("workers", "harakiri", Kind::Int),
    ("workers", "shutdown-timeout", Kind::Int),
    ("workers", "shutdown-delay", Kind::Int),
    ("workers", "reload-mode", Kind::Str),
    ("limits", "buffer-size", Kind::Int),
    ("limits", "max-headers", Kind::Int),
    ("limits", "limit-post", Kind::Int),
    ("limits", "post-buffering", Kind::Int),
    ("limits", "body-memory", Kind::Int),
    ("limits", "http-timeout", Kind::Int),
    ("limits", "keepalive-timeout", Kind::Int),
    ("log", "log-level", Kind::Str),
    ("log", "disable-logging", Kind::Bool),
    ("log", "log-format", Kind::Str),
    ("log", "log-x-forwarded-for", Kind::Bool),
    ("log", "trusted-proxies", Kind::Str),
    ("log", "log-slow", Kind::Int),
    ("log", "logto", Kind::Str),
    ("static", "static-map", Kind::List),
    ("static", "static-index", Kind::Str),
    ("static", "static-expires", Kind::Int),
];

/// The option `key` (dashes or underscores), with its table and kind.
pub fn find(key: &str) -> Option<(&'static str, &'static str, Kind)> {
    let key = key.replace('_', "-");
    OPTIONS.iter().find(|(_, k, _)| *k == key).copied()
}

/// The closest option name, for "did you mean" (only a close one).
pub fn suggest(key: &str) -> Option<&'static str> {
    let key = key.replace('_', "-");
    crate::cli_hints::closest(&key, OPTIONS.iter().map(|(_, k, _)| *k))
}

/// The option a flag alias stands for (`workers` -> `processes`): files and
/// variables take only the option's own name.
pub fn alias_of(key: &str) -> Option<&'static str> {
    use clap::CommandFactory;
    let cmd = crate::cli::Cli::command();
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_all_aliases().unwrap_or_default().contains(&key))?;
    // The names live as long as the command; options' names are literals.
    find(arg.get_long()?).map(|(_, k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_suggestions() {
        assert_eq!(find("max_requests").map(|o| o.0), Some("workers"));
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("htp"), Some("http"));
        assert_eq!(suggest("completely-unrelated"), None);
        assert_eq!(alias_of("workers"), Some("processes"));
        assert_eq!(alias_of("processes"), None);
    }

    #[test]
    fn every_option_is_a_flag() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        for (_, key, _) in OPTIONS {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(key)),
                "--{key} is in the schema but not a flag"
            );
        }
    }
}
