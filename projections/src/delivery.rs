//! The Cycle and Entitlement read models, and each cycle's statistics.
//!
//! A cycle's statistics (`membersCount`, `entitlementsCount`, `totalAmount`) are kept by the
//! appends of its entitlements: each entitlement row written adds what it now counts and takes
//! away what its previous row counted (read in the same statement, which sees the table as it
//! was before the statement), and a beneficiary's first entitlement in a cycle makes it a
//! member. The additions commute, so concurrent appends to one cycle never lose a count, and a
//! rebuild (every stream projected once, onto empty tables) arrives at the same numbers.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use openspp_aggregates::entitlement::EntitlementKind;
use openspp_aggregates::{Cycle, CycleState, Entitlement, EntitlementState};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::consent::{push_visible_by, Visibility};
use crate::error::ProjectionError;
use crate::events::Fold;
use crate::search::{like_contains, push_dates, push_instants, Comparator, Page, SortKey};
use crate::statement::{map, Statement, Unnest};
use crate::view::{self, ViewQuery, ViewRow};

pub type CycleRow = ViewRow<Cycle>;
pub type EntitlementRow = ViewRow<Entitlement>;

/// How a search names a program: one program (its stream; empty: none), or OpenSPP's
/// case-insensitive part of a name.
#[derive(Debug, Clone)]
pub enum ProgramFilter {
    Stream(String),
    NameContains(String),
}

impl ProgramFilter {
    fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Self::Stream(stream) => {
                qb.push(" AND program_id = ").push_bind(stream.clone());
            }
            Self::NameContains(text) => {
                qb.push(
                    " AND program_id IN (SELECT aggregate_id FROM program_view \
                     WHERE name_search LIKE ",
                )
                .push_bind(like_contains(text))
                .push(")");
            }
        }
    }
}

fn push_allowed(qb: &mut QueryBuilder<'_, Postgres>, allowed: &Option<Vec<String>>) {
    if let Some(allowed) = allowed {
        qb.push(" AND program_id = ANY(")
            .push_bind(allowed.clone())
            .push(")");
    }
}

// ---- Cycles ----

#[derive(Debug)]
pub struct CycleQuery {
    pub program: Option<ProgramFilter>,
    pub state: Option<String>,
    pub start_date: Vec<(Comparator, NaiveDate)>,
    pub end_date: Vec<(Comparator, NaiveDate)>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    /// Streams of the programs the caller is limited to; `None` = all.
    pub allowed: Option<Vec<String>>,
}

/// OpenSPP orders cycles by sequence.
const CYCLE_ORDER: [SortKey; 2] = [
    SortKey {
        column: "sequence",
        descending: false,
    },
    SortKey {
        column: "program_id",
        descending: false,
    },
];

/// The `cycle_view` row of one stream.
pub(crate) struct CycleLine {
    aggregate_id: String,
    version: i64,
    state: String,
    name: String,
    program_id: String,
    sequence: i32,
    status: &'static str,
    start_date: NaiveDate,
    end_date: NaiveDate,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

pub(crate) fn cycle_line(
    aggregate_id: &str,
    fold: &Fold<Cycle>,
) -> Result<CycleLine, ProjectionError> {
    let state = &fold.state;
    let (created_at, last_updated) = fold.recorded()?;
    Ok(CycleLine {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        name: state.name.clone(),
        program_id: state.program.clone(),
        sequence: state.sequence as i32,
        status: state.state.unwrap_or(CycleState::Draft).as_str(),
        start_date: state.start_date.unwrap_or_default(),
        end_date: state.end_date.unwrap_or_default(),
        created_at,
        last_updated,
        source: fold.source.clone(),
    })
}

/// Writes `lines` as one upsert; a cycle never changes its name, program or period.
pub(crate) fn push_cycle_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [CycleLine]) {
    if lines.is_empty() {
        return;
    }
    statement.part("cycle_rows", |qb, guard| {
        qb.push(
            "INSERT INTO cycle_view (aggregate_id, version, state, name, program_id, sequence, \
                 status, start_date, end_date, created_at, last_updated, source) \
             SELECT aggregate_id, version, state::jsonb, name, program_id, sequence, status, \
                 start_date, end_date, created_at, last_updated, source FROM ",
        );
        Unnest::new(qb)
            .column(
                "aggregate_id",
                "text",
                map(lines, |l| l.aggregate_id.as_str()),
            )
            .column("version", "bigint", map(lines, |l| l.version))
            .column("state", "text", map(lines, |l| l.state.as_str()))
            .column("name", "text", map(lines, |l| l.name.as_str()))
            .column("program_id", "text", map(lines, |l| l.program_id.as_str()))
            .column("sequence", "integer", map(lines, |l| l.sequence))
            .column("status", "text", map(lines, |l| l.status))
            .column("start_date", "date", map(lines, |l| l.start_date))
            .column("end_date", "date", map(lines, |l| l.end_date))
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
                 state = EXCLUDED.state, status = EXCLUDED.status, \
                 last_updated = EXCLUDED.last_updated, source = EXCLUDED.source",
        );
    });
}

