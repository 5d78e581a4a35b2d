//! Reading a search's newest rows first. A search's default order is newest first, and a
//! common value's matches (a Santos in 16) are found among the newest rows long before its own
//! index has gathered them all: so a newest-first page is read from the newest rows when they
//! hold it (`newest_statement`), and a count that stops at its bound walks them
//! (`walk_statement`). One `EXPLAIN` of the filters over the newest rows (`Expected`) decides
//! both, and gives the total past the bound.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::search::{Page, SortKey, Total};
use crate::view::{self, COLUMNS};

/// Whether a search may read a newest-first page from the newest rows alone
/// (`newest_statement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Newest {
    /// It may, when its order is newest first and its table has the index to read in that
    /// order (`NEWEST_INDEXED`).
    Probe,
    /// It may, reading only the newest rows some consent reaches (`consent_reach` not empty,
    /// migration 0260): a client bound by consent finds its rows among them and nowhere
    /// else, and its table has the index of those rows alone (`REACHED_INDEXED`). A client
    /// one person in ten consented to then reads a tenth of the entries to find its page and
    /// its count's bound: 960 index entries rather than 9,600 for 120 consented Santos at
    /// 1,000,000 people.
    Reached,
    /// It sorts what its filters select: they select few rows whatever the table holds (an
    /// identifier names one), and reading the newest rows first would only add to its cost.
    Sort,
    /// As `Sort`, for filters that name their row (an identifier alone: one row, whoever
    /// asks): so few that the page counts them itself under a legal basis too, in one
    /// statement on one connection, rather than a count and a page each planned and run on a
    /// connection of its own (the count cost as much as the page for an identifier's one row).
    Named,
}

/// The rows a newest-first probe reads, newest first, before it gives up. A page whose filters
/// match one row in 250 (one in 16 is a Santos; one in 80 a consented one) is found among
/// them; rarer matches fall back to sorting what the filters select, which is then little.
pub const NEWEST_PROBED: i64 = 5_000;

/// Rows of the newest a count walks, newest first, to find its bound of matches
/// (`walk_statement`).
pub const NEWEST_WALKED: i64 = 50_000;

/// The tables with an index on `(last_updated, aggregate_id)` (migrations 0004, 0007, 0160,
/// 0161, 0175), which a probe reads backwards: newest first, stopping at `NEWEST_PROBED`. A
/// table without one is never probed (its newest rows would be a sort of the whole table).
const NEWEST_INDEXED: [&str; 7] = [
    "individual_view",
    "group_view",
    "program_view",
    "membership_view",
    "cycle_view",
    "service_point_view",
    "product_view",
];

/// The tables with an index on `(last_updated, aggregate_id)` of the rows some consent reaches
/// (`individual_view_reached`, migration 0260), which `Newest::Reached` reads.
const REACHED_INDEXED: [&str; 1] = ["individual_view"];

/// Whether a search of `table` may read its newest rows first.
fn reads_newest(newest: Newest, table: &str) -> bool {
    match newest {
        Newest::Probe => NEWEST_INDEXED.contains(&table),
        Newest::Reached => REACHED_INDEXED.contains(&table),
        Newest::Sort | Newest::Named => false,
    }
}

/// ` AND …`, or nothing: the rows of `table` a search that reads `newest` may find, beyond its
/// filters: those some consent reaches (`Newest::Reached`).
fn reached_only(newest: Newest) -> &'static str {
    match newest {
        // As the condition of `individual_view_reached` is written (migration 0260).
        Newest::Reached => " AND cardinality(consent_reach) > 0",
        Newest::Probe | Newest::Sort | Newest::Named => "",
    }
}

/// `FROM table …`: the newest `rows` of `table` (of those `newest` reads), for a sub-select
/// of a probe or a walk. `last_updated DESC` (NULLS FIRST), not a page's NULLS LAST: the
/// order a backward read of the index gives; the column is NOT NULL in every table listed in
/// `NEWEST_INDEXED`.
fn newest_rows(newest: Newest, table: &str, rows: i64) -> String {
    let reached = reached_only(newest);
    format!("FROM {table} WHERE true{reached} ORDER BY last_updated DESC LIMIT {rows}")
}

