//! The writes every registrant (Individual, Group) has — registration, replacement and merge
//! patch — stamped out per resource, as `read_routes!` stamps out the reads: the OpenAPI
//! description needs one concrete, annotated handler per route. Their bodies are one call each
//! into the resource layer (`resource::register`, `replace`, `merge_patch`).

/// ```text
/// registrant_routes!(Resource, RenderedBody,
///     create: /// what a registration does
///     replace: /// what a replacement does
///     patch: /// what a merge patch does
/// );
/// ```
/// defines the handlers `create`, `replace` and `patch` in the calling module, at `/{Resource}`
/// and `/{Resource}/{id}`, needing `{scope}:create` and `{scope}:update`; each carries the doc
/// comment given for it, which the OpenAPI description shows.
macro_rules! registrant_routes {
    ($resource:ident, $body:ty,
     create: $(#[$create:meta])*
     replace: $(#[$replace:meta])*
     patch: $(#[$patch:meta])*
    ) => {
        $(#[$create])*
        #[utoipa::path(post, path = concat!("/", stringify!($resource)), tag = stringify!($resource),
            params(("_extensions" = Option<String>, Query, description = "The extensions the answer shows: by default those the body wrote")),
            request_body = $body,
            responses(
                (status = 201, body = $body, description = "Registered; `Location` and `ETag` set"),
                (status = 403, body = crate::api::schema::OperationOutcome, description = "The client acts under consent (registering is the data controller's act), or the body states a field or extension its field filter hides"),
                (status = 409, body = crate::api::schema::OperationOutcome, description = "An identifier is already in use"),
                (status = 422, body = crate::api::schema::OperationOutcome),
            ),
            security(("bearer" = [format!("{}:create", <$resource as crate::resource::Resource>::SCOPE)])))]
        async fn create(
            call: crate::resource::Call,
            axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
            body: Result<crate::api::stated::Stated<$body>, crate::error::ApiError>,
        ) -> Result<crate::resource::Answer, crate::error::ApiError> {
            crate::resource::register::<$resource>(&call, &uri, body).await
        }

        $(#[$replace])*
        #[utoipa::path(put, path = concat!("/", stringify!($resource), "/{id}"),
            tag = stringify!($resource),
            params(
                ("id" = String, Path, description = "`system|value`, URL-encoded"),
                ("If-Match" = Option<String>, Header, description = "The `ETag` the change is based on"),
                ("_extensions" = Option<String>, Query, description = "The extensions the answer shows: by default those the body wrote"),
            ),
            request_body = $body,
            responses(
                (status = 200, body = $body),
                (status = 403, body = crate::api::schema::OperationOutcome, description = "The body states a field this client may not see, or changes what its consent does not let it change"),
                (status = 404, body = crate::api::schema::OperationOutcome),
                (status = 409, body = crate::api::schema::OperationOutcome),
                (status = 412, body = crate::api::schema::OperationOutcome, description = "`If-Match` is stale"),
                (status = 422, body = crate::api::schema::OperationOutcome),
            ),
            security(("bearer" = [format!("{}:update", <$resource as crate::resource::Resource>::SCOPE)])))]
        async fn replace(
            call: crate::resource::Call,
            if_match: crate::api::preconditions::IfMatch,
            axum::extract::Path(id): axum::extract::Path<String>,
            axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
            body: Result<crate::api::stated::Stated<$body>, crate::error::ApiError>,
        ) -> Result<crate::resource::Answer, crate::error::ApiError> {
            crate::resource::replace::<$resource>(&call, &id, if_match, &uri, body).await
        }

        $(#[$patch])*
        #[utoipa::path(patch, path = concat!("/", stringify!($resource), "/{id}"),
            tag = stringify!($resource),
            params(
                ("id" = String, Path, description = "`system|value`, URL-encoded"),
                ("If-Match" = Option<String>, Header, description = "The `ETag` the patch is based on"),
            ),
            request_body(content = Object, content_type = "application/merge-patch+json",
                description = "Fields to set; `null` removes one. Arrays are replaced whole."),
            responses(
                (status = 200, body = $body, description = "Every extension this client may see is shown"),
                (status = 403, body = crate::api::schema::OperationOutcome, description = "The patch names a field this client may not see"),
                (status = 404, body = crate::api::schema::OperationOutcome),
                (status = 409, body = crate::api::schema::OperationOutcome),
                (status = 412, body = crate::api::schema::OperationOutcome, description = "`If-Match` is stale"),
                (status = 422, body = crate::api::schema::OperationOutcome, description = "The patched resource is not valid; names the field"),
            ),
            security(("bearer" = [format!("{}:update", <$resource as crate::resource::Resource>::SCOPE)])))]
        async fn patch(
            call: crate::resource::Call,
            if_match: crate::api::preconditions::IfMatch,
            axum::extract::Path(id): axum::extract::Path<String>,
            body: Result<crate::api::json::ApiJson<serde_json::Value>, crate::error::ApiError>,
        ) -> Result<crate::resource::Answer, crate::error::ApiError> {
            crate::resource::merge_patch::<$resource>(&call, &id, if_match, body).await
        }
    };
}

pub(crate) use registrant_routes;
