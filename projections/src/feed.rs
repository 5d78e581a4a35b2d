//! The global event feed, read without ever skipping a late-committing transaction: the public
//! reader every follower of the log uses (the registry's checkpoint today; GraphQL
//! subscriptions and DCI notifications next, DESIGN invariant 8). A follower keeps a durable
//! `FeedPosition`, reads pages after it with `read_page`, and sleeps on `EVENTS_CHANNEL`, which
//! every process notifies after its appends commit.
//!
//! `global_position` is taken at INSERT time, so a higher position can commit before a lower
//! one (stack.md §2.8). Readers therefore order by `(tx_id, global_position)` and take only
//! events whose transaction is older than every transaction that may still append: anything
//! below that horizon has committed or aborted for good, so nothing can appear behind the
//! checkpoint later (DESIGN invariant 2).
//!
//! The horizon is computed per database. `pg_snapshot_xmin` alone would be the oldest running
//! transaction of the whole cluster, so one long transaction in any other database (a batch
//! job, another application, a parallel test run) would hold every follower back. Only sessions
//! of this database can append here, so the horizon is the oldest transaction id among them
//! (see `horizon`).

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::events::{event_columns, FeedPosition, StoredEvent};

/// One page of the feed: the events after a position, in feed order. Ordered and filtered on
/// the `xid8` column itself, so the `events_feed` index `(tx_id, global_position)` serves it as
/// an index range scan that stops after `$3` rows: no sort, and a page costs the same at any
/// length of the log (a test holds the plan at millions of events). The horizon is applied by
/// the reader, not here, so that a page also tells whether committed events wait behind it.
pub const PAGE_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
     ORDER BY events.tx_id, events.global_position LIMIT $3"
);

/// The events after `$1:$2` up to and including `$3:$4`, in feed order (the same index range
/// scan as `PAGE_SQL`, bounded above).
const BETWEEN_SQL: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
     AND (events.tx_id, events.global_position) <= ($3::text::xid8, $4) \
     ORDER BY events.tx_id, events.global_position LIMIT $5"
);

/// Up to `limit` events after `after` and not after `upto`, in feed order. `upto` must be a
/// position the feed follower has reached (the registry checkpoint): everything up to it has
/// committed for good, so no horizon is needed and no later commit can land in the range. A
/// reader that follows the checkpoint thus delivers exactly what the follower saw, in its
/// order, from any process.
pub async fn read_between(
    pool: &PgPool,
    after: FeedPosition,
    upto: FeedPosition,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    sqlx::query(BETWEEN_SQL)
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .bind(upto.tx_id.to_string())
        .bind(upto.position)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(StoredEvent::from_row)
        .collect()
}

/// How many events `touched_since` reads at most before it answers "maybe".
pub const TOUCHED_READ: i64 = 10_000;

/// Whether the first `$3` events after `$1:$2` (the same index range scan as `PAGE_SQL`,
/// reading only their types and streams) include one of the aggregate types `$4` or one of
/// the streams `$5`, and how many were read.
pub const TOUCHED_SQL: &str = "SELECT count(*), \
         coalesce(bool_or(later.aggregate_type = ANY($4) OR later.aggregate_id = ANY($5)), false) \
     FROM (SELECT events.aggregate_type, events.aggregate_id FROM events \
           WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
           ORDER BY events.tx_id, events.global_position LIMIT $3) AS later";

/// Whether an event of one of `aggregate_types`, or of one of `streams`, may have committed
/// after `after`: every event that has committed by now and follows `after` in the feed is
/// read (its type and stream only), up to `TOUCHED_READ` of them; past that the answer is yes,
/// unread. With `after` a position the feed follower had reached before something was read
/// from the read models, a `false` means no such event committed since that read: what it
/// decided still holds.
pub async fn touched_since(
    pool: &PgPool,
    after: FeedPosition,
    aggregate_types: &[&str],
    streams: &[String],
) -> sqlx::Result<bool> {
    let (read, touched): (i64, bool) = sqlx::query_as(TOUCHED_SQL)
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .bind(TOUCHED_READ)
        .bind(aggregate_types)
        .bind(streams)
        .fetch_one(pool)
        .await?;
    Ok(touched || read >= TOUCHED_READ)
}

