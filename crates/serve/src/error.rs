//! Errors as OpenAI's API writes them: an HTTP status and
//! `{"error": {"message", "type", "param", "code"}}`, so clients show the message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One failed request: the status, OpenAI's error `type`, the request field at fault
/// (`param`) and a short machine-readable `code`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status (400, 401, 404, 413, 503, 500).
    pub status: StatusCode,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `server_error`.
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A short code (`invalid_type`, `context_length_exceeded`, `server_busy` …).
    pub code: Option<&'static str>,
    /// Seconds a client should wait before retrying (503 only).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// 400 `invalid_request_error` about field `param`.
    pub fn invalid(param: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: Some(code),
            retry_after_s: None,
        }
    }

    /// 401: missing or wrong `Authorization: Bearer` key.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or incorrect API key: send the server's --api-key as `Authorization: Bearer KEY`".into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
            retry_after_s: None,
        }
    }

    /// 503 with `Retry-After`: every worker is busy and the queue is full.
    pub fn busy(retry_after_s: u64) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is busy (all workers decoding and the queue is full): retry later"
                .into(),
            kind: "server_error",
            param: None,
            code: Some("server_busy"),
            retry_after_s: Some(retry_after_s),
        }
    }

    /// 500: generation failed inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
            retry_after_s: None,
        }
    }

    /// A status other than the above (404, 405, 413, 408), as an invalid request.
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            ..ApiError::invalid(None, code, message)
        }
    }

    /// The JSON body OpenAI's clients parse.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}
