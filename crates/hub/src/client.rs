//! One HTTP GET, by our rules, over ureq (rustls; blocking: the header readers are synchronous
//! and shards are read on threads).
//!
//! - **Bounded in bytes.** A range request keeps exactly the bytes it asked for, whatever the
//!   server sends: a server that ignores `Range` and streams the whole 40 GB file is read only up
//!   to the end of the wanted range (refused when that lies beyond [`Limits::max_object_bytes`]),
//!   then the connection is dropped. A whole-object GET (the API's JSON, config.json) is refused
//!   past its cap. Every command has a byte budget ([`Limits::max_total_bytes`]) reserved before
//!   each request, so parallel requests cannot together pass it.
//! - **Bounded in time.** Each exchange (connect, headers, body) has a timeout, cut to what is
//!   left of the command's deadline; a slow drip ends there.
//! - **Retried.** 429 and 5xx, timeouts and bodies that end early are retried with back-off
//!   (0.25 s, 0.5 s, 1 s), or after the server's `Retry-After` (seconds or an HTTP date,
//!   RFC 9110 §10.2.3) when it fits in the deadline; a connection refused or a host that does
//!   not resolve is answered at once (the network is down: waiting will not help).
//! - **Redirects** (301, 302, 303, 307, 308: the Hub sends file reads to a CDN, the ollama
//!   registry sends blobs to one) are followed by hand, at most [`Limits::max_redirects`], and
//!   the token goes only to the origin it is for: never to another host, port or scheme.
//! - **Counted.** Every exchange and every body byte (for the tests and `inspect`).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use url::Url;

use crate::error::{clip, HubError, Kind};

/// One exchange (connect, send, headers and body); cut to what the command has left.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// All the network time one command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// Bytes kept from one object. A safetensors header is at most 100 MB (the format's own cap,
/// safetensors `tensor.rs` MAX_HEADER_SIZE) plus 8; the largest GGUF headers (tokenizers of 256k
/// tokens and their merges) are tens of MB.
pub const MAX_OBJECT_BYTES: u64 = 128 * 1024 * 1024;
/// Bytes one command may fetch in all: every header of a 1,000-shard checkpoint at 64 KiB plus
/// a large GGUF header fit many times over.
pub const MAX_TOTAL_BYTES: u64 = 512 * 1024 * 1024;
/// Attempts per request (429, 5xx, timeouts, truncated bodies).
pub const MAX_ATTEMPTS: u32 = 4;
/// Redirects followed per request (the Hub: one, to its CDN).
pub const MAX_REDIRECTS: u32 = 5;
/// Connections kept open per host: the parallel shard reads reuse them.
const IDLE_PER_HOST: usize = vramplan_formats::parallel::MAX_IN_FLIGHT;
/// Reads go through a buffer of this size.
const CHUNK: usize = 64 * 1024;

/// The bounds of one command's network use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub request_timeout: Duration,
    pub deadline: Instant,
    /// The deadline's length, for messages.
    pub command_seconds: f64,
    pub max_object_bytes: u64,
    pub max_total_bytes: u64,
    pub max_attempts: u32,
    pub max_redirects: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::with_deadline(COMMAND_DEADLINE)
    }
}

impl Limits {
    /// The defaults, with a command deadline of `deadline` from now.
    pub fn with_deadline(deadline: Duration) -> Limits {
        Limits {
            request_timeout: REQUEST_TIMEOUT.min(deadline),
            deadline: Instant::now() + deadline,
            command_seconds: deadline.as_secs_f64(),
            max_object_bytes: MAX_OBJECT_BYTES,
            max_total_bytes: MAX_TOTAL_BYTES,
            max_attempts: MAX_ATTEMPTS,
            max_redirects: MAX_REDIRECTS,
        }
    }
}

/// What a GET wants of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The whole object, refused above `cap` bytes.
    All { cap: u64 },
    /// `len` bytes from `start` (fewer only at the end of the object).
    Range { start: u64, len: u64 },
}

