//! Opening a relative path beneath a mapped directory so that nothing
//! outside it can be reached, and the check and the open are one step:
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` where the kernel has
//! it, otherwise a walk one component at a time that follows no symlink.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::sys::fs::{self as sysfs, Step};

/// How a lookup ended.
#[derive(Debug)]
pub enum Found {
    /// A regular file, open for reading.
    File(File),
    /// A directory (for `--static-index`).
    Dir,
    /// Nothing there (or not a file we serve): the app's request.
    Missing,
    /// A symlink out of the directory, or no permission: 404, and nothing
    /// more is said.
    Refused,
}

/// Whether `openat2` works here; cleared for good at its first `ENOSYS`.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// Opens `rel` (components joined by `/`, already checked by `path::map`)
/// beneath `root`. `walk_only` skips `openat2` (for tests of the fallback).
pub fn open_beneath(root: &OwnedFd, rel: &str, walk_only: bool) -> Found {
    let rel = if rel.is_empty() { "." } else { rel };
    if !walk_only && OPENAT2.load(Relaxed) {
        let Ok(c) = CString::new(rel) else {
            return Found::Refused;
        };
        match sysfs::open_beneath(root.as_fd(), &c) {
            Ok(fd) => return judge(fd),
            // seccomp filters (older container runtimes) answer EPERM.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                OPENAT2.store(false, Relaxed);
                log::info!("openat2 is not available ({e}); static files use a component walk");
            }
            Err(e) => return from_error(&e),
        }
    }
    walk(root, rel)
}

/// The walk: every intermediate component must be a real directory (a
/// symlink is refused, even one that stays inside), and the last one is
/// opened with `O_NOFOLLOW`.
fn walk(root: &OwnedFd, rel: &str) -> Found {
    if rel == "." {
        return Found::Dir;
    }
    let mut parts = rel.split('/').peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let Ok(name) = CString::new(part) else {
            return Found::Refused;
        };
        let at = dir.as_ref().unwrap_or(root).as_fd();
        if parts.peek().is_none() {
            return match sysfs::open_last(at, &name) {
                Ok(fd) => judge(fd),
                Err(e) => from_error(&e),
            };
        }
        match sysfs::open_component(at, &name) {
            Ok(Step::Dir(fd)) => dir = Some(fd),
            Ok(Step::Symlink) => return Found::Refused,
            Ok(Step::NotDir) => return Found::Missing,
            Err(e) => return from_error(&e),
        }
    }
    Found::Missing
}

/// Regular files are served, directories may have an index, nothing else.
fn judge(fd: OwnedFd) -> Found {
    let file = File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => Found::File(file),
        Ok(m) if m.is_dir() => Found::Dir,
        _ => Found::Missing,
    }
}

fn from_error(e: &io::Error) -> Found {
    match e.raw_os_error() {
        // Not there, or a file where a directory was expected.
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => Found::Missing,
        // EXDEV: the path would leave the directory (openat2); ELOOP: a
        // symlink (walk) or a loop; EACCES: not ours to read.
        _ => Found::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree(std::path::PathBuf);
    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree() -> Tree {
        let base = std::env::temp_dir().join(format!("rwsgi-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"b").unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        symlink("../secret", root.join("out")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("a.txt", root.join("in")).unwrap();
        symlink("sub", root.join("subl")).unwrap();
        std::fs::create_dir(base.join("outdir")).unwrap();
        std::fs::write(base.join("outdir/x"), b"x").unwrap();
        symlink("../outdir", root.join("outl")).unwrap();
        Tree(base)
    }

    fn kind(f: &Found) -> &'static str {
        match f {
            Found::File(_) => "file",
            Found::Dir => "dir",
            Found::Missing => "missing",
            Found::Refused => "refused",
        }
    }

    #[test]
    fn both_ways_keep_inside_the_root() {
        let t = tree();
        let root = sysfs::open_dir_path(&t.0.join("root")).unwrap();
        // (path, with openat2, with the walk)
        let cases = [
            ("a.txt", "file", "file"),
            ("sub/b.txt", "file", "file"),
            ("sub", "dir", "dir"),
            ("", "dir", "dir"),
            ("nope", "missing", "missing"),
            ("a.txt/x", "missing", "missing"),
            ("out", "refused", "refused"),
            ("etc/passwd", "refused", "refused"),
            ("outl/x", "refused", "refused"),
            // Symlinks that stay inside: followed by openat2, refused by the walk.
            ("in", "file", "refused"),
            ("subl/b.txt", "file", "refused"),
        ];
        for (rel, beneath, walked) in cases {
            assert_eq!(
                kind(&open_beneath(&root, rel, false)),
                beneath,
                "openat2 {rel}"
            );
            assert_eq!(kind(&open_beneath(&root, rel, true)), walked, "walk {rel}");
        }
    }
}
