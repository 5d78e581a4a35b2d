//! Liveness and readiness for orchestrators (public, no token).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;

/// What a probe answers when all is well.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (the process is up) or `ready` (it can serve).
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "Operations",
    responses((status = 200, body = Health, description = "The process is up")))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// The process can serve: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "Operations",
    responses(
        (status = 200, body = Health, description = "The database answers"),
        (status = 503, description = "The database does not answer", body = crate::api::schema::OperationOutcome)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&state.pool)
        .await
        .map_err(|_| {
            ApiError::unavailable("database unavailable")
                .with_header(axum::http::header::RETRY_AFTER, "1")
        })?;
    Ok(Json(Health {
        status: "ready".to_owned(),
    }))
}
