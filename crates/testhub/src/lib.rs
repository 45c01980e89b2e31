//! A Hugging Face Hub, its CDN and an ollama registry on loopback, for tests and benchmarks.
//!
//! It serves the fixture repositories `scripts/gen_fixtures.py` writes (`hub/repos.json`) with
//! the real services' routes:
//! - Hub (`endpoint()`): `GET /api/models/{org}/{name}[/revision/{rev}]` (JSON: `sha`,
//!   `siblings` with `rfilename`, and with `?blobs=true` `size` and `lfs`; `gated`), and
//!   `GET /{org}/{name}/resolve/{rev}/{path}`: small files answered directly (with Range), LFS
//!   files redirected (302) to the CDN with a signed-looking query, as the Hub does; errors
//!   carry the Hub's `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
//!   Gated repositories answer file reads 401 without a token and 403 with a wrong one.
//! - CDN (`cdn()`, a second loopback host — 127.0.0.2 where it can be bound — so that the
//!   redirect crosses origins): Range requests, 206 with `Content-Range`.
//! - ollama registry (`registry()`, on the Hub's server):
//!   `GET /v2/{ns}/{model}/manifests/{tag}` and `GET /v2/{ns}/{model}/blobs/{digest}`, the
//!   latter redirected (307) to the CDN.
//! - a "raw" server for faults below HTTP: a scripted answer written byte for byte.
//!
//! Files may be "virtual": the first bytes stored (a real-shaped header) and zeros up to a
//! declared length, so a 140 GB checkpoint's headers can be served without 140 GB of disk.
//!
//! Every request is recorded ([`Hit`]: which server, path, Range, Authorization, status, body
//! bytes sent), latency can be added to every response, and faults are set per path on demand
//! ([`Fault`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One stored file: its first bytes, and its length (zeros after `head`).
#[derive(Clone)]
pub struct FileData {
    pub head: Arc<Vec<u8>>,
    pub size: u64,
    pub lfs: bool,
}

impl FileData {
    fn byte(&self, i: u64) -> u8 {
        self.head.get(i as usize).copied().unwrap_or(0)
    }

    /// Bytes `from..to` as a stream of chunks (zeros past the stored head).
    fn chunks(&self, from: u64, to: u64) -> impl futures_util::Stream<Item = Bytes> + Send {
        let me = self.clone();
        stream::unfold(from, move |at| {
            let me = me.clone();
            async move {
                if at >= to {
                    return None;
                }
                let end = (at + 256 * 1024).min(to);
                let head_len = me.head.len() as u64;
                let chunk = if end <= head_len {
                    Bytes::copy_from_slice(&me.head[at as usize..end as usize])
                } else {
                    let mut v = Vec::with_capacity((end - at) as usize);
                    for i in at..end {
                        v.push(me.byte(i));
                    }
                    Bytes::from(v)
                };
                Some((chunk, end))
            }
        })
    }
}

/// A repository: its commit, whether it is gated or private, and its files.
#[derive(Clone)]
pub struct Repo {
    pub id: String,
    pub sha: String,
    pub gated: Option<String>,
    pub private: bool,
    /// Other revision names (branches, tags) that resolve to `sha`.
    pub revisions: Vec<String>,
    pub files: Vec<(String, FileData)>,
}

/// An ollama model in the registry.
#[derive(Clone)]
pub struct RegistryModel {
    pub name: String,
    pub tag: String,
    pub manifest: Arc<Vec<u8>>,
}

/// A fault, applied to requests whose path contains a given string.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` if given) the next `times` times.
    Status {
        status: u16,
        retry_after: Option<String>,
        times: u64,
    },
    /// Ignore Range: 200 and the whole object (as long as `size` says, zeros past the file,
    /// when given).
    IgnoreRange { size: Option<u64> },
    /// Headers, then one byte every `interval`, without end.
    SlowDrip { interval: Duration },
    /// Accept the request and never answer.
    Hang,
    /// A 206 whose body ends after `send` of the promised bytes.
    Truncated { send: u64 },
    /// A 206 whose Content-Length says `claim` bytes while `send` are sent.
    LyingLength { claim: u64, send: u64 },
    /// A 206 whose Content-Range says the object is `total` bytes long.
    LyingTotal { total: u64 },
}

