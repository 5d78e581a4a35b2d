//! The searches a national registry runs all day (a name, a month of birth dates, an
//! identifier), for a client under a legal basis and for one filtered by consents, planned by
//! PostgreSQL over a registry written through the store's batch path: each must go through an
//! index, never a scan of the whole registry, or its cost grows with the population; nor may
//! the consent filter scan every consent naming the client.

use chrono::NaiveDate;
use libtest_mimic::Trial;
use openspp_aggregates::Identifier;
use openspp_projections::consent::Visibility;
use openspp_projections::individual::{
    counted, newest_page, newest_plan, newest_sql, plans, IndividualQuery,
};
use openspp_projections::newest::{Newest, NEWEST_PROBED};
use openspp_projections::search::{Comparator, Page, SortKey, Total};
use openspp_projections::view::{search_view, ViewQuery};

use crate::population;
use crate::support::{sql_scalar, NATIONAL_ID};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial("search_plans_use_indexes_at_scale", indexed)]
}

/// People registered for the plans (every tenth with a consent for the NGO).
const PEOPLE: usize = 60_000;

pub(crate) fn query(visibility: Visibility) -> IndividualQuery {
    IndividualQuery {
        identifier: None,
        name: None,
        birth_date: vec![],
        gender: None,
        address: None,
        last_updated: vec![],
        active: None,
        extension: vec![],
        household: Default::default(),
        sort: vec![],
        visibility,
    }
}

fn ngo_visibility() -> Visibility {
    Visibility::Consented {
        organization: population::NGO.into(),
        organization_type: "ngo".into(),
        today: chrono::Utc::now().date_naive(),
    }
}

