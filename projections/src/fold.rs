//! Folding a batch of events into the stored state of each stream they touch, with the domain's
//! own `apply`: a read model and a point-in-time read cannot disagree about what an event means.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::Value;
use sqlx::{PgConnection, Row};

use crate::feed::StoredEvent;
use crate::runner::ProjectionError;

/// Rows per multi-row upsert: well under PostgreSQL's 65,535 bind parameters.
pub(crate) const UPSERT_CHUNK: usize = 2_000;

/// A stream's state after the batch, with what the read models keep beside it.
pub(crate) struct Folded<A> {
    pub aggregate_id: String,
    pub state: A,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    pub source: Option<String>,
}

/// Loads the current state of every stream of type `A` in `events` from `table`, applies the
/// events, and returns the new states in order of first appearance. Events the stored state
/// already includes are skipped, so applying a batch twice changes nothing.
pub(crate) async fn fold_streams<A: Aggregate>(
    conn: &mut PgConnection,
    table: &'static str,
    events: &[StoredEvent],
) -> Result<Vec<Folded<A>>, ProjectionError> {
    let mine: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.aggregate_type == A::TYPE)
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = Vec::new();
    for event in &mine {
        if !ids.contains(&event.aggregate_id) {
            ids.push(event.aggregate_id.clone());
        }
    }
    let rows = sqlx::query(&format!(
        "SELECT aggregate_id, version, state, created_at, last_updated, source \
         FROM {table} WHERE aggregate_id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut stored: HashMap<String, Folded<A>> = HashMap::with_capacity(rows.len());
    for row in rows {
        let aggregate_id: String = row.try_get("aggregate_id")?;
        let state: Value = row.try_get("state")?;
        let state = serde_json::from_value(state).map_err(|e| ProjectionError::Undecodable {
            aggregate_type: A::TYPE.to_owned(),
            sequence: 0,
            reason: format!("stored state: {e}"),
        })?;
        stored.insert(
            aggregate_id.clone(),
            Folded {
                aggregate_id,
                state,
                version: row.try_get("version")?,
                created_at: row.try_get("created_at")?,
                last_updated: row.try_get("last_updated")?,
                source: row.try_get("source")?,
            },
        );
    }
    for event in mine {
        let folded = stored
            .entry(event.aggregate_id.clone())
            .or_insert_with(|| Folded {
                aggregate_id: event.aggregate_id.clone(),
                state: A::default(),
                version: 0,
                created_at: event.recorded_at,
                last_updated: event.recorded_at,
                source: None,
            });
        if event.sequence <= folded.version {
            continue;
        }
        let payload: A::Event = serde_json::from_value(event.payload.clone()).map_err(|e| {
            ProjectionError::Undecodable {
                aggregate_type: event.aggregate_type.clone(),
                sequence: event.sequence,
                reason: e.to_string(),
            }
        })?;
        folded.state.apply(payload);
        folded.version = event.sequence;
        folded.last_updated = event.recorded_at;
        folded.source = event.meta("source_system").map(str::to_owned);
    }
    Ok(ids
        .into_iter()
        .filter_map(|id| stored.remove(&id))
        .collect())
}
