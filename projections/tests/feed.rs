//! DESIGN invariant 2: catch-up by global position never skips a late-committing transaction
//! and never delivers an event twice.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use openspp_projections::begin::begin;
use openspp_projections::feed::{
    read_after, read_page, read_positions, touched_since, TOUCHED_READ,
};
use openspp_projections::FeedPosition;
use support::TestDb;

/// Appends one event per transaction to its own stream, holding some transactions open for a
/// while so that later positions commit before earlier ones.
async fn writer(pool: sqlx::PgPool, writer: usize, events: usize) {
    for n in 0..events {
        let mut tx = begin(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, recorded_at, prev_hash, hash) \
             VALUES ('Test', $1, $2, 'Tested', '1.0', '{}', '{}', now(), NULL, '\\x00')",
        )
        .bind(format!("stream-{writer}"))
        .bind(n as i64 + 1)
        .execute(&mut *tx)
        .await
        .unwrap();
        // A spread of hold times: a position taken early often commits late.
        tokio::time::sleep(Duration::from_millis(((writer * 7 + n * 3) % 6) as u64)).await;
        tx.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_each_read_exactly_once() {
    let db = TestDb::create().await;
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(writer(db.pool.clone(), w, 60)))
        .collect();

    let mut seen = Vec::new();
    let mut checkpoint = FeedPosition::default();
    let mut idle_reads_after_writers = 0;
    while idle_reads_after_writers < 3 {
        let batch = read_after(&db.pool, checkpoint, 7).await.unwrap();
        if let Some(last) = batch.last() {
            checkpoint = last.feed;
        }
        let done = writers.iter().all(|w| w.is_finished());
        if batch.is_empty() && done {
            idle_reads_after_writers += 1;
        }
        seen.extend(batch.into_iter().map(|e| e.feed.position));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for w in writers {
        w.await.unwrap();
    }

    let stored: Vec<i64> = sqlx::query_scalar("SELECT global_position FROM events ORDER BY 1")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 480);
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an event was delivered twice");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, stored, "an event was skipped");
    db.drop().await;
}

async fn append(executor: &mut sqlx::PgConnection, stream: &str) {
    append_of(executor, "Test", stream).await;
}

/// Appends one event to `stream` of `aggregate_type`, and returns its place in the feed.
async fn append_of(
    executor: &mut sqlx::PgConnection,
    aggregate_type: &str,
    stream: &str,
) -> FeedPosition {
    let (tx_id, position): (i64, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, recorded_at, prev_hash, hash) \
         VALUES ($1, $2, 1, 'Tested', '1.0', '{}', '{}', now(), NULL, '\\x00') \
         RETURNING tx_id::text::bigint, global_position",
    )
    .bind(aggregate_type)
    .bind(stream)
    .fetch_one(executor)
    .await
    .unwrap();
    FeedPosition { tx_id, position }
}

/// A subscription's decision holds while no event of the types it depends on, nor of the
/// streams it decided about, follows the place it was made at (`touched_since`): events of
/// other types and streams do not count, nor does one at or before that place; past
/// `TOUCHED_READ` later events the answer is yes, unread.
#[tokio::test]
async fn touched_since_sees_only_later_events_of_the_named_types_and_streams() {
    let db = TestDb::create().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let start = FeedPosition::default();
    let first = append_of(&mut conn, "Individual", "i1").await;
    let consent = append_of(&mut conn, "Consent", "c1").await;
    let last = append_of(&mut conn, "Individual", "i2").await;
    let types = ["Consent", "Group"];
    let none: [String; 0] = [];
    let i1 = ["i1".to_owned()];
    let i2 = ["i2".to_owned()];
    assert!(touched_since(&db.pool, start, &types, &none).await.unwrap());
    assert!(touched_since(&db.pool, first, &types, &none).await.unwrap());
    assert!(!touched_since(&db.pool, consent, &types, &none)
        .await
        .unwrap());
    assert!(!touched_since(&db.pool, last, &types, &none).await.unwrap());
    assert!(!touched_since(&db.pool, start, &["Group"], &none)
        .await
        .unwrap());
    assert!(touched_since(&db.pool, consent, &types, &i2).await.unwrap());
    assert!(!touched_since(&db.pool, last, &types, &i2).await.unwrap());
    assert!(!touched_since(&db.pool, consent, &types, &i1).await.unwrap());
    drop(conn);

    // Later events, in one transaction of this run (so after `last` in the feed).
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, recorded_at, prev_hash, hash) \
         SELECT 'Individual', 'bulk' || i, 1, 'Tested', '1.0', '{}', '{}', now(), NULL, '\\x00' \
         FROM generate_series(1, $1) AS i",
    )
    .bind(TOUCHED_READ)
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(
        touched_since(&db.pool, last, &["Group"], &none)
            .await
            .unwrap(),
        "too many later events to read: maybe"
    );
    db.drop().await;
}

async fn streams_read(pool: &sqlx::PgPool) -> Vec<String> {
    read_after(pool, FeedPosition::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.aggregate_id)
        .collect()
}

/// A transaction that has taken its id and is still running, and a stream `late` appended
/// and committed after it: the feed holds `late` back until the returned transaction ends.
async fn held_behind_early(pool: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut early = begin(pool).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *early)
        .await
        .unwrap();
    let mut late = pool.acquire().await.unwrap();
    append(&mut late, "late").await;
    early
}