async fn indexed() {
    let (database, pool) = population::registry("openspp_search_plans", PEOPLE, Some(10)).await;
    // As autovacuum leaves a table within a minute of a bulk load: analysed, and vacuumed
    // (PostgreSQL 13 and later vacuum a table that only grew), so that its pages are marked
    // visible to all and an index that carries what a statement reads answers it alone.
    sql_scalar(&database.url, "VACUUM ANALYZE");
    assert_eq!(
        sql_scalar(&database.url, "SELECT count(*) FROM individual_view"),
        PEOPLE.to_string()
    );
    let ngo = ngo_visibility();
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let page = Page::new(20, 0);
    for visibility in [Visibility::All, ngo] {
        let legal = matches!(visibility, Visibility::All);
        let searches = [
            (
                "name",
                // A name fewer hold than a count stops at (a given name and the first digits
                // of a number: ~50 at this size), counted through the name's own index. A
                // common one is counted to its bound wherever PostgreSQL expects to find it
                // soonest (below: a family name one person in 33 holds reads the index of the
                // newest rows until it has 120, ~4,000 entries); a search walks the newest
                // rows for it first in any case (`newest_first`).
                IndividualQuery {
                    name: Some("maria 12".into()),
                    ..query(visibility.clone())
                },
                "individual_view_name",
            ),
            (
                "birth date",
                IndividualQuery {
                    birth_date: vec![
                        (Comparator::Ge, date("1970-03-01")),
                        (Comparator::Lt, date("1970-04-01")),
                    ],
                    ..query(visibility.clone())
                },
                "individual_view_birth_date",
            ),
            (
                "identifier",
                IndividualQuery {
                    identifier: Some(Identifier {
                        system: NATIONAL_ID.into(),
                        value: "P12340".into(),
                    }),
                    ..query(visibility.clone())
                },
                "identifier_claims",
            ),
        ];
        for (what, search, index) in searches {
            let planned = plans(&pool, &search, page).await.expect("explained");
            let [count, rows, counted_rows] = planned.as_slice() else {
                panic!("three statements: {planned:?}");
            };
            for plan in [count, rows, counted_rows] {
                assert!(
                    !plan.contains("Seq Scan on individual_view"),
                    "{what} (legal basis: {legal}) scans the registry:\n{plan}"
                );
            }
            // The consent filter probes the consents of the rows the search found: building
            // the set of every subject a client may see scanned all its consents per search
            // (0.3–0.5 s at 1,000,000 people however few rows matched).
            for plan in [count, rows, counted_rows] {
                assert!(
                    !plan.contains("Seq Scan on consent_index"),
                    "{what} (legal basis: {legal}) scans the consents:\n{plan}"
                );
            }
            // Under a legal basis the count goes through the parameter's own index; with
            // consents, from the consents to the rows they admit may serve as well.
            assert!(
                !legal || count.contains(index),
                "{what} counts without {index}:\n{count}"
            );
            // A page sorts the index entries its filters select, and reads whole only the
            // rows of the page (`view::page_statement`): a month's 1,240 rows at 1,000,000
            // people are not fetched to be sorted.
            if what == "birth date" {
                for rows in [rows, counted_rows] {
                    assert!(
                        rows.contains("Index Only Scan using individual_view_birth_date"),
                        "{what} (legal basis: {legal}) reads rows to sort them:\n{rows}"
                    );
                }
            }
        }
    }
    // The commonest family name, one person in 16: a page of it does not count every match
    // (the count stops past the bound, `Total::Estimate`). Its page still sorts the matches to
    // keep the newest: an index in that order let PostgreSQL read it newest first and filter,
    // which it also chose for a rare extension value it overestimated (extension_search),
    // where it may read the whole registry to fill a page.
    let santos = IndividualQuery {
        name: Some("santos".into()),
        // A search's order when `_sort` does not say.
        sort: vec![SortKey::NEWEST_FIRST],
        ..query(Visibility::All)
    };
    for name in ["santos", "tolentino"] {
        let common = IndividualQuery {
            name: Some(name.into()),
            ..santos.clone()
        };
        let planned = plans(&pool, &common, page).await.expect("explained");
        let [count, _rows, _counted_rows] = planned.as_slice() else {
            panic!("three statements: {planned:?}");
        };
        // Through the name's index, or the newest rows' index that carries the name (which
        // PostgreSQL reads until it has the bound, ~4,000 entries for "tolentino").
        assert!(
            count.contains("Limit")
                && (count.contains("individual_view_name")
                    || count.contains("Index Only Scan using individual_view_last_updated")),
            "the count of a common name ({name}) reads neither index:\n{count}"
        );
    }
    // Past the bound, a total is PostgreSQL's estimate for a client under a legal basis, and
    // for one bound by consent only what it counted among the subjects it may see (a lower
    // bound): the estimate is drawn from the whole registry, consented or not.
    let everyone = Page::new(20, 0);
    let bound = everyone.counted_at_most();
    let found = search_view(&pool, &query(Visibility::All), everyone)
        .await
        .expect("searched");
    assert!(found.estimated, "{PEOPLE} people are past the bound");
    assert!(
        found.total > bound,
        "the estimate of {PEOPLE}: {}",
        found.total
    );
    let consented = search_view(
        &pool,
        &query(ngo_visibility()),
        Page {
            total: Total::AtLeast,
            ..everyone
        },
    )
    .await
    .expect("searched");
    assert!(
        consented.estimated,
        "{} consented are past the bound",
        PEOPLE / 10
    );
    assert_eq!(consented.total, bound, "a lower bound, counted");
    let accurate = search_view(
        &pool,
        &query(ngo_visibility()),
        Page {
            total: Total::Accurate,
            ..everyone
        },
    )
    .await
    .expect("searched");
    assert!(!accurate.estimated);
    assert_eq!(
        accurate.total,
        (PEOPLE / 10) as i64,
        "every tenth consented"
    );
    newest_first(&pool).await;
    counted_with_the_page(&database.url, &pool).await;
    crate::read_together::shared(&database.url, PEOPLE).await;
    pool.close().await;
    drop(database);
}