/// The order of a newest-first page as the newest rows come (see `newest_statement`).
const NEWEST_ORDER: &str = "ORDER BY last_updated DESC, aggregate_id";

/// What PostgreSQL expects a search's filters to select: the share of the rows of its table
/// they select, and how many rows the table holds. Read from one `EXPLAIN` of the filters
/// over the newest `NEWEST_WALKED` rows (`Expected::explain`), which decides whether the page
/// is read from the newest rows (`Expected::probes`), whether the count walks them
/// (`Expected::walks`), and what the total is past the bound (`Expected::total`).
///
/// Why one: a search explained the same filters three times before (the probe's newest rows,
/// the walk's, then the whole table for the total), each planned from scratch with its
/// consent filter: ~1 ms of PostgreSQL's time in a search of ~4 ms. PostgreSQL estimates the
/// filters of the newest rows from the table's own statistics, so the share is the one it
/// gives the whole table (3,535 Santos among 50,000 newest, 70,708 among 1,000,007 people).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Expected {
    /// The share of the rows the filters select (0 to 1).
    share: f64,
    /// The rows PostgreSQL expects the table to hold.
    rows: f64,
}

impl Expected {
    /// Explains `filters` over the newest rows of `table`; `None` unless the search may read
    /// them (`Newest::Probe` or `Reached`, an indexed table), or when the plan is not of the
    /// shape `of_plan` reads (then no probe, no walk, and the total is explained on its own).
    pub(crate) async fn explain<'q>(
        connection: &mut sqlx::PgConnection,
        newest: Newest,
        table: &str,
        filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
    ) -> sqlx::Result<Option<Self>> {
        if !reads_newest(newest, table) {
            return Ok(None);
        }
        // The sub-select takes the table's name, so that filters naming the table's columns
        // (`individual_view.aggregate_id`) read its rows.
        let newest = format!(
            "(SELECT * {}) AS {table}",
            newest_rows(newest, table, NEWEST_WALKED)
        );
        let plan = view::explain(connection, &newest, filters).await?;
        Ok(Self::of_plan(&plan, table))
    }

    /// What `plan` (`EXPLAIN (FORMAT JSON)` of `explain`'s statement) expects: the rows the
    /// statement returns (its top node's: a filter PostgreSQL turns into a join, a household
    /// role's, is applied there, not in the scan), of the newest rows the `Limit` under the
    /// sub-select named `table` reads, of the table's rows under that.
    fn of_plan(plan: &Value, table: &str) -> Option<Self> {
        let rows = |node: &Value| node["Plan Rows"].as_f64().filter(|n| n.is_finite());
        let top = &plan[0]["Plan"];
        let limit = children(newest_scan(plan, table)?).find(|child| {
            child["Parent Relationship"] == "Subquery" && child["Node Type"] == "Limit"
        })?;
        let newest = rows(limit).filter(|n| *n > 0.0)?;
        let table_rows = children(limit).next().and_then(rows).unwrap_or(newest);
        Some(Self {
            share: (rows(top)? / newest).clamp(0.0, 1.0),
            rows: table_rows.max(newest),
        })
    }

    /// The matches PostgreSQL expects among the newest `newest` rows.
    fn among(&self, newest: i64) -> f64 {
        self.share * (newest as f64).min(self.rows)
    }

    /// Whether the newest rows are worth probing for a page: where PostgreSQL expects the
    /// page's matches among them. A month of birth dates (one in 830, six expected) would
    /// read them in vain, and reading them costs more than sorting its 1,240 matches (pgbench
    /// at 1,000,000 people: 524 probes/s against 743 pages/s).
    ///
    /// Or where the table holds at least as many matches as the probe reads: sorting them
    /// then costs more than a probe that fails (it reads the newest entries of an index that
    /// carries what it tests, migrations 0250 and 0260).
    ///
    /// Why not a margin above the page (it was twice the page): PostgreSQL multiplies the
    /// shares of filters it takes to be independent, and they are not always. The consented
    /// Santos are one in 80 (a Santos in 16, a consent in 10, correlated), and it expects one
    /// in 190 (the consent reach's one in 10, and three in four for the consent probe it
    /// cannot see into): 26 among the newest 5,000 where 62 are. At 1,000,000 people the page
    /// fell back to sorting all 12,500 of them (400 ms each, 4 searches/s at 16 at once).
    pub(crate) fn probes(&self, page: Page) -> bool {
        let wanted = page.offset.saturating_add(page.count) as f64;
        self.among(NEWEST_PROBED) >= wanted
            || (self.total() >= NEWEST_PROBED && wanted <= NEWEST_PROBED as f64)
    }

    /// Whether the newest rows are worth walking for a count: where PostgreSQL expects half
    /// as many again as the bound among them (a rare value would be walked in vain), in a
    /// table larger than the walk (in a smaller one the count reads no more than the walk
    /// would, and a walk that fell short of the bound would be read again by the count).
    pub(crate) fn walks(&self, page: Page) -> bool {
        self.rows > NEWEST_WALKED as f64
            && self.among(NEWEST_WALKED) >= 1.5 * page.counted_at_most() as f64
    }

    /// The matches PostgreSQL expects in the whole table.
    pub(crate) fn total(&self) -> i64 {
        (self.share * self.rows).round() as i64
    }
}