/// One request as the servers saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    /// "hub", "cdn" or "raw".
    pub server: &'static str,
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
    /// Body bytes handed to the connection (a client that stops reading stops the count).
    pub bytes: Arc<AtomicU64>,
}

impl Hit {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Shared {
    repos: Vec<Repo>,
    registry: Vec<RegistryModel>,
    blobs: HashMap<String, FileData>,
    hits: Vec<Hit>,
    faults: Vec<(String, Fault)>,
    latency: Duration,
    /// The token that opens gated and private repositories.
    token: Option<String>,
    cdn: String,
    raw: String,
    /// Scripts for the raw server, by id.
    raw_scripts: HashMap<u64, (FileData, u64, u64, Fault)>,
    next_raw: u64,
}

type St = Arc<Mutex<Shared>>;

/// The servers, running on their own thread until dropped.
pub struct TestHub {
    state: St,
    hub: SocketAddr,
    cdn: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Deserialize)]
struct RepoSpec {
    id: String,
    sha: String,
    #[serde(default)]
    gated: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    revisions: Vec<String>,
    files: Vec<FileSpec>,
}

#[derive(Deserialize)]
struct FileSpec {
    path: String,
    /// The whole file, relative to the fixtures directory.
    #[serde(default)]
    local: Option<String>,
    /// Only its first bytes (then `size` says how long it is).
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<bool>,
}

#[derive(Deserialize)]
struct RegistrySpec {
    name: String,
    tag: String,
    manifest: String,
    blobs: HashMap<String, FileSpec>,
}

fn load_file(dir: &Path, f: &FileSpec) -> std::io::Result<FileData> {
    let (head, size) = match (&f.local, &f.head) {
        (Some(l), _) => {
            let b = std::fs::read(dir.join(l))?;
            let n = b.len() as u64;
            (b, n)
        }
        (None, Some(h)) => {
            let b = std::fs::read(dir.join(h))?;
            let n = f.size.unwrap_or(b.len() as u64);
            (b, n)
        }
        (None, None) => (Vec::new(), f.size.unwrap_or(0)),
    };
    let lfs = f.lfs.unwrap_or_else(|| {
        let p = f.path.to_ascii_lowercase();
        p.ends_with(".safetensors") || p.ends_with(".gguf") || p.ends_with(".bin")
    });
    Ok(FileData {
        head: Arc::new(head),
        size,
        lfs,
    })
}

/// What the fixtures hold: repositories, registry models, blobs by digest.
struct Loaded {
    repos: Vec<Repo>,
    registry: Vec<RegistryModel>,
    blobs: HashMap<String, FileData>,
}

/// Loads `DIR/hub/repos.json` and `DIR/hub/registry.json` (see `scripts/gen_fixtures.py`).
fn load(dir: &Path) -> std::io::Result<Loaded> {
    let hub = dir.join("hub");
    let specs: Vec<RepoSpec> = serde_json::from_slice(&std::fs::read(hub.join("repos.json"))?)
        .map_err(std::io::Error::other)?;
    let mut repos = Vec::new();
    for s in specs {
        let mut files = Vec::new();
        for f in &s.files {
            files.push((f.path.clone(), load_file(&hub, f)?));
        }
        repos.push(Repo {
            id: s.id,
            sha: s.sha,
            gated: s.gated,
            private: s.private,
            revisions: s.revisions,
            files,
        });
    }
    let mut registry = Vec::new();
    let mut blobs = HashMap::new();
    let reg_path = hub.join("registry.json");
    if reg_path.is_file() {
        let specs: Vec<RegistrySpec> =
            serde_json::from_slice(&std::fs::read(reg_path)?).map_err(std::io::Error::other)?;
        for s in specs {
            for (digest, f) in &s.blobs {
                blobs.insert(digest.clone(), load_file(&hub, f)?);
            }
            registry.push(RegistryModel {
                name: s.name,
                tag: s.tag,
                manifest: Arc::new(std::fs::read(hub.join(&s.manifest))?),
            });
        }
    }
    Ok(Loaded {
        repos,
        registry,
        blobs,
    })
}

