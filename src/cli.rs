//! Command-line flags. Names follow uWSGI's where one exists, so a uWSGI
//! user's command line mostly works as is; aliases cover Gunicorn habits.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rwsgi",
    // `--processes -1` is a bad value, not an unknown flag `-1`.
    allow_negative_numbers = true,
    version = VERSION,
    args_override_self = true,
    about = "A production application server for Python WSGI apps",
    long_about = "rwsgi runs a master process that binds the listening sockets and forks \
                  worker processes; each worker embeds CPython, imports the WSGI app and \
                  serves HTTP/1.1 requests. See rwsgi(1).",
    after_help = "Example:\n  rwsgi --http :8000 --module myproject.wsgi:application --processes 4"
)]
pub struct Cli {
    /// The app, as Gunicorn takes it: `package.module[:callable]`, or a `.py` file (same as --module / --wsgi-file)
    #[arg(value_name = "APP")]
    pub app: Option<String>,

    /// Read options from a TOML file (see rwsgi.toml(5)); flags and RWSGI_* variables override it
    #[arg(long, short = 'c', env = "RWSGI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Run a uWSGI ini file's [uwsgi] section (see rwsgi(1), MIGRATING); with --check-config, print it as rwsgi TOML
    #[arg(long, value_name = "FILE")]
    pub ini: Option<PathBuf>,

    /// Check the configuration, print the effective options and where each came from, and exit
    #[arg(long)]
    pub check_config: bool,

    /// Serve HTTP on ADDR (`:8000`, `127.0.0.1:8000`, `[::1]:8000`); repeatable. Without it
    /// or --socket, PORT (as platforms set it) means `:PORT`
    #[arg(long = "http", visible_aliases = ["http-socket", "bind"], value_name = "ADDR", help_heading = SERVER)]
    pub http: Vec<String>,

