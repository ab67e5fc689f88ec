//! Building the PEP 3333 environ for a request. Hot path: keys are interned
//! once per worker, constant entries live in a template dict copied per
//! request, and common header names map to pre-made `HTTP_*` keys.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::errors::Errors;
use super::input::Input;
use crate::body::Body;
use crate::protocol::http::{percent_decode, BodyFraming, RequestHead};
use crate::protocol::uwsgi::Packet;

/// The client and server ends of a connection, as environ strings.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub remote_addr: String,
    pub remote_port: String,
    pub server_name: String,
    pub server_port: String,
}

impl ConnInfo {
    /// Refills the strings in place, keeping their allocations (a worker
    /// reuses a closed connection's `ConnInfo` for the next one).
    pub fn fill(&mut self, peer: Option<std::net::SocketAddr>, server_name: &str, port: &str) {
        use std::fmt::Write;
        self.remote_addr.clear();
        self.remote_port.clear();
        if let Some(peer) = peer {
            // Writing to a String cannot fail.
            let _ = write!(self.remote_addr, "{}", peer.ip());
            let _ = write!(self.remote_port, "{}", peer.port());
        }
        self.server_name.clear();
        self.server_name.push_str(server_name);
        self.server_port.clear();
        self.server_port.push_str(port);
    }
}

/// The parsed head of a request, in whichever protocol it came.
pub enum Head<'a> {
    Http(&'a RequestHead),
    Uwsgi(&'a Packet),
}

/// One complete request, as the worker hands it to the bridge.
pub struct Request<'a> {
    /// The buffer the head's ranges refer to.
    pub buf: &'a [u8],
    pub head: Head<'a>,
    pub body: Body,
    pub conn: &'a ConnInfo,
    /// When the app call began (a streamed response's duration counts
    /// from it); the caller has read the clock already.
    pub started: std::time::Instant,
}