/// A page in the default order (newest first) of a common name reads the newest rows alone,
/// at most `NEWEST_PROBED` of them, rather than sorting every match to keep 20 (62,000 for
/// "santos" at 1,000,000 people); and every page, probed or not, is the page sorting every
/// match gives: same rows, same order, same total, for common and rare values, under a legal
/// basis and bound by consent.
async fn newest_first(pool: &sqlx::PgPool) {
    let newest = |q: IndividualQuery| IndividualQuery {
        sort: vec![SortKey::NEWEST_FIRST],
        ..q
    };
    // The same order, spelled so that no probe runs: every match is sorted.
    let sorted = |q: IndividualQuery| IndividualQuery {
        sort: vec![
            SortKey::NEWEST_FIRST,
            SortKey {
                column: "aggregate_id",
                descending: false,
            },
        ],
        ..q
    };
    let name = |v: Visibility, name: &str| IndividualQuery {
        name: Some(name.into()),
        ..query(v)
    };
    let month = |v: Visibility| IndividualQuery {
        birth_date: vec![
            (Comparator::Ge, NaiveDate::from_ymd_opt(1970, 3, 1).unwrap()),
            (Comparator::Lt, NaiveDate::from_ymd_opt(1970, 4, 1).unwrap()),
        ],
        ..query(v)
    };
    let identifier = |v: Visibility| IndividualQuery {
        identifier: Some(Identifier {
            system: NATIONAL_ID.into(),
            value: "P12340".into(),
        }),
        ..query(v)
    };
    let first = Page::new(20, 0);
    // Whether the first page of each is read from the newest rows alone (one person in 16 is
    // a Santos, one in 80 a Santos who consented; a month of birth dates holds one in 830),
    // and whether its count finds its bound among the newest rows (where PostgreSQL expects
    // them there; `None`: either way). A client bound by consent reads only the rows some
    // consent reaches (`Newest::Reached`): 6,000 here, fewer than a walk reads, so its count
    // goes by the name's index (at 1,000,000 people, 100,000 are reached and it walks).
    let searches = [
        ("santos", name(Visibility::All, "santos"), true, Some(true)),
        (
            "santos, consented",
            name(ngo_visibility(), "santos"),
            true,
            Some(false),
        ),
        ("tolentino", name(Visibility::All, "tolentino"), true, None),
        ("a month", month(Visibility::All), false, Some(false)),
        (
            "a month, consented",
            month(ngo_visibility()),
            false,
            Some(false),
        ),
        (
            "one given name",
            name(Visibility::All, "maria 12"),
            false,
            Some(false),
        ),
        (
            "nobody",
            name(ngo_visibility(), "nobody at all"),
            false,
            Some(false),
        ),
        (
            "identifier",
            identifier(Visibility::All),
            false,
            Some(false),
        ),
        (
            "identifier, consented",
            identifier(ngo_visibility()),
            false,
            Some(false),
        ),
    ];
    for (what, search, probed, walks) in searches {
        let legal = matches!(search.visibility, Visibility::All);
        // Counted as the server counts for such a client (`Principal::countable`), and
        // exactly.
        let countable = |page: Page| Page {
            total: if legal {
                Total::Estimate
            } else {
                Total::AtLeast
            },
            ..page
        };
        let pages = [
            countable(first),
            countable(Page::new(20, 40)),
            countable(Page::new(100, 0)),
            countable(Page::new(20, NEWEST_PROBED)),
            Page {
                total: Total::Accurate,
                ..first
            },
        ];
        for page in pages {
            let found = search_view(pool, &newest(search.clone()), page)
                .await
                .expect("searched");
            let every = search_view(pool, &sorted(search.clone()), page)
                .await
                .expect("searched");
            let ids = |rows: &[openspp_projections::individual::IndividualRow]| {
                rows.iter()
                    .map(|r| r.aggregate_id.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&found.rows), ids(&every.rows), "{what} at {page:?}");
            assert_eq!(
                (found.total, found.estimated),
                (every.total, every.estimated),
                "{what} at {page:?}"
            );
        }
        // Its count, walked or not, counts what counting every match finds, up to the bound.
        let every = search_view(
            pool,
            &newest(search.clone()),
            Page {
                total: Total::Accurate,
                ..first
            },
        )
        .await
        .expect("searched");
        let (matches, walked) = counted(pool, &newest(search.clone()), countable(first))
            .await
            .expect("counted");
        assert_eq!(
            matches,
            every.total.min(first.counted_at_most()),
            "{what}: counted"
        );
        if let Some(walks) = walks {
            assert_eq!(walked, walks, "{what}: walked the newest rows to count");
        }
        let probe = newest_page(pool, &newest(search.clone()), countable(first))
            .await
            .expect("probed");
        assert_eq!(probe.is_some(), probed, "{what}: read from the newest rows");
        if let Some(rows) = probe {
            let every = search_view(pool, &sorted(search.clone()), first)
                .await
                .expect("searched");
            assert_eq!(rows.len(), 20, "{what}");
            let probed: Vec<_> = rows.iter().map(|r| &r.aggregate_id).collect();
            let sorted: Vec<_> = every.rows.iter().map(|r| &r.aggregate_id).collect();
            assert_eq!(probed, sorted, "{what}: the probe's page");
        }
        // The probe is bounded by its statement: a backward read of the newest rows under a
        // `LIMIT`, whatever PostgreSQL estimates the filters select; an identifier's page
        // sorts its one match and runs none.
        let plan = newest_plan(pool, &newest(search.clone()), first)
            .await
            .expect("explained");
        match plan {
            None => assert!(search.identifier.is_some(), "{what} runs no probe"),
            Some(plan) => {
                assert!(search.identifier.is_none(), "{what} probes:\n{plan}");
                // From the index alone, which carries the name and the birth date its
                // filters read (migration 0250): the rows read whole are the page's. A client
                // bound by consent reads the index of the rows some consent reaches alone
                // (migration 0260).
                let index = if legal {
                    "Index Only Scan Backward using individual_view_last_updated"
                } else {
                    "Index Only Scan Backward using individual_view_reached"
                };
                assert!(
                    plan.contains(index) && plan.contains("Limit"),
                    "{what} does not read the newest rows' index entries under a limit:\n{plan}"
                );
                assert!(
                    !plan.contains("Seq Scan on individual_view")
                        && !plan.contains("Bitmap Heap Scan on individual_view"),
                    "{what} reads more than the newest rows:\n{plan}"
                );
                // A page found among the newest rows stops reading them once it has its
                // rows and their ties: only those are sorted into the page's order, never
                // the newest rows read.
                assert!(
                    sorts_the_page_alone(&plan),
                    "{what} sorts more than the page's rows and their ties:\n{plan}"
                );
            }
        }
    }
}

