//! A cycle's change and the moves of its entitlements that follow from it (OpenSPP's cascades:
//! a submitted cycle's draft entitlements await approval, a rejected cycle's pending cash
//! entitlements are cancelled, a cycle reset to draft resets them; see
//! `EntitlementState::with_cycle`), committed together: the cycle's event and one event on each
//! entitlement's own stream, all with the request's provenance and every read model they change
//! (the cycle's statistics among them), in one statement, or none of them.
//!
//! Which entitlements may move is read from the entitlement read model (one round trip), their
//! streams from the log (one more, however many there are), and each entitlement's aggregate
//! decides its own move. Nothing may join or change among them before the commit: the commit
//! holds what they were seen as (`HeldStatus::entitlements_of`, migration 0210) and fails,
//! writing nothing, if another writer got there first; the whole is then read and decided again
//! (as `execute_together` does after a lost race), so that writer's change is never lost.

use std::time::Duration;

use cqrs_es::Aggregate;
use openspp_aggregates::entitlement::EntitlementCommand;
use openspp_aggregates::{Cycle, CycleCommand, Entitlement, EntitlementState};
use openspp_projections::delivery;
use rand::Rng;

use crate::api::preconditions::IfMatch;
use crate::error::ApiError;
use crate::resource::call::Call;
use crate::resource::traits::{Resource, Snapshot};
use crate::resource::write::{decide_in, metadata, store_error};
use crate::store::transaction::{self, Transaction};
use crate::store::{CommandMetadata, HeldStatus, StoreError};

/// Conflicts retried (with a fresh read) before the writer is told to retry.
const MAX_RETRIES: u32 = 8;

/// Runs `command` on cycle `stream` and moves its entitlements with it, all in one commit (or
/// into the open `$batch` transaction); answers with the cycle as it now is.
pub async fn change_cycle(
    call: &Call,
    stream: &str,
    if_match: IfMatch,
    command: CycleCommand,
) -> Result<Snapshot<Cycle>, ApiError> {
    let expected = if_match.version_of(Cycle::RENDERS_OTHERS)?;
    // A cycle names no data subject: its change relies on no one's consent.
    let metadata = metadata(call, &None);
    if let Some(transaction) = transaction::current() {
        return within(&transaction, call, stream, expected, command, &metadata).await;
    }
    // A lone request: its own transaction, committed here, decided again after a lost race.
    let failed = |error| store_error(error, Cycle::TYPE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let transaction = Transaction::new(&call.state.store);
        within(
            &transaction,
            call,
            stream,
            expected,
            command.clone(),
            &metadata,
        )
        .await?;
        match transaction.commit().await {
            Err(StoreError::Conflict | StoreError::FactChanged) if attempt <= MAX_RETRIES => {
                let backoff = rand::thread_rng().gen_range(1..=5 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            Err(error) => return Err(failed(error)),
            Ok(receipt) => {
                return receipt
                    .and_then(|mut receipt| receipt.take::<Cycle>(stream))
                    .map(Into::into)
                    .ok_or_else(|| {
                        tracing::error!("a batch lost the cycle it wrote");
                        ApiError::internal()
                    });
            }
        }
    }
}

/// Decides `change_cycle` into `transaction`: a lone request's own, or a `$batch` transaction's,
/// committed (or retried) with every other entry of the Bundle.
async fn within(
    transaction: &Transaction,
    call: &Call,
    stream: &str,
    expected: Option<u64>,
    command: CycleCommand,
    metadata: &CommandMetadata,
) -> Result<Snapshot<Cycle>, ApiError> {
    let failed = |error| store_error(error, Cycle::TYPE);
    let before = transaction.state::<Cycle>(stream).await.map_err(failed)?;
    let snapshot = decide_in(transaction, call, stream, expected, command, metadata)
        .await
        .map_err(failed)?;
    if let Some(moving) = following(call, stream, &before, Some(&snapshot.state)).await? {
        transaction.hold(moving.held).await;
        transaction
            .open_many::<Entitlement>(&moving.streams)
            .await
            .map_err(failed)?;
        for entitlement in &moving.streams {
            transaction
                .decide::<Entitlement>(
                    entitlement,
                    None,
                    moving.command.clone(),
                    &call.state.services,
                    metadata,
                    |_| Vec::new(),
                )
                .await
                .map_err(|error| store_error(error, Entitlement::TYPE))?;
        }
    }
    Ok(snapshot)
}

/// The entitlements a cycle's move from `before` to `after` may move, what they were all seen
/// as, and the command each is given.
struct Following {
    streams: Vec<String>,
    held: HeldStatus,
    command: EntitlementCommand,
}

/// What follows cycle `stream` moving from `before` to `after`: `None` when it did not move, or
/// no entitlement follows such a move.
async fn following(
    call: &Call,
    stream: &str,
    before: &Cycle,
    after: Option<&Cycle>,
) -> Result<Option<Following>, ApiError> {
    let (Some(from), Some(to)) = (before.state, after.and_then(|cycle| cycle.state)) else {
        return Ok(None);
    };
    let states: Vec<&str> = EntitlementState::moved_by_cycle(from, to)
        .into_iter()
        .map(EntitlementState::as_str)
        .collect();
    if from == to || states.is_empty() {
        return Ok(None);
    }
    let seen = delivery::cycle_entitlements(&call.state.pool, stream, &states).await?;
    Ok(Some(Following {
        streams: seen.moving,
        held: HeldStatus::entitlements_of(stream, seen.seen),
        command: EntitlementCommand::FollowCycle {
            cycle: stream.to_owned(),
            from,
            to,
        },
    }))
}
