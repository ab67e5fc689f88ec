//! The effective configuration: defaults merged with what the user gave, and
//! validated in one place. Everything downstream reads a `Config`, never flags.

mod app;
#[cfg(test)]
mod defaults_tests;
mod error;
mod file;
mod ini;
pub mod layers;
mod listen;
mod paths;
mod process_options;
pub mod python;
pub mod ranges;
pub mod schema;
mod static_map;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Cli;
use paths::{absolute_addr, resolve_paths};

use app::validate_app;
pub use app::AppSource;
use error::err;
pub use error::ConfigError;
pub use listen::{parse_listen, ListenAddr, ListenSpec, Protocol};
use process_options::process_options;
pub use process_options::ProcessOptions;
pub use static_map::StaticMap;

/// How a reload replaces workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMode {
    /// One new worker at a time; each ready one retires one old worker.
    Rolling,
    /// All new workers at once; old ones retire as new ones become ready.
    All,
}

impl ReloadMode {
    pub fn name(self) -> &'static str {
        match self {
            ReloadMode::Rolling => "rolling",
            ReloadMode::All => "all",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenSpec>,
    pub process: ProcessOptions,
    /// `--stats` and whether it speaks HTTP (`--stats-http`).
    pub stats: Option<(ListenAddr, bool)>,
    pub metrics: Option<ListenAddr>,
    pub unix: UnixSocketOptions,
    pub backlog: u32,
    /// TCP_DEFER_ACCEPT on bound TCP listeners (off with `--no-defer-accept`).
    pub defer_accept: bool,
    pub processes: usize,
    /// App threads per worker (`--threads`).
    pub threads: usize,
    pub app: AppSource,
    pub chdir: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub pythonpath: Vec<PathBuf>,
    /// `--preload` (and not `--lazy-apps`): workers fork from a template.
    pub preload: bool,
    /// `--post-fork MODULE:CALLABLE`, checked for its shape.
    pub post_fork: Option<String>,
    pub log_level: log::LevelFilter,
    pub access_log: bool,
    pub access: AccessLog,
    pub limits: Limits,
    pub shutdown_timeout: Duration,
    pub shutdown_delay: Duration,
    pub reload_mode: ReloadMode,
    pub recycle: Recycle,
    /// `--static-map` and its companions.
    pub static_files: StaticMap,
}

/// How requests are logged.
#[derive(Debug, Clone)]
pub struct AccessLog {
    pub format: crate::log::access::Format,
    /// Log the first X-Forwarded-For address when the peer is trusted.
    pub x_forwarded_for: bool,
    pub trusted: crate::log::access::Trusted,
    /// Requests at least this slow are logged even with the access log off.
    pub slow: Option<Duration>,
}

/// What to do with unix socket files.
#[derive(Debug, Clone, Default)]
pub struct UnixSocketOptions {
    /// `--chmod-socket`: permission bits.
    pub mode: Option<u32>,
    /// `--chown-socket`: `user[:group]`, resolved when binding.
    pub owner: Option<String>,
    /// `--vacuum`: remove socket files on exit.
    pub vacuum: bool,
}

/// When workers are recycled or killed (DESIGN §2).
#[derive(Debug, Clone, Copy)]
pub struct Recycle {
    /// 0 means never.
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    /// Bytes; 0 means never.
    pub reload_on_rss: u64,
    /// `None` means no request time limit.
    pub harakiri: Option<Duration>,
    pub min_worker_lifetime: Duration,
}

/// Per-request limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub buffer_size: usize,
    pub max_headers: usize,
    /// 0 means unlimited.
    pub limit_post: u64,
    /// Bodies larger than this are spooled to a temp file.
    pub post_buffering: usize,
    /// What bodies still being received may hold in a worker's memory in
    /// all; beyond it they are spooled too.
    pub body_memory: usize,
    pub http_timeout: Duration,
    pub keepalive_timeout: Duration,
}

