//! Opening a transaction so that a caller who gives up cannot leave one open in the pool.
//!
//! sqlx does not roll back a `BEGIN` whose future is dropped before it completes: its rollback
//! guard counts the transaction only once the server has answered, so a request its client
//! abandoned, or one half of a `try_join!` dropped when the other failed, returns its connection
//! to the pool still inside the transaction. Whoever takes that connection next runs inside it:
//! a write that seems to commit is rolled back with the connection, a read-only one makes every
//! later statement fail ("cannot execute … in a read-only transaction", then "current
//! transaction is aborted"; seen as 500s in the throughput bench).
//!
//! So the `BEGIN` runs in a task of its own, which finishes whether or not its caller is still
//! waiting: a caller that gave up drops a `Transaction` that exists, whose drop rolls it back
//! before the connection goes back to the pool. The cost is one task per transaction. Every
//! transaction of the workspace opens here (clippy's `disallowed-methods` refuses
//! `Pool::begin`/`begin_with` elsewhere).

use std::borrow::Cow;

use sqlx::{PgPool, Postgres, Transaction};

/// `pool.begin()`, safe to abandon.
pub async fn begin(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    open(pool, None).await
}

/// `pool.begin_with(statement)` (a `BEGIN …` with its options, maybe followed by `SET LOCAL`s),
/// safe to abandon.
pub async fn begin_with(
    pool: &PgPool,
    statement: impl Into<Cow<'static, str>>,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    open(pool, Some(statement.into())).await
}

/// Ends a read-only transaction without waiting for it: dropped, it queues its `ROLLBACK`,
/// which goes out with the ping sqlx sends anyway when the connection returns to the pool
/// (`return_to_pool`), in the same round trip. A `COMMIT` of a transaction that wrote nothing
/// changes nothing, and the caller would wait a round trip for it.
pub fn end_read(read: Transaction<'static, Postgres>) {
    drop(read);
}

#[allow(clippy::disallowed_methods)] // the one place transactions open
async fn open(
    pool: &PgPool,
    statement: Option<Cow<'static, str>>,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    let pool = pool.clone();
    let opening = tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    });
    match opening.await {
        Ok(opened) => opened,
        // The task panicked or the runtime is shutting down: nothing was opened for the caller.
        Err(joined) => Err(sqlx::Error::WorkerCrashed).inspect_err(|_| {
            tracing::error!(error = %joined, "opening a transaction failed");
        }),
    }
}
