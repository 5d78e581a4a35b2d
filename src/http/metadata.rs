//! `GET /metadata` (public), so integrators can discover what this server offers before they
//! have a token, including the extensions registered now: OpenSPP's `ApiMetadata` by default,
//! FHIR's `CapabilityStatement` to `Accept: application/fhir+json` (CONTRACT §4a). Both are
//! built from one list of resources, whose search parameters come from
//! `api::search_params`, the table the searches' own filter metadata is built from.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use openspp_aggregates::ExtendedResource;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::search_params::{self, Param};
use crate::app::AppState;
use crate::http::conventions::API_VERSION;

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
    /// System-wide interactions: `transaction` and `batch` (`POST /$batch`).
    pub interaction: Vec<Named>,
    /// System-wide operations: `bulk-export` (`POST /$bulk/export`).
    pub operation: Vec<Named>,
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

/// One resource this server offers: its operations (OpenSPP's names) and search parameters.
struct Offered {
    name: &'static str,
    operations: &'static [&'static str],
    /// FHIR's names of the same interactions.
    interactions: &'static [&'static str],
    search_params: Vec<String>,
    /// Named operations (`$add-member`), FHIR's `operation`.
    named: &'static [&'static str],
    versioned: bool,
}

const HISTORY: [&str; 2] = ["history-instance", "vread"];

fn names_of(params: &[Param]) -> Vec<String> {
    params.iter().map(|p| p.name.to_owned()).collect()
}

/// Every resource, with the parameters its search takes: the core's from
/// `search_params`, plus paging, `_extensions` and registered extensions' parameters.
fn offered(state: &AppState) -> Vec<Offered> {
    let core = |params: &[Param], extended: Option<ExtendedResource>| {
        let mut names = names_of(params);
        names.extend(search_params::CONTROL.iter().map(|p| (*p).to_owned()));
        if let Some(resource) = extended {
            names.push("_extensions".to_owned());
            names.extend(state.extensions.catalog().search_parameters(resource));
        }
        names
    };
    // OpenSPP's delivery searches page by `_count` and `_offset` and take `_elements`.
    let delivery = |params: &[Param]| {
        let mut names = names_of(params);
        names.extend(["_count", "_offset", "_elements"].map(str::to_owned));
        names
    };
    vec![
        Offered {
            name: "Individual",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: core(
                search_params::INDIVIDUAL,
                Some(ExtendedResource::Individual),
            ),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "Group",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: core(search_params::GROUP, Some(ExtendedResource::Group)),
            named: &["add-member", "remove-member", "merge", "split"],
            versioned: true,
        },
        Offered {
            name: "Program",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: core(search_params::PROGRAM, None)
                .into_iter()
                .chain(["_lastId".to_owned()])
                .collect(),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "ProgramMembership",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: core(search_params::PROGRAM_MEMBERSHIP, None),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "Cycle",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: delivery(search_params::CYCLE),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "Entitlement",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: delivery(search_params::ENTITLEMENT),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "Product",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: delivery(search_params::PRODUCT),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "ProductCategory",
            operations: &["read", "search"],
            interactions: &["read", "search-type"],
            search_params: ["name", "_count", "_offset"].map(str::to_owned).to_vec(),
            named: &[],
            versioned: false,
        },
        Offered {
            name: "UnitOfMeasure",
            operations: &["read", "search"],
            interactions: &["read", "search-type"],
            search_params: ["name", "category", "_count", "_offset"]
                .map(str::to_owned)
                .to_vec(),
            named: &[],
            versioned: false,
        },
        Offered {
            name: "ServicePoint",
            operations: &["read", "search", "create", "update", "history"],
            interactions: &["read", "search-type", "create", "update"],
            search_params: delivery(search_params::SERVICE_POINT),
            named: &[],
            versioned: true,
        },
        Offered {
            name: "Consent",
            operations: &[
                "read",
                "search",
                "create",
                "delete",
                "revoke",
                "renew",
                "receipt",
                "history",
                "access-summary",
            ],
            interactions: &["read", "search-type", "create", "delete"],
            search_params: names_of(search_params::CONSENT),
            named: &["revoke", "renew", "receipt", "history", "access-summary"],
            versioned: true,
        },
        Offered {
            name: "AuditEvent",
            operations: &["search"],
            interactions: &["search-type"],
            search_params: names_of(search_params::AUDIT_EVENT),
            named: &[],
            versioned: false,
        },
        Offered {
            name: "Vocabulary",
            operations: &["read", "search"],
            interactions: &["read", "search-type"],
            search_params: [
                "domain",
                "include_deprecated",
                "parent_code",
                "_count",
                "_offset",
            ]
            .map(str::to_owned)
            .to_vec(),
            named: &[],
            versioned: false,
        },
        // OpenSPP's aggregation API (scope `aggregation:read`), from the statistics engine.
        Offered {
            name: "Aggregation",
            operations: &["compute", "dimensions"],
            interactions: &[],
            search_params: vec!["applies_to".to_owned()],
            named: &["compute", "dimensions"],
            versioned: false,
        },
        // GraphQL for analysts (CONTRACT §7) at /api/v2/graphql, subscriptions at
        // /api/v2/graphql/ws; its types are in the schema the endpoint serves.
        Offered {
            name: "GraphQL",
            operations: &["query", "subscription"],
            interactions: &[],
            search_params: Vec::new(),
            named: &["query", "subscription"],
            versioned: false,
        },
    ]
}