impl Config {
    /// Files rwsgi will create whose directory does not exist (unix sockets,
    /// the log file, the pidfile) and `--static-map` directories that do not
    /// exist, one message each naming the directory.
    /// A start refuses them; `--check-config` only warns, because a service
    /// manager may create the directory at start (systemd's
    /// RuntimeDirectory=). Under socket activation the listen addresses are
    /// systemd's and are not checked.
    pub fn missing_directories(&self, activated: bool) -> Vec<String> {
        let listen = self.listen.iter().filter(|_| !activated).map(|l| {
            let flag = match l.protocol {
                Protocol::Http => "--http",
                Protocol::Uwsgi => "--socket",
            };
            (flag, &l.addr)
        });
        let endpoints = self.stats.iter().map(|(a, _)| ("--stats", a));
        let endpoints = endpoints.chain(self.metrics.iter().map(|a| ("--metrics", a)));
        let sockets = listen.chain(endpoints).filter_map(|(flag, a)| match a {
            ListenAddr::Unix(p) => Some((flag, p.as_path())),
            _ => None,
        });
        // The log file is --daemonize's when --logto is not given.
        let log_flag = match (&self.process.logto, &self.process.daemonize) {
            (Some(l), Some(d)) if l == d => "--daemonize",
            _ => "--logto",
        };
        let files = [
            (log_flag, self.process.logto.as_deref()),
            ("--pidfile", self.process.pidfile.as_deref()),
        ];
        let files = files.into_iter().filter_map(|(f, p)| p.map(|p| (f, p)));
        let mut out: Vec<String> = sockets
            .chain(files)
            .filter_map(|(flag, path)| {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
                // Only "not there": a directory we may not look into is
                // left to the open or bind, which names the real error.
                let missing =
                    std::fs::metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                missing.then(|| {
                    format!(
                        "{flag} {}: directory {} does not exist; create it first (for a \
                         service, systemd's RuntimeDirectory= or LogsDirectory=)",
                        path.display(),
                        dir.display()
                    )
                })
            })
            .collect();
        out.extend(self.static_files.missing());
        out
    }

