//! The Python rwsgi embeds is fixed when it is built (build.rs records it);
//! a virtualenv of another version cannot load its packages into it, so
//! `--home` is checked against it before any worker starts.

use std::path::Path;

/// The embedded Python's `major.minor`.
pub const EMBEDDED: &str = env!("EMBEDDED_PYTHON_VERSION");

/// The `major.minor` a virtualenv's `pyvenv.cfg` names (`version = 3.12.1`,
/// or uv's `version_info = 3.12.1.final.0`), if it names one.
pub fn venv_version(cfg: &str) -> Option<String> {
    cfg.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| matches!(k.trim(), "version" | "version_info"))
        .and_then(|(_, v)| {
            let mut parts = v.trim().split('.');
            let (major, minor) = (parts.next()?, parts.next()?);
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (digits(major) && digits(minor)).then(|| format!("{major}.{minor}"))
        })
}

/// Refuses a `--home` whose `pyvenv.cfg` names another `major.minor` than
/// the embedded Python, naming both and how to build rwsgi for the other.
/// A venv without `pyvenv.cfg` (or without a version in it) passes.
pub fn check_home(home: &Path) -> Result<(), String> {
    let Ok(cfg) = std::fs::read_to_string(home.join("pyvenv.cfg")) else {
        return Ok(());
    };
    match venv_version(&cfg) {
        Some(v) if v != EMBEDDED => Err(format!(
            "--home {}: the virtualenv is Python {v} (its pyvenv.cfg), but this rwsgi embeds \
             Python {EMBEDDED}, whose interpreter cannot load that venv's packages. Use a \
             Python {EMBEDDED} virtualenv, or build rwsgi for Python {v}: \
             PYO3_PYTHON=python{v} cargo install --path . (see rwsgi --version)",
            home.display()
        )),
        _ => Ok(()),
    }
}

/// `--post-fork` must name a module and a callable, both Python names.
pub fn check_post_fork(spec: &str) -> Result<String, String> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|p| {
                p.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && p.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    match spec.split_once(':') {
        Some((m, c)) if ident(m) && ident(c) && !c.contains('.') => Ok(spec.to_string()),
        _ => Err(format!(
            "--post-fork {spec:?}: expected MODULE:CALLABLE, like myapp.hooks:reopen_pools"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyvenv_cfg_versions() {
        let venv = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n";
        assert_eq!(venv_version(venv).as_deref(), Some("3.12"));
        let uv = "home = /x\nimplementation = CPython\nversion_info = 3.13.0.final.0\n";
        assert_eq!(venv_version(uv).as_deref(), Some("3.13"));
        assert_eq!(venv_version("home = /x\n"), None);
        assert_eq!(venv_version("version = banana\n"), None);
    }

    #[test]
    fn post_fork_names_a_module_and_a_callable() {
        assert!(check_post_fork("app.hooks:reopen").is_ok());
        for bad in ["app", "app:", ":f", "app:a.b", "1app:f", "app:f()", "a b:f"] {
            assert!(check_post_fork(bad).is_err(), "{bad}");
        }
    }
}
