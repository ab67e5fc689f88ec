//! Binding the listening sockets (in the master, before any fork), or taking
//! over sockets inherited from the parent (`fd://N`, systemd socket activation).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::config::{ListenAddr, ListenSpec, Protocol, UnixSocketOptions};
use crate::sys::users;

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
    /// The socket file this process created, for `--vacuum`.
    pub file: Option<SocketFile>,
    /// What the configuration called it (`http 127.0.0.1:0`): the name a
    /// re-executed master finds it by after SIGUSR2 ([`Handed`]).
    pub key: String,
    /// Taken over from the previous master (SIGUSR2). It is treated as
    /// `inherited` until this master is ready: one that fails to start
    /// must leave the previous master's sockets and files alone.
    pub handed: bool,
}

/// Sockets the previous master handed to this one when it re-executed the
/// binary (SIGUSR2, DESIGN.md §2), by the [`Listener::key`] they had.
#[derive(Debug, Default)]
pub struct Handed(Vec<(String, OwnedFd)>);

impl Handed {
    /// The variable that names them: one `KEY=FD` line each.
    pub const VAR: &'static str = "RWSGI_UPGRADE_FDS";

    /// The `VAR` value for sockets given as (key, fd).
    pub fn encode<'a>(sockets: impl Iterator<Item = (&'a str, RawFd)>) -> String {
        sockets.map(|(key, fd)| format!("{key}={fd}\n")).collect()
    }

    /// Reads and removes [`Handed::VAR`]. Call it once, in the master before
    /// any fork or thread (like `systemd::listen_specs`).
    pub fn from_env() -> Result<Handed, String> {
        let Some(value) = std::env::var_os(Handed::VAR) else {
            return Ok(Handed::default());
        };
        std::env::remove_var(Handed::VAR);
        let bad = |why: String| format!("{}: {why} (set by a previous rwsgi master)", Handed::VAR);
        let value = value.into_string().map_err(|_| bad("not UTF-8".into()))?;
        let mut handed = Handed::default();
        for line in value.lines() {
            let (key, fd) = line
                .rsplit_once('=')
                .ok_or_else(|| bad(format!("{line:?} is not KEY=FD")))?;
            let fd: RawFd = fd
                .parse()
                .ok()
                .filter(|fd| *fd > 2)
                .ok_or_else(|| bad(format!("{line:?}: not an fd above 2")))?;
            if handed.0.iter().any(|(_, o)| o.as_raw_fd() == fd) {
                return Err(bad(format!("fd {fd} named twice")));
            }
            check_listening(fd).map_err(|e| bad(e.to_string()))?;
            // SAFETY: the previous master left `fd` open for this process
            // and named it only here (the variable is removed, and an fd
            // named twice was refused), so nothing else owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            crate::sys::set_cloexec(fd, true).map_err(|e| bad(format!("fd {fd}: {e}")))?;
            handed.0.push((key.to_string(), owned));
        }
        Ok(handed)
    }

    fn take(&mut self, key: &str) -> Option<OwnedFd> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }

    /// Closes the sockets no listener took (the configuration changed).
    pub fn close_unused(self) {
        for (key, fd) in self.0 {
            log::info!(
                "upgrade: {key} (fd {}) is no longer configured; closed",
                fd.as_raw_fd()
            );
        }
    }
}