/// Whether the probe's `plan` (`EXPLAIN` of `newest::newest_statement`) takes the page's rows
/// and their ties from the newest rows as they come (a `Limit` over the filtered rows) and
/// sorts only those: its page reads, from the top, a `Limit`, a sort, a `Limit`, then the
/// filtered newest rows.
fn sorts_the_page_alone(plan: &str) -> bool {
    let nodes: Vec<&str> = plan
        .lines()
        .skip_while(|line| !line.contains("CTE paged"))
        .filter_map(|line| line.trim_start().strip_prefix("->  "))
        .take(4)
        .collect();
    matches!(
        nodes.as_slice(),
        [limit, sort, tied, rows]
            if limit.starts_with("Limit")
                && (sort.starts_with("Sort") || sort.starts_with("Incremental Sort"))
                && tied.starts_with("Limit")
                && rows.starts_with("Subquery Scan on individual_view")
    )
}

/// A search bound by consent whose count would read every match anyway (a month of birth
/// dates and an identifier, where PostgreSQL expects fewer matches than the count's bound; any
/// search counting every match, `Total::Accurate`) counts them in its page's own statement, on
/// one connection: its matches are probed for consent once, not once for the page and again
/// for the count. A pool of one serves it. One where more may match (every consented person in
/// name order: its page stops after its rows in the order of an index, its count at its bound)
/// counts apart, side by side, and a pool of one cannot serve it. Either way its total is what
/// the count statement counts, on every page: the first, one past the last match (where no row
/// carries the count), every match counted, and past the count's bound (a lower bound).
async fn counted_with_the_page(database_url: &str, pool: &sqlx::PgPool) {
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(database_url)
        .await
        .expect("a pool of one");
    let month = IndividualQuery {
        birth_date: vec![
            (Comparator::Ge, NaiveDate::from_ymd_opt(1970, 3, 1).unwrap()),
            (Comparator::Lt, NaiveDate::from_ymd_opt(1970, 4, 1).unwrap()),
        ],
        sort: vec![SortKey::NEWEST_FIRST],
        ..query(ngo_visibility())
    };
    let identifier = IndividualQuery {
        identifier: Some(Identifier {
            system: NATIONAL_ID.into(),
            value: "P12340".into(),
        }),
        ..query(ngo_visibility())
    };
    let by_name = IndividualQuery {
        sort: vec![SortKey {
            column: "family_name",
            descending: false,
        }],
        ..query(ngo_visibility())
    };
    let at_least = |count, offset| Page {
        total: Total::AtLeast,
        ..Page::new(count, offset)
    };
    let every = |offset| Page {
        total: Total::Accurate,
        ..Page::new(20, offset)
    };
    // Under a legal basis too: an identifier names its one row (`Newest::Named`).
    let identifier_by_right = IndividualQuery {
        visibility: Visibility::All,
        ..identifier.clone()
    };
    for (what, search) in [
        ("a month", month),
        ("an identifier", identifier),
        ("an identifier, legal basis", identifier_by_right),
    ] {
        let (all, past) = same_total(pool, &one, what, &search, every(0)).await;
        assert!(
            !past && all < at_least(20, 0).counted_at_most(),
            "{what}: {all} match"
        );
        for page in [at_least(20, 0), at_least(5, 0), at_least(20, all)] {
            same_total(pool, &one, what, &search, page).await;
        }
    }
    let what = "everyone by name";
    for page in [every(0), every(40)] {
        same_total(pool, &one, what, &by_name, page).await;
    }
    let apart = search_view(&one, &by_name, at_least(20, 0)).await;
    assert!(
        matches!(apart, Err(sqlx::Error::PoolTimedOut)),
        "{what}, counted to its bound, counts apart from its page: {:?}",
        apart.map(|found| found.total)
    );
    let (_, past) = same_total(pool, pool, what, &by_name, at_least(20, 0)).await;
    assert!(past, "{what}: past the count's bound");
    walk_planned_once(&one).await;
    probe_planned_once(&one).await;
    one.close().await;
    identifier_planned_once(database_url).await;
}

