//! Reads by identifier that arrive together share a statement (`projections/src/together.rs`):
//! each read gets its own row (or none, for an identifier nobody holds), far fewer statements
//! run than reads, the shared statement keeps a plan of index lookups, a read whose leader was
//! dropped is still answered, and a failing statement answers every read with its failure
//! rather than leaving any waiting. Run over the registry `search_plans` fills.

use std::time::Duration;

use openspp_aggregates::Individual;
use openspp_projections::lane::Lane;
use openspp_projections::together;
use openspp_projections::view::{IdentifierRead, ViewRow};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;
use tokio::task::JoinHandle;

use crate::support::NATIONAL_ID;

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![crate::trial(
        "read_together::plan_kept_without_statistics",
        plan_kept_without_statistics,
    )]
}

/// Concurrent reads: more than one statement asks for (`READ_TOGETHER`).
const READS: usize = 200;

pub async fn shared(database_url: &str, people: usize) {
    // A pool of one: every statement runs on its one connection, whose prepared statements
    // count them (`pg_prepared_statements` is the session's own).
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .expect("connects");
    let lane = Lane::new(pool.clone());
    answered_each_their_own(&lane, people).await;
    let statements = executions(&pool, "SELECT k.ordinal, %").await
        + executions(&pool, "SELECT c.aggregate_id AS stream, %").await;
    assert!(
        (1..=20).contains(&statements),
        "{READS} reads arriving together took {statements} statements"
    );
    leaders_dropped(&lane, people).await;
    plan_kept(&pool).await;
    failed_together(&lane).await;
    pool.close().await;
}

/// What a read of an individual by identifier finds.
type Found = Option<(String, Option<ViewRow<Individual>>)>;

/// A read of the individual holding `value` in `table`, on its own task.
fn spawn_read(lane: &Lane, table: &'static str, value: String) -> JoinHandle<sqlx::Result<Found>> {
    let lane = lane.clone();
    tokio::spawn(async move {
        together::by_identifier::<Individual>(&lane, table, "Individual", NATIONAL_ID, &value).await
    })
}

/// `READS` reads at once, one in four of an identifier nobody holds: each is answered with the
/// row holding its own identifier, or with nothing.
async fn answered_each_their_own(lane: &Lane, people: usize) {
    let reads: Vec<_> = (0..READS)
        .map(|n| {
            let value = if n % 4 == 3 {
                format!("NOBODY{n}")
            } else {
                format!("P{}", (n * 7919) % people)
            };
            (value.clone(), spawn_read(lane, "individual_view", value))
        })
        .collect();
    for (value, read) in reads {
        let found = read.await.expect("the read ran").expect("read");
        holds_its_own(&value, found);
    }
}

/// A read of `value` found its own row, or nothing for an identifier nobody holds.
fn holds_its_own(value: &str, found: Found) {
    if value.starts_with("NOBODY") {
        assert!(found.is_none(), "{value} is nobody's: {found:?}");
        return;
    }
    let (stream, row) = found.unwrap_or_else(|| panic!("{value} is held"));
    let row = row.unwrap_or_else(|| panic!("{value}'s row"));
    assert_eq!(row.aggregate_id, stream);
    let identifiers = &row.state.identifiers;
    assert!(
        identifiers
            .iter()
            .any(|entry| entry.identifier.value == value),
        "{value} was answered with another's row: {identifiers:?}"
    );
}

/// How often this session ran the statements that start with `like`.
async fn executions(pool: &sqlx::PgPool, like: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(generic_plans + custom_plans), 0)::bigint \
         FROM pg_prepared_statements WHERE statement LIKE $1",
    )
    .bind(like)
    .fetch_one(pool)
    .await
    .expect("counted")
}

/// Reads whose tasks are aborted while they wait or lead: every other read is still answered
/// with its own row (a read led by one aborted asks again alone).
async fn leaders_dropped(lane: &Lane, people: usize) {
    let reads: Vec<_> = (0..READS)
        .map(|n| {
            let value = format!("P{}", (n * 104_729) % people);
            (n, value.clone(), spawn_read(lane, "individual_view", value))
        })
        .collect();
    tokio::task::yield_now().await;
    for (n, _, read) in &reads {
        if n % 3 == 0 {
            read.abort();
        }
    }
    for (n, value, read) in reads {
        match tokio::time::timeout(Duration::from_secs(30), read).await {
            Ok(Ok(found)) => holds_its_own(&value, found.expect("read")),
            Ok(Err(aborted)) => assert!(n % 3 == 0 && aborted.is_cancelled(), "{aborted}"),
            Err(_) => panic!("read {n} was never answered"),
        }
    }
}

