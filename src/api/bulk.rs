//! `$bulk/export` (CONTRACT §10), in OpenSPP's shape: a resource type and up to 100
//! identifiers in, one item per identifier out, each with its own status.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The most identifiers one export may name.
pub const MAX_IDENTIFIERS: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkExportRequest {
    /// `Individual` or `Group`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// 1 to 100 identifiers, each `system|value`.
    pub identifiers: Vec<String>,
    /// The top-level fields each resource shows (and those that identify it).
    #[serde(default)]
    pub elements: Option<Vec<String>>,
    /// `*`, or a comma-separated list of the extensions each resource shows.
    #[serde(default)]
    pub extensions: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkExportResponse {
    /// How many identifiers were asked for.
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    /// One per identifier, in the order asked.
    pub items: Vec<BulkExportItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkExportItem {
    pub identifier: String,
    /// `success`; `not_found` (a client under a legal basis); `access_denied` (a client bound
    /// by consent, for an unknown subject and an unconsented one alike); `error` (not
    /// `system|value`).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub resource: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
