//! What the Individual and Group read models share: a row holding the folded aggregate, fetched
//! by key or by a filtered, sorted, paged search.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder, Row};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::begin::{begin_with, end_read};
use crate::newest::{
    count_matches, newest_statement, probe_page, walk_statement, Expected, Newest,
};
use crate::search::{push_order, push_sort, Found, Page, SortKey, Total};

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

pub(crate) const COLUMNS: &str = "aggregate_id, version, state, last_updated, source";

impl<A: DeserializeOwned> ViewRow<A> {
    pub(crate) fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        // Straight from the column's bytes into the state, not through a `Value` first: the
        // tree of maps and strings it built cost a read by identifier ~3% of the server's CPU.
        let sqlx::types::Json(state) = row.try_get::<sqlx::types::Json<A>, _>("state")?;
        Ok(Self {
            aggregate_id: row.try_get("aggregate_id")?,
            version: row.try_get("version")?,
            state,
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

/// The stream holding an identifier, with its row (`None` while the read model lags the claim)
/// and what was computed beside it.
pub type Claimed<A> = (String, Option<(ViewRow<A>, Option<Value>)>);

/// What a read by identifier finds: nothing for an identifier nobody holds.
pub type ByIdentifier<A> = Option<Claimed<A>>;

/// The most reads by identifier one statement asks for together (`together.rs`).
pub const READ_TOGETHER: usize = 64;

/// The stream of `aggregate_type` holding the live identifier `system|value`, with its row in
/// `table` (`None` while the read model lags the claim): a read by identifier in one round trip.
pub async fn by_identifier<A: DeserializeOwned>(
    pool: impl PgExecutor<'_>,
    table: &'static str,
    aggregate_type: &'static str,
    system: &str,
    value: &str,
) -> sqlx::Result<Option<(String, Option<ViewRow<A>>)>> {
    let found = IdentifierRead::new(table, aggregate_type)
        .row(pool, system, value)
        .await?
        .as_ref()
        .map(found_by_identifier)
        .transpose()?;
    Ok(without_beside(found))
}

/// A read by identifier's find, without what was computed beside the row.
pub fn without_beside<A>(found: ByIdentifier<A>) -> Option<(String, Option<ViewRow<A>>)> {
    found.map(|(stream, row)| (stream, row.map(|(row, _)| row)))
}

/// A kind of read by identifier: the claims of `aggregate_type`, joined to their rows in
/// `table`, with `beside`: an expression over the row (`v`) computed in the same statement
/// (what rendering the row needs from other read models, as JSON), given with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentifierRead {
    pub table: &'static str,
    pub aggregate_type: &'static str,
    pub beside: Option<&'static str>,
}

impl IdentifierRead {
    /// The read of the row alone, nothing beside it.
    pub fn new(table: &'static str, aggregate_type: &'static str) -> Self {
        Self {
            table,
            aggregate_type,
            beside: None,
        }
    }

    /// The row holding `system|value`, not decoded yet (`found_by_identifier` decodes it).
    pub(crate) async fn row(
        &self,
        pool: impl PgExecutor<'_>,
        system: &str,
        value: &str,
    ) -> sqlx::Result<Option<PgRow>> {
        sqlx::query(&self.statement(false))
            .bind(self.aggregate_type)
            .bind(system)
            .bind(value)
            .fetch_optional(pool)
            .await
    }

    /// The statement (`$1` the type, `$2` the system, `$3` the value); `together`, of many at
    /// once (`TOGETHER_KEYS`), each row led by its key's `ordinal`.
    ///
    /// The claim is found by its primary key alone and its type checked after (`OFFSET 0`
    /// keeps the type out of the lookup): a type the statistics call rare (programs, beside a
    /// registry of people) otherwise looked cheaper to find through the claims' index by
    /// type, so PostgreSQL planned the statement anew on every run and never kept a plan. The
    /// program a read together found cost ~170 µs of planning a statement, more than its
    /// execution, at 3,000 enrolments/s a tenth of a core.
    pub fn statement(&self, together: bool) -> String {
        let Self { table, beside, .. } = self;
        let beside = beside.unwrap_or("NULL::json");
        let read = |system: &str, value: &str| {
            format!(
                "SELECT c.aggregate_id AS stream, v.aggregate_id, v.version, v.state, \
                        v.last_updated, v.source, {beside} AS beside \
                 FROM (SELECT aggregate_type, aggregate_id FROM identifier_claims \
                       WHERE system = {system} AND value = {value} OFFSET 0) c \
                 LEFT JOIN {table} v ON v.aggregate_id = c.aggregate_id \
                 WHERE c.aggregate_type = $1"
            )
        };
        if together {
            let one = read("($2::text[])[k.ordinal]", "($3::text[])[k.ordinal]");
            format!(
                "SELECT k.ordinal, r.* FROM {} CROSS JOIN LATERAL ({one} LIMIT 1) r",
                TOGETHER_KEYS.replace("{most}", &READ_TOGETHER.to_string())
            )
        } else {
            read("$2", "$3")
        }
    }
}

/// The keys of a read by identifier of many at once: `$2` (systems) and `$3` (values), each
/// with its `ordinal`, at most `READ_TOGETHER`. Numbered by `generate_subscripts` with a
/// `LIMIT`, not by `unnest … WITH ORDINALITY`: PostgreSQL expects as many keys as the limit
/// allows, so that the plan it keeps for the statement (a generic plan, from its sixth run on
/// a connection) is two index lookups per key; `unnest` was planned anew on every run (its
/// custom plans always looked cheaper), and without the limit the generic plan expected a
/// thousand keys and hashed a scan of the claims.
///
/// Each key is read by its own subquery (`LATERAL … LIMIT 1`, which PostgreSQL cannot fold
/// into a join), so its claim can only be found by the claims' primary key: joined to the
/// keys, the claims were hashed whenever their table looked small, as it does to a planner
/// with no statistics (a registry loaded in bulk before its first `ANALYZE`), and a plan kept
/// from then read every claim for every read (30,000 claims: 1,000 reads a second instead of
/// 12,000).
const TOGETHER_KEYS: &str = "(SELECT generate_subscripts($2::text[], 1) AS ordinal LIMIT {most}) k";

/// What an expression computed beside a row (`IdentifierRead::beside`) as JSON, decoded; SQL's
/// `NULL` (an aggregate over no rows) is the empty value.
pub fn decode_beside<T: DeserializeOwned + Default>(value: Option<Value>) -> sqlx::Result<T> {
    match value {
        None | Some(Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(Box::new(e))),
    }
}

/// A row of a read by identifier: the stream, and its row in the read model if it has one.
pub(crate) fn found_by_identifier<A: DeserializeOwned>(row: &PgRow) -> sqlx::Result<Claimed<A>> {
    let stream: String = row.try_get("stream")?;
    let viewed: Option<String> = row.try_get("aggregate_id")?;
    let current = match viewed {
        Some(_) => Some((ViewRow::from_row(row)?, row.try_get("beside")?)),
        None => None,
    };
    Ok((stream, current))
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

/// Counts the matches and fetches one page of them, on two connections side by side (or in one
/// statement, below); `filters` appends `WHERE …`. With `reading.newest` (see `Newest`), a
/// first page in newest-first order is read from the newest rows alone when they hold it, and
/// a count walks them to find its bound: one `EXPLAIN` of the filters over the newest rows, run
/// first, decides both and gives the total past the bound (`Expected`). That `EXPLAIN` is of
/// `estimated`: the filters, or (for a read model that keeps a consent reach) the filters
/// admitting a consent-bound client's rows by their reach alone (`Admit::Reached`); it reads
/// no row.
///
/// A search whose filters probe each match's consents (`Reading::probed`), and whose count
/// would read every match anyway (few are expected, or `Total::Accurate`; no probe of the
/// newest rows, no walk), counts them in the page's own statement instead
/// (`counted_with_page`), on one connection: the count would probe again the very rows the
/// page probed, planning the consent rule a second time. A month of birth dates at
/// 1,000,000 people, for a client one person in ten consented to: count and page apart cost
/// PostgreSQL 0.90 ms (pgbench, 16 clients, 2,687 counts/s and 1,897 pages/s), the page that
/// counts 0.57 ms (1,749/s). Not for a search under a legal basis: its count stops at its bound
/// reading index entries alone (26,380/s), and counting beside the page holds every match in
/// a window (2,967 pages/s against 4,474) — unless its filters name their rows
/// (`Newest::Named`, an identifier): then the window holds one row, and the count apart cost
/// as much as the page (planned and run on a second connection: at 1,000,000 people,
/// PostgreSQL planned the count 0.49 ms and ran it 0.32 ms beside the page's 0.80 and 0.44).
///
/// Every statement is unnamed (not cached), so PostgreSQL plans them with the values of this
/// search: a cached generic plan cannot see how selective a consent filter or a date range is,
/// and was measured 7x slower on consent-filtered searches. The exceptions are statements
/// whose plan is the same whatever the values: the page of filters that name their rows
/// (`counted_with_page`), and the walk and the probe of the newest rows
/// (`newest::count_matches`, `newest::probe_page`).
///
/// A search holds two of the connections the search budget allows (`limit_searches`; it uses
/// one when it counts in its page), and each statement runs under the budget's
/// `statement_timeout`: searches, however many and however slow, leave the rest of the pool to
/// writes, reads and the projector. Over its budget a search fails with `SearchBusy` (waited
/// too long for a place) or SQLSTATE 57014 (ran too long).
pub(crate) async fn search<A: DeserializeOwned>(
    pool: &PgPool,
    table: &'static str,
    filters: impl Fn(&mut QueryBuilder<'_, Postgres>),
    estimated: impl Fn(&mut QueryBuilder<'_, Postgres>),
    sort: &[SortKey],
    page: Page,
    reading: Reading,
) -> sqlx::Result<Found<ViewRow<A>>> {
    let newest = reading.newest;
    let mut count = count_statement("", table, &filters, page);
    let mut select = page_statement("", table, &filters, sort, page, false);
    let mut probe = newest_statement("", newest, table, &filters, sort, page);
    let mut walk = walk_statement("", newest, table, &filters, page);
    let budget = budget();
    let _places = budget.enter().await?;
    // A search that may count in its page's statement opens its second connection only once
    // it knows it needs one: one whose filters probe consents, or name their rows.
    let may_count_with_page = (reading.probed || newest == Newest::Named) && page.count > 0;
    let (mut counting, paging) = if may_count_with_page {
        (begin_with(pool, budget.begin_count(page)).await?, None)
    } else {
        let (counting, paging) = tokio::try_join!(
            begin_with(pool, budget.begin_count(page)),
            page_transaction(pool)
        )?;
        (counting, Some(paging))
    };
    let expected = if probe.is_some() || walk.is_some() {
        Expected::explain(&mut counting, newest, table, &estimated).await?
    } else {
        None
    };
    // Counted in the page's statement where the count would read every match anyway: it
    // counts them all (`Total::Accurate`), or PostgreSQL expects no more than its bound (an
    // identifier's one; a month a client's consents reach), and the page does not probe the
    // newest rows nor the count walk them. Not where more may match: a page in the order of an
    // index stops after its rows, and a count at its bound, where the window reads them all;
    // nor where the newest rows were to be explained and were not (the matches are unknown).
    let probes = probe.is_some() && expected.is_some_and(|expected| expected.probes(page));
    let walks = walk.is_some() && expected.is_some_and(|expected| expected.walks(page));
    let unexplained = expected.is_none() && (probe.is_some() || walk.is_some());
    let few = match expected {
        Some(expected) => expected.total() <= page.counted_at_most(),
        None => matches!(newest, Newest::Sort | Newest::Named),
    };
    let counts_with_page = may_count_with_page
        && !probes
        && !walks
        && !unexplained
        && (page.total == Total::Accurate || few);
    if counts_with_page {
        let found = counted_with_page(
            &mut counting,
            table,
            &filters,
            sort,
            page,
            newest == Newest::Named,
            expected,
            &mut count,
        )
        .await?;
        end_read(counting);
        return Ok(found);
    }
    let mut paging = match paging {
        Some(paging) => paging,
        None => page_transaction(pool).await?,
    };
    // Side by side on two connections: a search takes the longer of the two, not their sum.
    let counted = async {
        let (counted, _walked) =
            count_matches(&mut counting, walk.as_mut(), expected, &mut count, page).await?;
        // After a walk that reached its bound, its connection plans prepared statements once
        // for all values to the end of this transaction (`count_matches`): nothing else is
        // sent on it but the end (`reported_total` reads the bound then, and `expected`).
        let total = reported_total(&mut counting, counted, expected, page, table, &filters).await?;
        end_read(counting);
        Ok::<_, sqlx::Error>(total)
    };
    let paged = async {
        let probed = match probe.as_mut() {
            Some(probe) => probe_page(&mut paging, probe, expected, page).await?,
            None => None,
        };
        let rows = match probed {
            Some(rows) => rows,
            None => {
                select
                    .build()
                    .persistent(false)
                    .fetch_all(&mut *paging)
                    .await?
            }
        };
        end_read(paging);
        Ok::<_, sqlx::Error>(rows)
    };
    let ((total, estimated), rows) = tokio::try_join!(counted, paged)?;
    found(total, estimated, &rows)
}

/// The page of `filters` with its total, counted in the page's own statement (`page_statement`,
/// `counted`) on `connection` (the count's, under its settings): for a search whose count
/// would read every match anyway (see `search`). The total is what the count statement
/// (`count`) would have counted, up to its bound; a page past the last match, which has no row
/// to carry it, runs that count.
///
/// `named`: the filters name their rows (`Newest::Named`). Its statement is then prepared and
/// kept on the connection, unlike every other search statement (see `search`): whatever
/// identifier is asked, the text is the same and one plan fits every value (a unique index
/// gives one row), so PostgreSQL may keep a generic plan rather than plan each search anew —
/// planning cost it twice the execution (0.88 ms against 0.46 at 1,000,000 people).
#[allow(clippy::too_many_arguments)]
async fn counted_with_page<'q, A: DeserializeOwned>(
    connection: &mut sqlx::PgConnection,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
    sort: &[SortKey],
    page: Page,
    named: bool,
    expected: Option<Expected>,
    count: &mut QueryBuilder<'_, Postgres>,
) -> sqlx::Result<Found<ViewRow<A>>> {
    let rows = page_statement("", table, &filters, sort, page, true)
        .build()
        .persistent(named)
        .fetch_all(&mut *connection)
        .await?;
    let counted = match rows.first() {
        Some(row) => {
            let matched: i64 = row.try_get("matched")?;
            match page.total {
                Total::Accurate => matched,
                Total::Estimate | Total::AtLeast => matched.min(page.counted_at_most()),
            }
        }
        None if page.offset == 0 => 0,
        None => {
            count_matches(&mut *connection, None, expected, count, page)
                .await?
                .0
        }
    };
    let (total, estimated) =
        reported_total(connection, counted, expected, page, table, &filters).await?;
    found(total, estimated, &rows)
}

/// How `search` may read a query's matches: whether a newest-first page may read the newest
/// rows first (`Newest`), and whether its filters probe each match's consents (a client bound
/// by consent: `ViewQuery::probes_consents`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    pub(crate) newest: Newest,
    pub(crate) probed: bool,
}

impl Reading {
    /// A search that sorts what its filters select and probes no consent.
    pub(crate) const SORTED: Self = Self {
        newest: Newest::Sort,
        probed: false,
    };

    fn of<Q: ViewQuery>(query: &Q) -> Self {
        Self {
            newest: query.newest(),
            probed: query.probes_consents(),
        }
    }
}

/// The page `rows` with its total.
fn found<A: DeserializeOwned>(
    total: i64,
    estimated: bool,
    rows: &[PgRow],
) -> sqlx::Result<Found<ViewRow<A>>> {
    Ok(Found {
        total,
        estimated,
        rows: rows
            .iter()
            .map(ViewRow::from_row)
            .collect::<sqlx::Result<_>>()?,
    })
}

/// The total a search reports, and whether it is past what was counted, from the matches it
/// `counted` (at most `page.counted_at_most()` unless the page asks for every one).
async fn reported_total<'q>(
    connection: &mut sqlx::PgConnection,
    counted: i64,
    expected: Option<Expected>,
    page: Page,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
) -> sqlx::Result<(i64, bool)> {
    Ok(
        if page.total == Total::AtLeast && counted >= page.counted_at_most() {
            // Past the bound, a lower bound: what was counted of what the client may see.
            (counted, true)
        } else if page.total == Total::Estimate && counted >= page.counted_at_most() {
            // More match than are counted: PostgreSQL's estimate of how many.
            let estimate = match expected {
                Some(expected) => expected.total(),
                None => estimate(connection, table, filters).await?,
            };
            (estimate.max(counted), true)
        } else {
            (counted, false)
        },
    )
}

/// PostgreSQL's estimate of the rows `filters` selects in `table`, for a search that does not
/// read its newest rows (`Expected` gives it for one that does).
async fn estimate<'q>(
    connection: &mut sqlx::PgConnection,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
) -> sqlx::Result<i64> {
    let plan = explain(connection, table, filters).await?;
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64)
}

