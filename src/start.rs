//! Starting the server: parse the flags and merge the configuration layers,
//! set up the process, bind the sockets, run the master. `main` only calls
//! [`run`] and reports its [`StartError`]; exit codes are rwsgi(1)'s.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use crate::config::layers::{self, LoadError};
use crate::config::{self, ConfigError};
use crate::master::endpoints::Kind;
use crate::{cli, cli_hints, log, master, process, socket, sys, systemd, worker};

/// Exit codes (documented in rwsgi(1)).
const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_SOCKET: u8 = 3;

/// Why the server did not start.
#[derive(Debug)]
pub enum StartError {
    /// The log descriptor could not be set up (before anything else).
    LogSetup(io::Error),
    /// A command-line error, `--help` or `--version`: clap prints it.
    Usage(clap::Error),
    /// A uWSGI or Gunicorn flag rwsgi lacks, with the rwsgi way.
    ForeignFlag(String),
    /// The configuration is invalid (exit 2).
    Config(ConfigError),
    /// A directory a file would be created in is missing (exit 2).
    MissingDirectory(String),
    /// `--logto`, `--daemonize`, `--umask`, `--env` could not be applied (exit 2).
    Process(String),
    /// A listener or endpoint could not be bound or inherited (exit 3).
    Socket(String),
    /// The pidfile could not be written (exit 2).
    Pidfile(String),
    /// The master could not set up its loop (exit 1).
    Master(io::Error),
}

impl StartError {
    /// The exit status rwsgi(1) documents for it.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            StartError::LogSetup(_) | StartError::Master(_) => ExitCode::from(EXIT_RUNTIME),
            StartError::Usage(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
            StartError::ForeignFlag(_)
            | StartError::Config(_)
            | StartError::MissingDirectory(_)
            | StartError::Process(_)
            | StartError::Pidfile(_) => ExitCode::from(EXIT_CONFIG),
            StartError::Socket(_) => ExitCode::from(EXIT_SOCKET),
        }
    }

    /// Says what went wrong (on stderr before the log is set up, in the log
    /// after) and returns the exit status.
    pub fn report(self) -> ExitCode {
        match &self {
            StartError::Usage(e) => {
                let _ = e.print();
            }
            StartError::Socket(_) | StartError::Pidfile(_) | StartError::Master(_) => {
                ::log::error!("{self}")
            }
            _ => eprintln!("rwsgi: {self}"),
        }
        self.exit_code()
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::LogSetup(e) => write!(f, "cannot set up the log descriptor: {e}"),
            StartError::Usage(e) => write!(f, "{e}"),
            StartError::Config(e) => write!(f, "{e}"),
            StartError::ForeignFlag(m)
            | StartError::MissingDirectory(m)
            | StartError::Process(m)
            | StartError::Socket(m)
            | StartError::Pidfile(m) => f.write_str(m),
            StartError::Master(e) => write!(f, "cannot start the master: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Runs rwsgi with the process's arguments and environment; returns the
/// master's exit status once it is done.
pub fn run() -> Result<ExitCode, StartError> {
    // Before anything opens a file or socket: fds 0-2 taken, and the log on
    // a descriptor of its own (an app closing fd 2 cannot redirect it).
    log::sink::init().map_err(StartError::LogSetup)?;
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => env.push((k, v)),
            // An option's value must be read as written, not dropped or
            // mangled. (RWSGI_CONFIG is a path: clap takes it as it is.)
            Err(_) if layers::sets_an_option(&k) => {
                return Err(StartError::Config(config::ConfigError::invalid(format!(
                    "env {k}: its value is not valid UTF-8; set it as text"
                ))));
            }
            Err(_) => {}
        }
    }
    let layered = match layers::load(std::env::args_os().collect(), &env) {
        Ok(l) => l,
        Err(LoadError::Clap(e)) => {
            return Err(match cli_hints::for_error(&e) {
                Some(hint) => StartError::ForeignFlag(hint),
                None => StartError::Usage(e),
            })
        }
        Err(LoadError::Config(e)) => return Err(StartError::Config(e)),
    };
    let check = layered.cli.check_config;
    let compat = layered.cli.compat_flags();
    let provenance = layered.provenance;
    let activated = systemd::activated();
    let config = config::Config::from_cli_activated(layered.cli, activated)
        .map_err(|e| StartError::Config(layers::annotate(e, &provenance.sources)))?;
    let missing = config.missing_directories(activated);
    if check {
        for w in provenance.warnings.iter().chain(&missing) {
            eprintln!("rwsgi: warning: {w}");
        }
        // A closed pipe (`| head`) is not an error worth a panic.
        let report = format!("{}## configuration OK\n", layers::describe(&provenance));
        let _ = io::stdout().lock().write_all(report.as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(m) = missing.into_iter().next() {
        return Err(StartError::MissingDirectory(m));
    }
    // SAFETY: no thread has been started yet.
    unsafe { process::prepare(&config) }.map_err(StartError::Process)?;
    log::init(config.log_level);
    ::log::info!("rwsgi {}", cli::VERSION);
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
    // After SIGUSR2, the previous master's sockets (see master::upgrade).
    let mut handed = socket::Handed::from_env().map_err(StartError::Socket)?;
    let upgrade_ready = master::upgrade::ready_pipe_from_env().map_err(StartError::Socket)?;
    // Sockets passed by systemd (LISTEN_FDS) or fd://N replace bound addresses.
    let listeners = systemd::listen_specs(&config)
        .and_then(|specs| {
            let (backlog, defer) = (config.backlog, config.defer_accept);
            socket::bind_all(&specs, backlog, defer, &config.unix, &mut handed)
        })
        .map_err(StartError::Socket)?;
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
        let l = socket::bind_endpoint(kind.name(), addr, &config.unix, &mut handed)
            .map_err(StartError::Socket)?;
        ::log::info!("{kind:?} endpoint on {} (fd {})", l.addr, l.raw_fd());
        endpoints.push((kind, l));
    }
    handed.close_unused();
    process::write_pidfile(&config).map_err(StartError::Pidfile)?;
    let pidfile = config.process.pidfile.clone();
    let code = master::Master::new(config, listeners, endpoints, worker::entry)
        .and_then(|mut m| {
            // --preload: workers are forked by a template the master starts.
            m.preload_with(worker::template::entry)?;
            Ok(m.tell_when_ready(upgrade_ready).run())
        })
        .map_err(StartError::Master);
    process::remove_pidfile(pidfile.as_deref());
    Ok(ExitCode::from(u8::try_from(code?).unwrap_or(EXIT_RUNTIME)))
}
