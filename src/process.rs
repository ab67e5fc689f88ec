//! The master process's surroundings, set up before any socket is bound:
//! detaching (`--daemonize`), the log file (`--logto`), the umask, the app's
//! environment (`--env`), and the pidfile.
//!
//! The master may run as root while the workers' user can write the log or
//! pid directory, and could swap the file for a symbolic link or a hard link
//! to a file of root's. So neither file is opened through a link, the log
//! file is checked and chowned through the opened descriptor, and the
//! pidfile is written to a new file and renamed into place.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::log::sink::{self, StdFds};
use crate::sys;

/// Applies the process options. Called before logging is set up, so errors
/// go back to `main` as text.
///
/// # Safety
/// The process must be single-threaded: `--daemonize` forks, and the
/// environment (`--env`) is written.
pub unsafe fn prepare(config: &Config) -> Result<(), String> {
    let p = &config.process;
    if let Some(mask) = p.umask {
        sys::set_umask(mask);
    }
    if let Some(path) = &p.logto {
        // Open it before detaching, so a bad path is reported on the terminal.
        let file = open_log(config, path)?;
        sink::redirect(&file, StdFds::Always)
            .map_err(|e| format!("--logto {}: {e}", path.display()))?;
    }
    if p.daemonize.is_some() {
        // SAFETY: single-threaded (this function's contract).
        unsafe { sys::daemonize() }.map_err(|e| format!("cannot daemonize: {e}"))?;
    }
    for (k, v) in &p.env {
        // Single-threaded here, before any fork: nothing reads the
        // environment concurrently.
        std::env::set_var(k, v);
    }
    Ok(())
}

/// Why a file rwsgi writes as root is refused: the path, the reason, the fix.
fn refused(flag: &str, path: &Path, why: &str, fix: &str) -> String {
    format!("{flag} {}: {why}; {fix}", path.display())
}

fn symlink_refused(flag: &str, path: &Path) -> String {
    refused(
        flag,
        path,
        "is a symbolic link, and rwsgi does not follow links for its log and pid files \
         (whoever can replace the link could make rwsgi write to, or chown, any file)",
        "give the real path (`readlink -f`)",
    )
}

/// Checks an existing regular file's owner and links: it must belong to one
/// of `owners` and have no other name (a hard link to a file of root's).
fn check_file(flag: &str, path: &Path, meta: &Metadata, owners: &[u32]) -> Result<(), String> {
    if !owners.contains(&meta.uid()) {
        let list: Vec<String> = owners.iter().map(u32::to_string).collect();
        return Err(refused(
            flag,
            path,
            &format!(
                "is owned by uid {}, not by rwsgi's user or the workers' (uid {})",
                meta.uid(),
                list.join(" or ")
            ),
            "remove the file, or chown it if it is really rwsgi's",
        ));
    }
    if meta.nlink() > 1 {
        return Err(refused(
            flag,
            path,
            &format!(
                "has {} hard links (it may be another file's name)",
                meta.nlink()
            ),
            "remove this name and let rwsgi create the file",
        ));
    }
    Ok(())
}

/// Opens the log file for appending without following a symbolic link,
/// refuses one that someone unexpected owns, and (as root, with
/// `--uid`/`--gid`) hands it to the workers' user through the open
/// descriptor, so they can reopen it on SIGUSR1.
fn open_log(config: &Config, path: &Path) -> Result<File, String> {
    let p = &config.process;
    let flag = "--logto";
    // The kernel's names for our own stdout/stderr (`--logto /dev/stdout` in
    // a container) are links nobody else can plant: they may be followed.
    let own_stream = matches!(
        path.to_str(),
        Some("/dev/stdout" | "/dev/stderr" | "/proc/self/fd/1" | "/proc/self/fd/2")
    );
    let nofollow = if own_stream { 0 } else { libc::O_NOFOLLOW };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        // Non-blocking so that a FIFO nobody reads fails instead of hanging.
        .custom_flags(nofollow | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if is_symlink(path) => symlink_refused(flag, path),
            _ => format!("cannot log to {}: {e}", path.display()),
        })?;
    use std::os::fd::AsRawFd;
    sys::clear_nonblocking(file.as_raw_fd())
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if !meta.is_file() {
        // A terminal, /dev/null or a FIFO: nothing to chown, no link to fear.
        return Ok(file);
    }
    // Root's own files are no trap (only a hard link to one is, checked too).
    let owners: Vec<u32> = [Some(0), Some(sys::geteuid()), p.uid]
        .into_iter()
        .flatten()
        .collect();
    check_file(flag, path, &meta, &owners)?;
    let wants_chown = (p.uid.is_some_and(|u| u != meta.uid())
        || p.gid.is_some_and(|g| g != meta.gid()))
        && sys::geteuid() == 0;
    if wants_chown {
        if let Err(e) = std::os::unix::fs::fchown(&file, p.uid, p.gid) {
            return Err(format!(
                "{flag} {}: cannot hand it to the workers' user (--uid/--gid): {e}",
                path.display()
            ));
        }
    }
    Ok(file)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Writes the master's pid to the pidfile (if one is configured): to a new
/// file in the same directory, renamed over the path, so neither a symbolic
/// link nor a hard link at the path is written through.
pub fn write_pidfile(config: &Config) -> Result<(), String> {
    let Some(path) = &config.process.pidfile else {
        return Ok(());
    };
    let flag = "--pidfile";
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(flag, path)),
        Ok(m) if m.is_file() => {
            if m.uid() != sys::geteuid() && m.uid() != 0 {
                return Err(refused(
                    flag,
                    path,
                    &format!(
                        "is owned by uid {}, not by rwsgi's user (uid {})",
                        m.uid(),
                        sys::geteuid()
                    ),
                    "remove the file, or chown it if it is really rwsgi's",
                ));
            }
        }
        Ok(_) => {
            return Err(refused(
                flag,
                path,
                "is not a regular file",
                "give the path of a file",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{flag} {}: {e}", path.display())),
    }
    let (tmp, mut file) =
        new_sibling(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let written = file
        .write_all(format!("{}\n", sys::getpid()).as_bytes())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{flag} {}: {e}", path.display()));
    }
    Ok(())
}

/// Creates a new file (O_EXCL: never an existing file or link) next to
/// `path`, named after it and this process.
fn new_sibling(path: &Path) -> io::Result<(PathBuf, File)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut last = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name");
    for attempt in 0..16 {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{attempt}.tmp", sys::getpid()));
        let tmp = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
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

fn is_ours(path: &Path) -> bool {
    let mut text = String::new();
    let read = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.take(64).read_to_string(&mut text));
    read.is_ok() && text.trim().parse::<i32>().ok() == Some(sys::getpid())
}

/// SIGUSR1: reopen the log file (after logrotate moved it), in the master
/// and in each worker. fd 1 and 2 follow only where they still show the log.
pub fn reopen_log(config: &Config) {
    if let Some(path) = &config.process.logto {
        match open_log(config, path).and_then(|f| {
            sink::redirect(&f, StdFds::IfStillLog).map_err(|e| format!("{}: {e}", path.display()))
        }) {
            Ok(()) => log::info!("reopened the log file {}", path.display()),
            Err(e) => log::error!("cannot reopen the log file: {e}"),
        }
    }
}