/// The plan (`EXPLAIN (FORMAT JSON)`) of `SELECT 1 FROM {from}` under `filters`: what
/// PostgreSQL expects them to select, without running them.
pub(crate) async fn explain<'q>(
    connection: &mut sqlx::PgConnection,
    from: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
) -> sqlx::Result<Value> {
    let mut explain = QueryBuilder::new(format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {from}"));
    filters(&mut explain);
    explain
        .build_query_scalar()
        .persistent(false)
        .fetch_one(connection)
        .await
}

/// The page of `filters` in `sort` order (`head` before it: `EXPLAIN `), read in two steps of
/// one statement: the keys of the page's rows, found and sorted by the filters and the sort
/// alone, then those rows whole.
///
/// Why: a page sorts what its filters select to keep 20, and the rows are wide and scattered
/// where the index entries that select and sort them are narrow and together (migration
/// 0250): a month of birth dates at 1,000,000 people sorts 1,240 index entries and reads 20
/// rows, rather than reading 1,240 rows to sort them (0.8 ms against 2.4 ms in memory, and
/// against 51 ms when the rows are not). Where no index carries what a filter reads, the
/// first step reads the rows as the page did before, and the second adds 20 reads by key.
///
/// With `counted`, each row also carries `matched`: how many rows the filters select in all,
/// counted in a window over every match before the page's `LIMIT` keeps its own (see `search`
/// for when). A page past the last match has no row to carry the count.
pub(crate) fn page_statement<'q>(
    head: &str,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
    sort: &[SortKey],
    page: Page,
    counted: bool,
) -> QueryBuilder<'q, Postgres> {
    // The sub-select reads `table` under its own name, so that filters naming the table's
    // columns (`individual_view.aggregate_id`) read its rows; the key is unique in every
    // table searched (its primary key).
    let (rows, keys, close) = if counted {
        (
            format!("{COLUMNS}, paged.matched"),
            "JOIN (SELECT aggregate_id AS paged_key, count(*) OVER () AS matched",
            ") AS paged ON aggregate_id = paged.paged_key",
        )
    } else {
        (
            COLUMNS.to_owned(),
            "WHERE aggregate_id IN (SELECT aggregate_id",
            ")",
        )
    };
    let mut select = QueryBuilder::new(format!(
        "{head}SELECT {rows} FROM {table} {keys} FROM {table}"
    ));
    filters(&mut select);
    push_order(&mut select, sort, page);
    select.push(close);
    push_sort(&mut select, sort);
    select
}