    /// Serve the uwsgi protocol (nginx `uwsgi_pass`) on ADDR: HOST:PORT or a unix socket path; repeatable
    #[arg(
        long = "socket",
        short = 's',
        visible_alias = "uwsgi-socket",
        value_name = "ADDR"
, help_heading = SERVER)]
    pub socket: Vec<String>,

    /// Permissions of unix sockets (octal) [default: 666 when given without a value]
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "666", help_heading = SERVER)]
    pub chmod_socket: Option<String>,

    /// Owner of unix sockets: USER[:GROUP], names or numbers
    #[arg(long, value_name = "USER[:GROUP]", help_heading = SERVER)]
    pub chown_socket: Option<String>,

    /// Remove unix socket files when rwsgi exits
    #[arg(long, help_heading = SERVER)]
    pub vacuum: bool,

    /// Listen backlog of each socket
    #[arg(long, short = 'l', value_name = "N", default_value_t = 1024, help_heading = SERVER, value_parser = whole::<u32>)]
    pub listen: u32,

    /// Hand TCP connections to workers as soon as they are set up, not when
    /// their first bytes arrive (turns TCP_DEFER_ACCEPT off)
    #[arg(long, help_heading = SERVER)]
    pub no_defer_accept: bool,

    /// Serve uWSGI-format stats JSON on ADDR (TCP or unix path): written on connect, as uwsgitop expects
    #[arg(long, value_name = "ADDR", help_heading = SERVER)]
    pub stats: Option<String>,

    /// Serve the --stats JSON as an HTTP response instead
    #[arg(long, help_heading = SERVER)]
    pub stats_http: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR", help_heading = SERVER)]
    pub metrics: Option<String>,

    /// Write the master's pid to PATH (removed on exit)
    #[arg(long, value_name = "PATH", help_heading = SERVER)]
    pub pidfile: Option<PathBuf>,

    /// Detach from the terminal and log to LOGFILE (never the default)
    #[arg(long, value_name = "LOGFILE", help_heading = SERVER)]
    pub daemonize: Option<PathBuf>,

    /// Run the workers as USER (name or number), after sockets are bound
    #[arg(long, value_name = "USER", help_heading = SERVER)]
    pub uid: Option<String>,

    /// Run the workers as GROUP (name or number) [default: the user's group]
    #[arg(long, value_name = "GROUP", help_heading = SERVER)]
    pub gid: Option<String>,

    /// File-mode creation mask (octal, e.g. 022), set at start
    #[arg(long, value_name = "MASK", help_heading = SERVER)]
    pub umask: Option<String>,

    /// The app as `package.module[:callable]`
    #[arg(long, short = 'w', visible_alias = "wsgi", value_name = "MODULE", help_heading = APP)]
    pub module: Option<String>,

    /// The app as a Python file defining the callable
    #[arg(long = "wsgi-file", visible_alias = "file", value_name = "PATH", help_heading = APP)]
    pub wsgi_file: Option<PathBuf>,

    /// Name of the WSGI callable in the module or file
    #[arg(long, value_name = "NAME", default_value = "application", help_heading = APP)]
    pub callable: String,

    /// Change to DIR before importing the app (in each worker)
    #[arg(long, value_name = "DIR", help_heading = APP)]
    pub chdir: Option<PathBuf>,

    /// Virtualenv to run the app in (its bin/python becomes sys.executable)
    #[arg(long, short = 'H', visible_aliases = ["venv", "virtualenv"], value_name = "DIR", help_heading = APP)]
    pub home: Option<PathBuf>,

    /// Add DIR to sys.path before importing the app; repeatable
    #[arg(long, visible_alias = "pp", value_name = "DIR", help_heading = APP)]
    pub pythonpath: Vec<PathBuf>,

    /// Set KEY=VALUE in the app's environment; repeatable
    #[arg(long, value_name = "KEY=VALUE", help_heading = APP)]
    pub env: Vec<String>,

    /// Import the app once in a template process and fork the workers from
    /// it (copy-on-write memory; HUP still loads new code)
    #[arg(long, help_heading = APP)]
    pub preload: bool,

    /// Each worker imports the app itself after its fork (the default;
    /// turns --preload off wherever it was set)
    #[arg(long, help_heading = APP)]
    pub lazy_apps: bool,

    /// Call MODULE:CALLABLE in each worker right after its fork (reopen
    /// database pools, APM exporters); see also @rwsgi.postfork
    #[arg(long, value_name = "MODULE:CALLABLE", help_heading = APP)]
    pub post_fork: Option<String>,

    /// Number of worker processes (WEB_CONCURRENCY, as Heroku and Gunicorn
    /// read it, sets it when nothing else does)
    #[arg(
        long,
        short = 'p',
        visible_alias = "workers",
        value_name = "N",
        default_value_t = 1
, help_heading = WORKERS, value_parser = whole::<usize>)]
    pub processes: usize,

    /// App threads per worker: each serves one request at a time, so N > 1
    /// lets a worker serve others while a request waits on a database or an
    /// API
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = WORKERS, value_parser = whole::<usize>)]
    pub threads: usize,

    /// Retire a worker after N requests (its replacement starts first); 0 = never
    #[arg(
        long,
        visible_alias = "max-requests-per-worker",
        value_name = "N",
        default_value_t = 0
, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub max_requests: u64,

    /// Add a random 0..=J to each worker's --max-requests, so workers do not retire together
    #[arg(long, value_name = "J", default_value_t = 0, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub max_requests_jitter: u64,

    /// Retire a worker whose resident memory exceeds MB megabytes; 0 = never
    #[arg(long, value_name = "MB", default_value_t = 0, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub reload_on_rss: u64,

    /// A worker is not recycled (max-requests, rss) before it has lived SECONDS
    #[arg(long, value_name = "SECONDS", default_value_t = 1, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub min_worker_lifetime: u64,

    /// Kill and replace a worker whose request runs longer than SECONDS; 0 = never
    #[arg(
        long,
        visible_alias = "timeout",
        value_name = "SECONDS",
        default_value_t = 0
, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub harakiri: u64,

    /// Seconds workers get to finish in-flight requests on SIGTERM
    #[arg(long, value_name = "SECONDS", default_value_t = 30, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub shutdown_timeout: u64,

    /// On SIGTERM, keep serving SECONDS before draining (for load balancers)
    #[arg(long, value_name = "SECONDS", default_value_t = 0, help_heading = WORKERS, value_parser = whole::<u64>)]
    pub shutdown_delay: u64,

    /// How HUP replaces workers: `rolling` (one at a time) or `all`
    #[arg(long, value_name = "MODE", default_value = "rolling", help_heading = WORKERS)]
    pub reload_mode: String,

    /// Largest request head in bytes (request line + headers)
    #[arg(long, short = 'b', value_name = "BYTES", default_value_t = 65536, help_heading = LIMITS, value_parser = whole::<usize>)]
    pub buffer_size: usize,

    /// Most headers accepted in one request
    #[arg(long, value_name = "N", default_value_t = 100, help_heading = LIMITS, value_parser = whole::<usize>)]
    pub max_headers: usize,

    /// Largest request body in bytes; 0 means unlimited
    #[arg(long, value_name = "BYTES", default_value_t = 0, help_heading = LIMITS, value_parser = whole::<u64>)]
    pub limit_post: u64,

    /// Request bodies larger than BYTES are spooled to a temp file instead of memory
    #[arg(long, value_name = "BYTES", default_value_t = 1048576, help_heading = LIMITS, value_parser = whole::<usize>)]
    pub post_buffering: usize,

    /// Request bodies being received may hold at most BYTES of a worker's memory in all; past that they are spooled to temp files
    #[arg(long, value_name = "BYTES", default_value_t = 67108864, help_heading = LIMITS, value_parser = whole::<usize>)]
    pub body_memory: usize,

    /// Seconds a client may stay silent mid-request, or take to accept response bytes
    #[arg(long, value_name = "SECONDS", default_value_t = 60, help_heading = LIMITS, value_parser = whole::<u64>)]
    pub http_timeout: u64,

    /// Seconds an idle keep-alive connection is kept open
    #[arg(
        long,
        visible_alias = "keep-alive",
        value_name = "SECONDS",
        default_value_t = 30
, help_heading = LIMITS, value_parser = whole::<u64>)]
    pub keepalive_timeout: u64,

    /// Log level: error, warn (or warning), info, debug or trace, in any case
    #[arg(long, value_name = "LEVEL", default_value = "info", help_heading = LOG)]
    pub log_level: String,

    /// Turn the access log (one line per request) off
    #[arg(long, short = 'L', help_heading = LOG)]
    pub disable_logging: bool,

    /// Access-log format: default, combined, json, or a template with %(var) placeholders (see rwsgi(1))
    #[arg(long, value_name = "FORMAT", default_value = "default", help_heading = LOG)]
    pub log_format: String,

    /// Log the first X-Forwarded-For address as the client (only from --trusted-proxies)
    #[arg(long, help_heading = LOG)]
    pub log_x_forwarded_for: bool,

    /// Peers whose X-Forwarded-For is believed: IPs or networks, comma-separated
    #[arg(long, value_name = "LIST", default_value = "127.0.0.1,::1", help_heading = LOG)]
    pub trusted_proxies: String,

    /// Log requests slower than MS milliseconds, even with the access log off
    #[arg(long, value_name = "MS", help_heading = LOG, value_parser = whole::<u64>)]
    pub log_slow: Option<u64>,

    /// Log to FILE instead of stderr (reopened on SIGUSR1, for logrotate)
    #[arg(long, value_name = "FILE", help_heading = LOG)]
    pub logto: Option<PathBuf>,

    /// Serve files under URL_PREFIX from DIR without Python (GET and HEAD); repeatable, the longest prefix wins
    #[arg(long, value_name = "URL_PREFIX=DIR", help_heading = STATIC)]
    pub static_map: Vec<String>,

    /// File served for a --static-map directory requested with a trailing slash (e.g. index.html)
    #[arg(long, value_name = "FILE", help_heading = STATIC)]
    pub static_index: Option<String>,

    /// Cache-Control max-age for static files, in seconds (hashed names are always immutable)
    #[arg(long, value_name = "SECONDS", help_heading = STATIC, value_parser = whole::<u64>)]
    pub static_expires: Option<u64>,

    /// uWSGI's flag; rwsgi always runs a master process
    #[arg(long, short = 'M', help_heading = COMPAT)]
    pub master: bool,

    /// uWSGI's flag; SIGTERM always shuts rwsgi down gracefully
    #[arg(long, help_heading = COMPAT)]
    pub die_on_term: bool,

    /// uWSGI's flag; the app's Python threads always run (the GIL is released while a worker waits)
    #[arg(long, short = 'T', help_heading = COMPAT)]
    pub enable_threads: bool,

    /// uWSGI's flag; rwsgi always exits (status 4) when the app cannot be loaded
    #[arg(long, help_heading = COMPAT)]
    pub need_app: bool,

    /// uWSGI's flag; each worker always has exactly one interpreter
    #[arg(long, help_heading = COMPAT)]
    pub single_interpreter: bool,

    /// uWSGI's flag; not needed: workers balance new connections among themselves, without an accept lock
    #[arg(long, help_heading = COMPAT)]
    pub thunder_lock: bool,

    /// uWSGI's flag; rwsgi always refuses unknown flags and configuration-file keys
    #[arg(long, help_heading = COMPAT)]
    pub strict: bool,
}

