//! `wsgi.input`: the request body, complete before the app is called (the
//! worker reads it without blocking, spooling large ones to a temp file), so
//! reads never wait on the client and end exactly at the end of the body.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::body::{Body, BodyReader};

#[pyclass(module = "rwsgi", name = "Input")]
pub struct Input {
    reader: BodyReader,
}

impl Input {
    pub fn new(body: Body) -> PyResult<Input> {
        let reader = BodyReader::new(body).map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(Input { reader })
    }
}

/// Negative or missing sizes mean "no limit", as for file objects.
fn limit(size: Option<isize>) -> Option<usize> {
    size.filter(|&s| s >= 0).map(|s| s as usize)
}

fn io_err(e: std::io::Error) -> PyErr {
    PyOSError::new_err(format!("reading the request body: {e}"))
}

#[pymethods]
impl Input {
    /// read(size=-1): up to `size` bytes, or everything left.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.reader.read(limit(size)).map_err(io_err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// readline(size=-1): one line including its newline.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.reader.read_line(limit(size)).map_err(io_err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// readlines(hint=-1): lines until `hint` bytes have been read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let hint = limit(hint).filter(|&h| h > 0);
        let mut total = 0;
        loop {
            let line = self.reader.read_line(None).map_err(io_err)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            list.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(list)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.reader.read_line(None).map_err(io_err)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}
