//! How the worker finds the WSGI callable, and what can be checked of it
//! without Python.

use std::fmt;
use std::path::PathBuf;

use super::{err, ConfigError};

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

/// Checks what can be checked without Python: a file that is not there is a
/// clear error before any worker is forked.
pub(super) fn validate_app(app: &AppSource) -> Result<(), ConfigError> {
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
