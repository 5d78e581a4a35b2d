//! How a change to the vocabularies or the extension registry reaches every server process
//! (CONTRACT §8: "within a second").
//!
//! A trigger on the event table (migration 0050) notifies `openspp_catalog` from the very
//! transaction that appends a `Vocabulary` or `Extension` event. Each server follows that
//! channel on a connection of its own, which also holds a shared advisory lock: the lock makes
//! the followers countable by anyone (`pg_locks`). On each notification the server reloads both
//! catalogs in one snapshot, swaps them in, and answers on `openspp_catalog_loaded` with its
//! follower's backend pid and that snapshot. The operator's command, which listened before it
//! committed, waits until every follower has answered with a snapshot that includes its
//! transaction: so when `openspp vocabulary add-id-type` returns, the very next request to any
//! server already sees the new identifier system.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::extensions::{ExtensionCatalog, Extensions};
use crate::vocabulary::{Catalog, Vocabularies};
use openspp_projections::begin::begin;

/// Notified (by the trigger of migration 0050) when a vocabulary or extension event commits.
pub const CHANGED_CHANNEL: &str = "openspp_catalog";
/// Notified by a server (`pid:snapshot`) each time it has loaded the catalogs.
pub const LOADED_CHANNEL: &str = "openspp_catalog_loaded";
/// The advisory lock (two-key form) every follower holds shared: "OSPP", 1.
const FOLLOWER_LOCK: (i32, i32) = (0x4F53_5050, 1);
/// The longest payload PostgreSQL notifies.
const MAX_PAYLOAD: usize = 7999;

/// The catalogs a server holds.
#[derive(Clone)]
pub struct Catalogs {
    pub vocabulary: Arc<Vocabularies>,
    pub extensions: Arc<Extensions>,
}

/// Both catalogs as of one snapshot, and that snapshot (`pg_current_snapshot()`).
pub async fn load(pool: &PgPool) -> sqlx::Result<(Catalog, ExtensionCatalog, String)> {
    let mut tx = begin(pool).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
        .fetch_one(&mut *tx)
        .await?;
    let vocabulary = Catalog::load(&mut tx).await?;
    let extensions = ExtensionCatalog::load(&mut tx).await?;
    tx.commit().await?;
    Ok((vocabulary, extensions, snapshot))
}

impl Catalogs {
    pub async fn load(pool: &PgPool) -> sqlx::Result<Self> {
        let (vocabulary, extensions, _) = load(pool).await?;
        Ok(Self {
            vocabulary: Arc::new(Vocabularies::new(vocabulary)),
            extensions: Arc::new(Extensions::new(extensions)),
        })
    }

    async fn reload(&self, pool: &PgPool) -> sqlx::Result<String> {
        let (vocabulary, extensions, snapshot) = load(pool).await?;
        self.vocabulary.replace(vocabulary);
        self.extensions.replace(extensions);
        Ok(snapshot)
    }
}

/// Runs for the life of the server: reloads the catalogs on every change, reconnecting when
/// the connection is lost (and reloading then, for what it may have missed).
pub async fn follow(pool: PgPool, catalogs: Catalogs) {
    loop {
        if let Err(error) = follow_connected(&pool, &catalogs).await {
            tracing::warn!(%error, "following vocabulary and extension changes; reconnecting");
        }
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow_connected(pool: &PgPool, catalogs: &Catalogs) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGED_CHANNEL).await?;
    sqlx::query("SELECT pg_advisory_lock_shared($1, $2)")
        .bind(FOLLOWER_LOCK.0)
        .bind(FOLLOWER_LOCK.1)
        .execute(&mut listener)
        .await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    loop {
        let snapshot = catalogs.reload(pool).await?;
        let payload = format!("{pid}:{snapshot}");
        if payload.len() <= MAX_PAYLOAD {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(LOADED_CHANNEL)
                .bind(payload)
                .execute(pool)
                .await?;
        } else {
            tracing::warn!("snapshot too long to confirm a catalog reload");
        }
        // `None`: the connection was lost; reconnect (and so re-take the lock).
        if listener.try_recv().await?.is_none() {
            return Ok(());
        }
        // One reload covers every change already notified.
        while listener.next_buffered().is_some() {}
    }
}

/// How far a committed change has reached.
#[derive(Debug, Serialize)]
pub struct Reach {
    /// Server processes following changes when the change committed.
    pub running: usize,
    /// Those that confirmed they serve it.
    pub confirmed: usize,
}

/// Listens for servers' reloads; open it before committing the change it is to confirm.
pub async fn confirmations(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(LOADED_CHANNEL).await?;
    Ok(listener)
}

/// Waits until every following server has loaded a snapshot that includes transaction `tx_id`
/// (or `timeout` passes).
pub async fn await_servers(
    pool: &PgPool,
    listener: &mut PgListener,
    tx_id: i64,
    timeout: Duration,
) -> sqlx::Result<Reach> {
    let followers: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2",
    )
    .bind(i64::from(FOLLOWER_LOCK.0))
    .bind(i64::from(FOLLOWER_LOCK.1))
    .fetch_all(pool)
    .await?;
    let mut pending: HashSet<i32> = followers.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + timeout;
    while !pending.is_empty() {
        let Ok(notification) = tokio::time::timeout_at(deadline, listener.recv()).await else {
            break;
        };
        let notification = notification?;
        let Some((pid, snapshot)) = notification.payload().split_once(':') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if !pending.contains(&pid) {
            continue;
        }
        let visible: bool = sqlx::query_scalar(
            "SELECT pg_visible_in_snapshot($1::text::xid8, $2::text::pg_snapshot)",
        )
        .bind(tx_id.to_string())
        .bind(snapshot)
        .fetch_one(pool)
        .await?;
        if visible {
            pending.remove(&pid);
        }
    }
    Ok(Reach {
        running: followers.len(),
        confirmed: followers.len() - pending.len(),
    })
}
