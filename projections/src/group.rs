//! The Group read model and its member list.

use chrono::{DateTime, NaiveDate, Utc};
use openspp_aggregates::{Group, Identifier};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::consent::{Admit, Visibility};
use crate::error::ProjectionError;
use crate::events::Fold;
use crate::extension::ExtensionFilter;
use crate::newest::Newest;
use crate::search::{like_contains, push_instants, Comparator, SortKey};
use crate::statement::{map, text_array_literal, Statement, Unnest};
use crate::view::{self, ViewQuery, ViewRow};
use openspp_aggregates::bounds::search_text;

pub type GroupRow = ViewRow<Group>;

#[derive(Debug)]
pub struct GroupQuery {
    pub identifier: Option<Identifier>,
    pub name: Option<String>,
    pub group_type: Option<String>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    pub active: Option<bool>,
    /// `member=`: the stream of an individual that must be a current member (`None` inside:
    /// an identifier nobody holds).
    pub member: Option<Option<String>>,
    /// Properties of extension data (`extension.dwelling.rooms=3`).
    pub extension: Vec<ExtensionFilter>,
    pub sort: Vec<SortKey>,
    pub visibility: Visibility,
}

/// Sortable fields, by their search-parameter name.
pub const SORT_COLUMNS: [(&str, &str); 3] = [
    ("name", "name"),
    ("groupType", "group_type"),
    ("_lastUpdated", "last_updated"),
];

impl GroupQuery {
    /// An identifier with no other filter and at most one sort key (see
    /// `IndividualQuery::names_alone`).
    fn names_alone(&self) -> bool {
        self.name.is_none()
            && self.group_type.is_none()
            && self.last_updated.is_empty()
            && self.active.is_none()
            && self.member.is_none()
            && self.extension.is_empty()
            && self.sort.len() <= 1
    }
}

impl ViewQuery for GroupQuery {
    type State = Group;
    const TABLE: &'static str = "group_view";
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_filters(qb, query)
    }
    /// Admitted by the consent reach alone (`Admit::Reached`).
    fn push_estimated(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_filters_admitting(qb, query, Admit::Reached)
    }
    fn order(&self) -> &[SortKey] {
        &self.sort
    }
    /// An identifier names one group (see `IndividualQuery::newest`).
    fn newest(&self) -> Newest {
        match self.identifier {
            Some(_) if self.names_alone() => Newest::Named,
            Some(_) => Newest::Sort,
            None => Newest::Probe,
        }
    }
    fn probes_consents(&self) -> bool {
        self.visibility.probes()
    }
    /// The fields this search filters or sorts on, with the parameter that names each (see
    /// `IndividualQuery::fields`).
    fn fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        if self.name.is_some() {
            fields.push(("name", "name"));
        }
        if self.group_type.is_some() {
            fields.push(("groupType", "groupType"));
        }
        if self.active.is_some() {
            fields.push(("active", "active"));
        }
        if self.member.is_some() {
            fields.push(("member", "member"));
        }
        for key in &self.sort {
            match key.column {
                "name" => fields.push(("_sort", "name")),
                "group_type" => fields.push(("_sort", "groupType")),
                _ => {}
            }
        }
        let extension = self
            .extension
            .iter()
            .map(|filter| (filter.parameter.clone(), filter.field()));
        fields
            .into_iter()
            .map(|(parameter, field)| (parameter.to_owned(), field.to_owned()))
            .chain(extension)
            .collect()
    }
}

/// The `group_view` row of one stream, with its `group_members_view` rows.
pub(crate) struct Line {
    aggregate_id: String,
    version: i64,
    state: String,
    primary: Option<String>,
    name_search: String,
    name: Option<String>,
    group_type: String,
    quantity: i32,
    active: bool,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
    members: Vec<MemberLine>,
}

/// A member as `group_members_view` lists it: by its place in the group's member list, which
/// only ever grows (a member who leaves keeps their place, with an end date).
pub(crate) struct MemberLine {
    individual_id: String,
    /// `text[]` as an array literal (see `text_array_literal`).
    roles: String,
    start_date: NaiveDate,
    ended_date: Option<NaiveDate>,
}

/// The row stream `aggregate_id` puts in the read model, as `fold` now holds it.
pub(crate) fn line(aggregate_id: &str, fold: &Fold<Group>) -> Result<Line, ProjectionError> {
    let state = &fold.state;
    let (created_at, last_updated) = fold.recorded()?;
    Ok(Line {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        primary: state.live_identifiers().next().map(Identifier::key),
        name_search: search_text(state.name.iter()),
        name: state.name.clone(),
        group_type: state.group_type.clone(),
        quantity: state.quantity() as i32,
        active: state.active,
        created_at,
        last_updated,
        source: fold.source.clone(),
        members: state
            .members
            .iter()
            .map(|member| MemberLine {
                individual_id: member.individual.clone(),
                roles: text_array_literal(member.roles.iter().map(|r| r.code.as_str())),
                start_date: member.start_date,
                ended_date: member.ended_date,
            })
            .collect(),
    })
}

