//! What to say when a uWSGI or Gunicorn user's flag is not one of rwsgi's:
//! the rwsgi way to get the same thing, instead of clap's nearest spelling
//! (which for `--cheaper` is `--help`).

/// `(flag, hint)`: the flag as the user typed it (long or short form).
const HINTS: &[(&str, &str)] = &[
    (
        "--worker-class",
        "rwsgi has one kind of worker; there is nothing to choose",
    ),
    (
        "-k",
        "rwsgi has one kind of worker (Gunicorn's -k chooses one); there is nothing to choose",
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
    (
        "--reload-on-as",
        "recycle workers by memory with --reload-on-rss MB",
    ),
    (
        "--max-worker-lifetime",
        "rwsgi does not recycle workers by age; recycle them with --max-requests N \
         or --reload-on-rss MB",
    ),
    (
        "--proxy-protocol",
        "rwsgi does not speak the PROXY protocol; behind a proxy, log the client \
         from X-Forwarded-For with --log-x-forwarded-for and --trusted-proxies",
    ),
    (
        "--limit-request-line",
        "--buffer-size BYTES limits the request line and headers together",
    ),
    (
        "--limit-request-field_size",
        "--buffer-size BYTES limits the request line and headers together",
    ),
    ("--limit-request-fields", "use --max-headers N"),
    (
        "--statsd-host",
        "rwsgi has no statsd client; scrape --metrics ADDR (Prometheus) or read --stats ADDR",
    ),
    (
        "--check-static",
        "map a URL prefix to a directory with --static-map URL=DIR, or serve the \
         files from nginx",
    ),
    (
        "--forwarded-allow-ips",
        "Gunicorn's --forwarded-allow-ips is --trusted-proxies LIST here",
    ),
    (
        "--access-logformat",
        "use --log-format FORMAT (%(var) placeholders, see rwsgi(1))",
    ),
    ("--backlog", "Gunicorn's --backlog is --listen N here"),
    ("--pid", "Gunicorn's --pid is --pidfile PATH here"),
    (
        "--certfile",
        "rwsgi does not terminate TLS; put nginx (or another proxy) in front",
    ),
    (
        "--keyfile",
        "rwsgi does not terminate TLS; put nginx (or another proxy) in front",
    ),
    (
        "--http-keepalive",
        "keep-alive is always on; --keepalive-timeout SECONDS sets how long",
    ),
    (
        "--max-fd",
        "rwsgi raises its open-file limit to the hard limit itself",
    ),
    (
        "--log-reopen",
        "rwsgi reopens --logto on SIGUSR1 (logrotate's postrotate)",
    ),
    (
        "--emperor",
        "run one rwsgi per app, each as its own systemd service",
    ),
    (
        "--mount",
        "rwsgi serves one app; route prefixes to several rwsgi instances from nginx",
    ),
    (
        "--protocol",
        "choose the protocol per socket: --http ADDR or --socket ADDR (uwsgi)",
    ),
];

/// Where a uWSGI and a Gunicorn short flag mean different things, rwsgi
/// keeps uWSGI's meaning: (flag, a test for a Gunicorn-style value, what to
/// say when the value is Gunicorn's).
/// (long flag, whether a value is the other tool's, the explanation).
type Clash = (&'static str, fn(&str) -> bool, &'static str);

const SHORT_CLASHES: &[Clash] = &[(
    "--buffer-size",
    |v| v.contains(':') || v.contains('/'),
    "rwsgi's -b is uWSGI's --buffer-size BYTES; Gunicorn's -b ADDR is --bind ADDR \
     (or --http ADDR) here",
)];

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

/// Our message for a clap error where clap's would mislead: an unknown
/// flag gets the hint table's answer, or a suggestion only when one is
/// really close (clap offers `--min-worker-lifetime` for
/// `--max-worker-lifetime`); a Gunicorn value for a clashing short flag
/// says what it means here. `None`: clap's message is right.
pub fn for_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg)?;
            if !arg.starts_with('-') {
                return None;
            }
            Some(foreign_flag(arg).unwrap_or_else(|| unknown_flag(arg)))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = context(ContextKind::InvalidArg)?;
            let value = context(ContextKind::InvalidValue)?;
            let long = arg.split([' ', '=']).next().unwrap_or(arg);
            SHORT_CLASHES
                .iter()
                .find(|(flag, gunicorn, _)| *flag == long && gunicorn(value))
                .map(|(_, _, hint)| format!("{value:?} is not a size: {hint} (rwsgi(1))"))
        }
        _ => None,
    }
}

