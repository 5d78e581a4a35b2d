//! The source-tracking headers of a write (CONTRACT §6) turned into event metadata.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

use crate::error::ApiError;
use crate::store::metadata::{client_uri, COLLECTION_METHODS};
use crate::store::CommandMetadata;

/// The request id every response carries and every event and access records.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted value of a provenance header; they are stored with every event.
const MAX_HEADER_LEN: usize = 256;

/// Provenance of the request, before the client is known.
pub struct Provenance {
    request_id: String,
    source_system: Option<String>,
    source_reference: Option<String>,
    collection_method: String,
}

impl Provenance {
    /// The provenance of work the server does for a client outside a request (a DCI
    /// asynchronous search), traced by `request_id`.
    pub fn internal(request_id: String) -> Self {
        Self {
            request_id,
            source_system: None,
            source_reference: None,
            collection_method: "api".to_owned(),
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The metadata every event of this request by `client_id` carries; `consent_id` is the
    /// consent the command relies on, if any.
    pub fn metadata(&self, client_id: &str, consent_id: Option<String>) -> CommandMetadata {
        CommandMetadata {
            client_id: client_id.to_owned(),
            source_system: self
                .source_system
                .clone()
                .unwrap_or_else(|| client_uri(client_id)),
            source_reference: self.source_reference.clone(),
            collection_method: self.collection_method.clone(),
            request_id: self.request_id.clone(),
            consent_id,
            consent_subject: None,
            consent_recipient: None,
        }
    }
}

fn header(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request(Some(name), "must be visible ASCII"))?
        .trim();
    if text.len() > MAX_HEADER_LEN {
        return Err(ApiError::bad_request(
            Some(name),
            format!("must be at most {MAX_HEADER_LEN} characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// `X-Source-System`. The API client URIs (`urn:openspp:api-client:…`) are the server's to
/// write: `meta.source` and every event's provenance name the client that really wrote, so no
/// client may claim another's (or its own) URI as its source system. URNs compare their `urn`
/// and namespace parts case-insensitively (RFC 8141), and so does this check.
fn source_system(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let value = header(headers, "x-source-system")?;
    let reserved = client_uri("");
    if value.as_deref().is_some_and(|v| {
        v.get(..reserved.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(&reserved))
    }) {
        return Err(ApiError::bad_request(
            Some("X-Source-System"),
            format!("{reserved}… names API clients and is written by the server only; name the source system"),
        ));
    }
    Ok(value)
}

impl<S: Send + Sync> FromRequestParts<S> for Provenance {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        let collection_method =
            header(headers, "x-collection-method")?.unwrap_or_else(|| "api".to_owned());
        if !COLLECTION_METHODS.contains(&collection_method.as_str()) {
            return Err(ApiError::bad_request(
                Some("X-Collection-Method"),
                format!("must be one of {}", COLLECTION_METHODS.join(", ")),
            ));
        }
        Ok(Self {
            request_id: headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            source_system: source_system(headers)?,
            source_reference: header(headers, "x-source-reference")?,
            collection_method,
        })
    }
}