/// A unix socket file as this process created it: `--vacuum` removes the
/// path only while it is still this file (device and inode), never the
/// socket another instance has put there since.
#[derive(Debug, Clone)]
pub struct SocketFile {
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn of(path: &Path) -> io::Result<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Removes the file if it is still ours; `Ok(false)` when it is gone or
    /// another file took its place (left alone).
    pub fn remove_if_ours(&self) -> io::Result<bool> {
        match SocketFile::of(&self.path) {
            Ok(now) if (now.dev, now.ino) == (self.dev, self.ino) => {
                std::fs::remove_file(&self.path).map(|()| true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Listener {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Binds every listener of the configuration, or takes the socket a
/// previous master `handed` over for it; the error names the address.
pub fn bind_all(
    specs: &[ListenSpec],
    backlog: u32,
    defer_accept: bool,
    unix: &UnixSocketOptions,
    handed: &mut Handed,
) -> Result<Vec<Listener>, String> {
    specs
        .iter()
        .map(|spec| {
            let key = format!("{} {}", spec.protocol.name(), spec.addr);
            let l = match handed.take(&key) {
                Some(fd) => take_over(fd, spec.protocol, key),
                None => bind(spec, backlog, defer_accept, unix, key),
            }
            .map_err(|e| format!("cannot listen on {}: {e}", spec.addr))?;
            if let Some(f) = &l.file {
                if let Some(w) = perms_warning(&f.path, unix) {
                    log::warn!("{w}");
                }
            }
            Ok(l)
        })
        .collect()
}

/// Binds one master-only endpoint (stats, metrics) named `name`, or takes
/// the socket a previous master `handed` over for it.
pub fn bind_endpoint(
    name: &str,
    addr: &ListenAddr,
    unix: &UnixSocketOptions,
    handed: &mut Handed,
) -> Result<Listener, String> {
    let spec = ListenSpec {
        addr: addr.clone(),
        protocol: Protocol::Http,
    };
    let key = format!("{name} {addr}");
    match handed.take(&key) {
        Some(fd) => take_over(fd, spec.protocol, key),
        // Never deferred: the stats server speaks first, its clients send nothing.
        None => bind(&spec, 128, false, unix, key),
    }
    .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn bind(
    spec: &ListenSpec,
    backlog: u32,
    defer_accept: bool,
    unix: &UnixSocketOptions,
    key: String,
) -> io::Result<Listener> {
    let mut file = None;
    let (fd, addr): (OwnedFd, BoundAddr) = match &spec.addr {
        ListenAddr::Fd(fd) => return inherit(*fd, spec.protocol, key),
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
            file = Some(SocketFile::of(path)?);
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
        file,
        key,
        handed: false,
    })
}

/// Takes over a socket the previous master bound and handed over. Once this
/// master is ready it owns it (shuts it at the end, `--vacuum` removes its
/// file); until then it is left as the previous master's.
fn take_over(fd: OwnedFd, protocol: Protocol, key: String) -> io::Result<Listener> {
    let (fd, addr) = bound_addr(fd)?;
    let file = match &addr {
        BoundAddr::Unix(path) if path.is_absolute() => Some(SocketFile::of(path)?),
        _ => None,
    };
    Ok(Listener {
        fd,
        addr,
        protocol,
        inherited: true,
        file,
        key,
        handed: true,
    })
}

/// Takes over an inherited listening socket: checks it is a listening stream
/// socket (TCP or unix), makes it non-blocking and close-on-exec. Its backlog
/// stays what its creator chose (systemd's `Backlog=`).
fn inherit(fd: RawFd, protocol: Protocol, key: String) -> io::Result<Listener> {
    check_listening(fd)?;
    crate::sys::set_nonblocking(fd)?;
    crate::sys::set_cloexec(fd, true)?;
    // SAFETY: the fd is open and inherited from our parent; nothing else in
    // this process owns it (systemd::listen_specs refuses an fd named twice).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (fd, addr) = bound_addr(owned)?;
    Ok(Listener {
        fd,
        addr,
        protocol,
        inherited: true,
        file: None,
        key,
        handed: false,
    })
}

/// Checks that `fd` is an open, listening TCP or unix stream socket; the
/// error says what it is instead.
fn check_listening(fd: RawFd) -> io::Result<()> {
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
    Ok(())
}

/// The address a listening socket is bound to.
fn bound_addr(owned: OwnedFd) -> io::Result<(OwnedFd, BoundAddr)> {
    let fd = owned.as_raw_fd();
    let domain = crate::sys::socket_option(fd, libc::SO_DOMAIN)?;
    Ok(if domain == libc::AF_UNIX {
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
    })
}

/// Web servers' usual users: a group of one of these that may write the
/// socket lets nginx in.
const PROXY_GROUPS: &[&str] = &["www-data", "nginx", "http", "nobody", "nogroup", "apache"];

/// A warning when the socket file's mode and owner would keep a proxy
/// running as another user (nginx's `www-data`, or `nobody`) out: connecting
/// needs write permission, so it gets "Permission denied" and a 502.
fn perms_warning(path: &Path, opts: &UnixSocketOptions) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mode = meta.mode() & 0o777;
    if mode & 0o002 != 0 {
        return None; // anyone may connect
    }
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    let group_writes = mode & 0o020 != 0;
    // A group the user chose, or a web server's group, is deliberate.
    if group_writes
        && (opts.owner.as_deref().is_some_and(|o| o.contains(':'))
            || PROXY_GROUPS.contains(&group.as_str()))
    {
        return None;
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let who = if group_writes {
        format!("user {user} and group {group}")
    } else {
        format!("user {user}")
    };
    Some(format!(
        "unix socket {} has mode {mode:03o} (owner {user}:{group}): only {who} can connect. \
         nginx's workers usually run as another user (www-data, or nobody when nginx starts \
         as root) and would get \"Permission denied\" (a 502): use --chmod-socket 666, or \
         --chown-socket {user}:www-data with --chmod-socket 660",
        path.display()
    ))
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
        let uid = users::resolve_user(user).ok_or_else(|| not_found("user", user))?;
        let gid = match group {
            Some(g) => Some(users::resolve_group(g).ok_or_else(|| not_found("group", g))?),
            None => None,
        };
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

/// A socket file left by a previous run is replaced, but only when nothing
/// answers on it: a live socket belongs to another server (a second
/// instance must not take the first one's clients). Any other file at that
/// path is an error, never deleted.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process is serving on this socket (a connection succeeded); \
                     stop it first, or choose another path",
                )),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!(
                        "cannot tell whether this socket is in use ({e}); remove the file \
                         if no server is using it"
                    ),
                )),
            }
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; remove it or choose another path",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
