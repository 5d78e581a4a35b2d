//! A service point: where beneficiaries collect cash or goods (OpenSPP `spp.service.point`).
//! OpenSPP addresses it by name (`ServicePoint/{name}`), so the name is claimed as an
//! identifier and names one service point. Operators register and change them.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::DomainError;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::values::Identifier;

/// The system of the identifier a service point's name is claimed under.
pub const NAME_SYSTEM: &str = "urn:openspp:service-point";
/// The vocabulary of the services a point offers.
pub const SERVICE_TYPES: &str = "urn:openspp:vocab:service-types";

/// What a service point is: everything but its name is changed by a replacement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePointDetails {
    pub name: String,
    pub contract_active: bool,
    pub disabled: bool,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// The area's name.
    pub area: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    /// The operating company's name.
    pub company: Option<String>,
    /// Codes of [`SERVICE_TYPES`].
    pub service_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServicePointCommand {
    Register(ServicePointDetails),
    Replace(ServicePointDetails),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServicePointEvent {
    ServicePointRegistered {
        /// The name, claimed in [`NAME_SYSTEM`].
        identifier: Identifier,
        details: ServicePointDetails,
    },
    ServicePointChanged {
        details: ServicePointDetails,
    },
}

impl DomainEvent for ServicePointEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ServicePointRegistered { .. } => "ServicePointRegistered",
            Self::ServicePointChanged { .. } => "ServicePointChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for ServicePointEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        match self {
            Self::ServicePointRegistered { identifier, .. } => {
                Some(IndexChange::IdentifierClaimed(identifier))
            }
            Self::ServicePointChanged { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePoint {
    pub registered: bool,
    pub details: ServicePointDetails,
    pub version: u64,
}

/// The identifier a service point's name is claimed as (and looked up by).
pub fn name_identifier(name: &str) -> Identifier {
    Identifier {
        system: NAME_SYSTEM.to_owned(),
        value: name.to_owned(),
    }
}

fn validate(details: &ServicePointDetails, services: &RegistryServices) -> Result<(), DomainError> {
    if details.name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    bounds::text("name", &details.name, bounds::SHORT_TEXT)?;
    for (field, text, max) in [
        ("area", &details.area, bounds::SHORT_TEXT),
        ("company", &details.company, bounds::SHORT_TEXT),
        ("telecom", &details.phone, bounds::SHORT_TEXT),
        ("address", &details.address, bounds::LONG_TEXT),
    ] {
        bounds::optional_text(field, text.as_deref(), max)?;
    }
    if let Some(country) = &details.country {
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(DomainError::invalid(
                "country",
                "must be an ISO 3166-1 alpha-2 code such as PH",
            ));
        }
    }
    bounds::items(
        "serviceType",
        details.service_types.len(),
        bounds::items::CODINGS,
    )?;
    if let Some(code) = details
        .service_types
        .iter()
        .find(|code| !services.vocabulary.has_code(SERVICE_TYPES, code))
    {
        return Err(DomainError::invalid(
            "serviceType",
            format!("unknown code {code}; use {SERVICE_TYPES}"),
        ));
    }
    Ok(())
}

impl Aggregate for ServicePoint {
    const TYPE: &'static str = "ServicePoint";
    type Command = ServicePointCommand;
    type Event = ServicePointEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ServicePointCommand::Register(mut details) => {
                if self.registered {
                    return Err(DomainError::AlreadyExists);
                }
                details.name = details.name.trim().to_owned();
                validate(&details, services)?;
                ServicePointEvent::ServicePointRegistered {
                    identifier: name_identifier(&details.name),
                    details,
                }
            }
            ServicePointCommand::Replace(mut details) => {
                if !self.registered {
                    return Err(DomainError::not_found("ServicePoint"));
                }
                details.name = details.name.trim().to_owned();
                if details.name != self.details.name {
                    return Err(DomainError::invalid(
                        "name",
                        "is the service point's identifier and never changes",
                    ));
                }
                validate(&details, services)?;
                if details == self.details {
                    return Ok(());
                }
                ServicePointEvent::ServicePointChanged { details }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            ServicePointEvent::ServicePointRegistered { details, .. }
            | ServicePointEvent::ServicePointChanged { details } => {
                self.registered = true;
                self.details = details;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::services;

    fn details() -> ServicePointDetails {
        ServicePointDetails {
            name: "Manila Center".into(),
            contract_active: true,
            country: Some("PH".into()),
            area: Some("Manila".into()),
            service_types: vec!["CASH".into()],
            ..ServicePointDetails::default()
        }
    }

    async fn run(
        given: Vec<ServicePointEvent>,
        command: ServicePointCommand,
    ) -> Result<Vec<ServicePointEvent>, DomainError> {
        TestFramework::<ServicePoint>::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    fn registered() -> ServicePointEvent {
        ServicePointEvent::ServicePointRegistered {
            identifier: name_identifier("Manila Center"),
            details: details(),
        }
    }

    #[tokio::test]
    async fn a_service_point_is_registered_under_its_name() {
        assert_eq!(
            run(vec![], ServicePointCommand::Register(details())).await,
            Ok(vec![registered()])
        );
        assert_eq!(
            run(vec![registered()], ServicePointCommand::Register(details())).await,
            Err(DomainError::AlreadyExists)
        );
    }

    #[tokio::test]
    async fn country_and_service_types_are_checked() {
        let mut lower = details();
        lower.country = Some("ph".into());
        assert_eq!(
            run(vec![], ServicePointCommand::Register(lower)).await,
            Err(DomainError::invalid(
                "country",
                "must be an ISO 3166-1 alpha-2 code such as PH"
            ))
        );
        let mut unknown = details();
        unknown.service_types = vec!["TELEPORT".into()];
        assert!(matches!(
            run(vec![], ServicePointCommand::Register(unknown)).await,
            Err(DomainError::Invalid { field, .. }) if field == "serviceType"
        ));
    }

    #[tokio::test]
    async fn a_replacement_keeps_the_name_and_changes_the_rest() {
        let mut closed = details();
        closed.contract_active = false;
        assert_eq!(
            run(
                vec![registered()],
                ServicePointCommand::Replace(closed.clone())
            )
            .await,
            Ok(vec![ServicePointEvent::ServicePointChanged {
                details: closed
            }])
        );
        assert_eq!(
            run(vec![registered()], ServicePointCommand::Replace(details())).await,
            Ok(vec![])
        );
        let mut renamed = details();
        renamed.name = "Cebu".into();
        assert!(
            run(vec![registered()], ServicePointCommand::Replace(renamed))
                .await
                .is_err()
        );
    }
}
