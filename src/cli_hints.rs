//! What to say when a uWSGI or Gunicorn user's flag is not one of rwsgi's:
//! the rwsgi way to get the same thing, instead of clap's nearest spelling
//! (which for `--cheaper` is `--help`).

/// `(flag, hint)`: the flag as the user typed it (long or short form).
const HINTS: &[(&str, &str)] = &[
    (
        "--threads",
        "rwsgi workers are single-threaded processes that serve many connections \
         without blocking; add capacity with --processes",
    ),
    (
        "--bind",
        "Gunicorn's --bind is --http ADDR here (--socket ADDR for nginx's uwsgi_pass)",
    ),
    (
        "--worker-class",
        "rwsgi has one kind of worker; there is nothing to choose",
    ),
    (
        "-k",
        "rwsgi has one kind of worker (Gunicorn's -k chooses one); there is nothing to choose",
    ),
    (
        "--preload",
        "rwsgi has no preloading: each worker imports the app after the fork",
    ),
    (
        "--graceful-timeout",
        "Gunicorn's --graceful-timeout is --shutdown-timeout here",
    ),
    (
        "--daemon",
        "Gunicorn's --daemon is --daemonize LOGFILE here",
    ),
    ("--user", "Gunicorn's --user is --uid here"),
    ("-u", "Gunicorn's -u (user) is --uid here"),
    ("--group", "Gunicorn's --group is --gid here"),
    ("-g", "Gunicorn's -g (group) is --gid here"),
    (
        "--access-logfile",
        "access lines go to the log: --logto FILE (or stderr)",
    ),
    (
        "--error-logfile",
        "the log goes to stderr, or to --logto FILE",
    ),
    (
        "--ini",
        "rwsgi reads TOML, not ini: --config FILE (see rwsgi.toml(5))",
    ),
    (
        "--yaml",
        "rwsgi reads TOML: --config FILE (see rwsgi.toml(5))",
    ),
    (
        "--json",
        "rwsgi reads TOML: --config FILE (see rwsgi.toml(5))",
    ),
    (
        "--xml",
        "rwsgi reads TOML: --config FILE (see rwsgi.toml(5))",
    ),
    (
        "--py-autoreload",
        "rwsgi does not watch files; reload with kill -HUP (systemctl reload) after a deploy",
    ),
    (
        "--touch-reload",
        "rwsgi does not watch files; reload with kill -HUP (systemctl reload) after a deploy",
    ),
    (
        "--reload",
        "rwsgi does not watch files; reload with kill -HUP (systemctl reload) after a deploy",
    ),
    (
        "--cheaper",
        "rwsgi keeps --processes workers; SIGTTIN and SIGTTOU add or remove one",
    ),
    (
        "--memory-report",
        "per-worker memory is in --stats and --metrics",
    ),
    ("--reload-mercy", "use --shutdown-timeout"),
    ("--worker-reload-mercy", "use --shutdown-timeout"),
    (
        "--socket-timeout",
        "uWSGI's --socket-timeout is --http-timeout here",
    ),
    (
        "--limit-as",
        "recycle workers by memory with --reload-on-rss MB",
    ),
];

/// A hint for an unknown flag (`--flag` or `--flag=value`), if it is a
/// known uWSGI or Gunicorn one.
pub fn foreign_flag(arg: &str) -> Option<String> {
    let flag = arg.split('=').next().unwrap_or(arg);
    let cheaper = flag.starts_with("--cheaper");
    let key = if cheaper { "--cheaper" } else { flag };
    HINTS
        .iter()
        .find(|(f, _)| *f == key)
        .map(|(_, hint)| format!("{flag} is not an rwsgi option: {hint} (rwsgi(1))"))
}

/// The hint for a clap error about an unknown argument, if there is one.
pub fn for_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => foreign_flag(arg),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_foreign_flags_get_the_rwsgi_way() {
        let h = foreign_flag("--threads").expect("a hint");
        assert!(h.contains("--processes"), "{h}");
        let h = foreign_flag("--bind=0.0.0.0:80").expect("a hint");
        assert!(
            h.starts_with("--bind is not an rwsgi option") && h.contains("--http"),
            "{h}"
        );
        assert!(foreign_flag("--cheaper-algo").is_some());
        assert_eq!(foreign_flag("--no-such-thing"), None);
    }

    #[test]
    fn the_compat_flag_names_are_the_compat_flags() {
        use clap::{CommandFactory, Parser};
        let cmd = crate::cli::Cli::command();
        let mut argv = vec!["rwsgi".to_string()];
        for name in crate::cli::COMPAT_FLAGS {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(name)),
                "--{name}"
            );
            argv.push(format!("--{name}"));
        }
        let cli = crate::cli::Cli::try_parse_from(argv).expect("all accepted");
        let given: Vec<String> = cli.compat_flags().iter().map(|f| f.to_string()).collect();
        assert_eq!(given, crate::cli::COMPAT_FLAGS);
    }

    #[test]
    fn a_clap_error_for_an_unknown_flag_gets_its_hint() {
        use clap::CommandFactory;
        let e = crate::cli::Cli::command()
            .try_get_matches_from(["rwsgi", "--threads", "4"])
            .expect_err("unknown");
        assert!(for_error(&e).is_some_and(|h| h.contains("--processes")));
        let e = crate::cli::Cli::command()
            .try_get_matches_from(["rwsgi", "--processes", "x"])
            .expect_err("bad value");
        assert_eq!(for_error(&e), None);
    }
}
