//! One app thread's side of the bridge: building the environ, calling the
//! app, emitting its result into the connection's sink, and suspending a
//! streamed result while the client is slower than the app (the thread goes
//! on to other requests; the I/O side asks for the rest once it has drained).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyTuple};

use super::environ::{EnvironBuilder, Request};
use super::sink::{Flow, Gone, Sink};
use super::start_response::{self, StartResponse};
use super::{file_wrapper, format_exception, Gil};
use crate::protocol::response::Meta;

/// What happened to one request, for the access log and the scoreboard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub status: u16,
    pub body_bytes: u64,
    /// The connection may serve another request.
    pub keep_alive: bool,
    /// The response was cut short after its head went out: the connection
    /// must be reset, not closed as if the response were complete.
    pub aborted: bool,
    /// The app raised (logged with its traceback).
    pub exception: bool,
}

/// A streamed result waiting for its client to drain the connection.
pub struct Stream {
    iterable: Py<PyAny>,
    iter: Py<PyIterator>,
    sr: Py<StartResponse>,
    exception: bool,
    /// `METHOD target`, for log lines about the rest of the response.
    label: String,
    /// When the app was called (the response's duration spans its slices).
    started: std::time::Instant,
}

/// Where a call or a resumed stream stands.
pub enum Done {
    Finished(Outcome),
    Suspended(Stream),
}

/// One app thread's objects: its own environ builder (with its own caches)
/// and `start_response`, so threads never share mutable state.
pub struct Caller {
    app: Py<PyAny>,
    environ: EnvironBuilder,
    start_response: Py<StartResponse>,
    meta: Meta,
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

impl From<Gone> for SendError {
    fn from(e: Gone) -> Self {
        SendError::ClientGone(e.0)
    }
}

/// How an iteration stopped.
enum Iterated {
    Done,
    Full,
}

fn blank_meta() -> Meta {
    Meta {
        version: crate::protocol::http::Version::Http11,
        head_only: false,
        keep_alive: false,
        close_delimited: false,
        date: [b' '; crate::protocol::date::DATE_LEN],
    }
}

impl Caller {
    pub(super) fn new(py: Python<'_>, app: Py<PyAny>, multithread: bool) -> PyResult<Caller> {
        Ok(Caller {
            app,
            environ: EnvironBuilder::new(py, multithread)?,
            start_response: start_response::create(py, blank_meta())?,
            meta: blank_meta(),
        })
    }

    /// Serves one request into `sink`, and gives the sink back. Never fails:
    /// app errors become a 500 (or an aborted connection once the response
    /// has started) with the traceback in the log.
    pub fn call(
        &mut self,
        gil: &Gil<'_>,
        req: Request<'_>,
        meta: Meta,
        sink: Box<dyn Sink>,
        what: &dyn std::fmt::Display,
    ) -> (Done, Option<Box<dyn Sink>>) {
        let done = self.call_app(gil, req, meta, sink, what);
        let sr = match &done {
            Done::Finished(_) => self.start_response.bind(gil.py),
            Done::Suspended(s) => s.sr.bind(gil.py),
        };
        let sink = sr.borrow_mut().response.take_sink();
        (done, sink)
    }

    fn call_app(
        &mut self,
        gil: &Gil<'_>,
        req: Request<'_>,
        meta: Meta,
        sink: Box<dyn Sink>,
        what: &dyn std::fmt::Display,
    ) -> Done {
        let py = gil.py;
        let started = req.started;
        self.meta = meta;
        let sr = self.start_response.bind(py).clone();
        sr.borrow_mut().response.begin(meta, sink);
        let result = self
            .environ
            .build(py, req)
            .and_then(|env| self.app.bind(py).call1((env, &sr)));
        let iterable = match result {
            Ok(iterable) => iterable,
            Err(e) => {
                let exception = report(py, &sr, SendError::App(e), what);
                return Done::Finished(outcome(&sr, exception));
            }
        };
        match send_result(&sr, &iterable) {
            Ok(None) => self.close_result(py, &sr, &iterable, false, what),
            Ok(Some(iter)) => {
                // The client is slow: keep this response's objects with the
                // stream and give the thread a fresh start_response.
                match start_response::create(py, blank_meta()) {
                    Ok(fresh) => {
                        self.start_response = fresh;
                        Done::Suspended(Stream {
                            iterable: iterable.unbind(),
                            iter: iter.unbind(),
                            sr: sr.unbind(),
                            exception: false,
                            label: what.to_string(),
                            started,
                        })
                    }
                    Err(e) => {
                        let exception = report(py, &sr, SendError::App(e), what);
                        self.close_result(py, &sr, &iterable, exception, what)
                    }
                }
            }
            Err(e) => {
                let exception = report(py, &sr, e, what);
                self.close_result(py, &sr, &iterable, exception, what)
            }
        }
    }

