//! Command-line flags. Names follow uWSGI's where one exists, so a uWSGI
//! user's command line mostly works as is; aliases cover Gunicorn habits.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Default)]
#[command(
    name = "rwsgi",
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

    /// Serve HTTP on ADDR (`:8000`, `127.0.0.1:8000`, `[::1]:8000`); repeatable
    #[arg(long = "http", visible_aliases = ["http-socket", "bind"], value_name = "ADDR")]
    pub http: Vec<String>,

    /// Serve the uwsgi protocol (nginx `uwsgi_pass`) on ADDR: HOST:PORT or a unix socket path; repeatable
    #[arg(
        long = "socket",
        short = 's',
        visible_alias = "uwsgi-socket",
        value_name = "ADDR"
    )]
    pub socket: Vec<String>,

    /// Permissions of unix sockets (octal) [default: 666 when given without a value]
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "666")]
    pub chmod_socket: Option<String>,

    /// Owner of unix sockets: USER[:GROUP], names or numbers
    #[arg(long, value_name = "USER[:GROUP]")]
    pub chown_socket: Option<String>,

    /// Remove unix socket files when rwsgi exits
    #[arg(long)]
    pub vacuum: bool,

    /// Serve uWSGI-format stats JSON on ADDR (TCP or unix path): written on connect, as uwsgitop expects
    #[arg(long, value_name = "ADDR")]
    pub stats: Option<String>,

    /// Serve the --stats JSON as an HTTP response instead
    #[arg(long)]
    pub stats_http: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Write the master's pid to PATH (removed on exit)
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,

    /// Detach from the terminal and log to LOGFILE (never the default)
    #[arg(long, value_name = "LOGFILE")]
    pub daemonize: Option<PathBuf>,

    /// Run the workers as USER (name or number), after sockets are bound
    #[arg(long, value_name = "USER")]
    pub uid: Option<String>,

    /// Run the workers as GROUP (name or number) [default: the user's group]
    #[arg(long, value_name = "GROUP")]
    pub gid: Option<String>,

    /// File-mode creation mask (octal, e.g. 022), set at start
    #[arg(long, value_name = "MASK")]
    pub umask: Option<String>,

    /// Set KEY=VALUE in the app's environment; repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Log to FILE instead of stderr (reopened on SIGUSR1, for logrotate)
    #[arg(long, value_name = "FILE")]
    pub logto: Option<PathBuf>,

    /// Number of worker processes [default: 1]
    #[arg(long, short = 'p', visible_alias = "workers", value_name = "N")]
    pub processes: Option<usize>,

    /// App threads per worker: each serves one request at a time, so N > 1
    /// lets a worker serve others while a request waits on a database or an
    /// API [default: 1]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// The app as `package.module[:callable]`
    #[arg(long, short = 'w', visible_alias = "wsgi", value_name = "MODULE")]
    pub module: Option<String>,

    /// The app as a Python file defining the callable
    #[arg(long = "wsgi-file", visible_alias = "file", value_name = "PATH")]
    pub wsgi_file: Option<PathBuf>,

    /// Name of the WSGI callable in the module or file [default: application]
    #[arg(long, value_name = "NAME")]
    pub callable: Option<String>,

    /// Change to DIR before importing the app (in each worker)
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Virtualenv to run the app in (its bin/python becomes sys.executable)
    #[arg(long, short = 'H', visible_aliases = ["venv", "virtualenv"], value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Import the app once in a template process and fork the workers from
    /// it (copy-on-write memory; HUP still loads new code)
    #[arg(long)]
    pub preload: bool,

    /// Each worker imports the app itself after its fork (the default;
    /// turns --preload off wherever it was set)
    #[arg(long)]
    pub lazy_apps: bool,

    /// Call MODULE:CALLABLE in each worker right after its fork (reopen
    /// database pools, APM exporters); see also @rwsgi.postfork
    #[arg(long, value_name = "MODULE:CALLABLE")]
    pub post_fork: Option<String>,

    /// Add DIR to sys.path before importing the app; repeatable
    #[arg(long, visible_alias = "pp", value_name = "DIR")]
    pub pythonpath: Vec<PathBuf>,

    /// Log level: error, warn, info, debug or trace [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Turn the access log (one line per request) off
    #[arg(long, short = 'L')]
    pub disable_logging: bool,

    /// Access-log format: default, combined, json, or a template with %(var) placeholders (see rwsgi(1)) [default: default]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log the first X-Forwarded-For address as the client (only from --trusted-proxies)
    #[arg(long)]
    pub log_x_forwarded_for: bool,

    /// Peers whose X-Forwarded-For is believed: IPs or networks, comma-separated [default: 127.0.0.1,::1]
    #[arg(long, value_name = "LIST")]
    pub trusted_proxies: Option<String>,

    /// Log requests slower than MS milliseconds, even with the access log off
    #[arg(long, value_name = "MS")]
    pub log_slow: Option<u64>,

    /// Largest request head in bytes (request line + headers) [default: 65536]
    #[arg(long, short = 'b', value_name = "BYTES")]
    pub buffer_size: Option<usize>,

    /// Most headers accepted in one request [default: 100]
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,

    /// Largest request body in bytes; 0 means unlimited [default: 0]
    #[arg(long, value_name = "BYTES")]
    pub limit_post: Option<u64>,

    /// Request bodies larger than BYTES are spooled to a temp file instead of memory [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub post_buffering: Option<usize>,

    /// Request bodies being received may hold at most BYTES of a worker's memory in all; past that they are spooled to temp files [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    pub body_memory: Option<usize>,

    /// Seconds a client may stay silent mid-request, or take to accept response bytes [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub http_timeout: Option<u64>,

    /// Seconds an idle keep-alive connection is kept open [default: 30]
    #[arg(long, visible_alias = "keep-alive", value_name = "SECONDS")]
    pub keepalive_timeout: Option<u64>,

    /// Seconds workers get to finish in-flight requests on SIGTERM [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_timeout: Option<u64>,

    /// Retire a worker after N requests (its replacement starts first); 0 = never [default: 0]
    #[arg(long, visible_alias = "max-requests-per-worker", value_name = "N")]
    pub max_requests: Option<u64>,

    /// Add a random 0..=J to each worker's --max-requests, so workers do not retire together [default: 0]
    #[arg(long, value_name = "J")]
    pub max_requests_jitter: Option<u64>,

    /// Retire a worker whose resident memory exceeds MB megabytes; 0 = never [default: 0]
    #[arg(long, value_name = "MB")]
    pub reload_on_rss: Option<u64>,

    /// Kill and replace a worker whose request runs longer than SECONDS; 0 = never [default: 0]
    #[arg(long, visible_alias = "timeout", value_name = "SECONDS")]
    pub harakiri: Option<u64>,

    /// A worker is not recycled (max-requests, rss) before it has lived SECONDS [default: 1]
    #[arg(long, value_name = "SECONDS")]
    pub min_worker_lifetime: Option<u64>,

    /// On SIGTERM, keep serving SECONDS before draining (for load balancers) [default: 0]
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_delay: Option<u64>,

    /// How HUP replaces workers: `rolling` (one at a time) or `all` [default: rolling]
    #[arg(long, value_name = "MODE")]
    pub reload_mode: Option<String>,

    /// Listen backlog of each socket [default: 1024]
    #[arg(long, short = 'l', value_name = "N")]
    pub listen: Option<u32>,

    /// Hand TCP connections to workers as soon as they are set up, not when
    /// their first bytes arrive (turns TCP_DEFER_ACCEPT off)
    #[arg(long)]
    pub no_defer_accept: bool,

    /// Serve files under URL_PREFIX from DIR without Python (GET and HEAD); repeatable, the longest prefix wins
    #[arg(long, value_name = "URL_PREFIX=DIR")]
    pub static_map: Vec<String>,

    /// File served for a --static-map directory requested with a trailing slash (e.g. index.html)
    #[arg(long, value_name = "FILE")]
    pub static_index: Option<String>,

    /// Cache-Control max-age for static files, in seconds (hashed names are always immutable)
    #[arg(long, value_name = "SECONDS")]
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
