//! A person in the registry. Registration and replacement (PUT) are decided here; a
//! replacement is recorded as the small events of what actually changed, so the history reads
//! as a story ("name changed", "identifier invalidated") rather than as snapshots.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::consent::{extension_field, Access};
use crate::error::DomainError;
use crate::extension::{self, ExtensionData};
use crate::identifiers::{self, IdentifierEntry, IdentifierEvents};
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::values::{Address, Code, ContactPoint, HumanName, Identifier};
use crate::vocabulary::{TargetType, GENDER};

/// Everything a client states about a person.
#[derive(Debug, Clone, PartialEq)]
pub struct IndividualDetails {
    pub identifiers: Vec<Identifier>,
    pub active: bool,
    pub name: HumanName,
    pub birth_date: Option<NaiveDate>,
    pub birth_date_estimated: bool,
    pub gender: Option<Code>,
    pub telecom: Vec<ContactPoint>,
    pub address: Vec<Address>,
    /// OpenSPP's `photo`: an image as base64 text, checked as such where it arrives.
    pub photo: Option<String>,
    /// The body's `extension` as sent: checked against the registered extensions.
    pub extension: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IndividualCommand {
    Register(IndividualDetails),
    /// A PUT: the aggregate works out what changed. `stated` names the fields the body gave
    /// (absent ones are cleared, unless the caller may not see them: those stay as they are);
    /// `access` says who asks, and under which consents or legal basis.
    Replace {
        details: IndividualDetails,
        stated: Vec<String>,
        access: Access,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IndividualEvent {
    IndividualRegistered {
        name: HumanName,
        birth_date: Option<NaiveDate>,
        birth_date_estimated: bool,
        gender: Option<Code>,
        telecom: Vec<ContactPoint>,
        address: Vec<Address>,
    },
    IdentifierAdded {
        identifier: Identifier,
    },
    IdentifierInvalidated {
        identifier: Identifier,
    },
    NameChanged {
        name: HumanName,
    },
    BirthDateChanged {
        birth_date: Option<NaiveDate>,
        birth_date_estimated: bool,
    },
    GenderChanged {
        gender: Option<Code>,
    },
    TelecomChanged {
        telecom: Vec<ContactPoint>,
    },
    AddressChanged {
        address: Vec<Address>,
    },
    IndividualDeactivated,
    IndividualReactivated,
    /// The photo now is `photo` (`None`: removed); a registration with a photo records it so.
    PhotoChanged {
        photo: Option<String>,
    },
    /// The data of one registered extension, as it now is.
    ExtensionRecorded {
        url: String,
        value: serde_json::Value,
    },
    ExtensionRemoved {
        url: String,
    },
}

impl DomainEvent for IndividualEvent {
    fn event_type(&self) -> String {
        match self {
            Self::IndividualRegistered { .. } => "IndividualRegistered",
            Self::IdentifierAdded { .. } => "IdentifierAdded",
            Self::IdentifierInvalidated { .. } => "IdentifierInvalidated",
            Self::NameChanged { .. } => "NameChanged",
            Self::BirthDateChanged { .. } => "BirthDateChanged",
            Self::GenderChanged { .. } => "GenderChanged",
            Self::TelecomChanged { .. } => "TelecomChanged",
            Self::AddressChanged { .. } => "AddressChanged",
            Self::IndividualDeactivated => "IndividualDeactivated",
            Self::IndividualReactivated => "IndividualReactivated",
            Self::PhotoChanged { .. } => "PhotoChanged",
            Self::ExtensionRecorded { .. } => "ExtensionRecorded",
            Self::ExtensionRemoved { .. } => "ExtensionRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

extension::extension_events!(IndividualEvent, Individual);
identifiers::identifier_events!(IndividualEvent);

impl InlineIndex for IndividualEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        self.identifier_change()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Individual {
    pub registered: bool,
    pub identifiers: Vec<IdentifierEntry>,
    pub name: HumanName,
    pub birth_date: Option<NaiveDate>,
    pub birth_date_estimated: bool,
    pub gender: Option<Code>,
    pub telecom: Vec<ContactPoint>,
    pub address: Vec<Address>,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// Registered extension data, by extension URI.
    #[serde(default, skip_serializing_if = "ExtensionData::is_empty")]
    pub extension: ExtensionData,
    /// Events applied so far: the stream's sequence number, the resource's version.
    pub version: u64,
}

const TELECOM_SYSTEMS: [&str; 5] = ["phone", "email", "fax", "url", "sms"];
const TELECOM_USES: [&str; 3] = ["home", "work", "mobile"];
const ADDRESS_TYPES: [&str; 3] = ["physical", "postal", "both"];

impl Individual {
    pub fn live_identifiers(&self) -> impl Iterator<Item = &Identifier> {
        identifiers::live(&self.identifiers)
    }

    fn registration(details: IndividualDetails) -> Vec<IndividualEvent> {
        let mut events = vec![IndividualEvent::IndividualRegistered {
            name: details.name,
            birth_date: details.birth_date,
            birth_date_estimated: details.birth_date_estimated,
            gender: details.gender,
            telecom: details.telecom,
            address: details.address,
        }];
        events.extend(identifiers::claims(details.identifiers));
        if details.photo.is_some() {
            events.push(IndividualEvent::PhotoChanged {
                photo: details.photo,
            });
        }
        if !details.active {
            events.push(IndividualEvent::IndividualDeactivated);
        }
        events
    }

    /// `details` with the fields the caller cannot see taken from the current state: a
    /// replacement changes only what its author can see.
    fn keeping(&self, hidden: &[&str], mut details: IndividualDetails) -> IndividualDetails {
        for field in hidden {
            match *field {
                "name" => details.name = self.name.clone(),
                "birthDate" => details.birth_date = self.birth_date,
                "birthDateEstimated" => details.birth_date_estimated = self.birth_date_estimated,
                "gender" => details.gender = self.gender.clone(),
                "telecom" => details.telecom = self.telecom.clone(),
                "address" => details.address = self.address.clone(),
                "active" => details.active = self.active,
                "photo" => details.photo = self.photo.clone(),
                // Group memberships are not held in this stream; extensions a body leaves
                // out are kept whoever asks (`extension::change_events`).
                _ => {}
            }
        }
        details
    }

    /// Only what differs; invalidations before additions so a system's identifier can be
    /// replaced in one request.
    fn changes(&self, details: IndividualDetails) -> Vec<IndividualEvent> {
        let mut events: Vec<IndividualEvent> =
            identifiers::changes(&self.identifiers, &details.identifiers);
        if details.name != self.name {
            events.push(IndividualEvent::NameChanged { name: details.name });
        }
        if details.birth_date != self.birth_date
            || details.birth_date_estimated != self.birth_date_estimated
        {
            events.push(IndividualEvent::BirthDateChanged {
                birth_date: details.birth_date,
                birth_date_estimated: details.birth_date_estimated,
            });
        }
        if details.gender != self.gender {
            events.push(IndividualEvent::GenderChanged {
                gender: details.gender,
            });
        }
        if details.telecom != self.telecom {
            events.push(IndividualEvent::TelecomChanged {
                telecom: details.telecom,
            });
        }
        if details.address != self.address {
            events.push(IndividualEvent::AddressChanged {
                address: details.address,
            });
        }
        if details.photo != self.photo {
            events.push(IndividualEvent::PhotoChanged {
                photo: details.photo,
            });
        }
        match (self.active, details.active) {
            (true, false) => events.push(IndividualEvent::IndividualDeactivated),
            (false, true) => events.push(IndividualEvent::IndividualReactivated),
            _ => {}
        }
        events
    }
}

fn validate(details: &IndividualDetails, services: &RegistryServices) -> Result<(), DomainError> {
    let vocabulary = services.vocabulary.as_ref();
    identifiers::validate(&details.identifiers, TargetType::Individual, vocabulary)?;
    let has_text = |part: &Option<String>| part.as_deref().is_some_and(|p| !p.trim().is_empty());
    if !has_text(&details.name.family) && !has_text(&details.name.given) {
        return Err(DomainError::invalid(
            "name",
            "needs a family or a given name",
        ));
    }
    let name = &details.name;
    for (part, value) in [
        ("family", &name.family),
        ("given", &name.given),
        ("middle", &name.middle),
        ("prefix", &name.prefix),
        ("suffix", &name.suffix),
        ("text", &name.text),
    ] {
        bounds::optional_text(
            &format!("name.{part}"),
            value.as_deref(),
            bounds::SHORT_TEXT,
        )?;
    }
    bounds::search_name("name", &name.search_text())?;
    if let Some(birth_date) = details.birth_date {
        bounds::past_date("birthDate", birth_date, services.clock.today())?;
    }
    bounds::optional_text("photo", details.photo.as_deref(), bounds::PHOTO)?;
    if let Some(gender) = &details.gender {
        if gender.system != GENDER || !vocabulary.has_code(GENDER, &gender.code) {
            return Err(DomainError::invalid(
                "gender",
                format!(
                    "unknown code {}|{}; use {GENDER}",
                    gender.system, gender.code
                ),
            ));
        }
    }
    bounds::items("telecom", details.telecom.len(), bounds::items::TELECOM)?;
    for (i, contact) in details.telecom.iter().enumerate() {
        if !TELECOM_SYSTEMS.contains(&contact.system.as_str()) {
            return Err(DomainError::invalid(
                format!("telecom[{i}].system"),
                format!("must be one of {}", TELECOM_SYSTEMS.join(", ")),
            ));
        }
        if contact.value.trim().is_empty() {
            return Err(DomainError::invalid(
                format!("telecom[{i}].value"),
                "must not be empty",
            ));
        }
        bounds::text(
            &format!("telecom[{i}].value"),
            &contact.value,
            bounds::LONG_TEXT,
        )?;
        if let Some(use_) = &contact.use_ {
            if !TELECOM_USES.contains(&use_.as_str()) {
                return Err(DomainError::invalid(
                    format!("telecom[{i}].use"),
                    format!("must be one of {}", TELECOM_USES.join(", ")),
                ));
            }
        }
        if contact.rank == Some(0) {
            return Err(DomainError::invalid(
                format!("telecom[{i}].rank"),
                "must be 1 or more",
            ));
        }
    }
    validate_addresses(&details.address)
}

/// Address rules, shared with groups.
pub(crate) fn validate_addresses(addresses: &[Address]) -> Result<(), DomainError> {
    bounds::items("address", addresses.len(), bounds::items::ADDRESSES)?;
    for (i, address) in addresses.iter().enumerate() {
        if let Some(kind) = &address.kind {
            if !ADDRESS_TYPES.contains(&kind.as_str()) {
                return Err(DomainError::invalid(
                    format!("address[{i}].type"),
                    format!("must be one of {}", ADDRESS_TYPES.join(", ")),
                ));
            }
        }
        for (part, value) in [
            ("text", &address.text),
            ("city", &address.city),
            ("district", &address.district),
            ("state", &address.state),
            ("postalCode", &address.postal_code),
            ("country", &address.country),
        ] {
            let field = format!("address[{i}].{part}");
            bounds::optional_text(&field, value.as_deref(), bounds::LONG_TEXT)?;
        }
        let lines = format!("address[{i}].line");
        bounds::items(&lines, address.line.len(), bounds::items::ADDRESS_LINES)?;
        for (j, line) in address.line.iter().enumerate() {
            bounds::text(&format!("address[{i}].line[{j}]"), line, bounds::LONG_TEXT)?;
        }
    }
    Ok(())
}

impl Aggregate for Individual {
    const TYPE: &'static str = "Individual";
    type Command = IndividualCommand;
    type Event = IndividualEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            IndividualCommand::Register(details) => {
                let extensions = extension::registration_changes(
                    self.registered,
                    || validate(&details, services),
                    details.extension.as_ref(),
                    &self.extension,
                    services.extensions.as_ref(),
                )?;
                let mut events = Self::registration(details);
                events.extend(extensions);
                events
            }
            IndividualCommand::Replace {
                details,
                stated,
                access,
            } => {
                if !self.registered {
                    return Err(DomainError::not_found("Individual"));
                }
                let today = services.clock.today();
                access.permits("individual", "Individual", today)?;
                identifiers::check_authority(&access, &self.identifiers, &details.identifiers)?;
                let hidden = access.hidden_fields("individual", &stated, today)?;
                let details = self.keeping(&hidden, details);
                validate(&details, services)?;
                let visible = |uri: &str| access.sees("individual", &extension_field(uri), today);
                let extensions = extension::change_events(
                    details.extension.as_ref(),
                    &self.extension,
                    services.extensions.as_ref(),
                    &visible,
                )?;
                let mut events = self.changes(details);
                events.extend(extensions);
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
            IndividualEvent::IndividualRegistered {
                name,
                birth_date,
                birth_date_estimated,
                gender,
                telecom,
                address,
            } => {
                self.registered = true;
                self.active = true;
                self.name = name;
                self.birth_date = birth_date;
                self.birth_date_estimated = birth_date_estimated;
                self.gender = gender;
                self.telecom = telecom;
                self.address = address;
            }
            IndividualEvent::IdentifierAdded { identifier } => {
                identifiers::add(&mut self.identifiers, identifier)
            }
            IndividualEvent::IdentifierInvalidated { identifier } => {
                identifiers::invalidate(&mut self.identifiers, &identifier)
            }
            IndividualEvent::NameChanged { name } => self.name = name,
            IndividualEvent::BirthDateChanged {
                birth_date,
                birth_date_estimated,
            } => {
                self.birth_date = birth_date;
                self.birth_date_estimated = birth_date_estimated;
            }
            IndividualEvent::GenderChanged { gender } => self.gender = gender,
            IndividualEvent::TelecomChanged { telecom } => self.telecom = telecom,
            IndividualEvent::AddressChanged { address } => self.address = address,
            IndividualEvent::IndividualDeactivated => self.active = false,
            IndividualEvent::IndividualReactivated => self.active = true,
            IndividualEvent::PhotoChanged { photo } => self.photo = photo,
            IndividualEvent::ExtensionRecorded { url, value } => {
                extension::apply(&mut self.extension, url, Some(value))
            }
            IndividualEvent::ExtensionRemoved { url } => {
                extension::apply(&mut self.extension, url, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;
    use crate::testing::{
        code, date, every_field, full_access, id, ngo, ngo_consent, services, today, NATIONAL_ID,
        PASSPORT,
    };

    type Given = TestFramework<Individual>;

    fn details() -> IndividualDetails {
        IndividualDetails {
            identifiers: vec![id(NATIONAL_ID, "N1")],
            active: true,
            name: HumanName {
                family: Some("Santos".into()),
                given: Some("Maria".into()),
                ..Default::default()
            },
            birth_date: Some(date(1985, 3, 15)),
            birth_date_estimated: false,
            gender: Some(code(GENDER, "2")),
            telecom: vec![],
            address: vec![],
            photo: None,
            extension: None,
        }
    }

    fn everything() -> Vec<String> {
        every_field("individual")
    }

    fn registered() -> Vec<IndividualEvent> {
        Individual::registration(details())
    }

    async fn refused(given: Vec<IndividualEvent>, command: IndividualCommand) -> DomainError {
        Given::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
            .expect_err("command must be refused")
    }

    fn field(error: DomainError) -> String {
        match error {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_photo_is_recorded_changed_removed_and_bounded() {
        let mut with_photo = details();
        with_photo.photo = Some("iVBORw0KGgo=".into());
        let events = Given::with(services())
            .given_no_previous_events()
            .when_async(IndividualCommand::Register(with_photo.clone()))
            .await
            .inspect_result()
            .unwrap();
        assert_eq!(
            events.last(),
            Some(&IndividualEvent::PhotoChanged {
                photo: Some("iVBORw0KGgo=".into())
            })
        );
        let replace = |photo: Option<&str>| IndividualCommand::Replace {
            details: IndividualDetails {
                photo: photo.map(str::to_owned),
                ..details()
            },
            stated: everything(),
            access: full_access(),
        };
        Given::with(services())
            .given(events.clone())
            .when_async(replace(None))
            .await
            .then_expect_events(vec![IndividualEvent::PhotoChanged { photo: None }]);
        Given::with(services())
            .given(events.clone())
            .when_async(replace(Some("iVBORw0KGgo=")))
            .await
            .then_expect_events(vec![]);
        let mut huge = details();
        huge.photo = Some("A".repeat(crate::bounds::PHOTO + 1));
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(huge)).await),
            "photo"
        );
        // A client whose consent does not cover the photo leaves it as it is.
        let limited = IndividualCommand::Replace {
            details: details(),
            stated: vec!["type".into(), "identifier".into(), "name".into()],
            access: Access {
                actor: ngo(),
                consents: vec![ngo_consent("s", "individual", Some(&["name"]))],
            },
        };
        Given::with(services())
            .given(events)
            .when_async(limited)
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn registration_records_the_person_then_each_identifier() {
        let mut d = details();
        d.identifiers.push(id(PASSPORT, "P1"));
        Given::with(services())
            .given_no_previous_events()
            .when_async(IndividualCommand::Register(d.clone()))
            .await
            .then_expect_events(vec![
                IndividualEvent::IndividualRegistered {
                    name: d.name,
                    birth_date: d.birth_date,
                    birth_date_estimated: false,
                    gender: d.gender,
                    telecom: vec![],
                    address: vec![],
                },
                IndividualEvent::IdentifierAdded {
                    identifier: id(NATIONAL_ID, "N1"),
                },
                IndividualEvent::IdentifierAdded {
                    identifier: id(PASSPORT, "P1"),
                },
            ]);
    }

    #[tokio::test]
    async fn an_inactive_registration_ends_deactivated() {
        let mut d = details();
        d.active = false;
        let events = Given::with(services())
            .given_no_previous_events()
            .when_async(IndividualCommand::Register(d))
            .await
            .inspect_result()
            .unwrap();
        assert_eq!(events.last(), Some(&IndividualEvent::IndividualDeactivated));
    }

    #[tokio::test]
    async fn registering_twice_is_refused() {
        let error = refused(registered(), IndividualCommand::Register(details())).await;
        assert_eq!(error, DomainError::AlreadyExists);
    }

    #[tokio::test]
    async fn replacing_an_unknown_individual_is_not_found() {
        let error = refused(
            vec![],
            IndividualCommand::Replace {
                details: details(),
                stated: everything(),
                access: full_access(),
            },
        )
        .await;
        assert_eq!(error, DomainError::not_found("Individual"));
    }

    #[tokio::test]
    async fn birth_date_today_is_accepted_and_tomorrow_refused() {
        let mut d = details();
        d.birth_date = Some(today());
        Given::with(services())
            .given_no_previous_events()
            .when_async(IndividualCommand::Register(d.clone()))
            .await
            .inspect_result()
            .unwrap();
        d.birth_date = today().succ_opt();
        let error = refused(vec![], IndividualCommand::Register(d)).await;
        assert_eq!(field(error), "birthDate");
    }

    #[tokio::test]
    async fn identifiers_are_checked() {
        let cases: Vec<(Vec<Identifier>, &str)> = vec![
            (vec![], "identifier"),
            (vec![id("urn:unknown", "1")], "identifier[0].system"),
            (vec![id("urn:openspp:group", "1")], "identifier[0].system"),
            (vec![id(NATIONAL_ID, "  ")], "identifier[0].value"),
            (
                vec![id(NATIONAL_ID, &"9".repeat(101))],
                "identifier[0].value",
            ),
            (
                vec![id(NATIONAL_ID, "1"), id(NATIONAL_ID, "2")],
                "identifier[1].system",
            ),
        ];
        for (identifiers, expected) in cases {
            let mut d = details();
            d.identifiers = identifiers;
            let error = refused(vec![], IndividualCommand::Register(d)).await;
            assert_eq!(field(error), expected);
        }
    }

    #[tokio::test]
    async fn coded_and_contact_fields_are_checked() {
        let mut d = details();
        d.gender = Some(code(GENDER, "5"));
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "gender"
        );
        let mut d = details();
        d.gender = Some(code("urn:other", "2"));
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "gender"
        );
        let mut d = details();
        d.name = HumanName::default();
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "name"
        );
        let contact = |system: &str, use_: Option<&str>, rank| ContactPoint {
            system: system.into(),
            value: "+63".into(),
            use_: use_.map(Into::into),
            rank,
        };
        for (contact, expected) in [
            (contact("pigeon", None, None), "telecom[0].system"),
            (contact("phone", Some("holiday"), None), "telecom[0].use"),
            (contact("phone", None, Some(0)), "telecom[0].rank"),
        ] {
            let mut d = details();
            d.telecom = vec![contact];
            assert_eq!(
                field(refused(vec![], IndividualCommand::Register(d)).await),
                expected
            );
        }
        let mut d = details();
        d.address = vec![Address {
            kind: Some("imaginary".into()),
            ..Default::default()
        }];
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "address[0].type"
        );
    }

    #[tokio::test]
    async fn replace_records_only_what_changed() {
        let mut d = details();
        d.name.family = Some("Reyes".into());
        d.active = false;
        Given::with(services())
            .given(registered())
            .when_async(IndividualCommand::Replace {
                details: d.clone(),
                stated: everything(),
                access: full_access(),
            })
            .await
            .then_expect_events(vec![
                IndividualEvent::NameChanged { name: d.name },
                IndividualEvent::IndividualDeactivated,
            ]);
    }

    #[tokio::test]
    async fn replace_with_the_same_details_records_nothing() {
        Given::with(services())
            .given(registered())
            .when_async(IndividualCommand::Replace {
                details: details(),
                stated: everything(),
                access: full_access(),
            })
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn each_changed_detail_is_its_own_event() {
        let mut d = details();
        d.birth_date = Some(date(1985, 1, 1));
        d.birth_date_estimated = true;
        d.gender = Some(code(GENDER, "1"));
        d.telecom = vec![ContactPoint {
            system: "phone".into(),
            value: "+63 917 000 0000".into(),
            use_: Some("mobile".into()),
            rank: Some(1),
        }];
        d.address = vec![Address {
            city: Some("Cebu".into()),
            ..Default::default()
        }];
        Given::with(services())
            .given(registered())
            .when_async(IndividualCommand::Replace {
                details: d.clone(),
                access: full_access(),
                stated: everything(),
            })
            .await
            .then_expect_events(vec![
                IndividualEvent::BirthDateChanged {
                    birth_date: d.birth_date,
                    birth_date_estimated: true,
                },
                IndividualEvent::GenderChanged { gender: d.gender },
                IndividualEvent::TelecomChanged { telecom: d.telecom },
                IndividualEvent::AddressChanged { address: d.address },
            ]);
    }

    #[tokio::test]
    async fn a_deactivated_individual_is_reactivated_by_replace() {
        let mut given = registered();
        given.push(IndividualEvent::IndividualDeactivated);
        Given::with(services())
            .given(given)
            .when_async(IndividualCommand::Replace {
                details: details(),
                access: full_access(),
                stated: everything(),
            })
            .await
            .then_expect_events(vec![IndividualEvent::IndividualReactivated]);
    }

    #[tokio::test]
    async fn replace_checks_the_same_rules_as_registration() {
        let replace = |d: IndividualDetails| IndividualCommand::Replace {
            details: d,
            access: full_access(),
            stated: everything(),
        };
        let mut d = details();
        d.birth_date = today().succ_opt();
        assert_eq!(field(refused(registered(), replace(d)).await), "birthDate");
        let mut d = details();
        d.birth_date = NaiveDate::from_ymd_opt(-5000, 1, 1);
        assert_eq!(field(refused(registered(), replace(d)).await), "birthDate");
        let mut d = details();
        d.name.family = Some("x".repeat(crate::bounds::SHORT_TEXT + 1));
        assert_eq!(
            field(refused(registered(), replace(d)).await),
            "name.family"
        );
        let mut d = details();
        d.gender = Some(code(GENDER, "7"));
        assert_eq!(field(refused(registered(), replace(d)).await), "gender");
        let mut d = details();
        d.address = vec![Address {
            line: vec!["y".repeat(crate::bounds::LONG_TEXT + 1)],
            ..Default::default()
        }];
        assert_eq!(
            field(refused(registered(), replace(d)).await),
            "address[0].line[0]"
        );
    }

    #[tokio::test]
    async fn replacing_an_identifier_invalidates_before_adding() {
        let mut d = details();
        d.identifiers = vec![id(NATIONAL_ID, "N2")];
        Given::with(services())
            .given(registered())
            .when_async(IndividualCommand::Replace {
                details: d,
                stated: everything(),
                access: full_access(),
            })
            .await
            .then_expect_events(vec![
                IndividualEvent::IdentifierInvalidated {
                    identifier: id(NATIONAL_ID, "N1"),
                },
                IndividualEvent::IdentifierAdded {
                    identifier: id(NATIONAL_ID, "N2"),
                },
            ]);
    }

    #[tokio::test]
    async fn an_invalidated_identifier_can_be_added_again() {
        let mut given = registered();
        given.push(IndividualEvent::IdentifierInvalidated {
            identifier: id(NATIONAL_ID, "N1"),
        });
        given.push(IndividualEvent::IdentifierAdded {
            identifier: id(NATIONAL_ID, "N2"),
        });
        Given::with(services())
            .given(given)
            .when_async(IndividualCommand::Replace {
                details: details(),
                stated: everything(),
                access: full_access(),
            })
            .await
            .then_expect_events(vec![
                IndividualEvent::IdentifierInvalidated {
                    identifier: id(NATIONAL_ID, "N2"),
                },
                IndividualEvent::IdentifierAdded {
                    identifier: id(NATIONAL_ID, "N1"),
                },
            ]);
    }

    #[tokio::test]
    async fn an_unconsented_change_is_refused_as_not_found_and_a_consented_one_applies() {
        let mut d = details();
        d.name.given = Some("Ana".into());
        let without = Access {
            actor: ngo(),
            consents: vec![],
        };
        let error = refused(
            registered(),
            IndividualCommand::Replace {
                details: d.clone(),
                stated: everything(),
                access: without,
            },
        )
        .await;
        assert_eq!(error, DomainError::not_found("Individual"));
        let with = Access {
            actor: ngo(),
            consents: vec![ngo_consent("s", "individual", None)],
        };
        Given::with(services())
            .given(registered())
            .when_async(IndividualCommand::Replace {
                details: d.clone(),
                stated: everything(),
                access: with,
            })
            .await
            .then_expect_events(vec![IndividualEvent::NameChanged { name: d.name }]);
    }

    /// A PUT body as a client that sees only the name would send it: the identity and the name.
    fn name_only_body() -> (IndividualDetails, Vec<String>) {
        let mut d = details();
        d.name.given = Some("Ana".into());
        d.birth_date = None;
        d.gender = None;
        d.active = true;
        (d, ["type", "identifier", "name"].map(String::from).to_vec())
    }

    #[tokio::test]
    async fn a_field_limited_replace_keeps_the_fields_it_cannot_see() {
        let mut given = registered();
        given.push(IndividualEvent::IndividualDeactivated);
        given.push(IndividualEvent::AddressChanged {
            address: vec![Address {
                city: Some("Quezon City".into()),
                ..Default::default()
            }],
        });
        let (d, stated) = name_only_body();
        let by_consent = Access {
            actor: ngo(),
            consents: vec![ngo_consent("s", "individual", Some(&["name"]))],
        };
        let mut by_filter = full_access();
        by_filter.actor.field_filter = vec!["individual:name".into(), "group:name".into()];
        for access in [by_consent, by_filter] {
            Given::with(services())
                .given(given.clone())
                .when_async(IndividualCommand::Replace {
                    details: d.clone(),
                    stated: stated.clone(),
                    access,
                })
                .await
                .then_expect_events(vec![IndividualEvent::NameChanged {
                    name: d.name.clone(),
                }]);
        }
    }

    #[tokio::test]
    async fn stating_a_field_the_caller_cannot_see_is_forbidden_whatever_its_value() {
        let access = Access {
            actor: ngo(),
            consents: vec![ngo_consent("s", "individual", Some(&["name", "gender"]))],
        };
        // The stored value and another value are refused alike: the answer is no oracle.
        for birth_date in [details().birth_date, Some(date(1990, 1, 1)), None] {
            let (mut d, mut stated) = name_only_body();
            d.birth_date = birth_date;
            stated.push("birthDate".into());
            let error = refused(
                registered(),
                IndividualCommand::Replace {
                    details: d,
                    stated,
                    access: access.clone(),
                },
            )
            .await;
            assert!(
                matches!(&error, DomainError::Forbidden { field, .. } if field == "birthDate"),
                "{error:?}"
            );
        }
        // A field the consent shows may be cleared by leaving it out.
        let (d, stated) = name_only_body();
        Given::with(services())
            .given(registered())
            .when_async(IndividualCommand::Replace {
                details: d.clone(),
                stated,
                access,
            })
            .await
            .then_expect_events(vec![
                IndividualEvent::NameChanged { name: d.name },
                IndividualEvent::GenderChanged { gender: None },
            ]);
    }

    #[tokio::test]
    async fn an_extension_the_caller_cannot_see_cannot_be_stated() {
        use crate::testing::FARMER;
        let farmer = crate::consent::extension_field(FARMER);
        let with_farm = |size: i64| {
            let (mut d, mut stated) = name_only_body();
            d.extension = Some(json!({"farmer": {"farm_size": size}}));
            stated.push("extension".into());
            (d, stated)
        };
        let sees = |fields: &[&str]| Access {
            actor: ngo(),
            consents: vec![ngo_consent("s", "individual", Some(fields))],
        };
        for access in [sees(&["name"]), sees(&["name", "extension.urn:x:other"])] {
            let (d, stated) = with_farm(3);
            let error = refused(
                registered(),
                IndividualCommand::Replace {
                    details: d,
                    stated,
                    access,
                },
            )
            .await;
            assert!(
                matches!(&error, DomainError::Forbidden { field, .. } if field.starts_with("extension")),
                "{error:?}"
            );
        }
        for access in [
            sees(&["name", "extension"]),
            sees(&["name", farmer.as_str()]),
        ] {
            let (d, stated) = with_farm(3);
            Given::with(services())
                .given(registered())
                .when_async(IndividualCommand::Replace {
                    details: d.clone(),
                    stated,
                    access,
                })
                .await
                .then_expect_events(vec![
                    IndividualEvent::NameChanged { name: d.name },
                    IndividualEvent::ExtensionRecorded {
                        url: FARMER.into(),
                        value: json!({"farm_size": 3}),
                    },
                ]);
        }
    }

    #[tokio::test]
    async fn a_consent_bound_client_cannot_add_remove_or_replace_identifiers() {
        // Even a consent that shows every field: identifiers are the controller's to write.
        let access = Access {
            actor: ngo(),
            consents: vec![ngo_consent("s", "individual", None)],
        };
        let mut given = registered();
        given.push(IndividualEvent::IdentifierAdded {
            identifier: id(PASSPORT, "P1"),
        });
        let both = vec![id(NATIONAL_ID, "N1"), id(PASSPORT, "P1")];
        for wanted in [
            vec![id(NATIONAL_ID, "N1")],                     // removed
            vec![id(NATIONAL_ID, "N2"), id(PASSPORT, "P1")], // replaced
            [
                both.clone(),
                vec![id("urn:openspp:vocab:id-type#tax_id", "T1")],
            ]
            .concat(), // added
            vec![],
        ] {
            let mut d = details();
            d.identifiers = wanted;
            let error = refused(
                given.clone(),
                IndividualCommand::Replace {
                    details: d,
                    stated: everything(),
                    access: access.clone(),
                },
            )
            .await;
            assert!(
                matches!(&error, DomainError::Forbidden { field, .. } if field == "identifier"),
                "{error:?}"
            );
        }
        // The same identifiers, in another order, change nothing and are accepted.
        let mut d = details();
        d.identifiers = both.into_iter().rev().collect();
        d.name.given = Some("Ana".into());
        Given::with(services())
            .given(given.clone())
            .when_async(IndividualCommand::Replace {
                details: d.clone(),
                stated: everything(),
                access,
            })
            .await
            .then_expect_events(vec![IndividualEvent::NameChanged { name: d.name }]);
        // An unconsented client learns nothing more: still the not-found answer.
        let mut d = details();
        d.identifiers = vec![id(NATIONAL_ID, "N2")];
        let unconsented = Access {
            actor: ngo(),
            consents: vec![],
        };
        let error = refused(
            given,
            IndividualCommand::Replace {
                details: d,
                stated: everything(),
                access: unconsented,
            },
        )
        .await;
        assert_eq!(error, DomainError::not_found("Individual"));
    }

    #[tokio::test]
    async fn lists_are_bounded() {
        let contact = ContactPoint {
            system: "phone".into(),
            value: "+63".into(),
            use_: None,
            rank: None,
        };
        let mut d = details();
        d.telecom = vec![contact; crate::bounds::items::TELECOM + 1];
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "telecom"
        );
        let mut d = details();
        d.address = vec![Address::default(); crate::bounds::items::ADDRESSES + 1];
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "address"
        );
        let mut d = details();
        d.address = vec![Address {
            line: vec!["l".into(); crate::bounds::items::ADDRESS_LINES + 1],
            ..Default::default()
        }];
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "address[0].line"
        );
        let mut d = details();
        d.identifiers = (0..=crate::bounds::items::IDENTIFIERS)
            .map(|i| id(&format!("urn:x:{i}"), "1"))
            .collect();
        assert_eq!(
            field(refused(vec![], IndividualCommand::Register(d)).await),
            "identifier"
        );
    }

    #[tokio::test]
    async fn extension_data_is_checked_recorded_kept_and_removed() {
        use crate::testing::FARMER;
        let mut d = details();
        d.extension = Some(json!({"farmer": {"farm_size": 3}}));
        let events = Given::with(services())
            .given_no_previous_events()
            .when_async(IndividualCommand::Register(d.clone()))
            .await
            .inspect_result()
            .unwrap();
        let recorded = IndividualEvent::ExtensionRecorded {
            url: FARMER.into(),
            value: json!({"farm_size": 3}),
        };
        assert_eq!(events.last(), Some(&recorded));
        let mut state = Individual::default();
        events.iter().cloned().for_each(|e| state.apply(e));
        assert_eq!(state.extension[FARMER], json!({"farm_size": 3}));

        let mut unregistered = details();
        unregistered.extension = Some(json!({"urn:x:unknown": {"a": 1}}));
        let error = refused(vec![], IndividualCommand::Register(unregistered)).await;
        assert_eq!(field(error), "extension.urn:x:unknown");
        let mut invalid = details();
        invalid.extension = Some(json!({FARMER: {"farm_size": "big"}}));
        let error = refused(vec![], IndividualCommand::Register(invalid)).await;
        assert_eq!(field(error), format!("extension.{FARMER}.farm_size"));

        let replace = |extension: Option<serde_json::Value>| IndividualCommand::Replace {
            details: IndividualDetails {
                extension,
                ..details()
            },
            stated: everything(),
            access: full_access(),
        };
        Given::with(services())
            .given(events.clone())
            .when_async(replace(None))
            .await
            .then_expect_events(vec![]);
        Given::with(services())
            .given(events)
            .when_async(replace(Some(json!({FARMER: null}))))
            .await
            .then_expect_events(vec![IndividualEvent::ExtensionRemoved {
                url: FARMER.into(),
            }]);
    }

    #[test]
    fn state_counts_versions_and_keeps_invalidated_identifiers() {
        let mut individual = Individual::default();
        for event in registered() {
            individual.apply(event);
        }
        individual.apply(IndividualEvent::IdentifierInvalidated {
            identifier: id(NATIONAL_ID, "N1"),
        });
        assert_eq!(individual.version, 3);
        assert_eq!(individual.live_identifiers().count(), 0);
        assert_eq!(individual.identifiers.len(), 1);
    }

    #[test]
    fn events_serialise_stably() {
        let event = IndividualEvent::IdentifierAdded {
            identifier: id(NATIONAL_ID, "N1"),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"IdentifierAdded": {"identifier": {"system": NATIONAL_ID, "value": "N1"}}})
        );
        assert_eq!(
            serde_json::to_value(IndividualEvent::IndividualDeactivated).unwrap(),
            json!("IndividualDeactivated")
        );
        assert_eq!(event.event_type(), "IdentifierAdded");
    }
}
