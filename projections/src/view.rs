//! What the Individual and Group read models share: a row holding the folded aggregate, fetched
//! by key or by a filtered, sorted, paged search.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::search::{push_order, Found, Page, SortKey};

/// A resource as its read model holds it.
#[derive(Debug, Clone)]
pub struct ViewRow<A> {
    pub aggregate_id: String,
    /// The stream's sequence number the row reflects (the resource's `versionId`).
    pub version: i64,
    pub state: A,
    pub last_updated: DateTime<Utc>,
    /// Source system of the latest change.
    pub source: Option<String>,
}

const COLUMNS: &str = "aggregate_id, version, state, last_updated, source";

impl<A: DeserializeOwned> ViewRow<A> {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        let state: Value = row.try_get("state")?;
        Ok(Self {
            aggregate_id: row.try_get("aggregate_id")?,
            version: row.try_get("version")?,
            state: serde_json::from_value(state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            last_updated: row.try_get("last_updated")?,
            source: row.try_get("source")?,
        })
    }
}

pub async fn get<A: DeserializeOwned>(
    pool: &PgPool,
    table: &'static str,
    aggregate_id: &str,
) -> sqlx::Result<Option<ViewRow<A>>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM {table} WHERE aggregate_id = $1"
    ))
    .bind(aggregate_id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(ViewRow::from_row)
    .transpose()
}

/// The stream of `aggregate_type` holding the live identifier `system|value`, with its row in
/// `table` (`None` while the read model lags the claim): a read by identifier in one round trip.
pub async fn by_identifier<A: DeserializeOwned>(
    pool: &PgPool,
    table: &'static str,
    aggregate_type: &str,
    system: &str,
    value: &str,
) -> sqlx::Result<Option<(String, Option<ViewRow<A>>)>> {
    let row = sqlx::query(&format!(
        "SELECT c.aggregate_id AS stream, v.aggregate_id, v.version, v.state, v.last_updated, \
                v.source \
         FROM identifier_claims c LEFT JOIN {table} v ON v.aggregate_id = c.aggregate_id \
         WHERE c.aggregate_type = $1 AND c.system = $2 AND c.value = $3"
    ))
    .bind(aggregate_type)
    .bind(system)
    .bind(value)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stream: String = row.try_get("stream")?;
    let viewed: Option<String> = row.try_get("aggregate_id")?;
    let current = match viewed {
        Some(_) => Some(ViewRow::from_row(&row)?),
        None => None,
    };
    Ok(Some((stream, current)))
}

/// The rows whose `column` is one of `keys`, in one statement: what a batch loader asks for a
/// whole page of links at once (`aggregate_id` for resources by stream, `beneficiary_id` for
/// the memberships of many registrants). The order is the table's; callers key the rows.
pub async fn rows_where<A: DeserializeOwned>(
    pool: &PgPool,
    table: &'static str,
    column: &'static str,
    keys: &[String],
) -> sqlx::Result<Vec<ViewRow<A>>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM {table} WHERE {column} = ANY($1)"
    ))
    .bind(keys)
    .fetch_all(pool)
    .await?
    .iter()
    .map(ViewRow::from_row)
    .collect()
}

/// Counts the matches and fetches one page of them (two statements, run at once); `filters`
/// appends `WHERE …`.
///
/// Both statements are unnamed (not cached), so PostgreSQL plans them with the values of this
/// search: a cached generic plan cannot see how selective a consent filter or a date range is,
/// and was measured 7x slower on consent-filtered searches.
pub(crate) async fn search<A: DeserializeOwned>(
    pool: &PgPool,
    table: &'static str,
    filters: impl Fn(&mut QueryBuilder<'_, Postgres>),
    sort: &[SortKey],
    page: Page,
) -> sqlx::Result<Found<ViewRow<A>>> {
    let mut count = QueryBuilder::new(format!("SELECT count(*) FROM {table}"));
    filters(&mut count);
    let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM {table}"));
    filters(&mut select);
    push_order(&mut select, sort, page);
    // Side by side on two connections: a search takes the longer of the two, not their sum.
    let (total, rows): (i64, _) = tokio::try_join!(
        count.build_query_scalar().persistent(false).fetch_one(pool),
        select.build().persistent(false).fetch_all(pool),
    )?;
    Ok(Found {
        total,
        rows: rows
            .iter()
            .map(ViewRow::from_row)
            .collect::<sqlx::Result<_>>()?,
    })
}

/// A search for the rows any of `queries` matches (OpenSPP's `_search` with OR logic): each
/// query's own filters, consent rule included, select its rows, and their union is counted and
/// paged in `sort` order. One query is searched as itself.
pub(crate) async fn search_any<A: DeserializeOwned, Q>(
    pool: &PgPool,
    table: &'static str,
    queries: &[Q],
    push_filters: fn(&mut QueryBuilder<'_, Postgres>, &Q),
    sort: &[SortKey],
    page: Page,
) -> sqlx::Result<Found<ViewRow<A>>> {
    if let [query] = queries {
        return search(pool, table, |qb| push_filters(qb, query), sort, page).await;
    }
    let any = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" WHERE aggregate_id IN (");
        for (i, query) in queries.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ");
            }
            qb.push(format!("SELECT aggregate_id FROM {table}"));
            push_filters(qb, query);
        }
        if queries.is_empty() {
            qb.push("SELECT NULL WHERE false");
        }
        qb.push(")");
    };
    search(pool, table, any, sort, page).await
}

/// A search of one read model: the table, its order, and the filters one query adds. Counting
/// and paging it (`search_view`), or the union of several (`search_view_any`), is then written
/// once here rather than as a pair of functions per read model.
pub trait ViewQuery: Sized + Sync {
    /// The state each row holds.
    type State: DeserializeOwned;
    const TABLE: &'static str;
    /// The read model's own order; a query that takes `_sort` says its own (`order`).
    const ORDER: &'static [SortKey] = &[];
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self);

    /// The order this query's rows come in; a union of several comes in the first one's.
    fn order(&self) -> &[SortKey] {
        Self::ORDER
    }

    /// The fields this search filters or sorts on, with the parameter that names each: a
    /// client whose own field filter hides one may not search on it. By default none (a read
    /// model no field filter narrows).
    fn fields(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The rows `query` selects, counted and paged in its read model's order.
pub async fn search_view<Q: ViewQuery>(
    pool: &PgPool,
    query: &Q,
    page: Page,
) -> sqlx::Result<Found<ViewRow<Q::State>>> {
    search(
        pool,
        Q::TABLE,
        |qb| Q::push_filters(qb, query),
        query.order(),
        page,
    )
    .await
}

/// The rows any of `queries` selects (see `search_any`).
pub async fn search_view_any<Q: ViewQuery>(
    pool: &PgPool,
    queries: &[Q],
    page: Page,
) -> sqlx::Result<Found<ViewRow<Q::State>>> {
    let order = queries.first().map_or(Q::ORDER, Q::order);
    search_any(pool, Q::TABLE, queries, Q::push_filters, order, page).await
}

/// Lower-cased words of a resource's text fields, for `LIKE '%…%'` search on a trigram index.
pub(crate) fn search_text<'a>(parts: impl IntoIterator<Item = &'a String>) -> String {
    parts
        .into_iter()
        .map(|part| part.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}
