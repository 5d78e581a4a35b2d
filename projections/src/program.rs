//! The Program read model: search by name, status, target type and `_lastUpdated`.

use chrono::{DateTime, Utc};
use openspp_aggregates::{Identifier, Program};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::ProjectionError;
use crate::events::Fold;
use crate::search::{like_contains, push_instants, Comparator, SortKey};
use crate::statement::{map, text_array_literal, Statement, Unnest};
use crate::view::{self, ViewQuery, ViewRow};
use openspp_aggregates::bounds::search_text;

pub type ProgramRow = ViewRow<Program>;

#[derive(Debug)]
pub struct ProgramQuery {
    /// `identifier=`: the program's stream (`None` inside: no program holds it).
    pub identifier: Option<Option<String>>,
    pub name: Option<String>,
    /// `type=`: a code of `urn:openspp:vocab:program-type`.
    pub program_type: Option<String>,
    /// `_lastId=`: only programs after this one (a stream) in the server's own order.
    pub after: Option<String>,
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

/// The `program_view` row of one stream.
pub(crate) struct Line {
    aggregate_id: String,
    version: i64,
    state: String,
    primary: Option<String>,
    /// `text[]` as an array literal (see `text_array_literal`).
    identifiers: String,
    name_search: String,
    name: String,
    status: &'static str,
    target_type: &'static str,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

/// The row stream `aggregate_id` puts in the read model, as `fold` now holds it.
pub(crate) fn line(aggregate_id: &str, fold: &Fold<Program>) -> Result<Line, ProjectionError> {
    let state = &fold.state;
    let identifiers: Vec<String> = state.live_identifiers().map(Identifier::key).collect();
    let (created_at, last_updated) = fold.recorded()?;
    Ok(Line {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        primary: identifiers.first().cloned(),
        identifiers: text_array_literal(identifiers.iter().map(String::as_str)),
        name_search: search_text([&state.name]),
        name: state.name.clone(),
        status: status_name(state),
        target_type: state.serves().as_str(),
        created_at,
        last_updated,
        source: fold.source.clone(),
    })
}

/// Writes `lines` (one per stream) as one upsert.
pub(crate) fn push_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [Line]) {
    if lines.is_empty() {
        return;
    }
    statement.part("program_rows", |qb, guard| {
        qb.push(
            "INSERT INTO program_view (aggregate_id, version, state, primary_identifier, \
                 identifiers, name_search, name, status, target_type, created_at, last_updated, \
                 source) \
             SELECT aggregate_id, version, state::jsonb, primary_identifier, identifiers::text[], \
                 name_search, name, status, target_type, created_at, last_updated, source FROM ",
        );
        Unnest::new(qb)
            .column(
                "aggregate_id",
                "text",
                map(lines, |l| l.aggregate_id.as_str()),
            )
            .column("version", "bigint", map(lines, |l| l.version))
            .column("state", "text", map(lines, |l| l.state.as_str()))
            .column(
                "primary_identifier",
                "text",
                map(lines, |l| l.primary.as_deref()),
            )
            .column(
                "identifiers",
                "text",
                map(lines, |l| l.identifiers.as_str()),
            )
            .column(
                "name_search",
                "text",
                map(lines, |l| l.name_search.as_str()),
            )
            .column("name", "text", map(lines, |l| l.name.as_str()))
            .column("status", "text", map(lines, |l| l.status))
            .column("target_type", "text", map(lines, |l| l.target_type))
            .column("created_at", "timestamptz", map(lines, |l| l.created_at))
            .column(
                "last_updated",
                "timestamptz",
                map(lines, |l| l.last_updated),
            )
            .column("source", "text", map(lines, |l| l.source.as_deref()))
            .finish("u");
        qb.push(" WHERE ").push(guard).push(
            " ON CONFLICT (aggregate_id) DO UPDATE SET version = EXCLUDED.version, \
                 state = EXCLUDED.state, primary_identifier = EXCLUDED.primary_identifier, \
                 identifiers = EXCLUDED.identifiers, name_search = EXCLUDED.name_search, \
                 name = EXCLUDED.name, status = EXCLUDED.status, \
                 target_type = EXCLUDED.target_type, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        );
    });
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<ProgramRow>> {
    view::get(pool, "program_view", aggregate_id).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &ProgramQuery) {
    qb.push(" WHERE true");
    match &query.identifier {
        Some(Some(stream)) => {
            qb.push(" AND aggregate_id = ").push_bind(stream.clone());
        }
        Some(None) => {
            qb.push(" AND false");
        }
        None => {}
    }
    if let Some(code) = &query.program_type {
        qb.push(" AND state->'program_type'->>'code' = ")
            .push_bind(code.clone());
    }
    if let Some(after) = &query.after {
        qb.push(" AND aggregate_id > ").push_bind(after.clone());
    }
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

impl ViewQuery for ProgramQuery {
    type State = Program;
    const TABLE: &'static str = "program_view";
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_filters(qb, query)
    }
    fn order(&self) -> &[SortKey] {
        &self.sort
    }
}