/// The statement counting what `filters` selects in `table`, as `page.total` asks: every
/// match, or at most `page.counted_at_most()` of them (then the count stops there, whatever
/// the matches number). `head` goes before it (`EXPLAIN `).
pub(crate) fn count_statement<'q>(
    head: &str,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
    page: Page,
) -> QueryBuilder<'q, Postgres> {
    match page.total {
        Total::Accurate => {
            let mut count = QueryBuilder::new(format!("{head}SELECT count(*) FROM {table}"));
            filters(&mut count);
            count
        }
        Total::Estimate | Total::AtLeast => {
            let mut count =
                QueryBuilder::new(format!("{head}SELECT count(*) FROM (SELECT 1 FROM {table}"));
            filters(&mut count);
            count
                .push(" LIMIT ")
                .push_bind(page.counted_at_most())
                .push(") AS counted");
            count
        }
    }
}

/// How much of the pool searches may hold at once, and for how long each statement may run.
#[derive(Clone, Copy, Debug)]
pub struct SearchLimits {
    /// Connections searches may hold at once (each search holds two): smaller than the pool,
    /// so that writes, reads and the projector always find one.
    pub connections: u32,
    /// The `statement_timeout` of every search statement; also the longest a search waits for
    /// its place in the budget.
    pub timeout: Duration,
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self {
            connections: 8,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Connections a search holds: its count and its page, run side by side (one of them, when it
/// counts in its page's statement).
const SEARCH_CONNECTIONS: u32 = 2;

struct Budget {
    places: Semaphore,
    timeout: Duration,
    /// Opens a search's transaction and sets its statement timeout, in one round trip.
    begin: String,
}

impl Budget {
    fn new(limits: SearchLimits) -> Self {
        let millis = limits.timeout.as_millis().clamp(1, i32::MAX as u128);
        Self {
            places: Semaphore::new(limits.connections.max(SEARCH_CONNECTIONS) as usize),
            timeout: limits.timeout,
            begin: format!("BEGIN READ ONLY; SET LOCAL statement_timeout = {millis}"),
        }
    }

    /// Opens the transaction of a search's count. A count bounded by a `LIMIT` may not read
    /// the whole view to find its first matches: with a `LIMIT` PostgreSQL costs a sequential
    /// scan as if the matches were spread evenly and it stopped early, and a scan that finds
    /// fewer than estimated (a rare name) reads every row. Every search parameter has its
    /// index; a filter that has none still scans.
    fn begin_count(&self, page: Page) -> String {
        match page.total {
            Total::Accurate => self.begin.clone(),
            Total::Estimate | Total::AtLeast => {
                format!("{}; SET LOCAL enable_seqscan = off", self.begin)
            }
        }
    }

    async fn enter(&self) -> sqlx::Result<SemaphorePermit<'_>> {
        match tokio::time::timeout(self.timeout, self.places.acquire_many(SEARCH_CONNECTIONS)).await
        {
            Ok(Ok(places)) => Ok(places),
            Ok(Err(_closed)) => Err(sqlx::Error::PoolClosed),
            Err(_elapsed) => Err(sqlx::Error::Database(Box::new(SearchBusy))),
        }
    }
}

static BUDGET: OnceLock<Budget> = OnceLock::new();

fn budget() -> &'static Budget {
    BUDGET.get_or_init(|| Budget::new(SearchLimits::default()))
}

/// A transaction set up as a search's count is (what `EXPLAIN` of it must see).
pub(crate) async fn counting(
    pool: &PgPool,
    page: Page,
) -> sqlx::Result<sqlx::Transaction<'static, Postgres>> {
    begin_with(pool, budget().begin_count(page)).await
}

