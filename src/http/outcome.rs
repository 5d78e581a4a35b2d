//! Every error answer is an OperationOutcome (CONTRACT §2), including those the framework
//! writes itself in plain text before a handler runs: a method the route does not have (405),
//! a path that is not UTF-8 (400), a raw body over the limit (413). Rewriting them in one place
//! keeps handlers free of framework special cases.

use axum::body::{to_bytes, Body};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The framework's texts are one line; anything longer is not one of them.
const MAX_TEXT: usize = 1024;

pub async fn framework_errors_as_outcomes(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_TEXT)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "not-supported",
        StatusCode::PAYLOAD_TOO_LARGE => "too-long",
        StatusCode::NOT_FOUND => "not-found",
        s if s.is_server_error() => "exception",
        _ => "invalid",
    };
    let outcome = ApiError::new(status, code, text).into_response();
    let (outcome_parts, outcome_body) = outcome.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &outcome_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, Body::new(outcome_body))
}
