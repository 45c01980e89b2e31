//! Byte-range sources: where the header readers get their bytes.
//!
//! Every reader in this crate (the GGUF header, the safetensors header, the safetensors index,
//! config.json and the other small JSON files) reads through [`ByteSource`]: a length and
//! "these bytes at this offset". A local file is one implementation ([`LocalFile`]), bytes in
//! memory another ([`MemorySource`]); an HTTP object read with Range requests (the Hugging Face
//! Hub, the ollama registry) is meant to be the next, so that each format has one reader whatever
//! the bytes come from.
//!
//! Readers that do not know in advance how far a header reaches (GGUF) pull it through
//! [`SourceReader`], which asks for ranges of growing size — [`ByteSource::first_range`] bytes
//! first, then twice as many each time up to [`ByteSource::max_range`] — so a remote source pays
//! few round trips for a large header and a small header costs one small range.
//!
//! Only regular files are opened: a FIFO, device or socket named like a model would block a read
//! forever or return bytes without end, so [`LocalFile::open`] looks at the file type before it
//! opens anything, opens without blocking, and checks the type again on the opened file.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{show_path, FormatError};

/// Bytes at offsets, from a file, a buffer, or (later) an HTTP object.
pub trait ByteSource {
    /// How the source is named at the start of every error line (a path, a URL).
    fn name(&self) -> &str;

    /// The source's length in bytes.
    fn len(&self) -> Result<u64, FormatError>;

    fn is_empty(&self) -> Result<bool, FormatError> {
        Ok(self.len()? == 0)
    }

    /// Reads up to `buf.len()` bytes at `offset` into `buf`; returns how many were read, 0 only
    /// at or past the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError>;

    /// Bytes fetched from the source so far (what `inspect` reports as read).
    fn bytes_read(&self) -> u64;

    /// The first range a [`SourceReader`] asks for.
    fn first_range(&self) -> usize {
        64 * 1024
    }

    /// The largest range a [`SourceReader`] asks for at once (ranges double up to it).
    fn max_range(&self) -> usize {
        64 * 1024
    }
}

/// A borrowed source is a source (so one source can be handed to a reader by reference).
impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn len(&self) -> Result<u64, FormatError> {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError> {
        (**self).read_at(offset, buf)
    }
    fn bytes_read(&self) -> u64 {
        (**self).bytes_read()
    }
    fn first_range(&self) -> usize {
        (**self).first_range()
    }
    fn max_range(&self) -> usize {
        (**self).max_range()
    }
}

/// Fills `buf` from `offset`, or says which bytes were missing.
pub fn read_exact_at(
    src: &dyn ByteSource,
    offset: u64,
    buf: &mut [u8],
    what: &str,
) -> Result<(), FormatError> {
    let mut done = 0usize;
    while done < buf.len() {
        let at = offset.saturating_add(done as u64);
        let n = src.read_at(at, &mut buf[done..])?;
        if n == 0 {
            return Err(FormatError::Truncated {
                file: src.name().to_string(),
                what: what.to_string(),
                needed: buf.len() as u64,
                offset,
                file_len: src.len().unwrap_or(at),
            });
        }
        done += n;
    }
    Ok(())
}

/// A whole small source (config.json, an index, a manifest, a `refs/main`), refused above `cap`
/// bytes before anything is read; the read itself is bounded by `cap` too, so a source whose
/// length lies (a file that grows) cannot make it larger.
pub fn read_capped(src: &dyn ByteSource, cap: u64, what: &str) -> Result<Vec<u8>, FormatError> {
    let len = src.len()?;
    if len > cap {
        return Err(FormatError::OverLimit {
            file: src.name().to_string(),
            what: format!("{what} size (bytes)"),
            value: len,
            cap,
        });
    }
    // len <= cap: safe to allocate.
    let mut buf = vec![0u8; len as usize];
    read_exact_at(src, 0, &mut buf, what)?;
    Ok(buf)
}

/// A regular file on the local disk, read with positioned reads (no shared cursor).
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    len: u64,
    name: String,
    read: AtomicU64,
}

/// What a non-regular file is, for the one-line refusal.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        return "a directory";
    }
    "not a regular file"
}

fn not_regular(name: &str, ft: &std::fs::FileType) -> FormatError {
    let kind = kind_of(ft);
    let kind = kind.strip_prefix("not ").map_or_else(
        || format!("is {kind}, not a regular file"),
        |k| format!("is not {k}"),
    );
    FormatError::NotRegularFile {
        file: name.to_string(),
        kind,
    }
}

