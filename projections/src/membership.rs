//! The ProgramMembership read model: memberships by program and by beneficiary.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use openspp_aggregates::{Identifier, ProgramMembership};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};

use crate::consent::{push_visible_by, Visibility};
use crate::error::ProjectionError;
use crate::events::Fold;
use crate::search::{push_instants, Comparator, SortKey};
use crate::statement::{map, Statement, Unnest};
use crate::view::{self, ViewQuery, ViewRow};

pub type MembershipRow = ViewRow<ProgramMembership>;

#[derive(Debug)]
pub struct MembershipQuery {
    pub program: Option<Named>,
    pub beneficiary: Option<Named>,
    pub status: Option<String>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    /// Streams of the programs the caller is limited to; `None` = all.
    pub allowed_programs: Option<Vec<String>>,
    pub visibility: Visibility,
    pub sort: Vec<SortKey>,
}

/// The program or beneficiary a membership query names.
#[derive(Debug, Clone)]
pub enum Named {
    /// Its stream, resolved before the query (`""`, no stream, matches nothing).
    Stream(String),
    /// Any of these streams, resolved before the query (none matches nothing).
    AnyOf(Vec<String>),
    /// Whichever stream of `types` holds `identifier`, resolved from the identifier claims by
    /// the query's own statement (none matches nothing): a lookup by identifier in one round
    /// trip, where the stream is needed for nothing else.
    Identified {
        types: &'static [&'static str],
        identifier: Identifier,
    },
}

impl Named {
    /// `AND {column} …` matching this program or beneficiary.
    fn push_condition(&self, qb: &mut QueryBuilder<'_, Postgres>, column: &str) {
        match self {
            Named::Stream(stream) => {
                qb.push(" AND ")
                    .push(column)
                    .push(" = ")
                    .push_bind(stream.clone());
            }
            Named::AnyOf(streams) => {
                qb.push(" AND ")
                    .push(column)
                    .push(" = ANY(")
                    .push_bind(streams.clone())
                    .push(")");
            }
            Named::Identified { types, identifier } => {
                qb.push(" AND ")
                    .push(column)
                    .push(
                        " IN (SELECT aggregate_id FROM identifier_claims \
                         WHERE aggregate_type = ANY(",
                    )
                    .push_bind(types.to_vec())
                    .push(") AND system = ")
                    .push_bind(identifier.system.clone())
                    .push(" AND value = ")
                    .push_bind(identifier.value.clone())
                    .push(")");
            }
        }
    }
}

pub const SORT_COLUMNS: [(&str, &str); 2] =
    [("status", "status"), ("_lastUpdated", "last_updated")];

impl ViewQuery for MembershipQuery {
    type State = ProgramMembership;
    const TABLE: &'static str = "membership_view";
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_filters(qb, query)
    }
    fn order(&self) -> &[SortKey] {
        &self.sort
    }
    fn probes_consents(&self) -> bool {
        self.visibility.probes()
    }
    /// The fields this search filters or sorts on, with the parameter that names each, as
    /// `IndividualQuery::fields`: a membership's consent (its beneficiary's) must show each,
    /// or a total would tell what the rendering hides. `meta` (`_lastUpdated`) is always shown.
    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        if self.program.is_some() {
            fields.push(("program".to_owned(), "program".to_owned()));
        }
        if self.beneficiary.is_some() {
            fields.push(("beneficiary".to_owned(), "beneficiary".to_owned()));
        }
        if self.status.is_some() {
            fields.push(("status".to_owned(), "status".to_owned()));
        }
        if self.sort.iter().any(|key| key.column == "status") {
            fields.push(("_sort".to_owned(), "status".to_owned()));
        }
        fields
    }
}

