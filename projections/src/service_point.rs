//! The ServicePoint read model: OpenSPP's search by name, area, country and contract, in name
//! order.

use chrono::{DateTime, Utc};
use openspp_aggregates::service_point::ServicePoint;
use sqlx::{Postgres, QueryBuilder};

use crate::error::ProjectionError;
use crate::events::Fold;
use crate::search::{like_contains, push_instants, Comparator, SortKey};
use crate::statement::{map, Statement, Unnest};
use crate::view::{ViewQuery, ViewRow};

pub type ServicePointRow = ViewRow<ServicePoint>;

#[derive(Debug)]
pub struct ServicePointQuery {
    /// A part of the name, whatever its case.
    pub name: Option<String>,
    /// A part of the area's name, whatever its case.
    pub area: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub contract_active: Option<bool>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
}

const ORDER: [SortKey; 1] = [SortKey {
    column: "name",
    descending: false,
}];

pub(crate) struct Line {
    aggregate_id: String,
    version: i64,
    state: String,
    name: String,
    area: String,
    country: Option<String>,
    contract_active: bool,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

pub(crate) fn line(aggregate_id: &str, fold: &Fold<ServicePoint>) -> Result<Line, ProjectionError> {
    let details = &fold.state.details;
    let (created_at, last_updated) = fold.recorded()?;
    Ok(Line {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        name: details.name.clone(),
        area: details.area.clone().unwrap_or_default(),
        country: details.country.clone(),
        contract_active: details.contract_active,
        created_at,
        last_updated,
        source: fold.source.clone(),
    })
}

pub(crate) fn push_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [Line]) {
    if lines.is_empty() {
        return;
    }
    statement.part("service_point_rows", |qb, guard| {
        qb.push(
            "INSERT INTO service_point_view (aggregate_id, version, state, name, area, country, \
                 contract_active, created_at, last_updated, source) \
             SELECT aggregate_id, version, state::jsonb, name, area, country, contract_active, \
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
            .column("name", "text", map(lines, |l| l.name.as_str()))
            .column("area", "text", map(lines, |l| l.area.as_str()))
            .column("country", "text", map(lines, |l| l.country.as_deref()))
            .column(
                "contract_active",
                "boolean",
                map(lines, |l| l.contract_active),
            )
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
                 state = EXCLUDED.state, area = EXCLUDED.area, country = EXCLUDED.country, \
                 contract_active = EXCLUDED.contract_active, \
                 last_updated = EXCLUDED.last_updated, source = EXCLUDED.source",
        );
    });
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &ServicePointQuery) {
    qb.push(" WHERE true");
    if let Some(name) = &query.name {
        qb.push(" AND lower(name) LIKE ")
            .push_bind(like_contains(name));
    }
    if let Some(area) = &query.area {
        qb.push(" AND lower(area) LIKE ")
            .push_bind(like_contains(area));
    }
    if let Some(country) = &query.country {
        qb.push(" AND country = ").push_bind(country.clone());
    }
    if let Some(active) = query.contract_active {
        qb.push(" AND contract_active = ").push_bind(active);
    }
    push_instants(qb, "last_updated", &query.last_updated);
}

impl ViewQuery for ServicePointQuery {
    type State = ServicePoint;
    const TABLE: &'static str = "service_point_view";
    const ORDER: &'static [SortKey] = &ORDER;
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_filters(qb, query)
    }
}
