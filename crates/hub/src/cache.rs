//! What was fetched, kept on disk so that the second run of a model needs one request (the
//! revision check) or none (`--offline`).
//!
//! Layout under the cache directory (`$VRAMPLAN_CACHE_DIR`, else the user's cache directory —
//! `$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS — then `vramplan/`):
//!
//! ```text
//! hub/HOST[_PORT]/models--ORG--NAME/refs/REVISION        the commit REVISION was at (text)
//! hub/HOST[_PORT]/models--ORG--NAME/COMMIT/info.json     the API's answer for that commit
//! hub/HOST[_PORT]/models--ORG--NAME/COMMIT/FILE.bytes    the bytes read of FILE (see below)
//! ollama/HOST[_PORT]/NAMESPACE/MODEL/TAG.json            the manifest a tag was at
//! ollama/HOST[_PORT]/blobs/HEX.bytes                     the bytes read of a blob
//! ```
//!
//! A commit and a blob digest name immutable content, so their bytes never go stale; only refs
//! and manifests move, and they are what the revision check refreshes. A `.bytes` file is a
//! magic line, the object's length (u64, little-endian) and a prefix of the object: the headers
//! a reader asked for, plus the read-ahead. Names are escaped to one path component each
//! (`%XX` for anything outside `[A-Za-z0-9._-]`), so nothing from a server or a repository can
//! leave the cache directory. Files are written to a temporary name and renamed, so a reader
//! never sees half a file; they are read as regular files with a size cap
//! (`vramplan_formats::source::read_capped`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use url::Url;
use vramplan_formats::source::{read_capped, read_exact_at, LocalFile};
use vramplan_formats::ByteSource;

/// The first bytes of a `.bytes` file.
const MAGIC: &[u8] = b"vramplan cached object 1\n";
/// Longest escaped name kept whole; longer ones are shortened and given a hash.
const MAX_NAME: usize = 180;

/// The cache directory of this user, if any.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("VRAMPLAN_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("vramplan")))
}

/// A name as one safe path component.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('.') {
        // "." and ".." (and hidden names) are never a component as they stand.
        out.replace_range(0..1, "%2E");
    }
    if out.len() > MAX_NAME {
        // FNV-1a: a stable, dependency-free hash; collisions only cost a cache miss.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        out.truncate(MAX_NAME - 17);
        out.push_str(&format!("~{h:016x}"));
    }
    out
}

/// `https://huggingface.co` → `huggingface.co`; a port is kept as `_PORT`.
pub fn host_dir(url: &Url) -> String {
    let host = url.host_str().unwrap_or("unknown");
    match url.port() {
        Some(p) => escape(&format!("{host}_{p}")),
        None => escape(host),
    }
}

/// A cached prefix of an object, in its open cache file.
#[derive(Debug)]
pub struct CachedPrefix {
    file: LocalFile,
    /// Where the prefix starts in the file.
    data_at: u64,
    /// Bytes of the object held.
    pub held: u64,
    /// The object's length.
    pub total: u64,
}

impl CachedPrefix {
    /// Bytes `offset..` of the object into `buf`, as far as the prefix holds them.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        let n = (buf.len() as u64).min(self.held.saturating_sub(offset)) as usize;
        read_exact_at(
            &self.file,
            self.data_at + offset,
            &mut buf[..n],
            "cache file",
        )
        .ok()?;
        Some(n)
    }

    /// The whole prefix (`held` ≤ the cap it was opened with: safe to allocate).
    pub fn read_all(&self) -> Option<Vec<u8>> {
        let mut bytes = vec![0u8; self.held as usize];
        self.read_at(0, &mut bytes)?;
        Some(bytes)
    }
}

