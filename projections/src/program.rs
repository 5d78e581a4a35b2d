//! The Program read model: search by name, status, target type and `_lastUpdated`.

use chrono::{DateTime, Utc};
use openspp_aggregates::{Identifier, Program};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::feed::StoredEvent;
use crate::fold::fold_streams;
use crate::runner::ProjectionError;
use crate::search::{like_contains, push_instants, Comparator, Found, Page, SortKey};
use crate::view::{self, search_text, ViewRow};

pub type ProgramRow = ViewRow<Program>;

#[derive(Debug)]
pub struct ProgramQuery {
    pub name: Option<String>,
    pub status: Option<String>,
    pub target_type: Option<String>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    /// Streams of the programs the caller is limited to; `None` = every program.
    pub allowed: Option<Vec<String>>,
    pub sort: Vec<SortKey>,
}

pub const SORT_COLUMNS: [(&str, &str); 2] = [("name", "name"), ("_lastUpdated", "last_updated")];

fn status_name(program: &Program) -> &'static str {
    match program.status {
        Some(openspp_aggregates::ProgramStatus::Ended) => "ended",
        Some(openspp_aggregates::ProgramStatus::Archived) => "archived",
        _ => "active",
    }
}

pub(crate) async fn project(
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    for folded in fold_streams::<Program>(conn, "program_view", events).await? {
        let state = &folded.state;
        let state_json = serde_json::to_value(state).map_err(|e| ProjectionError::Undecodable {
            aggregate_type: "Program".into(),
            sequence: folded.version,
            reason: e.to_string(),
        })?;
        let identifiers: Vec<String> = state.live_identifiers().map(Identifier::key).collect();
        let target = match state.target_type {
            Some(openspp_aggregates::program::TargetType::Individual) => "individual",
            _ => "group",
        };
        sqlx::query(
            "INSERT INTO program_view (aggregate_id, version, state, primary_identifier, identifiers, \
                 name_search, name, status, target_type, created_at, last_updated, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (aggregate_id) DO UPDATE SET version = EXCLUDED.version, \
                 state = EXCLUDED.state, primary_identifier = EXCLUDED.primary_identifier, \
                 identifiers = EXCLUDED.identifiers, name_search = EXCLUDED.name_search, \
                 name = EXCLUDED.name, status = EXCLUDED.status, target_type = EXCLUDED.target_type, \
                 last_updated = EXCLUDED.last_updated, source = EXCLUDED.source",
        )
        .bind(&folded.aggregate_id)
        .bind(folded.version)
        .bind(state_json)
        .bind(identifiers.first())
        .bind(&identifiers)
        .bind(search_text([&state.name]))
        .bind(&state.name)
        .bind(status_name(state))
        .bind(target)
        .bind(folded.created_at)
        .bind(folded.last_updated)
        .bind(&folded.source)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<ProgramRow>> {
    view::get(pool, "program_view", aggregate_id).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &ProgramQuery) {
    qb.push(" WHERE true");
    if let Some(name) = &query.name {
        qb.push(" AND name_search LIKE ")
            .push_bind(like_contains(name));
    }
    if let Some(status) = &query.status {
        qb.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(target) = &query.target_type {
        qb.push(" AND target_type = ").push_bind(target.clone());
    }
    if let Some(allowed) = &query.allowed {
        qb.push(" AND aggregate_id = ANY(")
            .push_bind(allowed.clone())
            .push(")");
    }
    push_instants(qb, "last_updated", &query.last_updated);
}

pub async fn search(
    pool: &PgPool,
    query: &ProgramQuery,
    page: Page,
) -> sqlx::Result<Found<ProgramRow>> {
    view::search(
        pool,
        "program_view",
        |qb| push_filters(qb, query),
        &query.sort,
        page,
    )
    .await
}
