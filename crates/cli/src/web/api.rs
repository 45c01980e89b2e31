//! The JSON API under `/api/v1`: models, GPUs, estimate, plan, and the OpenAPI document.

use super::error::ApiError;
use super::{hf_config, openapi, request, BODY_LIMIT_BYTES};
use crate::commands::estimate::{compute, compute_with_model};
use crate::commands::plan::{self, PlanArgs};
use crate::Failure;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use vramplan_core::kv::kv_bytes_per_token;
use vramplan_core::{catalogue, KvDtype};

/// A JSON body computed once: the catalogue is compiled in and never changes while serving.
fn cached_json(cell: &'static OnceLock<Bytes>, make: impl FnOnce() -> Value) -> Response {
    let body = cell
        .get_or_init(|| Bytes::from(serde_json::to_vec(&make()).unwrap_or_default()))
        .clone();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The rows of `vramplan models --json` (commands/catalogue.rs builds the same fields).
pub fn models_value() -> Value {
    let rows: Vec<Value> = catalogue()
        .models
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "aliases": m.aliases,
                "family": m.family,
                "params": m.params(),
                "quant": m.native_format().name(),
                "kv_bytes_per_token": kv_bytes_per_token(m, KvDtype::F16),
                "max_context": m.max_context,
                "source": m.source,
            })
        })
        .collect();
    Value::Array(rows)
}

/// `GET /api/v1/models`: the catalogue's models, as `vramplan models --json`.
pub async fn models() -> Response {
    static CELL: OnceLock<Bytes> = OnceLock::new();
    cached_json(&CELL, models_value)
}

/// `GET /api/v1/gpus`: the catalogue's GPUs, as `vramplan gpus --json`.
pub async fn gpus() -> Response {
    static CELL: OnceLock<Bytes> = OnceLock::new();
    cached_json(&CELL, || {
        serde_json::to_value(&catalogue().gpus).unwrap_or(Value::Null)
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> Response {
    static CELL: OnceLock<Bytes> = OnceLock::new();
    cached_json(&CELL, openapi::document)
}

/// `POST /api/v1/estimate`: the same JSON object as `vramplan estimate --json`.
pub async fn estimate_handler(headers: HeaderMap, body: Body) -> Response {
    let answer = match read_json(&headers, body).await {
        // The estimator is pure arithmetic on checked inputs; if a defect still panics, this
        // request gets a 500 and the server goes on serving the others. Off the async
        // workers: a model read from the Hub waits on the network.
        Ok(value) => tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| estimate_value(&value)))
                .unwrap_or_else(|_| Err(internal_error("estimating")))
        })
        .await
        .unwrap_or_else(|_| Err(internal_error("estimating"))),
        Err(e) => Err(e),
    };
    json_answer(answer)
}

/// Hub reads running now, at most [`MAX_HUB_READS`]: each holds a thread and up to 8
/// connections to the endpoint for up to `--hub-timeout` seconds.
static HUB_READS: AtomicUsize = AtomicUsize::new(0);
pub const MAX_HUB_READS: usize = 4;

/// One slot of `HUB_READS`, given back when dropped.
struct HubSlot;

impl HubSlot {
    fn take() -> Result<HubSlot, ApiError> {
        HUB_READS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_HUB_READS).then_some(n + 1)
            })
            .map(|_| HubSlot)
            .map_err(|_| {
                ApiError::with_status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{MAX_HUB_READS} Hub reads are already running; try again in a moment"),
                )
            })
    }
}

