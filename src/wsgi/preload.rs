//! What `--preload` needs from Python: the `rwsgi` module apps import for
//! `@rwsgi.postfork`, `--post-fork MODULE:CALLABLE`, `gc.freeze()` before
//! the workers are forked, the interpreter's fork protocol, and the threads
//! an import left running.

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyList, PyModule, PyTuple};

use super::{format_exception, Bridge};

/// Name of the hook list inside the `rwsgi` module.
const HOOKS: &str = "_postfork_hooks";

/// Puts a `rwsgi` module in `sys.modules` (before the app is imported) with
/// `postfork`, a decorator registering a function to run in each worker
/// right after its fork (uWSGI's `uwsgidecorators.postfork`), and `preload`,
/// telling the app which mode it runs in.
pub(super) fn install_module(py: Python<'_>, preload: bool) -> PyResult<()> {
    let module = PyModule::new(py, "rwsgi")?;
    let hooks = PyList::empty(py);
    module.add(HOOKS, &hooks)?;
    module.add("preload", preload)?;
    module.add(
        "__doc__",
        "rwsgi's module for apps: @rwsgi.postfork runs a function in each worker after its fork.",
    )?;
    let hooks = hooks.unbind();
    let postfork = PyCFunction::new_closure(
        py,
        Some(c"postfork"),
        Some(c"Decorator: run this function in each worker after its fork."),
        move |args: &Bound<'_, PyTuple>, _kwargs| -> PyResult<Py<PyAny>> {
            let f = args.get_item(0)?;
            if !f.is_callable() {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "rwsgi.postfork decorates a function",
                ));
            }
            hooks.bind(args.py()).append(&f)?;
            Ok(f.unbind())
        },
    )?;
    module.add("postfork", postfork)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("rwsgi", module)?;
    Ok(())
}

/// Adds `--post-fork MODULE:CALLABLE` to the hooks (after the app import,
/// so a hook in the app's own package finds it loaded).
pub(super) fn add_post_fork(py: Python<'_>, spec: &str) -> Result<(), String> {
    let (module, callable) = spec.split_once(':').unwrap_or((spec, ""));
    let hook = py
        .import(module)
        .and_then(|m| m.getattr(callable))
        .map_err(|e| format!("--post-fork {spec}: {}", format_exception(py, &e)))?;
    if !hook.is_callable() {
        return Err(format!("--post-fork {spec}: {callable} is not callable"));
    }
    hooks(py)
        .and_then(|h| h.append(hook))
        .map_err(|e| format!("--post-fork {spec}: {e}"))
}

/// Calls `gc.NAME()`.
pub(super) fn gc_call<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("gc")?.call_method0(name)
}

fn hooks(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    Ok(py.import("rwsgi")?.getattr(HOOKS)?.cast_into::<PyList>()?)
}

impl Bridge {
    /// Moves every object into the permanent generation (`gc.freeze()`),
    /// so the collector of a forked worker never writes to them and their
    /// pages stay shared copy-on-write. As the gc module's documentation
    /// advises: the template imported with the collector disabled (no
    /// collection, so no freed holes for workers to fill), it freezes
    /// without collecting, and each worker enables the collector after the
    /// fork. Measured, Django with 8 workers: see DESIGN-NOTES 26.
    pub fn freeze(&self) -> Result<(), String> {
        Python::attach(|py| gc_call(py, "freeze").map(|_| ()))
            .map_err(|e| format!("gc.freeze(): {e}"))
    }

    /// Names of the Python threads besides the calling (main) one.
    pub fn other_python_threads(&self) -> Vec<String> {
        Python::attach(|py| -> PyResult<Vec<String>> {
            let threading = py.import("threading")?;
            let main = threading.call_method0("main_thread")?;
            let mut names = Vec::new();
            for t in threading.call_method0("enumerate")?.try_iter()? {
                let t = t?;
                if !t.is(&main) {
                    names.push(t.getattr("name")?.extract::<String>()?);
                }
            }
            Ok(names)
        })
        .unwrap_or_default()
    }

    /// Forks through `fork` following the interpreter's protocol: the
    /// `os.register_at_fork` "before" handlers and import lock first, then
    /// `PyOS_AfterFork_Child` in the child (it resets the interpreter's
    /// locks and threads, and runs the "after in child" handlers, among them
    /// `random`'s reseed) or `PyOS_AfterFork_Parent` in the parent.
    pub fn fork<T>(&self, fork: impl FnOnce() -> T, is_child: impl Fn(&T) -> bool) -> T {
        Python::attach(|py| {
            // SAFETY: called holding the GIL, as these functions require,
            // around the one fork they bracket.
            unsafe { pyo3::ffi::PyOS_BeforeFork() };
            let forked = fork();
            if is_child(&forked) {
                // SAFETY: in the child of that fork, still holding the GIL.
                unsafe { pyo3::ffi::PyOS_AfterFork_Child() };
                // The template imported with the collector off (see freeze).
                if let Err(e) = gc_call(py, "enable") {
                    log::warn!("gc.enable() after the fork: {e}");
                }
            } else {
                // SAFETY: in the parent of that fork, still holding the GIL.
                unsafe { pyo3::ffi::PyOS_AfterFork_Parent() };
            }
            forked
        })
    }

    /// Runs the post-fork hooks (`@rwsgi.postfork`, `--post-fork`) in
    /// registration order; the first failure is the error, with traceback.
    pub fn run_post_fork(&self) -> Result<usize, String> {
        Python::attach(|py| {
            let hooks = hooks(py).map_err(|e| format!("post-fork hooks: {e}"))?;
            let hooks: Vec<_> = hooks.iter().collect();
            for hook in &hooks {
                if let Err(e) = hook.call0() {
                    let name = hook
                        .getattr("__qualname__")
                        .and_then(|n| n.extract::<String>())
                        .unwrap_or_else(|_| "?".into());
                    return Err(format!(
                        "post-fork hook {name} failed: {}",
                        format_exception(py, &e)
                    ));
                }
            }
            Ok(hooks.len())
        })
    }
}
