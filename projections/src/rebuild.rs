//! Rebuilding the read models from the whole log (`openspp replay`), at a speed that does not
//! fall as the log grows.
//!
//! The log is read stream after stream (`scan_streams`), each stream folded in memory with the
//! same `Fold` the appends use and projected by the same `ReadModel::project`, so the rebuild
//! writes exactly the rows the appends wrote, and memory holds one stream per reader at a
//! time. `READERS` readers each fold their own range of streams (a range of the primary key,
//! split where a sample of the log puts its middle), so PostgreSQL produces the rows and the
//! folds run on every core; rows go out in large multi-row statements from one writer, so
//! reading and folding overlap with PostgreSQL's writing. Everything is written in ONE
//! transaction: the tables are emptied, their secondary indexes dropped (a bulk build after
//! the load is several times cheaper than index maintenance row by row) and their triggers
//! disabled (what they keep is set for every row after the load), refilled, the indexes
//! recreated from their own definitions, and committed; a failure anywhere leaves the
//! read models as they were.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;

use crate::begin::begin;
use crate::error::{ProjectionError, RebuildError};
use crate::events::{scan_streams, StreamRange};
use crate::rows::{fold_for, refresh_statistics, Rows, StreamFold, TABLES};
use crate::runner::try_lead;
use crate::statement::Statement;

/// Streams per write statement.
const CHUNK: usize = 5_000;
/// Readers folding ranges of the log at once.
const READERS: usize = 2;
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What a rebuild did, and where its time went.
#[derive(Debug, Clone, Copy)]
pub struct Rebuilt {
    /// Events read from the log.
    pub events: u64,
    /// Streams folded.
    pub streams: u64,
    /// Reading, folding and writing the rows.
    pub load: Duration,
    /// Recreating the secondary indexes, committing and refreshing statistics.
    pub indexes: Duration,
}

/// Rebuilds every table of `TABLES` from the log; `progress` hears how many events were read
/// since it last heard. Holds the feed's leadership throughout, so it refuses to run beside a
/// live server (whose appends write these tables too).
pub async fn rebuild(
    pool: &PgPool,
    mut progress: impl FnMut(usize),
) -> Result<Rebuilt, RebuildError> {
    let started = Instant::now();
    let _leadership = try_lead(pool)
        .await?
        .ok_or(RebuildError::ProjectorRunning)?;
    let ranges = split(pool, READERS).await?;
    let mut tx = begin(pool).await?;
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("TRUNCATE {}", TABLES.join(", ")))
        .execute(&mut *tx)
        .await?;
    let indexes = drop_secondary_indexes(&mut tx).await?;
    set_triggers(&mut tx, "DISABLE").await?;

    let (sender, receiver) = mpsc::channel::<Rows>(READERS + 1);
    let writer = tokio::spawn(write_all(tx, receiver));
    let read = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = ranges
        .into_iter()
        .map(|range| {
            tokio::spawn(fold_range(
                pool.clone(),
                range,
                sender.clone(),
                read.clone(),
            ))
        })
        .collect();
    drop(sender);
    let mut reported = 0;
    while !readers.iter().all(|reader| reader.is_finished()) {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let now = read.load(Ordering::Relaxed);
        progress(now - reported);
        reported = now;
    }
    let mut streams = 0;
    let mut failed = None;
    for reader in readers {
        match reader.await {
            Ok(Ok(folded)) => streams += folded,
            Ok(Err(error)) => failed = failed.or(Some(error)),
            Err(_) => failed = failed.or(Some(sqlx::Error::WorkerCrashed.into())),
        }
    }
    let written = writer.await;
    if let Some(error) = failed {
        // The writer's transaction is dropped unfinished: nothing changes.
        return Err(error.into());
    }
    let mut tx = written
        .map_err(|_| ProjectionError::Database(sqlx::Error::WorkerCrashed))
        .and_then(|written| written.map_err(ProjectionError::from))?;
    let now = read.load(Ordering::Relaxed);
    progress(now - reported);
    let load = started.elapsed();
    // What the triggers keep row by row (migrations 0225, 0260), set for all rows at once.
    for fill in ["fill_membership_counted_facts", "fill_consent_reach"] {
        sqlx::query(&format!("SELECT {fill}()"))
            .execute(&mut *tx)
            .await?;
    }
    set_triggers(&mut tx, "ENABLE").await?;
    for definition in &indexes {
        sqlx::query(definition).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    // Fresh statistics for the planner: the tables changed wholesale.
    refresh_statistics(pool, &[]).await?;
    Ok(Rebuilt {
        events: now as u64,
        streams,
        load,
        indexes: started.elapsed() - load,
    })
}