fn push_cycle_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &CycleQuery) {
    qb.push(" WHERE true");
    if let Some(program) = &query.program {
        program.push(qb);
    }
    if let Some(state) = &query.state {
        qb.push(" AND status = ").push_bind(state.clone());
    }
    push_dates(qb, "start_date", &query.start_date);
    push_dates(qb, "end_date", &query.end_date);
    push_allowed(qb, &query.allowed);
    push_instants(qb, "last_updated", &query.last_updated);
}

impl ViewQuery for CycleQuery {
    type State = Cycle;
    const TABLE: &'static str = "cycle_view";
    const ORDER: &'static [SortKey] = &CYCLE_ORDER;
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_cycle_filters(qb, query)
    }
}

/// The program's latest cycle (highest sequence), if it has any.
pub async fn latest_cycle(pool: &PgPool, program: &str) -> sqlx::Result<Option<CycleRow>> {
    let filters = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" WHERE program_id = ")
            .push_bind(program.to_owned());
    };
    let found = view::search(
        pool,
        "cycle_view",
        filters,
        filters,
        &[SortKey {
            column: "sequence",
            descending: true,
        }],
        Page::new(1, 0),
        view::Reading::SORTED,
    )
    .await?;
    Ok(found.rows.into_iter().next())
}

/// The names of the cycles of `programs`, by (program, sequence): what renders a cycle's
/// `nextCycle`.
pub async fn cycle_names(
    pool: &PgPool,
    programs: &[String],
) -> sqlx::Result<HashMap<(String, i32), String>> {
    let rows: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT program_id, sequence, name FROM cycle_view WHERE program_id = ANY($1)",
    )
    .bind(programs)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(program, sequence, name)| ((program, sequence), name))
        .collect())
}

/// A cycle's statistics as its entitlements' appends keep them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleStatistics {
    pub members: i64,
    pub entitlements: i64,
    pub total_cents: i64,
    /// Entitlements paid to (or redeemed by) their beneficiaries.
    pub payments: i64,
}

/// The statistics of `cycles` (streams); a cycle without entitlements has none.
pub async fn statistics(
    pool: &PgPool,
    cycles: &[String],
) -> sqlx::Result<HashMap<String, CycleStatistics>> {
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT cycle_id, members, entitlements, total_cents, payments FROM cycle_statistics \
         WHERE cycle_id = ANY($1)",
    )
    .bind(cycles)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(cycle, members, entitlements, total_cents, payments)| {
            (
                cycle,
                CycleStatistics {
                    members,
                    entitlements,
                    total_cents,
                    payments,
                },
            )
        })
        .collect())
}

/// A cycle's entitlements as a change of the cycle sees them: those in `states` (the ones it
/// may move), and what all of them are now (`seen`: their number and the sum of their
/// versions, which any entitlement added to or written in the cycle changes), to be held until
/// the change commits (`hold_status('CycleEntitlements', …)`, migration 0210).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleEntitlements {
    pub seen: String,
    /// The streams of those in `states`.
    pub moving: Vec<String>,
}

/// The entitlements of `cycle` (a stream) in `states`, and what all of them are now, in one
/// round trip (see [`CycleEntitlements`]).
pub async fn cycle_entitlements(
    pool: &PgPool,
    cycle: &str,
    states: &[&str],
) -> sqlx::Result<CycleEntitlements> {
    let (seen, moving): (String, Vec<String>) = sqlx::query_as(
        "SELECT count(*)::text || ':' || coalesce(sum(version), 0)::text, \
                coalesce(array_agg(aggregate_id ORDER BY aggregate_id) \
                         FILTER (WHERE status = ANY($2)), '{}') \
         FROM entitlement_view WHERE cycle_id = $1",
    )
    .bind(cycle)
    .bind(states)
    .fetch_one(pool)
    .await?;
    Ok(CycleEntitlements { seen, moving })
}

