//! The web calculator: one page and a JSON API, every asset compiled into the binary (the page
//! works with no network and loads nothing from elsewhere).

pub mod api;
pub mod error;
pub mod hf_config;
pub mod openapi;
pub mod request;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::OnceLock;
use std::time::Duration;

/// What `vramplan serve`'s flags set for the handlers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest a client may take to send a request body.
    pub body_timeout: Duration,
    /// Longest a plan search may run (a request may ask for less).
    pub plan_time_budget: f64,
    /// Host names answered besides IP literals and `localhost` (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// The one origin allowed to call the API from its pages (CORS), if any.
    pub cors: Option<HeaderValue>,
    /// Whether `model` may name a Hugging Face repository, read server-side from the
    /// configured endpoint (`serve --no-hub` turns this off).
    pub hub: bool,
    /// Seconds one request's Hub reads may take in all.
    pub hub_timeout: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            body_timeout: Duration::from_secs(10),
            plan_time_budget: 10.0,
            allowed_hosts: Vec::new(),
            cors: None,
            hub: true,
            hub_timeout: 30.0,
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the server's settings (once, before serving).
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

/// Whether a Host header names this server: an IP address (a DNS-rebinding attack needs a
/// name), `localhost`, or a name given with `--allowed-host`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Refuses (403) a request whose Host is not this server's (see [`host_allowed`]).
async fn check_host(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if host_allowed(host, &settings().allowed_hosts) {
        return next.run(req).await;
    }
    error::ApiError::with_status(
        StatusCode::FORBIDDEN,
        format!(
            "Host '{}' is not this server's name; start it with --allowed-host NAME to answer to a name",
            request::clip(host)
        ),
    )
    .into_response()
}

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
    let router = Router::new()
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
        .method_not_allowed_fallback(api::method_not_allowed);
    // No CORS headers at all unless --cors names an origin: browsers then refuse other sites'
    // pages the answers.
    let router = match &settings().cors {
        Some(origin) => router.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origin.clone())
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE]),
        ),
        None => router,
    };
    router.layer(axum::middleware::from_fn(check_host))
}
