//! The API's error answer: a status and `{"error": "...", "field": "..." | null}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// One line, in the same words the CLI uses.
    pub error: String,
    /// The request field the error is about (`config.hidden_size` inside a pasted config).
    pub field: Option<String>,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad(field: Option<&str>, error: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: one_line(error.into()),
            field: field.map(str::to_owned),
        }
    }

    pub fn with_status(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: one_line(error.into()),
            field: None,
        }
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({ "error": self.error, "field": self.field })),
        )
            .into_response()
    }
}