/// Writes `lines` (one per stream) as one upsert of the groups and one of their members, the
/// member list kept an exact image of the state: rows past its end are removed, rows that did
/// not change are not rewritten.
pub(crate) fn push_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [Line]) {
    if lines.is_empty() {
        return;
    }
    statement.part("group_rows", |qb, guard| {
        qb.push(
            "INSERT INTO group_view (aggregate_id, version, state, primary_identifier, \
                 name_search, name, group_type, quantity, active, created_at, last_updated, source) \
             SELECT aggregate_id, version, state::jsonb, primary_identifier, name_search, name, \
                 group_type, quantity, active, created_at, last_updated, source FROM ",
        );
        Unnest::new(qb)
            .column("aggregate_id", "text", map(lines, |l| l.aggregate_id.as_str()))
            .column("version", "bigint", map(lines, |l| l.version))
            .column("state", "text", map(lines, |l| l.state.as_str()))
            .column("primary_identifier", "text", map(lines, |l| l.primary.as_deref()))
            .column("name_search", "text", map(lines, |l| l.name_search.as_str()))
            .column("name", "text", map(lines, |l| l.name.as_deref()))
            .column("group_type", "text", map(lines, |l| l.group_type.as_str()))
            .column("quantity", "integer", map(lines, |l| l.quantity))
            .column("active", "boolean", map(lines, |l| l.active))
            .column("created_at", "timestamptz", map(lines, |l| l.created_at))
            .column("last_updated", "timestamptz", map(lines, |l| l.last_updated))
            .column("source", "text", map(lines, |l| l.source.as_deref()))
            .finish("u");
        qb.push(" WHERE ").push(guard).push(
            " ON CONFLICT (aggregate_id) DO UPDATE SET version = EXCLUDED.version, \
                 state = EXCLUDED.state, primary_identifier = EXCLUDED.primary_identifier, \
                 name_search = EXCLUDED.name_search, name = EXCLUDED.name, \
                 group_type = EXCLUDED.group_type, quantity = EXCLUDED.quantity, \
                 active = EXCLUDED.active, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        );
    });
    statement.part("group_members_past_end", |qb, guard| {
        qb.push("DELETE FROM group_members_view m USING ");
        Unnest::new(qb)
            .column("group_id", "text", map(lines, |l| l.aggregate_id.as_str()))
            .column("members", "integer", map(lines, |l| l.members.len() as i32))
            .finish("g");
        qb.push(" WHERE m.group_id = g.group_id AND m.member_index >= g.members AND ")
            .push(guard);
    });
    let members: Vec<(&'a str, i32, &'a MemberLine)> = lines
        .iter()
        .flat_map(|line| {
            line.members
                .iter()
                .enumerate()
                .map(move |(index, member)| (line.aggregate_id.as_str(), index as i32, member))
        })
        .collect();
    if members.is_empty() {
        return;
    }
    statement.part("group_member_rows", |qb, guard| {
        qb.push(
            "INSERT INTO group_members_view AS m \
                 (group_id, individual_id, member_index, roles, start_date, ended_date) \
             SELECT group_id, individual_id, member_index, roles::text[], start_date, ended_date \
             FROM ",
        );
        Unnest::new(qb)
            .column("group_id", "text", map(&members, |m| m.0))
            .column("individual_id", "text", map(&members, |m| m.2.individual_id.as_str()))
            .column("member_index", "integer", map(&members, |m| m.1))
            .column("roles", "text", map(&members, |m| m.2.roles.as_str()))
            .column("start_date", "date", map(&members, |m| m.2.start_date))
            .column("ended_date", "date", map(&members, |m| m.2.ended_date))
            .finish("u");
        qb.push(" WHERE ").push(guard).push(
            " ON CONFLICT (group_id, member_index) DO UPDATE SET \
                 individual_id = EXCLUDED.individual_id, roles = EXCLUDED.roles, \
                 start_date = EXCLUDED.start_date, ended_date = EXCLUDED.ended_date \
             WHERE (m.individual_id, m.roles, m.start_date, m.ended_date) IS DISTINCT FROM \
                 (EXCLUDED.individual_id, EXCLUDED.roles, EXCLUDED.start_date, EXCLUDED.ended_date)",
        );
    });
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<GroupRow>> {
    view::get(pool, "group_view", aggregate_id).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &GroupQuery) {
    push_filters_admitting(qb, query, Admit::Probed)
}

/// The query's filters, its rows admitted to a consent-bound client as `admit` says.
fn push_filters_admitting(qb: &mut QueryBuilder<'_, Postgres>, query: &GroupQuery, admit: Admit) {
    qb.push(" WHERE true");
    let fields = query.fields().into_iter().map(|(_, field)| field);
    admit.push(qb, &query.visibility, "group", fields);
    if let Some(identifier) = &query.identifier {
        crate::identifier_claims::push_holder(qb, "Group", identifier);
    }
    if let Some(name) = &query.name {
        qb.push(" AND name_search LIKE ")
            .push_bind(like_contains(name));
    }
    if let Some(group_type) = &query.group_type {
        qb.push(" AND group_type = ").push_bind(group_type.clone());
    }
    push_instants(qb, "last_updated", &query.last_updated);
    if let Some(active) = query.active {
        qb.push(" AND active = ").push_bind(active);
    }
    for filter in &query.extension {
        filter.push(qb);
    }
    if let Some(member) = &query.member {
        crate::household::push_has_member(qb, member, &query.visibility);
    }
}
