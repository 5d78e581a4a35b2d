//! `GET /metadata`: the capability statement (public), so integrators can discover what this
//! server offers before they have a token, including the extensions registered now.

use axum::extract::State;
use axum::Json;
use openspp_aggregates::ExtendedResource;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

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

/// FHIR's `CapabilityStatement`: what this server offers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityStatement {
    /// Always `CapabilityStatement`.
    pub resource_type: String,
    pub status: String,
    pub kind: String,
    pub software: Software,
    pub fhir_version: String,
    pub format: Vec<String>,
    pub rest: Vec<Rest>,
    /// The extensions in force: `url`, `name`, `module`, `applies_to`, `fields`, `schema`.
    pub extensions: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Software {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rest {
    pub mode: String,
    pub security: RestSecurity,
    pub resource: Vec<RestResource>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestSecurity {
    pub service: Vec<String>,
    pub token_endpoint: String,
    pub jwks: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestResource {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub interaction: Vec<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_update: Option<bool>,
    pub search_param: Vec<Named>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operation: Vec<Named>,
}

/// `{"code": …}` for interactions, `{"name": …}` for parameters and operations.
#[derive(Debug, Serialize, ToSchema)]
pub struct Named {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn codes(codes: &[&str]) -> Vec<Named> {
    codes
        .iter()
        .map(|code| Named {
            code: Some((*code).to_owned()),
            name: None,
        })
        .collect()
}

fn names<'a>(names: impl IntoIterator<Item = &'a &'a str>) -> Vec<Named> {
    names
        .into_iter()
        .map(|name| Named {
            code: None,
            name: Some((*name).to_owned()),
        })
        .collect()
}

/// A registrant resource: read, search, create and versioned update. Its search also takes
/// `_extensions`, and each property its registered extensions mark searchable
/// (`extension.farmer.farm_size`).
fn registrant(
    state: &AppState,
    resource: ExtendedResource,
    search: &[&str],
    operations: &[&str],
) -> RestResource {
    const SEARCH_COMMON: [&str; 5] = ["_lastUpdated", "_count", "_offset", "_sort", "_extensions"];
    let mut search_param = names(search.iter().chain(SEARCH_COMMON.iter()));
    search_param.extend(
        state
            .extensions
            .catalog()
            .search_parameters(resource)
            .into_iter()
            .map(|name| Named {
                code: None,
                name: Some(name),
            }),
    );
    RestResource {
        resource_type: resource.as_str().to_owned(),
        interaction: codes(&["read", "search-type", "create", "update"]),
        versioning: Some("versioned-update".to_owned()),
        conditional_update: Some(true),
        search_param,
        operation: names(operations),
    }
}

/// Resources, interactions and search parameters offered.
#[utoipa::path(get, path = "/metadata", tag = "Metadata",
    responses((status = 200, body = CapabilityStatement,
        description = "CapabilityStatement: resources, interactions, search parameters")))]
pub async fn capability_statement(State(state): State<AppState>) -> Json<CapabilityStatement> {
    Json(CapabilityStatement {
        resource_type: "CapabilityStatement".to_owned(),
        status: "active".to_owned(),
        kind: "instance".to_owned(),
        software: Software {
            name: "openspp-es".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        fhir_version: "4.0.1".to_owned(),
        format: vec!["application/json".to_owned()],
        rest: vec![Rest {
            mode: "server".to_owned(),
            security: RestSecurity {
                service: vec!["OAuth2 client credentials".to_owned()],
                token_endpoint: "/api/v2/spp/oauth/token".to_owned(),
                jwks: "/.well-known/jwks.json".to_owned(),
            },
            resource: vec![
                registrant(
                    &state,
                    ExtendedResource::Individual,
                    &[
                        "identifier",
                        "name",
                        "birthdate",
                        "gender",
                        "address",
                        "active",
                    ],
                    &[],
                ),
                registrant(
                    &state,
                    ExtendedResource::Group,
                    &["identifier", "name", "groupType", "active"],
                    &["add-member", "remove-member"],
                ),
                RestResource {
                    resource_type: "Vocabulary".to_owned(),
                    interaction: codes(&["read", "search-type"]),
                    versioning: None,
                    conditional_update: None,
                    search_param: names(&[
                        "domain",
                        "include_deprecated",
                        "parent_code",
                        "_count",
                        "_offset",
                    ]),
                    operation: Vec::new(),
                },
            ],
        }],
        extensions: extensions(&state),
    })
}
