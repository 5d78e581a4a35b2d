//! `GET /metadata`: the capability statement (public), so integrators can discover what this
//! server offers before they have a token, including the extensions registered now.

use axum::extract::State;
use axum::Json;
use openspp_aggregates::ExtendedResource;
use serde_json::{json, Value};

use crate::app::AppState;

/// The extensions in force, as OpenSPP's `ApiMetadata.extensions` lists them (`url`, `module`,
/// `applies_to`, `fields`), with the JSON Schema their data must satisfy.
fn extensions(state: &AppState) -> Vec<Value> {
    state
        .extensions
        .catalog()
        .active()
        .map(|e| {
            json!({
                "url": e.uri,
                "name": e.definition.name,
                "module": e.definition.name,
                "applies_to": e.definition.resources.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "fields": e.fields(),
                "searchable": e.searchable.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                "schema": e.definition.schema,
            })
        })
        .collect()
}

/// Resources, interactions and search parameters offered.
#[utoipa::path(get, path = "/metadata", tag = "Metadata",
    responses((status = 200, description = "CapabilityStatement: resources, interactions, search parameters")))]
pub async fn capability_statement(State(state): State<AppState>) -> Json<Value> {
    let search_common = ["_lastUpdated", "_count", "_offset", "_sort"];
    let params = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .chain(search_common.iter())
            .map(|name| json!({"name": name}))
            .collect()
    };
    // A registrant's search also takes `_extensions`, and each property its extensions mark
    // searchable (`extension.farmer.farm_size`).
    let catalog = state.extensions.catalog();
    let extended = |names: &[&str], resource: ExtendedResource| -> Vec<Value> {
        let mut all = params(names);
        all.push(json!({"name": "_extensions"}));
        all.extend(
            catalog
                .search_parameters(resource)
                .into_iter()
                .map(|name| json!({"name": name})),
        );
        all
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
                    "searchParam": extended(&["identifier", "name", "birthdate", "gender", "address", "active"], ExtendedResource::Individual)
                },
                {
                    "type": "Group",
                    "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}, {"code": "update"}],
                    "versioning": "versioned-update",
                    "conditionalUpdate": true,
                    "searchParam": extended(&["identifier", "name", "groupType", "active"], ExtendedResource::Group),
                    "operation": [{"name": "add-member"}, {"name": "remove-member"}]
                },
                {
                    "type": "Vocabulary",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [{"name": "domain"}, {"name": "include_deprecated"},
                                    {"name": "parent_code"}, {"name": "_count"}, {"name": "_offset"}]
                }
            ]
        }],
        "extensions": extensions(&state)
    }))
}
