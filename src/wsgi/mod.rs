//! The WSGI bridge (PEP 3333): the only module that touches Python.
//!
//! The worker starts it once ([`Bridge::start`]), runs its event loop inside
//! [`with_gil`] (releasing the GIL around `poll` with [`Gil::release`]) and
//! hands each complete request to [`Bridge::call`], which builds the environ,
//! calls the app, sends the response and always calls `close()` on the result.

mod app;
mod environ;
mod errors;
mod file_wrapper;
mod input;
mod interpreter;
mod response;
mod start_response;
mod uwsgi_environ;
mod value_cache;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::config::Config;
pub use environ::{ConnInfo, Head, Request};
pub use response::ResponseParams;
use start_response::StartResponse;

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

/// What happened to one request, for the access log and the scoreboard.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub status: u16,
    pub body_bytes: u64,
    /// The connection may serve another request.
    pub keep_alive: bool,
    /// The app raised (logged with its traceback).
    pub exception: bool,
}

pub struct Bridge {
    app: Py<PyAny>,
    environ: environ::EnvironBuilder,
    start_response: Py<StartResponse>,
}

enum SendError {
    App(PyErr),
    ClientGone(std::io::Error),
}

impl From<PyErr> for SendError {
    fn from(e: PyErr) -> Self {
        SendError::App(e)
    }
}

impl From<response::ClientGone> for SendError {
    fn from(e: response::ClientGone) -> Self {
        SendError::ClientGone(e.0)
    }
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

impl Bridge {
    /// Initialises Python (after `--chdir`, which the worker applied) and
    /// imports the app. The error is the one line (plus traceback) to log.
    pub fn start(config: &Config) -> Result<Bridge, String> {
        let argv: Vec<String> = std::env::args().collect();
        interpreter::start(config.home.as_deref(), &argv)?;
        Python::attach(|py| {
            app::extend_sys_path(py, &config.pythonpath)
                .map_err(|e| format!("--pythonpath: {}", format_exception(py, &e)))?;
            let app = app::load(py, &config.app)?;
            let environ = environ::EnvironBuilder::new(py)
                .map_err(|e| format!("building the environ template: {e}"))?;
            let start_response =
                start_response::create(py).map_err(|e| format!("creating start_response: {e}"))?;
            Ok(Bridge {
                app: app.unbind(),
                environ,
                start_response,
            })
        })
    }

    /// Serves one request: environ, app call, response, `close()`. Never
    /// fails: app errors become a 500 (or a closed connection once the
    /// response has started) with the traceback in the log.
    pub fn call(
        &mut self,
        gil: &Gil<'_>,
        req: Request<'_>,
        params: ResponseParams,
        what: &dyn std::fmt::Display,
    ) -> Outcome {
        let py = gil.py;
        let sr = self.start_response.bind(py);
        sr.borrow_mut().response.begin(params);
        let mut exception = false;
        let result = self
            .environ
            .build(py, req)
            .and_then(|env| self.app.bind(py).call1((env, sr)));
        match result {
            Ok(iterable) => {
                if let Err(e) = send_iterable(sr, &iterable) {
                    exception |= report(py, sr, e, what);
                }
                if let Err(e) = close_result(&iterable) {
                    log::error!(
                        "{what}: exception in close() of the app's result: {}",
                        format_exception(py, &e)
                    );
                    exception = true;
                }
            }
            Err(e) => exception |= report(py, sr, SendError::App(e), what),
        }
        let r = &sr.borrow().response;
        Outcome {
            status: r.status,
            body_bytes: r.body_bytes,
            keep_alive: !r.must_close,
            exception,
        }
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

/// Logs a failure and, if nothing was sent yet, answers 500. Returns whether
/// it was an app exception (as opposed to the client leaving).
fn report(
    py: Python<'_>,
    sr: &Bound<'_, StartResponse>,
    e: SendError,
    what: &dyn std::fmt::Display,
) -> bool {
    let mut this = sr.borrow_mut();
    match e {
        SendError::ClientGone(err) => {
            log::debug!("{what}: client went away during the response: {err}");
            this.response.must_close = true;
            false
        }
        SendError::App(err) => {
            log::error!(
                "{what}: exception in the app: {}",
                format_exception(py, &err)
            );
            if this.response.head_sent {
                // Part of the response is out: ending the connection is the
                // only honest signal left.
                this.response.must_close = true;
            } else if let Err(gone) = this.response.send_error(500) {
                log::debug!("{what}: client went away before the 500: {}", gone.0);
            }
            true
        }
    }
}

fn require_started(sr: &Bound<'_, StartResponse>) -> Result<(), SendError> {
    if sr.borrow().response.started {
        Ok(())
    } else {
        Err(SendError::App(pyo3::exceptions::PyAssertionError::new_err(
            "the app returned a body without calling start_response",
        )))
    }
}

fn as_bytes<'a, 'py>(item: &'a Bound<'py, PyAny>) -> Result<&'a Bound<'py, PyBytes>, SendError> {
    item.cast::<PyBytes>().map_err(|_| {
        SendError::App(pyo3::exceptions::PyTypeError::new_err(format!(
            "the app's response items must be bytes, not {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )))
    })
}

/// Sends the app's result. A list or tuple is sent in one gathered write with
/// an exact Content-Length; any other iterable is streamed item by item.
fn send_iterable(
    sr: &Bound<'_, StartResponse>,
    iterable: &Bound<'_, PyAny>,
) -> Result<(), SendError> {
    if let Ok(wrapper) = iterable.cast::<file_wrapper::FileWrapper>() {
        let sendable = file_wrapper::sendable(iterable.py(), &wrapper.borrow());
        if let Some((fd, offset, len)) = sendable {
            require_started(sr)?;
            let mut this = sr.borrow_mut();
            this.response.send_file(fd, offset, len)?;
            this.response.finish()?;
            return Ok(());
        }
    }
    let items: Option<Vec<Bound<'_, PyAny>>> = if let Ok(list) = iterable.cast::<PyList>() {
        Some(list.iter().collect())
    } else if let Ok(tuple) = iterable.cast::<PyTuple>() {
        Some(tuple.iter().collect())
    } else {
        None
    };
    if let Some(items) = items {
        require_started(sr)?;
        let bytes = items.iter().map(as_bytes).collect::<Result<Vec<_>, _>>()?;
        let slices: Vec<&[u8]> = bytes.iter().map(|b| b.as_bytes()).collect();
        let mut this = sr.borrow_mut();
        this.response.send_all_body(&slices)?;
        this.response.finish()?;
        return Ok(());
    }
    for item in iterable.try_iter()? {
        let item = item?;
        let data = as_bytes(&item)?;
        if data.as_bytes().is_empty() {
            continue;
        }
        require_started(sr)?;
        sr.borrow_mut().response.send_body(data.as_bytes())?;
    }
    require_started(sr)?;
    sr.borrow_mut().response.finish()?;
    Ok(())
}

/// PEP 3333: `close()` is called on the result if it has one, whatever happened.
fn close_result(iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if let Some(close) = iterable.getattr_opt(pyo3::intern!(iterable.py(), "close"))? {
        close.call0()?;
    }
    Ok(())
}
