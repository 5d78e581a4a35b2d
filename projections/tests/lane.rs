//! The lane (`openspp_projections::lane`) keeps a connection whose statement completed for the
//! next statement, outside the pool (so sqlx does not ping it on its way back), and hands every
//! other connection back to the pool: one whose statement was abandoned, one idle too long,
//! every one once the pool closes.

use std::time::Duration;

use openspp_projections::lane::Lane;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// A wait for the next statement longer than any test.
const LONG: Duration = Duration::from_secs(10);

async fn pool(connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap()
}

async fn backend(lane: &Lane) -> (i32, openspp_projections::lane::Leased) {
    let mut connection = lane.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    (pid, connection)
}

/// Waits (at most 2 s) until the pool holds `idle` idle connections.
async fn pool_idle(pool: &PgPool, idle: usize) -> bool {
    for _ in 0..200 {
        if pool.num_idle() == idle {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_released_connection_is_kept_outside_the_pool_for_the_next_statement() {
    let pool = pool(4).await;
    let lane = Lane::keeping(pool.clone(), LONG);
    let (first, connection) = backend(&lane).await;
    connection.release();
    assert_eq!(lane.idle(), 1, "the lane keeps it");
    assert_eq!(pool.num_idle(), 0, "it did not go back to the pool");
    let (second, connection) = backend(&lane).await;
    assert_eq!(first, second, "the next statement runs on it");
    assert_eq!(lane.idle(), 0, "taken from the lane");
    connection.release();
    pool.close().await;
}

#[tokio::test]
async fn a_lease_dropped_without_release_goes_back_to_the_pool() {
    let pool = pool(4).await;
    let lane = Lane::new(pool.clone());
    let (_, connection) = backend(&lane).await;
    drop(connection);
    assert_eq!(lane.idle(), 0, "the lane does not keep it");
    assert!(pool_idle(&pool, 1).await, "the pool has it back");
    pool.close().await;
}

#[tokio::test]
async fn a_statement_abandoned_half_way_leaves_no_broken_connection_in_the_lane() {
    // Two connections, so that the lane may keep one.
    let pool = pool(2).await;
    let lane = Lane::keeping(pool.clone(), LONG);
    let mut connection = lane.acquire().await.unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *connection),
    )
    .await;
    assert!(abandoned.is_err(), "the statement was abandoned");
    drop(connection);
    assert_eq!(lane.idle(), 0);
    // Abandoned through the executor, as the request path runs its statements.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        sqlx::query("SELECT pg_sleep(0.3)").execute(&lane),
    )
    .await;
    assert!(abandoned.is_err(), "the statement was abandoned");
    assert_eq!(lane.idle(), 0);
    // The connections, drained by sqlx's ping, answer the next statements.
    for n in 0..3 {
        let mut connection = lane.acquire().await.unwrap();
        let answer: i32 = sqlx::query_scalar("SELECT $1")
            .bind(n)
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(answer, n);
        connection.release();
    }
    pool.close().await;
}

#[tokio::test]
async fn an_idle_connection_goes_back_to_the_pool() {
    let pool = pool(4).await;
    let lane = Lane::new(pool.clone());
    let (_, connection) = backend(&lane).await;
    connection.release();
    assert_eq!(lane.idle(), 1);
    assert!(pool_idle(&pool, 1).await, "swept back to the pool");
    assert_eq!(lane.idle(), 0);
    pool.close().await;
}

#[tokio::test]
async fn the_pool_closes_while_the_lane_holds_connections() {
    let pool = pool(4).await;
    // They would wait ten seconds for a statement: only the pool's closing sends them back.
    let lane = Lane::keeping(pool.clone(), LONG);
    let (_, a) = backend(&lane).await;
    let (_, b) = backend(&lane).await;
    a.release();
    b.release();
    assert_eq!(lane.idle(), 2);
    tokio::time::timeout(Duration::from_secs(2), pool.close())
        .await
        .expect("the pool closed: the lane gave its connections back");
    assert_eq!(lane.idle(), 0);
}

#[tokio::test]
async fn the_lane_keeps_at_most_half_the_pool() {
    let pool = pool(6).await;
    let lane = Lane::keeping(pool.clone(), LONG);
    let mut leased = Vec::new();
    for _ in 0..4 {
        leased.push(backend(&lane).await.1);
    }
    for connection in leased {
        connection.release();
    }
    assert_eq!(lane.idle(), 3, "half of the pool's six");
    assert!(pool_idle(&pool, 1).await, "the rest went back to the pool");
    pool.close().await;
}

#[tokio::test]
async fn the_lane_is_an_executor_that_keeps_a_connection_only_after_a_statement_succeeded() {
    let pool = pool(4).await;
    let lane = Lane::keeping(pool.clone(), LONG);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&lane)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(lane.idle(), 1, "kept after a statement that succeeded");
    let rows: Vec<i32> = sqlx::query_scalar("SELECT generate_series(1, 5)")
        .fetch_all(&lane)
        .await
        .unwrap();
    assert_eq!(rows, vec![1, 2, 3, 4, 5], "every row of a stream");
    assert_eq!(lane.idle(), 1);
    let failed = sqlx::query("SELECT 1 / 0").execute(&lane).await;
    assert!(failed.is_err());
    assert_eq!(
        lane.idle(),
        0,
        "a failed statement's connection went back to the pool"
    );
    assert!(pool_idle(&pool, 1).await);
    pool.close().await;
}

#[tokio::test]
async fn a_connection_goes_back_to_the_pool_when_the_pool_has_none_left() {
    let pool = pool(4).await;
    let lane = Lane::keeping(pool.clone(), LONG);
    let mut leased = Vec::new();
    for _ in 0..4 {
        leased.push(backend(&lane).await.1);
    }
    // All four are out: whoever waits for the pool gets the first one released.
    leased.pop().unwrap().release();
    assert_eq!(lane.idle(), 0, "not kept while the pool had none");
    assert!(pool_idle(&pool, 1).await);
    leased.pop().unwrap().release();
    assert_eq!(lane.idle(), 1, "kept once the pool has one");
    drop(leased);
    pool.close().await;
}