/// The scan of the sub-select named `table` in `plan`. By name, not by being the first
/// sub-select scanned: EXPLAIN names each use of a name apart (`individual_view`,
/// `individual_view_1`), so the name may come with a number.
fn newest_scan<'p>(plan: &'p Value, table: &str) -> Option<&'p Value> {
    let named = plan["Alias"].as_str().is_some_and(|alias| {
        alias == table
            || alias
                .strip_prefix(table)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    if plan["Node Type"] == "Subquery Scan" && named {
        return Some(plan);
    }
    let top = plan.as_array().into_iter().flatten().map(|p| &p["Plan"]);
    children(plan)
        .chain(top)
        .find_map(|child| newest_scan(child, table))
}

/// The nodes under `node` in a plan.
fn children(node: &Value) -> impl Iterator<Item = &Value> {
    node["Plans"].as_array().into_iter().flatten()
}

/// The page of `filters` in `sort` order (`head` before it: `EXPLAIN `) read from the newest
/// `NEWEST_PROBED` rows of `table` alone (of those `newest` reads), each row with
/// `probe_newer`: how many rows of `table` (of those) are as new as the page's last row (all
/// of them when the page is not full), counted up to one past `NEWEST_PROBED`; `None` unless
/// the search may probe (`reads_newest`), is in newest-first order, and its page ends within
/// the probe.
///
/// Why: the default order of a search is newest first, and no index gives it
/// (`last_updated DESC, aggregate_id ASC`), so a page sorts every match to keep the newest
/// 20 — for a common name at 1,000,000 people, 62,000 matches per page. An index in that very
/// order let PostgreSQL walk it newest first and filter, which it also chose for a rare value
/// it overestimated, reading the whole registry to fill a page (migration 0240, withdrawn).
/// Here the walk is bounded by the statement itself (a `LIMIT` sub-select, which PostgreSQL
/// may neither flatten nor push the filters into): it reads at most `NEWEST_PROBED` rows,
/// whatever the filters and whatever the planner estimates.
///
/// Its page is the search's page when at most `NEWEST_PROBED` rows are as new as its last row
/// (`probe_holds`): those rows are then all among the newest read, so the rows matched up to
/// there are a prefix of every match in order. Otherwise the search sorts its matches as
/// before, which it does fast where few match.
///
/// The page's matches are taken as the newest rows come (`last_updated DESC`, NULLS FIRST as
/// a backward read of the index gives them, the column being NOT NULL), the first
/// `offset + count` and every row tied with the last of them (`FETCH FIRST … WITH TIES`), and
/// only those are sorted into the page's order: so PostgreSQL stops reading the newest rows
/// once it has the page (a Santos page reads ~1,000 index entries, where a page sorted NULLS
/// LAST read all 5,000 to sort them: 1.5 ms against 4.6 ms at 1,000,000 people), whatever it
/// expects the filters to select. The rows tied with the last are what the page's tie-break
/// (`aggregate_id`) may still place in it. Written as a sort of the whole, the page stopped
/// early only where PostgreSQL chose an incremental sort, which it did not where it expected
/// fewer matches than the page: planned without the values (`probe_page`), a consent-bound
/// Santos page sorted all 5,000 rows, probing the consents of their 625 Santos (10 ms against
/// 1.2 ms). What the page needs to hold is then counted from its last row up (once:
/// `MATERIALIZED`, where a plan that expects one row might join it to each), a read as short
/// as the page's own when the page is full (one that is not reads up to `NEWEST_PROBED` + 1
/// entries to learn whether the table is that small); newest first, so that the index is the
/// only way to read them in order (a scan of the table from its start would find the newest
/// rows last).
pub(crate) fn newest_statement<'q>(
    head: &str,
    newest: Newest,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
    sort: &[SortKey],
    page: Page,
) -> Option<QueryBuilder<'q, Postgres>> {
    let newest_first = matches!(
        sort,
        [SortKey {
            column: "last_updated",
            descending: true
        }]
    );
    let within = page.count > 0 && page.offset.saturating_add(page.count) <= NEWEST_PROBED;
    if !reads_newest(newest, table) || !newest_first || !within {
        return None;
    }
    let newest_rows = newest_rows(newest, table, NEWEST_PROBED);
    // The sub-select takes the table's name, so that filters naming the table's columns
    // (`individual_view.aggregate_id`) read the probed rows. As `page_statement`, the page's
    // keys first, then its rows: the probed rows are read from the index alone where it
    // carries what the filters read (a name, a birth date, a gender: migration 0250).
    let mut probe = QueryBuilder::new(format!(
        "{head}WITH paged AS (SELECT paged_key, paged_at FROM (SELECT aggregate_id AS paged_key, \
         last_updated AS paged_at FROM (SELECT * {newest_rows}) AS {table}"
    ));
    filters(&mut probe);
    probe
        .push(" ORDER BY last_updated DESC FETCH FIRST ")
        .push_bind(page.offset.saturating_add(page.count))
        .push(" ROWS WITH TIES) AS tied ORDER BY paged_at DESC, paged_key LIMIT ")
        .push_bind(page.count)
        .push(" OFFSET ")
        .push_bind(page.offset)
        .push("), newer AS MATERIALIZED (SELECT count(*) AS probe_newer FROM (SELECT 1 FROM ")
        .push(table)
        .push(" WHERE true")
        .push(reached_only(newest))
        .push(" AND last_updated >= (SELECT CASE WHEN count(*) >= ")
        .push_bind(page.count)
        .push(format!(
            " THEN min(paged_at) ELSE '-infinity' END FROM paged) \
             ORDER BY last_updated DESC LIMIT {}) AS counted) \
             SELECT {COLUMNS}, newer.probe_newer FROM {table} AS paged_row \
             JOIN paged ON aggregate_id = paged.paged_key CROSS JOIN newer {NEWEST_ORDER}",
            NEWEST_PROBED + 1
        ));
    Some(probe)
}

