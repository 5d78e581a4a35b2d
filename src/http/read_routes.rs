//! The routes every resource has — its single read (with `_at`), and the auditor's history, one
//! version, and the verification of its hash chain (CONTRACT §4, §6) — stamped out per
//! resource, because the OpenAPI description needs one concrete, annotated handler per route.
//! Their bodies are one call each into the resource layer, which checks the scope and logs the
//! access.

/// ```text
/// read_routes!(Resource, RenderedBody, "how the path's id names one");
/// ```
/// defines the handlers `read`, `history`, `vread` and `verify` in the calling module, at
/// `/{Resource}/{id}…`, tagged `Resource`; a read needs `{scope}:read` (`Resource::SCOPE`), the
/// others `audit:read`.
///
/// ```text
/// read_routes!(Resource, RenderedBody, "…", routes: (search, create), (read, replace), (…));
/// ```
/// defines them and the module's `routes()` too: each group of handlers (one path's) in order,
/// then the auditor's.
macro_rules! read_routes {
    ($resource:ident, $body:ty, $id:literal, routes: $(($($handler:ident),+)),+) => {
        pub fn routes() -> utoipa_axum::router::OpenApiRouter<crate::app::AppState> {
            utoipa_axum::router::OpenApiRouter::new()
                $(.routes(utoipa_axum::routes!($($handler),+)))+
                .routes(utoipa_axum::routes!(history))
                .routes(utoipa_axum::routes!(vread))
                .routes(utoipa_axum::routes!(verify))
        }

        crate::http::read_routes!($resource, $body, $id);
    };
    ($resource:ident, $body:ty, $id:literal) => {
        // The OpenAPI derive names generic bodies by their bare type names.
        use crate::api::bundle::{HistoryBundle, ResourceVersion};

        /// The resource as it is now, with its `ETag`; with `_at`, as it was at that instant.
        #[utoipa::path(get, path = concat!("/", stringify!($resource), "/{id}"),
            tag = stringify!($resource),
            params(
                ("id" = String, Path, description = $id),
                ("_at" = Option<String>, Query, description = "An RFC 3339 instant: the resource as it was then"),
                ("_extensions" = Option<String>, Query, description = "Where the resource has extensions: `*`, or the URIs or names of those to show; none by default"),
            ),
            responses(
                (status = 200, body = $body, description = "With `ETag`"),
                (status = 400, body = crate::api::schema::OperationOutcome),
                (status = 401, body = crate::api::schema::OperationOutcome),
                (status = 403, body = crate::api::schema::OperationOutcome),
                (status = 404, body = crate::api::schema::OperationOutcome),
            ),
            security(("bearer" = [format!("{}:read", <$resource as crate::resource::Resource>::SCOPE)])))]
        async fn read(
            call: crate::resource::Call,
            axum::extract::Path(id): axum::extract::Path<String>,
            axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
        ) -> Result<crate::resource::Answer, crate::error::ApiError> {
            crate::resource::read::<$resource>(&call, &id, &uri).await
        }

        /// The versions, newest first: each with its event, what changed, and who changed it,
        /// from where, in which request, under which consent.
        #[utoipa::path(get, path = concat!("/", stringify!($resource), "/{id}/_history"),
            tag = stringify!($resource),
            params(
                ("id" = String, Path, description = $id),
                ("_since" = Option<String>, Query, description = "Only versions recorded at or after this instant"),
                ("_at" = Option<String>, Query, description = "Only versions recorded up to this instant"),
                ("_count" = Option<i64>, Query, description = "1-100, default 20"),
                ("_offset" = Option<i64>, Query),
                ("_extensions" = Option<String>, Query, description = "Where the resource has extensions: `*` (the default here) or the URIs or names of those to show"),
            ),
            responses(
                (status = 200, body = HistoryBundle<ResourceVersion<$body>>,
                    description = "FHIR Bundle of type history"),
                (status = 400, body = crate::api::schema::OperationOutcome),
                (status = 401, body = crate::api::schema::OperationOutcome),
                (status = 403, body = crate::api::schema::OperationOutcome),
                (status = 404, body = crate::api::schema::OperationOutcome),
            ),
            security(("bearer" = ["audit:read"])))]
        async fn history(
            call: crate::resource::Call,
            axum::extract::Path(id): axum::extract::Path<String>,
            axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
        ) -> Result<
            axum::Json<HistoryBundle<ResourceVersion<serde_json::Value>>>,
            crate::error::ApiError,
        > {
            crate::resource::history::<$resource>(&call, &id, &uri)
                .await
                .map(axum::Json)
        }

        /// The resource exactly as it was at one version.
        #[utoipa::path(get,
            path = concat!("/", stringify!($resource), "/{id}/_history/{versionId}"),
            tag = stringify!($resource),
            params(
                ("id" = String, Path, description = $id),
                ("versionId" = String, Path, description = "A `meta.versionId`"),
                ("_extensions" = Option<String>, Query, description = "Where the resource has extensions: `*`, or the URIs or names of those to show; none by default"),
            ),
            responses(
                (status = 200, body = $body, description = "The resource as it was, with its `ETag`"),
                (status = 400, body = crate::api::schema::OperationOutcome),
                (status = 401, body = crate::api::schema::OperationOutcome),
                (status = 403, body = crate::api::schema::OperationOutcome),
                (status = 404, body = crate::api::schema::OperationOutcome),
            ),
            security(("bearer" = ["audit:read"])))]
        async fn vread(
            call: crate::resource::Call,
            axum::extract::Path((id, version)): axum::extract::Path<(String, String)>,
            axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
        ) -> Result<crate::resource::Answer, crate::error::ApiError> {
            crate::resource::vread::<$resource>(&call, &id, &version, &uri).await
        }

        /// Recomputes the hash chain and names the first broken version, if any.
        #[utoipa::path(get, path = concat!("/", stringify!($resource), "/{id}/_history/$verify"),
            tag = stringify!($resource),
            params(("id" = String, Path, description = $id)),
            responses(
                (status = 200, body = crate::store::verify::Verification),
                (status = 401, body = crate::api::schema::OperationOutcome),
                (status = 403, body = crate::api::schema::OperationOutcome),
                (status = 404, body = crate::api::schema::OperationOutcome),
            ),
            security(("bearer" = ["audit:read"])))]
        async fn verify(
            call: crate::resource::Call,
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> Result<axum::Json<crate::store::verify::Verification>, crate::error::ApiError> {
            crate::resource::verify::<$resource>(&call, &id)
                .await
                .map(axum::Json)
        }
    };
}

pub(crate) use read_routes;
