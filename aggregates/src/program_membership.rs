//! A beneficiary's membership of a program, and its state machine. The stream id is derived
//! from (program, beneficiary) by the caller, so "one membership per beneficiary and program"
//! is the stream's own optimistic-concurrency check: of concurrent enrolments exactly one
//! creates the stream.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::consent::Access;
use crate::error::DomainError;
use crate::identifiers::MAX_VALUE_LEN;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::transition;
use crate::values::{Code, Identifier};
use crate::vocabulary::{TargetType, Vocabulary};

/// The only system of membership identifiers, minted or chosen by the client. Registrants,
/// programs and memberships share one identifier namespace; a membership identifier in any
/// other system could take a registrant's or a program's identifier (and a 409 would tell a
/// consent-bound client that it exists).
pub const IDENTIFIER_SYSTEM: &str = "urn:openspp:program-membership";
/// Why a membership exited.
pub const EXIT_REASON: &str = "urn:openspp:vocab:exit-reason";
/// Namespace of the membership stream ids derived from (program, beneficiary).
const STREAM_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f70_656e_7370_702d_6d65_6d62_6572_7331);

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

crate::wire_names!(MembershipStatus {
    Draft => "draft",
    Enrolled => "enrolled",
    Paused => "paused",
    Exited => "exited",
    NotEligible => "not_eligible",
    Duplicated => "duplicated",
});

impl MembershipStatus {
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

/// Why a membership exited: a code from the exit-reason vocabulary, a text (OpenSPP records a
/// free-text reason), or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReason {
    pub code: Option<Code>,
    pub text: Option<String>,
}

impl ExitReason {
    fn validate(&self, vocabulary: &dyn Vocabulary) -> Result<(), DomainError> {
        bounds::optional_text("exitReason.text", self.text.as_deref(), bounds::LONG_TEXT)?;
        match &self.code {
            Some(code)
                if code.system != EXIT_REASON || !vocabulary.has_code(EXIT_REASON, &code.code) =>
            {
                Err(DomainError::invalid(
                    "exitReason",
                    format!(
                        "unknown code {}|{}; use {EXIT_REASON}",
                        code.system, code.code
                    ),
                ))
            }
            Some(_) => Ok(()),
            None if matches!(self.text.as_deref(), Some(text) if !text.trim().is_empty()) => Ok(()),
            None => Err(DomainError::invalid(
                "exitReason",
                format!("needs a code from {EXIT_REASON} or a text"),
            )),
        }
    }
}

/// The program as enrolment needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramFacts {
    pub stream: String,
    pub target_type: TargetType,
    pub active: bool,
}

/// What a change says the membership is, its references resolved to streams. A change may
/// restate what the membership is, never change it: it cannot move to another program or
/// beneficiary, nor take another identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Restated {
    /// None, or the membership's one identifier.
    pub identifiers: Vec<Identifier>,
    /// The program stream the change names; `None` when it names no known program.
    pub program: Option<String>,
    /// The kind of registrant the change names as beneficiary, and its stream (`None` when it
    /// names no known one); `None` when the reference is to no kind of registrant at all.
    pub beneficiary: Option<(TargetType, Option<String>)>,
}