/// Whether the `rows` a probe found are the page itself (see `newest_statement`): whether at
/// most `NEWEST_PROBED` rows are as new as its last one. A page that is not full holds when
/// the whole table is that small (the probe read every row, so found every match); an empty
/// one tells nothing (no row says what was read) and the search sorts what its filters
/// select, which is then little.
fn probe_holds(rows: &[PgRow]) -> sqlx::Result<bool> {
    let Some(last) = rows.last() else {
        return Ok(false);
    };
    let newer: i64 = last.try_get("probe_newer")?;
    Ok(newer <= NEWEST_PROBED)
}

/// The page `probe` (a `newest_statement`) found, if it is the search's page. It runs only
/// where PostgreSQL expects the page among the newest rows (`Expected::probes`).
///
/// The probe is a prepared statement its connection keeps, planned once for all the searches
/// of its shape (`plan_cache_mode = force_generic_plan` while it runs), as the walk is
/// (`count_matches`): its plan is the same whatever the values (the newest rows read
/// backwards under its `LIMIT`, the filters tested on each until the page and its ties are
/// found, the page's rows by primary key), and planning it anew cost PostgreSQL more than
/// running it where the filters probe consents (at 1,000,000 people: a Santos page under a
/// legal basis, 1,013–1,079 probes/s planned each time against 1,555–1,636 planned once
/// (pgbench, 16 clients); one bound by consent, planned in 3.3 ms and run in 1.4 ms with its
/// values, run in 1.8 ms planned once). A probe that finds the page leaves the setting to the
/// end of the transaction, which its caller ends next; one that does not puts it back before
/// the sorted page that follows, whose plan turns on the values.
pub(crate) async fn probe_page(
    connection: &mut sqlx::PgConnection,
    probe: &mut QueryBuilder<'_, Postgres>,
    expected: Option<Expected>,
    page: Page,
) -> sqlx::Result<Option<Vec<PgRow>>> {
    if !expected.is_some_and(|expected| expected.probes(page)) {
        return Ok(None);
    }
    set_local(connection, PLANNED_ONCE).await?;
    let rows = probe
        .build()
        .persistent(true)
        .fetch_all(&mut *connection)
        .await?;
    if probe_holds(&rows)? {
        return Ok(Some(rows));
    }
    set_local(connection, PLANNED_AS_CONFIGURED).await?;
    Ok(None)
}

