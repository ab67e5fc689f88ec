//! The environ of a request that came over the uwsgi protocol: nginx already
//! sends CGI names and `HTTP_*` headers, so the vars become the environ
//! almost as they are.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::environ::{intern, latin1_str, set_joined, ConnInfo, EnvironBuilder};
use super::input::Input;
use crate::body::Body;
use crate::protocol::http::percent_decode;
use crate::protocol::uwsgi::Packet;

/// CGI variable names nginx's `uwsgi_params` sends, interned once. The
/// `I_*` constants below are indices into this table.
const CGI_NAMES: [&str; 15] = [
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REQUEST_URI",
    "PATH_INFO",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_PORT",
    "SERVER_NAME",
    "SCRIPT_NAME",
];
const I_REQUEST_METHOD: usize = 1;
const I_REQUEST_URI: usize = 4;
const I_PATH_INFO: usize = 5;
const I_SERVER_PROTOCOL: usize = 7;
const I_REQUEST_SCHEME: usize = 8;
const I_HTTPS: usize = 9;
const I_REMOTE_PORT: usize = 11;
const I_SERVER_PORT: usize = 12;
const I_SERVER_NAME: usize = 13;
/// Keys longer than this are never known ones (none is).
const MAX_KNOWN_LEN: usize = 40;
/// Room for every known key in `build_uwsgi`'s per-request table.
const MAX_KNOWN: usize = 64;
const _: () = assert!(CGI_NAMES.len() + super::environ::COMMON_HEADERS.len() <= MAX_KNOWN);
// The `I_*` indices name the right entries, and every known key fits
// `by_len` (checked at compile time, so the tables cannot drift apart).
const _: () = {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    assert!(same(CGI_NAMES[I_REQUEST_METHOD], "REQUEST_METHOD"));
    assert!(same(CGI_NAMES[I_REQUEST_URI], "REQUEST_URI"));
    assert!(same(CGI_NAMES[I_PATH_INFO], "PATH_INFO"));
    assert!(same(CGI_NAMES[I_SERVER_PROTOCOL], "SERVER_PROTOCOL"));
    assert!(same(CGI_NAMES[I_REQUEST_SCHEME], "REQUEST_SCHEME"));
    assert!(same(CGI_NAMES[I_HTTPS], "HTTPS"));
    assert!(same(CGI_NAMES[I_REMOTE_PORT], "REMOTE_PORT"));
    assert!(same(CGI_NAMES[I_SERVER_PORT], "SERVER_PORT"));
    assert!(same(CGI_NAMES[I_SERVER_NAME], "SERVER_NAME"));
    let mut i = 0;
    while i < CGI_NAMES.len() {
        assert!(CGI_NAMES[i].len() <= MAX_KNOWN_LEN);
        i += 1;
    }
    let headers = super::environ::COMMON_HEADERS;
    let mut i = 0;
    while i < headers.len() {
        assert!(headers[i].1.len() <= MAX_KNOWN_LEN);
        i += 1;
    }
};

