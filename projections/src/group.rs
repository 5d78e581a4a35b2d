//! The Group read model and its member list.

use chrono::{DateTime, Utc};
use openspp_aggregates::{Group, Identifier};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::consent::{push_visible, Visibility};
use crate::extension::ExtensionFilter;
use crate::feed::StoredEvent;
use crate::fold::fold_streams;
use crate::runner::ProjectionError;
use crate::search::{
    like_contains, push_identifier, push_instants, Comparator, Found, Page, SortKey,
};
use crate::view::{self, search_text, ViewRow};

pub type GroupRow = ViewRow<Group>;

#[derive(Debug)]
pub struct GroupQuery {
    pub identifier: Option<Identifier>,
    pub name: Option<String>,
    pub group_type: Option<String>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    pub active: Option<bool>,
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
    /// The fields this search filters or sorts on, with the parameter that names each (see
    /// `IndividualQuery::fields`).
    pub fn fields(&self) -> Vec<(String, String)> {
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

pub(crate) async fn project(
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    for folded in fold_streams::<Group>(conn, "group_view", events).await? {
        let state = &folded.state;
        let state_json = serde_json::to_value(state).map_err(|e| ProjectionError::Undecodable {
            aggregate_type: "Group".into(),
            sequence: folded.version,
            reason: e.to_string(),
        })?;
        sqlx::query(
            "INSERT INTO group_view (aggregate_id, version, state, primary_identifier, name_search, \
                 name, group_type, quantity, active, created_at, last_updated, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (aggregate_id) DO UPDATE SET version = EXCLUDED.version, \
                 state = EXCLUDED.state, primary_identifier = EXCLUDED.primary_identifier, \
                 name_search = EXCLUDED.name_search, name = EXCLUDED.name, \
                 group_type = EXCLUDED.group_type, quantity = EXCLUDED.quantity, \
                 active = EXCLUDED.active, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        )
        .bind(&folded.aggregate_id)
        .bind(folded.version)
        .bind(state_json)
        .bind(state.live_identifiers().next().map(Identifier::key))
        .bind(search_text(state.name.iter()))
        .bind(&state.name)
        .bind(&state.group_type)
        .bind(state.quantity() as i32)
        .bind(state.active)
        .bind(folded.created_at)
        .bind(folded.last_updated)
        .bind(&folded.source)
        .execute(&mut *conn)
        .await?;

        // The member list is small; rewriting it keeps it an exact image of the state.
        sqlx::query("DELETE FROM group_members_view WHERE group_id = $1")
            .bind(&folded.aggregate_id)
            .execute(&mut *conn)
            .await?;
        if !state.members.is_empty() {
            let mut qb = QueryBuilder::new(
                "INSERT INTO group_members_view \
                 (group_id, individual_id, member_index, roles, start_date, ended_date) ",
            );
            qb.push_values(
                state.members.iter().enumerate(),
                |mut row, (index, member)| {
                    row.push_bind(&folded.aggregate_id)
                        .push_bind(&member.individual)
                        .push_bind(index as i32)
                        .push_bind(
                            member
                                .roles
                                .iter()
                                .map(|r| r.code.clone())
                                .collect::<Vec<_>>(),
                        )
                        .push_bind(member.start_date)
                        .push_bind(member.ended_date);
                },
            );
            qb.build().persistent(false).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<GroupRow>> {
    view::get(pool, "group_view", aggregate_id).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &GroupQuery) {
    qb.push(" WHERE true");
    let fields = query.fields().into_iter().map(|(_, field)| field);
    push_visible(qb, &query.visibility, "group", fields);
    if let Some(identifier) = &query.identifier {
        push_identifier(qb, "Group", identifier);
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
}

pub async fn search(
    pool: &PgPool,
    query: &GroupQuery,
    page: Page,
) -> sqlx::Result<Found<GroupRow>> {
    view::search(
        pool,
        "group_view",
        |qb| push_filters(qb, query),
        &query.sort,
        page,
    )
    .await
}
