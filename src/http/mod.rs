//! HTTP: routing, middleware, and one module per resource. Handlers translate HTTP into commands
//! and queries; no business rule lives here.

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::app::AppState;
use crate::error::ApiError;

pub mod health;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(crate::auth::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
}
