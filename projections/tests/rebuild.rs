//! The rebuild folds the log in ranges of streams, side by side: the ranges cover every event
//! once, never split a stream, and the rebuild writes one row per stream.

mod support;

use std::collections::HashSet;

use futures_util::TryStreamExt;
use openspp_projections::events::scan_streams;
use openspp_projections::rebuild::{rebuild, split};
use support::TestDb;

/// `people` individuals (registered, then given an identifier) and as many programs' worth of
/// events of a type without read models, so ranges meet a type boundary.
async fn fill(pool: &sqlx::PgPool, people: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, recorded_at, prev_hash, hash) \
         SELECT 'Individual', 'p' || i, s, \
             CASE s WHEN 1 THEN 'IndividualRegistered' ELSE 'IdentifierAdded' END, '1.0', \
             CASE s WHEN 1 THEN jsonb_build_object('IndividualRegistered', jsonb_build_object( \
                 'name', jsonb_build_object('family', 'F' || i), 'birth_date', NULL, \
                 'birth_date_estimated', false, 'gender', NULL, 'telecom', '[]'::jsonb, \
                 'address', '[]'::jsonb)) \
             ELSE jsonb_build_object('IdentifierAdded', jsonb_build_object('identifier', \
                 jsonb_build_object('system', 'urn:test', 'value', 'N' || i))) END, \
             '{\"source_system\": \"urn:test\"}'::jsonb, now(), NULL::bytea, '\\x00'::bytea \
         FROM generate_series(1, $1) AS i, generate_series(1, 2) AS s \
         UNION ALL \
         SELECT 'Zeta', 'z' || i, 1, 'Tested', '1.0', '{}'::jsonb, '{}'::jsonb, now(), NULL::bytea, '\\x00'::bytea \
         FROM generate_series(1, $1) AS i",
    )
    .bind(people)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE events").execute(pool).await.unwrap();
}

#[tokio::test]
async fn ranges_cover_the_log_once_without_splitting_a_stream() {
    let db = TestDb::create().await;
    fill(&db.pool, 30_000).await;
    let ranges = split(&db.pool, 2).await.unwrap();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let mut seen_streams = HashSet::new();
    let mut events = 0;
    for range in &ranges {
        let mut conn = db.pool.acquire().await.unwrap();
        let mut streams_here = HashSet::new();
        let mut scan = scan_streams(&mut conn, range);
        while let Some(event) = scan.try_next().await.unwrap() {
            events += 1;
            let stream = (event.aggregate_type, event.aggregate_id);
            if streams_here.insert(stream.clone()) {
                assert!(seen_streams.insert(stream), "a stream in two ranges");
            }
        }
    }
    assert_eq!(events, 90_000);
    assert_eq!(seen_streams.len(), 60_000);

    let rebuilt = rebuild(&db.pool, |_| {}).await.unwrap();
    assert_eq!(rebuilt.events, 90_000);
    assert_eq!(rebuilt.streams, 60_000);
    let (rows, versions): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(version)::bigint FROM individual_view")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((rows, versions), (30_000, 60_000));
    db.drop().await;
}