/// The statement counting what `filters` selects among the newest `NEWEST_WALKED` rows of
/// `table`, stopping at `page.counted_at_most()` (`head` before it: `EXPLAIN `); `None` unless
/// the count may take it (`reads_newest`, a count that stops at its bound).
///
/// Why: past its bound a count is an estimate (or, for a client bound by consent, a lower
/// bound), so it needs only to find that many matches, and a common value's are found among
/// the newest rows (a Santos in 16: 1,900 rows for 120 matches); its own index finds them only
/// after gathering every match (a trigram index's bitmap of 62,500 rows at 1,000,000 people,
/// 30–40 ms). The walk reads the index of the newest rows alone where it carries what the
/// filters read (a name, a birth date, a gender: migration 0250). A client bound by consent
/// walks too where PostgreSQL expects enough matches: one consented Santos in 80 is 120
/// among the newest 9,600 rows, where counting them by the trigram index built the bitmap of
/// all 62,500 Santos first. PostgreSQL sees how many rows the client's consents reach
/// (`consent_reach`, migration 0260, whose statistics it keeps), so a client few have
/// consented to is expected to find few among the newest and does not walk them; one that
/// walks in vain probes only the rows its consents reach.
pub(crate) fn walk_statement<'q>(
    head: &str,
    newest: Newest,
    table: &str,
    filters: impl Fn(&mut QueryBuilder<'q, Postgres>),
    page: Page,
) -> Option<QueryBuilder<'q, Postgres>> {
    if !reads_newest(newest, table) || page.total == Total::Accurate {
        return None;
    }
    let mut walk = QueryBuilder::new(format!(
        "{head}SELECT count(*) FROM (SELECT 1 FROM (SELECT * {}) AS {table}",
        newest_rows(newest, table, NEWEST_WALKED)
    ));
    filters(&mut walk);
    walk.push(" LIMIT ")
        .push_bind(page.counted_at_most())
        .push(") AS counted");
    Some(walk)
}

