//! The Individual read model: search by every CONTRACT §4 parameter, single reads, and the
//! identifier other resources use to reference an individual.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use openspp_aggregates::{Identifier, Individual};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::begin::{begin, end_read};
use crate::consent::{Admit, Visibility};
use crate::error::ProjectionError;
use crate::events::Fold;
use crate::extension::ExtensionFilter;
use crate::household::InHousehold;
use crate::newest::{self, Expected, Newest};
use crate::search::{like_contains, push_dates, push_instants, Comparator, Page, SortKey};
use crate::statement::{map, Statement, Unnest};
use crate::view::{self, ViewQuery, ViewRow};
use openspp_aggregates::bounds::search_text;

pub type IndividualRow = ViewRow<Individual>;

#[derive(Debug, Clone)]
pub struct IndividualQuery {
    pub identifier: Option<Identifier>,
    pub name: Option<String>,
    pub birth_date: Vec<(Comparator, NaiveDate)>,
    pub gender: Option<String>,
    pub address: Option<String>,
    pub last_updated: Vec<(Comparator, DateTime<Utc>)>,
    pub active: Option<bool>,
    /// Properties of extension data (`extension.farmer.farm_size=3`).
    pub extension: Vec<ExtensionFilter>,
    /// `group=` and `membership-role=`.
    pub household: InHousehold,
    pub sort: Vec<SortKey>,
    pub visibility: Visibility,
}

/// Sortable fields, by their search-parameter name.
pub const SORT_COLUMNS: [(&str, &str); 4] = [
    ("name", "family_name"),
    ("given", "given_name"),
    ("birthdate", "birth_date"),
    ("_lastUpdated", "last_updated"),
];

impl IndividualQuery {
    /// An identifier with no other filter and at most one sort key: its page is kept on its
    /// connection (`Newest::Named`), and so must have one of a few texts. Filters beside the
    /// identifier still select its one row at most, but each combination of them (a date
    /// range may repeat) is a text of its own, and kept they could crowd out a connection's
    /// other kept statements.
    fn names_alone(&self) -> bool {
        self.name.is_none()
            && self.birth_date.is_empty()
            && self.gender.is_none()
            && self.address.is_none()
            && self.last_updated.is_empty()
            && self.active.is_none()
            && self.extension.is_empty()
            && self.household.is_empty()
            && self.sort.len() <= 1
    }
}