/// Header names (lower-case) with pre-interned environ keys.
pub(super) const COMMON_HEADERS: [(&str, &str); 24] = [
    ("host", "HTTP_HOST"),
    ("user-agent", "HTTP_USER_AGENT"),
    ("accept", "HTTP_ACCEPT"),
    ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
    ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
    ("connection", "HTTP_CONNECTION"),
    ("cookie", "HTTP_COOKIE"),
    ("referer", "HTTP_REFERER"),
    ("cache-control", "HTTP_CACHE_CONTROL"),
    ("authorization", "HTTP_AUTHORIZATION"),
    ("origin", "HTTP_ORIGIN"),
    ("pragma", "HTTP_PRAGMA"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
    ("x-forwarded-host", "HTTP_X_FORWARDED_HOST"),
    ("x-real-ip", "HTTP_X_REAL_IP"),
    ("x-requested-with", "HTTP_X_REQUESTED_WITH"),
    (
        "upgrade-insecure-requests",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
    ),
    ("sec-fetch-mode", "HTTP_SEC_FETCH_MODE"),
    ("sec-fetch-site", "HTTP_SEC_FETCH_SITE"),
    ("sec-fetch-dest", "HTTP_SEC_FETCH_DEST"),
    ("expect", "HTTP_EXPECT"),
];

// `build_http` tracks the common headers in a u32.
const _: () = assert!(COMMON_HEADERS.len() <= 32);

/// Value-cache slots after the headers': remote address, server name, port.
const CONN_SLOTS: usize = 3;
const SLOT_REMOTE_ADDR: usize = COMMON_HEADERS.len();
const SLOT_SERVER_NAME: usize = COMMON_HEADERS.len() + 1;
const SLOT_SERVER_PORT: usize = COMMON_HEADERS.len() + 2;

const METHODS: [&str; 9] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

pub struct EnvironBuilder {
    /// The constant entries, plus a placeholder for every key `build_http`
    /// always sets: replacing a value in the copy is cheaper than inserting
    /// a key, and the copy is big enough that the request's keys fit without
    /// the dict growing (one resize per request before).
    pub(super) template: Py<PyDict>,
    /// The same for `build_uwsgi`, whose always-set keys are fewer.
    pub(super) uwsgi_template: Py<PyDict>,
    pub(super) k_method: Py<PyString>,
    pub(super) k_path_info: Py<PyString>,
    pub(super) k_query: Py<PyString>,
    pub(super) k_content_type: Py<PyString>,
    pub(super) k_content_length: Py<PyString>,
    pub(super) k_server_name: Py<PyString>,
    pub(super) k_server_port: Py<PyString>,
    pub(super) k_protocol: Py<PyString>,
    pub(super) k_remote_addr: Py<PyString>,
    pub(super) k_remote_port: Py<PyString>,
    pub(super) k_request_uri: Py<PyString>,
    pub(super) k_raw_uri: Py<PyString>,
    pub(super) k_input: Py<PyString>,
    pub(super) headers: Vec<(&'static str, Py<PyString>)>,
    pub(super) methods: Vec<Py<PyString>>,
    pub(super) http10: Py<PyString>,
    pub(super) http11: Py<PyString>,
    pub(super) path: Vec<u8>,
    pub(super) uwsgi_keys: super::uwsgi_environ::UwsgiKeys,
    /// Last values of the known uwsgi vars, and of the common headers plus
    /// the per-connection strings (see `value_cache`).
    pub(super) uwsgi_values: super::value_cache::ValueCache,
    values: super::value_cache::ValueCache,
    key: String,
}

/// Grows a template's hash table to 64 slots (room for 42 keys) without
/// keeping extra keys. CPython's dict copy keeps the table as it is, so a
/// template whose table is full (21 keys in 32 slots, as the HTTP one was)
/// made every request's environ rehash itself on its first new key. Keys
/// inserted up to 22 entries and deleted again leave the bigger table; while
/// at most a third of the entries are deleted ones, the copy stays a plain
/// memory copy. Measured: one dict resize per request less.
fn make_room(template: &Bound<'_, PyDict>) -> PyResult<()> {
    const GROWN_AT: usize = 22;
    let pads: Vec<String> = (template.len()..GROWN_AT)
        .map(|i| format!("\0rwsgi-pad-{i}"))
        .collect();
    for pad in &pads {
        template.set_item(pad, ())?;
    }
    for pad in &pads {
        template.del_item(pad)?;
    }
    Ok(())
}

pub(super) fn intern(py: Python<'_>, s: &str) -> Py<PyString> {
    PyString::intern(py, s).unbind()
}

/// Bytes as a latin-1 `str` (PEP 3333's "bytes in a str" convention).
pub(super) fn latin1_str<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(b) {
        Ok(s) if b.is_ascii() => PyString::new(py, s),
        _ => PyString::new(py, &b.iter().map(|&c| char::from(c)).collect::<String>()),
    }
}

impl EnvironBuilder {
    pub fn new(py: Python<'_>, multithread: bool) -> PyResult<EnvironBuilder> {
        let template = PyDict::new(py);
        template.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        template.set_item("wsgi.url_scheme", "http")?;
        template.set_item("wsgi.multithread", multithread)?;
        template.set_item("wsgi.multiprocess", true)?;
        template.set_item("wsgi.run_once", false)?;
        template.set_item("wsgi.input_terminated", true)?;
        template.set_item("wsgi.errors", Py::new(py, Errors::new())?)?;
        template.set_item(
            "wsgi.file_wrapper",
            py.get_type::<super::file_wrapper::FileWrapper>(),
        )?;
        template.set_item("SCRIPT_NAME", "")?;
        template.set_item(
            "SERVER_SOFTWARE",
            concat!("rwsgi/", env!("CARGO_PKG_VERSION")),
        )?;
        template.set_item("QUERY_STRING", "")?;
        let headers: Vec<(&'static str, Py<PyString>)> = COMMON_HEADERS
            .iter()
            .map(|(name, key)| (*name, intern(py, key)))
            .collect();
        let uwsgi_keys = super::uwsgi_environ::UwsgiKeys::new(py, &headers);
        let k = |s| intern(py, s);
        let (k_method, k_path_info, k_protocol) =
            (k("REQUEST_METHOD"), k("PATH_INFO"), k("SERVER_PROTOCOL"));
        let (k_server_name, k_server_port, k_input) =
            (k("SERVER_NAME"), k("SERVER_PORT"), k("wsgi.input"));
        let (k_request_uri, k_raw_uri) = (k("REQUEST_URI"), k("RAW_URI"));
        let (k_remote_addr, k_remote_port) = (k("REMOTE_ADDR"), k("REMOTE_PORT"));
        let uwsgi_template = template.copy()?;
        for key in [
            &k_method,
            &k_path_info,
            &k_protocol,
            &k_server_name,
            &k_server_port,
            &k_input,
        ] {
            uwsgi_template.set_item(key, py.None())?;
            template.set_item(key, py.None())?;
        }
        for key in [&k_request_uri, &k_raw_uri, &k_remote_addr, &k_remote_port] {
            template.set_item(key, py.None())?;
        }
        make_room(&template)?;
        make_room(&uwsgi_template)?;
        Ok(EnvironBuilder {
            uwsgi_values: super::value_cache::ValueCache::new(uwsgi_keys.len()),
            values: super::value_cache::ValueCache::new(COMMON_HEADERS.len() + CONN_SLOTS),
            uwsgi_keys,
            headers,
            template: template.unbind(),
            uwsgi_template: uwsgi_template.unbind(),
            k_method,
            k_path_info,
            k_query: intern(py, "QUERY_STRING"),
            k_content_type: intern(py, "CONTENT_TYPE"),
            k_content_length: intern(py, "CONTENT_LENGTH"),
            k_server_name,
            k_server_port,
            k_protocol,
            k_remote_addr,
            k_remote_port,
            k_request_uri,
            k_raw_uri,
            k_input,
            methods: METHODS.iter().map(|m| intern(py, m)).collect(),
            http10: intern(py, "HTTP/1.0"),
            http11: intern(py, "HTTP/1.1"),
            path: Vec::with_capacity(256),
            key: String::with_capacity(64),
        })
    }

    /// Builds the environ of one request.
    pub fn build<'py>(
        &mut self,
        py: Python<'py>,
        req: Request<'_>,
    ) -> PyResult<Bound<'py, PyDict>> {
        match req.head {
            Head::Http(head) => self.build_http(py, req.buf, head, req.body, req.conn),
            Head::Uwsgi(packet) => self.build_uwsgi(py, req.buf, packet, req.body, req.conn),
        }
    }

    fn build_http<'py>(
        &mut self,
        py: Python<'py>,
        buf: &[u8],
        head: &RequestHead,
        body: Body,
        conn: &ConnInfo,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.template.bind(py).copy()?;

        let method = &buf[head.method.clone()];
        match METHODS.iter().position(|m| m.as_bytes() == method) {
            Some(i) => env.set_item(&self.k_method, &self.methods[i])?,
            None => env.set_item(&self.k_method, latin1_str(py, method))?,
        }
        percent_decode(&buf[head.path.clone()], &mut self.path);
        env.set_item(&self.k_path_info, latin1_str(py, &self.path))?;
        if !head.query.is_empty() {
            env.set_item(&self.k_query, latin1_str(py, &buf[head.query.clone()]))?;
        }
        let target = latin1_str(py, &buf[head.target.clone()]);
        env.set_item(&self.k_request_uri, &target)?;
        env.set_item(&self.k_raw_uri, &target)?;
        let proto = match head.version() {
            crate::protocol::http::Version::Http10 => &self.http10,
            crate::protocol::http::Version::Http11 => &self.http11,
        };
        env.set_item(&self.k_protocol, proto)?;
        let addr = self
            .values
            .get(py, SLOT_REMOTE_ADDR, conn.remote_addr.as_bytes());
        env.set_item(&self.k_remote_addr, addr)?;
        env.set_item(&self.k_remote_port, &conn.remote_port)?;

        let (mut server_name, mut server_port) = (None, None);
        // Common headers already set in this environ: the first of each is
        // set without looking for an earlier one to join with.
        let mut seen: u32 = 0;
        for h in &head.headers {
            let name = &buf[h.name.clone()];
            let value = &buf[h.value.clone()];
            if name.eq_ignore_ascii_case(b"content-type") {
                env.set_item(&self.k_content_type, latin1_str(py, value))?;
                continue;
            }
            if name.eq_ignore_ascii_case(b"content-length")
                || name.eq_ignore_ascii_case(b"transfer-encoding")
            {
                continue; // CONTENT_LENGTH is set from the body actually read
            }
            if name.contains(&b'_') {
                // `X_Forwarded_For` would collide with `X-Forwarded-For` in the
                // environ; dropping it prevents spoofing (as nginx and Gunicorn do).
                continue;
            }
            if name.eq_ignore_ascii_case(b"host") {
                let (n, p) = split_host(value);
                server_name = Some(n);
                // No port in Host: the scheme's default, as Gunicorn does.
                server_port = Some(p.unwrap_or(b"80"));
            }
            let (key, known) = self.header_key(py, name);
            let value = match known {
                Some(i) if !name.eq_ignore_ascii_case(b"cookie") => self.values.get(py, i, value),
                _ => latin1_str(py, value),
            };
            let first = known.is_some_and(|i| {
                let bit = 1u32 << i;
                let first = seen & bit == 0;
                seen |= bit;
                first
            });
            if first {
                env.set_item(&key, value)?;
            } else {
                set_joined(&env, &key, value, name.eq_ignore_ascii_case(b"cookie"))?;
            }
        }
        match server_name {
            Some(n) => env.set_item(&self.k_server_name, latin1_str(py, n))?,
            None => env.set_item(
                &self.k_server_name,
                self.values
                    .get(py, SLOT_SERVER_NAME, conn.server_name.as_bytes()),
            )?,
        }
        match server_port {
            Some(p) => env.set_item(&self.k_server_port, latin1_str(py, p))?,
            None => env.set_item(
                &self.k_server_port,
                self.values
                    .get(py, SLOT_SERVER_PORT, conn.server_port.as_bytes()),
            )?,
        }
        if head.body_framing() != BodyFraming::None || !body.is_empty() {
            env.set_item(&self.k_content_length, body.len().to_string())?;
        }
        env.set_item(&self.k_input, Py::new(py, Input::new(body)?)?)?;
        Ok(env)
    }

    /// The environ key of a header, and its index when it is a common one.
    fn header_key<'py>(
        &mut self,
        py: Python<'py>,
        name: &[u8],
    ) -> (Bound<'py, PyString>, Option<usize>) {
        if let Some(i) = self
            .headers
            .iter()
            .position(|(n, _)| n.len() == name.len() && n.as_bytes().eq_ignore_ascii_case(name))
        {
            return (self.headers[i].1.bind(py).clone(), Some(i));
        }
        self.key.clear();
        self.key.push_str("HTTP_");
        for &b in name {
            self.key.push(match b {
                b'-' => '_',
                _ => char::from(b.to_ascii_uppercase()),
            });
        }
        (PyString::new(py, &self.key), None)
    }
}

