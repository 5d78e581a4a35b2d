//! Searches have a budget: a few of the pool's connections and a time limit per statement.
//! However many searches wait or run long, writes, reads and the projector find a connection;
//! a search over its budget is answered 503 with `Retry-After` (an OperationOutcome saying
//! why), never a 500 and never a hang.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use openspp_projections::consent::Visibility;
use openspp_projections::search::Page;
use openspp_projections::view::search_view;

use crate::support::{
    cli, consent_client, create_client, path_id, register_individual, unique, Api, HeldTransaction,
    Reply, Server, TestDatabase, ALL_SCOPES, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "search_budget_refuses_searches_and_keeps_writes_going",
            budget,
        ),
        trial(
            "a_search_given_up_on_leaves_no_transaction_open_in_the_pool",
            given_up,
        ),
    ]
}

/// Searches dropped at every point of their way (as a request is when its client goes away)
/// leave every connection of the pool usable for a write: none goes back inside a search's
/// read-only transaction (sqlx does not roll back a `BEGIN` dropped before it completes).
async fn given_up() {
    let database = TestDatabase::create("openspp_search_given_up");
    cli(&database.url, &["migrate"]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database.url)
        .await
        .expect("connects");
    let query = crate::search_plans::query(Visibility::All);
    for attempt in 0..400u64 {
        let search = search_view(&pool, &query, Page::new(20, 0));
        let _ = tokio::time::timeout(Duration::from_micros(attempt % 80 * 25), search).await;
        // Both connections at once, as the next users after the search would take them.
        let mut first = pool.acquire().await.expect("a connection");
        let mut second = pool.acquire().await.expect("a connection");
        for connection in [&mut first, &mut second] {
            sqlx::query("CREATE TEMP TABLE IF NOT EXISTS written (x int)")
                .execute(&mut **connection)
                .await
                .unwrap_or_else(|error| {
                    panic!("after search {attempt}, a connection is not writable: {error}")
                });
        }
    }
    pool.close().await;
    drop(database);
}

/// The search time limit of the server under test.
const TIMEOUT_MS: u64 = 1500;

fn refused(reply: &Reply) -> String {
    reply.expect(503);
    assert_eq!(reply.header("retry-after"), Some("1"), "{}", reply.text);
    assert_eq!(
        reply.body["resourceType"], "OperationOutcome",
        "{}",
        reply.text
    );
    reply.body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn budget() {
    let database = TestDatabase::create("openspp_e2e_search_budget");
    // A small pool, of which searches may hold two connections (one search at a time).
    let server = Server::start(
        &database.url,
        &[
            ("OPENSPP_DB_POOL_SIZE", "10"),
            ("OPENSPP_SEARCH_CONNECTIONS", "2"),
            ("OPENSPP_SEARCH_TIMEOUT_MS", &TIMEOUT_MS.to_string()),
        ],
    );
    let mut scopes = Vec::new();
    for scope in ALL_SCOPES {
        scopes.extend(["--scope", scope]);
    }
    let admin = Api::new(&server.base)
        .login(&create_client(&database.url, &scopes))
        .await;
    let ngo = Api::new(&server.base)
        .login(&consent_client(
            &database.url,
            "Budget NGO",
            "ngo",
            &["individual:all"],
        ))
        .await;
    register_individual(&admin, &unique("budget")).await;
    let search = "/api/v2/spp/Individual?name=Santos";
    ngo.get(search).await.expect(200);

    // The consent filter reads `consent_index`: held, every consent-filtered search waits on
    // it (as a slow search would run), holding its place in the budget.
    let held = HeldTransaction::begin(
        &database.url,
        "LOCK TABLE consent_index IN ACCESS EXCLUSIVE MODE;",
    )
    .await;
    // Search A takes the budget's only place and waits on the lock until its time limit.
    let started = Instant::now();
    let spawn_search = |api: &Api| {
        let api = api.clone();
        tokio::spawn(async move { api.get(search).await })
    };
    let a = spawn_search(&ngo);
    held.wait_until_blocking().await;

    // Meanwhile a write (through the projector: its answer is read back from the read model)
    // and a read of it go through at once.
    let id = unique("budget");
    let path = register_individual(&admin, &id).await;
    let read = admin.get(&path).await;
    read.expect(200);
    assert_eq!(read.body["identifier"][0]["value"], id);
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS / 2),
        "the write and the read waited for the search ({:?})",
        started.elapsed()
    );
    // Search B queues for A's place, and gets it when A runs out of time (at 1.0 of the
    // limit), then waits on the lock in turn; search C, by the legal-basis client, queues
    // behind B and finds no place within its limit (B holds it until 2.0 of the limit).
    let at = |fraction: f64| started + Duration::from_millis((TIMEOUT_MS as f64 * fraction) as u64);
    tokio::time::sleep_until(at(0.6).into()).await;
    let b = spawn_search(&ngo);
    tokio::time::sleep_until(at(0.7).into()).await;
    let c = admin.get(search).await;
    let said = refused(&c);
    assert!(said.contains("too many searches"), "{said}");
    for (name, task) in [("A", a), ("B", b)] {
        let reply = task.await.expect("search answered");
        let said = refused(&reply);
        assert!(said.contains("time limit"), "search {name}: {said}");
    }
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS * 3),
        "the searches hung ({:?})",
        started.elapsed()
    );
    drop(held);

    // Once the lock is gone, searches are answered again, and the projector followed.
    let found = ngo.get(search).await;
    found.expect(200);
    let found = admin
        .get(&format!(
            "/api/v2/spp/Individual?identifier={}",
            path_id(NATIONAL_ID, &id)
        ))
        .await;
    found.expect(200);
    assert_eq!(found.body["meta"]["total"], 1, "{}", found.text);
    drop(server);
    drop(database);
}
