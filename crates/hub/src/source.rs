//! An HTTP object as a [`ByteSource`]: the same GGUF and safetensors readers that read a local
//! file read a file on the Hub or a blob in the ollama registry, by Range requests.
//!
//! The object keeps the prefix it has fetched (the readers read headers front to back) and
//! grows it on demand: the first read fetches at least [`READ_AHEAD`] bytes, so a safetensors
//! header (8 bytes of length, then the JSON) usually costs one request; later reads fetch what
//! they ask for. The GGUF reader asks for [`FIRST_RANGE`] bytes first and doubles up to
//! [`MAX_RANGE`] (`SourceReader`), so a 9 MB header is three requests (2 + 4 + 8 MiB) and a
//! small one a single request. After the first request,
//! the rest go straight to where the Hub redirected it (its CDN), saving the redirect's round
//! trip. The prefix comes from the disk cache when it holds it, and goes back there
//! ([`HttpObject::persist`]).
//!
//! A network failure inside a read is kept ([`HttpObject::take_error`]) so that the caller can
//! report it as it is (a 401 on a gated shard, a timeout) rather than as the reader's I/O error.

use std::path::PathBuf;
use std::sync::Mutex;

use url::Url;
use vramplan_formats::{ByteSource, FormatError};

use crate::cache::{Cache, CachedPrefix};
use crate::client::{show, Client, GetError, Want};
use crate::error::{HubError, Kind};

/// Bytes fetched at least by the first read of an object (a safetensors shard's header fits).
pub const READ_AHEAD: u64 = 64 * 1024;
/// The GGUF reader's first range: headers with vocabularies up to ~100k tokens fit; the
/// 128k–256k-token ones (5–20 MB) take two or three more.
pub const FIRST_RANGE: usize = 2 * 1024 * 1024;
/// The GGUF reader's largest range.
pub const MAX_RANGE: usize = 16 * 1024 * 1024;
/// The GGUF reader's range while the object comes from the cache file.
pub const CACHED_RANGE: usize = 256 * 1024;

#[derive(Default)]
struct State {
    total: Option<u64>,
    /// The prefix in the cache file, read on demand; moved into `prefix` when the object must
    /// be read further over the network.
    cached: Option<CachedPrefix>,
    prefix: Vec<u8>,
    /// Where the object was found after redirects.
    direct: Option<Url>,
    /// The prefix grew since it was loaded from the cache.
    dirty: bool,
    /// The end of the furthest byte a reader was given: what the headers took (the rest of
    /// the prefix is read-ahead, and is not kept in the cache).
    consumed: u64,
    error: Option<GetError>,
}

/// One object (a file of a repository, a blob) read by ranges through a [`Client`].
pub struct HttpObject<'c> {
    client: &'c Client,
    url: Url,
    name: String,
    /// The length the listing gave (the Hub's `size`, a manifest layer's `size`), checked
    /// against the server's.
    listed_len: Option<u64>,
    cache: Option<(Cache, PathBuf)>,
    state: Mutex<State>,
}

impl<'c> HttpObject<'c> {
    /// `name` starts every error line about this object (`org/name/file`).
    pub fn new(client: &'c Client, url: Url, name: String, listed_len: Option<u64>) -> Self {
        HttpObject {
            client,
            url,
            name,
            listed_len,
            cache: None,
            // The listed length stands until the server says otherwise (which is an error):
            // the reader's first question costs no request.
            state: Mutex::new(State {
                total: listed_len,
                ..State::default()
            }),
        }
    }

