//! An open transaction: several operations decide their commands into ONE [`Batch`], which is
//! committed once, all or nothing (a `$batch` transaction bundle, CONTRACT §10).
//!
//! The operations reach it through a task-local rather than a parameter, so that every entry
//! of a bundle runs exactly the code a lone request runs: the write path decides into the
//! batch instead of committing, and resolving an identifier finds a registrant an earlier
//! entry created (it exists only in the batch until the commit).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use openspp_aggregates::{DomainError, Identifier};
use tokio::sync::Mutex;

use super::batch::{Batch, Receipt};
use super::error::StoreError;
use super::executor::EventStore;
use super::metadata::CommandMetadata;
use super::Stored;

tokio::task_local! {
    static OPEN: Transaction;
}

/// A batch shared by the operations run inside [`Transaction::run`].
#[derive(Clone)]
pub struct Transaction(Arc<Mutex<Inner>>);

struct Inner {
    batch: Batch<DomainError>,
    /// Identifiers of streams created in this transaction, by `{type}/{system}|{value}`:
    /// found by [`created`] before the commit makes them claims.
    created: HashMap<String, String>,
    /// How many commands were decided (a transaction that decided none commits nothing).
    decided: usize,
}

impl Transaction {
    pub fn new(store: &EventStore) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            batch: store.batch(),
            created: HashMap::new(),
            decided: 0,
        })))
    }

    /// Runs `operation` with this transaction open: its writes are decided into the batch.
    pub async fn run<F: Future>(&self, operation: F) -> F::Output {
        OPEN.scope(self.clone(), operation).await
    }

    /// Decides `command` on stream `aggregate_id` in the batch; answers the stream's state and
    /// version after it. `identifiers` names the stream's identifiers (`system|value`) after it,
    /// by which later operations of the transaction find it.
    pub async fn decide<A: Stored<Error = DomainError>>(
        &self,
        aggregate_id: &str,
        expected_version: Option<u64>,
        command: A::Command,
        services: &A::Services,
        metadata: &CommandMetadata,
        identifiers: impl Fn(&A) -> Vec<String>,
    ) -> Result<(A, u64), StoreError<DomainError>> {
        let mut inner = self.0.lock().await;
        inner
            .batch
            .decide::<A>(aggregate_id, expected_version, command, services, metadata)
            .await?;
        inner.decided += 1;
        let (state, version) = inner
            .batch
            .pending::<A>(aggregate_id)
            .ok_or_else(|| StoreError::Corrupt("the batch lost the stream it decided".into()))?;
        for key in identifiers(&state) {
            inner
                .created
                .insert(format!("{}/{key}", A::TYPE), aggregate_id.to_owned());
        }
        Ok((state, version))
    }

    /// The state of stream `aggregate_id` as the transaction now has it (read from the log the
    /// first time), for an operation whose commands depend on another stream's state (a
    /// household merge); see `Batch::state`.
    pub async fn state<A: Stored<Error = DomainError>>(
        &self,
        aggregate_id: &str,
    ) -> Result<A, StoreError<DomainError>> {
        self.0.lock().await.batch.state::<A>(aggregate_id).await
    }

    /// Reads the streams `aggregate_ids` not yet in the transaction's batch in one round trip
    /// (see `Batch::open_many`).
    pub async fn open_many<A: Stored<Error = DomainError>>(
        &self,
        aggregate_ids: &[String],
    ) -> Result<(), StoreError<DomainError>> {
        self.0
            .lock()
            .await
            .batch
            .open_many::<A>(aggregate_ids)
            .await
    }

    /// Holds `held` until the transaction commits (see `Batch::hold`).
    pub async fn hold(&self, held: super::HeldStatus) {
        self.0.lock().await.batch.hold(held);
    }

    /// How many commands were decided so far: a refused command decides none, so an operation
    /// that changed this and then failed left part of its writes in the batch.
    pub async fn decisions(&self) -> usize {
        self.0.lock().await.decided
    }

    /// Records the part of an imported file the commit loads, with its events.
    pub async fn record_progress(&self, progress: super::ImportProgress) {
        self.0.lock().await.batch.record_progress(progress);
    }

    /// Commits everything decided, in one statement. On `Conflict` the decisions are
    /// forgotten: the caller runs the operations again (in a fresh transaction).
    pub async fn commit(&self) -> Result<Option<Receipt>, StoreError<DomainError>> {
        let mut inner = self.0.lock().await;
        if inner.decided == 0 && !inner.batch.has_progress() {
            return Ok(None);
        }
        inner.batch.commit().await.map(Some)
    }

    /// The stream of type `A` created in this transaction holding `identifier`, with its state
    /// and version as decided so far.
    pub async fn pending<A: Stored<Error = DomainError>>(
        &self,
        identifier: &Identifier,
    ) -> Option<(String, A, u64)> {
        let mut inner = self.0.lock().await;
        let stream = inner
            .created
            .get(&format!("{}/{}", A::TYPE, identifier.key()))?
            .clone();
        let (state, version) = inner.batch.pending::<A>(&stream)?;
        Some((stream, state, version))
    }

    /// Stream `aggregate_id` of type `A` as this transaction has decided it, if it touched it.
    pub async fn decided<A: Stored<Error = DomainError>>(
        &self,
        aggregate_id: &str,
    ) -> Option<(A, u64)> {
        self.0.lock().await.batch.pending::<A>(aggregate_id)
    }

    /// Which stream created in this transaction holds `identifier`, if any.
    pub async fn holder(&self, aggregate_type: &str, identifier: &Identifier) -> Option<String> {
        let inner = self.0.lock().await;
        inner
            .created
            .get(&format!("{aggregate_type}/{}", identifier.key()))
            .cloned()
    }
}

/// The transaction the current task runs in, if any.
pub fn current() -> Option<Transaction> {
    OPEN.try_with(Transaction::clone).ok()
}

/// The stream of `aggregate_type` an earlier operation of the open transaction created with
/// `identifier`, if the task runs in one.
pub async fn created(aggregate_type: &str, identifier: &Identifier) -> Option<String> {
    current()?.holder(aggregate_type, identifier).await
}

/// The stream of type `A` an earlier operation of the open transaction created with
/// `identifier`, as the transaction has it now (see [`Transaction::pending`]).
pub async fn created_pending<A: Stored<Error = DomainError>>(
    identifier: &Identifier,
) -> Option<(String, A, u64)> {
    current()?.pending::<A>(identifier).await
}

/// Stream `aggregate_id` as the open transaction has decided it, if the task runs in one that
/// touched it: its state before the commit makes it a read-model row.
pub async fn decided<A: Stored<Error = DomainError>>(aggregate_id: &str) -> Option<(A, u64)> {
    current()?.decided::<A>(aggregate_id).await
}
