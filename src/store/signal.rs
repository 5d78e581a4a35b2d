//! Telling the feed's followers that appends committed, without making appends wait for it.
//!
//! A `NOTIFY` inside the append would serialise commits: PostgreSQL takes one cluster-wide lock
//! for a notifying transaction's commit and holds it through the WAL flush, so notifying
//! appends flush one at a time and lose group commit. Appends therefore only poke this signal
//! after they commit; one task per process sends a single `NOTIFY` for every poke since its
//! last one, in a statement of its own, at most one every `SPACING` (so a write load costs a
//! notification per 10 ms, not one per append). A process that dies between a commit and that
//! notification costs the followers their idle re-check interval, never an event: the feed
//! itself is the truth, the notification only a wake-up.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

use super::EVENTS_CHANNEL;

/// The shortest time between two notifications from one process: what a follower may wait
/// beyond a commit to hear of it, and what bounds the notifications a write load causes.
const SPACING: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub(crate) struct FeedSignal {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    poked: Notify,
    sender: OnceLock<()>,
}

impl FeedSignal {
    pub fn new(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                poked: Notify::new(),
                sender: OnceLock::new(),
            }),
        }
    }

    /// Appends committed: a notification will follow (shared with any other pokes meanwhile).
    pub fn poke(&self) {
        self.inner.sender.get_or_init(|| {
            tokio::spawn(send(self.inner.clone()));
        });
        self.inner.poked.notify_one();
    }
}

async fn send(inner: Arc<Inner>) {
    loop {
        // A poke while the previous notification was being sent leaves a permit: it is not lost.
        inner.poked.notified().await;
        if inner.pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(EVENTS_CHANNEL)
            .execute(&inner.pool)
            .await
        {
            tracing::warn!(%error, "cannot notify the feed's followers; they will look by themselves");
        }
        tokio::time::sleep(SPACING).await;
    }
}
