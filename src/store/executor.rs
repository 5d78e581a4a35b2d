//! The command path: load → decide → one append statement → the committed state.

use std::time::Duration;

use rand::Rng;
use sqlx::PgPool;

use openspp_projections::lane::Lane;
use openspp_projections::Fold;

use openspp_aggregates::DomainError;

use super::batch::{Batch, Committed};
use super::error::StoreError;
use super::group::{Group, Handed};
use super::metadata::CommandMetadata;
use super::signal::FeedSignal;
use super::Stored;

#[derive(Clone)]
pub struct EventStore {
    pub(crate) pool: PgPool,
    /// Connections for single statements, handed back without sqlx's ping (`lane.rs`): the
    /// appends, and the reads of the request path.
    lane: Lane,
    /// Conflicts retried (with a fresh load) when the writer sent no `If-Match`.
    max_retries: u32,
    pub(crate) signal: FeedSignal,
    /// Where single writes are appended together (`group.rs`).
    group: Group,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            signal: FeedSignal::new(pool.clone()),
            lane: Lane::new(pool.clone()),
            pool,
            max_retries: 8,
            group: Group::default(),
        }
    }

    /// This store with a group of its own, never started: what the group's writers append with.
    pub(crate) fn without_group(&self) -> Self {
        Self {
            group: Group::default(),
            ..self.clone()
        }
    }

    /// Connections for single statements on the request path (`lane.rs`).
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// The stream folded from the log: its state, version, stamps and last hash.
    pub async fn load<A: Stored>(
        &self,
        aggregate_id: &str,
    ) -> Result<Fold<A>, StoreError<A::Error>> {
        let events = openspp_projections::events::stream(&self.pool, A::TYPE, aggregate_id).await?;
        Fold::of(&events).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The streams `aggregate_ids` folded from the log, read in one round trip; a stream with
    /// no event is not in the answer.
    pub async fn load_many<A: Stored>(
        &self,
        aggregate_ids: &[String],
    ) -> Result<Vec<(String, Fold<A>)>, StoreError<A::Error>> {
        let events =
            openspp_projections::events::streams(&self.pool, A::TYPE, aggregate_ids).await?;
        events
            .chunk_by(|a, b| a.aggregate_id == b.aggregate_id)
            .map(|stream| {
                Fold::of(stream)
                    .map(|fold| (stream[0].aggregate_id.clone(), fold))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// A batch: commands on any streams, committed together (see `batch.rs`).
    pub fn batch<E: std::error::Error + Send + 'static>(&self) -> Batch<E> {
        Batch::new(self.clone())
    }

    /// Runs `command` against the stream and appends what it decides, with every read model
    /// and index it changes, in one statement: once this returns `Ok`, every read model of
    /// every process reflects the write. The statement may carry other writes decided at the
    /// same time (`group.rs`); the answer is the one this write would have had alone.
    ///
    /// With `expected_version` (from `If-Match`) a stale version fails with
    /// `PreconditionFailed` and nothing is retried: the writer asked for that version only.
    /// Without it, a lost race is retried on a fresh load, because the writer asked for "the
    /// latest", and the aggregate re-checks every invariant on that latest state.
    pub async fn execute<A: Stored<Error = DomainError>>(
        &self,
        aggregate_id: &str,
        expected_version: Option<u64>,
        command: A::Command,
        services: &A::Services,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, StoreError<DomainError>> {
        let mut batch = self.batch::<DomainError>();
        // Once a group it was in failed, the write is committed on its own.
        let mut alone = false;
        loop {
            batch
                .decide::<A>(
                    aggregate_id,
                    expected_version,
                    command.clone(),
                    services,
                    metadata,
                )
                .await?;
            let committed = if alone {
                batch.commit().await
            } else {
                match self.group.commit(self, batch).await {
                    Handed::Written(handed, written) => {
                        batch = handed;
                        batch.settled(written).await
                    }
                    Handed::Alone(handed) => {
                        batch = handed;
                        alone = true;
                        continue;
                    }
                    Handed::Unknown => return Err(StoreError::OutcomeUnknown),
                }
            };
            match committed {
                Err(StoreError::Conflict) if batch.attempts() <= self.max_retries => {
                    let attempt = batch.attempts() as u64;
                    let backoff = rand::thread_rng().gen_range(1..=5 * attempt);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(error) => return Err(error),
                Ok(mut receipt) => {
                    return receipt.take::<A>(aggregate_id).ok_or_else(|| {
                        StoreError::Corrupt("the batch lost the stream it wrote".to_owned())
                    })
                }
            }
        }
    }
}
