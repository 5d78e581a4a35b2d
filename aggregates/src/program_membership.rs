//! A beneficiary's membership of a program, and its state machine. The stream id is derived
//! from (program, beneficiary) by the caller, so "one membership per beneficiary and program"
//! is the stream's own optimistic-concurrency check: of concurrent enrolments exactly one
//! creates the stream.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::consent::Access;
use crate::error::DomainError;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::program::TargetType;
use crate::services::RegistryServices;
use crate::values::{Code, Identifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    Draft,
    Enrolled,
    Paused,
    Exited,
    NotEligible,
    Duplicated,
}

impl MembershipStatus {
    pub const ALL: [Self; 6] = [
        Self::Draft,
        Self::Enrolled,
        Self::Paused,
        Self::Exited,
        Self::NotEligible,
        Self::Duplicated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Enrolled => "enrolled",
            Self::Paused => "paused",
            Self::Exited => "exited",
            Self::NotEligible => "not_eligible",
            Self::Duplicated => "duplicated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Where a membership may go from here (OpenSPP `spp.program.membership` actions): pause
    /// only from enrolled, resume only from paused, exit from enrolled or paused, back to draft
    /// only from duplicated or not eligible, never enrolled again once exited or duplicated.
    pub fn next(self) -> &'static [Self] {
        use MembershipStatus::*;
        match self {
            Draft => &[Enrolled, NotEligible, Duplicated],
            Enrolled => &[Paused, Exited, NotEligible, Duplicated],
            Paused => &[Enrolled, Exited, NotEligible, Duplicated],
            Exited => &[NotEligible],
            NotEligible => &[Draft, Enrolled],
            Duplicated => &[Draft, NotEligible],
        }
    }

    /// Statuses a membership may be recorded in.
    pub fn initial(self) -> bool {
        matches!(self, Self::Draft | Self::Enrolled | Self::NotEligible)
    }
}

