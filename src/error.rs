//! Every error the API answers with, rendered as an OperationOutcome (CONTRACT §2).
//!
//! The body repeats the message as top-level `detail` so OpenSPP clients that read `{"detail": …}`
//! keep working. Nothing internal (SQL, stream ids, stack traces) ever reaches the body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API failure: status, OperationOutcome issue code, message, and the field it concerns.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// FHIR issue type (`invalid`, `not-found`, `conflict`, `security`, `forbidden`, `throttled`, …).
    pub code: &'static str,
    pub diagnostics: String,
    /// The request field at fault, as a FHIRPath-like expression (`birthDate`, `identifier[0].system`).
    pub expression: Option<String>,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`, `Allow` …).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            status,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            headers: Vec::new(),
        }
    }

    /// 400: the request's syntax is wrong (bad JSON, bad identifier, bad query parameter).
    pub fn bad_request(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message).at(field)
    }

    /// 422: well-formed but invalid content; `field` names where.
    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).at(Some(field))
    }

    /// 404 with one fixed text per resource type, so that "unknown" and "not allowed to know"
    /// give byte-identical answers.
    pub fn not_found(resource: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{resource} not found"),
        )
    }

    /// 403: the client is known but may not do this; `field` names what it may not touch.
    pub fn forbidden(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message).at(field)
    }

    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message).at(field)
    }

    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "conflict", message)
    }

    /// 500 for genuine faults: logged with the request id by the caller's span, never detailed here.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "internal error; quote the X-Request-Id of this response when reporting it",
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "transient", message)
    }

    /// A lookup that failed, as the refusal `refused` of the reference that named it; unless
    /// the server failed (5xx: the database unavailable …), which stays what it is, so that a
    /// passing failure is never answered as the request's fault (and an importer or client
    /// retries it instead of dropping a good row).
    pub fn or_refused(self, refused: impl FnOnce() -> Self) -> Self {
        if self.status.is_server_error() {
            self
        } else {
            refused()
        }
    }

    /// `other` in place of a not-found answer (the one for what the caller may not see), as
    /// when a body names what the caller may not see; other errors stay as they are.
    pub fn not_found_as(self, other: impl FnOnce() -> Self) -> Self {
        if self.status == StatusCode::NOT_FOUND {
            other()
        } else {
            self
        }
    }

    pub fn at(mut self, field: Option<&str>) -> Self {
        self.expression = field.map(str::to_owned);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// The text clients see: the field first, so a reader of `detail` alone knows where to look.
    pub fn detail(&self) -> String {
        match &self.expression {
            Some(field) if !self.diagnostics.starts_with(field.as_str()) => {
                format!("{field}: {}", self.diagnostics)
            }
            _ => self.diagnostics.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail())
    }
}

impl std::error::Error for ApiError {}

impl From<sqlx::Error> for ApiError {
    /// A database that cannot be reached, or that dropped or refused the connection, is a
    /// passing condition of the service, not a fault of the request: 503 with `Retry-After`,
    /// so that clients and load balancers retry. Anything else is a genuine fault (500).
    fn from(error: sqlx::Error) -> Self {
        // Searches have a budget of connections and a time limit (`view::limit_searches`):
        // over either, the search is refused, and the rest of the server carries on.
        if openspp_projections::view::SearchBusy::is(&error) {
            tracing::warn!("a search found no place in the search budget");
            return Self::unavailable("too many searches at once; retry shortly")
                .with_header(header::RETRY_AFTER, "1");
        }
        if is_cancelled(&error) {
            tracing::warn!(%error, "a statement ran past its time limit");
            return Self::unavailable(
                "the search ran past the server's time limit for searches; narrow it or retry \
                 shortly",
            )
            .with_header(header::RETRY_AFTER, "1");
        }
        if is_unavailable(&error) {
            tracing::warn!(%error, "database unavailable");
            return Self::unavailable("the database is unavailable; retry shortly")
                .with_header(header::RETRY_AFTER, "1");
        }
        tracing::error!(%error, "database error");
        Self::internal()
    }
}

/// Whether `error` is a statement cancelled by its `statement_timeout` (SQLSTATE 57014), as a
/// search over its time limit is.
fn is_cancelled(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

pub use openspp_projections::error::is_unavailable;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.detail();
        let mut issue = json!({
            "severity": "error",
            "code": self.code,
            "diagnostics": detail,
        });
        if let Some(field) = &self.expression {
            issue["expression"] = json!([field]);
        }
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [issue],
            "detail": detail,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_as_replaces_only_the_not_found_answer() {
        let unknown = || ApiError::unprocessable("program", "no such Program");
        let replaced = ApiError::not_found("Program").not_found_as(unknown);
        assert_eq!(replaced.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(replaced.expression.as_deref(), Some("program"));
        let kept = ApiError::unavailable("retry").not_found_as(unknown);
        assert_eq!(kept.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
