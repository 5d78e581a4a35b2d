//! GraphQL's HTTP shapes, for the OpenAPI document only: the server reads and writes them with
//! async-graphql (CONTRACT §7), and the schema of the queries themselves is `schema.graphql`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A GraphQL request: GraphQL over HTTP's JSON body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct GraphqlRequest {
    /// The query document (see `schema.graphql`).
    pub query: Option<String>,
    pub operation_name: Option<String>,
    pub variables: Option<BTreeMap<String, Value>>,
}

/// A GraphQL response: `data`, and `errors` each with `extensions.status` (REST's status for
/// the same refusal) and `extensions.field` where one field is at fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphqlResponse {
    pub data: Option<Value>,
    pub errors: Option<Vec<Value>>,
}
