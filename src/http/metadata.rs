//! `GET /metadata`: the capability statement (public), so integrators can discover what this
//! server offers before they have a token.

use axum::Json;
use serde_json::{json, Value};

/// Resources, interactions and search parameters offered.
#[utoipa::path(get, path = "/metadata", tag = "Metadata",
    responses((status = 200, description = "CapabilityStatement: resources, interactions, search parameters")))]
pub async fn capability_statement() -> Json<Value> {
    let search_common = ["_lastUpdated", "_count", "_offset", "_sort"];
    let params = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .chain(search_common.iter())
            .map(|name| json!({"name": name}))
            .collect()
    };
    Json(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "software": {"name": "openspp-es", "version": env!("CARGO_PKG_VERSION")},
        "fhirVersion": "4.0.1",
        "format": ["application/json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": ["OAuth2 client credentials"],
                "tokenEndpoint": "/api/v2/spp/oauth/token",
                "jwks": "/.well-known/jwks.json"
            },
            "resource": [
                {
                    "type": "Individual",
                    "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}, {"code": "update"}],
                    "versioning": "versioned-update",
                    "conditionalUpdate": true,
                    "searchParam": params(&["identifier", "name", "birthdate", "gender", "address", "active"])
                },
                {
                    "type": "Group",
                    "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}, {"code": "update"}],
                    "versioning": "versioned-update",
                    "conditionalUpdate": true,
                    "searchParam": params(&["identifier", "name", "groupType", "active"]),
                    "operation": [{"name": "add-member"}, {"name": "remove-member"}]
                }
            ]
        }]
    }))
}