impl Drop for HubSlot {
    fn drop(&mut self) {
        HUB_READS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request's `model`: a catalogue name (its id), or — unless `serve --no-hub` — a Hugging
/// Face repository id, read server-side from the configured endpoint only (never a path, a
/// local store, another registry or a URL). The resolver's scope and limits are the server's.
fn api_model(
    name: &str,
    hub: &mut crate::model_source::HubArgs,
) -> Result<(String, Option<HubSlot>), ApiError> {
    let settings = super::settings();
    *hub = crate::model_source::HubArgs {
        offline: false,
        refresh: false,
        file: None,
        timeout: settings.hub_timeout,
        scope: crate::model_source::Scope::server(settings.hub),
    };
    if let Ok(m) = catalogue().model(name) {
        return Ok((m.id.clone(), None));
    }
    if settings.hub && vramplan_hub::parse_repo_ref(name).is_some() {
        return Ok((name.to_string(), Some(HubSlot::take()?)));
    }
    let why = catalogue().model(name).err().unwrap_or_default();
    Err(ApiError::bad(
        Some("model"),
        if settings.hub {
            why
        } else {
            format!("{why} (this server reads no Hugging Face repositories: serve --no-hub)")
        },
    ))
}

fn json_answer(answer: Result<Value, ApiError>) -> Response {
    match answer {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn internal_error(doing: &str) -> ApiError {
    ApiError::with_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error while {doing} (a bug: please report the request)"),
    )
}

/// A request body as JSON: refused with 415 unless sent as `application/json` (so that a page on
/// another site cannot post it as a "simple" cross-origin request), 413 over
/// `BODY_LIMIT_BYTES`, 408 when it takes longer than the body timeout, 400 when malformed.
async fn read_json(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "send the body as Content-Type: application/json (got '{}')",
                request::clip(content_type)
            ),
        ));
    }
    let too_large = || {
        ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body over the limit of {} bytes ({} KiB)",
                BODY_LIMIT_BYTES,
                BODY_LIMIT_BYTES / 1024
            ),
        )
    };
    // Refuse a declared oversize body before reading any of it.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT_BYTES as u64) {
        return Err(too_large());
    }
    // The limit also holds for chunked bodies, which declare no length.
    let timeout = super::settings().body_timeout;
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT_BYTES))
        .await
        .map_err(|_| {
            ApiError::with_status(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs_f64()
                ),
            )
        })?
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(None, format!("malformed JSON: {e}")))
}

/// A command's failure as an answer: bad input (exit code 2) is a 400 naming the field the
/// message is about, anything else a 500.
fn failure_to_error<'a, A: clap::Args>(
    spec: &'a request::CommandSpec<A>,
    given: &'a [String],
) -> impl Fn(Failure) -> ApiError + 'a {
    move |f: Failure| {
        if f.code == 2 {
            let field = spec.field_named_in(&f.message, given);
            ApiError::bad(field.as_deref(), f.message)
        } else {
            ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, f.message)
        }
    }
}

/// Parses a request body and computes its estimate.
pub fn estimate_value(body: &Value) -> Result<Value, ApiError> {
    let mut req = request::ESTIMATE.parse(body)?;
    // The server's own memory is not the requester's machine: host memory is checked only
    // when the request gives it.
    if req.args.host_memory.is_none() {
        req.args.host_memory = Some("none".into());
    }
    let config = match req.extra.get(request::CONFIG_FIELD) {
        None => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => {
            return Err(ApiError::bad(
                Some(request::CONFIG_FIELD),
                "config must be a JSON object: the contents of a Hugging Face config.json",
            ))
        }
    };
    match config {
        Some(_) if req.given.iter().any(|g| g == "model") => Err(ApiError::bad(
            Some(request::CONFIG_FIELD),
            "give either model (a catalogue name) or config (a pasted config.json), not both",
        )),
        Some(cfg) => {
            let model = hf_config::model_from_config(cfg)?;
            // The CLI's own steps for a model given as a description, engine profiles included.
            compute_with_model(&req.args, &model)
                .map_err(failure_to_error(&request::ESTIMATE, &req.given))
        }
        None => {
            // Catalogue names reach the estimator as their ids, Hub ids as themselves with the
            // server's scope: a model given as a path or a local store's name is never opened.
            let (model, _slot) = api_model(&req.args.model, &mut req.args.hub)?;
            req.args.model = model;
            compute(&req.args).map_err(failure_to_error(&request::ESTIMATE, &req.given))
        }
    }
}

/// Plan searches running now. A search is ~0.1 s of one core in a release build (~1 s in a debug
/// build), against microseconds for an estimate: beyond one per core the server answers 503
/// rather than queue work that would starve the estimates.
static PLANS_RUNNING: AtomicUsize = AtomicUsize::new(0);
pub const MAX_PLANS_RUNNING: usize = 2;

/// One slot of `PLANS_RUNNING`, given back when dropped (also when the search panics).
struct PlanSlot;

impl PlanSlot {
    fn take() -> Option<PlanSlot> {
        PLANS_RUNNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PLANS_RUNNING).then_some(n + 1)
            })
            .ok()
            .map(|_| PlanSlot)
    }
}

