//! rwsgi: parse the flags and merge the configuration layers, set up the
//! process, bind the sockets, run the master, exit.

use rwsgi::config::layers::{self, LoadError};
use rwsgi::master::endpoints::Kind;
use rwsgi::{config, log, master, process, socket, sys, worker};

/// Exit codes (documented in rwsgi(1)).
const EXIT_CONFIG: i32 = 2;
const EXIT_SOCKET: i32 = 3;

fn fail(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("rwsgi: {msg}");
    std::process::exit(code);
}

fn main() {
    // Before anything opens a file or socket: fds 0-2 taken, and the log on
    // a descriptor of its own (an app closing fd 2 cannot redirect it).
    if let Err(e) = log::sink::init() {
        fail(1, format!("cannot set up the log descriptor: {e}"));
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let layered = match layers::load(std::env::args_os().collect(), &env) {
        Ok(l) => l,
        Err(LoadError::Clap(e)) => match rwsgi::cli_hints::for_error(&e) {
            Some(hint) => fail(EXIT_CONFIG, hint),
            None => e.exit(),
        },
        Err(LoadError::Config(e)) => fail(EXIT_CONFIG, e),
    };
    let check = layered.cli.check_config;
    let compat = layered.cli.compat_flags();
    let provenance = layered.provenance;
    let activated = rwsgi::systemd::activated();
    let config = match config::Config::from_cli_activated(layered.cli, activated) {
        Ok(c) => c,
        Err(e) => fail(EXIT_CONFIG, layers::annotate(e, &provenance.sources)),
    };
    let missing = config.missing_directories(activated);
    if check {
        for w in provenance.warnings.iter().chain(&missing) {
            eprintln!("rwsgi: warning: {w}");
        }
        // A closed pipe (`| head`) is not an error worth a panic.
        use std::io::Write;
        let report = format!("{}## configuration OK\n", layers::describe(&provenance));
        let _ = std::io::stdout().lock().write_all(report.as_bytes());
        return;
    }
    if let Some(m) = missing.first() {
        fail(EXIT_CONFIG, m);
    }
    if let Err(e) = process::prepare(&config) {
        fail(EXIT_CONFIG, e);
    }
    log::init(config.log_level);
    ::log::info!("rwsgi {}", rwsgi::cli::VERSION);
    for w in &provenance.warnings {
        ::log::warn!("{w}");
    }
    if !compat.is_empty() {
        ::log::info!(
            "--{} accepted for uWSGI compatibility: rwsgi always behaves so (rwsgi(1))",
            compat.join(" --")
        );
    }
    sys::raise_nofile_limit();
    // Sockets passed by systemd (LISTEN_FDS) or fd://N replace bound addresses.
    let listeners = match rwsgi::systemd::listen_specs(&config).and_then(|specs| {
        socket::bind_all(&specs, config.backlog, config.defer_accept, &config.unix)
    }) {
        Ok(l) => l,
        Err(e) => {
            ::log::error!("{e}");
            std::process::exit(EXIT_SOCKET);
        }
    };
    for l in &listeners {
        ::log::info!(
            "listening on {}://{} (fd {})",
            l.protocol.name(),
            l.addr,
            l.raw_fd()
        );
    }
    let mut endpoints = Vec::new();
    let wanted = [
        config.stats.as_ref().map(|(a, http)| {
            let kind = if *http { Kind::StatsHttp } else { Kind::Stats };
            (kind, a)
        }),
        config.metrics.as_ref().map(|a| (Kind::Metrics, a)),
    ];
    for (kind, addr) in wanted.into_iter().flatten() {
        match socket::bind_endpoint(addr, &config.unix) {
            Ok(l) => {
                ::log::info!("{kind:?} endpoint on {} (fd {})", l.addr, l.raw_fd());
                endpoints.push((kind, l));
            }
            Err(e) => {
                ::log::error!("{e}");
                std::process::exit(EXIT_SOCKET);
            }
        }
    }
    if let Err(e) = process::write_pidfile(&config) {
        ::log::error!("{e}");
        std::process::exit(EXIT_CONFIG);
    }
    let pidfile = config.process.pidfile.clone();
    let code = match master::Master::new(config, listeners, endpoints, worker::entry) {
        Ok(mut m) => match m.preload_with(worker::template::entry) {
            Ok(()) => m.run(),
            Err(e) => {
                ::log::error!("--preload: cannot make the master a child subreaper: {e}");
                1
            }
        },
        Err(e) => {
            ::log::error!("cannot start the master: {e}");
            1
        }
    };
    process::remove_pidfile(pidfile.as_deref());
    std::process::exit(code);
}
