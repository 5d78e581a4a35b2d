//! The projector: follows the feed from its checkpoint and applies each batch to the read
//! models and the checkpoint in ONE transaction, so a crash anywhere loses nothing and applies
//! nothing twice. One process leads (a session advisory lock); the others stand by, so any
//! number of server processes can run against one database.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::checkpoint::{format, load as load_checkpoint, CheckpointWatch};
use crate::feed::{read_after, FeedPosition, StoredEvent};
use crate::{
    group, individual, membership, program, CHECKPOINT_CHANNEL, EVENTS_CHANNEL, REGISTRY_PROJECTION,
};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("event {aggregate_type} {sequence} cannot be read: {reason}")]
    Undecodable {
        aggregate_type: String,
        sequence: i64,
        reason: String,
    },
    #[error("another projector moved the checkpoint")]
    CheckpointMoved,
}

/// Events applied per transaction.
const BATCH: i64 = 500;

/// Applies one batch of events to every registry read model.
pub async fn apply_batch(
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    individual::project(conn, events).await?;
    group::project(conn, events).await?;
    program::project(conn, events).await?;
    membership::project(conn, events).await?;
    Ok(())
}

/// Runs forever: waits for leadership, then follows the feed.
pub async fn run(pool: PgPool, watch: CheckpointWatch) {
    loop {
        match lead(&pool, &watch).await {
            Ok(()) => {}
            Err(error) => tracing::error!(%error, "projector stopped; restarting"),
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Takes the projector's leadership if nobody holds it. The lock lives as long as the returned
/// connection: if the process dies, leadership passes on.
async fn try_lead(pool: &PgPool) -> Result<Option<PoolConnection<Postgres>>, ProjectionError> {
    let mut connection = pool.acquire().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(format!("openspp:projector:{REGISTRY_PROJECTION}"))
        .fetch_one(&mut *connection)
        .await?;
    Ok(leader.then_some(connection))
}

async fn lead(pool: &PgPool, watch: &CheckpointWatch) -> Result<(), ProjectionError> {
    let Some(_leadership) = try_lead(pool).await? else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        return Ok(());
    };
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(EVENTS_CHANNEL).await?;
    let mut checkpoint = load_checkpoint(pool).await?;
    loop {
        let applied = step(pool, &mut checkpoint, BATCH).await?;
        if let Some((position, _)) = applied {
            watch.publish(position);
            continue;
        }
        // Caught up with what is visible. New commits notify; the timeout covers events held
        // back by an older transaction that was still running when we read.
        let _ = tokio::time::timeout(Duration::from_millis(50), listener.recv()).await;
    }
}

/// Why a rebuild could not start.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a running server is projecting into these read models; stop it first")]
    ProjectorRunning,
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// Drops the registry read models and rebuilds them from the whole event log, in large
/// batches; `progress` hears how many events each batch applied. Holds the projector's
/// leadership throughout, so no live projector writes meanwhile.
pub async fn rebuild(pool: &PgPool, mut progress: impl FnMut(usize)) -> Result<u64, RebuildError> {
    let _leadership = try_lead(pool)
        .await?
        .ok_or(RebuildError::ProjectorRunning)?;
    let mut tx = pool.begin().await.map_err(ProjectionError::from)?;
    sqlx::query(
        "TRUNCATE individual_view, group_view, group_members_view, program_view, membership_view",
    )
    .execute(&mut *tx)
    .await
    .map_err(ProjectionError::from)?;
    sqlx::query(
        "UPDATE projection_checkpoints SET tx_id = 0, position = 0, events = 0, updated_at = now() \
         WHERE name = $1",
    )
    .bind(REGISTRY_PROJECTION)
    .execute(&mut *tx)
    .await
    .map_err(ProjectionError::from)?;
    tx.commit().await.map_err(ProjectionError::from)?;
    let mut checkpoint = FeedPosition::default();
    let mut applied = 0u64;
    while let Some((_, count)) = step(pool, &mut checkpoint, REBUILD_BATCH).await? {
        applied += count as u64;
        progress(count);
    }
    Ok(applied)
}

/// Events applied per transaction when rebuilding from scratch.
const REBUILD_BATCH: i64 = 5_000;

/// Applies the next batch, if any; returns the new checkpoint and how many events it applied.
async fn step(
    pool: &PgPool,
    checkpoint: &mut FeedPosition,
    batch: i64,
) -> Result<Option<(FeedPosition, usize)>, ProjectionError> {
    let events = read_after(pool, *checkpoint, batch).await?;
    let Some(last) = events.last().map(|e| e.feed) else {
        return Ok(None);
    };
    let mut tx = pool.begin().await?;
    apply_batch(&mut tx, &events).await?;
    let moved = sqlx::query(
        "UPDATE projection_checkpoints \
         SET tx_id = $2, position = $3, events = events + $4, updated_at = now() \
         WHERE name = $1 AND tx_id = $5 AND position = $6",
    )
    .bind(REGISTRY_PROJECTION)
    .bind(last.tx_id)
    .bind(last.position)
    .bind(events.len() as i64)
    .bind(checkpoint.tx_id)
    .bind(checkpoint.position)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        return Err(ProjectionError::CheckpointMoved);
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHECKPOINT_CHANNEL)
        .bind(format(last))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    *checkpoint = last;
    Ok(Some((last, events.len())))
}
