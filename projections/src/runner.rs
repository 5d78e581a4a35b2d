//! The registry's feed follower: a durable cursor on the gap-free feed. The read models are
//! written by the appends themselves (see `inline.rs`), so nothing here builds them; what the
//! follower keeps is the checkpoint (`projection_checkpoints`, name `registry`): how far the
//! feed has been read in commit order, and how many events that is. That is the cursor the
//! deliveries that follow the feed (GraphQL subscriptions, DCI notifications, DESIGN
//! invariant 8) extend, and what an operator reads as the feed's lag.
//!
//! Each page moves the checkpoint in one transaction, which fails if another follower moved it,
//! so a crash anywhere loses nothing and counts nothing twice. One process leads (a session
//! advisory lock); the others stand by, so any number of server processes can run against one
//! database, and a rebuild (which takes the same lock) cannot run beside a live server.
//!
//! Idle, the follower sleeps on `EVENTS_CHANNEL`, which every process notifies after its
//! appends commit; it looks again by itself only when events wait behind an older running
//! transaction (which no notification announces the end of), and every `IDLE_CHECK` in case a
//! notification was lost (a process that died between a commit and its notification).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres};

use crate::checkpoint::{format, load as load_checkpoint, CheckpointWatch};
use crate::error::ProjectionError;
use crate::events::FeedPosition;
use crate::feed::read_positions;
use crate::{CHECKPOINT_CHANNEL, EVENTS_CHANNEL, REGISTRY_PROJECTION};

/// Events read per page.
const PAGE: i64 = 5_000;
/// The longest an idle follower sleeps without a notification.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// The shortest time between two checkpoint commits while the feed trickles in: under a write
/// load every append notifies, and a commit per notification would double the commits.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long to wait, at most, for events held back behind an older transaction.
const HELD_BACK_MAX: Duration = Duration::from_secs(1);

/// Runs forever: waits for leadership, then follows the feed.
pub async fn run(pool: PgPool, watch: CheckpointWatch) {
    loop {
        match lead(&pool, &watch).await {
            Ok(()) => {}
            Err(error) => tracing::error!(%error, "feed follower stopped; restarting"),
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Takes the feed's leadership if nobody holds it. The lock lives as long as the returned
/// connection: if the process dies, leadership passes on.
pub(crate) async fn try_lead(
    pool: &PgPool,
) -> Result<Option<PoolConnection<Postgres>>, ProjectionError> {
    let mut connection = pool.acquire().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(format!("openspp:projector:{REGISTRY_PROJECTION}"))
        .fetch_one(&mut *connection)
        .await?;
    Ok(leader.then_some(connection))
}

async fn lead(pool: &PgPool, watch: &CheckpointWatch) -> Result<(), ProjectionError> {
    let Some(_leadership) = try_lead(pool).await? else {
        // Stand by; the leader's death frees the lock.
        tokio::time::sleep(IDLE_CHECK).await;
        return Ok(());
    };
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(EVENTS_CHANNEL).await?;
    let mut checkpoint = load_checkpoint(pool).await?;
    let mut held_back_wait = Duration::from_millis(5);
    loop {
        let page = read_positions(pool, checkpoint, PAGE).await?;
        if let Some(&last) = page.events.last() {
            advance(pool, &mut checkpoint, last, page.events.len()).await?;
            watch.publish(last);
            if page.events.len() as i64 == PAGE {
                // Catching up: the next page at once.
                continue;
            }
        }
        if page.held_back {
            tokio::time::sleep(held_back_wait).await;
            held_back_wait = (held_back_wait * 2).min(HELD_BACK_MAX);
            continue;
        }
        held_back_wait = Duration::from_millis(5);
        if !page.events.is_empty() {
            tokio::time::sleep(MIN_INTERVAL).await;
        }
        // Everything committed before this read is in it; what commits later notifies, and
        // notifications received meanwhile are buffered, so waiting loses nothing.
        let _ = tokio::time::timeout(IDLE_CHECK, listener.recv()).await;
        // One read answers every notification received meanwhile.
        while listener.next_buffered().is_some() {}
    }
}

/// Moves the checkpoint from `checkpoint` to `last`, `count` events on, and tells every
/// process (the `CheckpointWatch`es), in one statement.
///
/// Committed without waiting for the WAL flush (`synchronous_commit` off for this transaction
/// only): a crash of PostgreSQL may take the last moves back, and then the row as a whole
/// (position and count together) is an earlier one, from which the follower reads on with no
/// gap and no double count; a delivery following the feed sees those events again, which
/// at-least-once allows (DESIGN invariant 8). What it saves is a durable commit per page.
async fn advance(
    pool: &PgPool,
    checkpoint: &mut FeedPosition,
    last: FeedPosition,
    count: usize,
) -> Result<(), ProjectionError> {
    let moved: i64 = sqlx::query_scalar(
        "WITH moved AS (\
             UPDATE projection_checkpoints \
             SET tx_id = $2, position = $3, events = events + $4, updated_at = now() \
             WHERE name = $1 AND tx_id = $5 AND position = $6 RETURNING 1) \
         SELECT (SELECT count(*) FROM moved) \
         FROM (SELECT set_config('synchronous_commit', 'off', true), pg_notify($7, $8)) AS side",
    )
    .bind(REGISTRY_PROJECTION)
    .bind(last.tx_id)
    .bind(last.position)
    .bind(count as i64)
    .bind(checkpoint.tx_id)
    .bind(checkpoint.position)
    .bind(CHECKPOINT_CHANNEL)
    .bind(format(last))
    .fetch_one(pool)
    .await?;
    if moved != 1 {
        return Err(ProjectionError::CheckpointMoved);
    }
    *checkpoint = last;
    Ok(())
}
