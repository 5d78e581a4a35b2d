//! The global event feed, read without ever skipping a late-committing transaction.
//!
//! `global_position` is taken at INSERT time, so a higher position can commit before a lower
//! one (stack.md §2.8). Readers therefore order by `(tx_id, global_position)` and take only
//! events whose transaction is older than every transaction still running
//! (`pg_snapshot_xmin`): anything below that horizon has committed or aborted for good, so
//! nothing can appear behind the checkpoint later (DESIGN invariant 2).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};

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

/// Up to `limit` events after `after`, in feed order, all below the running-transaction horizon.
pub async fn read_after<'e>(
    executor: impl PgExecutor<'e>,
    after: FeedPosition,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    let rows = sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                metadata, recorded_at, tx_id::text::bigint AS tx_id, global_position \
         FROM events \
         WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
           AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY tx_id, global_position \
         LIMIT $3",
    )
    .bind(after.tx_id.to_string())
    .bind(after.position)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}
