//! DCI envelopes: `{signature, header, message}` in, the ACK / ERR `Response` and callback
//! envelopes out, and the errors a request can get (CONTRACT §9, standards §2.2).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::dci::schema::violation;
use crate::error::ApiError;

/// The protocol version this server speaks.
pub const VERSION: &str = "1.0.0";

/// Requests one message may batch (`search_request`, `subscribe_request`, codes).
pub const MAX_BATCH: usize = 100;

/// Now, as the spec writes instants (RFC 3339, UTC, `Z`).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A fresh id for a message or a correlation (a UUID: unique, well under 99 characters).
pub fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A request refused as a whole: answered with the spec's `Response` (`ack_status: ERR` and an
/// `err.*` code) for a bad message, or its `HttpErrorResponse` for authentication and scopes.
#[derive(Debug)]
pub struct DciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl DciError {
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "err.request.bad", message)
    }

    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > 999 {
            let mut end = 996;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self {
            status,
            code,
            message,
        }
    }
}

/// An application-layer refusal (no token, no scope, database fault) in DCI terms.
impl From<ApiError> for DciError {
    fn from(error: ApiError) -> Self {
        let code = match error.status {
            StatusCode::UNAUTHORIZED => "err.request.unauthorized",
            StatusCode::FORBIDDEN => "err.request.forbidden",
            StatusCode::NOT_FOUND => "err.request.not_found",
            StatusCode::TOO_MANY_REQUESTS => "err.request.too_many_requests",
            StatusCode::SERVICE_UNAVAILABLE => "err.service.unavailable",
            status if status.is_server_error() => "err.service.unavailable",
            _ => "err.request.bad",
        };
        Self::new(error.status, code, error.diagnostics)
    }
}

impl IntoResponse for DciError {
    fn into_response(self) -> Response {
        let body = match self.status {
            // The spec's HTTP-layer error body for these statuses.
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                json!({"errors": [{"code": self.code, "message": self.message}]})
            }
            _ => json!({"message": {
                "ack_status": "ERR",
                "timestamp": now(),
                "correlation_id": fresh_id(),
                "error": {"code": self.code, "message": self.message},
            }}),
        };
        (self.status, Json(body)).into_response()
    }
}

/// The ACK of an accepted asynchronous request: the callback will follow.
pub fn ack(correlation_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"message": {
            "ack_status": "ACK",
            "timestamp": now(),
            "correlation_id": correlation_id,
        }})),
    )
        .into_response()
}

/// A request envelope whose header and message satisfy the spec.
pub struct Incoming {
    pub signature: Option<String>,
    pub header: Value,
    pub message: Value,
}

impl Incoming {
    /// Parses `body` and checks its header (and `action`) and its message against the spec's
    /// schema `message_schema`.
    pub fn parse(body: &[u8], action: &str, message_schema: &str) -> Result<Self, DciError> {
        let envelope: Value = serde_json::from_slice(body)
            .map_err(|e| DciError::bad(format!("the body is not JSON: {e}")))?;
        let Value::Object(mut envelope) = envelope else {
            return Err(DciError::bad("the body must be a JSON object"));
        };
        let header = envelope
            .remove("header")
            .ok_or_else(|| DciError::bad("header: required"))?;
        let message = envelope
            .remove("message")
            .ok_or_else(|| DciError::bad("message: required"))?;
        let signature = match envelope.remove("signature") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(DciError::new(
                    StatusCode::BAD_REQUEST,
                    "err.signature.invalid",
                    "signature: must be a string",
                ))
            }
        };
        if let Some(found) = violation("MsgHeader_V1.0.0", "header", &header) {
            return Err(DciError::bad(found));
        }
        if header["action"] != action {
            return Err(DciError::bad(format!(
                "header/action: must be `{action}` on this endpoint (rjct.action.invalid)"
            )));
        }
        if let Some(version) = header.get("version") {
            if version != VERSION {
                return Err(DciError::new(
                    StatusCode::BAD_REQUEST,
                    "err.version.not_supported",
                    format!("header/version: only {VERSION} is supported"),
                ));
            }
        }
        if header["is_msg_encrypted"] == true {
            return Err(DciError::new(
                StatusCode::BAD_REQUEST,
                "err.encryption.invalid",
                "header/is_msg_encrypted: encrypted messages are not supported; send the message \
                 in clear over TLS",
            ));
        }
        if header["sender_id"].as_str().is_some_and(str::is_empty) {
            return Err(DciError::new(
                StatusCode::BAD_REQUEST,
                "err.sender_id.invalid",
                "header/sender_id: must not be empty",
            ));
        }
        if header["total_count"].as_i64().is_some_and(|n| n < 0) {
            return Err(DciError::bad(
                "header/total_count: must not be negative (rjct.total_count.invalid)",
            ));
        }
        if let Some(found) = violation(message_schema, "message", &message) {
            return Err(DciError::bad(found));
        }
        Ok(Self {
            signature,
            header,
            message,
        })
    }

    pub fn sender_id(&self) -> &str {
        self.header["sender_id"].as_str().unwrap_or_default()
    }

    pub fn transaction_id(&self) -> &str {
        self.message["transaction_id"].as_str().unwrap_or_default()
    }
}

/// The header of an envelope this server sends (`MsgCallbackHeader`).
pub fn callback_header(
    registry_id: &str,
    action: &str,
    status: &str,
    receiver_id: &str,
    total: usize,
    completed: usize,
) -> Value {
    json!({
        "version": VERSION,
        "message_id": fresh_id(),
        "message_ts": now(),
        "action": action,
        "status": status,
        "total_count": total,
        "completed_count": completed,
        "sender_id": registry_id,
        "receiver_id": receiver_id,
        "is_msg_encrypted": false,
    })
}

/// A `SearchResponse` message whose every item answers a request of `request[list]` alike:
/// `status` at `timestamp` (with `reason`, if any). For a transaction still waiting, or
/// refused as a whole.
pub fn uniform_response(
    request: &Value,
    list: &str,
    correlation_id: &str,
    timestamp: &str,
    status: &str,
    reason: Option<&str>,
) -> Value {
    let items: Vec<Value> = request[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let mut response = json!({
                "reference_id": item["reference_id"],
                "timestamp": timestamp,
                "status": status,
            });
            if let Some(reason) = reason {
                response["status_reason_message"] = json!(reason);
            }
            response
        })
        .collect();
    json!({
        "transaction_id": request["transaction_id"],
        "correlation_id": correlation_id,
        "search_response": items,
    })
}

/// Items of `list` (a batch), which the schema has made an array.
pub fn batch<'a>(message: &'a Value, list: &str) -> Result<&'a [Value], DciError> {
    let items = message[list]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if items.is_empty() {
        return Err(DciError::bad(format!("message/{list}: must not be empty")));
    }
    if items.len() > MAX_BATCH {
        return Err(DciError::bad(format!(
            "message/{list}: at most {MAX_BATCH} requests per message \
             (rjct.total_count.limit_exceeded)"
        )));
    }
    Ok(items)
}
