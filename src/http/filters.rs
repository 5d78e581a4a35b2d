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

/// Stamps out one resource's `GET /{R}/_filters` (`$describe`) and `POST /{R}/_search`
/// (`$search`): the OpenAPI description needs one concrete, annotated handler per route, and
/// each handler is one call into `describe` or `resource::advanced_search` with the resource's
/// own parameter table. `$extra` lists the query parameters only some resources take.
macro_rules! filter_routes {
    ($describe:ident, $search:ident, $resource:ty, $tag:literal, $scope_name:literal,
     $filters_path:literal, $search_path:literal, $search_scope:literal,
     $params:expr, $presets:expr, [$($extra:tt)*]) => {
        #[doc = concat!("The filters and presets `GET /", $tag, "` takes.")]
        #[utoipa::path(get, path = $filters_path, tag = $tag,
            responses((status = 200, body = FilterMetadataResponse), (status = 403, body = OperationOutcome)),
            security(("bearer" = [$search_scope])))]
        async fn $describe(principal: Principal) -> Result<Json<FilterMetadataResponse>, ApiError> {
            describe(&principal, $scope_name, $tag, $params, $presets)
        }

        #[doc = concat!("Advanced search of `", $tag, "`: conditions joined by AND and OR, presets, ",
            "sort and paging (OpenSPP's `SearchRequest`), answered as a `searchset` Bundle.")]
        #[utoipa::path(post, path = $search_path, tag = $tag, request_body = SearchRequest,
            params(
                ("_count" = Option<i64>, Query, description = "1-100; takes precedence over `pagination.count`"),
                ("_offset" = Option<i64>, Query, description = "Takes precedence over `pagination.offset`"),
                $($extra)*
                ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each entry shows"),
            ),
            responses((status = 200, body = SearchBundle), (status = 400, body = OperationOutcome),
                (status = 403, body = OperationOutcome)),
            security(("bearer" = [$search_scope])))]
        async fn $search(
            call: Call,
            OriginalUri(uri): OriginalUri,
            body: Result<ApiJson<Value>, ApiError>,
        ) -> Result<Json<SearchBundle>, ApiError> {
            resource::advanced_search::<$resource>(
                &call,
                &uri,
                body.map(|ApiJson(value)| value),
                $params,
                $presets,
            )
            .await
            .map(Json)
        }
    };
}

filter_routes!(individual, search_individuals, Individual, "Individual", "individual",
    "/Individual/_filters", "/Individual/_search", "individual:search",
    search_params::INDIVIDUAL, search_params::INDIVIDUAL_PRESETS,
    [("_extensions" = Option<String>, Query, description = "`*`, or the URIs or names of the extensions to show"),]);

filter_routes!(group, search_groups, Group, "Group", "group",
    "/Group/_filters", "/Group/_search", "group:search",
    search_params::GROUP, search_params::GROUP_PRESETS,
    [("_extensions" = Option<String>, Query, description = "`*`, or the URIs or names of the extensions to show"),]);

filter_routes!(
    program,
    search_programs,
    Program,
    "Program",
    "program",
    "/Program/_filters",
    "/Program/_search",
    "program:search",
    search_params::PROGRAM,
    search_params::PROGRAM_PRESETS,
    []
);

filter_routes!(
    program_membership,
    search_program_memberships,
    ProgramMembership,
    "ProgramMembership",
    "program_membership",
    "/ProgramMembership/_filters",
    "/ProgramMembership/_search",
    "program_membership:search",
    search_params::PROGRAM_MEMBERSHIP,
    search_params::PROGRAM_MEMBERSHIP_PRESETS,
    []
);