/// The fixtures directory of the test command (`$VRAMPLAN_FIXTURES`), or a clear failure.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("VRAMPLAN_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        panic!("VRAMPLAN_FIXTURES is not set: run `./scripts/test.sh`, or `python3 scripts/gen_fixtures.py target/fixtures` and set VRAMPLAN_FIXTURES=$PWD/target/fixtures")
    });
    assert!(
        dir.join("hub/repos.json").is_file(),
        "{}/hub/repos.json missing: run python3 scripts/gen_fixtures.py {}",
        dir.display(),
        dir.display()
    );
    dir
}

impl TestHub {
    /// Starts the servers over the fixtures in `dir`.
    pub fn start(dir: &Path) -> TestHub {
        let Loaded {
            repos,
            registry,
            blobs,
        } = load(dir).expect("load the hub fixtures");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let state: St = Arc::new(Mutex::new(Shared {
            repos,
            registry,
            blobs,
            ..Shared::default()
        }));
        let (hub, cdn, raw) = runtime.block_on(async {
            let hub = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind hub");
            // A second loopback host for the CDN: another origin, as the Hub's CDN is.
            let cdn = match tokio::net::TcpListener::bind("127.0.0.2:0").await {
                Ok(l) => l,
                Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind cdn"),
            };
            let raw = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind raw");
            (hub, cdn, raw)
        });
        let (hub_addr, cdn_addr, raw_addr) = (
            hub.local_addr().unwrap(),
            cdn.local_addr().unwrap(),
            raw.local_addr().unwrap(),
        );
        {
            let mut s = state.lock().unwrap();
            s.cdn = format!("http://{cdn_addr}");
            s.raw = format!("http://{raw_addr}");
        }
        let hub_app = Router::new()
            .fallback(hub_handler)
            .with_state(state.clone());
        let cdn_app = Router::new()
            .fallback(cdn_handler)
            .with_state(state.clone());
        // TCP_NODELAY, as real servers set it: without it Nagle's algorithm holds each
        // response's last segment for the client's delayed ACK (~40 ms a request).
        use axum::serve::ListenerExt;
        let nodelay = |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        };
        runtime.spawn(async move {
            let _ = axum::serve(hub.tap_io(nodelay), hub_app).await;
        });
        runtime.spawn(async move {
            let _ = axum::serve(cdn.tap_io(nodelay), cdn_app).await;
        });
        let raw_state = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((sock, _)) = raw.accept().await else {
                    continue;
                };
                tokio::spawn(raw_connection(sock, raw_state.clone()));
            }
        });
        TestHub {
            state,
            hub: hub_addr,
            cdn: cdn_addr,
            _runtime: runtime,
        }
    }

    /// `HF_ENDPOINT` for this hub.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.hub)
    }

    /// `VRAMPLAN_OLLAMA_REGISTRY` for this hub.
    pub fn registry(&self) -> String {
        self.endpoint()
    }

    pub fn cdn(&self) -> String {
        format!("http://{}", self.cdn)
    }

    /// Latency added before every response of every server.
    pub fn set_latency(&self, d: Duration) {
        self.state.lock().unwrap().latency = d;
    }

    /// The token that opens gated and private repositories.
    pub fn set_token(&self, token: &str) {
        self.state.lock().unwrap().token = Some(token.to_string());
    }

    /// Applies `fault` to requests whose path contains `path_part` (the first matching fault
    /// wins).
    pub fn fault(&self, path_part: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((path_part.to_string(), fault));
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Every request so far, in order of arrival.
    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    pub fn clear_hits(&self) {
        self.state.lock().unwrap().hits.clear();
    }

    /// Starts an HTTP CONNECT proxy on loopback and returns its URL (for `HTTPS_PROXY` and
    /// friends). Each tunnel is a hit of server "proxy" with path `CONNECT host:port`; a host
    /// ending in `.invalid` is reached at 127.0.0.1 — a name only the proxy can resolve, so an
    /// answer proves the request went through it.
    pub fn start_proxy(&self) -> String {
        let listener = self
            ._runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let st = self.state.clone();
        self._runtime.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(proxy_connection(sock, st.clone()));
            }
        });
        format!("http://{addr}")
    }
}

