//! Replay speed, and the write paths of the store beneath the HTTP layer:
//! `cargo bench --bench replay -- --events 250000,1000000`.
//!
//! First the store's single-command path alone (`EventStore::execute`, a registration per
//! command, 16 at a time for 10 s: what one POST costs the database, HTTP aside).
//! Fills a fresh database through the store's batch append path (`common/population.rs`:
//! 1,000 registrations per batch, an `IndividualRegistered` and an `IdentifierAdded` each,
//! hash-chained, with their identifier claims and read-model rows, one statement per batch),
//! measures pgbench's
//! one-row insert beside it as the yardstick of this machine at this moment, then at each
//! size of `--events` runs `openspp replay` (which drops the read models and rebuilds them
//! from the log) and checks that the rebuilt tables are exactly what the appends wrote.
//! Prints events/s for the fill and each replay, and the ratio to pgbench. The database is
//! dropped afterwards. Numbers only; nothing here asserts a speed.

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "common/pgbench.rs"]
mod pgbench;
#[allow(dead_code)]
#[path = "common/population.rs"]
mod population;

use std::sync::Arc;
use std::time::Instant;

use openspp::store::{CommandMetadata, EventStore};
use openspp_aggregates::{Individual, IndividualCommand, RegistryServices};
use support::{cli, sql_scalar, TestDatabase};

fn sizes() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000])
}

/// Registrations through `EventStore::execute`, `concurrency` at a time, for `seconds`.
async fn single_commands(
    store: &EventStore,
    services: &Arc<RegistryServices>,
    concurrency: usize,
    seconds: u64,
) -> f64 {
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (store, services) = (store.clone(), services.clone());
            tokio::spawn(async move {
                let metadata = CommandMetadata {
                    client_id: "bench".into(),
                    source_system: "urn:openspp:bench".into(),
                    source_reference: None,
                    collection_method: "api".into(),
                    request_id: "bench-single".into(),
                    consent_id: None,
                    consent_subject: None,
                    consent_recipient: None,
                };
                let mut done = 0usize;
                while Instant::now() < deadline {
                    let stream = uuid::Uuid::now_v7().to_string();
                    let mut details = population::person("S", done);
                    details.identifiers[0].value = format!("S{worker}-{done}");
                    store
                        .execute::<Individual>(
                            &stream,
                            None,
                            IndividualCommand::Register(details),
                            &services,
                            &metadata,
                        )
                        .await
                        .expect("a valid registration");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap();
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// A digest of every table a replay rebuilds, in a canonical order.
fn digest(url: &str) -> String {
    openspp_projections::rows::TABLES
        .iter()
        .map(|table| {
            sql_scalar(
                url,
                &format!(
                    "SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' \
                     ORDER BY t::text)), '-') FROM {table} t"
                ),
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes = sizes();
    let database = TestDatabase::create("openspp_bench_replay");
    cli(&database.url, &["migrate"]);
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let services = population::services(&pool).await;
    let store = EventStore::new(pool.clone());
    let tps = pgbench::insert(&database.url, 16, 10);
    println!("pgbench one-row insert, 16 clients: {tps:.0} tps");
    let single = single_commands(&store, &services, 16, 10).await;
    println!(
        "store execute (one registration per command, 16 at a time): {single:.0} commands/s \
         ({:.2}x pgbench)",
        single / tps
    );
    sql_scalar(
        &database.url,
        "TRUNCATE events, identifier_claims, individual_view",
    );
    let mut people = 0;
    for events in sizes {
        let target = events / 2;
        let started = Instant::now();
        population::fill(&store, &services, "N", people, target, None).await;
        let filled = (target - people) * 2;
        let rate = filled as f64 / started.elapsed().as_secs_f64();
        people = target;
        println!(
            "batch append: {filled} events in {:.1} s = {rate:.0} events/s ({:.2}x pgbench)",
            started.elapsed().as_secs_f64(),
            rate / tps
        );
        sql_scalar(&database.url, "VACUUM ANALYZE events");
        let before = digest(&database.url);
        let report = cli(&database.url, &["replay"]);
        let report: serde_json::Value =
            serde_json::from_str(report.lines().last().unwrap_or_default()).unwrap();
        let rate = report["events_per_second"].as_f64().unwrap_or(f64::NAN);
        let identical = digest(&database.url) == before;
        println!(
            "replay at {} events: {rate:.0} events/s in {} s ({:.2}x pgbench's one-row insert); \
             rebuilt tables identical to the appends': {identical}",
            report["events"],
            report["seconds"],
            rate / tps
        );
        assert!(identical, "replay rebuilt different tables");
    }
    pool.close().await;
    drop(database);
}
