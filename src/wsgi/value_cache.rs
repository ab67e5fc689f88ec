//! Reusing environ value strings between requests. Most values repeat from
//! one request to the next (the Host, the User-Agent, nginx's SERVER_* and
//! REQUEST_SCHEME vars), and Python strings are immutable, so the string made
//! for the last request is handed out again when the bytes are the same.

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::environ::latin1_str;

/// Longer values (cookies, tokens) are not worth keeping.
const MAX_CACHED: usize = 256;

/// The last bytes seen in a slot, and the string made from them.
type Entry = (Box<[u8]>, Py<PyString>);

pub struct ValueCache {
    slots: Vec<Option<Entry>>,
}

impl ValueCache {
    pub fn new(n: usize) -> ValueCache {
        ValueCache {
            slots: (0..n).map(|_| None).collect(),
        }
    }

    /// The value as a latin-1 `str`, reused from the last request that had
    /// the same bytes in slot `idx`.
    pub fn get<'py>(&mut self, py: Python<'py>, idx: usize, bytes: &[u8]) -> Bound<'py, PyString> {
        if let Some(Some((last, s))) = self.slots.get(idx) {
            if **last == *bytes {
                return s.bind(py).clone();
            }
        }
        let s = latin1_str(py, bytes);
        if bytes.len() <= MAX_CACHED {
            if let Some(slot) = self.slots.get_mut(idx) {
                *slot = Some((bytes.into(), s.clone().unbind()));
            }
        }
        s
    }
}