/// A successful GET.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Vec<u8>,
    /// The object's whole length: from `Content-Range`, or a full answer's `Content-Length`.
    pub total: Option<u64>,
    /// Where the bytes came from, after redirects (a range of the same object can go there
    /// directly).
    pub url: Url,
    /// The Hub's `X-Repo-Commit` header: the commit a revision resolved to.
    pub repo_commit: Option<String>,
}

/// A GET that got an answer it cannot use: the status and the Hub's error headers
/// (`X-Error-Code`: RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound; `X-Error-Message`
/// — huggingface_hub `utils/_http.py` hf_raise_for_status), for the caller to explain.
#[derive(Debug, Clone)]
pub struct StatusError {
    pub status: u16,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub url: Url,
}

#[derive(Debug, Clone)]
pub enum GetError {
    Status(Box<StatusError>),
    Other(HubError),
}

impl From<HubError> for GetError {
    fn from(e: HubError) -> GetError {
        GetError::Other(e)
    }
}

/// What one attempt ended with, when it did not end with bytes.
enum Failed {
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Stop(GetError),
}

/// The HTTP client of one command: the connection pool, the limits, the token and its origin,
/// the counters.
pub struct Client {
    agent: ureq::Agent,
    limits: Limits,
    /// `Authorization: Bearer …`, sent only to this origin.
    auth: Option<(url::Origin, String)>,
    offline: bool,
    requests: AtomicU64,
    bytes: AtomicU64,
    /// Bytes reserved against [`Limits::max_total_bytes`].
    reserved: AtomicU64,
}

