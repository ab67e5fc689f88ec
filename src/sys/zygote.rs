//! The syscalls behind `--preload`: the master as a child subreaper, the
//! template's double fork, and what the template looks at after the import
//! (its threads and sockets).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::{cvt, pipe, read, Forked};

/// Makes this process (the master) the parent of any orphaned descendant:
/// a worker the template double-forks becomes the master's child to wait for
/// and signal, exactly like one the master forked itself.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer argument only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// Has the kernel SIGKILL this process when its parent dies (the template:
/// it serves no client, so there is nothing to finish). Call after any
/// uid/gid change, which clears it.
pub fn kill_on_parent_death() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes an integer argument only.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    Ok(())
}

/// Forks a grandchild: a short-lived middle process forks it and exits at
/// once, so the grandchild is reparented to the nearest subreaper (the
/// master). The caller gets the grandchild's pid once the middle process is
/// reaped; the grandchild gets `Forked::Child` and should call
/// [`wait_reparented`] before relying on its parent.
///
/// # Safety
/// As for [`super::fork`]: the caller must be single-threaded, or a lock
/// another thread held stays locked in the child (the template warns about
/// threads an import left running).
pub unsafe fn double_fork() -> io::Result<Forked> {
    let (pid_read, pid_write) = pipe()?;
    // SAFETY: the caller is single-threaded (this function's contract).
    let middle = cvt(unsafe { libc::fork() })?;
    if middle == 0 {
        // The middle process: fork the worker, report its pid, exit.
        // SAFETY: a child of a single-threaded process has one thread.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            drop(pid_read);
            drop(pid_write);
            return Ok(Forked::Child);
        }
        let _ = super::write_pipe(pid_write.as_raw_fd(), &pid.to_le_bytes());
        super::exit_now(0);
    }
    drop(pid_write);
    let mut status = 0;
    // SAFETY: waitpid writes only to `status`, a valid local.
    while unsafe { libc::waitpid(middle, &mut status, 0) } == -1 {
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let mut buf = [0u8; 4];
    match read(pid_read.as_raw_fd(), &mut buf) {
        Ok(4) => match libc::pid_t::from_le_bytes(buf) {
            pid if pid > 0 => Ok(Forked::Parent(pid)),
            _ => Err(io::Error::other("fork failed in the middle process")),
        },
        _ => Err(io::Error::other("the middle process reported no pid")),
    }
}

/// In a double-forked child: waits (microseconds) until the middle process
/// is gone and `master` is our parent. False if the parent became anything
/// else (the master died meanwhile) or the wait took over a second.
pub fn wait_reparented(master: libc::pid_t) -> bool {
    let middle = super::getppid();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let parent = super::getppid();
        if parent == master {
            return true;
        }
        if parent != middle || Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
}

/// The parent of process `pid`, from /proc/PID/stat (None if it is gone).
pub fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until `fd` is readable, up to `timeout`. False on timeout.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            -1 if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
            -1 => return Err(io::Error::last_os_error()),
            0 => return Ok(false),
            _ => return Ok(true),
        }
    }
}

/// Waits until one of `fds` is readable (or hung up); returns their indexes.
pub fn wait_any_readable(fds: &[RawFd]) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of its length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n == -1 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        return Ok(pfds
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents != 0)
            .map(|(i, _)| i)
            .collect());
    }
}

/// The names of this process's threads other than the calling one, from
/// /proc/self/task (native threads too, which Python does not list).
pub fn other_threads() -> Vec<String> {
    // SAFETY: gettid has no memory effects.
    let me = unsafe { libc::gettid() }.to_string();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.file_name() != me.as_str())
        .map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            format!("{} (tid {})", comm.trim(), e.file_name().to_string_lossy())
        })
        .collect()
}

/// The socket fds this process holds, each with its peer ("-" when none).
pub fn open_sockets() -> Vec<(RawFd, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut out: Vec<(RawFd, String)> = dir
        .flatten()
        .filter_map(|e| {
            let fd: RawFd = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            link.to_str()?
                .starts_with("socket:")
                .then(|| (fd, peer_name(fd)))
        })
        .collect();
    out.sort();
    out
}

/// The peer address of a connected socket, as text ("-" when none).
fn peer_name(fd: RawFd) -> String {
    // SAFETY: a zeroed sockaddr_storage is a valid out-buffer.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` and `len` are valid for writing; a bad fd only fails.
    if unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return "-".into();
    }
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            format!("{ip}:{}", u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(&ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            format!("[{ip}]:{}", u16::from_be(a.sin6_port))
        }
        libc::AF_UNIX => "a unix socket".into(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_parent_of_this_process_is_known() {
        assert_eq!(
            super::parent_of(super::super::getpid()),
            Some(super::super::getppid())
        );
        assert_eq!(super::parent_of(-5), None);
    }
}