impl ViewQuery for IndividualQuery {
    type State = Individual;
    const TABLE: &'static str = "individual_view";
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
    /// An identifier names one person: its page is that person, never worth a probe. A client
    /// bound by consent reads only the newest rows some consent reaches.
    fn newest(&self) -> Newest {
        match (&self.identifier, &self.visibility) {
            (Some(_), _) if self.names_alone() => Newest::Named,
            (Some(_), _) => Newest::Sort,
            (None, Visibility::Consented { .. }) => Newest::Reached,
            (None, Visibility::All) => Newest::Probe,
        }
    }
    fn probes_consents(&self) -> bool {
        self.visibility.probes()
    }
    /// The fields this search filters or sorts on, with the parameter that names each. The
    /// identifier and `meta` (`_lastUpdated`) are visible to every reader and not listed.
    fn fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        if self.name.is_some() {
            fields.push(("name", "name"));
        }
        if !self.birth_date.is_empty() {
            fields.push(("birthdate", "birthDate"));
        }
        if self.gender.is_some() {
            fields.push(("gender", "gender"));
        }
        if self.address.is_some() {
            fields.push(("address", "address"));
        }
        if self.active.is_some() {
            fields.push(("active", "active"));
        }
        if self.household.group.is_some() {
            fields.push(("group", "groupMembership"));
        }
        if self.household.role.is_some() {
            fields.push(("membership-role", "groupMembership"));
        }
        for key in &self.sort {
            match key.column {
                "family_name" | "given_name" => fields.push(("_sort", "name")),
                "birth_date" => fields.push(("_sort", "birthDate")),
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

/// The `individual_view` row of one stream.
pub(crate) struct Line {
    aggregate_id: String,
    version: i64,
    state: String,
    primary: Option<String>,
    name_search: String,
    family_name: Option<String>,
    given_name: Option<String>,
    birth_date: Option<NaiveDate>,
    gender_code: Option<String>,
    address_search: String,
    active: bool,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

/// The row stream `aggregate_id` puts in the read model, as `fold` now holds it.
pub(crate) fn line(aggregate_id: &str, fold: &Fold<Individual>) -> Result<Line, ProjectionError> {
    let state = &fold.state;
    let name_search = state.name.search_text();
    let address_search = search_text(state.address.iter().flat_map(|a| {
        a.line.iter().chain(
            [
                &a.text,
                &a.city,
                &a.district,
                &a.state,
                &a.postal_code,
                &a.country,
            ]
            .into_iter()
            .flatten(),
        )
    }));
    let (created_at, last_updated) = fold.recorded()?;
    Ok(Line {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        primary: state.live_identifiers().next().map(Identifier::key),
        name_search,
        family_name: state.name.family.clone(),
        given_name: state.name.given.clone(),
        birth_date: state.birth_date,
        gender_code: state.gender.as_ref().map(|g| g.code.clone()),
        address_search,
        active: state.active,
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
    statement.part("individual_rows", |qb, guard| {
        qb.push(
            "INSERT INTO individual_view (aggregate_id, version, state, primary_identifier, \
                 name_search, family_name, given_name, birth_date, gender_code, address_search, \
                 active, created_at, last_updated, source) \
             SELECT aggregate_id, version, state::jsonb, primary_identifier, name_search, \
                 family_name, given_name, birth_date, gender_code, address_search, active, \
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
            .column(
                "primary_identifier",
                "text",
                map(lines, |l| l.primary.as_deref()),
            )
            .column(
                "name_search",
                "text",
                map(lines, |l| l.name_search.as_str()),
            )
            .column(
                "family_name",
                "text",
                map(lines, |l| l.family_name.as_deref()),
            )
            .column(
                "given_name",
                "text",
                map(lines, |l| l.given_name.as_deref()),
            )
            .column("birth_date", "date", map(lines, |l| l.birth_date))
            .column(
                "gender_code",
                "text",
                map(lines, |l| l.gender_code.as_deref()),
            )
            .column(
                "address_search",
                "text",
                map(lines, |l| l.address_search.as_str()),
            )
            .column("active", "boolean", map(lines, |l| l.active))
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
                 name_search = EXCLUDED.name_search, family_name = EXCLUDED.family_name, \
                 given_name = EXCLUDED.given_name, birth_date = EXCLUDED.birth_date, \
                 gender_code = EXCLUDED.gender_code, address_search = EXCLUDED.address_search, \
                 active = EXCLUDED.active, last_updated = EXCLUDED.last_updated, \
                 source = EXCLUDED.source",
        );
    });
}

pub async fn get(pool: &PgPool, aggregate_id: &str) -> sqlx::Result<Option<IndividualRow>> {
    view::get(pool, "individual_view", aggregate_id).await
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &IndividualQuery) {
    push_filters_admitting(qb, query, Admit::Probed)
}

/// The query's filters, its rows admitted to a consent-bound client as `admit` says.
fn push_filters_admitting(
    qb: &mut QueryBuilder<'_, Postgres>,
    query: &IndividualQuery,
    admit: Admit,
) {
    qb.push(" WHERE true");
    let fields = query.fields().into_iter().map(|(_, field)| field);
    admit.push(qb, &query.visibility, "individual", fields);
    if let Some(identifier) = &query.identifier {
        crate::identifier_claims::push_holder(qb, "Individual", identifier);
    }
    if let Some(name) = &query.name {
        qb.push(" AND name_search LIKE ")
            .push_bind(like_contains(name));
    }
    push_dates(qb, "birth_date", &query.birth_date);
    if let Some(gender) = &query.gender {
        qb.push(" AND gender_code = ").push_bind(gender.clone());
    }
    if let Some(address) = &query.address {
        qb.push(" AND address_search LIKE ")
            .push_bind(like_contains(address));
    }
    push_instants(qb, "last_updated", &query.last_updated);
    if let Some(active) = query.active {
        qb.push(" AND active = ").push_bind(active);
    }
    for filter in &query.extension {
        filter.push(qb);
    }
    query.household.push(qb, &query.visibility);
}

/// The plans PostgreSQL chooses for the statements `search` may run to count and page this
/// query: the count, the page, and the page that counts every match (`page_statement`,
/// `counted`: for a client bound by consent whose count would read every match anyway, or
/// an identifier alone whoever asks, on the count's connection), planned with this query's
/// values as `search` plans them: so that a test can hold a search parameter to its index at
/// a realistic size.
pub async fn plans(
    pool: &PgPool,
    query: &IndividualQuery,
    page: Page,
) -> sqlx::Result<Vec<String>> {
    let filters = |qb: &mut QueryBuilder<'_, Postgres>| push_filters(qb, query);
    let statements = [
        // The count (and the page that counts) run as `search` runs them; the page, as a
        // plain statement does.
        (
            view::count_statement("EXPLAIN ", "individual_view", filters, page),
            true,
        ),
        (
            view::page_statement(
                "EXPLAIN ",
                "individual_view",
                filters,
                &query.sort,
                page,
                false,
            ),
            false,
        ),
        (
            view::page_statement(
                "EXPLAIN ",
                "individual_view",
                filters,
                &query.sort,
                page,
                true,
            ),
            true,
        ),
    ];
    let mut plans = Vec::with_capacity(statements.len());
    for (mut statement, on_count) in statements {
        let mut tx = if on_count {
            view::counting(pool, page).await?
        } else {
            begin(pool).await?
        };
        let lines: Vec<String> = statement
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        plans.push(lines.join("\n"));
    }
    Ok(plans)
}

/// The plan PostgreSQL chooses for the probe of the newest rows `search` runs first for a
/// newest-first page of this query (`newest::newest_statement`), `None` when it runs none: so
/// that a test can hold the probe to its bound.
pub async fn newest_plan(
    pool: &PgPool,
    query: &IndividualQuery,
    page: Page,
) -> sqlx::Result<Option<String>> {
    let Some(mut qb) = newest::newest_statement(
        "EXPLAIN ",
        query.newest(),
        "individual_view",
        |qb| push_filters(qb, query),
        &query.sort,
        page,
    ) else {
        return Ok(None);
    };
    // As `search` runs it: a statement in a transaction of its own, here planned with its
    // values (an `EXPLAIN` with parameters is); the plan without them, which the probe runs
    // (`newest::probe_page`), is read through `newest_sql`.
    let mut tx = begin(pool).await?;
    let lines: Vec<String> = qb
        .build_query_scalar()
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(Some(lines.join("\n")))
}

/// The text of the probe of the newest rows `search` runs first for a newest-first page of
/// this query (`newest::newest_statement`), its values as parameters; `None` when it runs
/// none: so that a test can `PREPARE` it and read the plan PostgreSQL makes without the
/// values, which the probe runs.
pub fn newest_sql(query: &IndividualQuery, page: Page) -> Option<String> {
    newest::newest_statement(
        "",
        query.newest(),
        "individual_view",
        |qb| push_filters(qb, query),
        &query.sort,
        page,
    )
    .map(|qb| qb.into_sql())
}

/// The page the probe of the newest rows finds for this query, when it is the search's page
/// (`None` when it is not, or when no probe runs, or PostgreSQL expects too few matches among
/// the newest rows to run it): so that a test can tell that a page was
/// read from the newest rows alone, and compare it with the page every match sorted gives.
pub async fn newest_page(
    pool: &PgPool,
    query: &IndividualQuery,
    page: Page,
) -> sqlx::Result<Option<Vec<IndividualRow>>> {
    let filters = |qb: &mut QueryBuilder<'_, Postgres>| push_filters(qb, query);
    let newest = query.newest();
    let Some(mut probe) =
        newest::newest_statement("", newest, "individual_view", filters, &query.sort, page)
    else {
        return Ok(None);
    };
    let estimated =
        |qb: &mut QueryBuilder<'_, Postgres>| push_filters_admitting(qb, query, Admit::Reached);
    let mut tx = view::page_transaction(pool).await?;
    let expected = Expected::explain(&mut tx, newest, "individual_view", estimated).await?;
    let rows = newest::probe_page(&mut tx, &mut probe, expected, page).await?;
    end_read(tx);
    rows.map(|rows| rows.iter().map(ViewRow::from_row).collect())
        .transpose()
}

/// What the count of a search of this query counts (at most `page.counted_at_most()` for
/// `Total::Estimate` and `Total::AtLeast`), counted as `search` counts it, with whether it
/// walked the newest rows to find them (`newest::walk_statement`): so that a test can tell
/// which way a count went and that both count alike.
pub async fn counted(
    pool: &PgPool,
    query: &IndividualQuery,
    page: Page,
) -> sqlx::Result<(i64, bool)> {
    let filters = |qb: &mut QueryBuilder<'_, Postgres>| push_filters(qb, query);
    let newest = query.newest();
    let mut count = view::count_statement("", "individual_view", filters, page);
    let mut walk = newest::walk_statement("", newest, "individual_view", filters, page);
    let estimated =
        |qb: &mut QueryBuilder<'_, Postgres>| push_filters_admitting(qb, query, Admit::Reached);
    let mut tx = view::counting(pool, page).await?;
    let expected = Expected::explain(&mut tx, newest, "individual_view", estimated).await?;
    let counted = newest::count_matches(&mut tx, walk.as_mut(), expected, &mut count, page).await?;
    end_read(tx);
    Ok(counted)
}

/// The identifier (`system|value`) by which other resources reference each individual.
pub async fn primary_identifiers(
    pool: &PgPool,
    aggregate_ids: &[String],
) -> sqlx::Result<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT aggregate_id, primary_identifier FROM individual_view WHERE aggregate_id = ANY($1)",
    )
    .bind(aggregate_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, primary)| primary.map(|p| (id, p)))
        .collect())
}

/// An individual's current membership in a group, for `groupMembership`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct GroupMembershipRow {
    /// The group's stream (for the consent filter; never shown).
    pub group_id: String,
    pub group_identifier: String,
    pub roles: Vec<String>,
    pub start_date: NaiveDate,
}

/// The current group memberships of the individual row `v` (its `aggregate_id`), as a JSON
/// array of `GroupMembershipRow`s in the order `groupMembership` lists them (NULL for none):
/// an expression a read of the row computes in the same statement (`by_identifier_with`).
pub const MEMBERSHIPS_OF_ROW: &str = "(SELECT json_agg(json_build_object(\
         'group_id', m.group_id, 'group_identifier', g.primary_identifier, 'roles', m.roles, \
         'start_date', m.start_date) ORDER BY m.start_date, g.primary_identifier) \
     FROM group_members_view m JOIN group_view g ON g.aggregate_id = m.group_id \
     WHERE m.individual_id = v.aggregate_id AND m.ended_date IS NULL \
       AND g.primary_identifier IS NOT NULL)";

/// The memberships `MEMBERSHIPS_OF_ROW` computed.
pub fn memberships_of_row(
    value: Option<serde_json::Value>,
) -> sqlx::Result<Vec<GroupMembershipRow>> {
    crate::view::decode_beside(value)
}

/// Current group memberships of each of `individual_ids`, in one query.
pub async fn group_memberships(
    pool: &PgPool,
    individual_ids: &[String],
) -> sqlx::Result<HashMap<String, Vec<GroupMembershipRow>>> {
    let rows = sqlx::query(&format!(
        "SELECT v.aggregate_id, {MEMBERSHIPS_OF_ROW} AS memberships \
         FROM unnest($1::text[]) AS v(aggregate_id)"
    ))
    .bind(individual_ids)
    .fetch_all(pool)
    .await?;
    let mut memberships: HashMap<String, Vec<GroupMembershipRow>> = HashMap::new();
    for row in rows {
        let of_row = memberships_of_row(row.try_get("memberships")?)?;
        if !of_row.is_empty() {
            memberships.insert(row.try_get("aggregate_id")?, of_row);
        }
    }
    Ok(memberships)
}