/// The cache, rooted at a directory that may not exist yet.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cache {
    pub fn new(root: PathBuf) -> Cache {
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one Hub repository at one endpoint.
    pub fn hub_repo(&self, endpoint: &Url, repo: &str) -> PathBuf {
        self.root
            .join("hub")
            .join(host_dir(endpoint))
            .join(escape(&format!("models--{}", repo.replace('/', "--"))))
    }

    /// The folder of one ollama registry.
    pub fn registry(&self, registry: &Url) -> PathBuf {
        self.root.join("ollama").join(host_dir(registry))
    }

    /// A small text or JSON file, if present, regular and at most `cap` bytes.
    pub fn read(&self, path: &Path, cap: u64) -> Option<Vec<u8>> {
        let src = LocalFile::open(path).ok()?;
        read_capped(&src, cap, "cache file").ok()
    }

    /// Writes `bytes` to `path` atomically (a temporary name, then a rename).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        self.write_parts(path, &[bytes])
    }

    /// Writes the concatenation of `parts` to `path` atomically.
    fn write_parts(&self, path: &Path, parts: &[&[u8]]) -> Result<(), String> {
        let dir = path.parent().ok_or("no parent directory")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // No fsync: after a crash a cache file may be short, which reads as a shorter prefix
        // (the length is checked) or a JSON that does not parse — a miss, never a wrong answer —
        // and a sync of a 15 MB header would cost more than its download on a busy disk.
        let result = (|| {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for p in parts {
                f.write_all(p)?;
            }
            f.into_inner().map_err(|e| e.into_error())?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{}: {e}", path.display()));
        }
        Ok(())
    }

    /// A cached object prefix, opened: the object's length and where the prefix's bytes are in
    /// the file (read on demand: a 15 MB GGUF header need not be copied whole to be parsed).
    /// A file that is not one of ours, or says more bytes than it holds or than the object has,
    /// is ignored.
    pub fn open_prefix(&self, path: &Path, cap: u64) -> Option<CachedPrefix> {
        let file = LocalFile::open(path).ok()?;
        let data_at = MAGIC.len() as u64 + 8;
        let len = file.len().ok()?;
        if len < data_at || len - data_at > cap {
            return None;
        }
        let mut head = vec![0u8; data_at as usize];
        read_exact_at(&file, 0, &mut head, "cache file").ok()?;
        let total = u64::from_le_bytes(head.strip_prefix(MAGIC)?.try_into().ok()?);
        let held = len - data_at;
        (held <= total).then_some(CachedPrefix {
            file,
            data_at,
            held,
            total,
        })
    }

    /// A cached object prefix, read whole: (object length, its first bytes).
    pub fn read_prefix(&self, path: &Path, cap: u64) -> Option<(u64, Vec<u8>)> {
        let c = self.open_prefix(path, cap)?;
        let bytes = c.read_all()?;
        Some((c.total, bytes))
    }

    /// Writes an object prefix (see [`Cache::open_prefix`]).
    pub fn write_prefix(&self, path: &Path, total: u64, prefix: &[u8]) -> Result<(), String> {
        self.write_parts(path, &[MAGIC, &total.to_le_bytes(), prefix])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_component() {
        assert_eq!(
            escape("model-00001-of-00002.safetensors"),
            "model-00001-of-00002.safetensors"
        );
        assert_eq!(escape("Q4_K_M/x.gguf"), "Q4_K_M%2Fx.gguf");
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(escape("refs/pr/1"), "refs%2Fpr%2F1");
        let long = "a/".repeat(200);
        let e = escape(&long);
        assert!(e.len() <= MAX_NAME && !e.contains('/'), "{e}");
        assert_ne!(e, escape(&"a/".repeat(201)));
        let u = Url::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(host_dir(&u), "127.0.0.1_8080");
    }

    #[test]
    fn prefixes_round_trip_and_lies_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path().to_path_buf());
        let p = dir.path().join("a/b.bytes");
        c.write_prefix(&p, 100, b"hello").unwrap();
        assert_eq!(c.read_prefix(&p, 1000), Some((100, b"hello".to_vec())));
        c.write_prefix(&p, 3, b"hello").unwrap();
        assert_eq!(c.read_prefix(&p, 1000), None);
        std::fs::write(&p, b"not ours").unwrap();
        assert_eq!(c.read_prefix(&p, 1000), None);
    }
}
