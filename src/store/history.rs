//! A stream's events as stored, for histories, point-in-time reads, receipts and verification.
//! The row type, its reader and the fold are the event log's own (`openspp_projections::events`):
//! one owner for the log, whoever reads it.

use cqrs_es::Aggregate;
use sqlx::PgPool;

pub use openspp_projections::events::{StoredEvent as Recorded, COLUMNS};
pub use openspp_projections::Undecodable;

/// Every event of one stream, oldest first.
pub async fn stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> sqlx::Result<Vec<Recorded>> {
    openspp_projections::events::stream(pool, aggregate_type, aggregate_id).await
}

/// Every version of a stream, oldest first: the state after each event (folded with the
/// domain's own `apply`, like every other reader of the log), with the event.
pub async fn versions<A: Aggregate + Clone>(
    pool: &PgPool,
    aggregate_id: &str,
) -> Result<Vec<(A, Recorded)>, VersionsError> {
    let events = stream(pool, A::TYPE, aggregate_id).await?;
    Ok(openspp_projections::events::versions(events)?)
}

#[derive(Debug, thiserror::Error)]
pub enum VersionsError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
}
