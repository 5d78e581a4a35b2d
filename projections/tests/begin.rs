//! A transaction whose opener gave up while its `BEGIN` was out is not left open in the pool
//! (`openspp_projections::begin`: sqlx alone would return the connection inside it).

use std::time::Duration;

use openspp_projections::begin::{begin, begin_with};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// One connection, so that whoever comes next gets the abandoned one.
async fn single_connection_pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap()
}

/// Whether the next user of the pool finds itself inside a read-only transaction.
async fn next_user_is_read_only(pool: &PgPool) -> bool {
    let setting: String = sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
        .fetch_one(pool)
        .await
        .unwrap();
    setting == "on"
}

#[tokio::test]
async fn an_abandoned_begin_leaves_no_transaction_open_in_the_pool() {
    let pool = single_connection_pool().await;
    // The BEGIN's answer takes 300 ms; its opener gives up after 50.
    let opening = begin_with(&pool, "BEGIN READ ONLY; SELECT pg_sleep(0.3)");
    let abandoned = tokio::time::timeout(Duration::from_millis(50), opening).await;
    assert!(abandoned.is_err(), "the opener gave up before the answer");
    for _ in 0..3 {
        assert!(
            !next_user_is_read_only(&pool).await,
            "the abandoned read-only transaction was handed to the next user"
        );
    }
    pool.close().await;
}

#[tokio::test]
async fn a_transaction_dropped_after_it_opened_is_rolled_back() {
    let pool = single_connection_pool().await;
    let mut tx = begin(&pool).await.unwrap();
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    assert!(!next_user_is_read_only(&pool).await);
    let tx = begin_with(&pool, "BEGIN READ ONLY").await.unwrap();
    tx.commit().await.unwrap();
    assert!(!next_user_is_read_only(&pool).await);
    pool.close().await;
}
