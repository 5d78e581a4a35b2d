//! A program's cycle: one round of delivery, with its period and OpenSPP's approval states
//! (`spp.cycle`). A program's cycles follow one another: each is numbered after the last and
//! starts after it ends. The stream id is derived from (program, sequence), so two cycles
//! created at once for the same place in the sequence race for one stream and one loses.
//! A cycle is named (OpenSPP addresses it as `Cycle/{name}`); the name is claimed as an
//! identifier, so it names one cycle only.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::DomainError;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::program_membership::ProgramFacts;
use crate::services::RegistryServices;
use crate::transition;
use crate::values::Identifier;

/// The system of the identifier a cycle's name is claimed under.
pub const NAME_SYSTEM: &str = "urn:openspp:cycle";
/// Namespace of the cycle stream ids derived from (program, sequence).
const STREAM_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f70_656e_7370_702d_6379_636c_6573_3031);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleState {
    Draft,
    ToApprove,
    Approved,
    Distributed,
    Cancelled,
    Ended,
}

crate::wire_names!(CycleState {
    Draft => "draft",
    ToApprove => "to_approve",
    Approved => "approved",
    Distributed => "distributed",
    Cancelled => "cancelled",
    Ended => "ended",
});

impl CycleState {
    /// Where a cycle may go from here (OpenSPP's cycle manager): submitted from draft; approved,
    /// rejected (cancelled) or reset from to_approve; an approved cycle is distributed, ended or
    /// cancelled; a cancelled one may be reset to draft; a distributed one ends.
    pub fn next(self) -> &'static [Self] {
        use CycleState::*;
        match self {
            Draft => &[ToApprove],
            ToApprove => &[Approved, Cancelled, Draft],
            Approved => &[Distributed, Ended, Cancelled],
            Distributed => &[Ended],
            Cancelled => &[Draft],
            Ended => &[],
        }
    }

    /// Whether entitlements of a cycle in this state may be approved (the cycle is under
    /// approval or approved).
    pub fn approves_entitlements(self) -> bool {
        matches!(self, Self::ToApprove | Self::Approved)
    }

    /// Whether entitlements of a cycle in this state may be paid out.
    pub fn pays(self) -> bool {
        matches!(self, Self::Approved | Self::Distributed)
    }
}

/// The program's latest cycle, which a new one follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousCycle {
    pub name: String,
    pub sequence: u32,
    pub end_date: NaiveDate,
}

