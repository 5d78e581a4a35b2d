//! The search route of the resources OpenSPP's delivery modules serve (cycles, entitlements,
//! service points, products), stamped out per resource as `read_routes!` stamps out the reads:
//! the OpenAPI description needs one concrete, annotated handler per route. Its body is one
//! call into the resource layer (`resource::search`), which checks the scope, pages, and logs
//! the access.

/// ```text
/// search_route!(Resource, envelope: result(RenderedBody) | bundle, "scope:action",
///     /// what the search finds, in which order
///     params(("own" = Option<String>, Query, …), …));
/// ```
/// defines the handler `search` at `GET /{Resource}`, tagged `Resource`, taking the resource's
/// own parameters and those every such search takes (`_lastUpdated`, paging, `_elements`),
/// answered in OpenSPP's envelope (`result`) or as a `searchset` Bundle (`bundle`).
macro_rules! search_route {
    ($resource:ident, envelope: result($body:ty), $scope:literal,
     $(#[$doc:meta])* params($($param:tt)*)) => {
        crate::http::search_route!(@handler $resource, crate::api::schema::SearchResult<$body>,
            crate::api::schema::SearchResult<serde_json::Value>, axum::Json, $scope,
            $(#[$doc])* params($($param)*));
    };
    ($resource:ident, envelope: bundle, $scope:literal,
     $(#[$doc:meta])* params($($param:tt)*)) => {
        crate::http::search_route!(@handler $resource, crate::api::advanced_search::SearchBundle,
            crate::api::advanced_search::SearchBundle, |result| axum::Json(result.into()), $scope,
            $(#[$doc])* params($($param)*));
    };
    (@handler $resource:ident, $shown:ty, $answer:ty, $wrap:expr, $scope:literal,
     $(#[$doc:meta])* params($($param:tt)*)) => {
        $(#[$doc])*
        #[utoipa::path(get, path = concat!("/", stringify!($resource)),
            tag = stringify!($resource),
            params(
                $($param)*
                ("_lastUpdated" = Option<String>, Query, description = "With a prefix; no prefix: at or after"),
                ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
                ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each result shows"),
            ),
            responses((status = 200, body = $shown),
                (status = 400, body = crate::api::schema::OperationOutcome)),
            security(("bearer" = [$scope])))]
        async fn search(
            call: crate::resource::Call,
            axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
        ) -> Result<axum::Json<$answer>, crate::error::ApiError> {
            crate::resource::search::<$resource>(&call, &uri)
                .await
                .map($wrap)
        }
    };
}

pub(crate) use search_route;