/// The program as enrolment needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramFacts {
    pub stream: String,
    pub target_type: TargetType,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MembershipCommand {
    Enrol {
        program: ProgramFacts,
        beneficiary: String,
        beneficiary_type: TargetType,
        identifier: Identifier,
        status: MembershipStatus,
        /// Defaults to today when the status is `enrolled`.
        enrollment_date: Option<NaiveDate>,
        access: Access,
    },
    ChangeStatus {
        status: MembershipStatus,
        exit_date: Option<NaiveDate>,
        exit_reason: Option<Code>,
        access: Access,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembershipEvent {
    MembershipRecorded {
        program: String,
        beneficiary: String,
        beneficiary_type: TargetType,
        status: MembershipStatus,
        enrollment_date: Option<NaiveDate>,
    },
    IdentifierAdded {
        identifier: Identifier,
    },
    MembershipStatusChanged {
        from: MembershipStatus,
        to: MembershipStatus,
        /// Set the first time the membership becomes enrolled, never again.
        enrollment_date: Option<NaiveDate>,
        exit_date: Option<NaiveDate>,
        exit_reason: Option<Code>,
    },
}

impl DomainEvent for MembershipEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MembershipRecorded { .. } => "MembershipRecorded",
            Self::IdentifierAdded { .. } => "IdentifierAdded",
            Self::MembershipStatusChanged { .. } => "MembershipStatusChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for MembershipEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        match self {
            Self::IdentifierAdded { identifier } => {
                Some(IndexChange::IdentifierClaimed(identifier))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramMembership {
    pub program: String,
    pub beneficiary: String,
    pub beneficiary_type: Option<TargetType>,
    pub identifier: Option<Identifier>,
    pub status: Option<MembershipStatus>,
    pub enrollment_date: Option<NaiveDate>,
    pub exit_date: Option<NaiveDate>,
    pub exit_reason: Option<Code>,
    pub version: u64,
}

impl ProgramMembership {
    fn change(
        &self,
        to: MembershipStatus,
        exit_date: Option<NaiveDate>,
        exit_reason: Option<Code>,
        today: NaiveDate,
    ) -> Result<Option<MembershipEvent>, DomainError> {
        let from = self
            .status
            .ok_or_else(|| DomainError::not_found("ProgramMembership"))?;
        if from == to {
            return Ok(None);
        }
        if !from.next().contains(&to) {
            let allowed: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
            return Err(DomainError::conflict(
                Some("status"),
                format!(
                    "a {} membership cannot become {}; allowed: {}",
                    from.as_str(),
                    to.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        if to == MembershipStatus::Exited {
            if exit_reason.is_none() {
                return Err(DomainError::invalid("exitReason", "an exit needs a reason"));
            }
            if exit_date.is_none() {
                return Err(DomainError::invalid("exitDate", "an exit needs a date"));
            }
        }
        Ok(Some(MembershipEvent::MembershipStatusChanged {
            from,
            to,
            enrollment_date: (to == MembershipStatus::Enrolled && self.enrollment_date.is_none())
                .then_some(today),
            exit_date: (to == MembershipStatus::Exited)
                .then_some(exit_date)
                .flatten(),
            exit_reason: (to == MembershipStatus::Exited)
                .then_some(exit_reason)
                .flatten(),
        }))
    }
}

impl Aggregate for ProgramMembership {
    const TYPE: &'static str = "ProgramMembership";
    type Command = MembershipCommand;
    type Event = MembershipEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let today = services.clock.today();
        let events = match command {
            MembershipCommand::Enrol {
                program,
                beneficiary,
                beneficiary_type,
                identifier,
                status,
                enrollment_date,
                access,
            } => {
                access.permits("program_membership", "beneficiary", today)?;
                if self.status.is_some() {
                    return Err(DomainError::conflict(
                        Some("beneficiary"),
                        "the beneficiary is already a member of this program",
                    ));
                }
                if !program.active {
                    return Err(DomainError::conflict(
                        Some("program"),
                        "the program is not active",
                    ));
                }
                if program.target_type != beneficiary_type {
                    return Err(DomainError::invalid(
                        "beneficiary",
                        match program.target_type {
                            TargetType::Individual => "this program enrols individuals",
                            TargetType::Group => "this program enrols groups",
                        },
                    ));
                }
                if !status.initial() {
                    return Err(DomainError::invalid(
                        "status",
                        "a new membership is draft, enrolled or not_eligible",
                    ));
                }
                vec![
                    MembershipEvent::MembershipRecorded {
                        program: program.stream,
                        beneficiary,
                        beneficiary_type,
                        status,
                        enrollment_date: (status == MembershipStatus::Enrolled)
                            .then(|| enrollment_date.unwrap_or(today)),
                    },
                    MembershipEvent::IdentifierAdded { identifier },
                ]
            }
            MembershipCommand::ChangeStatus {
                status,
                exit_date,
                exit_reason,
                access,
            } => {
                if self.status.is_none() {
                    return Err(DomainError::not_found("ProgramMembership"));
                }
                access.permits("program_membership", "ProgramMembership", today)?;
                self.change(status, exit_date, exit_reason, today)?
                    .into_iter()
                    .collect()
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            MembershipEvent::MembershipRecorded {
                program,
                beneficiary,
                beneficiary_type,
                status,
                enrollment_date,
            } => {
                self.program = program;
                self.beneficiary = beneficiary;
                self.beneficiary_type = Some(beneficiary_type);
                self.status = Some(status);
                self.enrollment_date = enrollment_date;
            }
            MembershipEvent::IdentifierAdded { identifier } => self.identifier = Some(identifier),
            MembershipEvent::MembershipStatusChanged {
                to,
                enrollment_date,
                exit_date,
                exit_reason,
                ..
            } => {
                self.status = Some(to);
                if self.enrollment_date.is_none() {
                    self.enrollment_date = enrollment_date;
                }
                if to == MembershipStatus::Exited {
                    self.exit_date = exit_date;
                    self.exit_reason = exit_reason;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{code, date, full_access, services, today};

    fn recorded(status: MembershipStatus) -> Vec<MembershipEvent> {
        vec![MembershipEvent::MembershipRecorded {
            program: "p".into(),
            beneficiary: "b".into(),
            beneficiary_type: TargetType::Individual,
            status,
            enrollment_date: (status == MembershipStatus::Enrolled).then(|| date(2024, 1, 1)),
        }]
    }

    async fn change(
        from: MembershipStatus,
        to: MembershipStatus,
    ) -> Result<Vec<MembershipEvent>, DomainError> {
        // Reach `from` the way a real membership would have.
        let mut given = recorded(if from.initial() {
            from
        } else {
            MembershipStatus::Enrolled
        });
        if !from.initial() {
            given.push(MembershipEvent::MembershipStatusChanged {
                from: MembershipStatus::Enrolled,
                to: from,
                enrollment_date: None,
                exit_date: (from == MembershipStatus::Exited).then(|| date(2024, 2, 1)),
                exit_reason: None,
            });
        }
        TestFramework::<ProgramMembership>::with(services())
            .given(given)
            .when_async(MembershipCommand::ChangeStatus {
                status: to,
                exit_date: Some(date(2024, 3, 1)),
                exit_reason: Some(code("urn:openspp:vocab:exit-reason", "moved")),
                access: full_access(),
            })
            .await
            .inspect_result()
    }

    #[tokio::test]
    async fn every_transition_is_allowed_or_refused_as_the_table_says() {
        for from in MembershipStatus::ALL {
            for to in MembershipStatus::ALL {
                let outcome = change(from, to).await;
                if from == to {
                    assert_eq!(outcome, Ok(vec![]), "{from:?} → {to:?} is a no-op");
                } else if from.next().contains(&to) {
                    assert!(
                        outcome.is_ok(),
                        "{from:?} → {to:?} must be allowed: {outcome:?}"
                    );
                } else {
                    match outcome {
                        Err(DomainError::Conflict { message, .. }) => {
                            assert!(message.contains("allowed:"), "{message}")
                        }
                        other => panic!("{from:?} → {to:?} must be refused, got {other:?}"),
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn enrollment_date_is_set_once_and_exit_needs_reason_and_date() {
        let events = change(MembershipStatus::Draft, MembershipStatus::Enrolled)
            .await
            .unwrap();
        assert!(matches!(
            &events[0],
            MembershipEvent::MembershipStatusChanged { enrollment_date: Some(d), .. } if *d == today()
        ));
        let again = change(MembershipStatus::Paused, MembershipStatus::Enrolled)
            .await
            .unwrap();
        assert!(matches!(
            &again[0],
            MembershipEvent::MembershipStatusChanged {
                enrollment_date: None,
                ..
            }
        ));
        let no_reason = TestFramework::<ProgramMembership>::with(services())
            .given(recorded(MembershipStatus::Enrolled))
            .when_async(MembershipCommand::ChangeStatus {
                status: MembershipStatus::Exited,
                exit_date: Some(date(2024, 3, 1)),
                exit_reason: None,
                access: full_access(),
            })
            .await
            .inspect_result();
        assert!(
            matches!(no_reason, Err(DomainError::Invalid { field, .. }) if field == "exitReason")
        );
    }

    #[tokio::test]
    async fn enrolment_checks_target_type_program_state_and_duplicates() {
        let enrol = |target: TargetType, active: bool| MembershipCommand::Enrol {
            program: ProgramFacts {
                stream: "p".into(),
                target_type: target,
                active,
            },
            beneficiary: "b".into(),
            beneficiary_type: TargetType::Individual,
            identifier: Identifier {
                system: "urn:openspp:program-membership".into(),
                value: "m1".into(),
            },
            status: MembershipStatus::Enrolled,
            enrollment_date: None,
            access: full_access(),
        };
        let ok = TestFramework::<ProgramMembership>::with(services())
            .given_no_previous_events()
            .when_async(enrol(TargetType::Individual, true))
            .await
            .inspect_result()
            .unwrap();
        assert_eq!(ok.len(), 2);
        let wrong_target = TestFramework::<ProgramMembership>::with(services())
            .given_no_previous_events()
            .when_async(enrol(TargetType::Group, true))
            .await
            .inspect_result();
        assert!(matches!(wrong_target, Err(DomainError::Invalid { .. })));
        let ended = TestFramework::<ProgramMembership>::with(services())
            .given_no_previous_events()
            .when_async(enrol(TargetType::Individual, false))
            .await
            .inspect_result();
        assert!(matches!(ended, Err(DomainError::Conflict { .. })));
        let twice = TestFramework::<ProgramMembership>::with(services())
            .given(ok)
            .when_async(enrol(TargetType::Individual, true))
            .await
            .inspect_result();
        assert!(matches!(twice, Err(DomainError::Conflict { .. })));
    }
}