/// The `membership_view` row of one stream.
pub(crate) struct Line {
    aggregate_id: String,
    version: i64,
    state: String,
    primary: Option<String>,
    program_id: String,
    beneficiary_id: String,
    beneficiary_type: &'static str,
    status: &'static str,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

/// The row stream `aggregate_id` puts in the read model, as `fold` now holds it.
pub(crate) fn line(
    aggregate_id: &str,
    fold: &Fold<ProgramMembership>,
) -> Result<Line, ProjectionError> {
    let state = &fold.state;
    let (created_at, last_updated) = fold.recorded()?;
    Ok(Line {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        primary: state.identifier.as_ref().map(|i| i.key()),
        program_id: state.program.clone(),
        beneficiary_id: state.beneficiary.clone(),
        beneficiary_type: state.beneficiary_kind().resource(),
        status: state.status.map(|s| s.as_str()).unwrap_or("draft"),
        created_at,
        last_updated,
        source: fold.source.clone(),
    })
}

/// Writes `lines` (one per stream) as one upsert. A membership never moves to another program
/// or beneficiary, so those columns are written once.
pub(crate) fn push_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [Line]) {
    if lines.is_empty() {
        return;
    }
    statement.part("membership_rows", |qb, guard| {
        qb.push(
            "INSERT INTO membership_view (aggregate_id, version, state, primary_identifier, \
                 program_id, beneficiary_id, beneficiary_type, status, created_at, last_updated, \
                 source) \
             SELECT aggregate_id, version, state::jsonb, primary_identifier, program_id, \
                 beneficiary_id, beneficiary_type, status, created_at, last_updated, source FROM ",
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
            .column("program_id", "text", map(lines, |l| l.program_id.as_str()))
            .column(
                "beneficiary_id",
                "text",
                map(lines, |l| l.beneficiary_id.as_str()),
            )
            .column(
                "beneficiary_type",
                "text",
                map(lines, |l| l.beneficiary_type),
            )
            .column("status", "text", map(lines, |l| l.status))
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
                 status = EXCLUDED.status, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        );
    });
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<MembershipRow>> {
    view::get(pool, "membership_view", aggregate_id).await
}

/// The primary identifiers of at most `limit` memberships `query` selects, in one statement,
/// unordered and uncounted: what finding the one membership an address names needs (OpenSPP
/// addresses a membership by its beneficiary and program), where a search would count the
/// matches and page them on two connections.
pub async fn identifiers_of(
    pool: impl PgExecutor<'_>,
    query: &MembershipQuery,
    limit: i64,
) -> sqlx::Result<Vec<Option<String>>> {
    let mut qb = QueryBuilder::new("SELECT primary_identifier FROM membership_view");
    push_filters(&mut qb, query);
    qb.push(" LIMIT ").push_bind(limit);
    qb.build_query_scalar().fetch_all(pool).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &MembershipQuery) {
    qb.push(" WHERE true");
    let fields = query.fields().into_iter().map(|(_, field)| field);
    push_visible_by(
        qb,
        &query.visibility,
        "program_membership",
        "beneficiary_id",
        fields,
    );
    if let Some(program) = &query.program {
        program.push_condition(qb, "program_id");
    }
    if let Some(beneficiary) = &query.beneficiary {
        beneficiary.push_condition(qb, "beneficiary_id");
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

/// The primary identifiers of programs (`aggregate_id {program}`) and of registrants, the
/// individuals and groups a membership names (`aggregate_id {beneficiary}`): one text for
/// `references` and `REFERENCES_OF_ROW`.
macro_rules! primary_identifiers {
    ($program:literal, $beneficiary:literal) => {
        concat!(
            "SELECT aggregate_id, primary_identifier FROM program_view WHERE aggregate_id ",
            $program,
            " UNION ALL SELECT aggregate_id, primary_identifier FROM individual_view \
             WHERE aggregate_id ",
            $beneficiary,
            " UNION ALL SELECT aggregate_id, primary_identifier FROM group_view \
             WHERE aggregate_id ",
            $beneficiary
        )
    };
}

/// The identifiers (`system|value`) of a membership row's program and beneficiary, computed
/// beside the row (`v`) by the statement that finds it (`view::IdentifierRead::beside`), as a
/// JSON object by stream: what `references` reads for them afterwards, in the same round trip.
pub const REFERENCES_OF_ROW: &str = concat!(
    "(SELECT json_object_agg(r.aggregate_id, r.primary_identifier) FROM (",
    primary_identifiers!("= v.program_id", "= v.beneficiary_id"),
    ") r WHERE r.primary_identifier IS NOT NULL)"
);

/// The references `REFERENCES_OF_ROW` computed (none when it found none).
pub fn references_of_row(
    value: Option<serde_json::Value>,
) -> sqlx::Result<HashMap<String, String>> {
    view::decode_beside(value)
}

/// `system|value` of each program and beneficiary stream, for references, in one query.
pub async fn references(
    pool: impl PgExecutor<'_>,
    streams: &[String],
) -> sqlx::Result<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as(primary_identifiers!("= ANY($1)", "= ANY($1)"))
            .bind(streams)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, key)| key.map(|k| (id, k)))
        .collect())
}
