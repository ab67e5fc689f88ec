//! Listen addresses as users write them: `:8000`, `0.0.0.0:8000`,
//! `[::1]:8000`, `localhost:8000`, a unix socket path, or `fd://N` (a socket
//! inherited from the parent, e.g. systemd socket activation).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The protocol spoken on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    /// The uwsgi binary protocol (nginx `uwsgi_pass`).
    Uwsgi,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Uwsgi => "uwsgi",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// `fd://N`: an already listening socket inherited as file descriptor N.
    Fd(std::os::fd::RawFd),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Fd(n) => write!(f, "fd://{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub addr: ListenAddr,
    pub protocol: Protocol,
}

/// Parses a listen address. A value containing `/` or ending in `.sock` is a
/// unix socket path; `:PORT` means every IPv4 interface, as in uWSGI;
/// `fd://N` names an inherited socket.
pub fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(n) = s.strip_prefix("fd://") {
        return n
            .parse::<u16>()
            .map(|n| ListenAddr::Fd(n.into()))
            .map_err(|_| format!("fd://{n}: expected a file descriptor number, like fd://3"));
    }
    // `http://127.0.0.1:8000` is a URL, not an address (and not a unix path).
    if let Some((scheme, rest)) = s.split_once("://") {
        return Err(format!(
            "{scheme}:// is a URL scheme, not part of a listen address: drop the scheme \
             ({})",
            rest.trim_end_matches('/')
        ));
    }
    if s.contains('/') || s.ends_with(".sock") {
        return Ok(ListenAddr::Unix(PathBuf::from(
            s.strip_prefix("unix:").unwrap_or(s),
        )));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:PORT or :PORT (e.g. 127.0.0.1:8000)".to_string())?;
    let port: u32 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number"))?;
    if port > 65535 {
        return Err(format!("port {port} is above 65535"));
    }
    let port = port as u16;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() || host == "*" {
        "0.0.0.0"
    } else {
        host
    };
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ListenAddr::Tcp(SocketAddr::new(ip, port)));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .next()
        .map(ListenAddr::Tcp)
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let tcp = |s: &str| match parse_listen(s).unwrap() {
            ListenAddr::Tcp(a) => a.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tcp(":8000"), "0.0.0.0:8000");
        assert_eq!(tcp("127.0.0.1:0"), "127.0.0.1:0");
        assert_eq!(tcp("[::1]:8000"), "[::1]:8000");
        assert_eq!(tcp("[::]:80"), "[::]:80");
        assert!(tcp("localhost:81").ends_with(":81"));
        assert_eq!(
            parse_listen("/run/app.sock").unwrap(),
            ListenAddr::Unix("/run/app.sock".into())
        );
        assert_eq!(
            parse_listen("app.sock").unwrap(),
            ListenAddr::Unix("app.sock".into())
        );
        assert!(parse_listen("8000").is_err());
        assert!(parse_listen(":http").is_err());
        assert!(parse_listen(":65536").unwrap_err().contains("65535"));
        assert_eq!(parse_listen("fd://3").unwrap(), ListenAddr::Fd(3));
        assert_eq!(parse_listen("fd://3").unwrap().to_string(), "fd://3");
        assert!(parse_listen("fd://x").unwrap_err().contains("fd://3"));
        assert!(parse_listen("fd://-1").is_err());
        let e = parse_listen("http://127.0.0.1:8000/").unwrap_err();
        assert!(e.contains("drop the scheme (127.0.0.1:8000)"), "{e}");
    }
}
