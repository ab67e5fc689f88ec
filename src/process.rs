//! The master process's surroundings, set up before any socket is bound:
//! detaching (`--daemonize`), the log file (`--logto`), the umask, the app's
//! environment (`--env`), and the pidfile.

use std::path::Path;

use crate::config::Config;
use crate::sys;

/// Applies the process options. Called before logging is set up, so errors
/// go back to `main` as text.
pub fn prepare(config: &Config) -> Result<(), String> {
    let p = &config.process;
    if let Some(mask) = p.umask {
        sys::set_umask(mask);
    }
    if let Some(path) = &p.logto {
        // Open it before detaching, so a bad path is reported on the terminal.
        sys::redirect_output(path).map_err(|e| format!("cannot log to {}: {e}", path.display()))?;
        give_log_to_workers(config, path);
    }
    if p.daemonize.is_some() {
        sys::daemonize().map_err(|e| format!("cannot daemonize: {e}"))?;
    }
    for (k, v) in &p.env {
        // Single-threaded here, before any fork: nothing reads the
        // environment concurrently.
        std::env::set_var(k, v);
    }
    Ok(())
}

/// Writes the master's pid to the pidfile (if one is configured).
pub fn write_pidfile(config: &Config) -> Result<(), String> {
    let Some(path) = &config.process.pidfile else {
        return Ok(());
    };
    std::fs::write(path, format!("{}\n", sys::getpid()))
        .map_err(|e| format!("--pidfile {}: {e}", path.display()))
}

/// Removes the pidfile on exit, unless another process has taken it over.
pub fn remove_pidfile(path: Option<&Path>) {
    if let Some(path) = path {
        if is_ours(path) {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("cannot remove --pidfile {}: {e}", path.display());
            }
        }
    }
}

/// Workers that run as `--uid`/`--gid` must be able to reopen the log file
/// too (on SIGUSR1), so the file the master creates is theirs.
fn give_log_to_workers(config: &Config, path: &Path) {
    let p = &config.process;
    if (p.uid.is_some() || p.gid.is_some()) && sys::getuid() == 0 {
        if let Err(e) = std::os::unix::fs::chown(path, p.uid, p.gid) {
            log::warn!("cannot hand {} to the workers' user: {e}", path.display());
        }
    }
}

fn is_ours(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        == Some(sys::getpid())
}

/// SIGUSR1: reopen the log file (after logrotate moved it).
pub fn reopen_log(config: &Config) {
    if let Some(path) = &config.process.logto {
        match sys::redirect_output(path) {
            Ok(()) => {
                give_log_to_workers(config, path);
                log::info!("reopened the log file {}", path.display());
            }
            Err(e) => log::error!("cannot reopen the log file {}: {e}", path.display()),
        }
    }
}
