//! OpenSPP's filter framework on the four core searches: `GET /{Resource}/_filters` describes
//! the filters and presets each search takes, from the same table `/metadata` lists
//! (`api::search_params`); `POST /{Resource}/_search` runs an advanced search with them
//! (`api::advanced_search`, `resource::advanced_search`). Both need the resource's search scope
//! (`:read` grants it), as the search itself does.

use axum::extract::OriginalUri;
use axum::Json;
use openspp_aggregates::{Group, Individual, Program, ProgramMembership};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::advanced_search::{SearchBundle, SearchRequest};
use crate::api::json::ApiJson;
use crate::api::schema::OperationOutcome;
use crate::api::search_params::{self, filter_metadata, FilterMetadataResponse, Param, Preset};
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::resource::{self, Call};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(individual))
        .routes(routes!(group))
        .routes(routes!(program))
        .routes(routes!(program_membership))
        .routes(routes!(search_individuals))
        .routes(routes!(search_groups))
        .routes(routes!(search_programs))
        .routes(routes!(search_program_memberships))
}

fn describe(
    principal: &Principal,
    scope: &str,
    resource: &str,
    params: &[Param],
    presets: &[Preset],
) -> Result<Json<FilterMetadataResponse>, ApiError> {
    principal.require(scope, Action::Search)?;
    Ok(Json(filter_metadata(resource, params, presets)))
}

/// The filters `GET /Individual` takes.
#[utoipa::path(get, path = "/Individual/_filters", tag = "Individual",
    responses((status = 200, body = FilterMetadataResponse), (status = 403, body = OperationOutcome)),
    security(("bearer" = ["individual:search"])))]
async fn individual(principal: Principal) -> Result<Json<FilterMetadataResponse>, ApiError> {
    describe(
        &principal,
        "individual",
        "Individual",
        search_params::INDIVIDUAL,
        search_params::INDIVIDUAL_PRESETS,
    )
}

/// The filters `GET /Group` takes.
#[utoipa::path(get, path = "/Group/_filters", tag = "Group",
    responses((status = 200, body = FilterMetadataResponse), (status = 403, body = OperationOutcome)),
    security(("bearer" = ["group:search"])))]
async fn group(principal: Principal) -> Result<Json<FilterMetadataResponse>, ApiError> {
    describe(
        &principal,
        "group",
        "Group",
        search_params::GROUP,
        search_params::GROUP_PRESETS,
    )
}

/// The filters `GET /Program` takes.
#[utoipa::path(get, path = "/Program/_filters", tag = "Program",
    responses((status = 200, body = FilterMetadataResponse), (status = 403, body = OperationOutcome)),
    security(("bearer" = ["program:search"])))]
async fn program(principal: Principal) -> Result<Json<FilterMetadataResponse>, ApiError> {
    describe(
        &principal,
        "program",
        "Program",
        search_params::PROGRAM,
        search_params::PROGRAM_PRESETS,
    )
}

/// The filters `GET /ProgramMembership` takes.
#[utoipa::path(get, path = "/ProgramMembership/_filters", tag = "ProgramMembership",
    responses((status = 200, body = FilterMetadataResponse), (status = 403, body = OperationOutcome)),
    security(("bearer" = ["program_membership:search"])))]
async fn program_membership(
    principal: Principal,
) -> Result<Json<FilterMetadataResponse>, ApiError> {
    describe(
        &principal,
        "program_membership",
        "ProgramMembership",
        search_params::PROGRAM_MEMBERSHIP,
        search_params::PROGRAM_MEMBERSHIP_PRESETS,
    )
}

/// Advanced search of individuals: conditions joined by AND and OR, presets, sort and paging
/// (OpenSPP's `SearchRequest`), answered as a `searchset` Bundle.
#[utoipa::path(post, path = "/Individual/_search", tag = "Individual", request_body = SearchRequest,
    params(
        ("_count" = Option<i64>, Query, description = "1-100; takes precedence over `pagination.count`"),
        ("_offset" = Option<i64>, Query, description = "Takes precedence over `pagination.offset`"),
        ("_extensions" = Option<String>, Query, description = "`*`, or the URIs or names of the extensions to show"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each entry shows"),
    ),
    responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome)),
    security(("bearer" = ["individual:search"])))]
async fn search_individuals(
    call: Call,
    OriginalUri(uri): OriginalUri,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Json<SearchBundle>, ApiError> {
    resource::advanced_search::<Individual>(
        &call,
        &uri,
        body.map(|ApiJson(value)| value),
        search_params::INDIVIDUAL,
        search_params::INDIVIDUAL_PRESETS,
    )
    .await
    .map(Json)
}

/// Advanced search of groups (see `POST /Individual/_search`).
#[utoipa::path(post, path = "/Group/_search", tag = "Group", request_body = SearchRequest,
    params(
        ("_count" = Option<i64>, Query, description = "1-100; takes precedence over `pagination.count`"),
        ("_offset" = Option<i64>, Query, description = "Takes precedence over `pagination.offset`"),
        ("_extensions" = Option<String>, Query, description = "`*`, or the URIs or names of the extensions to show"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each entry shows"),
    ),
    responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome)),
    security(("bearer" = ["group:search"])))]
async fn search_groups(
    call: Call,
    OriginalUri(uri): OriginalUri,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Json<SearchBundle>, ApiError> {
    resource::advanced_search::<Group>(
        &call,
        &uri,
        body.map(|ApiJson(value)| value),
        search_params::GROUP,
        search_params::GROUP_PRESETS,
    )
    .await
    .map(Json)
}

/// Advanced search of programs (see `POST /Individual/_search`).
#[utoipa::path(post, path = "/Program/_search", tag = "Program", request_body = SearchRequest,
    params(
        ("_count" = Option<i64>, Query, description = "1-100; takes precedence over `pagination.count`"),
        ("_offset" = Option<i64>, Query, description = "Takes precedence over `pagination.offset`"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each entry shows"),
    ),
    responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome)),
    security(("bearer" = ["program:search"])))]
async fn search_programs(
    call: Call,
    OriginalUri(uri): OriginalUri,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Json<SearchBundle>, ApiError> {
    resource::advanced_search::<Program>(
        &call,
        &uri,
        body.map(|ApiJson(value)| value),
        search_params::PROGRAM,
        search_params::PROGRAM_PRESETS,
    )
    .await
    .map(Json)
}

/// Advanced search of program memberships (see `POST /Individual/_search`).
#[utoipa::path(post, path = "/ProgramMembership/_search", tag = "ProgramMembership",
    request_body = SearchRequest,
    params(
        ("_count" = Option<i64>, Query, description = "1-100; takes precedence over `pagination.count`"),
        ("_offset" = Option<i64>, Query, description = "Takes precedence over `pagination.offset`"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each entry shows"),
    ),
    responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome)),
    security(("bearer" = ["program_membership:search"])))]
async fn search_program_memberships(
    call: Call,
    OriginalUri(uri): OriginalUri,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Json<SearchBundle>, ApiError> {
    resource::advanced_search::<ProgramMembership>(
        &call,
        &uri,
        body.map(|ApiJson(value)| value),
        search_params::PROGRAM_MEMBERSHIP,
        search_params::PROGRAM_MEMBERSHIP_PRESETS,
    )
    .await
    .map(Json)
}