fn find_repo(st: &St, id: &str) -> Option<Repo> {
    st.lock()
        .unwrap()
        .repos
        .iter()
        .find(|r| r.id == id)
        .cloned()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Records a hit and returns its byte counter.
fn record(st: &St, server: &'static str, req: &Request) -> (usize, Arc<AtomicU64>) {
    let bytes = Arc::new(AtomicU64::new(0));
    let mut s = st.lock().unwrap();
    s.hits.push(Hit {
        server,
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        range: header(req.headers(), "range"),
        authorization: header(req.headers(), "authorization"),
        status: 0,
        bytes: bytes.clone(),
    });
    (s.hits.len() - 1, bytes)
}

fn set_status(st: &St, i: usize, status: u16) {
    if let Some(h) = st.lock().unwrap().hits.get_mut(i) {
        h.status = status;
    }
}

/// Wraps a response body so that the bytes actually taken by the connection are counted.
fn counted(resp: Response, counter: Arc<AtomicU64>) -> Response {
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        if let Ok(c) = &chunk {
            counter.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn error(status: u16, code: Option<&str>, message: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({ "error": message })),
    )
        .into_response();
    if let Some(c) = code {
        r.headers_mut()
            .insert("x-error-code", HeaderValue::from_str(c).unwrap());
    }
    r.headers_mut().insert(
        "x-error-message",
        HeaderValue::from_str(message).unwrap_or(HeaderValue::from_static("error")),
    );
    r
}

/// The fault for a path, consuming one use of a counted one.
fn fault_for(st: &St, path: &str) -> Option<Fault> {
    let mut s = st.lock().unwrap();
    let i = s
        .faults
        .iter()
        .position(|(p, _)| path.contains(p.as_str()))?;
    let fault = s.faults[i].1.clone();
    if let Fault::Status { times, .. } = &mut s.faults[i].1 {
        *times -= 1;
        if *times == 0 {
            s.faults.remove(i);
        }
    }
    Some(fault)
}

fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let r = v.trim().strip_prefix("bytes=")?;
    let (a, b) = r.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = if b.trim().is_empty() {
        size.saturating_sub(1)
    } else {
        b.trim().parse().ok()?
    };
    Some((a, b.min(size.saturating_sub(1))))
}

/// A file answered with Range support, or with the fault that applies.
fn serve_file(st: &St, path: &str, headers: &HeaderMap, file: &FileData) -> Response {
    let range = header(headers, "range");
    if let Some(f) = fault_for(st, path) {
        match f {
            Fault::Status {
                status,
                retry_after,
                ..
            } => {
                let mut r = error(status, None, "fault injected");
                if let Some(ra) = retry_after {
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from_str(&ra).unwrap());
                }
                return r;
            }
            Fault::IgnoreRange { size } => {
                let size = size.unwrap_or(file.size);
                let big = FileData {
                    head: file.head.clone(),
                    size,
                    lfs: file.lfs,
                };
                return Response::builder()
                    .status(200)
                    .header("content-length", size)
                    .body(Body::from_stream(
                        big.chunks(0, size).map(Ok::<_, std::io::Error>),
                    ))
                    .unwrap();
            }
            other => {
                // Faults below HTTP: hand the request to the raw server.
                let (start, end) = range
                    .as_deref()
                    .and_then(|r| parse_range(r, file.size))
                    .unwrap_or((0, file.size.saturating_sub(1)));
                let mut s = st.lock().unwrap();
                let id = s.next_raw;
                s.next_raw += 1;
                s.raw_scripts.insert(id, (file.clone(), start, end, other));
                let to = format!("{}/raw/{id}", s.raw);
                return Response::builder()
                    .status(307)
                    .header("location", to)
                    .body(Body::empty())
                    .unwrap();
            }
        }
    }
    match range {
        Some(r) => {
            let Some((a, b)) = parse_range(&r, file.size).filter(|(a, b)| a <= b) else {
                return Response::builder()
                    .status(416)
                    .header("content-range", format!("bytes */{}", file.size))
                    .body(Body::empty())
                    .unwrap();
            };
            Response::builder()
                .status(206)
                .header("content-range", format!("bytes {a}-{b}/{}", file.size))
                .header("content-length", b - a + 1)
                .header("accept-ranges", "bytes")
                .body(Body::from_stream(
                    file.chunks(a, b + 1).map(Ok::<_, std::io::Error>),
                ))
                .unwrap()
        }
        None => Response::builder()
            .status(200)
            .header("content-length", file.size)
            .header("accept-ranges", "bytes")
            .body(Body::from_stream(
                file.chunks(0, file.size).map(Ok::<_, std::io::Error>),
            ))
            .unwrap(),
    }
}

