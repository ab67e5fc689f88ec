//! The effective configuration: defaults merged with what the user gave, and
//! validated in one place. Everything downstream reads a `Config`, never flags.

mod file;
mod ini;
pub mod layers;
mod listen;
mod paths;
pub mod python;
pub mod ranges;
pub mod schema;
mod static_map;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Cli;
pub use crate::master::ReloadMode;
use paths::{absolute, absolute_addr, resolve_paths};

pub use listen::{parse_listen, ListenAddr, ListenSpec, Protocol};
pub use static_map::StaticMap;

/// How the worker finds the WSGI callable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// `package.module` plus the callable name.
    Module { module: String, callable: String },
    /// A Python file plus the callable name.
    File { path: PathBuf, callable: String },
}

impl fmt::Display for AppSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppSource::Module { module, callable } => write!(f, "{module}:{callable}"),
            AppSource::File { path, callable } => write!(f, "{}:{callable}", path.display()),
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

/// The process around the server: files, identity, environment.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    pub pidfile: Option<PathBuf>,
    /// `--daemonize`: detach and log to this file.
    pub daemonize: Option<PathBuf>,
    /// Where logs go (`--logto`, or the `--daemonize` file); stderr if None.
    pub logto: Option<PathBuf>,
    /// Workers drop to this uid/gid after fork.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub umask: Option<u32>,
    /// `--env KEY=VALUE` pairs for the app.
    pub env: Vec<(String, String)>,
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
    pub http_timeout: Duration,
    pub keepalive_timeout: Duration,
}

/// A configuration error: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    /// A message that echoes a huge value (a 100 MB key in a file, say) is
    /// cut in the middle: its start names the option, its end the fix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KEEP: usize = 600;
        let m = &self.0;
        if m.len() <= 3 * KEEP {
            return f.write_str(m);
        }
        // (str::floor_char_boundary is newer than our rust-version.)
        let head = (0..=KEEP)
            .rev()
            .find(|&i| m.is_char_boundary(i))
            .unwrap_or(0);
        let tail = (m.len() - KEEP..=m.len())
            .find(|&i| m.is_char_boundary(i))
            .unwrap_or(m.len());
        write!(
            f,
            "{}[... {} bytes cut ...]{}",
            &m[..head],
            tail - head,
            &m[tail..]
        )
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
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
        let callable = cli.callable.unwrap_or_else(|| "application".to_string());
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
                let addr = parse_listen(a).map_err(|e| ConfigError(format!("{flag} {a}: {e}")))?;
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
                            ConfigError(format!(
                                "--chmod-socket {m:?}: expected an octal mode like 660"
                            ))
                        })?,
                ),
                None => None,
            },
            owner: cli.chown_socket.clone(),
            vacuum: cli.vacuum,
        };

        let processes = cli.processes.unwrap_or(1);
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
            Some(spec) => Some(python::check_post_fork(spec).map_err(ConfigError)?),
            None => None,
        };
        let threads = cli.threads.unwrap_or(1);
        if threads == 0 || threads > crate::scoreboard::MAX_THREADS {
            return err(format!(
                "--threads {threads}: use 1 to {} app threads per worker",
                crate::scoreboard::MAX_THREADS
            ));
        }
        let log_level = match cli.log_level.as_deref().unwrap_or("info") {
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
        let buffer_size = cli.buffer_size.unwrap_or(64 * 1024);
        if buffer_size < 1024 {
            return err(format!(
                "--buffer-size {buffer_size} is too small for any real request; use at least 1024"
            ));
        }
        let max_headers = cli.max_headers.unwrap_or(100);
        if max_headers == 0 || max_headers > crate::protocol::http::MAX_HEADERS_CAP {
            return err(format!(
                "--max-headers must be between 1 and {}",
                crate::protocol::http::MAX_HEADERS_CAP
            ));
        }
        let secs = |v: Option<u64>, default: u64, name: &str| match v.unwrap_or(default) {
            0 => err(format!("--{name} must be at least 1 second")),
            s => Ok(Duration::from_secs(s)),
        };
        let limits = Limits {
            buffer_size,
            max_headers,
            limit_post: cli.limit_post.unwrap_or(0),
            post_buffering: cli.post_buffering.unwrap_or(1024 * 1024),
            http_timeout: secs(cli.http_timeout, 60, "http-timeout")?,
            keepalive_timeout: secs(cli.keepalive_timeout, 30, "keepalive-timeout")?,
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
            python::check_home(home).map_err(ConfigError)?;
        }
        let reload_mode = match cli.reload_mode.as_deref().unwrap_or("rolling") {
            "rolling" => ReloadMode::Rolling,
            "all" => ReloadMode::All,
            other => return err(format!("--reload-mode {other:?}: use rolling or all")),
        };
        let recycle = Recycle {
            max_requests: cli.max_requests.unwrap_or(0),
            max_requests_jitter: cli.max_requests_jitter.unwrap_or(0),
            reload_on_rss: cli.reload_on_rss.unwrap_or(0).saturating_mul(1024 * 1024),
            harakiri: cli.harakiri.filter(|&s| s > 0).map(Duration::from_secs),
            min_worker_lifetime: Duration::from_secs(cli.min_worker_lifetime.unwrap_or(1)),
        };
        let access = AccessLog {
            format: crate::log::access::Format::parse(
                cli.log_format.as_deref().unwrap_or("default"),
            )
            .map_err(ConfigError)?,
            x_forwarded_for: cli.log_x_forwarded_for,
            trusted: crate::log::access::Trusted::parse(
                cli.trusted_proxies.as_deref().unwrap_or("127.0.0.1,::1"),
            )
            .map_err(ConfigError)?,
            slow: cli.log_slow.map(Duration::from_millis),
        };
        let endpoint = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|a| {
                    parse_listen(a)
                        .map(absolute_addr)
                        .map_err(|e| ConfigError(format!("{flag} {a}: {e}")))
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
            shutdown_delay: Duration::from_secs(cli.shutdown_delay.unwrap_or(0)),
            reload_mode,
            listen,
            backlog: cli.listen.unwrap_or(1024).max(1),
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
            shutdown_timeout: Duration::from_secs(cli.shutdown_timeout.unwrap_or(30)),
        })
    }
}

