//! The Product read model: OpenSPP's search by name, code and category, in name order; `key`
//! (default code, else name) and `name` find one product by OpenSPP's lookup.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use openspp_aggregates::product::{key_identifier, Product};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::ProjectionError;
use crate::events::Fold;
use crate::search::{like_contains, push_instants, Comparator, SortKey};
use crate::statement::{map, Statement, Unnest};
use crate::view::{self, ViewQuery, ViewRow};

pub type ProductRow = ViewRow<Product>;

#[derive(Debug)]
pub struct ProductQuery {
    /// A part of the name, whatever its case.
    pub name: Option<String>,
    /// A part of the default code, whatever its case.
    pub code: Option<String>,
    /// Category codes, one of which the product's is (those whose name holds the part asked).
    pub categories: Option<Vec<String>>,
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
    key: String,
    name: String,
    code: String,
    category: String,
    created_at: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    source: Option<String>,
}

pub(crate) fn line(aggregate_id: &str, fold: &Fold<Product>) -> Result<Line, ProjectionError> {
    let details = &fold.state.details;
    let (created_at, last_updated) = fold.recorded()?;
    Ok(Line {
        aggregate_id: aggregate_id.to_owned(),
        version: fold.version as i64,
        state: fold.state_json()?,
        key: details.key().to_owned(),
        name: details.name.clone(),
        code: details.default_code.clone().unwrap_or_default(),
        category: details.category.clone().unwrap_or_default(),
        created_at,
        last_updated,
        source: fold.source.clone(),
    })
}

pub(crate) fn push_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [Line]) {
    if lines.is_empty() {
        return;
    }
    statement.part("product_rows", |qb, guard| {
        qb.push(
            "INSERT INTO product_view (aggregate_id, version, state, key, name, code, \
                 category, created_at, last_updated, source) \
             SELECT aggregate_id, version, state::jsonb, key, name, code, category, \
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
            .column("key", "text", map(lines, |l| l.key.as_str()))
            .column("name", "text", map(lines, |l| l.name.as_str()))
            .column("code", "text", map(lines, |l| l.code.as_str()))
            .column("category", "text", map(lines, |l| l.category.as_str()))
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
                 state = EXCLUDED.state, name = EXCLUDED.name, category = EXCLUDED.category, \
                 last_updated = EXCLUDED.last_updated, source = EXCLUDED.source",
        );
    });
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &ProductQuery) {
    qb.push(" WHERE true");
    if let Some(name) = &query.name {
        qb.push(" AND lower(name) LIKE ")
            .push_bind(like_contains(name));
    }
    if let Some(code) = &query.code {
        qb.push(" AND lower(code) LIKE ")
            .push_bind(like_contains(code));
    }
    if let Some(categories) = &query.categories {
        qb.push(" AND category = ANY(")
            .push_bind(categories.clone())
            .push(")");
    }
    push_instants(qb, "last_updated", &query.last_updated);
}

impl ViewQuery for ProductQuery {
    type State = Product;
    const TABLE: &'static str = "product_view";
    const ORDER: &'static [SortKey] = &ORDER;
    fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        push_filters(qb, query)
    }
}

/// OpenSPP's lookup: the product whose key (default code, else name) is `key`, else the first
/// of that exact name; its stream, with its row (`None` while the read model lags the claim).
pub async fn locate(
    pool: &PgPool,
    key: &str,
) -> sqlx::Result<Option<(String, Option<ProductRow>)>> {
    let identifier = key_identifier(key);
    let found = view::by_identifier::<Product>(
        pool,
        "product_view",
        Product::TYPE,
        &identifier.system,
        &identifier.value,
    )
    .await?;
    if found.is_some() {
        return Ok(found);
    }
    let named: Option<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM product_view WHERE name = $1 \
         ORDER BY created_at, aggregate_id LIMIT 1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?;
    match named {
        Some(stream) => {
            let row = view::get::<Product>(pool, "product_view", &stream).await?;
            Ok(Some((stream, row)))
        }
        None => Ok(None),
    }
}