/// OpenSPP's `ResourceMetadata`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceMetadata {
    pub operations: Vec<String>,
    pub search_params: Vec<String>,
}

/// OpenSPP's `AuthenticationMetadata`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticationMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub token_endpoint: String,
    pub grant_types: Vec<String>,
    /// The public keys tokens are signed with (beyond OpenSPP, whose tokens are HS256).
    pub jwks_uri: String,
}

/// OpenSPP's `ApiMetadata`: name, version, every resource with its operations and search
/// parameters, the extensions in force, authentication and the documentation page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiMetadata {
    pub name: String,
    /// The API's version (also `X-API-Version`).
    pub version: String,
    /// This server's own version.
    pub server_version: String,
    pub resources: BTreeMap<String, ResourceMetadata>,
    /// The extensions in force: `url`, `name`, `module`, `applies_to`, `fields`, `searchable`,
    /// `schema`.
    pub extensions: Vec<Value>,
    pub authentication: AuthenticationMetadata,
    pub docs: String,
    /// **Beyond OpenSPP**: where GraphQL is served (CONTRACT §7).
    pub graphql: GraphqlMetadata,
}

/// Where GraphQL is served: queries (and the explorer), and subscriptions over WebSocket.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphqlMetadata {
    pub endpoint: String,
    pub subscriptions: String,
    /// The WebSocket subprotocol subscriptions speak (`graphql-transport-ws`).
    pub protocol: String,
}

fn api_metadata(state: &AppState) -> ApiMetadata {
    ApiMetadata {
        name: "OpenSPP API".to_owned(),
        version: API_VERSION.to_owned(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        resources: offered(state)
            .into_iter()
            .map(|r| {
                (
                    r.name.to_owned(),
                    ResourceMetadata {
                        operations: r.operations.iter().map(|o| (*o).to_owned()).collect(),
                        search_params: r.search_params,
                    },
                )
            })
            .collect(),
        extensions: extensions(state),
        authentication: AuthenticationMetadata {
            kind: "oauth2".to_owned(),
            token_endpoint: "/api/v2/spp/oauth/token".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            jwks_uri: "/.well-known/jwks.json".to_owned(),
        },
        docs: "/api/v2/spp/docs".to_owned(),
        graphql: GraphqlMetadata {
            endpoint: crate::graphql::PATH.to_owned(),
            subscriptions: crate::graphql::WS_PATH.to_owned(),
            protocol: "graphql-transport-ws".to_owned(),
        },
    }
}

fn capability(state: &AppState) -> CapabilityStatement {
    CapabilityStatement {
        resource_type: "CapabilityStatement".to_owned(),
        status: "active".to_owned(),
        kind: "instance".to_owned(),
        software: Software {
            name: "openspp-es".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        fhir_version: "4.0.1".to_owned(),
        format: vec!["application/json".to_owned(), FHIR_JSON.to_owned()],
        rest: vec![Rest {
            mode: "server".to_owned(),
            security: RestSecurity {
                service: vec!["OAuth2 client credentials".to_owned()],
                token_endpoint: "/api/v2/spp/oauth/token".to_owned(),
                jwks: "/.well-known/jwks.json".to_owned(),
            },
            resource: offered(state)
                .into_iter()
                .map(|r| {
                    let mut interaction = codes(r.interactions);
                    if r.versioned {
                        interaction.extend(codes(&HISTORY));
                    }
                    RestResource {
                        resource_type: r.name.to_owned(),
                        interaction,
                        versioning: r.versioned.then(|| "versioned-update".to_owned()),
                        conditional_update: r.versioned.then_some(true),
                        search_param: r
                            .search_params
                            .into_iter()
                            .map(|name| Named {
                                code: None,
                                name: Some(name),
                            })
                            .collect(),
                        operation: names(r.named),
                    }
                })
                .collect(),
            interaction: codes(&["transaction", "batch"]),
            operation: names(&["bulk-export"]),
        }],
        extensions: extensions(state),
    }
}

const FHIR_JSON: &str = "application/fhir+json";

/// What this server offers: OpenSPP's `ApiMetadata`, or FHIR's `CapabilityStatement` to a
/// client that asks for `application/fhir+json`.
#[utoipa::path(get, path = "/metadata", tag = "Metadata",
    responses((status = 200, description = "OpenSPP's ApiMetadata; the FHIR CapabilityStatement to `Accept: application/fhir+json`",
        content((ApiMetadata = "application/json"), (CapabilityStatement = "application/fhir+json")))))]
pub async fn capability_statement(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let fhir = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.to_ascii_lowercase().contains(FHIR_JSON));
    if fhir {
        (
            [(header::CONTENT_TYPE, FHIR_JSON)],
            Json(capability(&state)),
        )
            .into_response()
    } else {
        Json(api_metadata(&state)).into_response()
    }
}
