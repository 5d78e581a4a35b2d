//! The global event feed, read without ever skipping a late-committing transaction.
//!
//! `global_position` is taken at INSERT time, so a higher position can commit before a lower
//! one (stack.md §2.8). Readers therefore order by `(tx_id, global_position)` and take only
//! events whose transaction is older than every transaction that may still append: anything
//! below that horizon has committed or aborted for good, so nothing can appear behind the
//! checkpoint later (DESIGN invariant 2).
//!
//! The horizon is computed per database. `pg_snapshot_xmin` alone would be the oldest running
//! transaction of the whole cluster, so one long transaction in any other database (a batch
//! job, another application, a parallel test run) would hold every projection back and break
//! read-your-writes. Only sessions of this database can append here, so the horizon is the
//! oldest transaction id among them (see `horizon`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

/// A point in the feed. Ordered as the feed is: by transaction, then by position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedPosition {
    pub tx_id: i64,
    pub position: i64,
}

/// One event as stored, with its place in the feed.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub feed: FeedPosition,
}

impl StoredEvent {
    /// The metadata value under `key`, if it is a string.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            feed: FeedPosition {
                tx_id: row.try_get("tx_id")?,
                position: row.try_get("global_position")?,
            },
        })
    }
}

/// Up to `limit` events after `after`, in feed order, all below the horizon. Takes a pool,
/// not a transaction: the horizon is only sound when each of its steps sees a fresh snapshot.
pub async fn read_after(
    pool: &PgPool,
    after: FeedPosition,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    let horizon = horizon(pool).await?;
    let rows = sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                metadata, recorded_at, tx_id::text::bigint AS tx_id, global_position \
         FROM events \
         WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
           AND tx_id < $4::text::xid8 \
         ORDER BY tx_id, global_position \
         LIMIT $3",
    )
    .bind(after.tx_id.to_string())
    .bind(after.position)
    .bind(limit)
    .bind(horizon.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// The id below which every transaction that could append to this database's events has
/// ended, taken in two statements, each with its own snapshot, before the events are read:
///
/// 1. `bound`: the xmax of a snapshot. A transaction with a smaller id had its id before this.
/// 2. the ids of this database's sessions (and prepared transactions) still running. A
///    transaction with an id below `bound` is either among them, or has ended, and then the
///    later snapshot of the events read sees its commit.
///
/// Sessions hidden by privileges could be appenders we cannot see: then the cluster-wide
/// `pg_snapshot_xmin`, always safe, is used instead.
async fn horizon(pool: &PgPool) -> sqlx::Result<i64> {
    let bound: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
            .fetch_one(pool)
            .await?;
    let (running, hidden, cluster_xmin): (Vec<i64>, bool, i64) = sqlx::query_as(
        "SELECT \
           ARRAY(SELECT backend_xid::text::bigint FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_xid IS NOT NULL \
                 UNION ALL \
                 SELECT transaction::text::bigint FROM pg_prepared_xacts \
                 WHERE database = current_database()), \
           EXISTS (SELECT 1 FROM pg_stat_activity \
                   WHERE datname = current_database() AND query = '<insufficient privilege>'), \
           pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
    )
    .fetch_one(pool)
    .await?;
    if hidden {
        return Ok(cluster_xmin);
    }
    Ok(running
        .into_iter()
        .map(|xid| widen(xid, bound))
        .fold(bound, i64::min))
}

/// A 32-bit transaction id as the 64-bit one it stands for near `reference` (a running
/// transaction is never more than 2^31 ids away from the newest).
fn widen(xid: i64, reference: i64) -> i64 {
    const WRAP: i64 = 1 << 32;
    let candidate = (reference & !(WRAP - 1)) | (xid & (WRAP - 1));
    if candidate > reference + WRAP / 2 {
        candidate - WRAP
    } else if candidate < reference - WRAP / 2 {
        candidate + WRAP
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::widen;

    #[test]
    fn short_transaction_ids_widen_to_the_nearest_epoch() {
        let epoch = 3_i64 << 32;
        assert_eq!(widen(100, epoch + 150), epoch + 100);
        // Just before the epoch turned over.
        assert_eq!(widen(0xFFFF_FFF0, epoch + 5), epoch - 16);
        // Just after it, seen from before.
        assert_eq!(widen(4, epoch - 2), epoch + 4);
    }
}