    /// Backs the object with a cache file: what it holds is used (unless `refresh`), and what
    /// is fetched goes there on [`HttpObject::persist`].
    pub fn with_cache(mut self, cache: Cache, path: PathBuf, refresh: bool) -> Self {
        if !refresh {
            if let Some(c) = cache.open_prefix(&path, self.client.limits().max_object_bytes) {
                if self.listed_len.is_none_or(|l| l == c.total) {
                    let mut st = self.lock();
                    st.total = Some(c.total);
                    st.cached = Some(c);
                }
            }
        }
        self.cache = Some((cache, path));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A reader thread that panicked leaves the prefix as it was: still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the object's bytes come from the cache file (nothing read over the network
    /// yet).
    pub fn is_cached(&self) -> bool {
        self.lock().cached.is_some()
    }

    /// The network error behind the last failed read, if there was one.
    pub fn take_error(&self) -> Option<GetError> {
        self.lock().error.take()
    }

    /// The whole object (a config.json, an index), fetched in one GET and refused above `cap`.
    pub fn whole(&self, cap: u64) -> Result<Vec<u8>, GetError> {
        {
            let mut st = self.lock();
            Self::uncache(&mut st);
            if st.total.is_some_and(|t| st.prefix.len() as u64 == t) {
                st.consumed = st.prefix.len() as u64;
                return Ok(st.prefix.clone());
            }
        }
        let reply = self.client.get(&self.url, Want::All { cap }, None)?;
        let mut st = self.lock();
        st.total = Some(reply.body.len() as u64);
        st.consumed = reply.body.len() as u64;
        st.prefix = reply.body.clone();
        st.dirty = true;
        Ok(reply.body)
    }

    /// Fetches the first bytes (what the first read would), so that many objects can be
    /// started at once.
    pub fn prefetch(&self) -> Result<(), GetError> {
        let mut st = self.lock();
        if st.cached.is_some() || !st.prefix.is_empty() || st.total == Some(0) {
            return Ok(());
        }
        self.fetch_into(&mut st, 0, READ_AHEAD)
    }

    /// Moves a cached prefix into memory, before the object is read further or whole. A cache
    /// file that cannot be read is dropped: the network has the bytes.
    fn uncache(st: &mut State) {
        if let Some(c) = st.cached.take() {
            match c.read_all() {
                Some(bytes) => st.prefix = bytes,
                None => st.total = None,
            }
        }
    }

    /// Writes what was fetched to the cache; a failure is returned for a note, never fatal.
    pub fn persist(&self) -> Result<(), String> {
        let Some((cache, path)) = &self.cache else {
            return Ok(());
        };
        let st = self.lock();
        let keep = (st.consumed as usize).min(st.prefix.len());
        match (st.dirty, st.total) {
            (true, Some(total)) => cache.write_prefix(path, total, &st.prefix[..keep]),
            _ => Ok(()),
        }
    }

    /// Fetches bytes `from..from+len` of the object and appends them to the prefix (`from`
    /// is the prefix's end).
    fn fetch_into(&self, st: &mut State, from: u64, len: u64) -> Result<(), GetError> {
        let len = match st.total {
            Some(t) => len.min(t.saturating_sub(from)),
            None => len,
        };
        if len == 0 {
            return Ok(());
        }
        let want = Want::Range { start: from, len };
        let reply = match &st.direct {
            Some(direct) => match self.client.get(direct, want, None) {
                Ok(r) => Ok(r),
                // A CDN's signed URL expires: start again from the object's own URL.
                Err(GetError::Status(_)) => self.client.get(&self.url, want, None),
                Err(e) => Err(e),
            },
            None => self.client.get(&self.url, want, None),
        }?;
        if let Some(total) = reply.total {
            if let Some(listed) = self.listed_len.filter(|&l| l != total) {
                return Err(self.changed(format!(
                    "listed as {listed} bytes but served as {total} bytes"
                )));
            }
            if let Some(known) = st.total.filter(|&k| k != total) {
                return Err(
                    self.changed(format!("was {known} bytes long and is now {total} bytes"))
                );
            }
            st.total = Some(total);
        } else if st.total.is_none() {
            st.total = self.listed_len;
        }
        if st.total.is_none() {
            return Err(HubError::new(
                Kind::Server,
                format!(
                    "{}: the server did not say how long the file is (no Content-Range)",
                    self.name
                ),
            )
            .into());
        }
        if reply.url != self.url {
            st.direct = Some(reply.url);
        }
        if st.prefix.is_empty() {
            st.prefix = reply.body;
        } else {
            st.prefix.extend_from_slice(&reply.body);
        }
        st.dirty = true;
        Ok(())
    }

    fn changed(&self, what: String) -> GetError {
        HubError::new(
            Kind::Server,
            format!(
                "{}: the file {what} (it changed while being read?)",
                self.name
            ),
        )
        .into()
    }

    /// A network error as the reader sees it (the real one is kept for the caller).
    fn reader_error(&self, st: &mut State, e: GetError) -> FormatError {
        let message = match &e {
            GetError::Status(s) => format!("HTTP {} from {}", s.status, show(&s.url)),
            GetError::Other(h) => h.message.clone(),
        };
        st.error = Some(e);
        FormatError::Io {
            file: self.name.clone(),
            source: std::io::Error::other(message),
        }
    }
}

impl ByteSource for HttpObject<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> Result<u64, FormatError> {
        let mut st = self.lock();
        if let Some(t) = st.total {
            return Ok(t);
        }
        if let Err(e) = self.fetch_into(&mut st, 0, READ_AHEAD) {
            return Err(self.reader_error(&mut st, e));
        }
        Ok(st.total.unwrap_or(0))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FormatError> {
        let mut st = self.lock();
        // From the cache file while it holds the bytes asked for.
        if let Some(c) = &st.cached {
            let end = offset.saturating_add(buf.len() as u64).min(c.total);
            if end <= c.held {
                if let Some(n) = c.read_at(offset, buf) {
                    st.consumed = st.consumed.max(offset + n as u64);
                    return Ok(n);
                }
            }
            Self::uncache(&mut st);
        }
        let have = st.prefix.len() as u64;
        let end = offset.saturating_add(buf.len() as u64);
        let end = st.total.map_or(end, |t| end.min(t));
        if end > have {
            if offset > have {
                // Readers here read front to back; a gap would be a reader we do not have.
                return Err(FormatError::Malformed {
                    file: self.name.clone(),
                    message: format!(
                        "read at offset {offset} beyond the {have} bytes read so far (remote files are read front to back)"
                    ),
                });
            }
            let len = (end - have).max(if have == 0 { READ_AHEAD } else { 0 });
            if let Err(e) = self.fetch_into(&mut st, have, len) {
                return Err(self.reader_error(&mut st, e));
            }
        }
        let have = st.prefix.len() as u64;
        if offset >= have {
            return Ok(0);
        }
        let start = offset as usize;
        let n = buf.len().min(st.prefix.len() - start);
        buf[..n].copy_from_slice(&st.prefix[start..start + n]);
        st.consumed = st.consumed.max(offset + n as u64);
        Ok(n)
    }

    /// The bytes the readers took (the headers), whether fetched now or from the cache.
    fn bytes_read(&self) -> u64 {
        self.lock().consumed
    }

    // Large ranges save round trips over the network; from the cache file they only cost
    // buffer growth (zeroed, then copied: a third of the instructions left in an `--offline`
    // estimate of a cached 70B GGUF), so a cached object is read in ranges of a local file.
    fn first_range(&self) -> usize {
        if self.lock().cached.is_some() {
            CACHED_RANGE
        } else {
            FIRST_RANGE
        }
    }

    fn max_range(&self) -> usize {
        if self.lock().cached.is_some() {
            CACHED_RANGE
        } else {
            MAX_RANGE
        }
    }
}