/// How many `count` (a `count_statement`) counts: `walk` (a `walk_statement`) first where
/// PostgreSQL expects it to find the bound (`Expected::walks`), and `count` when it did not
/// reach the bound (or was not worth walking). Either reads a bounded number of rows. With
/// the count, whether the walk found it.
///
/// The walk is a prepared statement its connection keeps, planned once for all the searches
/// of its shape (`plan_cache_mode = force_generic_plan` while it runs): its plan is the same
/// whatever the values (the newest rows read backwards under its `LIMIT`, the filters tested
/// on each), and planning it with a consent filter cost as much as running it (pgbench at
/// 1,000,000 people, 16 clients, a consent-bound Santos: 2,461 walks/s planned each time,
/// 5,091 planned once). Left to choose, PostgreSQL plans it without the values after five
/// plans with them only where it costs that plan no higher, which turns on the statistics:
/// on one copy of the bench's population it did (492–571 → 716–737 searches/s), on another
/// it planned every walk with its values (0.64 ms a walk, a sixth of PostgreSQL's time in a
/// consent-bound Santos). Not the count, nor the page: their plans turn on how selective the
/// values are (see `view::search`), so the setting is put back before the count that follows
/// a walk short of its bound. A walk that reaches its bound leaves it to the end of the
/// transaction, which every caller ends next (`view::search` runs `reported_total`, which
/// sends nothing after a walk): putting it back there too cost a round trip a walk, measured
/// at −2.7 % consent-bound searches (4 pairs at 1,000,000 people). A plan setting changes no
/// result, only how fast a statement planned under it runs.
pub(crate) async fn count_matches(
    connection: &mut sqlx::PgConnection,
    walk: Option<&mut QueryBuilder<'_, Postgres>>,
    expected: Option<Expected>,
    count: &mut QueryBuilder<'_, Postgres>,
    page: Page,
) -> sqlx::Result<(i64, bool)> {
    let bound = page.counted_at_most();
    if let (Some(walk), Some(expected)) = (walk, expected) {
        if expected.walks(page) {
            set_local(connection, PLANNED_ONCE).await?;
            let walked: i64 = walk
                .build_query_scalar()
                .persistent(true)
                .fetch_one(&mut *connection)
                .await?;
            if walked >= bound {
                return Ok((walked, true));
            }
            set_local(connection, PLANNED_AS_CONFIGURED).await?;
        }
    }
    let counted = count
        .build_query_scalar()
        .persistent(false)
        .fetch_one(connection)
        .await?;
    Ok((counted, false))
}

/// Prepared statements run after this on a connection (inside its transaction: the setting
/// ends with it) are planned once for all values.
const PLANNED_ONCE: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// Prepared statements run after this are planned as configured (by default: with each run's
/// values until PostgreSQL judges a plan without them no costlier).
const PLANNED_AS_CONFIGURED: &str = "SET LOCAL plan_cache_mode TO DEFAULT";