/// What a body says a cycle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleDetails {
    pub name: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// `None`: the next in the program's sequence.
    pub sequence: Option<u32>,
    pub state: CycleState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CycleCommand {
    Create {
        program: ProgramFacts,
        previous: Option<PreviousCycle>,
        details: CycleDetails,
    },
    /// A state change (the rest of the body restates the cycle, which never changes).
    Change {
        details: CycleDetails,
        /// The program stream the body names (`None`: no known program).
        program: Option<String>,
        /// How many entitlements the cycle has: a cycle is submitted with its entitlements.
        entitlements: u64,
        /// The client approving, recorded as `approvedBy`.
        client: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CycleEvent {
    CycleCreated {
        /// The name, claimed in [`NAME_SYSTEM`].
        identifier: Identifier,
        program: String,
        sequence: u32,
        start_date: NaiveDate,
        end_date: NaiveDate,
        previous: Option<String>,
    },
    CycleStateChanged {
        from: CycleState,
        to: CycleState,
        /// Set by the approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_date: Option<NaiveDate>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_by: Option<String>,
    },
}

impl DomainEvent for CycleEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CycleCreated { .. } => "CycleCreated",
            Self::CycleStateChanged { .. } => "CycleStateChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for CycleEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        match self {
            Self::CycleCreated { identifier, .. } => {
                Some(IndexChange::IdentifierClaimed(identifier))
            }
            Self::CycleStateChanged { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cycle {
    pub name: String,
    /// The program's stream.
    pub program: String,
    pub sequence: u32,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// The name of the cycle this one follows.
    pub previous: Option<String>,
    pub state: Option<CycleState>,
    pub approved_date: Option<NaiveDate>,
    pub approved_by: Option<String>,
    pub version: u64,
}

/// The identifier a cycle's name is claimed as (and looked up by).
pub fn name_identifier(name: &str) -> Identifier {
    Identifier {
        system: NAME_SYSTEM.to_owned(),
        value: name.to_owned(),
    }
}

impl Cycle {
    /// The stream of the cycle numbered `sequence` in `program` (a stream).
    pub fn stream_id(program: &str, sequence: u32) -> String {
        uuid::Uuid::new_v5(
            &STREAM_NAMESPACE,
            format!("{program}/{sequence}").as_bytes(),
        )
        .to_string()
    }

    /// The sequence number a cycle after `previous` takes.
    pub fn next_sequence(previous: Option<&PreviousCycle>) -> u32 {
        previous.map_or(1, |p| p.sequence + 1)
    }

    /// A change may restate the cycle, never change it.
    fn check_restated(
        &self,
        details: &CycleDetails,
        program: Option<&String>,
    ) -> Result<(), DomainError> {
        let fixed = |field: &str| {
            Err(DomainError::invalid(
                field,
                "a cycle's name, program, sequence and period never change",
            ))
        };
        if details.name.trim() != self.name {
            return fixed("name");
        }
        if program != Some(&self.program) {
            return fixed("program");
        }
        if details.sequence.is_some_and(|s| s != self.sequence) {
            return fixed("sequence");
        }
        if Some(details.start_date) != self.start_date {
            return fixed("period.start");
        }
        if Some(details.end_date) != self.end_date {
            return fixed("period.end");
        }
        Ok(())
    }
}

fn validate(details: &CycleDetails) -> Result<(), DomainError> {
    if details.name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    bounds::text("name", &details.name, bounds::SHORT_TEXT)?;
    bounds::date("period.start", details.start_date)?;
    bounds::date("period.end", details.end_date)?;
    if details.end_date < details.start_date {
        return Err(DomainError::invalid(
            "period.end",
            "must not be before period.start",
        ));
    }
    Ok(())
}

impl Aggregate for Cycle {
    const TYPE: &'static str = "Cycle";
    type Command = CycleCommand;
    type Event = CycleEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            CycleCommand::Create {
                program,
                previous,
                details,
            } => {
                if self.state.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                validate(&details)?;
                let sequence = Cycle::next_sequence(previous.as_ref());
                if details.sequence.is_some_and(|given| given != sequence) {
                    return Err(DomainError::invalid(
                        "sequence",
                        format!("the program's next cycle is number {sequence}"),
                    ));
                }
                if details.state != CycleState::Draft {
                    return Err(DomainError::invalid(
                        "state",
                        "a new cycle is draft; change its state afterwards",
                    ));
                }
                if !program.active {
                    return Err(DomainError::conflict(
                        Some("program"),
                        "the program is not active",
                    ));
                }
                if let Some(previous) = previous
                    .as_ref()
                    .filter(|p| details.start_date <= p.end_date)
                {
                    return Err(DomainError::invalid(
                        "period.start",
                        format!(
                            "must be after the end of the program's previous cycle {} ({})",
                            previous.name, previous.end_date
                        ),
                    ));
                }
                CycleEvent::CycleCreated {
                    identifier: name_identifier(details.name.trim()),
                    program: program.stream,
                    sequence,
                    start_date: details.start_date,
                    end_date: details.end_date,
                    previous: previous.map(|p| p.name),
                }
            }
            CycleCommand::Change {
                details,
                program,
                entitlements,
                client,
            } => {
                let from = self.state.ok_or_else(|| DomainError::not_found("Cycle"))?;
                self.check_restated(&details, program.as_ref())?;
                let to = details.state;
                transition::check("cycle", "state", from, to, from.next(), CycleState::as_str)?;
                if from == to {
                    return Ok(());
                }
                if to == CycleState::ToApprove && entitlements == 0 {
                    return Err(DomainError::conflict(
                        Some("state"),
                        "a cycle is submitted for approval with its entitlements; it has none",
                    ));
                }
                let approving = to == CycleState::Approved;
                CycleEvent::CycleStateChanged {
                    from,
                    to,
                    approved_date: approving.then(|| services.clock.today()),
                    approved_by: approving.then_some(client),
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            CycleEvent::CycleCreated {
                identifier,
                program,
                sequence,
                start_date,
                end_date,
                previous,
            } => {
                self.name = identifier.value;
                self.program = program;
                self.sequence = sequence;
                self.start_date = Some(start_date);
                self.end_date = Some(end_date);
                self.previous = previous;
                self.state = Some(CycleState::Draft);
            }
            CycleEvent::CycleStateChanged {
                to,
                approved_date,
                approved_by,
                ..
            } => {
                self.state = Some(to);
                if approved_date.is_some() {
                    self.approved_date = approved_date;
                    self.approved_by = approved_by;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{date, services, today};
    use crate::vocabulary::TargetType;

    fn program(active: bool) -> ProgramFacts {
        ProgramFacts {
            stream: "program-1".into(),
            target_type: TargetType::Individual,
            active,
        }
    }

    fn details(state: CycleState) -> CycleDetails {
        CycleDetails {
            name: "4Ps-2024-Q1".into(),
            start_date: date(2024, 1, 1),
            end_date: date(2024, 3, 31),
            sequence: None,
            state,
        }
    }

    fn create(previous: Option<PreviousCycle>, details: CycleDetails) -> CycleCommand {
        CycleCommand::Create {
            program: program(true),
            previous,
            details,
        }
    }

    fn created() -> CycleEvent {
        CycleEvent::CycleCreated {
            identifier: name_identifier("4Ps-2024-Q1"),
            program: "program-1".into(),
            sequence: 1,
            start_date: date(2024, 1, 1),
            end_date: date(2024, 3, 31),
            previous: None,
        }
    }

    fn moved(from: CycleState, to: CycleState) -> CycleEvent {
        CycleEvent::CycleStateChanged {
            from,
            to,
            approved_date: None,
            approved_by: None,
        }
    }

    fn change(state: CycleState, entitlements: u64) -> CycleCommand {
        CycleCommand::Change {
            details: details(state),
            program: Some("program-1".into()),
            entitlements,
            client: "client_ops".into(),
        }
    }

    async fn run(
        given: Vec<CycleEvent>,
        command: CycleCommand,
    ) -> Result<Vec<CycleEvent>, DomainError> {
        TestFramework::<Cycle>::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    const FIXED: &str = "a cycle's name, program, sequence and period never change";

    #[tokio::test]
    async fn a_first_cycle_is_number_one_and_draft() {
        assert_eq!(
            run(vec![], create(None, details(CycleState::Draft))).await,
            Ok(vec![created()])
        );
    }

    #[tokio::test]
    async fn a_cycle_follows_the_previous_one() {
        let previous = PreviousCycle {
            name: "4Ps-2023-Q4".into(),
            sequence: 4,
            end_date: date(2023, 12, 31),
        };
        let command = create(Some(previous.clone()), details(CycleState::Draft));
        assert_eq!(
            run(vec![], command).await,
            Ok(vec![CycleEvent::CycleCreated {
                identifier: name_identifier("4Ps-2024-Q1"),
                program: "program-1".into(),
                sequence: 5,
                start_date: date(2024, 1, 1),
                end_date: date(2024, 3, 31),
                previous: Some("4Ps-2023-Q4".into()),
            }])
        );
        let overlapping = PreviousCycle {
            end_date: date(2024, 1, 1),
            ..previous
        };
        assert_eq!(
            run(
                vec![],
                create(Some(overlapping), details(CycleState::Draft))
            )
            .await,
            Err(DomainError::invalid(
                "period.start",
                "must be after the end of the program's previous cycle 4Ps-2023-Q4 (2024-01-01)",
            ))
        );
    }

    #[tokio::test]
    async fn a_new_cycle_is_refused_out_of_sequence_state_or_period_or_program() {
        let mut wrong = details(CycleState::Draft);
        wrong.sequence = Some(2);
        assert_eq!(
            run(vec![], create(None, wrong)).await,
            Err(DomainError::invalid(
                "sequence",
                "the program's next cycle is number 1"
            ))
        );
        assert_eq!(
            run(vec![], create(None, details(CycleState::Approved))).await,
            Err(DomainError::invalid(
                "state",
                "a new cycle is draft; change its state afterwards"
            ))
        );
        let mut backwards = details(CycleState::Draft);
        backwards.end_date = date(2023, 12, 1);
        assert_eq!(
            run(vec![], create(None, backwards)).await,
            Err(DomainError::invalid(
                "period.end",
                "must not be before period.start"
            ))
        );
        let inactive = CycleCommand::Create {
            program: program(false),
            previous: None,
            details: details(CycleState::Draft),
        };
        assert_eq!(
            run(vec![], inactive).await,
            Err(DomainError::conflict(
                Some("program"),
                "the program is not active"
            ))
        );
        assert_eq!(
            run(vec![created()], create(None, details(CycleState::Draft))).await,
            Err(DomainError::AlreadyExists)
        );
    }

    #[tokio::test]
    async fn submitting_needs_entitlements_and_approval_records_who_and_when() {
        assert_eq!(
            run(vec![created()], change(CycleState::ToApprove, 0)).await,
            Err(DomainError::conflict(
                Some("state"),
                "a cycle is submitted for approval with its entitlements; it has none",
            ))
        );
        assert_eq!(
            run(vec![created()], change(CycleState::ToApprove, 3)).await,
            Ok(vec![moved(CycleState::Draft, CycleState::ToApprove)])
        );
        let submitted = vec![created(), moved(CycleState::Draft, CycleState::ToApprove)];
        assert_eq!(
            run(submitted, change(CycleState::Approved, 3)).await,
            Ok(vec![CycleEvent::CycleStateChanged {
                from: CycleState::ToApprove,
                to: CycleState::Approved,
                approved_date: Some(today()),
                approved_by: Some("client_ops".into()),
            }])
        );
    }

    #[tokio::test]
    async fn every_transition_is_allowed_or_refused_as_the_table_says() {
        for &from in CycleState::ALL {
            for &to in CycleState::ALL {
                let mut history = vec![created()];
                if from != CycleState::Draft {
                    history.push(moved(CycleState::Draft, from));
                }
                let outcome = run(history, change(to, 1)).await;
                if from == to {
                    assert_eq!(outcome, Ok(vec![]), "{from:?} → {to:?} is no change");
                } else if from.next().contains(&to) {
                    assert!(outcome.is_ok(), "{from:?} → {to:?}: {outcome:?}");
                } else {
                    let Err(DomainError::Conflict { field, message }) = outcome else {
                        panic!("{from:?} → {to:?} must be refused: {outcome:?}");
                    };
                    assert_eq!(field.as_deref(), Some("state"));
                    assert!(
                        message.starts_with(&format!(
                            "a {} cycle cannot become {}; allowed: ",
                            from.as_str(),
                            to.as_str()
                        )),
                        "{message}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_change_restates_the_cycle() {
        let mut renamed = details(CycleState::ToApprove);
        renamed.name = "other".into();
        let command = CycleCommand::Change {
            details: renamed,
            program: Some("program-1".into()),
            entitlements: 1,
            client: "c".into(),
        };
        assert_eq!(
            run(vec![created()], command).await,
            Err(DomainError::invalid("name", FIXED))
        );
        let command = CycleCommand::Change {
            details: details(CycleState::ToApprove),
            program: Some("program-2".into()),
            entitlements: 1,
            client: "c".into(),
        };
        assert_eq!(
            run(vec![created()], command).await,
            Err(DomainError::invalid("program", FIXED))
        );
    }
}
