//! A reader wrapper that counts the bytes actually pulled from the file. It sits *under* the
//! `BufReader`, so read-ahead is counted too: the figure is what the disk was asked for. Tests
//! use it to prove that inspecting a multi-GB file reads only its header.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{show_path, FormatError};

/// Counts bytes returned by `read` calls on the inner reader.
#[derive(Debug)]
pub struct CountingReader<R> {
    inner: R,
    bytes_read: u64,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R) -> Self {
        CountingReader {
            inner,
            bytes_read: 0,
        }
    }

    /// Bytes read from the inner reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes_read = self.bytes_read.saturating_add(n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Buffer size for header reads: large enough that a 128k-token vocabulary takes a few hundred
/// syscalls, small enough that a tiny header does not pull megabytes of weights with it.
pub(crate) const HEADER_BUF_BYTES: usize = 64 * 1024;

/// An opened model file: buffered, counted, with its length known from the file system.
pub(crate) struct OpenedFile {
    pub reader: BufReader<CountingReader<File>>,
    pub len: u64,
    pub name: String,
}

impl OpenedFile {
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let name = show_path(path);
        let file = File::open(path).map_err(|e| FormatError::io(&name, e))?;
        let meta = file.metadata().map_err(|e| FormatError::io(&name, e))?;
        if meta.is_dir() {
            return Err(FormatError::malformed(&name, "is a directory, not a file"));
        }
        Ok(OpenedFile {
            reader: BufReader::with_capacity(HEADER_BUF_BYTES, CountingReader::new(file)),
            len: meta.len(),
            name,
        })
    }

    pub fn bytes_read(&self) -> u64 {
        self.reader.get_ref().bytes_read()
    }
}
