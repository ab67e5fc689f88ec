//! Relative paths: one rule, applied once, whichever layer gave the path
//! (flag, `RWSGI_*`, TOML or uWSGI ini file).

use std::path::PathBuf;

use super::{err, ConfigError, ListenAddr};
use crate::cli::Cli;

/// `path` made absolute against the current (start) directory.
pub(super) fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) fn absolute_addr(addr: ListenAddr) -> ListenAddr {
    match addr {
        ListenAddr::Unix(p) => ListenAddr::Unix(absolute(&p)),
        other => other,
    }
}

/// The one rule for relative paths (rwsgi.toml(5), FILES AND PATHS): every
/// one — home, chdir, pythonpath, wsgi-file, unix sockets, logto, pidfile,
/// daemonize — is the start directory's, resolved once here, whichever
/// layer gave it. Workers see only absolute paths, so `--chdir` changes
/// nothing about them. A relative app path that exists only under
/// `--chdir` (uWSGI's reading) gets an error saying what to write.
pub(super) fn resolve_paths(cli: &mut Cli) -> Result<(), ConfigError> {
    let chdir = cli.chdir.clone();
    let resolve = |flag: &str, p: &mut PathBuf, exists: fn(&std::path::Path) -> bool| {
        if p.is_absolute() {
            return Ok(());
        }
        let abs = absolute(p);
        if let Some(under) = chdir.as_ref().map(|d| absolute(d).join(&*p)) {
            if !exists(&abs) && exists(&under) {
                return err(format!(
                    "{flag} {}: relative paths are the start directory's, not --chdir's \
                     (rwsgi.toml(5)); write {flag} {}",
                    p.display(),
                    under.display()
                ));
            }
        }
        *p = abs;
        Ok(())
    };
    if let Some(p) = cli.wsgi_file.as_mut() {
        resolve("--wsgi-file", p, |p| p.is_file())?;
    }
    if let Some(p) = cli.home.as_mut() {
        resolve("--home", p, |p| p.join("bin/python").exists())?;
    }
    for p in cli.pythonpath.iter_mut() {
        resolve("--pythonpath", p, |p| p.is_dir())?;
    }
    if let Some(p) = cli.chdir.as_mut() {
        *p = absolute(p);
    }
    Ok(())
}