async fn hub_handler(State(st): State<St>, req: Request) -> Response {
    // The bench script's view of what the servers saw (not itself recorded).
    match req.uri().path() {
        "/_testhub/hits" => {
            let s = st.lock().unwrap();
            let per = |server: &str| {
                let hits: Vec<&Hit> = s.hits.iter().filter(|h| h.server == server).collect();
                json!({"requests": hits.len(), "bytes": hits.iter().map(|h| h.bytes()).sum::<u64>()})
            };
            return axum::Json(json!({
                "requests": s.hits.len(),
                "hub": per("hub"), "cdn": per("cdn"), "raw": per("raw"),
            }))
            .into_response();
        }
        "/_testhub/clear" => {
            st.lock().unwrap().hits.clear();
            return axum::Json(json!({"cleared": true})).into_response();
        }
        _ => {}
    }
    let (i, counter) = record(&st, "hub", &req);
    let latency = st.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = hub_answer(&st, &req);
    set_status(&st, i, resp.status().as_u16());
    counted(resp, counter)
}

fn authorized(st: &St, headers: &HeaderMap) -> Option<bool> {
    let token = st.lock().unwrap().token.clone();
    let given = header(headers, "authorization")?;
    Some(token.is_some_and(|t| given == format!("Bearer {t}")))
}

