//! Rebuilding the read models from the whole log (`openspp replay`), at a speed that does not
//! fall as the log grows.
//!
//! The log is read stream after stream (`scan_streams`), each stream folded in memory with the
//! same `Fold` the appends use and projected by the same `ReadModel::project`, so the rebuild
//! writes exactly the rows the appends wrote, and memory holds one stream at a time. Rows go
//! out in large multi-row statements from a second task, so reading and folding overlap with
//! PostgreSQL's writing. Everything happens in ONE transaction: the tables are emptied, their
//! secondary indexes dropped (a bulk build after the load is several times cheaper than index
//! maintenance row by row), refilled, the indexes recreated from their own definitions, and
//! committed; a failure anywhere leaves the read models as they were.

use futures_util::TryStreamExt;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;

use crate::error::{ProjectionError, RebuildError};
use crate::events::scan_streams;
use crate::rows::{fold_for, Rows, StreamFold, TABLES};
use crate::runner::try_lead;
use crate::statement::Statement;

/// Streams per write statement.
const CHUNK: usize = 5_000;
/// Events between two progress reports.
const PROGRESS_STEP: usize = 10_000;

/// Rebuilds every table of `TABLES` from the log; `progress` hears how many events were read
/// since it last heard. Holds the feed's leadership throughout, so it refuses to run beside a
/// live server (whose appends write these tables too). Returns the number of events read.
pub async fn rebuild(pool: &PgPool, mut progress: impl FnMut(usize)) -> Result<u64, RebuildError> {
    let _leadership = try_lead(pool)
        .await?
        .ok_or(RebuildError::ProjectorRunning)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("TRUNCATE {}", TABLES.join(", ")))
        .execute(&mut *tx)
        .await?;
    let indexes = drop_secondary_indexes(&mut tx).await?;

    let (sender, receiver) = mpsc::channel::<Rows>(2);
    let writer = tokio::spawn(write_all(tx, receiver));
    let mut reader = pool.acquire().await?;
    let mut events = scan_streams(&mut reader);
    let mut rows = Rows::default();
    let mut current: Option<Folding> = None;
    let (mut read, mut unreported) = (0u64, 0usize);
    while let Some(event) = events.try_next().await.map_err(ProjectionError::from)? {
        let same = current.as_ref().is_some_and(|c| {
            c.aggregate_type == event.aggregate_type && c.aggregate_id == event.aggregate_id
        });
        if !same {
            if let Some(done) = current.take() {
                done.project(&mut rows)?;
                if rows.len() >= CHUNK && sender.send(std::mem::take(&mut rows)).await.is_err() {
                    // The writer stopped; its error is reported below.
                    break;
                }
            }
            current = Some(Folding {
                fold: fold_for(&event.aggregate_type),
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
            });
        }
        if let Some(fold) = current.as_mut().and_then(|c| c.fold.as_mut()) {
            fold.apply(&event).map_err(ProjectionError::from)?;
        }
        read += 1;
        unreported += 1;
        if unreported >= PROGRESS_STEP {
            progress(unreported);
            unreported = 0;
        }
    }
    drop(events);
    if let Some(done) = current.take() {
        done.project(&mut rows)?;
    }
    if !rows.is_empty() {
        let _ = sender.send(rows).await;
    }
    drop(sender);
    progress(unreported);
    let mut tx = writer
        .await
        .map_err(|_| ProjectionError::Database(sqlx::Error::WorkerCrashed))
        .and_then(|written| written.map_err(ProjectionError::from))?;
    for definition in &indexes {
        sqlx::query(definition).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    // Fresh statistics for the planner: the tables changed wholesale.
    sqlx::query(&format!("ANALYZE {}", TABLES.join(", ")))
        .execute(pool)
        .await?;
    Ok(read)
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