/// How many entitlements (of any kind) `cycle` has, from the entitlement read model.
pub async fn entitlements_of(pool: &PgPool, cycle: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM entitlement_view WHERE cycle_id = $1")
        .bind(cycle)
        .fetch_one(pool)
        .await
}

// ---- Entitlements ----

#[derive(Debug)]
pub struct EntitlementQuery {
    /// The beneficiary's stream (empty: none).
    pub beneficiary: Option<String>,
    pub program: Option<ProgramFilter>,
    /// A part of the cycle's name, whatever its case.
    pub cycle: Option<String>,
    pub state: Option<String>,
    pub kind: EntitlementKind,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    pub allowed: Option<Vec<String>>,
    pub visibility: Visibility,
}

/// OpenSPP orders entitlements newest first.
const ENTITLEMENT_ORDER: [SortKey; 1] = [SortKey {
    column: "created_at",
    descending: true,
}];

pub(crate) struct EntitlementLine {
    aggregate_id: String,
    version: i64,
    state: String,
    code: String,
    program_id: String,
    cycle_id: String,
    beneficiary_id: String,
    kind: &'static str,
    status: &'static str,
    amount_cents: i64,
    /// 1 for a cash entitlement: what it adds to its cycle's `entitlementsCount`.
    cash: i64,
    /// 1 once paid: what it adds to its cycle's `paymentsCount`.
    paid: i64,
    valid_from: NaiveDate,
    valid_until: NaiveDate,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

pub(crate) fn entitlement_line(
    aggregate_id: &str,
    fold: &Fold<Entitlement>,
) -> Result<EntitlementLine, ProjectionError> {
    let state = &fold.state;
    let (created_at, last_updated) = fold.recorded()?;
    let cash = state.benefit.as_ref().and_then(|b| b.cash_cents());
    Ok(EntitlementLine {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        code: state
            .identifier
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default(),
        program_id: state.program.clone(),
        cycle_id: state.cycle.clone(),
        beneficiary_id: state.beneficiary.clone(),
        kind: state.kind().as_str(),
        status: state.state.unwrap_or(EntitlementState::Draft).as_str(),
        amount_cents: cash.unwrap_or(0),
        cash: i64::from(cash.is_some()),
        paid: i64::from(state.state == Some(EntitlementState::Rdpd2ben)),
        valid_from: state.valid_from.unwrap_or_default(),
        valid_until: state.valid_until.unwrap_or_default(),
        created_at,
        last_updated,
        source: fold.source.clone(),
    })
}

/// Writes `lines` as one upsert, with what they change in their cycles' statistics.
pub(crate) fn push_entitlement_upsert<'a>(
    statement: &mut Statement<'a>,
    lines: &'a [EntitlementLine],
) {
    if lines.is_empty() {
        return;
    }
    // The rows as they were before this statement (a data-modifying statement's parts all
    // see the same snapshot), to take away what they counted.
    statement.part("entitlement_before", |qb, _| {
        qb.push(
            "SELECT cycle_id, CASE WHEN kind = 'cash' THEN 1 ELSE 0 END AS cash, amount_cents, \
                 CASE WHEN status = 'rdpd2ben' THEN 1 ELSE 0 END AS paid \
             FROM entitlement_view WHERE aggregate_id = ANY(",
        )
        .push_bind(map(lines, |l| l.aggregate_id.as_str()))
        .push("::text[])");
    });
    statement.part("entitlement_rows", |qb, guard| {
        qb.push(
            "INSERT INTO entitlement_view (aggregate_id, version, state, code, program_id, \
                 cycle_id, beneficiary_id, kind, status, amount_cents, valid_from, valid_until, \
                 created_at, last_updated, source) \
             SELECT aggregate_id, version, state::jsonb, code, program_id, cycle_id, \
                 beneficiary_id, kind, status, amount_cents, valid_from, valid_until, \
                 created_at, last_updated, source FROM ",
        );
        Unnest::new(qb)
            .column(
                "aggregate_id",
                "text",
                map(lines, |l| l.aggregate_id.as_str()),
            )
            .column("version", "bigint", map(lines, |l| l.version))
            .column("state", "text", map(lines, |l| l.state.as_str()))
            .column("code", "text", map(lines, |l| l.code.as_str()))
            .column("program_id", "text", map(lines, |l| l.program_id.as_str()))
            .column("cycle_id", "text", map(lines, |l| l.cycle_id.as_str()))
            .column(
                "beneficiary_id",
                "text",
                map(lines, |l| l.beneficiary_id.as_str()),
            )
            .column("kind", "text", map(lines, |l| l.kind))
            .column("status", "text", map(lines, |l| l.status))
            .column("amount_cents", "bigint", map(lines, |l| l.amount_cents))
            .column("valid_from", "date", map(lines, |l| l.valid_from))
            .column("valid_until", "date", map(lines, |l| l.valid_until))
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
                 state = EXCLUDED.state, status = EXCLUDED.status, \
                 amount_cents = EXCLUDED.amount_cents, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        );
    });
    statement.part("cycle_members_added", |qb, guard| {
        qb.push(
            "INSERT INTO cycle_beneficiaries (cycle_id, beneficiary_id) \
             SELECT DISTINCT cycle_id, beneficiary_id FROM ",
        );
        Unnest::new(qb)
            .column("cycle_id", "text", map(lines, |l| l.cycle_id.as_str()))
            .column(
                "beneficiary_id",
                "text",
                map(lines, |l| l.beneficiary_id.as_str()),
            )
            .finish("m");
        qb.push(" WHERE ")
            .push(guard)
            .push(" ON CONFLICT DO NOTHING RETURNING cycle_id");
    });
    statement.part("cycle_statistics_rows", |qb, guard| {
        qb.push(
            "INSERT INTO cycle_statistics (cycle_id, members, entitlements, total_cents, payments) \
             SELECT cycle_id, sum(members)::bigint, sum(cash)::bigint, \
                 sum(amount_cents)::bigint, sum(paid)::bigint \
             FROM (SELECT cycle_id, 0::bigint AS members, cash, amount_cents, paid FROM ",
        );
        Unnest::new(qb)
            .column("cycle_id", "text", map(lines, |l| l.cycle_id.as_str()))
            .column("cash", "bigint", map(lines, |l| l.cash))
            .column("amount_cents", "bigint", map(lines, |l| l.amount_cents))
            .column("paid", "bigint", map(lines, |l| l.paid))
            .finish("n");
        qb.push(
            " UNION ALL SELECT cycle_id, 0, -cash, -amount_cents, -paid FROM entitlement_before \
             UNION ALL SELECT cycle_id, 1, 0, 0, 0 FROM cycle_members_added) AS d WHERE ",
        )
        .push(guard)
        .push(
            " GROUP BY cycle_id ON CONFLICT (cycle_id) DO UPDATE SET \
                 members = cycle_statistics.members + EXCLUDED.members, \
                 entitlements = cycle_statistics.entitlements + EXCLUDED.entitlements, \
                 total_cents = cycle_statistics.total_cents + EXCLUDED.total_cents, \
                 payments = cycle_statistics.payments + EXCLUDED.payments",
        );
    });
}