/// Interned keys for uwsgi vars: the CGI names plus the common `HTTP_*` keys.
pub struct UwsgiKeys {
    /// Each key's bytes beside its interned string: lookups compare Rust
    /// bytes and never ask Python for a str's UTF-8.
    keys: Vec<(&'static str, Py<PyString>)>,
    /// Indices into `keys` by key length: a lookup compares one or two keys,
    /// not forty (a var lookup was the worker's biggest cost here).
    by_len: Vec<Vec<usize>>,
    https: Py<PyString>,
    scheme: Py<PyString>,
}

impl UwsgiKeys {
    pub fn new(py: Python<'_>, header_keys: &[(&'static str, Py<PyString>)]) -> UwsgiKeys {
        let mut keys: Vec<(&'static str, Py<PyString>)> =
            CGI_NAMES.iter().map(|k| (*k, intern(py, k))).collect();
        keys.extend(
            header_keys
                .iter()
                .map(|(name, k)| (http_key_name(name), k.clone_ref(py))),
        );
        let mut by_len = vec![Vec::new(); MAX_KNOWN_LEN + 1];
        for (i, (k, _)) in keys.iter().enumerate() {
            if let Some(bucket) = by_len.get_mut(k.len()) {
                bucket.push(i);
            }
        }
        UwsgiKeys {
            keys,
            by_len,
            https: intern(py, "https"),
            scheme: intern(py, "wsgi.url_scheme"),
        }
    }

    /// The environ key for a var name, and its index when it is a known one.
    fn key<'py>(&self, py: Python<'py>, name: &[u8]) -> (Bound<'py, PyString>, Option<usize>) {
        let known = self.by_len.get(name.len()).and_then(|bucket| {
            bucket
                .iter()
                .copied()
                .find(|&i| self.keys[i].0.as_bytes() == name)
        });
        match known {
            Some(i) => (self.keys[i].1.bind(py).clone(), Some(i)),
            None => (latin1_str(py, name), None),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The `HTTP_*` environ key of a common header (from environ.rs's table).
fn http_key_name(header: &str) -> &'static str {
    super::environ::COMMON_HEADERS
        .iter()
        .find(|(h, _)| *h == header)
        .map_or("", |(_, k)| *k)
}

impl EnvironBuilder {
    pub(super) fn build_uwsgi<'py>(
        &mut self,
        py: Python<'py>,
        buf: &[u8],
        packet: &Packet,
        body: Body,
        conn: &ConnInfo,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.uwsgi_template.bind(py).copy()?;
        // The latest value of each known var so far (by index in `keys`):
        // the one the environ ends up with (a later var replaces an earlier
        // one, as in uWSGI), so the defaults and the scheme follow it.
        let mut last: [Option<&[u8]>; MAX_KNOWN] = [None; MAX_KNOWN];
        for (i, v) in packet.vars.iter().enumerate() {
            let name = &buf[v.key.clone()];
            if name.starts_with(b"UWSGI_") {
                // uWSGI's "magic" vars can load code; here they are never honoured.
                continue;
            }
            let (key, known) = self.uwsgi_keys.key(py, name);
            let raw = &buf[v.value.clone()];
            // Values that change with every request are not worth caching.
            let varies = matches!(known, Some(I_REMOTE_PORT | I_REQUEST_URI | I_PATH_INFO));
            let value = match known {
                Some(i) if !varies => self.uwsgi_values.get(py, i, raw),
                _ => latin1_str(py, raw),
            };
            // Join only a key this packet repeats; a template default (e.g. an
            // empty QUERY_STRING) is replaced, never joined. Only headers
            // repeat; an unknown header is looked for among the earlier vars.
            let seen = match known.and_then(|k| last.get_mut(k)) {
                Some(slot) => slot.replace(raw).is_some(),
                None => {
                    name.starts_with(b"HTTP_")
                        && packet.vars[..i].iter().any(|p| &buf[p.key.clone()] == name)
                }
            };
            if seen && name.starts_with(b"HTTP_") {
                set_joined(&env, &key, value, name == b"HTTP_COOKIE")?;
            } else {
                env.set_item(&key, value)?;
            }
        }
        let get = |i: usize| last[i];
        if get(I_REQUEST_METHOD).is_none() {
            env.set_item(&self.k_method, &self.methods[0])?;
        }
        if get(I_SERVER_PROTOCOL).is_none() {
            env.set_item(&self.k_protocol, &self.http10)?;
        }
        if get(I_PATH_INFO).is_none() {
            // Derive it from REQUEST_URI, as an HTTP request would.
            let uri = get(I_REQUEST_URI).unwrap_or(b"/");
            let path = uri.split(|&b| b == b'?').next().unwrap_or(b"");
            percent_decode(path, &mut self.path);
            env.set_item(&self.k_path_info, latin1_str(py, &self.path))?;
        }
        if get(I_SERVER_NAME).is_none() {
            env.set_item(&self.k_server_name, &conn.server_name)?;
        }
        if get(I_SERVER_PORT).is_none() {
            env.set_item(&self.k_server_port, &conn.server_port)?;
        }
        let https = get(I_HTTPS).is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
        let scheme_https = get(I_REQUEST_SCHEME).is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
        if https || scheme_https {
            env.set_item(&self.uwsgi_keys.scheme, &self.uwsgi_keys.https)?;
        }
        env.set_item(&self.k_input, Py::new(py, Input::new(body)?)?)?;
        Ok(env)
    }
}
