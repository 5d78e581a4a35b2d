//! Conditional requests: the version a writer says it is changing (`If-Match`), and the `ETag`
//! every single read and write answers with.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};

use crate::error::ApiError;

/// The version a writer says it is changing (`If-Match`); `None` means "the latest".
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(Self(None));
        }
        let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        // A tag this server never issued cannot be current.
        tag.parse::<u64>().map(|v| Self(Some(v))).map_err(|_| {
            ApiError::precondition_failed("If-Match does not name a version of this resource")
        })
    }
}

/// `ETag: "<versionId>"`.
pub fn etag(version: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}
