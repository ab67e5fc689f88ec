//! The environ of a request that came over the uwsgi protocol: nginx already
//! sends CGI names and `HTTP_*` headers, so the vars become the environ
//! almost as they are.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::environ::{intern, latin1_str, set_joined, ConnInfo, EnvironBuilder};
use super::input::Input;
use crate::body::Body;
use crate::protocol::http::percent_decode;
use crate::protocol::uwsgi::{var, Packet};

/// CGI variable names nginx's `uwsgi_params` sends, interned once.
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

/// Interned keys for uwsgi vars: the CGI names plus the common `HTTP_*` keys.
pub struct UwsgiKeys {
    /// Each key's bytes beside its interned string: lookups compare Rust
    /// bytes and never ask Python for a str's UTF-8.
    keys: Vec<(&'static str, Py<PyString>)>,
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
        UwsgiKeys {
            keys,
            https: intern(py, "https"),
            scheme: intern(py, "wsgi.url_scheme"),
        }
    }

    /// The environ key for a var name, and its index when it is a known one.
    fn key<'py>(&self, py: Python<'py>, name: &[u8]) -> (Bound<'py, PyString>, Option<usize>) {
        match self.keys.iter().position(|(k, _)| k.as_bytes() == name) {
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
        for (i, v) in packet.vars.iter().enumerate() {
            let name = &buf[v.key.clone()];
            if name.starts_with(b"UWSGI_") {
                // uWSGI's "magic" vars can load code; here they are never honoured.
                continue;
            }
            let (key, known) = self.uwsgi_keys.key(py, name);
            let raw = &buf[v.value.clone()];
            // Values that change with every request are not worth caching.
            let varies = matches!(name, b"REMOTE_PORT" | b"REQUEST_URI" | b"PATH_INFO");
            let value = match known {
                Some(i) if !varies => self.uwsgi_values.get(py, i, raw),
                _ => latin1_str(py, raw),
            };
            // Join only a key this packet repeats; a template default (e.g. an
            // empty QUERY_STRING) is replaced, never joined.
            // Only headers repeat; checking CGI names too was a quadratic scan.
            let repeated = name.starts_with(b"HTTP_")
                && packet.vars[..i].iter().any(|p| &buf[p.key.clone()] == name);
            if repeated {
                set_joined(&env, &key, value, name == b"HTTP_COOKIE")?;
            } else {
                env.set_item(&key, value)?;
            }
        }
        let get = |k: &[u8]| var(buf, packet, k);
        if get(b"REQUEST_METHOD").is_none() {
            env.set_item(&self.k_method, &self.methods[0])?;
        }
        if get(b"SERVER_PROTOCOL").is_none() {
            env.set_item(&self.k_protocol, &self.http10)?;
        }
        if get(b"PATH_INFO").is_none() {
            // Derive it from REQUEST_URI, as an HTTP request would.
            let uri = get(b"REQUEST_URI").unwrap_or(b"/");
            let path = uri.split(|&b| b == b'?').next().unwrap_or(b"");
            percent_decode(path, &mut self.path);
            env.set_item(&self.k_path_info, latin1_str(py, &self.path))?;
        }
        if get(b"SERVER_NAME").is_none() {
            env.set_item(&self.k_server_name, &conn.server_name)?;
        }
        if get(b"SERVER_PORT").is_none() {
            env.set_item(&self.k_server_port, &conn.server_port)?;
        }
        let https = get(b"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
        let scheme_https = get(b"REQUEST_SCHEME").is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
        if https || scheme_https {
            env.set_item(&self.uwsgi_keys.scheme, &self.uwsgi_keys.https)?;
        }
        env.set_item(&self.k_input, Py::new(py, Input::new(body)?)?)?;
        Ok(env)
    }
}
