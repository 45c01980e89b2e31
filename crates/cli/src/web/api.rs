//! The JSON API under `/api/v1`: models, GPUs, estimate, and the OpenAPI document.

use super::error::ApiError;
use super::{hf_config, openapi, request, BODY_LIMIT_BYTES};
use crate::commands::estimate::{compute, compute_with_model};
use crate::Failure;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
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
    match estimate_response(&headers, body).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn estimate_response(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
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
    let bytes = axum::body::to_bytes(body, BODY_LIMIT_BYTES)
        .await
        .map_err(|_| too_large())?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(None, format!("malformed JSON: {e}")))?;
    // The estimator is pure arithmetic on checked inputs; if a defect still panics, this request
    // gets a 500 and the server goes on serving the others.
    catch_unwind(AssertUnwindSafe(|| estimate_value(&value))).unwrap_or_else(|_| {
        Err(ApiError::with_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error while estimating (a bug: please report the request)",
        ))
    })
}

/// Parses a request body and computes its estimate.
pub fn estimate_value(body: &Value) -> Result<Value, ApiError> {
    let req = request::parse(body)?;
    let failure = |f: Failure| {
        if f.code == 2 {
            let field = request::field_named_in(&f.message, &req.given);
            ApiError::bad(field.as_deref(), f.message)
        } else {
            ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, f.message)
        }
    };
    match &req.config {
        Some(cfg) => {
            let model = hf_config::model_from_config(cfg)?;
            // The CLI's own steps for a model given as a description, engine profiles included.
            compute_with_model(&req.args, &model).map_err(failure)
        }
        None => {
            // Only catalogue names reach the estimator: a model given as a path is never opened.
            catalogue()
                .model(&req.args.model)
                .map_err(|e| ApiError::bad(Some("model"), e))?;
            compute(&req.args).map_err(failure)
        }
    }
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
