//! The WSGI bridge (PEP 3333): the only module that touches Python.
//!
//! The worker starts it once ([`Bridge::start`]) and gets a [`Caller`] per
//! app thread; each complete request goes to [`Caller::call`], which builds
//! the environ, calls the app, emits the response into the connection's
//! [`Sink`] and always calls `close()` on the result. The bridge never
//! touches a socket.

mod app;
mod call;
mod environ;
mod errors;
mod file_wrapper;
mod input;
mod interpreter;
mod preload;
mod response;
mod sink;
mod start_response;
mod uwsgi_environ;
mod value_cache;

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};

pub use app::AppSource;
pub use call::{Caller, Done, Outcome, Stream};
pub use environ::{ConnInfo, Head, Request};
pub use sink::{Flow, Gone, Sink};

/// Proof that the GIL is held; only the bridge can make one.
pub struct Gil<'py> {
    py: Python<'py>,
}

impl Gil<'_> {
    /// Runs `f` with the GIL released (so app threads run while we wait in poll).
    pub fn release<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        self.py.detach(f)
    }
}

/// Runs `f` holding the GIL.
pub fn with_gil<R>(f: impl for<'py> FnOnce(&Gil<'py>) -> R) -> R {
    Python::attach(|py| f(&Gil { py }))
}

pub struct Bridge {
    app: Py<PyAny>,
    /// More than one app thread (`wsgi.multithread`).
    multithread: bool,
}

/// An exception as the log shows it: the message, then the traceback.
fn format_exception(py: Python<'_>, e: &PyErr) -> String {
    let tb = py.import("traceback").and_then(|m| {
        m.call_method1(
            "format_exception",
            (e.get_type(py), e.value(py), e.traceback(py)),
        )?
        .extract::<Vec<String>>()
    });
    match tb {
        Ok(lines) => format!("{e}\n{}", lines.concat().trim_end()),
        Err(_) => e.to_string(),
    }
}

/// What [`Bridge::start`] needs: the worker fills it from the configuration,
/// so the bridge depends on no configuration type (DESIGN.md §6).
pub struct Settings<'a> {
    /// `--home`: the virtualenv whose python is `sys.executable`.
    pub home: Option<&'a Path>,
    /// `--pythonpath`: put in front of `sys.path`, in order.
    pub pythonpath: &'a [PathBuf],
    pub app: AppSource<'a>,
    /// `sys.argv`.
    pub argv: &'a [String],
    /// App threads (more than one sets `wsgi.multithread`).
    pub threads: usize,
    /// `--preload` (what `rwsgi.preload` tells the app).
    pub preload: bool,
    /// `--post-fork MODULE:CALLABLE`, run after `@rwsgi.postfork` hooks.
    pub post_fork: Option<&'a str>,
}

impl Bridge {
    /// Initialises Python (after `--chdir`, which the worker applied) and
    /// imports the app. The error is the one line (plus traceback) to log.
    pub fn start(settings: &Settings<'_>) -> Result<Bridge, String> {
        interpreter::start(settings.home, settings.argv)?;
        Python::attach(|py| {
            app::extend_sys_path(py, settings.pythonpath)
                .map_err(|e| format!("--pythonpath: {}", format_exception(py, &e)))?;
            preload::install_module(py, settings.preload)
                .map_err(|e| format!("creating the rwsgi module: {e}"))?;
            if settings.preload {
                // The template imports with the collector off, so freed
                // objects leave no holes that workers' allocations would
                // fill (copying those pages); see `Bridge::freeze`.
                preload::gc_call(py, "disable").map_err(|e| format!("gc.disable(): {e}"))?;
            }
            let app = app::load(py, settings.app)?;
            if let Some(spec) = settings.post_fork {
                preload::add_post_fork(py, spec)?;
            }
            Ok(Bridge {
                app: app.unbind(),
                multithread: settings.threads > 1,
            })
        })
    }

    /// Has Python's faulthandler dump every thread's stack to `fd` when
    /// `signal` arrives, then call the handler installed before (chained):
    /// the worker's harakiri line says where the request was stuck.
    pub fn dump_stacks_on(&self, signal: i32, fd: i32) -> Result<(), String> {
        Python::attach(|py| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("file", fd)?;
            kwargs.set_item("all_threads", true)?;
            kwargs.set_item("chain", true)?;
            py.import("faulthandler")?
                .call_method("register", (signal,), Some(&kwargs))
                .map(|_| ())
        })
        .map_err(|e| format!("registering the stack dump for harakiri: {e}"))
    }

    /// The objects one app thread calls the app with.
    pub fn caller(&self, gil: &Gil<'_>) -> Result<Caller, String> {
        Caller::new(gil.py, self.app.clone_ref(gil.py), self.multithread)
            .map_err(|e| format!("setting up an app thread: {e}"))
    }

    /// Starts `count` Python threads named by `name`, each running
    /// `body(gil, index)` for its whole life: real `threading.Thread`s, so
    /// each keeps one thread state (`threading.local` and per-thread
    /// database connections survive between requests) and shows in
    /// `threading.enumerate()`.
    pub fn spawn_threads(
        &self,
        gil: &Gil<'_>,
        count: usize,
        name: &dyn Fn(usize) -> String,
        body: ThreadBody,
    ) -> Result<AppThreads, String> {
        let py = gil.py;
        let spawn = || -> PyResult<Vec<Py<PyAny>>> {
            let threading = py.import("threading")?;
            let mut threads = Vec::with_capacity(count);
            for i in 0..count {
                let body = body.clone();
                let target = PyCFunction::new_closure(
                    py,
                    None,
                    None,
                    move |args: &Bound<'_, PyTuple>, _kwargs| -> PyResult<()> {
                        body(&Gil { py: args.py() }, i);
                        Ok(())
                    },
                )?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("target", target)?;
                kwargs.set_item("name", name(i))?;
                kwargs.set_item("daemon", true)?;
                let thread = threading.getattr("Thread")?.call((), Some(&kwargs))?;
                thread.call_method0("start")?;
                threads.push(thread.unbind());
            }
            Ok(threads)
        };
        spawn()
            .map(AppThreads)
            .map_err(|e| format!("starting app threads: {}", format_exception(py, &e)))
    }

    /// Runs `atexit` handlers and flushes Python's stdio before the worker exits.
    pub fn shutdown(&self) {
        Python::attach(|py| {
            if let Ok(atexit) = py.import("atexit") {
                if let Err(e) = atexit.call_method0("_run_exitfuncs") {
                    log::error!("atexit handler failed: {}", format_exception(py, &e));
                }
            }
            if let Ok(sys) = py.import("sys") {
                for stream in ["stdout", "stderr"] {
                    if let Ok(s) = sys.getattr(stream) {
                        let _ = s.call_method0("flush");
                    }
                }
            }
        });
    }
}

/// What an app thread runs: given its hold on Python and its index.
pub type ThreadBody = std::sync::Arc<dyn Fn(&Gil<'_>, usize) + Send + Sync>;

/// The app threads of a worker, to wait for when it stops.
pub struct AppThreads(Vec<Py<PyAny>>);

impl AppThreads {
    /// Waits for every thread to return (their job source must be closed first).
    pub fn join(self, gil: &Gil<'_>) {
        for t in self.0 {
            if let Err(e) = t.bind(gil.py).call_method0("join") {
                log::warn!("joining an app thread: {e}");
            }
        }
    }
}