/// Ranges of streams splitting the log into about `parts` equal shares, by a sample of its
/// pages (a small log is one range).
pub async fn split(pool: &PgPool, parts: usize) -> Result<Vec<StreamRange>, ProjectionError> {
    let sample: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id FROM events TABLESAMPLE SYSTEM (1) \
         ORDER BY aggregate_type, aggregate_id",
    )
    .fetch_all(pool)
    .await?;
    if sample.len() < 100 * parts {
        return Ok(vec![StreamRange::default()]);
    }
    let mut bounds: Vec<Option<(String, String)>> = (1..parts)
        .map(|k| Some(sample[k * sample.len() / parts].clone()))
        .collect();
    bounds.dedup();
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut from = None;
    for to in bounds {
        ranges.push(StreamRange {
            from: from.clone(),
            to: to.clone(),
        });
        from = to;
    }
    ranges.push(StreamRange { from, to: None });
    Ok(ranges)
}

/// Folds every stream of `range` and sends their rows, `CHUNK` streams at a time; counts the
/// events read in `read`. Returns how many streams it folded.
async fn fold_range(
    pool: PgPool,
    range: StreamRange,
    sender: mpsc::Sender<Rows>,
    read: Arc<AtomicUsize>,
) -> Result<u64, ProjectionError> {
    let mut reader = pool.acquire().await?;
    let mut events = scan_streams(&mut reader, &range);
    let mut rows = Rows::default();
    let mut current: Option<Folding> = None;
    let (mut streams, mut unreported) = (0u64, 0usize);
    while let Some(event) = events.try_next().await? {
        let same = current.as_ref().is_some_and(|c| {
            c.aggregate_type == event.aggregate_type && c.aggregate_id == event.aggregate_id
        });
        if !same {
            if let Some(done) = current.take() {
                done.project(&mut rows)?;
                streams += 1;
                if rows.len() >= CHUNK && sender.send(std::mem::take(&mut rows)).await.is_err() {
                    // The writer stopped; its error is reported by `rebuild`.
                    return Ok(streams);
                }
            }
            current = Some(Folding {
                fold: fold_for(&event.aggregate_type),
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
            });
        }
        if let Some(fold) = current.as_mut().and_then(|c| c.fold.as_mut()) {
            fold.apply(&event)?;
        }
        unreported += 1;
        if unreported == 1_000 {
            read.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
    }
    read.fetch_add(unreported, Ordering::Relaxed);
    if let Some(done) = current.take() {
        done.project(&mut rows)?;
        streams += 1;
    }
    if !rows.is_empty() {
        let _ = sender.send(rows).await;
    }
    Ok(streams)
}

/// The stream being folded; `fold` is `None` for a type without read models.
struct Folding {
    aggregate_type: String,
    aggregate_id: String,
    fold: Option<Box<dyn StreamFold>>,
}

impl Folding {
    fn project(self, rows: &mut Rows) -> Result<(), ProjectionError> {
        match self.fold {
            Some(fold) => fold.project(&self.aggregate_id, rows),
            None => Ok(()),
        }
    }
}

/// Writes each chunk of rows as it arrives; hands the transaction back when the chunks end.
async fn write_all(
    mut tx: Transaction<'static, Postgres>,
    mut chunks: mpsc::Receiver<Rows>,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    while let Some(rows) = chunks.recv().await {
        let mut statement = Statement::new();
        rows.push_into(&mut statement);
        if statement.is_empty() {
            continue;
        }
        statement
            .finish("SELECT 1")
            .build()
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// Disables (or enables again) the triggers of `TABLES` within the rebuild's transaction:
/// they keep facts one table takes from another row by row (a membership's copy of its
/// beneficiary's counted facts, migration 0225; a registrant's consent reach, from the consent
/// index, migration 0260), which the rebuild sets for every row at once
/// after the load, as it builds the indexes after it. Row by row they would look up, in tables
/// whose indexes are dropped, rows that the other reader may not have written yet.
async fn set_triggers(
    tx: &mut Transaction<'static, Postgres>,
    action: &str,
) -> Result<(), ProjectionError> {
    for table in TABLES {
        sqlx::query(&format!("ALTER TABLE {table} {action} TRIGGER USER"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Drops the indexes of `TABLES` that back no constraint (the primary keys stay: the upserts
/// name them) and returns their definitions, to be run again after the load.
async fn drop_secondary_indexes(
    tx: &mut Transaction<'static, Postgres>,
) -> Result<Vec<String>, ProjectionError> {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) \
         FROM pg_index i \
         WHERE i.indrelid = ANY (ARRAY(SELECT to_regclass(t) FROM unnest($1::text[]) AS t)) \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
         ORDER BY 1",
    )
    .bind(TABLES)
    .fetch_all(&mut **tx)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(indexes
        .into_iter()
        .map(|(_, definition)| definition)
        .collect())
}