/// A transaction set up as a search's page is (`search`'s second connection; a probe of the
/// newest rows runs in one: its `SET LOCAL`s hold only inside one).
pub(crate) async fn page_transaction(
    pool: &PgPool,
) -> sqlx::Result<sqlx::Transaction<'static, Postgres>> {
    begin_with(pool, budget().begin.clone()).await
}

/// Sets this process's search budget; the first call (before any search) decides. Returns
/// whether it was taken.
pub fn limit_searches(limits: SearchLimits) -> bool {
    BUDGET.set(Budget::new(limits)).is_ok()
}

/// A search that waited longer than the search timeout for its place in the budget: the server
/// is busy with other searches, and the same search may succeed shortly. Its SQLSTATE is 53000
/// (insufficient resources), the class PostgreSQL gives to "too many connections".
#[derive(Debug)]
pub struct SearchBusy;

impl SearchBusy {
    /// Whether `error` is this one.
    pub fn is(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(db) if db.try_downcast_ref::<SearchBusy>().is_some())
    }
}

impl std::fmt::Display for SearchBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many searches at once: none came free within the search timeout")
    }
}

impl std::error::Error for SearchBusy {}

impl DatabaseError for SearchBusy {
    fn message(&self) -> &str {
        "too many searches at once: none came free within the search timeout"
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed("53000"))
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A search for the rows any of `queries` matches (OpenSPP's `_search` with OR logic): each
/// query's own filters, consent rule included, select its rows, and their union is counted and
/// paged in `sort` order. One query is searched as itself.
async fn search_any<Q: ViewQuery>(
    pool: &PgPool,
    queries: &[Q],
    sort: &[SortKey],
    page: Page,
) -> sqlx::Result<Found<ViewRow<Q::State>>> {
    let table = Q::TABLE;
    if let [query] = queries {
        let filters = |qb: &mut QueryBuilder<'_, Postgres>| Q::push_filters(qb, query);
        let estimated = |qb: &mut QueryBuilder<'_, Postgres>| Q::push_estimated(qb, query);
        return search(
            pool,
            table,
            filters,
            estimated,
            sort,
            page,
            Reading::of(query),
        )
        .await;
    }
    let any = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" WHERE aggregate_id IN (");
        for (i, query) in queries.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ");
            }
            qb.push(format!("SELECT aggregate_id FROM {table}"));
            Q::push_filters(qb, query);
        }
        if queries.is_empty() {
            qb.push("SELECT NULL WHERE false");
        }
        qb.push(")");
    };
    // Not probed: each of the union's queries is read in whole to find the rows it selects.
    search(pool, table, any, any, sort, page, Reading::SORTED).await
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

    /// The filters as PostgreSQL is asked what they select (`Expected`, an `EXPLAIN` that
    /// reads no row): by default the filters themselves.
    fn push_estimated(qb: &mut QueryBuilder<'_, Postgres>, query: &Self) {
        Self::push_filters(qb, query)
    }

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

    /// Whether a newest-first page of this query may first read the newest rows alone
    /// (`Newest`): by default it may.
    fn newest(&self) -> Newest {
        Newest::Probe
    }

    /// Whether its filters probe each match's consents (a client bound by consent): then a
    /// page whose count would read every match anyway counts them itself (`search`). By
    /// default they do not.
    fn probes_consents(&self) -> bool {
        false
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
        |qb| Q::push_estimated(qb, query),
        query.order(),
        page,
        Reading::of(query),
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
    search_any(pool, queries, order, page).await
}
