//! Opening files beneath a directory fd, for static files: `openat2` with
//! `RESOLVE_BENEATH` where the kernel has it, plain `openat` with
//! `O_NOFOLLOW` for the component-by-component walk otherwise.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `struct open_how` of linux/openat2.h (libc's is `non_exhaustive`, so it
/// can't be built with a literal).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Flags for a file opened to be read and sent: never blocks (a FIFO in the
/// directory must not hang the worker), never becomes a controlling tty.
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// Opens `path` as an `O_PATH | O_DIRECTORY` fd: a handle to resolve names
/// beneath, which needs no read permission on the directory.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `rel` (relative, no leading `/`) beneath `dir` for reading with
/// openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): no `..`, absolute
/// symlink or symlink chain can leave `dir` (EXDEV), and the check and the
/// open are one step. `ENOSYS` (or `EPERM` from a seccomp filter) means the
/// kernel can't: the caller walks instead.
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &CStr) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: READ_FLAGS as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `rel` is NUL-terminated and `how` is a valid open_how of the
    // size passed; the kernel only reads both. A returned fd is new and ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::other("openat2: bad fd"))?;
    // SAFETY: `fd` was just returned by openat2 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What one intermediate step of the walk found.
pub enum Step {
    /// A directory (an `O_PATH` fd) to continue from.
    Dir(OwnedFd),
    /// A symbolic link: the walk refuses to follow it.
    Symlink,
    /// Anything else: the path can't go on through it.
    NotDir,
}

/// One intermediate component `name` (no `/`) of the walk, opened beneath
/// `dir` without following a symlink: the link itself is opened
/// (`O_PATH | O_NOFOLLOW`) and judged by `fstat` on that very fd, so nothing
/// can be swapped in between the check and the use.
pub fn open_component(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Step> {
    // SAFETY: `name` is NUL-terminated; the returned fd is new and ours.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed stat is valid; fstat fills it for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat struct and `fd` is open.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Step::Dir(fd),
        libc::S_IFLNK => Step::Symlink,
        _ => Step::NotDir,
    })
}

/// The last component `name` of the walk, opened beneath `dir` for reading
/// with `O_NOFOLLOW`: a symlink fails with `ELOOP`.
pub fn open_last(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the returned fd is new and ours.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            READ_FLAGS | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