impl LocalFile {
    /// Opens `path` if it is a regular file (symlinks followed). A FIFO, device, socket or
    /// directory is refused before it is opened; the file is opened non-blocking (so a FIFO
    /// swapped in after the check cannot block the open) and its type checked again.
    pub fn open(path: &Path) -> Result<LocalFile, FormatError> {
        let name = show_path(path);
        let meta = std::fs::metadata(path).map_err(|e| FormatError::io(&name, e))?;
        if !meta.is_file() {
            return Err(not_regular(&name, &meta.file_type()));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NONBLOCK changes nothing for a regular file's reads; it only keeps open() of a
            // FIFO from waiting for a writer.
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = options.open(path).map_err(|e| FormatError::io(&name, e))?;
        let meta = file.metadata().map_err(|e| FormatError::io(&name, e))?;
        if !meta.is_file() {
            return Err(not_regular(&name, &meta.file_type()));
        }
        Ok(LocalFile {
            file,
            len: meta.len(),
            name,
            read: AtomicU64::new(0),
        })
    }
}

impl ByteSource for LocalFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> Result<u64, FormatError> {
        Ok(self.len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError> {
        // Nothing past the length measured at open: a file that grows does not grow the read.
        let room = self.len.saturating_sub(offset);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let buf = &mut buf[..want];
        loop {
            #[cfg(unix)]
            let r = std::os::unix::fs::FileExt::read_at(&self.file, buf, offset);
            #[cfg(windows)]
            let r = std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset);
            match r {
                Ok(n) => {
                    self.read.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FormatError::io(&self.name, e)),
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

/// Bytes already in memory (a pasted config.json, a test's hand-built file).
#[derive(Debug)]
pub struct MemorySource<'a> {
    bytes: &'a [u8],
    name: String,
    read: AtomicU64,
}

impl<'a> MemorySource<'a> {
    pub fn new(name: &str, bytes: &'a [u8]) -> MemorySource<'a> {
        MemorySource {
            bytes,
            name: name.to_string(),
            read: AtomicU64::new(0),
        }
    }
}

impl ByteSource for MemorySource<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> Result<u64, FormatError> {
        Ok(self.bytes.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

/// Sequential reading of a source from an offset, in ranges of growing size (see the module
/// documentation): `Read` and `BufRead` for parsers that walk a header front to back.
pub struct SourceReader<'a> {
    src: &'a dyn ByteSource,
    /// Offset of the next range to fetch.
    next: u64,
    /// Where reading stops (the source's length, or less).
    end: u64,
    buf: Vec<u8>,
    pos: usize,
    range: usize,
    /// The last source error, kept so the parser's io::Error can be turned back into it.
    error: Option<FormatError>,
}

impl<'a> SourceReader<'a> {
    /// Reads `src` from `offset` to `end` (clamped to the source's length).
    pub fn new(src: &'a dyn ByteSource, offset: u64, end: u64) -> Result<Self, FormatError> {
        let end = end.min(src.len()?);
        Ok(SourceReader {
            src,
            next: offset.min(end),
            end,
            buf: Vec::new(),
            pos: 0,
            range: src.first_range().max(1),
            error: None,
        })
    }

    /// The bytes of the current range not consumed yet (empty before the first `fill_buf`).
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    /// The source error behind an `io::Error` this reader returned, if it was one.
    pub fn take_error(&mut self) -> Option<FormatError> {
        self.error.take()
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for SourceReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() && self.next < self.end {
            let want = (self.range as u64).min(self.end - self.next) as usize;
            self.buf.resize(want, 0);
            match read_exact_at(self.src, self.next, &mut self.buf, "the header") {
                Ok(()) => {}
                Err(e) => {
                    self.buf.clear();
                    self.pos = 0;
                    let kind = match e {
                        FormatError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
                        _ => io::ErrorKind::Other,
                    };
                    let message = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::new(kind, message));
                }
            }
            self.next += want as u64;
            self.pos = 0;
            self.range = self
                .range
                .saturating_mul(2)
                .min(self.src.max_range().max(1));
        }
        Ok(&self.buf[self.pos.min(self.buf.len())..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that counts its calls and grows its ranges from 4 bytes to 16.
    struct Growing<'a>(MemorySource<'a>, std::cell::RefCell<Vec<usize>>);

    impl ByteSource for Growing<'_> {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn len(&self) -> Result<u64, FormatError> {
            self.0.len()
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError> {
            self.1.borrow_mut().push(buf.len());
            self.0.read_at(offset, buf)
        }
        fn bytes_read(&self) -> u64 {
            self.0.bytes_read()
        }
        fn first_range(&self) -> usize {
            4
        }
        fn max_range(&self) -> usize {
            16
        }
    }

    #[test]
    fn ranges_double_up_to_the_maximum() {
        let data: Vec<u8> = (0..60).collect();
        let src = Growing(MemorySource::new("m", &data), Default::default());
        let mut r = SourceReader::new(&src, 2, 100).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data[2..]);
        // 58 bytes: 4 + 8 + 16 + 16 + 14 (the rest).
        assert_eq!(*src.1.borrow(), [4, 8, 16, 16, 14]);
        assert_eq!(src.bytes_read(), 58);
    }

    #[test]
    fn capped_reads_refuse_before_reading() {
        let data = [7u8; 100];
        let src = MemorySource::new("m", &data);
        let e = read_capped(&src, 99, "config").unwrap_err().to_string();
        assert_eq!(e, "m: config size (bytes) is 100, above the limit of 99");
        assert_eq!(src.bytes_read(), 0);
        assert_eq!(read_capped(&src, 100, "config").unwrap(), data);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("model.gguf");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let e = LocalFile::open(&fifo).unwrap_err().to_string();
        assert!(
            e.ends_with("model.gguf: is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        let e = LocalFile::open(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/dev/zero: is a character device, not a regular file");
    }
}