impl Client {
    /// `token` is sent only to `token_origin` (the Hub endpoint); with `offline`, every GET is
    /// refused before it is made.
    pub fn new(
        limits: Limits,
        token: Option<(&Url, &str)>,
        offline: bool,
        user_agent: &str,
    ) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Statuses are ours to read, redirects ours to follow.
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections_per_host(IDLE_PER_HOST)
            .max_idle_connections(4 * IDLE_PER_HOST)
            .user_agent(user_agent)
            .timeout_connect(Some(limits.request_timeout.min(Duration::from_secs(10))))
            .build()
            .into();
        Client {
            agent,
            auth: token.map(|(url, t)| (url.origin(), format!("Bearer {t}"))),
            limits,
            offline,
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn offline(&self) -> bool {
        self.offline
    }

    /// HTTP exchanges made so far (each redirect hop counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Body bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether a token would be sent to `url`.
    pub fn sends_token_to(&self, url: &Url) -> bool {
        self.auth.as_ref().is_some_and(|(o, _)| *o == url.origin())
    }

    /// One GET of `url`, with retries and redirects (see the module).
    pub fn get(&self, url: &Url, want: Want, accept: Option<&str>) -> Result<Reply, GetError> {
        if self.offline {
            return Err(HubError::new(
                Kind::NotCached,
                format!(
                    "{} is not in the cache and --offline (or HF_HUB_OFFLINE=1) forbids the network",
                    show(url)
                ),
            )
            .into());
        }
        let need = match want {
            Want::All { cap } => cap.min(self.limits.max_object_bytes),
            Want::Range { start, len } => {
                if len > self.limits.max_object_bytes {
                    return Err(HubError::new(
                        Kind::Server,
                        format!(
                            "{}: a read of {len} bytes is above the limit of {} per object",
                            show(url),
                            self.limits.max_object_bytes
                        ),
                    )
                    .into());
                }
                // A server that ignores Range sends the object from its start.
                start.saturating_add(len).min(self.limits.max_object_bytes)
            }
        };
        self.reserve(need, url)?;
        let result = self.get_reserved(url, want, accept);
        let used = result.as_ref().map(|r| r.body.len() as u64).unwrap_or(0);
        self.reserved
            .fetch_sub(need - used.min(need), Ordering::AcqRel);
        result
    }

    fn reserve(&self, n: u64, url: &Url) -> Result<(), GetError> {
        let max = self.limits.max_total_bytes;
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                r.checked_add(n).filter(|&t| t <= max)
            })
            .map(|_| ())
            .map_err(|_| {
                HubError::new(
                    Kind::Server,
                    format!(
                        "{}: this command has fetched its limit of {max} bytes; no header of a real model needs that much",
                        show(url)
                    ),
                )
                .into()
            })
    }

    fn get_reserved(&self, url: &Url, want: Want, accept: Option<&str>) -> Result<Reply, GetError> {
        let mut last_why = String::new();
        for attempt in 1..=self.limits.max_attempts.max(1) {
            match self.attempt(url, want, accept) {
                Ok(reply) => return Ok(reply),
                Err(Failed::Stop(e)) => return Err(e),
                Err(Failed::Retry { after, why }) => {
                    last_why = why;
                    if attempt == self.limits.max_attempts {
                        break;
                    }
                    let backoff = Duration::from_millis(250 << (attempt - 1).min(6));
                    let wait = after.unwrap_or(backoff);
                    let left = self.left();
                    if wait >= left {
                        let asked = after
                            .map(|a| format!(" (the server asks to wait {} s)", a.as_secs()))
                            .unwrap_or_default();
                        return Err(HubError::new(
                            Kind::Server,
                            format!(
                                "{last_why}; no time left to retry within the command's {} s deadline{asked}",
                                self.limits.command_seconds
                            ),
                        )
                        .into());
                    }
                    std::thread::sleep(wait);
                }
            }
        }
        Err(HubError::new(
            Kind::Server,
            format!(
                "{last_why} ({} attempts); try again later",
                self.limits.max_attempts
            ),
        )
        .into())
    }

    fn left(&self) -> Duration {
        self.limits
            .deadline
            .saturating_duration_since(Instant::now())
    }

    fn attempt(&self, start_url: &Url, want: Want, accept: Option<&str>) -> Result<Reply, Failed> {
        let mut url = start_url.clone();
        for _hop in 0..=self.limits.max_redirects {
            let left = self.left();
            if left.is_zero() {
                return Err(Failed::Stop(
                    HubError::new(
                        Kind::Server,
                        format!(
                            "{}: no answer within the command's deadline of {} s",
                            show(&url),
                            self.limits.command_seconds
                        ),
                    )
                    .into(),
                ));
            }
            let mut req = self
                .agent
                .get(url.as_str())
                .config()
                .timeout_per_call(Some(self.limits.request_timeout.min(left)))
                .build();
            if let Want::Range { start, len } = want {
                let end = start.saturating_add(len.max(1)) - 1;
                req = req
                    .header("Range", format!("bytes={start}-{end}"))
                    // Offsets are into the stored bytes: no content coding.
                    .header("Accept-Encoding", "identity");
            }
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some((origin, value)) = &self.auth {
                if *origin == url.origin() {
                    req = req.header("Authorization", value.as_str());
                }
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let resp = match req.call() {
                Ok(r) => r,
                Err(e) => return Err(self.transport_error(&url, e)),
            };
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            match status {
                301 | 302 | 303 | 307 | 308 => {
                    let Some(location) = header("location") else {
                        return Err(stop(&url, format!("HTTP {status} without a Location")));
                    };
                    let next = url.join(&location).map_err(|_| {
                        stop(
                            &url,
                            format!("HTTP {status} to an invalid Location '{}'", clip(&location)),
                        )
                    })?;
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(stop(
                            &url,
                            format!("redirect to a non-HTTP URL '{}'", clip(next.as_str())),
                        ));
                    }
                    url = next;
                    continue;
                }
                200 | 206 => {
                    let content_range = header("content-range");
                    let content_length = header("content-length").and_then(|v| v.parse().ok());
                    let repo_commit = header("x-repo-commit");
                    let body = resp.into_body();
                    let (bytes, total) = self.read_body(
                        &url,
                        status,
                        want,
                        content_range.as_deref(),
                        content_length,
                        body.into_reader(),
                    )?;
                    return Ok(Reply {
                        body: bytes,
                        total,
                        url,
                        repo_commit,
                    });
                }
                429 | 500..=599 => {
                    let after = header("retry-after").and_then(|v| retry_after(&v));
                    return Err(Failed::Retry {
                        after,
                        why: format!("{}: HTTP {status}", show(&url)),
                    });
                }
                _ => {
                    return Err(Failed::Stop(GetError::Status(Box::new(StatusError {
                        status,
                        error_code: header("x-error-code").map(|c| clip(&c)),
                        error_message: header("x-error-message").map(|m| clip(&m)),
                        url,
                    }))))
                }
            }
        }
        Err(stop(
            start_url,
            format!("more than {} redirects", self.limits.max_redirects),
        ))
    }

    /// An error before any response: a host that does not resolve or refuses connections is
    /// the network being down (said at once); a timeout or a reset is worth another try.
    fn transport_error(&self, url: &Url, e: ureq::Error) -> Failed {
        use std::io::ErrorKind as E;
        let host = url.host_str().unwrap_or("?").to_string();
        let unreachable = |why: &dyn std::fmt::Display| {
            Failed::Stop(
                HubError::new(
                    Kind::Unreachable,
                    format!("cannot reach {host}: {}", clip(&why.to_string())),
                )
                .into(),
            )
        };
        match e {
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => unreachable(&e),
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    E::ConnectionRefused
                        | E::NotFound
                        | E::AddrNotAvailable
                        | E::NetworkUnreachable
                        | E::HostUnreachable
                        | E::NetworkDown
                ) || io.to_string().contains("lookup address") =>
            {
                unreachable(&io)
            }
            ureq::Error::Timeout(t) => Failed::Retry {
                after: None,
                why: format!("{}: no answer in time ({t})", show(url)),
            },
            other => Failed::Retry {
                after: None,
                why: format!("{}: {}", show(url), clip(&other.to_string())),
            },
        }
    }

    /// Reads what `want` needs of a 200 or 206 body, and the object's length.
    fn read_body(
        &self,
        url: &Url,
        status: u16,
        want: Want,
        content_range: Option<&str>,
        content_length: Option<u64>,
        mut body: impl Read,
    ) -> Result<(Vec<u8>, Option<u64>), Failed> {
        match (status, want) {
            (200, Want::All { cap }) => {
                let cap = cap.min(self.limits.max_object_bytes);
                if content_length.is_some_and(|n| n > cap) {
                    return Err(stop(
                        url,
                        format!(
                            "the answer is {} bytes, above the limit of {cap}",
                            content_length.unwrap_or(0)
                        ),
                    ));
                }
                let got = self.read_up_to(url, &mut body, 0, cap + 1)?;
                if got.len() as u64 > cap {
                    return Err(stop(
                        url,
                        format!("the answer is over the limit of {cap} bytes"),
                    ));
                }
                if content_length.is_some_and(|n| n != got.len() as u64) {
                    return Err(truncated(url, got.len() as u64, content_length));
                }
                let total = got.len() as u64;
                Ok((got, Some(total)))
            }
            (206, Want::Range { start, len }) => {
                let Some((first, last, total)) = content_range.and_then(parse_content_range) else {
                    return Err(stop(
                        url,
                        format!(
                            "HTTP 206 with a missing or malformed Content-Range '{}'",
                            clip(content_range.unwrap_or(""))
                        ),
                    ));
                };
                let end = start.saturating_add(len);
                let sent = last.saturating_add(1).saturating_sub(first);
                let short_ok = total.is_some_and(|t| last.saturating_add(1) == t);
                if first != start || last < first || sent > len || (sent < len && !short_ok) {
                    return Err(stop(
                        url,
                        format!(
                            "asked for bytes {start}-{} and got Content-Range '{}'",
                            end - 1,
                            clip(content_range.unwrap_or(""))
                        ),
                    ));
                }
                let got = self.read_up_to(url, &mut body, 0, sent)?;
                if (got.len() as u64) < sent {
                    return Err(truncated(url, got.len() as u64, Some(sent)));
                }
                Ok((got, total))
            }
            (200, Want::Range { start, len }) => {
                // The server ignored Range: the object from its start. Read only up to the
                // end of the wanted range, never more than the cap.
                let end = start.saturating_add(len);
                if end > self.limits.max_object_bytes {
                    return Err(stop(
                        url,
                        format!(
                            "the server ignores Range requests, and the bytes wanted end {end} bytes into the object, above the limit of {}",
                            self.limits.max_object_bytes
                        ),
                    ));
                }
                let got = self.read_up_to(url, &mut body, start, len)?;
                let read_to = start + got.len() as u64;
                match content_length {
                    Some(n) if read_to < end.min(n) => {
                        Err(truncated(url, read_to, Some(end.min(n))))
                    }
                    // The whole object was shorter than the range: its end is known.
                    None if read_to < end => Ok((got, Some(read_to))),
                    other => Ok((got, other)),
                }
            }
            (s, _) => Err(stop(
                url,
                format!("HTTP {s} where a range was not asked for"),
            )),
        }
    }

    /// Skips `skip` bytes, then keeps at most `keep`; stops at the end of the body. Growing
    /// the buffer as bytes arrive: nothing is allocated from a length the server declared.
    fn read_up_to(
        &self,
        url: &Url,
        body: &mut impl Read,
        mut skip: u64,
        keep: u64,
    ) -> Result<Vec<u8>, Failed> {
        // `keep` is ours (a range we asked for, or a cap), never a length the server declared,
        // and at most the per-object limit: reserved at once, up to 16 MiB, so a large range is
        // not copied by reallocation as it arrives.
        let mut out = Vec::with_capacity(keep.min(16 << 20) as usize);
        let mut buf = vec![0u8; CHUNK];
        while (out.len() as u64) < keep {
            let room = if skip > 0 {
                skip.min(CHUNK as u64)
            } else {
                (keep - out.len() as u64).min(CHUNK as u64)
            } as usize;
            let n = match body.read(&mut buf[..room]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failed::Retry {
                        after: None,
                        why: format!(
                            "{}: the body ended after {} of {keep} bytes ({})",
                            show(url),
                            out.len(),
                            clip(&e.to_string())
                        ),
                    })
                }
            };
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if skip > 0 {
                skip -= n as u64;
            } else {
                out.extend_from_slice(&buf[..n]);
            }
        }
        Ok(out)
    }
}

fn stop(url: &Url, problem: String) -> Failed {
    Failed::Stop(HubError::new(Kind::Server, format!("{}: {problem}", show(url))).into())
}

fn truncated(url: &Url, got: u64, expected: Option<u64>) -> Failed {
    Failed::Retry {
        after: None,
        why: format!(
            "{}: the body ended after {got} of {} bytes",
            show(url),
            expected
                .map(|e| e.to_string())
                .unwrap_or_else(|| "?".into())
        ),
    }
}

/// A URL as error lines show it: without its query (a CDN's signature) or credentials.
pub fn show(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    clip(u.as_str())
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`) → (first, last, total).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total))
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s.min(24 * 3600)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_and_retry_after() {
        assert_eq!(
            parse_content_range("bytes 0-65535/1048576"),
            Some((0, 65535, Some(1048576)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn shown_urls_lose_their_signature() {
        let u = Url::parse("https://u:p@cdn.example/blob/x?X-Amz-Signature=abc#f").unwrap();
        assert_eq!(show(&u), "https://cdn.example/blob/x");
    }
}