/// Sets `key`, joining a repeated header's values with `, ` (`; ` for cookies).
pub(super) fn set_joined(
    env: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: Bound<'_, PyString>,
    cookie: bool,
) -> PyResult<()> {
    match env.get_item(key)? {
        Some(old) => {
            let sep = if cookie { "; " } else { ", " };
            let joined = format!(
                "{}{sep}{}",
                old.cast::<PyString>()?.to_str()?,
                value.to_str()?
            );
            env.set_item(key, joined)
        }
        None => env.set_item(key, value),
    }
}

/// Splits a Host header value into name and port (`[::1]:8000` aware).
fn split_host(v: &[u8]) -> (&[u8], Option<&[u8]>) {
    let port_at = if v.first() == Some(&b'[') {
        v.iter()
            .position(|&b| b == b']')
            .and_then(|i| (v.get(i + 1) == Some(&b':')).then_some(i + 1))
    } else {
        v.iter().rposition(|&b| b == b':')
    };
    match port_at {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn host_splitting() {
        assert_eq!(split_host(b"example.com"), (&b"example.com"[..], None));
        assert_eq!(
            split_host(b"example.com:81"),
            (&b"example.com"[..], Some(&b"81"[..]))
        );
        assert_eq!(
            split_host(b"[::1]:8000"),
            (&b"[::1]"[..], Some(&b"8000"[..]))
        );
        assert_eq!(split_host(b"[::1]"), (&b"[::1]"[..], None));
    }
}
