//! `start_response` and the `write()` callable it returns (PEP 3333). One
//! object of each per worker, reused for every request: they carry the
//! request's [`Response`] state.

use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::response::Response;
use super::sink::Flow;
use crate::protocol::response::Meta;

#[pyclass(module = "rwsgi", name = "start_response")]
pub struct StartResponse {
    pub response: Response,
    /// Set by the app via `Connection: close` (the only hop-by-hop header we honour).
    write: Option<Py<WriteFn>>,
}

/// The `write(data)` callable returned by `start_response`.
#[pyclass(module = "rwsgi", name = "write")]
pub struct WriteFn {
    owner: Py<StartResponse>,
}

/// Creates a pair: one per app thread, reused for its requests (a response
/// suspended on a slow client keeps its own, and the thread makes another).
pub fn create(py: Python<'_>, meta: Meta) -> PyResult<Py<StartResponse>> {
    let sr = Py::new(
        py,
        StartResponse {
            response: Response::new(meta),
            write: None,
        },
    )?;
    let write = Py::new(
        py,
        WriteFn {
            owner: sr.clone_ref(py),
        },
    )?;
    sr.borrow_mut(py).write = Some(write);
    Ok(sr)
}

/// Hop-by-hop headers an app must not set (PEP 3333); `Connection: close` is
/// honoured instead of refused, as Gunicorn does.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// RFC 9110 `tchar`, as a table: this runs for every byte of every
/// response header name.
const TOKEN_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric();
        i += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
};

fn is_token_char(b: u8) -> bool {
    TOKEN_CHARS[usize::from(b)]
}

/// The latin-1 bytes of `s`, refusing characters above U+00FF and control
/// characters (header injection). An ASCII str (nearly every header) is its
/// own encoding and is only scanned; others are encoded into `scratch`.
fn latin1<'s>(s: &'s str, scratch: &'s mut Vec<u8>, what: &str) -> PyResult<&'s [u8]> {
    if s.is_ascii() {
        if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7F) {
            return Err(PyValueError::new_err(format!(
                "{what} {s:?} contains a control character"
            )));
        }
        return Ok(s.as_bytes());
    }
    let out = scratch;
    out.clear();
    for c in s.chars() {
        let v = c as u32;
        if v > 0xFF {
            return Err(PyValueError::new_err(format!(
                "{what} {s:?} has a character outside latin-1"
            )));
        }
        if (v < 0x20 && c != '\t') || v == 0x7F {
            return Err(PyValueError::new_err(format!(
                "{what} {s:?} contains a control character"
            )));
        }
        out.push(v as u8);
    }
    Ok(out)
}

/// Parses `NNN reason` and returns the code.
fn status_code(status: &str) -> PyResult<u16> {
    let b = status.as_bytes();
    let ok = b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ';
    let code = if ok {
        status[..3].parse::<u16>().unwrap_or(0)
    } else {
        0
    };
    if !(100..=999).contains(&code) {
        return Err(PyValueError::new_err(format!(
            "status {status:?} is not a valid HTTP status like \"200 OK\""
        )));
    }
    Ok(code)
}

impl StartResponse {
    fn set_head(&mut self, status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let status = status.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "status must be a str, not {}",
                status
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let status = status.to_str()?;
        let code = status_code(status)?;
        let mut scratch = Vec::new();
        self.response
            .set_status(code, latin1(status, &mut scratch, "status")?);
        let list = headers.cast::<PyList>().map_err(|_| {
            PyTypeError::new_err("response headers must be a list of (name, value) tuples")
        })?;
        let mut seen_length = false;
        for item in list.iter() {
            let pair = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "response header {item} is not a (name, value) tuple"
                ))
            })?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err(format!(
                    "response header {pair} is not a (name, value) tuple"
                )));
            }
            let (name, value) = (pair.get_borrowed_item(0)?, pair.get_borrowed_item(1)?);
            let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
                return Err(PyTypeError::new_err(format!(
                    "response header {pair}: name and value must be str"
                )));
            };
            let name = name.to_str()?;
            let value = value.to_str()?;
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(PyValueError::new_err(format!(
                    "response header name {name:?} is not a valid HTTP token"
                )));
            }
            if HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                if name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close")
                {
                    self.response.must_close = true;
                    continue;
                }
                return Err(PyValueError::new_err(format!(
                    "response header {name:?} is hop-by-hop; a WSGI app must not set it (PEP 3333)"
                )));
            }
            if name.eq_ignore_ascii_case("content-length") {
                // A bad or second length would frame the response two ways.
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PyValueError::new_err(format!(
                        "Content-Length {value:?} is not a number of bytes"
                    )));
                }
                if value.parse::<u64>().is_err() {
                    return Err(PyValueError::new_err(format!(
                        "Content-Length {value:?} is too large (more than 2^64-1 bytes)"
                    )));
                }
                if seen_length {
                    return Err(PyValueError::new_err("more than one Content-Length header"));
                }
                seen_length = true;
            }
            // A token is ASCII: the name is its own latin-1 encoding.
            let value = latin1(value, &mut scratch, "response header value")?;
            self.response.add_header(name.as_bytes(), value);
        }
        Ok(())
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<WriteFn>> {
        let py = slf.py();
        let mut this = slf.borrow_mut();
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(exc) = exc_info {
            if this.response.head_sent {
                // PEP 3333: too late to change the head; re-raise the app's error.
                let value = exc.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        } else if this.response.started {
            return Err(PyAssertionError::new_err(
                "start_response called a second time without exc_info",
            ));
        }
        this.set_head(status, headers)?;
        match &this.write {
            Some(w) => Ok(w.clone_ref(py)),
            None => Err(PyAssertionError::new_err("write callable missing")),
        }
    }
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes (encode str before writing)"))?;
        let owner = self.owner.bind(py);
        let flow = {
            let mut sr = owner.borrow_mut();
            if !sr.response.started {
                return Err(PyAssertionError::new_err(
                    "write() called before start_response",
                ));
            }
            sr.response
                .send_body(data.as_bytes())
                .map_err(client_gone)?
        };
        if flow == Flow::Full {
            // write() returns only once its data can be sent: its caller
            // cannot be suspended, so this thread waits for the client,
            // without the GIL.
            let Some(mut sink) = owner.borrow_mut().response.take_sink() else {
                return Err(client_gone(super::sink::Gone(std::io::Error::other(
                    "no connection",
                ))));
            };
            let waited = py.detach(|| sink.wait_drained());
            owner.borrow_mut().response.put_sink(sink);
            waited.map_err(client_gone)?;
        }
        Ok(())
    }
}

fn client_gone(e: super::sink::Gone) -> PyErr {
    PyOSError::new_err(format!("client disconnected: {}", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_code("200 OK").unwrap(), 200);
        assert_eq!(status_code("404 ").unwrap(), 404);
        for bad in ["200", "OK", "20 OK", "2000 OK", "099 x", "200-OK"] {
            assert!(status_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn latin1_rules() {
        let mut out = Vec::new();
        latin1("café", &mut out, "v").unwrap();
        assert_eq!(out, b"caf\xe9");
        assert!(latin1("a\r\nb", &mut out, "v").is_err());
        assert!(latin1("€", &mut out, "v").is_err());
    }
}
