//! The `$batch` Bundle (CONTRACT §10), FHIR-style: a request Bundle of entries, each a request
//! (`method`, relative `url`, optional `ifMatch`) with its resource, and the response Bundle
//! with one entry per request entry, in order.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The most entries one Bundle may carry.
pub const MAX_ENTRIES: usize = 1_000;

/// A `transaction` (all or nothing) or `batch` (each on its own) Bundle.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchBundle {
    /// Always `Bundle`.
    pub resource_type: String,
    /// `transaction` or `batch`.
    #[serde(rename = "type")]
    pub bundle_type: String,
    /// A client's own id for the Bundle; not kept.
    #[serde(default)]
    pub id: Option<String>,
    /// At most 1 000 entries.
    #[serde(default)]
    pub entry: Vec<BatchEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchEntry {
    /// `urn:uuid:…`: how later entries of a transaction refer to what this one creates (as a
    /// reference, or in their `url`).
    #[serde(default)]
    pub full_url: Option<String>,
    /// The request body, exactly as the route alone takes it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub resource: Option<Value>,
    pub request: EntryRequest,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryRequest {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Relative to the API base: `Individual`, `Group/{system}|{value}/$add-member`, …
    pub url: String,
    /// The `If-Match` the request alone would carry (`"3"` or `W/"3"`).
    #[serde(default)]
    pub if_match: Option<String>,
}

/// The answer: `transaction-response` or `batch-response`, one entry per request entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// Always `Bundle`.
    pub resource_type: &'static str,
    #[serde(rename = "type")]
    pub bundle_type: &'static str,
    pub entry: Vec<ResponseEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseEntry {
    /// The request entry's `fullUrl`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    /// The resource the request alone would have answered with (2xx only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub resource: Option<Value>,
    pub response: EntryResponse,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryResponse {
    /// The status code and its phrase (`201 Created`).
    pub status: String,
    /// The `Location` the request alone would have answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The `ETag` the request alone would have answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// When the resource was last changed (a transaction's: when it committed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The OperationOutcome of a failed entry, or of one whose answer was too long to carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<Value>,
}