/// An unknown flag with no hint: a suggestion only when one is close.
fn unknown_flag(arg: &str) -> String {
    use clap::CommandFactory;
    let flag = arg.split('=').next().unwrap_or(arg);
    let cmd = crate::cli::Cli::command();
    let names = cmd.get_arguments().flat_map(|a| {
        a.get_long()
            .into_iter()
            .chain(a.get_all_aliases().unwrap_or_default())
    });
    let guess = flag
        .strip_prefix("--")
        .and_then(|f| closest(f, names))
        .map(|n| format!("; did you mean --{n}?"))
        .unwrap_or_default();
    format!("unknown option {flag}{guess} (rwsgi --help lists the options)")
}

/// The rwsgi way for a key in a TOML file or an `RWSGI_*` variable that is
/// a uWSGI or Gunicorn option rwsgi lacks (`key` uses dashes).
pub fn for_key(key: &str) -> Option<&'static str> {
    HINTS
        .iter()
        .find(|(f, _)| f.strip_prefix("--") == Some(key))
        .map(|(_, hint)| *hint)
}

/// The name in `names` nearest to `word`, if it is close: at most one edit
/// for a short word, two for a longer one. Further guesses mislead more
/// than they help.
pub fn closest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if word.chars().count() < 6 { 1 } else { 2 };
    names
        .map(|n| (distance(word, n), n))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_foreign_flags_get_the_rwsgi_way() {
        let h = foreign_flag("--graceful-timeout=5").expect("a hint");
        assert!(
            h.starts_with("--graceful-timeout is not an rwsgi option")
                && h.contains("--shutdown-timeout"),
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
            .try_get_matches_from(["rwsgi", "--cheaper", "4"])
            .expect_err("unknown");
        assert!(for_error(&e).is_some_and(|h| h.contains("--processes")));
        let e = crate::cli::Cli::command()
            .try_get_matches_from(["rwsgi", "--processes", "x"])
            .expect_err("bad value");
        assert_eq!(for_error(&e), None);
    }

    fn message(args: &[&str]) -> Option<String> {
        use clap::CommandFactory;
        let argv = std::iter::once("rwsgi").chain(args.iter().copied());
        let e = crate::cli::Cli::command()
            .try_get_matches_from(argv)
            .expect_err("refused");
        for_error(&e)
    }

    #[test]
    fn no_misleading_guesses() {
        // The examples: each clap guess was wrong.
        for (flag, want) in [
            ("--max-worker-lifetime", "--max-requests"),
            ("--proxy-protocol", "X-Forwarded-For"),
            ("--limit-request-line", "--buffer-size"),
            ("--statsd-host", "--metrics"),
            ("--check-static", "--static-map"),
        ] {
            let m = message(&[flag, "1"]).expect("our message");
            assert!(m.contains(want) && !m.contains("did you mean"), "{m}");
        }
        let m = message(&["--frobnicate-everything"]).expect("our message");
        assert!(!m.contains("did you mean"), "{m}");
        let m = message(&["--max-requets", "5"]).expect("our message");
        assert!(m.contains("did you mean --max-requests?"), "{m}");
    }

    #[test]
    fn gunicorn_short_flags_are_explained() {
        let m = message(&["-b", "0.0.0.0:8000"]).expect("our message");
        assert!(m.contains("--buffer-size") && m.contains("--bind"), "{m}");
        assert_eq!(message(&["-b", "lots"]), None);
    }

    #[test]
    fn keys_get_the_same_hints() {
        assert!(for_key("statsd-host").is_some_and(|h| h.contains("--metrics")));
        assert_eq!(for_key("no-such-key"), None);
        assert_eq!(
            closest("procesess", ["processes"].into_iter()),
            Some("processes")
        );
        assert_eq!(closest("stats-x", ["metrics"].into_iter()), None);
    }
}
