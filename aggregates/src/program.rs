//! A social-protection program. Operators create and change programs; integrators read them
//! and enrol beneficiaries. OpenSPP derives a program's identifier from its name
//! (`urn:openspp:program|{name-with-hyphens}`); that alias is kept as a live identifier of the
//! stream, so it stays resolvable, moves with a rename, and makes program names unique.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::DomainError;
use crate::identifiers::{self, IdentifierEntry, IdentifierEvents};
use crate::inline_index::{IndexChange, InlineIndex};
use crate::program_membership::{ProgramFacts, IDENTIFIER_SYSTEM as MEMBERSHIP_SYSTEM};
use crate::services::RegistryServices;
use crate::values::{Code, Identifier};
use crate::vocabulary::TargetType;

pub const PROGRAM_TYPE: &str = "urn:openspp:vocab:program-type";
/// The type OpenSPP renders for a program that names none.
pub const DEFAULT_PROGRAM_TYPE: &str = "social-protection";
/// The system of the identifier OpenSPP derives from a program's name.
pub const NAME_ALIAS_SYSTEM: &str = "urn:openspp:program";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramStatus {
    Active,
    Ended,
    Archived,
}

crate::wire_names!(ProgramStatus { Active => "active", Ended => "ended", Archived => "archived" });

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramDetails {
    /// Identifiers the operator gives; the name alias is added by the program itself.
    pub identifiers: Vec<Identifier>,
    pub name: String,
    pub description: Option<String>,
    /// `None`: OpenSPP's default, `social-protection`.
    pub program_type: Option<Code>,
    pub target_type: TargetType,
    /// ISO 4217.
    pub currency: String,
    pub eligibility_criteria: Option<String>,
    pub start_date: Option<NaiveDate>,
    /// When an ended program ended; `None` on ending means today.
    pub end_date: Option<NaiveDate>,
    pub status: ProgramStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProgramCommand {
    Create(ProgramDetails),
    Replace(ProgramDetails),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProgramEvent {
    ProgramCreated {
        name: String,
        description: Option<String>,
        program_type: Option<Code>,
        target_type: TargetType,
        currency: String,
        eligibility_criteria: Option<String>,
        start_date: Option<NaiveDate>,
    },
    IdentifierAdded {
        identifier: Identifier,
    },
    IdentifierInvalidated {
        identifier: Identifier,
    },
    ProgramRenamed {
        name: String,
    },
    ProgramDescribed {
        description: Option<String>,
        eligibility_criteria: Option<String>,
        program_type: Option<Code>,
    },
    /// No longer decided: the target type is fixed at creation, because every membership was
    /// checked against it. Kept so that streams recorded before that rule still replay.
    TargetTypeChanged {
        target_type: TargetType,
    },
    StartDateChanged {
        start_date: Option<NaiveDate>,
    },
    CurrencyChanged {
        currency: String,
    },
    ProgramEnded {
        end_date: NaiveDate,
    },
    ProgramArchived,
    ProgramReactivated,
}

impl DomainEvent for ProgramEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProgramCreated { .. } => "ProgramCreated",
            Self::IdentifierAdded { .. } => "IdentifierAdded",
            Self::IdentifierInvalidated { .. } => "IdentifierInvalidated",
            Self::ProgramRenamed { .. } => "ProgramRenamed",
            Self::ProgramDescribed { .. } => "ProgramDescribed",
            Self::TargetTypeChanged { .. } => "TargetTypeChanged",
            Self::StartDateChanged { .. } => "StartDateChanged",
            Self::CurrencyChanged { .. } => "CurrencyChanged",
            Self::ProgramEnded { .. } => "ProgramEnded",
            Self::ProgramArchived => "ProgramArchived",
            Self::ProgramReactivated => "ProgramReactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

identifiers::identifier_events!(ProgramEvent);

impl InlineIndex for ProgramEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        self.identifier_change()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub created: bool,
    pub identifiers: Vec<IdentifierEntry>,
    pub name: String,
    pub description: Option<String>,
    pub program_type: Option<Code>,
    pub target_type: Option<TargetType>,
    pub currency: String,
    pub eligibility_criteria: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: Option<ProgramStatus>,
    pub version: u64,
}

/// `Cash Transfer 2025` → `cash-transfer-2025`, as OpenSPP derives program identifiers.
pub fn name_alias(name: &str) -> Identifier {
    Identifier {
        system: NAME_ALIAS_SYSTEM.to_owned(),
        value: name
            .trim()
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// The identifier to look a program up by. OpenSPP matches program names whatever their case,
/// so a name alias is normalised the way it was derived (`Cash-Transfer-2026` finds
/// `cash-transfer-2026`); any other identifier is looked up exactly as given.
pub fn lookup_key(identifier: Identifier) -> Identifier {
    if identifier.system == NAME_ALIAS_SYSTEM {
        name_alias(&identifier.value)
    } else {
        identifier
    }
}

/// Whether `system` is a namespace URI (ADR-007), as program identifier systems must be.
pub fn is_namespace_uri(system: &str) -> bool {
    ["urn:", "http://", "https://"]
        .iter()
        .any(|scheme| system.len() > scheme.len() && system.starts_with(scheme))
}

fn default_program_type() -> Code {
    Code {
        system: PROGRAM_TYPE.to_owned(),
        code: DEFAULT_PROGRAM_TYPE.to_owned(),
    }
}

impl Program {
    pub fn live_identifiers(&self) -> impl Iterator<Item = &Identifier> {
        identifiers::live(&self.identifiers)
    }

    pub fn is_active(&self) -> bool {
        self.status == Some(ProgramStatus::Active)
    }

    /// Who the program serves; a program recorded without a target type serves groups
    /// (OpenSPP's default).
    pub fn serves(&self) -> TargetType {
        self.target_type.unwrap_or(TargetType::Group)
    }

    /// The program `stream` as enrolment sees it.
    pub fn enrolment_facts(&self, stream: String) -> ProgramFacts {
        ProgramFacts {
            stream,
            target_type: self.serves(),
            active: self.is_active(),
        }
    }

    /// The program's type; OpenSPP's default for a program recorded without one.
    pub fn program_type(&self) -> Code {
        self.program_type
            .clone()
            .unwrap_or_else(default_program_type)
    }

    /// The identifiers the program should hold: the operator's, then the name alias (an
    /// identifier sent in the alias system is the alias itself, which follows the name).
    fn wanted_identifiers(details: &ProgramDetails) -> Vec<Identifier> {
        let alias = name_alias(&details.name);
        let mut wanted: Vec<Identifier> = details
            .identifiers
            .iter()
            .filter(|id| id.system != NAME_ALIAS_SYSTEM)
            .cloned()
            .collect();
        wanted.push(alias);
        wanted
    }

    /// The end date the program has once it is in `details.status`: the given one (or today)
    /// when it ends now, none when it is active, else the one recorded. An end date given for
    /// anything else is refused rather than dropped.
    fn end_date_after(
        &self,
        details: &ProgramDetails,
        today: NaiveDate,
    ) -> Result<Option<NaiveDate>, DomainError> {
        let ending =
            details.status == ProgramStatus::Ended && self.status != Some(ProgramStatus::Ended);
        let end = match details.status {
            _ if ending => Some(details.end_date.unwrap_or(today)),
            ProgramStatus::Active => None,
            _ => self.end_date,
        };
        if details.end_date.is_some() && details.end_date != end {
            return Err(DomainError::invalid(
                "period.end",
                match end {
                    Some(recorded) => {
                        format!("the program ended on {recorded}; an end date is recorded once")
                    }
                    None => "only an ended program has an end date; set status to ended".into(),
                },
            ));
        }
        if let Some(end) = end {
            if ending && end > today {
                return Err(DomainError::invalid(
                    "period.end",
                    "must not be in the future; a program ends when it is marked ended",
                ));
            }
            if details.start_date.is_some_and(|start| end < start) {
                return Err(DomainError::invalid(
                    "period.end",
                    "must not be before period.start",
                ));
            }
        }
        Ok(end)
    }

    fn status_events(&self, wanted: ProgramStatus, end: Option<NaiveDate>) -> Vec<ProgramEvent> {
        match (self.status, wanted) {
            (Some(current), wanted) if current == wanted => vec![],
            (_, ProgramStatus::Ended) => end
                .map(|end_date| ProgramEvent::ProgramEnded { end_date })
                .into_iter()
                .collect(),
            (_, ProgramStatus::Archived) => vec![ProgramEvent::ProgramArchived],
            (_, ProgramStatus::Active) => vec![ProgramEvent::ProgramReactivated],
        }
    }
}

/// Checks a program's content. `current_alias` is the alias before this change: a read sent
/// back with a new name still carries it.
fn validate(
    details: &ProgramDetails,
    services: &RegistryServices,
    current_alias: Option<&Identifier>,
) -> Result<(), DomainError> {
    if details.name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    // The name becomes an identifier (the alias): bounded like any indexed text.
    bounds::text("name", &details.name, bounds::SHORT_TEXT)?;
    bounds::optional_text(
        "description",
        details.description.as_deref(),
        bounds::LONG_TEXT,
    )?;
    for (field, date) in [
        ("period.start", details.start_date),
        ("period.end", details.end_date),
    ] {
        date.map_or(Ok(()), |date| bounds::date(field, date))?;
    }
    bounds::items(
        "identifier",
        details.identifiers.len(),
        bounds::items::IDENTIFIERS,
    )?;
    let alias = name_alias(&details.name);
    for (i, identifier) in details.identifiers.iter().enumerate() {
        let system = format!("identifier[{i}].system");
        let value = format!("identifier[{i}].value");
        if !is_namespace_uri(&identifier.system) {
            return Err(DomainError::invalid(
                system,
                "must be a namespace URI (urn:…, http://… or https://…)",
            ));
        }
        // Programs, registrants and memberships share one identifier namespace: a program
        // must not take (or probe for) a registrant's or a membership's identifier.
        if identifier.system == MEMBERSHIP_SYSTEM
            || services
                .vocabulary
                .identifier_system_allowed(&identifier.system, TargetType::Individual)
                .is_some()
        {
            return Err(DomainError::invalid(
                system,
                "names registrants or memberships, not programs",
            ));
        }
        if identifier.value.trim().is_empty() {
            return Err(DomainError::invalid(value, "must not be empty"));
        }
        if identifier.value.chars().count() > identifiers::MAX_VALUE_LEN {
            return Err(DomainError::invalid(
                value,
                format!("must be at most {} characters", identifiers::MAX_VALUE_LEN),
            ));
        }
        if identifier.system == NAME_ALIAS_SYSTEM
            && *identifier != alias
            && Some(identifier) != current_alias
        {
            return Err(DomainError::invalid(
                value,
                format!("the name alias follows the name: {}", alias.key()),
            ));
        }
        if details.identifiers[..i].contains(identifier) {
            return Err(DomainError::invalid(value, "listed twice"));
        }
    }
    if details.currency.len() != 3 || !details.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(DomainError::invalid(
            "currency",
            "must be an ISO 4217 code such as PHP or USD",
        ));
    }
    if let Some(code) = &details.program_type {
        if code.system != PROGRAM_TYPE || !services.vocabulary.has_code(PROGRAM_TYPE, &code.code) {
            return Err(DomainError::invalid(
                "programType",
                format!(
                    "unknown code {}|{}; use {PROGRAM_TYPE}",
                    code.system, code.code
                ),
            ));
        }
    }
    Ok(())
}

impl Aggregate for Program {
    const TYPE: &'static str = "Program";
    type Command = ProgramCommand;
    type Event = ProgramEvent;
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
            ProgramCommand::Create(details) => {
                if self.created {
                    return Err(DomainError::AlreadyExists);
                }
                validate(&details, services, None)?;
                let end = self.end_date_after(&details, today)?;
                let mut events = vec![ProgramEvent::ProgramCreated {
                    name: details.name.trim().to_owned(),
                    description: details.description.clone(),
                    program_type: Some(
                        details
                            .program_type
                            .clone()
                            .unwrap_or_else(default_program_type),
                    ),
                    target_type: details.target_type,
                    currency: details.currency.clone(),
                    eligibility_criteria: details.eligibility_criteria.clone(),
                    start_date: details.start_date,
                }];
                events.extend(identifiers::claims(Self::wanted_identifiers(&details)));
                let created = Program {
                    status: Some(ProgramStatus::Active),
                    ..Default::default()
                };
                events.extend(created.status_events(details.status, end));
                events
            }
            ProgramCommand::Replace(details) => {
                if !self.created {
                    return Err(DomainError::not_found("Program"));
                }
                validate(&details, services, Some(&name_alias(&self.name)))?;
                if Some(details.target_type) != self.target_type {
                    return Err(DomainError::conflict(
                        Some("targetType"),
                        "a program's target type is fixed when it is created: its memberships \
                         were enrolled against it",
                    ));
                }
                let end = self.end_date_after(&details, today)?;
                let wanted = Self::wanted_identifiers(&details);
                let mut events: Vec<ProgramEvent> =
                    identifiers::changes(&self.identifiers, &wanted);
                let name = details.name.trim().to_owned();
                if name != self.name {
                    events.push(ProgramEvent::ProgramRenamed { name });
                }
                let program_type = Some(
                    details
                        .program_type
                        .clone()
                        .unwrap_or_else(default_program_type),
                );
                if details.description != self.description
                    || details.eligibility_criteria != self.eligibility_criteria
                    || program_type != self.program_type
                {
                    events.push(ProgramEvent::ProgramDescribed {
                        description: details.description.clone(),
                        eligibility_criteria: details.eligibility_criteria.clone(),
                        program_type,
                    });
                }
                if details.start_date != self.start_date {
                    events.push(ProgramEvent::StartDateChanged {
                        start_date: details.start_date,
                    });
                }
                if details.currency != self.currency {
                    events.push(ProgramEvent::CurrencyChanged {
                        currency: details.currency.clone(),
                    });
                }
                events.extend(self.status_events(details.status, end));
                events
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
            ProgramEvent::ProgramCreated {
                name,
                description,
                program_type,
                target_type,
                currency,
                eligibility_criteria,
                start_date,
            } => {
                self.created = true;
                self.status = Some(ProgramStatus::Active);
                self.name = name;
                self.description = description;
                self.program_type = program_type;
                self.target_type = Some(target_type);
                self.currency = currency;
                self.eligibility_criteria = eligibility_criteria;
                self.start_date = start_date;
            }
            ProgramEvent::IdentifierAdded { identifier } => {
                identifiers::add(&mut self.identifiers, identifier)
            }
            ProgramEvent::IdentifierInvalidated { identifier } => {
                identifiers::invalidate(&mut self.identifiers, &identifier)
            }
            ProgramEvent::ProgramRenamed { name } => self.name = name,
            ProgramEvent::ProgramDescribed {
                description,
                eligibility_criteria,
                program_type,
            } => {
                self.description = description;
                self.eligibility_criteria = eligibility_criteria;
                self.program_type = program_type;
            }
            ProgramEvent::TargetTypeChanged { target_type } => self.target_type = Some(target_type),
            ProgramEvent::StartDateChanged { start_date } => self.start_date = start_date,
            ProgramEvent::CurrencyChanged { currency } => self.currency = currency,
            ProgramEvent::ProgramEnded { end_date } => {
                self.status = Some(ProgramStatus::Ended);
                self.end_date = Some(end_date);
            }
            ProgramEvent::ProgramArchived => self.status = Some(ProgramStatus::Archived),
            ProgramEvent::ProgramReactivated => {
                self.status = Some(ProgramStatus::Active);
                self.end_date = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{code, date, id, services, today, NATIONAL_ID};

    const OPERATOR_ID: &str = "urn:gov:ph:dswd:program";

    fn details(name: &str) -> ProgramDetails {
        ProgramDetails {
            identifiers: vec![id(OPERATOR_ID, "4Ps")],
            name: name.into(),
            description: Some("Conditional cash transfer".into()),
            program_type: Some(code(PROGRAM_TYPE, "cash-transfer")),
            target_type: TargetType::Group,
            currency: "PHP".into(),
            eligibility_criteria: None,
            start_date: Some(date(2024, 1, 1)),
            end_date: None,
            status: ProgramStatus::Active,
        }
    }

    fn alias(value: &str) -> Identifier {
        id(NAME_ALIAS_SYSTEM, value)
    }

    /// The events of creating `details("Cash Transfer")`.
    fn created() -> Vec<ProgramEvent> {
        vec![
            ProgramEvent::ProgramCreated {
                name: "Cash Transfer".into(),
                description: Some("Conditional cash transfer".into()),
                program_type: Some(code(PROGRAM_TYPE, "cash-transfer")),
                target_type: TargetType::Group,
                currency: "PHP".into(),
                eligibility_criteria: None,
                start_date: Some(date(2024, 1, 1)),
            },
            ProgramEvent::IdentifierAdded {
                identifier: id(OPERATOR_ID, "4Ps"),
            },
            ProgramEvent::IdentifierAdded {
                identifier: alias("cash-transfer"),
            },
        ]
    }

    async fn run(
        given: Vec<ProgramEvent>,
        command: ProgramCommand,
    ) -> Result<Vec<ProgramEvent>, DomainError> {
        TestFramework::<Program>::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    async fn replace(
        given: Vec<ProgramEvent>,
        details: ProgramDetails,
    ) -> Result<Vec<ProgramEvent>, DomainError> {
        run(given, ProgramCommand::Replace(details)).await
    }

    fn refused_field(outcome: Result<Vec<ProgramEvent>, DomainError>) -> String {
        match outcome {
            Err(DomainError::Invalid { field, .. })
            | Err(DomainError::Conflict {
                field: Some(field), ..
            }) => field,
            other => panic!("expected a refusal naming a field, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn names_texts_and_dates_are_bounded() {
        let long = details(&"n".repeat(crate::bounds::SHORT_TEXT + 1));
        let refused = run(vec![], ProgramCommand::Create(long)).await;
        assert!(matches!(refused, Err(DomainError::Invalid { field, .. }) if field == "name"));
        let mut early = details("Cash Transfer");
        early.start_date = NaiveDate::from_ymd_opt(-1, 1, 1);
        let refused = run(vec![], ProgramCommand::Create(early)).await;
        assert!(
            matches!(refused, Err(DomainError::Invalid { field, .. }) if field == "period.start")
        );
    }

    #[tokio::test]
    async fn creation_records_the_program_its_identifiers_and_name_alias() {
        TestFramework::<Program>::with(services())
            .given_no_previous_events()
            .when_async(ProgramCommand::Create(details("  Cash Transfer ")))
            .await
            .then_expect_events(created());
        let again = run(created(), ProgramCommand::Create(details("Cash Transfer"))).await;
        assert_eq!(again, Err(DomainError::AlreadyExists));
        let missing = replace(vec![], details("Cash Transfer")).await;
        assert_eq!(missing, Err(DomainError::not_found("Program")));
    }

    #[tokio::test]
    async fn a_program_without_a_type_has_openspps_default() {
        let mut untyped = details("Cash Transfer");
        untyped.program_type = None;
        let events = run(vec![], ProgramCommand::Create(untyped)).await.unwrap();
        assert!(matches!(
            &events[0],
            ProgramEvent::ProgramCreated { program_type: Some(c), .. }
                if *c == code(PROGRAM_TYPE, DEFAULT_PROGRAM_TYPE)
        ));
        assert_eq!(
            Program::default().program_type(),
            code(PROGRAM_TYPE, DEFAULT_PROGRAM_TYPE)
        );
    }

    #[tokio::test]
    async fn a_rename_moves_the_name_alias_and_describing_changes_the_text() {
        let mut renamed = details("Cash Transfer 2026");
        // A read sent back with a new name still carries the old alias.
        renamed.identifiers.push(alias("cash-transfer"));
        renamed.description = Some("Unconditional".into());
        renamed.eligibility_criteria = Some("Households below the poverty line".into());
        assert_eq!(
            replace(created(), renamed).await,
            Ok(vec![
                ProgramEvent::IdentifierInvalidated {
                    identifier: alias("cash-transfer"),
                },
                ProgramEvent::IdentifierAdded {
                    identifier: alias("cash-transfer-2026"),
                },
                ProgramEvent::ProgramRenamed {
                    name: "Cash Transfer 2026".into(),
                },
                ProgramEvent::ProgramDescribed {
                    description: Some("Unconditional".into()),
                    eligibility_criteria: Some("Households below the poverty line".into()),
                    program_type: Some(code(PROGRAM_TYPE, "cash-transfer")),
                },
            ])
        );
        // The same content again changes nothing.
        assert_eq!(
            replace(created(), details("Cash Transfer")).await,
            Ok(vec![])
        );
    }

    #[tokio::test]
    async fn the_target_type_is_fixed_at_creation() {
        let mut individuals = details("Cash Transfer");
        individuals.target_type = TargetType::Individual;
        assert_eq!(
            refused_field(replace(created(), individuals).await),
            "targetType"
        );
    }

    #[tokio::test]
    async fn currency_and_start_date_changes_are_recorded() {
        let mut changed = details("Cash Transfer");
        changed.currency = "USD".into();
        changed.start_date = Some(date(2024, 2, 1));
        assert_eq!(
            replace(created(), changed).await,
            Ok(vec![
                ProgramEvent::StartDateChanged {
                    start_date: Some(date(2024, 2, 1)),
                },
                ProgramEvent::CurrencyChanged {
                    currency: "USD".into(),
                },
            ])
        );
    }

    fn ended_on(end_date: NaiveDate) -> Vec<ProgramEvent> {
        let mut events = created();
        events.push(ProgramEvent::ProgramEnded { end_date });
        events
    }

    fn with_status(status: ProgramStatus, end_date: Option<NaiveDate>) -> ProgramDetails {
        ProgramDetails {
            status,
            end_date,
            ..details("Cash Transfer")
        }
    }

    #[tokio::test]
    async fn a_program_ends_today_or_on_the_given_past_date() {
        assert_eq!(
            replace(created(), with_status(ProgramStatus::Ended, None)).await,
            Ok(vec![ProgramEvent::ProgramEnded { end_date: today() }])
        );
        assert_eq!(
            replace(
                created(),
                with_status(ProgramStatus::Ended, Some(date(2024, 3, 31)))
            )
            .await,
            Ok(vec![ProgramEvent::ProgramEnded {
                end_date: date(2024, 3, 31)
            }])
        );
        let future = with_status(ProgramStatus::Ended, today().succ_opt());
        assert_eq!(
            refused_field(replace(created(), future).await),
            "period.end"
        );
        let before_start = with_status(ProgramStatus::Ended, Some(date(2023, 12, 31)));
        assert_eq!(
            refused_field(replace(created(), before_start).await),
            "period.end"
        );
        // An end date on a program that is not ending is refused, not dropped.
        let active = with_status(ProgramStatus::Active, Some(date(2024, 3, 31)));
        assert_eq!(
            refused_field(replace(created(), active).await),
            "period.end"
        );
        let created_active = run(
            vec![],
            ProgramCommand::Create(with_status(ProgramStatus::Active, Some(date(2024, 3, 31)))),
        )
        .await;
        assert_eq!(refused_field(created_active), "period.end");
        // Once ended, the end date is the recorded one.
        let ended = ended_on(date(2024, 3, 31));
        assert_eq!(
            replace(
                ended.clone(),
                with_status(ProgramStatus::Ended, Some(date(2024, 3, 31)))
            )
            .await,
            Ok(vec![])
        );
        let moved = with_status(ProgramStatus::Ended, Some(date(2024, 4, 1)));
        assert_eq!(refused_field(replace(ended, moved).await), "period.end");
    }

    #[tokio::test]
    async fn archiving_and_reactivation() {
        let ended = ended_on(date(2024, 3, 31));
        // Archiving an ended program keeps its end date.
        assert_eq!(
            replace(
                ended.clone(),
                with_status(ProgramStatus::Archived, Some(date(2024, 3, 31)))
            )
            .await,
            Ok(vec![ProgramEvent::ProgramArchived])
        );
        assert_eq!(
            replace(ended.clone(), with_status(ProgramStatus::Active, None)).await,
            Ok(vec![ProgramEvent::ProgramReactivated])
        );
        // A reactivated program has no end date any more.
        let still_dated = with_status(ProgramStatus::Active, Some(date(2024, 3, 31)));
        assert_eq!(
            refused_field(replace(ended.clone(), still_dated).await),
            "period.end"
        );
        let mut program = Program::default();
        for event in ended.into_iter().chain([ProgramEvent::ProgramReactivated]) {
            program.apply(event);
        }
        assert!(program.is_active());
        assert_eq!(program.end_date, None);
        // Created archived: created, then archived.
        let archived = run(
            vec![],
            ProgramCommand::Create(with_status(ProgramStatus::Archived, None)),
        )
        .await
        .unwrap();
        assert_eq!(archived.last(), Some(&ProgramEvent::ProgramArchived));
    }

    #[tokio::test]
    async fn content_is_validated() {
        let refused = |change: fn(&mut ProgramDetails)| async move {
            let mut d = details("Cash Transfer");
            change(&mut d);
            refused_field(run(vec![], ProgramCommand::Create(d)).await)
        };
        assert_eq!(refused(|d| d.name = "  ".into()).await, "name");
        assert_eq!(refused(|d| d.currency = "peso".into()).await, "currency");
        assert_eq!(
            refused(|d| d.program_type = Some(code(PROGRAM_TYPE, "lottery"))).await,
            "programType"
        );
        assert_eq!(
            refused(|d| d.program_type = Some(code("urn:iso:std:iso:5218", "1"))).await,
            "programType"
        );
        assert_eq!(
            refused(|d| d.identifiers = vec![id("4Ps", "x")]).await,
            "identifier[0].system"
        );
        assert_eq!(
            refused(|d| d.identifiers = vec![id("httpfoo", "x")]).await,
            "identifier[0].system"
        );
        // A program cannot take a registrant's or a membership's identifier.
        assert_eq!(
            refused(|d| d.identifiers = vec![id(NATIONAL_ID, "P1")]).await,
            "identifier[0].system"
        );
        assert_eq!(
            refused(
                |d| d.identifiers = vec![id(crate::program_membership::IDENTIFIER_SYSTEM, "m1")]
            )
            .await,
            "identifier[0].system"
        );
        assert_eq!(
            refused(|d| d.identifiers = vec![id(OPERATOR_ID, " ")]).await,
            "identifier[0].value"
        );
        assert_eq!(
            refused(|d| d.identifiers = vec![id(OPERATOR_ID, "a"), id(OPERATOR_ID, "a")]).await,
            "identifier[1].value"
        );
        // The alias follows the name; another value in its system is refused, not dropped.
        assert_eq!(
            refused(|d| d.identifiers = vec![alias("something-else")]).await,
            "identifier[0].value"
        );
        let mut own_alias = details("Cash Transfer");
        own_alias.identifiers.push(alias("cash-transfer"));
        assert_eq!(
            run(vec![], ProgramCommand::Create(own_alias)).await,
            Ok(created())
        );
    }

    #[test]
    fn lookups_by_name_alias_ignore_case_and_spacing() {
        assert_eq!(
            lookup_key(alias("Cash-Transfer-2026")),
            alias("cash-transfer-2026")
        );
        assert_eq!(
            lookup_key(alias("cash transfer 2026")),
            alias("cash-transfer-2026")
        );
        assert_eq!(lookup_key(id(OPERATOR_ID, "4Ps")), id(OPERATOR_ID, "4Ps"));
    }
}