/// The unsigned types number options take.
pub trait Whole: std::str::FromStr + std::fmt::Display {
    const MAX: Self;
}
impl Whole for u32 {
    const MAX: u32 = u32::MAX;
}
impl Whole for u64 {
    const MAX: u64 = u64::MAX;
}
impl Whole for usize {
    const MAX: usize = usize::MAX;
}

/// A number option's value: a whole number, 0 or more, that fits its type;
/// what is wrong is said in words (clap prints the option and the value).
pub fn whole<T: Whole>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| {
        let all_digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        let digits = all_digits(value.strip_prefix('+').unwrap_or(value));
        if value.strip_prefix('-').is_some_and(all_digits) {
            "a negative number; use 0 or more".to_string()
        } else if digits {
            format!("too large; at most {}", T::MAX)
        } else {
            "not a whole number (digits only, e.g. 30)".to_string()
        }
    })
}

/// `--version`: rwsgi's, and the Python it embeds (fixed at build time;
/// `PYO3_PYTHON` chooses another, see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (embedded Python ",
    env!("EMBEDDED_PYTHON_VERSION"),
    ", libpython in ",
    env!("EMBEDDED_PYTHON_LIBDIR"),
    ")"
);

const COMPAT: &str = "Accepted for uWSGI compatibility (rwsgi always behaves so)";

// Each option's help heading names its table in the TOML file
// (`config::schema`): the flag's definition is the option's.
pub const SERVER: &str = "Server [server]";
pub const APP: &str = "App [app]";
pub const WORKERS: &str = "Workers [workers]";
pub const LIMITS: &str = "Limits [limits]";
pub const LOG: &str = "Logging [log]";
pub const STATIC: &str = "Static files [static]";

/// The names of those flags (without `--`), in field order (see
/// `compat_flags`), also for messages about config keys.
pub const COMPAT_FLAGS: &[&str] = &[
    "master",
    "die-on-term",
    "enable-threads",
    "need-app",
    "single-interpreter",
    "thunder-lock",
    "strict",
];

impl Cli {
    /// The uWSGI flags given that only restate what rwsgi always does, so
    /// the log can say they change nothing.
    pub fn compat_flags(&self) -> Vec<&'static str> {
        let given = [
            self.master,
            self.die_on_term,
            self.enable_threads,
            self.need_app,
            self.single_interpreter,
            self.thunder_lock,
            self.strict,
        ];
        COMPAT_FLAGS
            .iter()
            .zip(given)
            .filter_map(|(name, given)| given.then_some(*name))
            .collect()
    }
}