/// A transaction of this database that began before a later one committed holds the feed back
/// until it ends, and then its event comes first: nothing is skipped.
#[tokio::test]
async fn an_older_running_transaction_holds_the_feed_back_until_it_ends() {
    let db = TestDb::create().await;
    let mut early = held_behind_early(&db.pool).await;
    assert!(
        streams_read(&db.pool).await.is_empty(),
        "read past a running transaction"
    );
    let page = read_page(&db.pool, FeedPosition::default(), 100)
        .await
        .unwrap();
    assert!(
        page.held_back,
        "the page says an event waits behind the horizon"
    );
    append(&mut early, "early").await;
    early.commit().await.unwrap();
    assert_eq!(streams_read(&db.pool).await, ["early", "late"]);
    db.drop().await;
}

/// The feed follower's page of places (`read_positions`) is the page of events' places, and
/// is held back where the page of events is.
#[tokio::test]
async fn a_page_of_places_is_the_page_of_events_places() {
    let db = TestDb::create().await;
    let mut conn = db.pool.acquire().await.unwrap();
    for name in ["a", "b", "c"] {
        append(&mut conn, name).await;
    }
    drop(conn);
    let events = read_page(&db.pool, FeedPosition::default(), 100)
        .await
        .unwrap();
    let places = read_positions(&db.pool, FeedPosition::default(), 100)
        .await
        .unwrap();
    assert_eq!(events.events.len(), 3);
    let of_events: Vec<FeedPosition> = events.events.iter().map(|e| e.feed).collect();
    assert_eq!(places.events, of_events);
    assert!(!places.held_back);
    let after_first = read_positions(&db.pool, of_events[0], 1).await.unwrap();
    assert_eq!(after_first.events, of_events[1..2]);

    let early = held_behind_early(&db.pool).await;
    let held = read_positions(&db.pool, of_events[2], 100).await.unwrap();
    assert!(held.events.is_empty() && held.held_back);
    early.rollback().await.unwrap();
    db.drop().await;
}

/// Transactions of other databases in the cluster cannot append here, so a long one there
/// (another application, another test run) does not hold this feed back.
#[tokio::test]
async fn a_transaction_in_another_database_does_not_hold_the_feed_back() {
    let db = TestDb::create().await;
    let other = TestDb::create().await;
    let mut elsewhere = begin(&other.pool).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *elsewhere)
        .await
        .unwrap();
    let mut here = db.pool.acquire().await.unwrap();
    append(&mut here, "here").await;
    assert_eq!(streams_read(&db.pool).await, ["here"]);
    elsewhere.rollback().await.unwrap();
    drop(here);
    db.drop().await;
    other.drop().await;
}

/// Events in the feed's shape at scale: `n` events, four per transaction id, spread over
/// 100,000 streams, inserted in one statement (so the ids are written, not taken).
async fn fill(pool: &sqlx::PgPool, n: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, recorded_at, prev_hash, hash, tx_id) \
         SELECT 'Test', 's' || (i % 100000), i / 100000 + 1, 'Tested', '1.0', '{}', '{}', \
             now(), NULL, '\\x00', (1000 + i / 4)::text::xid8 \
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE events").execute(pool).await.unwrap();
}

/// Every node type in an `EXPLAIN (FORMAT JSON)` plan, with the index each scan uses.
fn nodes(plan: &serde_json::Value, into: &mut Vec<String>) {
    if let Some(node) = plan.get("Node Type").and_then(|n| n.as_str()) {
        let index = plan.get("Index Name").and_then(|i| i.as_str());
        into.push(match index {
            Some(index) => format!("{node} using {index}"),
            None => node.to_owned(),
        });
    }
    for child in plan
        .get("Plans")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        nodes(child, into);
    }
}

/// The feed's page queries (of events, of their places only, and of their types for
/// `touched_since`), as the code runs them, are
/// index range scans of `events_feed` that stop after a page, with no sort: at the start, the middle and the end of a log of three
/// million events, planned with the values (custom plan) and without them (the generic plan
/// a prepared statement falls back to).
#[tokio::test]
async fn a_feed_page_is_an_index_scan_without_a_sort_at_millions_of_events() {
    let db = TestDb::create().await;
    fill(&db.pool, 3_000_000).await;
    let mut conn = db.pool.acquire().await.unwrap();
    for (sql, types, more) in [
        (openspp_projections::feed::PAGE_SQL, "", ""),
        (openspp_projections::feed::POSITIONS_SQL, "", ""),
        (
            openspp_projections::feed::TOUCHED_SQL,
            ", text[], text[]",
            ", '{Consent,Group}', '{s1,s2}'",
        ),
    ] {
        sqlx::query(&format!(
            "PREPARE feed_page(text, bigint, bigint{types}) AS {sql}"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        plans_hold(&mut conn, sql, more).await;
        sqlx::query("DEALLOCATE feed_page")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    db.drop().await;
}

/// The prepared `feed_page` (`sql`, its arguments after the length `more`) read through
/// `events_feed` without a sort, planned with and without its values, at the start, middle
/// and end of the log.
async fn plans_hold(conn: &mut sqlx::PgConnection, sql: &str, more: &str) {
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        for (tx_id, position) in [
            (0_i64, 0_i64),
            (1000 + 375_000, 1_500_000),
            (1000 + 749_999, 2_999_990),
        ] {
            let explained: serde_json::Value = sqlx::query_scalar(&format!(
                "EXPLAIN (FORMAT JSON) EXECUTE feed_page('{tx_id}', {position}, 5000{more})"
            ))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            let mut found = Vec::new();
            nodes(&explained[0]["Plan"], &mut found);
            assert!(
                found.iter().any(|n| n == "Index Scan using events_feed"
                    || n == "Index Only Scan using events_feed"),
                "{sql}: {mode} at {tx_id}:{position}: {found:?}"
            );
            assert!(
                !found
                    .iter()
                    .any(|n| n.contains("Sort") || n.contains("Seq Scan")),
                "{sql}: {mode} at {tx_id}:{position}: {found:?}"
            );
        }
    }
}