fn hub_answer(st: &St, req: &Request) -> Response {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["api", "models", org, name, rest @ ..] => {
            let repo_id = format!("{org}/{name}");
            let rev = match rest {
                [] => "main".to_string(),
                ["revision", r @ ..] => r.join("/"),
                _ => return error(404, None, "no such route"),
            };
            let Some(repo) = find_repo(st, &repo_id) else {
                return error(404, Some("RepoNotFound"), "Repository not found");
            };
            if repo.private && authorized(st, req.headers()) != Some(true) {
                return error(401, Some("RepoNotFound"), "Repository not found");
            }
            if rev != "main" && rev != repo.sha && !repo.revisions.contains(&rev) {
                return error(404, Some("RevisionNotFound"), "Invalid rev id");
            }
            let blobs = req.uri().query().is_some_and(|q| q.contains("blobs=true"));
            let siblings: Vec<Value> = repo
                .files
                .iter()
                .map(|(p, f)| {
                    let mut s = json!({ "rfilename": p });
                    if blobs {
                        s["size"] = json!(f.size);
                        if f.lfs {
                            s["lfs"] = json!({"size": f.size, "sha256": "0".repeat(64), "pointerSize": 134});
                        }
                    }
                    s
                })
                .collect();
            axum::Json(json!({
                "_id": "0",
                "id": repo.id,
                "modelId": repo.id,
                "sha": repo.sha,
                "private": repo.private,
                "gated": repo.gated.clone().map(Value::String).unwrap_or(Value::Bool(false)),
                "siblings": siblings,
            }))
            .into_response()
        }
        ["v2", ns, model, "manifests", tag] => {
            let name = format!("{ns}/{model}");
            let m = st
                .lock()
                .unwrap()
                .registry
                .iter()
                .find(|m| m.name == name && m.tag == *tag)
                .cloned();
            match m {
                Some(m) => Response::builder()
                    .status(200)
                    .header(
                        "content-type",
                        "application/vnd.docker.distribution.manifest.v2+json",
                    )
                    .body(Body::from(m.manifest.to_vec()))
                    .unwrap(),
                None => error(404, None, "manifest unknown"),
            }
        }
        ["v2", _ns, _model, "blobs", digest] => {
            let s = st.lock().unwrap();
            if !s.blobs.contains_key(*digest) {
                return error(404, None, "blob unknown");
            }
            Response::builder()
                .status(307)
                .header("location", format!("{}/blob/{digest}?sig=registry", s.cdn))
                .body(Body::empty())
                .unwrap()
        }
        [org, name, "resolve", rev, file @ ..] if !file.is_empty() => {
            let repo_id = format!("{org}/{name}");
            let file_path = file.join("/");
            let Some(repo) = find_repo(st, &repo_id) else {
                return error(404, Some("RepoNotFound"), "Repository not found");
            };
            if repo.gated.is_some() || repo.private {
                match authorized(st, req.headers()) {
                    None => {
                        return error(
                            401,
                            Some(if repo.private { "RepoNotFound" } else { "GatedRepo" }),
                            "Access to model is restricted. You must have access to it and be authenticated to access it. Please log in.",
                        )
                    }
                    Some(false) => {
                        return error(
                            403,
                            Some(if repo.private { "RepoNotFound" } else { "GatedRepo" }),
                            "Access to model is restricted and you are not in the authorized list.",
                        )
                    }
                    Some(true) => {}
                }
            }
            if *rev != "main" && *rev != repo.sha && !repo.revisions.iter().any(|r| r == rev) {
                return error(404, Some("RevisionNotFound"), "Invalid rev id");
            }
            let Some((idx, (_, f))) = repo
                .files
                .iter()
                .enumerate()
                .find(|(_, (p, _))| *p == file_path)
            else {
                return error(404, Some("EntryNotFound"), "Entry not found");
            };
            if f.lfs {
                let cdn = st.lock().unwrap().cdn.clone();
                let mut r = Response::builder()
                    .status(302)
                    .header(
                        "location",
                        format!(
                            "{cdn}/cdn/{}/{idx}?X-Amz-Signature=loopback",
                            percent_encoding::utf8_percent_encode(
                                &repo.id,
                                percent_encoding::NON_ALPHANUMERIC
                            )
                        ),
                    )
                    .header("x-repo-commit", &repo.sha)
                    .header("x-linked-size", f.size)
                    .body(Body::empty())
                    .unwrap();
                r.headers_mut()
                    .insert("x-linked-etag", HeaderValue::from_static("\"loopback\""));
                return r;
            }
            let mut r = serve_file(st, &path, req.headers(), f);
            r.headers_mut()
                .insert("x-repo-commit", HeaderValue::from_str(&repo.sha).unwrap());
            r
        }
        _ => error(404, None, "no such route"),
    }
}

async fn cdn_handler(State(st): State<St>, req: Request) -> Response {
    let (i, counter) = record(&st, "cdn", &req);
    let latency = st.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let resp = match segs
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["cdn", repo_id, idx] => {
            let file = st
                .lock()
                .unwrap()
                .repos
                .iter()
                .find(|r| r.id == *repo_id)
                .and_then(|r| {
                    idx.parse::<usize>()
                        .ok()
                        .and_then(|i| r.files.get(i).map(|(p, f)| (p.clone(), f.clone())))
                });
            match file {
                Some((p, f)) => serve_file(&st, &format!("/cdn/{repo_id}/{p}"), req.headers(), &f),
                None => error(404, None, "NoSuchKey"),
            }
        }
        ["blob", digest] => {
            let f = st.lock().unwrap().blobs.get(*digest).cloned();
            match f {
                Some(f) => serve_file(&st, &path, req.headers(), &f),
                None => error(404, None, "NoSuchKey"),
            }
        }
        _ => error(404, None, "NoSuchKey"),
    };
    set_status(&st, i, resp.status().as_u16());
    counted(resp, counter)
}

