//! `wsgi.file_wrapper` (PEP 3333): wraps a file-like object. A real file (one
//! with `fileno()` on a regular file) is sent with sendfile(2) by the bridge;
//! anything else is iterated in `block_size` reads. `close()` closes the file.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(module = "rwsgi", name = "FileWrapper")]
pub struct FileWrapper {
    pub filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: isize) -> FileWrapper {
        FileWrapper {
            filelike,
            block_size: usize::try_from(block_size).unwrap_or(8192).max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.block_size,))?;
        let empty = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => data.len()? == 0,
        };
        Ok((!empty).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self
            .filelike
            .bind(py)
            .getattr_opt(pyo3::intern!(py, "close"))?
        {
            close.call0()?;
        }
        Ok(())
    }
}

/// The open regular file behind a wrapper, for sendfile: (fd, offset, bytes
/// left). `None` when the object has no usable `fileno()` (a BytesIO, a pipe).
pub fn sendable(py: Python<'_>, wrapper: &FileWrapper) -> Option<(i32, u64, u64)> {
    let f = wrapper.filelike.bind(py);
    let fd: i32 = f
        .getattr_opt(pyo3::intern!(py, "fileno"))
        .ok()??
        .call0()
        .ok()?
        .extract()
        .ok()?;
    let size = crate::sys::regular_file_size(fd)?;
    // Python may have read ahead into its buffer; tell() is the logical position.
    let offset: u64 = match f.getattr_opt(pyo3::intern!(py, "tell")).ok()? {
        Some(tell) => tell.call0().ok()?.extract().ok()?,
        None => 0,
    };
    Some((fd, offset, size.saturating_sub(offset)))
}