/// An identifier's page (counted in it) is a statement its connection keeps, whatever the
/// identifier (`view::counted_with_page`, `named`): ten searches of ten people, on the
/// connection of a pool of one, ran one such statement, and PostgreSQL planned it without the
/// values after its first custom plans — the plan it then keeps rather than planning each
/// search anew (planning cost twice the execution at 1,000,000 people). Only an identifier
/// alone: beside other filters it is planned per search, as every other search is.
async fn identifier_planned_once(database_url: &str) {
    let one = &sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .expect("a pool of one");
    for n in 0..10 {
        let search = IndividualQuery {
            identifier: Some(Identifier {
                system: NATIONAL_ID.into(),
                value: format!("P{}", 12_340 + n),
            }),
            ..query(Visibility::All)
        };
        let found = search_view(one, &search, Page::new(20, 0))
            .await
            .expect("searched");
        assert_eq!((found.total, found.rows.len()), (1, 1), "P{}", 12_340 + n);
    }
    let (kept, ran, generic) = kept_statements(
        one,
        "SELECT aggregate_id, version, state, last_updated, source, paged.matched \
         FROM individual_view%identifier_claims%",
    )
    .await;
    assert_eq!(
        (kept, ran),
        (1, 10),
        "one identifier page, kept, ran all ten"
    );
    assert!(generic > 0, "planned without the values: {generic} of 10");
    // With another filter beside it, each combination is a text of its own: planned per
    // search as every other search is, never kept.
    let alone = IndividualQuery {
        identifier: Some(Identifier {
            system: NATIONAL_ID.into(),
            value: "P12340".into(),
        }),
        ..query(Visibility::All)
    };
    let dated = IndividualQuery {
        birth_date: vec![(Comparator::Ge, NaiveDate::from_ymd_opt(1900, 1, 1).unwrap())],
        ..alone.clone()
    };
    assert_eq!(alone.newest(), Newest::Named);
    assert_eq!(
        dated.newest(),
        Newest::Sort,
        "an identifier beside another filter"
    );
    one.close().await;
}

/// The walk of a common name's newest rows is a statement its connection keeps
/// (`newest::count_matches`), planned once for all the searches of its shape rather than for
/// each, whatever PostgreSQL would have chosen (left to choose, it planned every walk with its
/// values on some copies of a population of 1,000,000): here the connection of a pool of one,
/// after ten counts of "santos" (one person in 16, walked under a legal basis at this size),
/// holds one such statement, which ran all ten on its one plan made without the values.
async fn walk_planned_once(one: &sqlx::PgPool) {
    let santos = IndividualQuery {
        name: Some("santos".into()),
        sort: vec![SortKey::NEWEST_FIRST],
        ..query(Visibility::All)
    };
    for _ in 0..10 {
        let (_, walked) = counted(one, &santos, Page::new(20, 0))
            .await
            .expect("counted");
        assert!(walked, "santos is counted by a walk of the newest rows");
    }
    let (kept, ran, generic) = kept_statements(
        one,
        "SELECT count(*) FROM (SELECT 1 FROM (SELECT * FROM individual_view%",
    )
    .await;
    assert_eq!(
        (kept, ran, generic),
        (1, 10, 10),
        "one walk statement, kept, ran every walk on its generic plan"
    );
}

