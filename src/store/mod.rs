//! The write side: load a stream, let the aggregate decide, and append its events in ONE
//! statement with everything kept with them: identifier claims, hash chain, the consent and
//! membership indexes, and every read model row the write changes (so a write is read back
//! by anyone, in any process, as soon as it is acknowledged). Then wake the feed's followers.
//!
//! cqrs-es supplies the `Aggregate`/`EventSink` contract; this module owns the append because
//! postgres-es offers no hook into its transaction (stack.md §2.10) and has no global
//! position, expected version or retry.

mod batch;
pub mod claims;
mod error;
mod executor;
mod group;
pub mod hash_chain;
pub mod history;
pub mod metadata;
mod signal;
pub mod transaction;
pub mod verify;

pub use batch::{Batch, Committed, ImportProgress, Receipt};
pub use error::StoreError;
pub use executor::EventStore;
pub use metadata::CommandMetadata;
pub use openspp_projections::EVENTS_CHANNEL;
pub use transaction::Transaction;

use cqrs_es::Aggregate;
use openspp_aggregates::entitlement::CycleFacts;
use openspp_aggregates::{
    Consent, ConsentCommand, Cycle, CycleCommand, Entitlement, EntitlementCommand, Group,
    GroupCommand, Individual, IndividualCommand, InlineIndex, MembershipCommand, MembershipStatus,
    Program, ProgramCommand, ProgramMembership,
};
use openspp_projections::rows::ReadModel;

/// An aggregate the store can keep: its events say what they change in the inline indexes,
/// its state says what its read models show, and its commands say whether they start a stream.
pub trait Stored:
    ReadModel + Aggregate<Event: InlineIndex, Command: Clone + Send + Sync> + Clone + 'static
{
    /// Whether `command` starts a stream (a registration, a creation). The store then decides
    /// it on the empty state without reading the stream, and reads the stream after all only if
    /// the state refuses it or the stream turns out to exist: the answer is the same either way,
    /// the common case costs one read less.
    fn starts_stream(command: &Self::Command) -> bool;

    /// The statuses of other streams' read-model rows `command` was decided on (an
    /// entitlement's cycle, its beneficiary's enrolment): the append holds each until it
    /// commits, and fails with `StoreError::FactChanged` if one no longer holds (see
    /// `HeldStatus`). None by default.
    fn relies_on(_command: &Self::Command) -> Vec<HeldStatus> {
        Vec::new()
    }
}

/// A read-model row's status a command was decided on: the append that writes its events holds
/// the row, in that status, until they commit (`hold_status`, migration 0180), so a concurrent
/// change of the row waits for the write or is seen by it, and the write is then refused with
/// `StoreError::FactChanged`, writing nothing; deciding again on what now holds gives the answer
/// a request after that change gets. A row of a stream the same batch writes is not held: the
/// batch's own append of that stream already fails if another writer moved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStatus {
    /// `Cycle` or `ProgramMembership`: the read models `hold_status` knows.
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// The status as the read model writes it (`draft`, `enrolled` …); for
    /// `CycleEntitlements`, what `cycle_entitlements` saw (see `HeldStatus::entitlements_of`).
    pub status: std::borrow::Cow<'static, str>,
}

impl HeldStatus {
    /// The cycle in the state an entitlement command saw it in.
    fn of_cycle(cycle: &CycleFacts) -> Self {
        Self {
            aggregate_type: Cycle::TYPE,
            aggregate_id: cycle.stream.clone(),
            status: cycle.state.as_str().into(),
        }
    }

    /// The entitlements of cycle `stream` as a write saw them (`seen`: their number and the sum
    /// of their versions, `openspp_projections::delivery::CycleEntitlements`): a cycle's change
    /// moves its entitlements with it, so none may be added or changed between the read and the
    /// commit (migration 0210 holds the cycle's row against the writers that rely on it, then
    /// counts).
    pub fn entitlements_of(stream: &str, seen: String) -> Self {
        Self {
            aggregate_type: "CycleEntitlements",
            aggregate_id: stream.to_owned(),
            status: seen.into(),
        }
    }
}

impl Stored for Individual {
    fn starts_stream(command: &IndividualCommand) -> bool {
        matches!(command, IndividualCommand::Register(_))
    }
}

impl Stored for Group {
    fn starts_stream(command: &GroupCommand) -> bool {
        matches!(command, GroupCommand::Register(_))
    }
}

impl Stored for Program {
    fn starts_stream(command: &ProgramCommand) -> bool {
        matches!(command, ProgramCommand::Create(_))
    }
}

impl Stored for ProgramMembership {
    fn starts_stream(command: &MembershipCommand) -> bool {
        matches!(command, MembershipCommand::Enrol { .. })
    }
}

/// An import or a new code may meet a vocabulary that exists or not: always read the stream.
impl Stored for openspp_aggregates::managed_vocabulary::ManagedVocabulary {
    fn starts_stream(_: &Self::Command) -> bool {
        false
    }
}

/// A registration may change an extension already registered: always read the stream.
impl Stored for openspp_aggregates::extension_registry::ExtensionRegistration {
    fn starts_stream(_: &Self::Command) -> bool {
        false
    }
}

impl Stored for Cycle {
    fn starts_stream(command: &CycleCommand) -> bool {
        matches!(command, CycleCommand::Create { .. })
    }
}

impl Stored for Entitlement {
    fn starts_stream(command: &EntitlementCommand) -> bool {
        matches!(command, EntitlementCommand::Create { .. })
    }

    /// Its cycle in the state the command saw (what may be added, approved or paid depends on
    /// it), and for a creation the beneficiary enrolled in the cycle's program.
    fn relies_on(command: &EntitlementCommand) -> Vec<HeldStatus> {
        match command {
            EntitlementCommand::Create {
                cycle,
                beneficiary,
                enrolled,
                ..
            } => {
                let mut held = vec![HeldStatus::of_cycle(cycle)];
                if *enrolled {
                    held.push(HeldStatus {
                        aggregate_type: ProgramMembership::TYPE,
                        aggregate_id: ProgramMembership::stream_id(&cycle.program, beneficiary),
                        status: MembershipStatus::Enrolled.as_str().into(),
                    });
                }
                held
            }
            EntitlementCommand::Change { cycle, .. } => vec![HeldStatus::of_cycle(cycle)],
            // Decided with the cycle's own change, in its batch (see `resource::cascade`).
            EntitlementCommand::FollowCycle { .. } => Vec::new(),
        }
    }
}

impl Stored for openspp_aggregates::service_point::ServicePoint {
    fn starts_stream(command: &Self::Command) -> bool {
        matches!(
            command,
            openspp_aggregates::service_point::ServicePointCommand::Register(_)
        )
    }
}

impl Stored for openspp_aggregates::product::Product {
    fn starts_stream(command: &Self::Command) -> bool {
        matches!(
            command,
            openspp_aggregates::product::ProductCommand::Register(_)
        )
    }
}

impl Stored for Consent {
    fn starts_stream(command: &ConsentCommand) -> bool {
        matches!(command, ConsentCommand::Give(_))
    }
}