    fn close_result(
        &self,
        py: Python<'_>,
        sr: &Bound<'_, StartResponse>,
        iterable: &Bound<'_, PyAny>,
        mut exception: bool,
        what: &dyn std::fmt::Display,
    ) -> Done {
        if let Err(e) = close_result(iterable) {
            log::error!(
                "{what}: exception in close() of the app's result: {}",
                format_exception(py, &e)
            );
            exception = true;
        }
        Done::Finished(outcome(sr, exception))
    }
}

impl Stream {
    /// `METHOD target` of the request (escaped), for the scoreboard.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When the app was called for this response.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    /// Continues the response into `sink` (the client drained what was queued).
    pub fn resume(self, gil: &Gil<'_>, sink: Box<dyn Sink>) -> (Done, Option<Box<dyn Sink>>) {
        let py = gil.py;
        let sr = self.sr.bind(py);
        sr.borrow_mut().response.put_sink(sink);
        let iter = self.iter.bind(py);
        let step = iterate(sr, iter).and_then(|s| match s {
            Iterated::Done => {
                require_started(sr)?;
                sr.borrow_mut().response.finish()?;
                Ok(Iterated::Done)
            }
            full => Ok(full),
        });
        let exception = match step {
            Ok(Iterated::Full) => {
                let sink = sr.borrow_mut().response.take_sink();
                return (Done::Suspended(self), sink);
            }
            Ok(Iterated::Done) => self.exception,
            Err(e) => self.exception | report(py, sr, e, &self.label),
        };
        self.close(gil, exception)
    }

    /// Ends the stream: `close()` on the result (PEP 3333: whatever
    /// happened), e.g. because the client went away.
    pub fn close(self, gil: &Gil<'_>, mut exception: bool) -> (Done, Option<Box<dyn Sink>>) {
        let py = gil.py;
        let sr = self.sr.bind(py);
        if let Err(e) = close_result(self.iterable.bind(py)) {
            log::error!(
                "{}: exception in close() of the app's result: {}",
                self.label,
                format_exception(py, &e)
            );
            exception = true;
        }
        let sink = sr.borrow_mut().response.take_sink();
        (Done::Finished(outcome(sr, exception)), sink)
    }

    /// The client left before the stream ended: close it as an aborted response.
    pub fn abandon(self, gil: &Gil<'_>) -> Outcome {
        self.sr.bind(gil.py).borrow_mut().response.abort();
        match self.close(gil, false).0 {
            Done::Finished(o) => o,
            Done::Suspended(_) => Outcome::default(),
        }
    }
}

fn outcome(sr: &Bound<'_, StartResponse>, exception: bool) -> Outcome {
    let r = &sr.borrow().response;
    Outcome {
        status: r.status,
        body_bytes: r.body_bytes,
        keep_alive: !r.must_close,
        aborted: r.aborted,
        exception,
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
                this.response.abort();
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

/// Emits the app's result. A list or tuple goes out in one gathered send
/// with an exact Content-Length, a real file by sendfile from the I/O side;
/// any other iterable is streamed item by item, and its iterator is returned
/// if the client fell behind (the rest follows once it drains).
fn send_result<'py>(
    sr: &Bound<'py, StartResponse>,
    iterable: &Bound<'py, PyAny>,
) -> Result<Option<Bound<'py, PyIterator>>, SendError> {
    if let Ok(wrapper) = iterable.cast::<file_wrapper::FileWrapper>() {
        let sendable = file_wrapper::sendable(iterable.py(), &wrapper.borrow());
        if let Some((fd, offset, len)) = sendable {
            require_started(sr)?;
            let mut this = sr.borrow_mut();
            this.response.send_file(fd, offset, len)?;
            this.response.finish()?;
            return Ok(None);
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
        // A whole body is already in memory: the sink takes it all.
        this.response.send_all_body(&slices)?;
        this.response.finish()?;
        return Ok(None);
    }
    let iter = iterable.try_iter()?;
    match iterate(sr, &iter)? {
        Iterated::Full => Ok(Some(iter)),
        Iterated::Done => {
            require_started(sr)?;
            sr.borrow_mut().response.finish()?;
            Ok(None)
        }
    }
}

/// Emits items until the iterator ends or the sink is full.
fn iterate(
    sr: &Bound<'_, StartResponse>,
    iter: &Bound<'_, PyIterator>,
) -> Result<Iterated, SendError> {
    let mut iter = iter.clone();
    loop {
        let item = match iter.next() {
            Some(item) => item?,
            None => return Ok(Iterated::Done),
        };
        let data = as_bytes(&item)?;
        if data.as_bytes().is_empty() {
            continue;
        }
        require_started(sr)?;
        let mut this = sr.borrow_mut();
        if this.response.send_body(data.as_bytes())? == Flow::Full {
            return Ok(Iterated::Full);
        }
        // HEAD, 204, 304: with the head out nothing more is sent, so a
        // client that left would never be noticed and an endless stream
        // would hold the thread for ever. Stop; close() ends the result.
        if this.response.bodyless() {
            return Ok(Iterated::Done);
        }
    }
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
