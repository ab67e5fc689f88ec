//! Request bodies: kept in memory up to `--post-buffering` bytes, spooled to
//! an unlinked temporary file beyond that, so a large upload costs disk, not
//! worker memory. The worker fills a body as bytes arrive; `wsgi.input`
//! reads it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A complete or growing request body.
#[derive(Debug)]
pub enum Body {
    Memory(Vec<u8>),
    File { file: File, len: u64 },
}

impl Default for Body {
    fn default() -> Self {
        Body::Memory(Vec::new())
    }
}

/// Opens an anonymous temporary file (gone when closed, never visible by
/// name). Where the filesystem has no O_TMPFILE (overlayfs on older kernels,
/// NFS), a uniquely named file is created and unlinked at once instead.
fn temp_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let context = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot spool a request body in {}: {e}", dir.display()),
        )
    };
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir);
    match tmpfile {
        Ok(f) => Ok(f),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            named_then_unlinked(&dir).map_err(context)
        }
        Err(e) => Err(context(e)),
    }
}

fn named_then_unlinked(dir: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".rwsgi-body-{}-{n}", std::process::id()));
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match opened {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(v) => v.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held in memory (0 once spooled).
    pub fn memory_len(&self) -> usize {
        match self {
            Body::Memory(v) => v.len(),
            Body::File { .. } => 0,
        }
    }

    /// Appends body bytes, moving to a temp file once the body would exceed
    /// `threshold` bytes in memory.
    pub fn push(&mut self, data: &[u8], threshold: usize) -> io::Result<()> {
        if let Body::Memory(v) = self {
            if v.len() + data.len() <= threshold {
                v.extend_from_slice(data);
                return Ok(());
            }
            let mut file = temp_file()?;
            file.write_all(v)?;
            let len = v.len() as u64;
            *self = Body::File { file, len };
        }
        if let Body::File { file, len } = self {
            file.write_all(data)?;
            *len += data.len() as u64;
        }
        Ok(())
    }

    /// Ready for reading from the start.
    pub fn rewind(&mut self) -> io::Result<()> {
        if let Body::File { file, .. } = self {
            file.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }
}

/// Reads a finished body from the start: what `wsgi.input` wraps.
#[derive(Debug)]
pub struct BodyReader {
    body: Body,
    pos: u64,
    /// Read-ahead for file bodies (readline scans it).
    buf: Vec<u8>,
    buf_pos: usize,
}

impl BodyReader {
    pub fn new(mut body: Body) -> io::Result<BodyReader> {
        body.rewind()?;
        Ok(BodyReader {
            body,
            pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
        })
    }

    pub fn remaining(&self) -> u64 {
        self.body.len() - self.pos
    }

    /// Makes some unread bytes available (for file bodies, one block).
    fn fill(&mut self) -> io::Result<&[u8]> {
        match &mut self.body {
            Body::Memory(v) => Ok(&v[self.pos as usize..]),
            Body::File { file, .. } => {
                if self.buf_pos == self.buf.len() {
                    self.buf.resize(64 * 1024, 0);
                    let n = file.read(&mut self.buf)?;
                    self.buf.truncate(n);
                    self.buf_pos = 0;
                }
                Ok(&self.buf[self.buf_pos..])
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.pos += n as u64;
        if matches!(self.body, Body::File { .. }) {
            self.buf_pos += n;
        }
    }

    /// Reads up to `max` bytes (all that is left if `None`).
    pub fn read(&mut self, max: Option<usize>) -> io::Result<Vec<u8>> {
        let want = max.map_or(self.remaining(), |m| (m as u64).min(self.remaining())) as usize;
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let avail = self.fill()?;
            if avail.is_empty() {
                break;
            }
            let n = avail.len().min(want - out.len());
            out.extend_from_slice(&avail[..n]);
            self.advance(n);
        }
        Ok(out)
    }

    /// Reads one line including its `\n`, at most `max` bytes.
    pub fn read_line(&mut self, max: Option<usize>) -> io::Result<Vec<u8>> {
        let limit = max.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < limit {
            let avail = self.fill()?;
            if avail.is_empty() {
                break;
            }
            let room = avail.len().min(limit - out.len());
            let (n, done) = match avail[..room].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (room, false),
            };
            out.extend_from_slice(&avail[..n]);
            self.advance(n);
            if done {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(data: &[u8], threshold: usize, piece: usize) -> Body {
        let mut b = Body::default();
        for chunk in data.chunks(piece.max(1)) {
            b.push(chunk, threshold).unwrap();
        }
        b
    }

    #[test]
    fn the_named_fallback_leaves_no_file_behind() {
        let dir = std::env::temp_dir();
        let mut f = named_then_unlinked(&dir).unwrap();
        f.write_all(b"abc").unwrap();
        let prefix = format!(".rwsgi-body-{}-", std::process::id());
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn spools_past_the_threshold_and_reads_back_the_same() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for (threshold, spooled) in [(usize::MAX, false), (1000, true)] {
            let body = body_of(&data, threshold, 7000);
            assert_eq!(matches!(body, Body::File { .. }), spooled);
            assert_eq!(body.len(), data.len() as u64);
            let mut r = BodyReader::new(body).unwrap();
            assert_eq!(r.read_line(None).unwrap(), b"line 0\n");
            assert_eq!(r.read_line(Some(3)).unwrap(), b"lin");
            assert_eq!(r.read(Some(5)).unwrap(), b"e 1\nl");
            let rest = r.read(None).unwrap();
            assert_eq!(rest.len(), data.len() - 7 - 3 - 5);
            assert!(rest.ends_with(b"line 199999\n"));
            assert!(r.read(None).unwrap().is_empty());
            assert!(r.read_line(None).unwrap().is_empty());
        }
    }
}
