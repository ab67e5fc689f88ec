//! Finding the WSGI callable: `--module pkg.mod[:callable]` or `--wsgi-file`.
//! Every failure is one message naming what was looked for, plus the Python
//! traceback where there is one.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

/// Where the WSGI callable is (the worker builds it from the configuration;
/// the bridge depends on no configuration type).
#[derive(Debug, Clone, Copy)]
pub enum AppSource<'a> {
    /// `package.module` plus the callable name.
    Module { module: &'a str, callable: &'a str },
    /// A Python file plus the callable name.
    File { path: &'a Path, callable: &'a str },
}

/// Adds `dirs` to the front of `sys.path`, in order.
pub fn extend_sys_path(py: Python<'_>, dirs: &[PathBuf]) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    for (i, d) in dirs.iter().enumerate() {
        let abs = std::path::absolute(d).unwrap_or_else(|_| d.clone());
        path.insert(i, abs.to_string_lossy().as_ref())?;
    }
    Ok(())
}

/// Imports the app and returns the callable.
pub fn load<'py>(py: Python<'py>, source: AppSource<'_>) -> Result<Bound<'py, PyAny>, String> {
    // The current directory (after --chdir) is importable, as in Gunicorn and
    // uWSGI: Django's `--chdir project --wsgi-file project/wsgi.py` imports
    // `project.settings` from it.
    if let Ok(cwd) = std::env::current_dir() {
        let _ = extend_sys_path(py, &[cwd]);
    }
    match source {
        AppSource::Module { module, callable } => {
            let m = py.import(module).map_err(|e| {
                format!(
                    "cannot import module {module:?} (cwd {}): {}",
                    cwd_display(),
                    super::format_exception(py, &e)
                )
            })?;
            get_callable(py, m.as_any(), callable, &format!("module {module:?}"))
        }
        AppSource::File { path, callable } => {
            let m = exec_file(py, path)?;
            get_callable(
                py,
                &m,
                callable,
                &format!("file {:?}", path.display().to_string()),
            )
        }
    }
}

fn cwd_display() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn get_callable<'py>(
    py: Python<'py>,
    module: &Bound<'py, PyAny>,
    callable: &str,
    what: &str,
) -> Result<Bound<'py, PyAny>, String> {
    let obj = match module.getattr_opt(callable) {
        Ok(Some(obj)) => obj,
        Ok(None) => {
            let candidates = callable_names(py, module);
            return Err(format!(
                "{what} has no callable {callable:?}{}; name it with --callable or module:callable",
                if candidates.is_empty() {
                    String::new()
                } else {
                    format!(" (it defines: {})", candidates.join(", "))
                }
            ));
        }
        Err(e) => return Err(format!("{what}: {}", super::format_exception(py, &e))),
    };
    if !obj.is_callable() {
        return Err(format!("{what}: {callable:?} is not callable"));
    }
    Ok(obj)
}

/// Names of the module's public callables, as a hint in the error message.
fn callable_names(py: Python<'_>, module: &Bound<'_, PyAny>) -> Vec<String> {
    let Ok(dict) = module.getattr(pyo3::intern!(py, "__dict__")) else {
        return Vec::new();
    };
    let Ok(items) = dict.call_method0("items").and_then(|i| i.try_iter()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = items
        .flatten()
        .filter_map(|pair| {
            let (name, value): (Bound<'_, PyString>, Bound<'_, PyAny>) = pair.extract().ok()?;
            let name = name.to_string();
            let is_module = value.is_instance_of::<pyo3::types::PyModule>();
            (!name.starts_with('_') && value.is_callable() && !is_module).then_some(name)
        })
        .collect();
    names.sort();
    names.truncate(8);
    names
}

/// Runs a Python file as a module (named after the file, importable by that
/// name unless it would shadow one already loaded) and returns the module.
fn exec_file<'py>(py: Python<'py>, path: &Path) -> Result<Bound<'py, PyAny>, String> {
    if !path.is_file() {
        return Err(format!(
            "--wsgi-file {}: no such file (cwd {})",
            path.display(),
            cwd_display()
        ));
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(dir) = abs.parent() {
        let _ = extend_sys_path(py, &[dir.to_path_buf()]);
    }
    let stem = abs
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let run = || -> PyResult<Bound<'py, PyAny>> {
        let sys_modules = py.import("sys")?.getattr("modules")?;
        let valid = !stem.is_empty() && stem.chars().all(|c| c.is_alphanumeric() || c == '_');
        let name = if valid && !sys_modules.contains(stem.as_str())? {
            stem.clone()
        } else {
            format!(
                "rwsgi_file_{}",
                stem.replace(|c: char| !c.is_alphanumeric(), "_")
            )
        };
        let util = py.import("importlib.util")?;
        let file = abs.to_string_lossy();
        let spec = util.call_method1("spec_from_file_location", (name.as_str(), file.as_ref()))?;
        let module = util.call_method1("module_from_spec", (&spec,))?;
        sys_modules.set_item(name.as_str(), &module)?;
        if let Err(e) = spec
            .getattr("loader")?
            .call_method1("exec_module", (&module,))
        {
            let _ = sys_modules.del_item(name.as_str());
            return Err(e);
        }
        Ok(module)
    };
    run().map_err(|e| {
        format!(
            "cannot load --wsgi-file {}: {}",
            path.display(),
            super::format_exception(py, &e)
        )
    })
}