    /// Builds and validates the effective configuration from the flags.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        Config::from_cli_activated(cli, false)
    }

    /// As `from_cli`; `activated`: systemd passed sockets, so no address
    /// is needed (bare socket activation serves HTTP on them).
    pub fn from_cli_activated(mut cli: Cli, activated: bool) -> Result<Config, ConfigError> {
        resolve_paths(&mut cli)?;
        ranges::check(&cli)?;
        let process = process_options(&cli)?;
        let callable = cli.callable;
        let app = match (cli.module, cli.wsgi_file) {
            (Some(_), Some(_)) => {
                return err("--module and --wsgi-file both given; choose one way to find the app")
            }
            (Some(m), None) => match m.split_once(':') {
                Some((module, call)) => AppSource::Module {
                    module: module.to_string(),
                    callable: call.to_string(),
                },
                None => AppSource::Module {
                    module: m,
                    callable,
                },
            },
            (None, Some(path)) => AppSource::File { path, callable },
            (None, None) => {
                return err(
                    "no app given: pass --module package.module[:callable] or --wsgi-file app.py",
                )
            }
        };
        validate_app(&app)?;

        let mut listen = Vec::new();
        for (flag, addrs, protocol) in [
            ("--http", &cli.http, Protocol::Http),
            ("--socket", &cli.socket, Protocol::Uwsgi),
        ] {
            for a in addrs {
                let addr = parse_listen(a)
                    .map_err(|e| ConfigError::invalid(format!("{flag} {a}: {e}")))?;
                listen.push(ListenSpec {
                    addr: absolute_addr(addr),
                    protocol,
                });
            }
        }
        if listen.is_empty() && !activated {
            return err(
                "no socket to serve: pass --http ADDR (e.g. --http :8000) or --socket ADDR for nginx",
            );
        }
        let unix = UnixSocketOptions {
            mode: match &cli.chmod_socket {
                Some(m) => Some(
                    u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|&v| v <= 0o7777)
                        .ok_or_else(|| {
                            ConfigError::invalid(format!(
                                "--chmod-socket {m:?}: expected an octal mode like 660"
                            ))
                        })?,
                ),
                None => None,
            },
            owner: cli.chown_socket.clone(),
            vacuum: cli.vacuum,
        };

        let processes = cli.processes;
        if processes == 0 {
            return err("--processes must be at least 1");
        }
        if processes > crate::scoreboard::MAX_SLOTS / 2 {
            return err(format!(
                "--processes {processes} is more than the {} this build supports",
                crate::scoreboard::MAX_SLOTS / 2
            ));
        }
        let post_fork = match &cli.post_fork {
            Some(spec) => Some(python::check_post_fork(spec).map_err(ConfigError::invalid)?),
            None => None,
        };
        let threads = cli.threads;
        if threads == 0 || threads > crate::scoreboard::MAX_THREADS {
            return err(format!(
                "--threads {threads}: use 1 to {} app threads per worker",
                crate::scoreboard::MAX_THREADS
            ));
        }
        let log_level = match cli.log_level.to_ascii_lowercase().as_str() {
            "error" => log::LevelFilter::Error,
            "warn" | "warning" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            "debug" => log::LevelFilter::Debug,
            "trace" => log::LevelFilter::Trace,
            other => {
                return err(format!(
                    "--log-level {other:?} is not a level; use error, warn, info, debug or trace"
                ))
            }
        };
        let buffer_size = cli.buffer_size;
        if buffer_size < 1024 {
            return err(format!(
                "--buffer-size {buffer_size} is too small for any real request; use at least 1024"
            ));
        }
        let max_headers = cli.max_headers;
        if max_headers == 0 || max_headers > crate::protocol::http::MAX_HEADERS_CAP {
            return err(format!(
                "--max-headers must be between 1 and {}",
                crate::protocol::http::MAX_HEADERS_CAP
            ));
        }
        let secs = |v: u64, name: &str| match v {
            0 => err(format!("--{name} must be at least 1 second")),
            s => Ok(Duration::from_secs(s)),
        };
        let limits = Limits {
            buffer_size,
            max_headers,
            limit_post: cli.limit_post,
            post_buffering: cli.post_buffering,
            body_memory: cli.body_memory,
            http_timeout: secs(cli.http_timeout, "http-timeout")?,
            keepalive_timeout: secs(cli.keepalive_timeout, "keepalive-timeout")?,
        };
        if let Some(dir) = &cli.chdir {
            if !dir.is_dir() {
                return err(format!("--chdir {}: no such directory", dir.display()));
            }
        }
        if let Some(home) = &cli.home {
            if !home.join("bin/python").exists() {
                return err(format!(
                    "--home {}: not a virtualenv (no bin/python inside); create it with `python3 -m venv {}`",
                    home.display(),
                    home.display()
                ));
            }
            python::check_home(home).map_err(ConfigError::invalid)?;
        }
        let reload_mode = match cli.reload_mode.as_str() {
            "rolling" => ReloadMode::Rolling,
            "all" => ReloadMode::All,
            other => return err(format!("--reload-mode {other:?}: use rolling or all")),
        };
        let recycle = Recycle {
            max_requests: cli.max_requests,
            max_requests_jitter: cli.max_requests_jitter,
            reload_on_rss: cli.reload_on_rss.saturating_mul(1024 * 1024),
            harakiri: (cli.harakiri > 0).then(|| Duration::from_secs(cli.harakiri)),
            min_worker_lifetime: Duration::from_secs(cli.min_worker_lifetime),
        };
        let access = AccessLog {
            format: crate::log::access::Format::parse(&cli.log_format)
                .map_err(ConfigError::invalid)?,
            x_forwarded_for: cli.log_x_forwarded_for,
            trusted: crate::log::access::Trusted::parse(&cli.trusted_proxies)
                .map_err(ConfigError::invalid)?,
            slow: cli.log_slow.map(Duration::from_millis),
        };
        let endpoint = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|a| {
                    parse_listen(a)
                        .map(absolute_addr)
                        .map_err(|e| ConfigError::invalid(format!("{flag} {a}: {e}")))
                })
                .transpose()
        };
        if cli.stats_http && cli.stats.is_none() {
            return err("--stats-http needs --stats ADDR");
        }
        let stats = endpoint("--stats", &cli.stats)?.map(|a| (a, cli.stats_http));
        let metrics = endpoint("--metrics", &cli.metrics)?;
        let static_files = static_map::parse(
            &cli.static_map,
            cli.static_index.as_deref(),
            cli.static_expires,
        )?;
        Ok(Config {
            static_files,
            process,
            stats,
            metrics,
            access,
            unix,
            recycle,
            shutdown_delay: Duration::from_secs(cli.shutdown_delay),
            reload_mode,
            listen,
            backlog: cli.listen.max(1),
            defer_accept: !cli.no_defer_accept,
            processes,
            threads,
            app,
            chdir: cli.chdir,
            home: cli.home,
            pythonpath: cli.pythonpath,
            preload: cli.preload && !cli.lazy_apps,
            post_fork,
            log_level,
            access_log: !cli.disable_logging,
            limits,
            shutdown_timeout: Duration::from_secs(cli.shutdown_timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("rwsgi").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn module_with_callable_and_defaults() {
        let c = Config::from_cli(cli(&["--http", ":8000", "--module", "a.b:app"])).unwrap();
        assert_eq!(
            c.app,
            AppSource::Module {
                module: "a.b".into(),
                callable: "app".into()
            }
        );
        assert_eq!(c.processes, 1);
        assert_eq!(c.limits.buffer_size, 65536);
        assert!(c.access_log);
    }

    #[test]
    fn errors_name_the_flag_and_fix() {
        let cases: [(&[&str], &str); 6] = [
            (&["--http", ":80"], "--module"),
            (&["--module", "m"], "--http"),
            (
                &["--http", ":80", "--module", "m", "--processes", "0"],
                "--processes",
            ),
            (&["--http", ":99999", "--module", "m"], "65535"),
            (&["--http", ":80", "--module", "a..b"], "module path"),
            (
                &["--http", ":80", "--wsgi-file", "/nonexistent/app.py"],
                "no such file",
            ),
        ];
        for (args, needle) in cases {
            let e = Config::from_cli(cli(args)).unwrap_err();
            assert!(e.message().contains(needle), "{args:?}: {e}");
        }
    }
}