fn push_entitlement_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &EntitlementQuery) {
    qb.push(" WHERE kind = ").push_bind(query.kind.as_str());
    push_visible_by(
        qb,
        &query.visibility,
        "program_membership",
        "beneficiary_id",
        ["beneficiary".to_owned()],
    );
    if let Some(beneficiary) = &query.beneficiary {
        qb.push(" AND beneficiary_id = ")
            .push_bind(beneficiary.clone());
    }
    if let Some(program) = &query.program {
        program.push(qb);
    }
    if let Some(cycle) = &query.cycle {
        qb.push(" AND cycle_id IN (SELECT aggregate_id FROM cycle_view WHERE lower(name) LIKE ")
            .push_bind(like_contains(cycle))
            .push(")");
    }
    if let Some(state) = &query.state {
        qb.push(" AND status = ").push_bind(state.clone());
    }
    if let Some(from) = query.valid_from {
        qb.push(" AND valid_from >= ").push_bind(from);
    }
    if let Some(until) = query.valid_until {
        qb.push(" AND valid_until <= ").push_bind(until);
    }
    push_allowed(qb, &query.allowed);
    push_instants(qb, "last_updated", &query.last_updated);
}

impl ViewQuery for EntitlementQuery {
    type State = Entitlement;
    const TABLE: &'static str = "entitlement_view";
    const ORDER: &'static [SortKey] = &ENTITLEMENT_ORDER;
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_entitlement_filters(qb, query)
    }
    fn probes_consents(&self) -> bool {
        self.visibility.probes()
    }
}
