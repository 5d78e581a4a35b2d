//! A social-protection program. Operators create and change programs; integrators read them
//! and enrol beneficiaries. OpenSPP derives a program's identifier from its name
//! (`urn:openspp:program|{name-with-hyphens}`); that alias is kept as a live identifier of the
//! stream, so it stays resolvable, moves with a rename, and makes program names unique.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::identifiers::{self, IdentifierEntry};
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::values::{Code, Identifier};

pub const PROGRAM_TYPE: &str = "urn:openspp:vocab:program-type";
/// The system of the identifier OpenSPP derives from a program's name.
pub const NAME_ALIAS_SYSTEM: &str = "urn:openspp:program";

/// Who a program serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    Individual,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramStatus {
    Active,
    Ended,
    Archived,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramDetails {
    /// Identifiers the operator gives; the name alias is added by the program itself.
    pub identifiers: Vec<Identifier>,
    pub name: String,
    pub description: Option<String>,
    pub program_type: Option<Code>,
    pub target_type: TargetType,
    /// ISO 4217.
    pub currency: String,
    pub eligibility_criteria: Option<String>,
    pub start_date: Option<NaiveDate>,
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
    TargetTypeChanged {
        target_type: TargetType,
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

impl InlineIndex for ProgramEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        match self {
            Self::IdentifierAdded { identifier } => {
                Some(IndexChange::IdentifierClaimed(identifier))
            }
            Self::IdentifierInvalidated { identifier } => {
                Some(IndexChange::IdentifierReleased(identifier))
            }
            _ => None,
        }
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

impl Program {
    pub fn live_identifiers(&self) -> impl Iterator<Item = &Identifier> {
        identifiers::live(&self.identifiers)
    }

    pub fn is_active(&self) -> bool {
        self.status == Some(ProgramStatus::Active)
    }

    /// The identifiers the program should hold: the operator's, then the name alias.
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

    fn status_events(&self, wanted: ProgramStatus, today: NaiveDate) -> Vec<ProgramEvent> {
        match (self.status, wanted) {
            (Some(current), wanted) if current == wanted => vec![],
            (_, ProgramStatus::Ended) => vec![ProgramEvent::ProgramEnded { end_date: today }],
            (_, ProgramStatus::Archived) => vec![ProgramEvent::ProgramArchived],
            (_, ProgramStatus::Active) => vec![ProgramEvent::ProgramReactivated],
        }
    }
}

fn validate(details: &ProgramDetails, services: &RegistryServices) -> Result<(), DomainError> {
    if details.name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    for (i, identifier) in details.identifiers.iter().enumerate() {
        if !(identifier.system.starts_with("urn:") || identifier.system.starts_with("http")) {
            return Err(DomainError::invalid(
                format!("identifier[{i}].system"),
                "must be a namespace URI (urn:… or http…)",
            ));
        }
        if identifier.value.trim().is_empty() {
            return Err(DomainError::invalid(
                format!("identifier[{i}].value"),
                "must not be empty",
            ));
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
                validate(&details, services)?;
                let mut events = vec![ProgramEvent::ProgramCreated {
                    name: details.name.trim().to_owned(),
                    description: details.description.clone(),
                    program_type: details.program_type.clone(),
                    target_type: details.target_type,
                    currency: details.currency.clone(),
                    eligibility_criteria: details.eligibility_criteria.clone(),
                    start_date: details.start_date,
                }];
                events.extend(
                    Self::wanted_identifiers(&details)
                        .into_iter()
                        .map(|identifier| ProgramEvent::IdentifierAdded { identifier }),
                );
                if details.status != ProgramStatus::Active {
                    let created = Program {
                        status: Some(ProgramStatus::Active),
                        ..Default::default()
                    };
                    events.extend(created.status_events(details.status, today));
                }
                events
            }
            ProgramCommand::Replace(details) => {
                if !self.created {
                    return Err(DomainError::not_found("Program"));
                }
                validate(&details, services)?;
                let wanted = Self::wanted_identifiers(&details);
                let (released, claimed) = identifiers::diff(&self.identifiers, &wanted);
                let mut events: Vec<ProgramEvent> = released
                    .into_iter()
                    .map(|identifier| ProgramEvent::IdentifierInvalidated { identifier })
                    .chain(
                        claimed
                            .into_iter()
                            .map(|identifier| ProgramEvent::IdentifierAdded { identifier }),
                    )
                    .collect();
                let name = details.name.trim().to_owned();
                if name != self.name {
                    events.push(ProgramEvent::ProgramRenamed { name });
                }
                if details.description != self.description
                    || details.eligibility_criteria != self.eligibility_criteria
                    || details.program_type != self.program_type
                {
                    events.push(ProgramEvent::ProgramDescribed {
                        description: details.description,
                        eligibility_criteria: details.eligibility_criteria,
                        program_type: details.program_type,
                    });
                }
                if Some(details.target_type) != self.target_type {
                    events.push(ProgramEvent::TargetTypeChanged {
                        target_type: details.target_type,
                    });
                }
                if details.currency != self.currency {
                    events.push(ProgramEvent::CurrencyChanged {
                        currency: details.currency,
                    });
                }
                events.extend(self.status_events(details.status, today));
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
