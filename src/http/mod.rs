//! HTTP: routing, middleware, and one module per resource. Handlers translate HTTP into commands
//! and queries; no business rule lives here.

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiError;

mod read_routes;
mod registrant_routes;
mod search_route;
pub(crate) use read_routes::read_routes;
pub(crate) use registrant_routes::registrant_routes;
pub(crate) use search_route::search_route;

pub mod aggregation;
pub mod audit_event;
pub mod batch;
pub mod bulk;
pub mod consent;
pub mod conventions;
pub mod cycle;
pub mod delivery;
pub mod docs;
pub mod early_errors;
pub mod entitlement;
pub mod envelope;
pub mod filters;
pub mod group;
pub mod health;
pub mod household;
pub mod individual;
pub mod metadata;
pub mod openapi;
pub mod outcome;
pub mod product;
pub mod product_catalog;
pub mod program;
pub mod program_membership;
pub mod service_point;
pub mod vocabulary;

pub use crate::api::provenance::REQUEST_ID;
pub use crate::api::BASE;

pub fn router(state: AppState, body_limit: usize) -> Router {
    let resources = OpenApiRouter::with_openapi(openapi::document())
        .merge(individual::routes())
        .merge(group::routes())
        .merge(household::routes())
        .merge(consent::routes())
        .merge(audit_event::routes())
        .merge(program::routes())
        .merge(program_membership::routes())
        .merge(cycle::routes())
        .merge(entitlement::routes())
        .merge(service_point::routes())
        .merge(product::routes())
        .merge(product_catalog::routes())
        .merge(vocabulary::routes())
        .merge(filters::routes())
        .merge(batch::routes())
        .merge(bulk::routes())
        .merge(aggregation::routes())
        .merge(crate::auth::api_routes())
        .routes(routes!(metadata::capability_statement))
        .routes(routes!(docs::docs))
        .routes(routes!(docs::redoc))
        .routes(routes!(docs::script));
    let public = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(crate::metrics::metrics))
        .merge(crate::auth::routes())
        .merge(crate::graphql::documented_routes());
    // Every route is registered through the OpenAPI router, so none can go undocumented; the
    // document itself is the one route that cannot describe itself by annotation.
    let (api, document) = OpenApiRouter::new()
        .nest(BASE, resources)
        .merge(public)
        .split_for_parts();
    let document = openapi::finish(document, &format!("{BASE}/openapi.json"));
    Router::new()
        .merge(api)
        // DCI is described by its own specification (served beside it), not this document.
        .merge(crate::dci::routes())
        .merge(crate::graphql::routes())
        .route(
            &format!("{BASE}/openapi.json"),
            get(move || {
                let document = document.clone();
                async move { Json(document) }
            }),
        )
        .fallback(not_found)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(
            outcome::framework_errors_as_outcomes,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn_with_state(
            state,
            envelope::around,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
}

/// The longest caller-supplied request id kept; it is stored with every event and log entry.
const MAX_REQUEST_ID: usize = 128;

/// A caller's `X-Request-Id` is echoed and recorded as given, so it must be a short, printable
/// token; anything else is replaced by a fresh id rather than refused (it is a tracing aid).
async fn drop_unusable_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let usable = |value: &axum::http::HeaderValue| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes.iter().all(|b| b.is_ascii_graphic())
    };
    if request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|v| !usable(v))
    {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

pub(crate) async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
}

/// A panic is a bug: answer 500 without internals, keep the server up.
fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("request handler panicked");
    ApiError::internal().into_response()
}