/// A request's head (up to the blank line), or `None` if the client goes away first.
async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn proxy_connection(mut sock: tokio::net::TcpStream, st: St) {
    let Some(head) = read_head(&mut sock).await else {
        return;
    };
    let line = head.lines().next().unwrap_or("").to_string();
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    st.lock().unwrap().hits.push(Hit {
        server: "proxy",
        path: format!("{method} {target}"),
        range: None,
        authorization: None,
        status: if method == "CONNECT" { 200 } else { 405 },
        bytes: Arc::new(AtomicU64::new(0)),
    });
    if method != "CONNECT" {
        let _ = sock
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let (host, port) = target.rsplit_once(':').unwrap_or((target, "80"));
    let host = if host.ends_with(".invalid") {
        "127.0.0.1"
    } else {
        host
    };
    let Ok(mut upstream) = tokio::net::TcpStream::connect(format!("{host}:{port}")).await else {
        let _ = sock
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if sock
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut sock, &mut upstream).await;
}

async fn write_counted(
    sock: &mut tokio::net::TcpStream,
    data: &[u8],
    counter: &AtomicU64,
) -> std::io::Result<()> {
    sock.write_all(data).await?;
    counter.fetch_add(data.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// The raw server: one scripted answer per connection, written byte for byte.
async fn raw_connection(mut sock: tokio::net::TcpStream, st: St) {
    let Some(head) = read_head(&mut sock).await else {
        return;
    };
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let id: Option<u64> = path.strip_prefix("/raw/").and_then(|p| p.parse().ok());
    let bytes = Arc::new(AtomicU64::new(0));
    let (latency, script) = {
        let mut s = st.lock().unwrap();
        s.hits.push(Hit {
            server: "raw",
            path: path.clone(),
            range: head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("range:"))
                .map(|l| l[6..].trim().to_string()),
            authorization: head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .map(|l| l[14..].trim().to_string()),
            status: 206,
            bytes: bytes.clone(),
        });
        (s.latency, id.and_then(|i| s.raw_scripts.get(&i).cloned()))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some((file, start, end, fault)) = script else {
        let _ = sock
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let want = end - start + 1;
    let body = |n: u64| -> Vec<u8> { (start..start + n).map(|i| file.byte(i)).collect() };
    match fault {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::SlowDrip { interval } => {
            let h = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{end}/{}\r\ncontent-length: {want}\r\n\r\n",
                file.size
            );
            if sock.write_all(h.as_bytes()).await.is_err() {
                return;
            }
            for i in 0..want {
                tokio::time::sleep(interval).await;
                if write_counted(&mut sock, &[file.byte(start + i)], &bytes)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        Fault::Truncated { send: n } => {
            let h = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{end}/{}\r\ncontent-length: {want}\r\n\r\n",
                file.size
            );
            let _ = sock.write_all(h.as_bytes()).await;
            let _ = write_counted(&mut sock, &body(n.min(want)), &bytes).await;
        }
        Fault::LyingLength { claim, send: n } => {
            let h = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{end}/{}\r\ncontent-length: {claim}\r\n\r\n",
                file.size
            );
            let _ = sock.write_all(h.as_bytes()).await;
            let _ = write_counted(&mut sock, &body(n), &bytes).await;
        }
        Fault::LyingTotal { total } => {
            let h = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{end}/{total}\r\ncontent-length: {want}\r\n\r\n"
            );
            let _ = sock.write_all(h.as_bytes()).await;
            let _ = write_counted(&mut sock, &body(want), &bytes).await;
        }
        Fault::Status { .. } | Fault::IgnoreRange { .. } => {}
    }
    let _ = sock.shutdown().await;
}