impl Drop for PlanSlot {
    fn drop(&mut self) {
        PLANS_RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `POST /api/v1/plan`: the same JSON object as `vramplan plan --json`.
pub async fn plan_handler(headers: HeaderMap, body: Body) -> Response {
    let value = match read_json(&headers, body).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    // Bad input is answered before a search slot is taken.
    let req = match request::PLAN.parse(&value) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    run_search("plan searches", "planning", move |cancelled| {
        plan_args_value(req, cancelled)
    })
    .await
}

/// Runs a search (plan, fit) in one of the search slots, off the async workers so that
/// estimates keep being answered; 503 with Retry-After when every slot is taken. The search is
/// given a flag that is set when its client goes away.
async fn run_search(
    kind: &'static str,
    what: &'static str,
    search: impl FnOnce(&AtomicBool) -> Result<Value, ApiError> + Send + 'static,
) -> Response {
    let Some(slot) = PlanSlot::take() else {
        let mut r = ApiError::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_PLANS_RUNNING} {kind} are already running; try again in a moment"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    // The search is blocking CPU work: off the async workers, so estimates keep being answered.
    // If the client goes away, hyper drops this future: the guard then cancels the search, which
    // stops at its next candidate instead of running on for nobody.
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    let answer = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        catch_unwind(AssertUnwindSafe(|| search(&cancelled)))
            .unwrap_or_else(|_| Err(internal_error(what)))
    })
    .await
    .unwrap_or_else(|_| Err(internal_error(what)));
    json_answer(answer)
}

/// Sets its flag when dropped: when the request's future is dropped before it finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Set when the server stops: every search running ends at its next candidate.
pub static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Parses a plan request body and computes its plans (synchronously; the handler runs this off
/// the async workers).
pub fn plan_value(body: &Value) -> Result<Value, ApiError> {
    plan_args_value(request::PLAN.parse(body)?, &AtomicBool::new(false))
}

fn plan_args_value(
    mut req: request::Request<PlanArgs>,
    cancelled: &AtomicBool,
) -> Result<Value, ApiError> {
    let mut slots = Vec::new();
    let mut hub = req.args.hub.clone();
    for m in req.args.model.iter_mut() {
        let (model, slot) = api_model(m, &mut hub)?;
        *m = model;
        slots.extend(slot);
    }
    req.args.hub = hub;
    // A request may ask for a smaller search than the server allows, not a larger one.
    req.args.max_candidates = req.args.max_candidates.min(plan::DEFAULT_MAX_CANDIDATES);
    let a = &req.args;
    // The request's own budget, at most the server's.
    let seconds = a.time_budget.min(super::settings().plan_time_budget);
    let flags = [cancelled, &SHUTTING_DOWN];
    let budget = plan::deadline(seconds).map(|deadline| plan::Budget {
        deadline,
        seconds,
        cancelled: &flags,
    });
    budget.and_then(|b| plan::compute(a, &b)).map_err(|f| {
        let mut e = failure_to_error(&request::PLAN, &req.given)(f);
        // plan.rs refuses context and concurrency in one message ("--context and --concurrency
        // must each be at least 1"; "... (limit 2^24) or ... (limit 2^20) is absurd"): name the
        // one that is out of range.
        if e.status == StatusCode::BAD_REQUEST
            && e.error.contains("--context")
            && e.error.contains("--concurrency")
        {
            let context_bad = a.context == 0 || (a.concurrency != 0 && a.context > 1 << 24);
            e.field = Some(
                if context_bad {
                    "context"
                } else {
                    "concurrency"
                }
                .to_string(),
            );
        }
        e
    })
}

/// `POST /api/v1/fit`: the same JSON object as `vramplan fit --no-local --json` for the GPU the
/// body names (the server detects nothing and reads no local store). A search over the whole
/// catalogue, so it takes a plan slot and runs off the async workers.
pub async fn fit_handler(headers: HeaderMap, body: Body) -> Response {
    let value = match read_json(&headers, body).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let req = match request::FIT.parse(&value) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if req.args.gpu.is_none() {
        return ApiError::bad(Some("gpu"), "give gpu: the server does not detect GPUs")
            .into_response();
    }
    run_search("searches", "fit", move |_cancelled| fit_args_value(req)).await
}

fn fit_args_value(req: request::Request<crate::commands::fit::FitArgs>) -> Result<Value, ApiError> {
    let out = crate::commands::fit::compute(&req.args, false)
        .map_err(failure_to_error(&request::FIT, &req.given))?;
    serde_json::to_value(out)
        .map_err(|e| ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Anything else under any path: 404 with a JSON error.
pub async fn not_found() -> Response {
    ApiError::with_status(
        StatusCode::NOT_FOUND,
        "no such page or endpoint; the API is described at /api/v1/openapi.json",
    )
    .into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed here; see /api/v1/openapi.json",
    )
    .into_response()
}
