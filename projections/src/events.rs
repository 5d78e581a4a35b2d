//! The event log, read: one row type for an event as stored, its readers (one stream, the whole
//! log stream by stream), and the one fold that turns a stream's events into its state. The
//! executor's load, the history of a resource and the rebuild of the read models all fold
//! through `Fold::apply`, so a read model, a past version and a decision cannot disagree about
//! what an event means. The feed (events in commit order) is in `feed.rs`; the writing of events
//! is the append statement's (see `statement.rs` and the server's store).

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::error::{ProjectionError, Undecodable};
use crate::statement::{map, Statement, Unnest};

/// The columns of `StoredEvent`, as a literal so that statements can be built at compile time.
macro_rules! event_columns {
    () => {
        "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
         recorded_at, prev_hash, hash, tx_id::text::bigint AS feed_tx, global_position"
    };
}
pub(crate) use event_columns;

/// The columns every reader of `events` selects, in `StoredEvent`'s order.
pub const COLUMNS: &str = event_columns!();

/// A point in the feed (where an event stands in it). Ordered as the feed is: by transaction, then by position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedPosition {
    pub tx_id: i64,
    pub position: i64,
}

/// One event as stored: what the aggregate decided, the source tracking it was recorded with,
/// its link in the stream's hash chain, and its place in the global feed.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The event's place in its stream: the resource's version after it.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
    pub feed: FeedPosition,
}

impl StoredEvent {
    /// The metadata value under `key`, if it is a string.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    pub(crate) fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
            feed: FeedPosition {
                tx_id: row.try_get("feed_tx")?,
                position: row.try_get("global_position")?,
            },
        })
    }
}

impl sqlx::FromRow<'_, PgRow> for StoredEvent {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        StoredEvent::from_row(row)
    }
}

const STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
);

/// Every event of one stream, oldest first (one index range of the primary key).
pub async fn stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query(STREAM)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(StoredEvent::from_row)
        .collect()
}

const STREAMS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE aggregate_type = $1 AND aggregate_id = ANY($2) \
     ORDER BY aggregate_id, sequence"
);

/// Every event of `aggregate_ids` (streams of one type), stream after stream, each oldest
/// first: many streams in one round trip (a cycle's entitlements moved with it).
pub async fn streams(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_ids: &[String],
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query_as(STREAMS)
        .bind(aggregate_type)
        .bind(aggregate_ids)
        .fetch_all(pool)
        .await
}

/// A range of streams, by `(aggregate_type, aggregate_id)`: from `from` (inclusive) to `to`
/// (exclusive), open where `None`. Every event of a stream is in the range of its stream, so
/// ranges can be folded apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRange {
    pub from: Option<(String, String)>,
    pub to: Option<(String, String)>,
}

/// The log (or a range of its streams), stream after stream, each oldest first: what a
/// rebuild folds and what verification walks. One range scan of the primary key; streamed,
/// so memory holds one stream at a time however long the log is.
pub fn scan_streams<'c>(
    conn: &'c mut PgConnection,
    range: &StreamRange,
) -> BoxStream<'c, sqlx::Result<StoredEvent>> {
    macro_rules! scan {
        ($range:literal) => {
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE ",
                $range,
                " ORDER BY aggregate_type, aggregate_id, sequence"
            )
        };
    }
    let sql = match (&range.from, &range.to) {
        (None, None) => scan!("true"),
        (Some(_), None) => scan!("(aggregate_type, aggregate_id) >= ($1, $2)"),
        (None, Some(_)) => scan!("(aggregate_type, aggregate_id) < ($1, $2)"),
        (Some(_), Some(_)) => scan!(
            "(aggregate_type, aggregate_id) >= ($1, $2) AND (aggregate_type, aggregate_id) < ($3, $4)"
        ),
    };
    let mut query = sqlx::query(sql);
    for (aggregate_type, aggregate_id) in [&range.from, &range.to].into_iter().flatten() {
        query = query
            .bind(aggregate_type.clone())
            .bind(aggregate_id.clone());
    }
    query
        .fetch(conn)
        .map(|row| row.and_then(|row| StoredEvent::from_row(&row)))
        .boxed()
}

/// An event to append, linked into its stream's hash chain.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
}

