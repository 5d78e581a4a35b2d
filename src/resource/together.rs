//! Commands on several streams of one resource, committed together: all of their events, with
//! every read model they change, in one statement, or none (a household merge changes two
//! groups; a split changes one and registers another). What each stream is told may depend on
//! another's current state, so the writes are planned from the states the batch read, and
//! planned again if another writer wins a race for one of them.

use std::time::Duration;

use openspp_aggregates::DomainError;
use rand::Rng;

use crate::error::ApiError;
use crate::resource::call::Call;
use crate::resource::traits::{Resource, Snapshot, Write};
use crate::resource::write::{decide_in, metadata, store_error};
use crate::store::transaction::{self, Transaction};
use crate::store::{CommandMetadata, StoreError};

/// Conflicts retried (with a fresh read) when no write named the version it expected.
const MAX_RETRIES: u32 = 8;

/// Reads the current states of `read` (streams), lets `plan` turn them into writes, and
/// commits those writes together; answers with each written stream as it now is, in the order
/// of the writes. Every stream in `read` must be written by the plan (see `Batch::state`).
/// `collection_method` replaces the request's own (a merge is recorded as `merge`).
///
/// A write naming a version (`If-Match`) that is stale fails the whole with 412; a refusal of
/// any command fails it with that refusal; nothing is written either way.
pub async fn execute_together<R: Resource>(
    call: &Call,
    read: &[&str],
    collection_method: Option<&str>,
    plan: impl Fn(Vec<R>) -> Result<Vec<Write<R>>, ApiError>,
) -> Result<Vec<Snapshot<R>>, ApiError> {
    if let Some(transaction) = transaction::current() {
        return within(&transaction, call, read, collection_method, plan).await;
    }
    let state = &call.state;
    let mut batch = state.store.batch::<DomainError>();
    loop {
        let mut states = Vec::with_capacity(read.len());
        for stream in read {
            states.push(
                batch
                    .state::<R>(stream)
                    .await
                    .map_err(|e| store_error(e, R::TYPE))?,
            );
        }
        let writes = plan(states)?;
        let mut streams = Vec::with_capacity(writes.len());
        for write in writes {
            let metadata = recorded_as(call, &write, collection_method);
            let expected = write.if_match.version_of(R::RENDERS_OTHERS)?;
            batch
                .decide::<R>(
                    &write.stream,
                    expected,
                    write.command,
                    &state.services,
                    &metadata,
                )
                .await
                .map_err(|e| store_error(e, R::TYPE))?;
            streams.push(write.stream);
        }
        match batch.commit().await {
            Err(StoreError::Conflict) if batch.attempts() <= MAX_RETRIES => {
                let attempt = u64::from(batch.attempts());
                let backoff = rand::thread_rng().gen_range(1..=5 * attempt);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            Err(error) => return Err(store_error(error, R::TYPE)),
            Ok(mut receipt) => {
                return streams
                    .iter()
                    .map(|stream| {
                        receipt.take::<R>(stream).map(Into::into).ok_or_else(|| {
                            tracing::error!("a batch lost a stream it wrote");
                            ApiError::internal()
                        })
                    })
                    .collect();
            }
        }
    }
}

/// `execute_together` inside a `$batch` transaction: the states are read through, and the
/// writes decided into, the transaction's one batch, so the operation commits (or is retried)
/// with every other entry of the Bundle.
async fn within<R: Resource>(
    transaction: &Transaction,
    call: &Call,
    read: &[&str],
    collection_method: Option<&str>,
    plan: impl Fn(Vec<R>) -> Result<Vec<Write<R>>, ApiError>,
) -> Result<Vec<Snapshot<R>>, ApiError> {
    let mut states = Vec::with_capacity(read.len());
    for stream in read {
        states.push(
            transaction
                .state::<R>(stream)
                .await
                .map_err(|e| store_error(e, R::TYPE))?,
        );
    }
    let mut snapshots = Vec::new();
    for write in plan(states)? {
        let metadata = recorded_as(call, &write, collection_method);
        let expected = write.if_match.version_of(R::RENDERS_OTHERS)?;
        let snapshot = decide_in(
            transaction,
            call,
            &write.stream,
            expected,
            write.command,
            &metadata,
        )
        .await
        .map_err(|e| store_error(e, R::TYPE))?;
        snapshots.push(snapshot);
    }
    Ok(snapshots)
}

/// The provenance of one of the writes: `collection_method` replaces the request's own.
fn recorded_as<R: Resource>(
    call: &Call,
    write: &Write<R>,
    collection_method: Option<&str>,
) -> CommandMetadata {
    let mut metadata = metadata(call, &write.consent);
    if let Some(method) = collection_method {
        method.clone_into(&mut metadata.collection_method);
    }
    metadata
}