impl Restated {
    fn check(&self, own: &ProgramMembership) -> Result<(), DomainError> {
        let same_identifier = match self.identifiers.as_slice() {
            [] => true,
            [given] => own.identifier.as_ref() == Some(given),
            _ => false,
        };
        if !same_identifier {
            return Err(DomainError::invalid(
                "identifier",
                "a membership's identifier never changes",
            ));
        }
        if self.program.as_ref() != Some(&own.program) {
            return Err(DomainError::invalid(
                "program",
                "a membership cannot move to another program",
            ));
        }
        match &self.beneficiary {
            Some((kind, Some(stream)))
                if Some(*kind) == own.beneficiary_type && *stream == own.beneficiary =>
            {
                Ok(())
            }
            _ => Err(DomainError::invalid(
                "beneficiary",
                "a membership cannot move to another beneficiary",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MembershipCommand {
    Enrol {
        program: ProgramFacts,
        beneficiary: String,
        beneficiary_type: TargetType,
        /// At most one, in [`IDENTIFIER_SYSTEM`]; none: one is minted.
        identifiers: Vec<Identifier>,
        status: MembershipStatus,
        /// Defaults to today when the status is `enrolled`.
        enrollment_date: Option<NaiveDate>,
        /// A new membership has not exited: stating an exit is refused, not dropped.
        exit_date: Option<NaiveDate>,
        exit_reason: Option<ExitReason>,
        access: Access,
    },
    /// A status change. The dates and the reason, when given, are recorded if this change is
    /// the one that sets them (first enrolment, exit) and must otherwise be the recorded ones.
    ChangeStatus {
        status: MembershipStatus,
        enrollment_date: Option<NaiveDate>,
        exit_date: Option<NaiveDate>,
        exit_reason: Option<ExitReason>,
        /// What the change says the membership is; `None` when it says nothing of it.
        restated: Option<Restated>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_reason_text: Option<String>,
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
    #[serde(default)]
    pub exit_reason_text: Option<String>,
    pub version: u64,
}

/// What a status change says besides the status.
struct Given {
    enrollment_date: Option<NaiveDate>,
    exit_date: Option<NaiveDate>,
    exit_reason: Option<ExitReason>,
}

/// The one identifier of a new membership: the given one, checked, or one minted.
fn new_identifier(given: Vec<Identifier>) -> Result<Identifier, DomainError> {
    let mut given = given.into_iter();
    let identifier = given.next();
    if given.next().is_some() {
        return Err(DomainError::invalid(
            "identifier[1]",
            "a membership has one identifier",
        ));
    }
    match identifier {
        Some(identifier) => validate_identifier(&identifier).map(|()| identifier),
        None => Ok(Identifier {
            system: IDENTIFIER_SYSTEM.to_owned(),
            value: uuid::Uuid::new_v4().to_string(),
        }),
    }
}

fn validate_identifier(identifier: &Identifier) -> Result<(), DomainError> {
    if identifier.system != IDENTIFIER_SYSTEM {
        return Err(DomainError::invalid(
            "identifier[0].system",
            format!(
                "a membership's identifier is in {IDENTIFIER_SYSTEM}; registrant and program \
                 identifiers name those"
            ),
        ));
    }
    let value = identifier.value.trim();
    if value.is_empty() || value.chars().count() > MAX_VALUE_LEN {
        return Err(DomainError::invalid(
            "identifier[0].value",
            format!("must be 1 to {MAX_VALUE_LEN} characters"),
        ));
    }
    Ok(())
}

impl ProgramMembership {
    /// The stream of the membership of `beneficiary` in `program` (both streams). Derived, so
    /// that "one membership per beneficiary and program" is the stream's own optimistic
    /// concurrency check.
    pub fn stream_id(program: &str, beneficiary: &str) -> String {
        uuid::Uuid::new_v5(
            &STREAM_NAMESPACE,
            format!("{program}/{beneficiary}").as_bytes(),
        )
        .to_string()
    }

    /// What kind of registrant the beneficiary is (an individual when not yet recorded).
    pub fn beneficiary_kind(&self) -> TargetType {
        self.beneficiary_type.unwrap_or(TargetType::Individual)
    }

    fn exit_reason(&self) -> Option<ExitReason> {
        (self.exit_reason.is_some() || self.exit_reason_text.is_some()).then(|| ExitReason {
            code: self.exit_reason.clone(),
            text: self.exit_reason_text.clone(),
        })
    }

    fn change(
        &self,
        to: MembershipStatus,
        given: Given,
        vocabulary: &dyn Vocabulary,
        today: NaiveDate,
    ) -> Result<Option<MembershipEvent>, DomainError> {
        let from = self
            .status
            .ok_or_else(|| DomainError::not_found("ProgramMembership"))?;
        transition::check(
            "membership",
            "status",
            from,
            to,
            from.next(),
            MembershipStatus::as_str,
        )?;
        for (field, date) in [
            ("enrollmentDate", given.enrollment_date),
            ("exitDate", given.exit_date),
        ] {
            date.map_or(Ok(()), |date| bounds::date(field, date))?;
        }
        let first_enrolment = to == MembershipStatus::Enrolled && self.enrollment_date.is_none();
        let enrollment_date = if first_enrolment {
            Some(given.enrollment_date.unwrap_or(today))
        } else {
            self.enrollment_date
        };
        if given.enrollment_date.is_some() && given.enrollment_date != enrollment_date {
            return Err(DomainError::invalid(
                "enrollmentDate",
                match self.enrollment_date {
                    Some(first) => format!("set when first enrolled ({first}) and never changed"),
                    None => "only an enrolled membership has an enrolment date".to_owned(),
                },
            ));
        }
        let exiting = to == MembershipStatus::Exited && from != MembershipStatus::Exited;
        let mut exit = None;
        if exiting {
            let reason = given
                .exit_reason
                .ok_or_else(|| DomainError::invalid("exitReason", "an exit needs a reason"))?;
            reason.validate(vocabulary)?;
            let date = given
                .exit_date
                .ok_or_else(|| DomainError::invalid("exitDate", "an exit needs a date"))?;
            if let Some(enrolled) = enrollment_date.filter(|enrolled| date < *enrolled) {
                return Err(DomainError::invalid(
                    "exitDate",
                    format!("must not be before the enrolment date {enrolled}"),
                ));
            }
            exit = Some((date, reason));
        } else {
            if given.exit_date.is_some() && given.exit_date != self.exit_date {
                return Err(DomainError::invalid(
                    "exitDate",
                    "recorded only by the change to exited",
                ));
            }
            if given.exit_reason.is_some() && given.exit_reason != self.exit_reason() {
                return Err(DomainError::invalid(
                    "exitReason",
                    "recorded only by the change to exited",
                ));
            }
        }
        if from == to {
            return Ok(None);
        }
        let (exit_date, exit_reason, exit_reason_text) = match exit {
            Some((date, reason)) => (Some(date), reason.code, reason.text),
            None => (None, None, None),
        };
        Ok(Some(MembershipEvent::MembershipStatusChanged {
            from,
            to,
            enrollment_date: enrollment_date.filter(|_| first_enrolment),
            exit_date,
            exit_reason,
            exit_reason_text,
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
                identifiers,
                status,
                enrollment_date,
                exit_date,
                exit_reason,
                access,
            } => {
                access.permits("program_membership", "beneficiary", today)?;
                let identifier = new_identifier(identifiers)?;
                let exit_field = match (exit_date, exit_reason) {
                    (Some(_), _) => Some("exitDate"),
                    (None, Some(_)) => Some("exitReason"),
                    (None, None) => None,
                };
                if let Some(field) = exit_field {
                    return Err(DomainError::invalid(
                        field,
                        "a new membership has not exited; record the exit with a change to exited",
                    ));
                }
                if let Some(date) = enrollment_date {
                    bounds::date("enrollmentDate", date)?;
                }
                // OpenSPP answers a duplicate enrolment as an unprocessable body (422).
                if self.status.is_some() {
                    return Err(DomainError::invalid(
                        "beneficiary",
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
                if enrollment_date.is_some() && status != MembershipStatus::Enrolled {
                    return Err(DomainError::invalid(
                        "enrollmentDate",
                        "only an enrolled membership has an enrolment date",
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
                enrollment_date,
                exit_date,
                exit_reason,
                restated,
                access,
            } => {
                if self.status.is_none() {
                    return Err(DomainError::not_found("ProgramMembership"));
                }
                access.permits("program_membership", "ProgramMembership", today)?;
                if let Some(restated) = restated {
                    restated.check(self)?;
                }
                let given = Given {
                    enrollment_date,
                    exit_date,
                    exit_reason,
                };
                self.change(status, given, services.vocabulary.as_ref(), today)?
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
                exit_reason_text,
                ..
            } => {
                self.status = Some(to);
                if self.enrollment_date.is_none() {
                    self.enrollment_date = enrollment_date;
                }
                if to == MembershipStatus::Exited {
                    self.exit_date = exit_date;
                    self.exit_reason = exit_reason;
                    self.exit_reason_text = exit_reason_text;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{code, date, full_access, ngo, ngo_consent, services, today};

    fn recorded(status: MembershipStatus) -> Vec<MembershipEvent> {
        vec![MembershipEvent::MembershipRecorded {
            program: "p".into(),
            beneficiary: "b".into(),
            beneficiary_type: TargetType::Individual,
            status,
            enrollment_date: (status == MembershipStatus::Enrolled).then(|| date(2024, 1, 1)),
        }]
    }

    fn reason(code_value: &str) -> ExitReason {
        ExitReason {
            code: Some(code(EXIT_REASON, code_value)),
            text: None,
        }
    }

    /// `from`, reached the way a real membership would have.
    fn reached(from: MembershipStatus) -> Vec<MembershipEvent> {
        let mut given = recorded(if from.initial() {
            from
        } else {
            MembershipStatus::Enrolled
        });
        if !from.initial() {
            let exited = from == MembershipStatus::Exited;
            given.push(MembershipEvent::MembershipStatusChanged {
                from: MembershipStatus::Enrolled,
                to: from,
                enrollment_date: None,
                exit_date: exited.then(|| date(2024, 2, 1)),
                exit_reason: exited.then(|| code(EXIT_REASON, "moved")),
                exit_reason_text: None,
            });
        }
        given
    }

    fn status_change(to: MembershipStatus, access: Access) -> MembershipCommand {
        MembershipCommand::ChangeStatus {
            status: to,
            enrollment_date: None,
            exit_date: None,
            exit_reason: None,
            restated: None,
            access,
        }
    }

    /// `from` → `to`, saying what an exit needs when it is one.
    async fn change(
        from: MembershipStatus,
        to: MembershipStatus,
    ) -> Result<Vec<MembershipEvent>, DomainError> {
        let mut command = status_change(to, full_access());
        if let MembershipCommand::ChangeStatus {
            exit_date,
            exit_reason,
            ..
        } = &mut command
        {
            if to == MembershipStatus::Exited && from != to {
                *exit_date = Some(date(2024, 3, 1));
                *exit_reason = Some(reason("moved"));
            }
        }
        TestFramework::<ProgramMembership>::with(services())
            .given(reached(from))
            .when_async(command)
            .await
            .inspect_result()
    }

    async fn run(
        given: Vec<MembershipEvent>,
        command: MembershipCommand,
    ) -> Result<Vec<MembershipEvent>, DomainError> {
        TestFramework::<ProgramMembership>::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    fn refused_field(outcome: Result<Vec<MembershipEvent>, DomainError>) -> String {
        match outcome {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_transition_is_allowed_or_refused_as_the_table_says() {
        for &from in MembershipStatus::ALL {
            for &to in MembershipStatus::ALL {
                let outcome = change(from, to).await;
                if from == to {
                    assert_eq!(outcome, Ok(vec![]), "{from:?} → {to:?} is a no-op");
                } else if from.next().contains(&to) {
                    assert!(
                        outcome.is_ok(),
                        "{from:?} → {to:?} must be allowed: {outcome:?}"
                    );
                } else {
                    let allowed: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
                    match outcome {
                        Err(DomainError::Conflict { field, message }) => {
                            assert_eq!(field.as_deref(), Some("status"));
                            assert!(
                                message.ends_with(&format!("allowed: {}", allowed.join(", "))),
                                "{message}"
                            );
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
        let exit = |exit_date, exit_reason| MembershipCommand::ChangeStatus {
            status: MembershipStatus::Exited,
            enrollment_date: None,
            exit_date,
            exit_reason,
            restated: None,
            access: full_access(),
        };
        let enrolled = recorded(MembershipStatus::Enrolled);
        let no_reason = run(enrolled.clone(), exit(Some(date(2024, 3, 1)), None)).await;
        assert_eq!(refused_field(no_reason), "exitReason");
        let no_date = run(enrolled.clone(), exit(None, Some(reason("moved")))).await;
        assert_eq!(refused_field(no_date), "exitDate");
        // Enrolled on 2024-01-01: an exit cannot come first.
        let too_early = run(
            enrolled.clone(),
            exit(Some(date(2023, 12, 31)), Some(reason("moved"))),
        )
        .await;
        assert_eq!(refused_field(too_early), "exitDate");
        let on_the_day = run(
            enrolled,
            exit(Some(date(2024, 1, 1)), Some(reason("moved"))),
        )
        .await;
        assert!(on_the_day.is_ok(), "{on_the_day:?}");
    }

    #[tokio::test]
    async fn a_given_enrollment_date_is_the_first_one_and_is_kept() {
        let enrol_on = |status, enrollment_date| MembershipCommand::ChangeStatus {
            status,
            enrollment_date,
            exit_date: None,
            exit_reason: None,
            restated: None,
            access: full_access(),
        };
        // First enrolment: the given date is recorded.
        let first = run(
            recorded(MembershipStatus::Draft),
            enrol_on(MembershipStatus::Enrolled, Some(date(2024, 5, 2))),
        )
        .await
        .unwrap();
        assert!(matches!(
            &first[0],
            MembershipEvent::MembershipStatusChanged { enrollment_date: Some(d), .. } if *d == date(2024, 5, 2)
        ));
        // Later, the recorded date may be repeated but not changed.
        let paused = reached(MembershipStatus::Paused);
        assert!(run(
            paused.clone(),
            enrol_on(MembershipStatus::Enrolled, Some(date(2024, 1, 1)))
        )
        .await
        .is_ok());
        let moved = run(
            paused,
            enrol_on(MembershipStatus::Enrolled, Some(date(2024, 5, 2))),
        )
        .await;
        assert_eq!(refused_field(moved), "enrollmentDate");
        // Never enrolled: no enrolment date to give.
        let draft = run(
            recorded(MembershipStatus::Draft),
            enrol_on(MembershipStatus::Duplicated, Some(date(2024, 5, 2))),
        )
        .await;
        assert_eq!(refused_field(draft), "enrollmentDate");
    }

    #[tokio::test]
    async fn exit_reasons_come_from_the_vocabulary_or_are_text() {
        let exit = |exit_reason| MembershipCommand::ChangeStatus {
            status: MembershipStatus::Exited,
            enrollment_date: None,
            exit_date: Some(date(2024, 3, 1)),
            exit_reason: Some(exit_reason),
            restated: None,
            access: full_access(),
        };
        let enrolled = recorded(MembershipStatus::Enrolled);
        let unknown = run(enrolled.clone(), exit(reason("abducted-by-aliens"))).await;
        assert_eq!(refused_field(unknown), "exitReason");
        let other_system = ExitReason {
            code: Some(code("urn:iso:std:iso:5218", "1")),
            text: None,
        };
        assert_eq!(
            refused_field(run(enrolled.clone(), exit(other_system)).await),
            "exitReason"
        );
        let blank = ExitReason {
            code: None,
            text: Some("  ".into()),
        };
        assert_eq!(
            refused_field(run(enrolled.clone(), exit(blank)).await),
            "exitReason"
        );
        let text_only = ExitReason {
            code: None,
            text: Some("Moved abroad".into()),
        };
        assert_eq!(
            run(enrolled, exit(text_only)).await,
            Ok(vec![MembershipEvent::MembershipStatusChanged {
                from: MembershipStatus::Enrolled,
                to: MembershipStatus::Exited,
                enrollment_date: None,
                exit_date: Some(date(2024, 3, 1)),
                exit_reason: None,
                exit_reason_text: Some("Moved abroad".into()),
            }])
        );
    }

    #[tokio::test]
    async fn dates_and_reason_texts_are_bounded() {
        let exit = |exit_date, text: String| MembershipCommand::ChangeStatus {
            status: MembershipStatus::Exited,
            enrollment_date: None,
            exit_date: Some(exit_date),
            exit_reason: Some(ExitReason {
                code: None,
                text: Some(text),
            }),
            restated: None,
            access: full_access(),
        };
        let enrolled = recorded(MembershipStatus::Enrolled);
        let far = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        assert_eq!(
            refused_field(run(enrolled.clone(), exit(far, "Moved".into())).await),
            "exitDate"
        );
        let long = "m".repeat(crate::bounds::LONG_TEXT + 1);
        assert_eq!(
            refused_field(run(enrolled, exit(date(2024, 3, 1), long)).await),
            "exitReason.text"
        );
    }

    #[tokio::test]
    async fn a_recorded_exit_is_not_rewritten_by_later_changes() {
        let to_not_eligible = |exit_date, exit_reason| MembershipCommand::ChangeStatus {
            status: MembershipStatus::NotEligible,
            enrollment_date: None,
            exit_date,
            exit_reason,
            restated: None,
            access: full_access(),
        };
        let exited = reached(MembershipStatus::Exited);
        // The recorded exit, sent back as read, is fine.
        assert!(run(
            exited.clone(),
            to_not_eligible(Some(date(2024, 2, 1)), Some(reason("moved")))
        )
        .await
        .is_ok());
        let other_date = run(
            exited.clone(),
            to_not_eligible(Some(date(2024, 2, 2)), None),
        )
        .await;
        assert_eq!(refused_field(other_date), "exitDate");
        let other_reason = run(exited, to_not_eligible(None, Some(reason("graduated")))).await;
        assert_eq!(refused_field(other_reason), "exitReason");
        // An exit date on a membership that never exited is refused, not dropped.
        let paused = run(
            recorded(MembershipStatus::Enrolled),
            MembershipCommand::ChangeStatus {
                status: MembershipStatus::Paused,
                enrollment_date: None,
                exit_date: Some(date(2024, 3, 1)),
                exit_reason: None,
                restated: None,
                access: full_access(),
            },
        )
        .await;
        assert_eq!(refused_field(paused), "exitDate");
    }

    fn enrol(target: TargetType, active: bool) -> MembershipCommand {
        MembershipCommand::Enrol {
            program: ProgramFacts {
                stream: "p".into(),
                target_type: target,
                active,
            },
            beneficiary: "b".into(),
            beneficiary_type: TargetType::Individual,
            identifiers: vec![Identifier {
                system: IDENTIFIER_SYSTEM.into(),
                value: "m1".into(),
            }],
            status: MembershipStatus::Enrolled,
            enrollment_date: None,
            exit_date: None,
            exit_reason: None,
            access: full_access(),
        }
    }

    #[tokio::test]
    async fn an_enrolment_without_identifier_is_given_one_and_never_two() {
        let mut unnamed = enrol(TargetType::Individual, true);
        if let MembershipCommand::Enrol { identifiers, .. } = &mut unnamed {
            identifiers.clear();
        }
        let events = run(vec![], unnamed).await.unwrap();
        match &events[1] {
            MembershipEvent::IdentifierAdded { identifier } => {
                assert_eq!(identifier.system, IDENTIFIER_SYSTEM);
                assert!(uuid::Uuid::parse_str(&identifier.value).is_ok());
            }
            other => panic!("expected the minted identifier, got {other:?}"),
        }
        let mut two = enrol(TargetType::Individual, true);
        if let MembershipCommand::Enrol { identifiers, .. } = &mut two {
            identifiers.push(Identifier {
                system: IDENTIFIER_SYSTEM.into(),
                value: "m2".into(),
            });
        }
        assert_eq!(refused_field(run(vec![], two).await), "identifier[1]");
    }

    #[tokio::test]
    async fn a_new_membership_states_no_exit() {
        let with_exit = |exit_date, exit_reason| {
            let mut command = enrol(TargetType::Individual, true);
            if let MembershipCommand::Enrol {
                exit_date: d,
                exit_reason: r,
                ..
            } = &mut command
            {
                *d = exit_date;
                *r = exit_reason;
            }
            command
        };
        let dated = run(vec![], with_exit(Some(date(2024, 6, 1)), None)).await;
        assert_eq!(refused_field(dated), "exitDate");
        let reasoned = run(vec![], with_exit(None, Some(reason("moved")))).await;
        assert_eq!(refused_field(reasoned), "exitReason");
        let both = run(
            vec![],
            with_exit(Some(date(2024, 6, 1)), Some(reason("moved"))),
        )
        .await;
        assert_eq!(refused_field(both), "exitDate");
    }

    #[test]
    fn the_stream_is_derived_from_program_and_beneficiary() {
        let stream = ProgramMembership::stream_id("p1", "b1");
        assert_eq!(stream, ProgramMembership::stream_id("p1", "b1"));
        assert_ne!(stream, ProgramMembership::stream_id("p1", "b2"));
        assert_ne!(stream, ProgramMembership::stream_id("p2", "b1"));
        assert!(uuid::Uuid::parse_str(&stream).is_ok());
    }

    #[tokio::test]
    async fn a_change_restates_the_membership_but_never_moves_it() {
        // Recorded as program "p", beneficiary "b" (an individual), identifier m1.
        let mut given = recorded(MembershipStatus::Enrolled);
        given.push(MembershipEvent::IdentifierAdded {
            identifier: Identifier {
                system: IDENTIFIER_SYSTEM.into(),
                value: "m1".into(),
            },
        });
        let own = || Restated {
            identifiers: vec![Identifier {
                system: IDENTIFIER_SYSTEM.into(),
                value: "m1".into(),
            }],
            program: Some("p".into()),
            beneficiary: Some((TargetType::Individual, Some("b".into()))),
        };
        let pause = |restated: Restated| MembershipCommand::ChangeStatus {
            status: MembershipStatus::Paused,
            enrollment_date: None,
            exit_date: None,
            exit_reason: None,
            restated: Some(restated),
            access: full_access(),
        };
        assert!(run(given.clone(), pause(own())).await.is_ok());
        let unnamed = Restated {
            identifiers: vec![],
            ..own()
        };
        assert!(run(given.clone(), pause(unnamed)).await.is_ok());
        let other_id = Restated {
            identifiers: vec![Identifier {
                system: IDENTIFIER_SYSTEM.into(),
                value: "m2".into(),
            }],
            ..own()
        };
        let two_ids = Restated {
            identifiers: [own().identifiers, own().identifiers].concat(),
            ..own()
        };
        let cases = [
            (other_id, "identifier"),
            (two_ids, "identifier"),
            (
                Restated {
                    program: Some("q".into()),
                    ..own()
                },
                "program",
            ),
            (
                Restated {
                    program: None,
                    ..own()
                },
                "program",
            ),
            (
                Restated {
                    beneficiary: Some((TargetType::Individual, Some("c".into()))),
                    ..own()
                },
                "beneficiary",
            ),
            (
                Restated {
                    beneficiary: Some((TargetType::Individual, None)),
                    ..own()
                },
                "beneficiary",
            ),
            (
                Restated {
                    beneficiary: Some((TargetType::Group, Some("b".into()))),
                    ..own()
                },
                "beneficiary",
            ),
            (
                Restated {
                    beneficiary: None,
                    ..own()
                },
                "beneficiary",
            ),
        ];
        for (restated, field) in cases {
            let outcome = run(given.clone(), pause(restated.clone())).await;
            assert_eq!(refused_field(outcome), field, "{restated:?}");
        }
    }

    #[tokio::test]
    async fn enrolment_checks_target_type_program_state_and_duplicates() {
        let ok = run(vec![], enrol(TargetType::Individual, true))
            .await
            .unwrap();
        assert_eq!(ok.len(), 2);
        let wrong_target = run(vec![], enrol(TargetType::Group, true)).await;
        assert!(matches!(wrong_target, Err(DomainError::Invalid { .. })));
        let ended = run(vec![], enrol(TargetType::Individual, false)).await;
        assert!(matches!(ended, Err(DomainError::Conflict { .. })));
        let twice = run(ok, enrol(TargetType::Individual, true)).await;
        assert!(
            matches!(twice, Err(DomainError::Invalid { ref field, .. }) if field == "beneficiary")
        );
    }

    #[tokio::test]
    async fn a_membership_identifier_is_a_membership_identifier() {
        let with = |system: &str, value: &str| {
            let mut command = enrol(TargetType::Individual, true);
            if let MembershipCommand::Enrol { identifiers, .. } = &mut command {
                *identifiers = vec![Identifier {
                    system: system.into(),
                    value: value.into(),
                }];
            }
            command
        };
        for system in [
            "urn:openspp:vocab:id-type#national_id",
            crate::program::NAME_ALIAS_SYSTEM,
            "",
        ] {
            let outcome = run(vec![], with(system, "P1")).await;
            assert_eq!(refused_field(outcome), "identifier[0].system", "{system}");
        }
        for value in ["", "   ", &"x".repeat(101)] {
            let outcome = run(vec![], with(IDENTIFIER_SYSTEM, value)).await;
            assert_eq!(refused_field(outcome), "identifier[0].value");
        }
        assert!(run(vec![], with(IDENTIFIER_SYSTEM, "4Ps-2024-HH001"))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn enrolment_records_only_what_its_status_has() {
        let mut draft = enrol(TargetType::Individual, true);
        if let MembershipCommand::Enrol {
            status,
            enrollment_date,
            ..
        } = &mut draft
        {
            *status = MembershipStatus::Draft;
            *enrollment_date = Some(date(2024, 1, 1));
        }
        assert_eq!(refused_field(run(vec![], draft).await), "enrollmentDate");
        let mut dated = enrol(TargetType::Individual, true);
        if let MembershipCommand::Enrol {
            enrollment_date, ..
        } = &mut dated
        {
            *enrollment_date = Some(date(2023, 9, 1));
        }
        assert!(matches!(
            &run(vec![], dated).await.unwrap()[0],
            MembershipEvent::MembershipRecorded { enrollment_date: Some(d), .. } if *d == date(2023, 9, 1)
        ));
    }

    /// A consent-bound caller (no legal basis) holding a consent for `resource_type`.
    fn consented(resource_type: &str) -> Access {
        Access {
            actor: ngo(),
            consents: vec![ngo_consent("b", resource_type, None)],
        }
    }

    #[tokio::test]
    async fn enrolment_and_changes_need_a_consent_covering_program_membership() {
        let enrol_as = |access: Access| {
            let mut command = enrol(TargetType::Individual, true);
            if let MembershipCommand::Enrol { access: a, .. } = &mut command {
                *a = access;
            }
            command
        };
        let not_found = Err(DomainError::not_found("beneficiary"));
        let mut nobody = consented("program_membership");
        nobody.consents.clear();
        assert_eq!(run(vec![], enrol_as(nobody.clone())).await, not_found);
        // A consent for the person's record is not one for their memberships.
        assert_eq!(
            run(vec![], enrol_as(consented("individual"))).await,
            not_found
        );
        assert!(run(vec![], enrol_as(consented("program_membership")))
            .await
            .is_ok());

        let enrolled = recorded(MembershipStatus::Enrolled);
        let hidden = Err(DomainError::not_found("ProgramMembership"));
        let pause = |access| status_change(MembershipStatus::Paused, access);
        assert_eq!(run(enrolled.clone(), pause(nobody)).await, hidden);
        assert_eq!(
            run(enrolled.clone(), pause(consented("individual"))).await,
            hidden
        );
        assert!(run(enrolled, pause(consented("program_membership")))
            .await
            .is_ok());
    }
}