/// The insert of `events` into the append statement (its part `appended`, which returns each
/// event's place in the feed as `tx` and `global_position`). `recorded_at` is one instant for
/// the whole append: one statement, one commit.
pub fn push_append<'a>(
    statement: &mut Statement<'a>,
    events: &'a [NewEvent],
    recorded_at: DateTime<Utc>,
) {
    statement.part("appended", |qb, guard| {
        qb.push(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata, recorded_at, prev_hash, hash) \
             SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                 metadata, ",
        )
        .push_bind(recorded_at)
        .push("::timestamptz, prev_hash, hash FROM ");
        Unnest::new(qb)
            .column("aggregate_type", "text", map(events, |e| e.aggregate_type))
            .column(
                "aggregate_id",
                "text",
                map(events, |e| e.aggregate_id.as_str()),
            )
            .column("sequence", "bigint", map(events, |e| e.sequence))
            .column("event_type", "text", map(events, |e| e.event_type.as_str()))
            .column(
                "event_version",
                "text",
                map(events, |e| e.event_version.as_str()),
            )
            .column("payload", "jsonb", map(events, |e| &e.payload))
            .column("metadata", "jsonb", map(events, |e| &e.metadata))
            .column(
                "prev_hash",
                "bytea",
                map(events, |e| e.prev_hash.as_deref()),
            )
            .column("hash", "bytea", map(events, |e| e.hash.as_slice()))
            .finish("u");
        qb.push(" WHERE ")
            .push(guard)
            .push(" RETURNING tx_id::text::bigint AS tx, global_position");
    });
}

/// A stream folded into its aggregate, with what the read models keep beside the state and
/// what the next append chains onto.
#[derive(Clone, Debug)]
pub struct Fold<A> {
    pub state: A,
    /// Events applied: the stream's sequence number, the resource's `versionId`.
    pub version: u64,
    /// When the first event was recorded.
    pub created_at: Option<DateTime<Utc>>,
    /// When the latest event was recorded (`meta.lastUpdated`).
    pub last_updated: Option<DateTime<Utc>>,
    /// The source system of the latest event (`meta.source`).
    pub source: Option<String>,
    /// The latest event's hash, which the next event links to.
    pub last_hash: Option<Vec<u8>>,
}

impl<A: Default> Default for Fold<A> {
    fn default() -> Self {
        Self {
            state: A::default(),
            version: 0,
            created_at: None,
            last_updated: None,
            source: None,
            last_hash: None,
        }
    }
}

impl<A: Aggregate> Fold<A> {
    /// The state as JSON text (bound as text, cast to jsonb by the statement: no intermediate
    /// `Value` tree per row).
    pub(crate) fn state_json(&self) -> Result<String, ProjectionError> {
        serde_json::to_string(&self.state).map_err(|e| {
            Undecodable {
                aggregate_type: A::TYPE.to_owned(),
                sequence: self.version as i64,
                reason: format!("state cannot be stored: {e}"),
            }
            .into()
        })
    }

    /// When the stream's first and latest events were recorded (a stream is projected only
    /// once it has events).
    pub(crate) fn recorded(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), ProjectionError> {
        match (self.created_at, self.last_updated) {
            (Some(created), Some(updated)) => Ok((created, updated)),
            _ => Err(Undecodable {
                aggregate_type: A::TYPE.to_owned(),
                sequence: 0,
                reason: "a stream without events has no rows".to_owned(),
            }
            .into()),
        }
    }

    /// Folds a stream's events, oldest first.
    pub fn of<'e>(events: impl IntoIterator<Item = &'e StoredEvent>) -> Result<Self, Undecodable> {
        let mut fold = Self::default();
        for event in events {
            fold.apply(event)?;
        }
        Ok(fold)
    }

    /// Applies the stream's next stored event with the domain's own `apply`.
    pub fn apply(&mut self, event: &StoredEvent) -> Result<(), Undecodable> {
        let decoded = A::Event::deserialize(&event.payload).map_err(|e| Undecodable {
            aggregate_type: event.aggregate_type.clone(),
            sequence: event.sequence,
            reason: e.to_string(),
        })?;
        self.state.apply(decoded);
        self.version = event.sequence as u64;
        self.created_at.get_or_insert(event.recorded_at);
        self.last_updated = Some(event.recorded_at);
        self.source = event.meta("source_system").map(str::to_owned);
        self.last_hash = Some(event.hash.clone());
        Ok(())
    }

    /// Records `count` events just appended, which the aggregate has already applied to
    /// `state` while deciding them: what `apply` would have recorded had they been read back.
    pub fn appended(
        &mut self,
        count: u64,
        recorded_at: DateTime<Utc>,
        source: &str,
        last_hash: Vec<u8>,
    ) {
        self.version += count;
        self.created_at.get_or_insert(recorded_at);
        self.last_updated = Some(recorded_at);
        self.source = Some(source.to_owned());
        self.last_hash = Some(last_hash);
    }
}

/// Every version of a stream: the state after each event, with the event (for histories,
/// `_at` and vread).
pub fn versions<A: Aggregate + Clone>(
    events: Vec<StoredEvent>,
) -> Result<Vec<(A, StoredEvent)>, Undecodable> {
    let mut fold = Fold::<A>::default();
    let mut versions = Vec::with_capacity(events.len());
    for event in events {
        fold.apply(&event)?;
        versions.push((fold.state.clone(), event));
    }
    Ok(versions)
}
