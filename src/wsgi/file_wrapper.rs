//! `wsgi.file_wrapper` (PEP 3333): wraps a file-like object. A real file (one
//! with `fileno()` on a regular file) is sent with sendfile(2) by the bridge;
//! anything else is iterated in `block_size` reads. `close()` closes the file.

use std::os::fd::{BorrowedFd, OwnedFd};

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

/// The open regular file behind a wrapper, for sendfile: (a descriptor of
/// our own, offset, bytes left). Our own, because the app's file is closed
/// with the result while the I/O side may still be sending it to a slow
/// client. `None` when the object has no usable `fileno()` (a BytesIO, a pipe).
pub fn sendable(py: Python<'_>, wrapper: &FileWrapper) -> Option<(OwnedFd, u64, u64)> {
    let f = wrapper.filelike.bind(py);
    let fd: i32 = f
        .getattr_opt(pyo3::intern!(py, "fileno"))
        .ok()??
        .call0()
        .ok()?
        .extract()
        .ok()?;
    if fd < 0 {
        return None;
    }
    // Python may have read ahead into its buffer; tell() is the logical position.
    let offset: u64 = match f.getattr_opt(pyo3::intern!(py, "tell")).ok()? {
        Some(tell) => tell.call0().ok()?.extract().ok()?,
        None => 0,
    };
    // SAFETY: `fd` is the open descriptor of the live file object (it was
    // just asked for it); it is only borrowed for the duplication.
    let own = unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .ok()?;
    let file = std::fs::File::from(own);
    let meta = file.metadata().ok().filter(|m| m.is_file())?;
    Some((
        OwnedFd::from(file),
        offset,
        meta.len().saturating_sub(offset),
    ))
}
