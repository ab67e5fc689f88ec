//! Binding the listening sockets (in the master, before any fork), or taking
//! over sockets inherited from the parent (`fd://N`, systemd socket activation).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::config::{ListenAddr, ListenSpec, Protocol, UnixSocketOptions};

/// How long the kernel holds a connection that has sent nothing before it
/// queues it for accept anyway (then `--http-timeout` applies). One second,
/// as nginx's `deferred` uses: a real client's request is there long before.
const DEFER_ACCEPT_SECS: i32 = 1;

/// Where a listener is bound, after binding (port 0 resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for BoundAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundAddr::Tcp(a) => write!(f, "{a}"),
            BoundAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound, listening, non-blocking socket shared by all workers.
#[derive(Debug)]
pub struct Listener {
    pub fd: OwnedFd,
    pub addr: BoundAddr,
    pub protocol: Protocol,
    /// Inherited (`fd://N`): the socket belongs to whoever passed it (systemd
    /// keeps it across our restarts), so it is never shut down or unlinked.
    pub inherited: bool,
}

impl Listener {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Binds every listener of the configuration; the error names the address.
pub fn bind_all(
    specs: &[ListenSpec],
    backlog: u32,
    defer_accept: bool,
    unix: &UnixSocketOptions,
) -> Result<Vec<Listener>, String> {
    specs
        .iter()
        .map(|spec| {
            bind(spec, backlog, defer_accept, unix)
                .map_err(|e| format!("cannot listen on {}: {e}", spec.addr))
        })
        .collect()
}

/// Binds one master-only endpoint (stats, metrics).
pub fn bind_endpoint(addr: &ListenAddr, unix: &UnixSocketOptions) -> Result<Listener, String> {
    let spec = ListenSpec {
        addr: addr.clone(),
        protocol: Protocol::Http,
    };
    // Never deferred: the stats server speaks first, its clients send nothing.
    bind(&spec, 128, false, unix).map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn bind(
    spec: &ListenSpec,
    backlog: u32,
    defer_accept: bool,
    unix: &UnixSocketOptions,
) -> io::Result<Listener> {
    let (fd, addr): (OwnedFd, BoundAddr) = match &spec.addr {
        ListenAddr::Fd(fd) => return inherit(*fd, spec.protocol),
        ListenAddr::Tcp(a) => {
            // std sets SO_REUSEADDR, so a restart does not wait out TIME_WAIT.
            let l = std::net::TcpListener::bind(a)?;
            let local = l.local_addr()?;
            l.set_nonblocking(true)?;
            // Inherited by every accepted connection (no setsockopt per accept).
            crate::sys::set_nodelay(l.as_raw_fd())?;
            if defer_accept {
                // The kernel queues a connection for accept only once its
                // first bytes arrive, so a worker wakes once per connection
                // with the request already readable, instead of once to
                // accept and again to read (nginx's `deferred`, uWSGI's
                // default). Behind nginx this halved the CPU per request.
                crate::sys::set_defer_accept(l.as_raw_fd(), DEFER_ACCEPT_SECS)?;
            }
            (l.into(), BoundAddr::Tcp(local))
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            let l = std::os::unix::net::UnixListener::bind(path)?;
            l.set_nonblocking(true)?;
            apply_unix_options(path, unix)?;
            (l.into(), BoundAddr::Unix(path.clone()))
        }
    };
    // Re-listen with the configured backlog (std picks its own).
    crate::sys::listen(fd.as_raw_fd(), backlog)?;
    Ok(Listener {
        fd,
        addr,
        protocol: spec.protocol,
        inherited: false,
    })
}

/// Takes over an inherited listening socket: checks it is a listening stream
/// socket (TCP or unix), makes it non-blocking and close-on-exec. Its backlog
/// stays what its creator chose (systemd's `Backlog=`).
fn inherit(fd: RawFd, protocol: Protocol) -> io::Result<Listener> {
    use crate::sys;
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    match sys::fd_kind(fd) {
        Ok("socket") => {}
        Ok(kind) => {
            return Err(invalid(format!(
                "fd {fd} is a {kind}, not a socket; pass a listening socket as fd {fd}"
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            return Err(invalid(format!(
                "fd {fd} is not open; the parent (systemd, a supervisor) must pass a listening socket as fd {fd}"
            )))
        }
        Err(e) => return Err(invalid(format!("fd {fd}: {e}"))),
    }
    let opt = |o| sys::socket_option(fd, o).map_err(|e| invalid(format!("fd {fd}: {e}")));
    let (domain, kind) = (opt(libc::SO_DOMAIN)?, opt(libc::SO_TYPE)?);
    if kind != libc::SOCK_STREAM
        || ![libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].contains(&domain)
    {
        return Err(invalid(format!(
            "fd {fd} is not a TCP or unix stream socket (for systemd: ListenStream=, not ListenDatagram=)"
        )));
    }
    if opt(libc::SO_ACCEPTCONN)? != 1 {
        return Err(invalid(format!(
            "fd {fd} is a socket but not listening (for systemd: Accept=no, the default)"
        )));
    }
    sys::set_nonblocking(fd)?;
    sys::set_cloexec(fd, true)?;
    // SAFETY: the fd is open and inherited from our parent; nothing else in
    // this process owns it (systemd::listen_specs refuses an fd named twice).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (fd, addr) = if domain == libc::AF_UNIX {
        use std::os::linux::net::SocketAddrExt;
        let l = std::os::unix::net::UnixListener::from(owned);
        let a = l.local_addr()?;
        let path = match (a.as_pathname(), a.as_abstract_name()) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(name)) => PathBuf::from(format!("@{}", String::from_utf8_lossy(name))),
            (None, None) => PathBuf::from(format!("fd://{fd}")),
        };
        (OwnedFd::from(l), BoundAddr::Unix(path))
    } else {
        let l = std::net::TcpListener::from(owned);
        let a = l.local_addr()?;
        (OwnedFd::from(l), BoundAddr::Tcp(a))
    };
    Ok(Listener {
        fd,
        addr,
        protocol,
        inherited: true,
    })
}

/// `--chmod-socket` and `--chown-socket` on a freshly bound socket file.
fn apply_unix_options(path: &Path, opts: &UnixSocketOptions) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = opts.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    if let Some(owner) = &opts.owner {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        let uid = resolve_user(user)?;
        let gid = group.map(resolve_group).transpose()?;
        std::os::unix::fs::chown(path, Some(uid), gid)?;
    }
    Ok(())
}

fn not_found(what: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("--chown-socket: no {what} {name:?}"),
    )
}

/// A user name or number to a uid.
pub fn resolve_user(name: &str) -> io::Result<u32> {
    if let Ok(uid) = name.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(not_found("user", name)),
    }
}

/// A group name or number to a gid.
pub fn resolve_group(name: &str) -> io::Result<u32> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(not_found("group", name)),
    }
}

/// A socket file left by a previous run is replaced; any other file at that
/// path is an error, never deleted.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; remove it or choose another path",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
