//! The HTTP conventions OpenSPP clients rely on, applied to every response in one layer
//! (CONTRACT §4a): `X-API-Version`; `X-RateLimit-Limit`, `-Remaining` and `-Reset` for a
//! request counted against a client's rate limit; and `If-None-Match` on a read answered `304
//! Not Modified` when the caller already holds the current version.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::auth::rate_limit::{Quota, QuotaSlot};

/// The API version OpenSPP's clients read from every response (OpenSPP sends `2.0.0`).
pub const API_VERSION: &str = "2.0.0";

/// What the conventions need from a request to finish its response: the slot its rate limit
/// is reported in, and the entity tags a conditional read holds.
pub struct Conventions {
    slot: QuotaSlot,
    conditional: Option<HeaderValue>,
}

impl Conventions {
    /// Takes what `finish` needs from `request`, and gives it its quota slot.
    pub fn of(request: &mut Request) -> Self {
        let slot = QuotaSlot::default();
        request.extensions_mut().insert(slot.clone());
        let conditional = matches!(*request.method(), Method::GET | Method::HEAD)
            .then(|| request.headers().get(header::IF_NONE_MATCH).cloned())
            .flatten();
        Self { slot, conditional }
    }

    /// The response with the conventions' headers, or the 304 a conditional read earned.
    pub fn finish(self, mut response: Response) -> Response {
        if let Some(tags) = self.conditional {
            if response.status() == StatusCode::OK && matches_etag(&tags, response.headers()) {
                response = not_modified(response);
            }
        }
        let headers = response.headers_mut();
        headers.insert("x-api-version", HeaderValue::from_static(API_VERSION));
        if let Some(quota) = self.slot.get() {
            rate_limit_headers(headers, quota);
        }
        response
    }
}

fn rate_limit_headers(headers: &mut HeaderMap, quota: Quota) {
    let reset = chrono::Utc::now().timestamp() + i64::from(quota.reset_in);
    for (name, value) in [
        ("x-ratelimit-limit", i64::from(quota.limit)),
        ("x-ratelimit-remaining", i64::from(quota.remaining)),
        ("x-ratelimit-reset", reset),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

/// Whether `If-None-Match` (`*`, or a list of entity tags, weak or strong: RFC 9110 §13.1.2
/// compares them weakly) names the response's `ETag`.
fn matches_etag(if_none_match: &HeaderValue, headers: &HeaderMap) -> bool {
    let Some(current) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Ok(tags) = if_none_match.to_str() else {
        return false;
    };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    tags.split(',')
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(current))
}

/// The 304 for a 200: no body, and of its headers those RFC 9110 §15.4.5 keeps (the consent
/// headers too, which say under what the held copy may be used).
fn not_modified(response: Response) -> Response {
    let (parts, _) = response.into_parts();
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::NOT_MODIFIED;
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let current = etag("\"5\"");
        for held in ["\"5\"", "W/\"5\"", "\"3\", \"5\"", "*"] {
            assert!(
                matches_etag(&HeaderValue::from_static(held), &current),
                "{held}"
            );
        }
        for held in ["\"4\"", "\"55\"", "5x"] {
            assert!(
                !matches_etag(&HeaderValue::from_static(held), &current),
                "{held}"
            );
        }
        assert!(!matches_etag(
            &HeaderValue::from_static("*"),
            &HeaderMap::new()
        ));
    }
}