/// Events (or what is read of them) after a position, in feed order, all below the horizon.
#[derive(Debug)]
pub struct FeedPage<T = StoredEvent> {
    pub events: Vec<T>,
    /// Events of transactions at or above the horizon were seen: they are committed (or being
    /// committed) but an older transaction of this database may still append before them. A
    /// follower should look again shortly; no notification will say when that older one ends.
    pub held_back: bool,
}

impl<T> Default for FeedPage<T> {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            held_back: false,
        }
    }
}

/// What a page of the feed is read as: whole events, or only their places in it.
trait FeedRead: Sized {
    /// The page's statement (`$1:$2` the position after which it reads, `$3` its length).
    const SQL: &'static str;
    fn from_row(row: &PgRow) -> sqlx::Result<Self>;
    fn feed(&self) -> FeedPosition;
}

impl FeedRead for StoredEvent {
    const SQL: &'static str = PAGE_SQL;
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        StoredEvent::from_row(row)
    }
    fn feed(&self) -> FeedPosition {
        self.feed
    }
}

/// The places of a page's events (the same index range scan as `PAGE_SQL`, without reading
/// or decoding a payload).
pub const POSITIONS_SQL: &str =
    "SELECT events.tx_id::text::bigint, events.global_position FROM events \
     WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
     ORDER BY events.tx_id, events.global_position LIMIT $3";

impl FeedRead for FeedPosition {
    const SQL: &'static str = POSITIONS_SQL;
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(FeedPosition {
            tx_id: row.try_get(0)?,
            position: row.try_get(1)?,
        })
    }
    fn feed(&self) -> FeedPosition {
        *self
    }
}

/// Up to `limit` events after `after`, in feed order, all below the horizon. Takes a pool,
/// not a transaction: the horizon is only sound when the page is read in a later snapshot.
pub async fn read_after(
    pool: &PgPool,
    after: FeedPosition,
    limit: i64,
) -> sqlx::Result<Vec<StoredEvent>> {
    Ok(read_page(pool, after, limit).await?.events)
}

/// As `read_after`, and whether events wait above the horizon.
pub async fn read_page(pool: &PgPool, after: FeedPosition, limit: i64) -> sqlx::Result<FeedPage> {
    read(pool, after, limit).await
}

/// As `read_page`, the places of the events only: what a follower that only counts them (the
/// registry's checkpoint, `runner.rs`) reads, without the payloads it would not look at.
pub async fn read_positions(
    pool: &PgPool,
    after: FeedPosition,
    limit: i64,
) -> sqlx::Result<FeedPage<FeedPosition>> {
    read(pool, after, limit).await
}

async fn read<T: FeedRead>(
    pool: &PgPool,
    after: FeedPosition,
    limit: i64,
) -> sqlx::Result<FeedPage<T>> {
    let horizon = horizon(pool).await?;
    let rows = sqlx::query(T::SQL)
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut page = FeedPage::default();
    for row in &rows {
        let event = T::from_row(row)?;
        // The page is in transaction order: everything after the first event at or above the
        // horizon is above it too.
        if event.feed().tx_id >= horizon {
            page.held_back = true;
            break;
        }
        page.events.push(event);
    }
    Ok(page)
}

/// The id below which every transaction that could append to this database's events has
/// ended, taken in one statement before the events are read (in a later one):
///
/// 1. `bound`: the xmax of the statement's snapshot, taken when the statement starts. A
///    transaction with a smaller id had its id before then.
/// 2. the ids of this database's sessions (and prepared transactions) still running, read
///    from shared memory while the statement executes, so after `bound` was fixed. A
///    transaction with an id below `bound` is either among them, or has ended, and then the
///    later snapshot of the events read sees its commit.
///
/// Sessions hidden by privileges could be appenders we cannot see: then the cluster-wide
/// `pg_snapshot_xmin`, always safe, is used instead.
async fn horizon(pool: &PgPool) -> sqlx::Result<i64> {
    let (bound, running, hidden, cluster_xmin): (i64, Vec<i64>, bool, i64) = sqlx::query_as(
        "SELECT \
           pg_snapshot_xmax(pg_current_snapshot())::text::bigint, \
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
