//! DESIGN invariant 2: catch-up by global position never skips a late-committing transaction
//! and never delivers an event twice.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use openspp_projections::feed::read_after;
use openspp_projections::FeedPosition;
use support::TestDb;

/// Appends one event per transaction to its own stream, holding some transactions open for a
/// while so that later positions commit before earlier ones.
async fn writer(pool: sqlx::PgPool, writer: usize, events: usize) {
    for n in 0..events {
        let mut tx = pool.begin().await.unwrap();
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
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, recorded_at, prev_hash, hash) \
         VALUES ('Test', $1, 1, 'Tested', '1.0', '{}', '{}', now(), NULL, '\\x00')",
    )
    .bind(stream)
    .execute(executor)
    .await
    .unwrap();
}

async fn streams_read(pool: &sqlx::PgPool) -> Vec<String> {
    read_after(pool, FeedPosition::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.aggregate_id)
        .collect()
}

/// A transaction of this database that began before a later one committed holds the feed back
/// until it ends, and then its event comes first: nothing is skipped.
#[tokio::test]
async fn an_older_running_transaction_holds_the_feed_back_until_it_ends() {
    let db = TestDb::create().await;
    let mut early = db.pool.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *early)
        .await
        .unwrap();
    let mut late = db.pool.acquire().await.unwrap();
    append(&mut late, "late").await;
    assert!(
        streams_read(&db.pool).await.is_empty(),
        "read past a running transaction"
    );
    append(&mut early, "early").await;
    early.commit().await.unwrap();
    assert_eq!(streams_read(&db.pool).await, ["early", "late"]);
    db.drop().await;
}

/// Transactions of other databases in the cluster cannot append here, so a long one there
/// (another application, another test run) does not hold this feed back.
#[tokio::test]
async fn a_transaction_in_another_database_does_not_hold_the_feed_back() {
    let db = TestDb::create().await;
    let other = TestDb::create().await;
    let mut elsewhere = other.pool.begin().await.unwrap();
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