/// Runs one of the `SET LOCAL` statements above on `connection`.
async fn set_local(connection: &mut sqlx::PgConnection, setting: &'static str) -> sqlx::Result<()> {
    sqlx::query(setting).execute(connection).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of `Expected::explain`'s statement, where EXPLAIN names a second use of the
    /// table `individual_view_1`: the share and the table's rows are read from the sub-select
    /// named for the table.
    #[test]
    fn the_expectation_is_read_from_the_newest_rows_scan() {
        let plan = serde_json::json!([{"Plan": {
            "Node Type": "Subquery Scan", "Alias": "individual_view", "Plan Rows": 3535,
            "Plans": [
                {"Node Type": "Limit", "Parent Relationship": "Subquery", "Plan Rows": 50000,
                 "Plans": [
                    {"Node Type": "Index Only Scan", "Parent Relationship": "Outer",
                     "Alias": "individual_view_1", "Plan Rows": 1000007}]}]}}]);
        let expected = Expected::of_plan(&plan, "individual_view").expect("read");
        assert_eq!(expected.total(), 70_700);
        assert!((expected.among(NEWEST_PROBED) - 353.5).abs() < 1e-9);
        assert!(expected.probes(Page::new(20, 0)) && expected.walks(Page::new(20, 0)));
        // 353 expected among the newest read for a page, 3,535 among those walked: a count to
        // 2,400 is not walked for. A page of 200 is still looked for there: the 70,700 the
        // table holds would cost more to sort than reading the newest rows in vain; a page
        // past the rows a probe reads is not.
        assert!(expected.probes(Page::new(100, 100)));
        assert!(!expected.probes(Page::new(20, NEWEST_PROBED)));
        assert!(!expected.walks(Page::new(100, 2_300)));
        // A month of birth dates (one in 830): 6 expected among the newest, 1,205 in all,
        // fewer to sort than a probe would read.
        let month = Expected {
            share: 1.0 / 830.0,
            rows: 1_000_000.0,
        };
        assert!(!month.probes(Page::new(20, 0)));
        // The same plan names no other table's newest rows, nor a name that only begins like
        // the table's: nothing is read from it.
        assert_eq!(Expected::of_plan(&plan, "individual"), None);
        assert_eq!(Expected::of_plan(&plan, "group_view"), None);
    }

    /// A filter PostgreSQL plans as a join (a household role) is applied above the scan of
    /// the newest rows: what the statement returns is what it expects, not what the scan
    /// does; a sub-plan listed before the scan's `Limit` is not taken for it.
    #[test]
    fn a_filter_planned_as_a_join_counts_in_the_expectation() {
        let plan = serde_json::json!([{"Plan": {
            "Node Type": "Hash Join", "Join Type": "Semi", "Plan Rows": 12500, "Plans": [
                {"Node Type": "Subquery Scan", "Parent Relationship": "Outer",
                 "Alias": "individual_view", "Plan Rows": 50000, "Plans": [
                    {"Node Type": "Limit", "Parent Relationship": "InitPlan",
                     "Plan Rows": 1},
                    {"Node Type": "Limit", "Parent Relationship": "Subquery",
                     "Plan Rows": 50000, "Plans": [
                        {"Node Type": "Index Only Scan", "Plan Rows": 1000000}]}]},
                {"Node Type": "Hash", "Parent Relationship": "Inner", "Plan Rows": 250000}]}}]);
        let expected = Expected::of_plan(&plan, "individual_view").expect("read");
        assert_eq!(expected.total(), 250_000);
        // A plan of another shape is not read: the search explains its total on its own.
        let flat = serde_json::json!([{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 10}}]);
        assert_eq!(Expected::of_plan(&flat, "individual_view"), None);
    }

    /// A plan naming another sub-select (`paged`) first and the newest rows
    /// `individual_view_1`; a table smaller than the newest rows read expects its matches
    /// among all of them.
    #[test]
    fn a_numbered_scan_is_found_and_a_small_table_is_read_whole() {
        let plan = serde_json::json!([{"Plan": {
            "Node Type": "Nested Loop", "Plan Rows": 30, "Plans": [
                {"Node Type": "Subquery Scan", "Alias": "paged", "Plan Rows": 20},
                {"Node Type": "Subquery Scan", "Alias": "individual_view_1",
                 "Plan Rows": 30, "Plans": [
                    {"Node Type": "Limit", "Parent Relationship": "Subquery",
                     "Plan Rows": 600, "Plans": [
                        {"Node Type": "Index Only Scan", "Plan Rows": 600}]}]}]}}]);
        let expected = Expected::of_plan(&plan, "individual_view").expect("read");
        assert_eq!(expected.total(), 30);
        assert!((expected.among(NEWEST_PROBED) - 30.0).abs() < 1e-9);
        let page = Page::new(20, 0);
        assert!(expected.probes(page), "30 expected, 20 wanted");
        assert!(
            !expected.probes(Page::new(20, 20)),
            "30 expected, 40 wanted"
        );
        // Not walked, however many it expects: the count reads no more than the walk would.
        assert!(!expected.walks(Page::new(1, 0)));
    }
}