/// The probe of a common name's newest rows is a statement its connection keeps
/// (`newest::probe_page`), planned once for all the searches of its shape rather than for
/// each: here the connection of a pool of one, after ten pages of "santos" under a legal basis
/// and ten bound by consent (each read from the newest rows), holds one such statement for
/// each, which ran its ten on its one plan made without the values. That plan still stops
/// reading the newest rows once it has the page: PostgreSQL, which then expects fewer matches
/// than the page, sorted all it read when the page was written as a sort of them.
async fn probe_planned_once(one: &sqlx::PgPool) {
    let santos = |visibility| IndividualQuery {
        name: Some("santos".into()),
        sort: vec![SortKey::NEWEST_FIRST],
        ..query(visibility)
    };
    for search in [santos(Visibility::All), santos(ngo_visibility())] {
        for _ in 0..10 {
            let page = newest_page(one, &search, Page::new(20, 0))
                .await
                .expect("probed");
            assert_eq!(
                page.map(|rows| rows.len()),
                Some(20),
                "santos is read from the newest rows ({:?})",
                search.visibility
            );
        }
    }
    let (kept, ran, generic) = kept_statements(
        one,
        "WITH paged AS (SELECT paged_key, paged_at FROM (SELECT aggregate_id AS paged_key,%",
    )
    .await;
    assert_eq!(
        (kept, ran, generic),
        (2, 20, 20),
        "one probe statement a visibility, kept, ran every probe on its generic plan"
    );
    // The plan made without the values (under a legal basis: its values are the pattern, the
    // rows up to the page's end, the page's count and offset, and the count again) reads the
    // newest rows' index entries, and stops well short of the probe's limit: a Santos in 16,
    // so ~320 entries for 20 of them and their ties.
    let page = Page::new(20, 0);
    let sql = newest_sql(&santos(Visibility::All), page).expect("a probe");
    let mut connection = one.acquire().await.expect("the connection");
    sqlx::raw_sql(&format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE generic_probe AS {sql}"
    ))
    .execute(&mut *connection)
    .await
    .expect("prepared");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE generic_probe('%santos%', 20, 20, 0, 20)",
    )
    .fetch_all(&mut *connection)
    .await
    .expect("explained");
    let plan = plan.join("\n");
    sqlx::raw_sql("DEALLOCATE generic_probe; RESET plan_cache_mode")
        .execute(&mut *connection)
        .await
        .expect("put back");
    let read = plan
        .lines()
        .find(|line| line.contains("Index Only Scan Backward using individual_view_last_updated"))
        .and_then(|line| line.split("rows=").nth(1))
        .and_then(|rows| rows.split_whitespace().next())
        .and_then(|rows| rows.parse::<i64>().ok());
    assert!(
        plan.contains("name_search ~~ $1")
            && read.is_some_and(|read| read > 20 && read < NEWEST_PROBED / 4),
        "the probe's plan without the values reads {read:?} entries:\n{plan}"
    );
}

/// The statements like `pattern` the connection of the pool of one `one` keeps: how many,
/// how many times they ran, and how many of those runs had a generic plan.
async fn kept_statements(one: &sqlx::PgPool, pattern: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0)::bigint, \
         coalesce(sum(generic_plans), 0)::bigint \
         FROM pg_prepared_statements WHERE statement LIKE $1",
    )
    .bind(pattern)
    .fetch_one(one)
    .await
    .expect("the connection's prepared statements")
}

/// Searches `search` on `on` and holds its total to what the count statement counts (on
/// `pool`), and its rows to the page's share of every match; returns how many match and
/// whether the total is past the count's bound.
async fn same_total(
    pool: &sqlx::PgPool,
    on: &sqlx::PgPool,
    what: &str,
    search: &IndividualQuery,
    page: Page,
) -> (i64, bool) {
    let every = Page {
        total: Total::Accurate,
        ..Page::new(20, 0)
    };
    let all = counted(pool, search, every).await.expect("counted").0;
    assert!(all > 0, "{what}: someone consented matches");
    let found = search_view(on, search, page)
        .await
        .unwrap_or_else(|e| panic!("{what} at {page:?}: {e}"));
    let (counted, _walked) = counted(pool, search, page).await.expect("counted");
    let past = page.total == Total::AtLeast && counted >= page.counted_at_most();
    assert_eq!(
        (found.total, found.estimated),
        (counted, past),
        "{what} at {page:?}"
    );
    let shown = (all - page.offset).clamp(0, page.count);
    assert_eq!(found.rows.len() as i64, shown, "{what} at {page:?}");
    (all, past)
}
