//! Supervision under real load (DESIGN §2), one file per behaviour:
//! - `crash`: a SIGKILLed worker is replaced, harakiri ends a stuck request,
//!   request crashes are replaced at once within the fork budget, and only
//!   workers that fail before they are ready back off;
//! - `reload`: HUP reloads drop nothing, a HUP storm stays within
//!   2 × processes + 1, and the master's phases follow Starting → Running →
//!   Reloading → Running → ShuttingDown;
//! - `recycle`: max-requests and reload-on-rss (also for idle workers),
//!   TTIN/TTOU;
//! - `shutdown`: TERM drains, INT is fast, --shutdown-delay;
//! - `orphan`: a SIGKILLed master's workers let go of the port;
//! - `upgrade`: USR2 hands the server to a new master without dropping a
//!   request, and a new master that fails leaves the old one serving.
//!
//! These tests run one at a time (`exclusive`): each drives the machine
//! hard, and their deadlines assume they do not compete with each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{app, is_rwsgi_process, send_signal, Server, PROMPT};
use crate::load::{
    get_once, get_request, Connection, Failure, Load, LoadSpec, Mode, Outcome, Reply,
};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Serialises the tests of this file (a failed test must not block the rest).
fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Log lines containing `pattern`.
fn count_log(server: &Server, pattern: &str) -> usize {
    server.log().iter().filter(|l| l.contains(pattern)).count()
}

/// Waits until at least `n` log lines contain `pattern`.
fn wait_log_count(server: &Server, pattern: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while count_log(server, pattern) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} log lines {pattern:?} within {timeout:?}; log:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the master's children until `pred` holds; returns them.
fn wait_children_where(
    server: &Server,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[u32]) -> bool,
) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let kids = server.children();
        if pred(&kids) {
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "children {kids:?}: {what} not within {timeout:?}; log:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The `(from, to)` of every `master phase: From -> To` line, in order.
fn phase_transitions(server: &Server) -> Vec<(String, String)> {
    server
        .log()
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("master phase: ")? + 14..];
            let (from, to) = rest.split_once(" -> ")?;
            Some((from.trim().to_string(), to.trim().to_string()))
        })
        .collect()
}

/// The number after `pid=` / `(pid ` in a log line.
fn pid_in(line: &str, marker: &str) -> u32 {
    let rest = &line[line
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in {line:?}"))
        + marker.len()..];
    rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())]
        .parse()
        .unwrap_or_else(|_| panic!("no pid after {marker:?} in {line:?}"))
}

/// A copy of `etc/apps/sup_app.py` in a fresh temporary directory, whose
/// `VERSION` the test rewrites (the server must serve the new code after HUP).
struct TempApp {
    dir: PathBuf,
    file: PathBuf,
    template: String,
}

impl TempApp {
    fn new(version: &str) -> TempApp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-supervision-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        let template = std::fs::read_to_string(app("sup_app.py")).expect("read sup_app.py");
        assert!(
            template.contains("\nVERSION = \"v1\"\n"),
            "sup_app.py changed"
        );
        let app = TempApp {
            file: dir.join("sup_app.py"),
            dir,
            template,
        };
        app.set_version(version);
        app
    }

    /// Rewrites the file. Each version has a different file size: CPython
    /// trusts a cached .pyc whose source has the same size and mtime (in whole
    /// seconds), so an equal-size rewrite within the second could go unseen.
    fn set_version(&self, version: &str) {
        self.set_version_with(version, "");
    }

    /// Like `set_version`, with Python `tail` run at the end of the import
    /// (a slow import, or one that fails).
    fn set_version_with(&self, version: &str, tail: &str) {
        let padding = "#".repeat(version.len() * 7 + tail.len() + 1);
        let text = self.template.replace(
            "\nVERSION = \"v1\"\n",
            &format!("\nVERSION = \"{version}\"  {padding}\n"),
        );
        // Written aside and renamed, so a worker importing meanwhile reads
        // either version whole, never a half-written file.
        let aside = self.dir.join("sup_app.py.new");
        std::fs::write(&aside, text + tail).expect("write the app");
        std::fs::rename(&aside, &self.file).expect("replace the app");
    }

    fn path(&self) -> String {
        self.file.to_string_lossy().into_owned()
    }
}

impl Drop for TempApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn body_text(o: &Outcome) -> String {
    String::from_utf8_lossy(o.body().unwrap_or_default()).into_owned()
}

mod crash;
mod orphan;
mod preload;
mod recycle;
mod reload;
mod shutdown;
mod upgrade;