fn process_options(cli: &Cli) -> Result<ProcessOptions, ConfigError> {
    let uid = match &cli.uid {
        Some(u) => Some(crate::socket::resolve_user(u).map_err(|_| {
            ConfigError(format!(
                "--uid {u:?}: no such user (give a name from /etc/passwd or a number)"
            ))
        })?),
        None => None,
    };
    let gid = match (&cli.gid, &cli.uid) {
        (Some(g), _) => Some(crate::socket::resolve_group(g).map_err(|_| {
            ConfigError(format!(
                "--gid {g:?}: no such group (give a name from /etc/group or a number)"
            ))
        })?),
        // Without --gid, the user's primary group.
        (None, Some(u)) => {
            let user = uid.and_then(|id| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id))
                    .ok()
                    .flatten()
            });
            match user {
                Some(user) => Some(user.gid.as_raw()),
                // Never leave the workers in root's group by accident.
                None => {
                    return err(format!(
                        "--uid {u}: this user has no passwd entry, so its group is unknown; give --gid too"
                    ))
                }
            }
        }
        (None, None) => None,
    };
    let umask = match &cli.umask {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|&v| v <= 0o777)
                .ok_or_else(|| {
                    ConfigError(format!("--umask {m:?}: expected an octal mask like 022"))
                })?,
        ),
        None => None,
    };
    let mut env = Vec::new();
    for kv in &cli.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                env.push((k.to_string(), v.to_string()))
            }
            _ => return err(format!("--env {kv:?}: expected KEY=VALUE")),
        }
    }
    Ok(ProcessOptions {
        // Absolute, from the start directory: workers reopen the log file
        // (USR1) after --chdir.
        pidfile: cli.pidfile.as_deref().map(absolute),
        daemonize: cli.daemonize.as_deref().map(absolute),
        logto: cli
            .logto
            .as_deref()
            .or(cli.daemonize.as_deref())
            .map(absolute),
        uid,
        gid,
        umask,
        env,
    })
}

/// Checks what can be checked without Python: a file that is not there is a
/// clear error before any worker is forked.
fn validate_app(app: &AppSource) -> Result<(), ConfigError> {
    match app {
        AppSource::File { path, callable } => {
            if callable.is_empty() {
                return err("--callable is empty");
            }
            if path.extension().is_some_and(|e| e != "py") || path.is_dir() {
                return err(format!(
                    "--wsgi-file {}: expected a Python file (.py)",
                    path.display()
                ));
            }
            // Relative paths were made absolute (resolve_paths).
            if path.is_absolute() && !path.is_file() {
                return err(format!("--wsgi-file {}: no such file", path.display()));
            }
            Ok(())
        }
        AppSource::Module { module, callable } => {
            if !module.is_empty() && module.bytes().all(|b| b.is_ascii_digit()) {
                return err(format!(
                    "--module {module:?} looks like a worker count: rwsgi's -w is uWSGI's \
                     --module; for {module} workers use --processes {module} (-p)"
                ));
            }
            let valid = !module.is_empty()
                && module
                    .split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
            if !valid {
                return err(format!(
                    "--module {module:?} is not a Python module path (like package.module:callable)"
                ));
            }
            if callable.is_empty() {
                return err(format!(
                    "--module {module}: the callable after ':' is empty"
                ));
            }
            if callable.contains('(') {
                return err(format!(
                    "--module {module}:{callable}: rwsgi calls no app factory; define the app \
                     in the module (application = {callable}) and name that"
                ));
            }
            Ok(())
        }
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
    fn a_huge_value_is_not_echoed_whole() {
        let key = "k".repeat(10_000_000);
        let e = ConfigError(format!("--x {key}\u{e9}: unknown; the fix")).to_string();
        assert!(e.len() < 2000, "{} bytes", e.len());
        assert!(
            e.starts_with("--x kkk") && e.ends_with("kk\u{e9}: unknown; the fix"),
            "{e}"
        );
        assert!(e.contains("bytes cut"), "{e}");
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
            assert!(e.0.contains(needle), "{args:?}: {e}");
        }
    }
}