/// The shared statement is planned with the keys of its first five runs on a connection, then
/// once for all (a generic plan), and that plan is two index lookups a key, not a scan.
async fn plan_kept(pool: &sqlx::PgPool) {
    let statement = IdentifierRead {
        table: "individual_view",
        aggregate_type: "Individual",
        beside: None,
    }
    .statement(true);
    for run in 0..8usize {
        let values: Vec<String> = (0..(run % 5 + 2))
            .map(|n| format!("P{}", run * 10 + n))
            .collect();
        let systems = vec![NATIONAL_ID.to_owned(); values.len()];
        let rows = sqlx::query(&statement)
            .bind("Individual")
            .bind(&systems)
            .bind(&values)
            .fetch_all(pool)
            .await
            .expect("read together");
        assert_eq!(rows.len(), values.len(), "each key its row");
    }
    let (custom, generic): (i64, i64) = sqlx::query_as(
        "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = $1",
    )
    .bind(&statement)
    .fetch_one(pool)
    .await
    .expect("prepared");
    // The reads above ran it on this connection too: five custom plans in all, whatever ran.
    assert_eq!(custom, 5, "planned with its keys five times, then kept");
    assert!(generic >= 3, "kept for the runs after the fifth: {generic}");
    let mut connection = pool.acquire().await.expect("a connection");
    looks_up(&kept_plan(&mut connection, &statement).await);
}

/// The plan a connection keeps for `statement` (its generic plan), explained.
async fn kept_plan(connection: &mut sqlx::PgConnection, statement: &str) -> String {
    sqlx::raw_sql(&format!(
        "SET plan_cache_mode = force_generic_plan; \
         PREPARE kept_together(text, text[], text[]) AS {statement}"
    ))
    .execute(&mut *connection)
    .await
    .expect("prepared");
    let plan: Vec<String> = sqlx::raw_sql(&format!(
        "EXPLAIN (COSTS OFF) EXECUTE kept_together('Individual', \
         ARRAY['{NATIONAL_ID}', '{NATIONAL_ID}'], ARRAY['P1', 'P2'])"
    ))
    .fetch_all(&mut *connection)
    .await
    .expect("explained")
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect();
    sqlx::raw_sql("DEALLOCATE kept_together; RESET plan_cache_mode")
        .execute(&mut *connection)
        .await
        .expect("reset");
    plan.join("\n")
}

/// A plan that finds each key's claim, and its row, by index lookups alone.
fn looks_up(plan: &str) {
    for index in ["identifier_claims_unique", "individual_view_pkey"] {
        assert!(
            plan.contains(&format!("Index Scan using {index}")),
            "the kept plan does not look up {index}:\n{plan}"
        );
    }
    assert!(!plan.contains("Seq Scan"), "the kept plan scans:\n{plan}");
    assert!(!plan.contains("Hash"), "the kept plan hashes:\n{plan}");
}

/// Claims in the registry `plan_kept_without_statistics` plans over.
const UNANALYSED_CLAIMS: usize = 20_000;

/// A registry PostgreSQL has no statistics for yet (loaded in bulk, not analysed: autovacuum
/// has not come by, or is off) still gets a plan of lookups for reads together, and keeps it:
/// a plan that hashed the claims because their table looked small would read every claim for
/// every read, on that connection, for as long as it lives.
async fn plan_kept_without_statistics() {
    let database = crate::support::TestDatabase::create("openspp_together_unanalysed");
    crate::support::cli(&database.url, &["migrate"]);
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url)
        .await
        .expect("connects");
    sqlx::raw_sql(&format!(
        "ALTER TABLE identifier_claims SET (autovacuum_enabled = false); \
         ALTER TABLE individual_view SET (autovacuum_enabled = false); \
         INSERT INTO identifier_claims (system, value, aggregate_type, aggregate_id) \
         SELECT '{NATIONAL_ID}', 'P' || n, 'Individual', 'stream-' || n \
         FROM generate_series(1, {UNANALYSED_CLAIMS}) n"
    ))
    .execute(&mut connection)
    .await
    .expect("claims loaded");
    let analysed: Option<f32> = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE relname = 'identifier_claims' AND reltuples >= 0",
    )
    .fetch_optional(&mut connection)
    .await
    .expect("pg_class");
    assert_eq!(
        analysed, None,
        "the claims must be unanalysed for this plan"
    );
    let statement = IdentifierRead::new("individual_view", "Individual").statement(true);
    looks_up(&kept_plan(&mut connection, &statement).await);
    drop(connection);
    drop(database);
}

/// Reads together of a read model that does not exist: every read is answered with the
/// statement's failure, promptly, none asked again nor left waiting.
async fn failed_together(lane: &Lane) {
    let reads: Vec<_> = (0..READS)
        .map(|n| spawn_read(lane, "no_such_view", format!("P{n}")))
        .collect();
    for (n, read) in reads.into_iter().enumerate() {
        let answered = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .unwrap_or_else(|_| panic!("read {n} was never answered"))
            .expect("the read ran");
        let error = answered.expect_err("no such read model");
        assert!(
            error.to_string().contains("no_such_view"),
            "read {n} was not told why: {error}"
        );
    }
}
