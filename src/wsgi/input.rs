//! `wsgi.input`: the request body, complete before the app is called (the
//! worker reads it without blocking), so reads never wait on the client and
//! end exactly at the end of the body.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

#[pyclass(module = "rwsgi", name = "Input")]
pub struct Input {
    data: Vec<u8>,
    pos: usize,
}

impl Input {
    pub fn new(data: Vec<u8>) -> Input {
        Input { data, pos: 0 }
    }

    fn remaining(&self) -> &[u8] {
        &self.data[self.pos.min(self.data.len())..]
    }

    /// Bytes up to and including the next newline, at most `limit` (negative: no limit).
    fn line_len(&self, limit: isize) -> usize {
        let rest = self.remaining();
        let max = if limit < 0 {
            rest.len()
        } else {
            (limit as usize).min(rest.len())
        };
        rest[..max]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(max, |i| i + 1)
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = end;
        PyBytes::new(py, &self.data[start..end])
    }
}

#[pymethods]
impl Input {
    /// read(size=-1): up to `size` bytes, or everything left.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let left = self.remaining().len();
        let n = match size {
            Some(s) if s >= 0 => (s as usize).min(left),
            _ => left,
        };
        self.take(py, n)
    }

    /// readline(size=-1): one line including its newline.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let n = self.line_len(size.unwrap_or(-1));
        self.take(py, n)
    }

    /// readlines(hint=-1): lines until `hint` bytes have been read.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let hint = hint.filter(|&h| h > 0).map(|h| h as usize);
        let mut total = 0;
        while !self.remaining().is_empty() {
            let n = self.line_len(-1);
            list.append(self.take(py, n))?;
            total += n;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(list)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        if self.remaining().is_empty() {
            return None;
        }
        let n = self.line_len(-1);
        Some(self.take(py, n))
    }
}
