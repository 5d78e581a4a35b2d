//! The ProgramMembership read model: memberships by program and by beneficiary.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use openspp_aggregates::ProgramMembership;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::consent::{push_visible_by, Visibility};
use crate::feed::StoredEvent;
use crate::fold::fold_streams;
use crate::runner::ProjectionError;
use crate::search::{push_instants, Comparator, Found, Page, SortKey};
use crate::view::{self, ViewRow};

pub type MembershipRow = ViewRow<ProgramMembership>;

#[derive(Debug)]
pub struct MembershipQuery {
    pub program: Option<String>,
    pub beneficiary: Option<String>,
    pub status: Option<String>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    /// Streams of the programs the caller is limited to; `None` = all.
    pub allowed_programs: Option<Vec<String>>,
    pub visibility: Visibility,
    pub sort: Vec<SortKey>,
}

pub const SORT_COLUMNS: [(&str, &str); 2] =
    [("status", "status"), ("_lastUpdated", "last_updated")];

pub(crate) async fn project(
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    for folded in fold_streams::<ProgramMembership>(conn, "membership_view", events).await? {
        let state = &folded.state;
        let state_json = serde_json::to_value(state).map_err(|e| ProjectionError::Undecodable {
            aggregate_type: "ProgramMembership".into(),
            sequence: folded.version,
            reason: e.to_string(),
        })?;
        let beneficiary_type = match state.beneficiary_type {
            Some(openspp_aggregates::program::TargetType::Group) => "Group",
            _ => "Individual",
        };
        sqlx::query(
            "INSERT INTO membership_view (aggregate_id, version, state, primary_identifier, \
                 program_id, beneficiary_id, beneficiary_type, status, created_at, last_updated, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (aggregate_id) DO UPDATE SET version = EXCLUDED.version, \
                 state = EXCLUDED.state, primary_identifier = EXCLUDED.primary_identifier, \
                 status = EXCLUDED.status, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        )
        .bind(&folded.aggregate_id)
        .bind(folded.version)
        .bind(state_json)
        .bind(state.identifier.as_ref().map(|i| i.key()))
        .bind(&state.program)
        .bind(&state.beneficiary)
        .bind(beneficiary_type)
        .bind(state.status.map(|s| s.as_str()).unwrap_or("draft"))
        .bind(folded.created_at)
        .bind(folded.last_updated)
        .bind(&folded.source)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<MembershipRow>> {
    view::get(pool, "membership_view", aggregate_id).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &MembershipQuery) {
    qb.push(" WHERE true");
    push_visible_by(
        qb,
        &query.visibility,
        "program_membership",
        "beneficiary_id",
    );
    if let Some(program) = &query.program {
        qb.push(" AND program_id = ").push_bind(program.clone());
    }
    if let Some(beneficiary) = &query.beneficiary {
        qb.push(" AND beneficiary_id = ")
            .push_bind(beneficiary.clone());
    }
    if let Some(status) = &query.status {
        qb.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(allowed) = &query.allowed_programs {
        qb.push(" AND program_id = ANY(")
            .push_bind(allowed.clone())
            .push(")");
    }
    push_instants(qb, "last_updated", &query.last_updated);
}

pub async fn search(
    pool: &PgPool,
    query: &MembershipQuery,
    page: Page,
) -> sqlx::Result<Found<MembershipRow>> {
    view::search(
        pool,
        "membership_view",
        |qb| push_filters(qb, query),
        &query.sort,
        page,
    )
    .await
}

/// `system|value` of each program and beneficiary stream, for references, in one query.
pub async fn references(
    pool: &PgPool,
    streams: &[String],
) -> sqlx::Result<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT aggregate_id, primary_identifier FROM program_view WHERE aggregate_id = ANY($1) \
         UNION ALL SELECT aggregate_id, primary_identifier FROM individual_view WHERE aggregate_id = ANY($1) \
         UNION ALL SELECT aggregate_id, primary_identifier FROM group_view WHERE aggregate_id = ANY($1)",
    )
    .bind(streams)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, key)| key.map(|k| (id, k)))
        .collect())
}
