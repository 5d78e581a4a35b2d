//! Following the feed follower's checkpoint: whoever must wait until the registry's cursor has
//! passed a position (a delivery that follows the feed, a test) waits here. Writes do not:
//! the read models are written in the append itself.
//!
//! Every server process follows the checkpoint through `LISTEN` (the follower may run in
//! another process) and, while anyone waits, re-reads the table once a second, so a missed
//! notification costs at most that, never a wrong answer; nobody waiting, nothing is read.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::{FeedPosition, CHECKPOINT_CHANNEL, REGISTRY_PROJECTION};

#[derive(Clone)]
pub struct CheckpointWatch {
    pool: PgPool,
    current: watch::Receiver<FeedPosition>,
    sender: watch::Sender<FeedPosition>,
}

#[derive(Debug, thiserror::Error)]
#[error("the read models did not catch up in time")]
pub struct NotCaughtUp;

impl CheckpointWatch {
    /// Starts following the registry projector's checkpoint.
    pub async fn start(pool: PgPool) -> sqlx::Result<Self> {
        let initial = load(&pool).await?;
        let (sender, current) = watch::channel(initial);
        let watch = Self {
            pool,
            current,
            sender,
        };
        let follower = watch.clone();
        tokio::spawn(async move { follower.follow().await });
        Ok(watch)
    }

    /// Publishes a checkpoint this process has just committed.
    pub fn publish(&self, position: FeedPosition) {
        self.sender.send_if_modified(|current| {
            let newer = position > *current;
            if newer {
                *current = position;
            }
            newer
        });
    }

    pub fn current(&self) -> FeedPosition {
        *self.current.borrow()
    }

    /// A receiver that sees every move of the checkpoint (for a follower of the follower).
    pub fn subscribe(&self) -> watch::Receiver<FeedPosition> {
        self.current.clone()
    }

    /// Reads the checkpoint from the table and publishes it: what a follower does now and then
    /// in case a notification was lost.
    pub async fn refresh(&self) -> sqlx::Result<FeedPosition> {
        let stored = load(&self.pool).await?;
        self.publish(stored);
        Ok(self.current())
    }

    /// Waits until the checkpoint has passed `position`.
    pub async fn wait_for(
        &self,
        position: FeedPosition,
        timeout: Duration,
    ) -> Result<(), NotCaughtUp> {
        let mut receiver = self.current.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if *receiver.borrow_and_update() >= position {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(NotCaughtUp);
            }
            let poll = tokio::time::sleep_until(deadline.min(now + Duration::from_secs(1)));
            tokio::select! {
                _ = receiver.changed() => {}
                _ = poll => {
                    if let Ok(stored) = load(&self.pool).await {
                        self.publish(stored);
                    }
                }
            }
        }
    }

    async fn follow(self) {
        loop {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => {
                    if listener.listen(CHECKPOINT_CHANNEL).await.is_ok() {
                        while let Ok(notification) = listener.recv().await {
                            if let Some(position) = parse(notification.payload()) {
                                self.publish(position);
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "checkpoint listener cannot connect"),
            }
            if self.pool.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

pub(crate) fn format(position: FeedPosition) -> String {
    format!("{}:{}", position.tx_id, position.position)
}

fn parse(payload: &str) -> Option<FeedPosition> {
    let (tx_id, position) = payload.split_once(':')?;
    Some(FeedPosition {
        tx_id: tx_id.parse().ok()?,
        position: position.parse().ok()?,
    })
}

pub(crate) async fn load(pool: &PgPool) -> sqlx::Result<FeedPosition> {
    let (tx_id, position): (i64, i64) =
        sqlx::query_as("SELECT tx_id, position FROM projection_checkpoints WHERE name = $1")
            .bind(REGISTRY_PROJECTION)
            .fetch_one(pool)
            .await?;
    Ok(FeedPosition { tx_id, position })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_the_notification_format() {
        let p = FeedPosition {
            tx_id: 981,
            position: 12,
        };
        assert_eq!(parse(&format(p)), Some(p));
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn feed_order_is_transaction_first() {
        let early_tx_late_position = FeedPosition {
            tx_id: 10,
            position: 99,
        };
        let late_tx_early_position = FeedPosition {
            tx_id: 11,
            position: 5,
        };
        assert!(early_tx_late_position < late_tx_early_position);
    }
}
