//! What every resource endpoint shares: finding a stream by external identifier, choosing the
//! row a write answers with, and the response headers (`ETag`, `Location`).

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use openspp_projections::view::ViewRow;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::command::etag;
use crate::http::reference::{parse_identifier, path_segment, resolve};
use crate::store::Committed;

/// The stream of `resource` holding the live identifier `id` (`system|value`), else 404.
pub async fn find(state: &AppState, resource: &str, id: &str) -> Result<String, ApiError> {
    let identifier = parse_identifier(id, "id")?;
    resolve(&state.pool, resource, &identifier)
        .await?
        .ok_or_else(|| ApiError::not_found(resource))
}

/// The read model's row after a write (read-your-writes has waited for it), or, if the
/// projector lags beyond the wait, the committed state itself: the write is durable either way.
pub fn written_row<A>(
    aggregate_id: &str,
    row: Option<ViewRow<A>>,
    committed: Committed<A>,
) -> ViewRow<A> {
    match row {
        Some(row) if row.version as u64 >= committed.version => row,
        _ => ViewRow {
            aggregate_id: aggregate_id.to_owned(),
            version: committed.version as i64,
            state: committed.aggregate,
            last_updated: chrono::Utc::now(),
            source: None,
        },
    }
}

/// A single resource with its `ETag`, and on 201 its `Location` (by its first identifier).
pub fn reply<T: Serialize>(
    status: StatusCode,
    resource: &str,
    version: i64,
    first_identifier: Option<String>,
    body: T,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(version));
    if status == StatusCode::CREATED {
        if let Some(location) = first_identifier
            .map(|key| format!("/api/v2/spp/{resource}/{}", path_segment(&key)))
            .and_then(|l| l.parse().ok())
        {
            headers.insert(header::LOCATION, location);
        }
    }
    (status, headers, Json(body)).into_response()
}
