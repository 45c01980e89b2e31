//! The web calculator: one page and a JSON API, every asset compiled into the binary (the page
//! works with no network and loads nothing from elsewhere).

pub mod api;
pub mod error;
pub mod hf_config;
pub mod openapi;
pub mod request;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// Largest request body accepted (413 above). A config.json is a few KiB; 64 KiB leaves room for
/// long ones and keeps a hostile body cheap to refuse.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Only this server's own scripts, styles and API: no inline script, no third-party origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // The assets change only with the binary; revalidation is cheap on loopback.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route("/api/v1/models", get(api::models))
        .route("/api/v1/gpus", get(api::gpus))
        .route("/api/v1/estimate", post(api::estimate_handler))
        .route("/api/v1/plan", post(api::plan_handler))
        .route("/api/v1/fit", post(api::fit_handler))
        .route("/api/v1/openapi.json", get(api::openapi_json))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
}
