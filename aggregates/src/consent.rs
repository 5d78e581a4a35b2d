//! Consent (CONTRACT §5; ISO/IEC TS 27560, W3C DPV): a data subject — an individual, or a group
//! for its members — lets recipients use their data for purposes, within scopes, for a period.
//!
//! A consent is its own stream: its terms are frozen once given, and its life (withdrawn,
//! renewed) is a story of its own that auditors read. Whether a consent covers an access is
//! decided here, by `Access::permits`, from the consents the caller passes in; the event store
//! re-checks in the append transaction that the consents used are still in force, which orders
//! every write against a concurrent withdrawal.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::error::DomainError;
use crate::extension::{ExtendedResource, ExtensionSchemas};
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;

pub const RECIPIENT_TYPES: [&str; 9] = [
    "government",
    "ngo",
    "ingo",
    "un",
    "private",
    "research",
    "international",
    "academic",
    "other",
];
pub const RESOURCE_TYPES: [&str; 4] = ["individual", "group", "program_membership", "all"];
pub const PURPOSES: [&str; 5] = [
    "service_delivery",
    "eligibility_verification",
    "analytics",
    "research",
    "audit",
];
pub const DELEGATION_TYPES: [&str; 5] = ["self", "guardian", "parent", "poa", "representative"];
pub const LEGAL_BASES: [&str; 7] = [
    "consent",
    "contract",
    "legal_obligation",
    "vital_interest",
    "public_interest",
    "public_task",
    "legitimate_interest",
];

/// All of a registrant's extension data, as a consent's `field_access` or a client's field filter
/// names it; one extension is `extension.<uri>` (`extension_field`). A list naming `extension`
/// shows every extension; one naming `extension.<uri>` shows that extension only.
pub const EXTENSION: &str = "extension";

/// The field name of one extension's data (`extension.urn:openspp:extension:farmer`).
pub fn extension_field(uri: &str) -> String {
    format!("{EXTENSION}.{uri}")
}

/// The extension a field name names (`extension.<name>` → `<name>`), if it names one.
pub fn named_extension(field: &str) -> Option<&str> {
    field
        .strip_prefix(EXTENSION)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|name| !name.is_empty())
}

/// Whether a field list shows `field`: it names the field, or the field is one extension's
/// data and the list names all of it (`extension`).
pub fn shows(listed: &[String], field: &str) -> bool {
    listed.iter().any(|l| l == field)
        || (named_extension(field).is_some() && listed.iter().any(|l| l == EXTENSION))
}

/// Whether a field list shows any extension data at all.
pub fn shows_any_extension(listed: &[String]) -> bool {
    listed
        .iter()
        .any(|l| l == EXTENSION || named_extension(l).is_some())
}

/// What two field lists both show (`extension` and `extension.<uri>` give `extension.<uri>`).
fn both_show(first: &[String], second: &[String]) -> Vec<String> {
    let mut shown: Vec<String> = Vec::new();
    for field in first.iter().chain(second) {
        if shows(first, field) && shows(second, field) && !shown.contains(field) {
            shown.push(field.clone());
        }
    }
    shown
}

/// Fields a consent may name, per resource type (the API's JSON names); `extension` may also
/// be narrowed to one registered extension (`extension.<uri>`).
pub fn consentable_fields(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "individual" => &[
            "name",
            "birthDate",
            "birthDateEstimated",
            "gender",
            "telecom",
            "address",
            "groupMembership",
            "active",
            "photo",
            "extension",
        ],
        "group" => &[
            "name",
            "groupType",
            "member",
            "quantity",
            "address",
            "active",
            "extension",
        ],
        "program_membership" => &[
            "program",
            "beneficiary",
            "status",
            "enrollmentDate",
            "exitDate",
            "exitReason",
        ],
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientMode {
    /// Named organisations.
    Specific,
    /// Organisation types (`government`, `ngo`, …).
    Category,
}

crate::wire_names!(RecipientMode { Specific => "specific", Category => "category" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentScope {
    pub resource_type: String,
    /// `None`: every field of the resource.
    pub field_access: Option<Vec<String>>,
    pub purpose: String,
}

/// What the subject agreed to. Frozen once given: a change is a new consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTerms {
    /// `Individual` or `Group`.
    pub subject_type: String,
    /// The subject's stream id (never shown; the API shows its external identifier).
    pub subject: String,
    pub recipient_mode: RecipientMode,
    pub recipients: Vec<String>,
    pub recipient_types: Vec<String>,
    pub scopes: Vec<ConsentScope>,
    pub legal_basis: String,
    pub effective_date: NaiveDate,
    pub expiry_date: NaiveDate,
    pub delegation_type: String,
    /// Who indicated the consent when not the subject (guardian, representative …).
    pub indicated_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Given,
    Renewed,
    Withdrawn,
}

crate::wire_names!(ConsentStatus { Given => "given", Renewed => "renewed", Withdrawn => "withdrawn" });

/// A consent as the access check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub consent_id: String,
    pub status: ConsentStatus,
    pub terms: ConsentTerms,
    /// The organisations that have withdrawn from the consent for themselves (a recipient's
    /// `$revoke`); it stays in force for the others.
    pub released: Vec<String>,
}

impl ConsentRecord {
    /// In force today: given or renewed, and within its period (expiry is evaluated at request
    /// time, not by a batch job).
    pub fn in_force(&self, today: NaiveDate) -> bool {
        matches!(self.status, ConsentStatus::Given | ConsentStatus::Renewed)
            && self.terms.effective_date <= today
            && today <= self.terms.expiry_date
    }

    /// Whether `organization` has withdrawn from this consent for itself.
    pub fn released_for(&self, organization: &str) -> bool {
        self.released.iter().any(|r| r == organization)
    }

    /// In force today for `organization`: in force, and not withdrawn by it for itself.
    pub fn in_force_for(&self, organization: &str, today: NaiveDate) -> bool {
        self.in_force(today) && !self.released_for(organization)
    }

    /// Whether `organization` is the one recipient the consent still names: a specific
    /// consent whose every other named organisation has withdrawn. A category consent names
    /// types, whose members are not known in advance, so it never has a sole recipient.
    fn sole_recipient(&self, organization: &str) -> bool {
        self.terms.recipient_mode == RecipientMode::Specific
            && self
                .terms
                .recipients
                .iter()
                .all(|r| r == organization || self.released_for(r))
    }

    /// Whether the consent names this recipient: a specific consent by organisation, a
    /// category consent by organisation type — never one for the other.
    pub fn names(&self, actor: &Actor) -> bool {
        match self.terms.recipient_mode {
            RecipientMode::Specific => self.terms.recipients.contains(&actor.organization),
            RecipientMode::Category => self
                .terms
                .recipient_types
                .contains(&actor.organization_type),
        }
    }

    /// Whether this consent lets `actor` use `resource_type` today.
    pub fn covers(&self, actor: &Actor, resource_type: &str, today: NaiveDate) -> bool {
        self.in_force_for(&actor.organization, today)
            && self.names(actor)
            && self.scope_for(resource_type).is_some()
    }

    /// The scope of this consent for `resource_type`, if any.
    pub fn scope_for(&self, resource_type: &str) -> Option<&ConsentScope> {
        self.terms
            .scopes
            .iter()
            .find(|s| s.resource_type == resource_type || s.resource_type == "all")
    }
}

/// The caller of a command, as far as consent is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub organization: String,
    pub organization_type: String,
    /// `None`: the client needs the subject's consent; `Some(basis)`: it acts under that
    /// legal basis instead (and is still audited).
    pub legal_basis: Option<String>,
    /// The client's own field filter (`resource:field`; none for a resource = all its fields),
    /// which narrows whatever a consent or legal basis allows.
    pub field_filter: Vec<String>,
}

impl Actor {
    /// The fields of `resource_type` the client's own filter allows; `None` when it has none.
    pub fn filtered_fields(&self, resource_type: &str) -> Option<Vec<String>> {
        let prefix = format!("{resource_type}:");
        let listed: Vec<String> = self
            .field_filter
            .iter()
            .filter_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        (!listed.is_empty()).then_some(listed)
    }

    /// Whether the actor acts under the subjects' consent (no legal basis of its own).
    pub fn needs_consent(&self) -> bool {
        self.legal_basis.is_none()
    }

    /// Whether the actor may use `resource_type` of a subject covered by `consents`: under a
    /// legal basis always, else only under a consent in force that names it and the resource.
    pub fn may_use(
        &self,
        consents: &[ConsentRecord],
        resource_type: &str,
        today: NaiveDate,
    ) -> bool {
        self.legal_basis.is_some()
            || consents
                .iter()
                .any(|c| c.covers(self, resource_type, today))
    }
}

/// Who is acting, and the consents that might let them: those of the subject and of the groups
/// the subject belongs to (a group consent covers its members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub actor: Actor,
    pub consents: Vec<ConsentRecord>,
}

impl Access {
    /// The consent that lets the actor use `resource_type` of the subject; `Ok(None)` when a
    /// legal basis makes consent unnecessary. Refused as "not found", so a caller cannot tell
    /// an unconsented subject from an unknown one.
    pub fn permits<'a>(
        &'a self,
        resource_type: &'a str,
        what: &str,
        today: NaiveDate,
    ) -> Result<Option<&'a ConsentRecord>, DomainError> {
        if self.actor.legal_basis.is_some() {
            return Ok(None);
        }
        self.matching(resource_type, today)
            .next()
            .map(Some)
            .ok_or_else(|| DomainError::not_found(what))
    }

    /// Every consent in force that names the actor and covers `resource_type`.
    pub fn matching<'a>(
        &'a self,
        resource_type: &'a str,
        today: NaiveDate,
    ) -> impl Iterator<Item = &'a ConsentRecord> + 'a {
        self.consents
            .iter()
            .filter(move |c| c.covers(&self.actor, resource_type, today))
    }

    /// The fields of `resource_type` the actor may see: the union of the field lists of every
    /// consent that covers it (all fields under a legal basis), narrowed by the client's own
    /// field filter; `None` = every field. `type`, `identifier` and `meta` are always visible
    /// and are not listed.
    pub fn fields(&self, resource_type: &str, today: NaiveDate) -> Option<Vec<String>> {
        let mut fields: Option<Vec<String>> = None;
        if self.actor.legal_basis.is_none() {
            let mut union = Some(Vec::new());
            for consent in self.matching(resource_type, today) {
                let listed = consent
                    .scope_for(resource_type)
                    .and_then(|s| s.field_access.as_ref());
                match (&mut union, listed) {
                    (Some(all), Some(listed)) => {
                        for field in listed {
                            if !all.contains(field) {
                                all.push(field.clone());
                            }
                        }
                    }
                    _ => union = None,
                }
            }
            fields = union;
        }
        match (fields, self.actor.filtered_fields(resource_type)) {
            (Some(allowed), Some(filter)) => Some(both_show(&allowed, &filter)),
            (None, filter) => filter,
            (allowed, None) => allowed,
        }
    }

    /// The fields of `resource_type` a replacement by the actor leaves as they are, because the
    /// actor cannot see them. A replacement that states one of them is refused — always,
    /// whatever the hidden value, so that the refusal tells nothing about it.
    pub fn hidden_fields(
        &self,
        resource_type: &str,
        stated: &[String],
        today: NaiveDate,
    ) -> Result<Vec<&'static str>, DomainError> {
        let Some(visible) = self.fields(resource_type, today) else {
            return Ok(Vec::new());
        };
        // `extension` is hidden only when no extension is shown; which extensions a body may
        // state is checked per extension (`sees`).
        let hidden: Vec<&'static str> = consentable_fields(resource_type)
            .iter()
            .copied()
            .filter(|&field| match field {
                EXTENSION => !shows_any_extension(&visible),
                _ => !visible.iter().any(|v| v == field),
            })
            .collect();
        match stated.iter().find(|s| hidden.contains(&s.as_str())) {
            Some(field) => Err(DomainError::forbidden(
                field,
                "this client may not see this field, so it may not change it; leave it out",
            )),
            None => Ok(hidden),
        }
    }
}

impl Access {
    /// Whether the actor may see `field` of `resource_type` (one extension's data included:
    /// `extension.<uri>`).
    pub fn sees(&self, resource_type: &str, field: &str, today: NaiveDate) -> bool {
        self.fields(resource_type, today)
            .is_none_or(|visible| shows(&visible, field))
    }
}

/// The extensions a consent scope's field list names (`extension.farmer`), as the registered
/// URIs they resolve to for the scope's resource type (`extension.urn:openspp:extension:farmer`),
/// so that a consent keeps naming the same data whatever short names are registered later.
/// (A scope for `all` resource types lists no fields, so it names no extension either.)
fn canonical_extension_fields(
    mut terms: ConsentTerms,
    extensions: &dyn ExtensionSchemas,
) -> Result<ConsentTerms, DomainError> {
    for (i, scope) in terms.scopes.iter_mut().enumerate() {
        let Some(fields) = &mut scope.field_access else {
            continue;
        };
        let resources: &[ExtendedResource] = match scope.resource_type.as_str() {
            "individual" => &[ExtendedResource::Individual],
            "group" => &[ExtendedResource::Group],
            _ => &[],
        };
        let mut canonical: Vec<String> = Vec::with_capacity(fields.len());
        for field in fields.iter() {
            let field = match named_extension(field) {
                None => field.clone(),
                Some(name) => {
                    let uri = resources
                        .iter()
                        .find_map(|&resource| extensions.resolve(resource, name))
                        .ok_or_else(|| {
                            DomainError::invalid(
                                format!("scopes[{i}].field_access"),
                                format!(
                                    "`{field}` names no extension registered for {}",
                                    scope.resource_type
                                ),
                            )
                        })?;
                    extension_field(&uri)
                }
            };
            canonical.push(field);
        }
        *fields = canonical;
    }
    Ok(terms)
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConsentCommand {
    Give(ConsentTerms),
    /// Withdrawal, by `by`: for everyone when `by` is the controller (a legal-basis client,
    /// acting for the subject); for itself only when `by` is a recipient the consent names —
    /// unless it is the one recipient left, when the consent ends (see `Consent::withdrawal`).
    Withdraw {
        reason: Option<String>,
        channel: String,
        by: Actor,
    },
    /// Extends a consent that is in force or has expired (never a withdrawn one).
    Renew {
        expiry_date: NaiveDate,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConsentEvent {
    ConsentGiven {
        terms: ConsentTerms,
    },
    ConsentWithdrawn {
        reason: Option<String>,
        channel: String,
    },
    /// One recipient (an organisation) withdrew from the consent for itself; the consent stays
    /// in force for the others.
    RecipientWithdrew {
        recipient: String,
        reason: Option<String>,
        channel: String,
    },
    ConsentRenewed {
        expiry_date: NaiveDate,
    },
}

impl DomainEvent for ConsentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ConsentGiven { .. } => "ConsentGiven",
            Self::ConsentWithdrawn { .. } => "ConsentWithdrawn",
            Self::RecipientWithdrew { .. } => "RecipientWithdrew",
            Self::ConsentRenewed { .. } => "ConsentRenewed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// The consent index is a read model of the consent's state (`projections/src/consent.rs`),
/// not an index its events change one by one.
impl InlineIndex for ConsentEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        None
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub terms: Option<ConsentTerms>,
    pub status: Option<ConsentStatus>,
    pub withdrawal_reason: Option<String>,
    /// The recipients that withdrew for themselves (`ConsentRecord::released`), in order.
    #[serde(default)]
    pub released: Vec<String>,
    pub version: u64,
}

fn validate(terms: &ConsentTerms, today: NaiveDate) -> Result<(), DomainError> {
    use bounds::items;
    bounds::items("recipients", terms.recipients.len(), items::RECIPIENTS)?;
    let types = terms.recipient_types.len();
    bounds::items("recipient_types", types, items::RECIPIENT_TYPES)?;
    bounds::items("scopes", terms.scopes.len(), items::SCOPES)?;
    bounds::date("effective_date", terms.effective_date)?;
    bounds::date("expiry_date", terms.expiry_date)?;
    match terms.recipient_mode {
        RecipientMode::Specific => {
            if terms.recipients.is_empty() {
                return Err(DomainError::invalid(
                    "recipients",
                    "specific mode names at least one organisation",
                ));
            }
            if !terms.recipient_types.is_empty() {
                return Err(DomainError::invalid(
                    "recipient_types",
                    "must be empty in specific mode",
                ));
            }
        }
        RecipientMode::Category => {
            if terms.recipient_types.is_empty() {
                return Err(DomainError::invalid(
                    "recipient_types",
                    "category mode names at least one organisation type",
                ));
            }
            if !terms.recipients.is_empty() {
                return Err(DomainError::invalid(
                    "recipients",
                    "must be empty in category mode",
                ));
            }
        }
    }
    for (i, kind) in terms.recipient_types.iter().enumerate() {
        if !RECIPIENT_TYPES.contains(&kind.as_str()) {
            return Err(DomainError::invalid(
                format!("recipient_types[{i}]"),
                format!("must be one of {}", RECIPIENT_TYPES.join(", ")),
            ));
        }
    }
    if terms.scopes.is_empty() {
        return Err(DomainError::invalid(
            "scopes",
            "at least one scope is required",
        ));
    }
    for (i, scope) in terms.scopes.iter().enumerate() {
        if !RESOURCE_TYPES.contains(&scope.resource_type.as_str()) {
            return Err(DomainError::invalid(
                format!("scopes[{i}].resource_type"),
                format!("must be one of {}", RESOURCE_TYPES.join(", ")),
            ));
        }
        if let Some(fields) = &scope.field_access {
            let field = format!("scopes[{i}].field_access");
            bounds::items(&field, fields.len(), items::FIELDS)?;
            let known = consentable_fields(&scope.resource_type);
            let is_known = |field: &str| {
                known.contains(&field)
                    || (named_extension(field).is_some() && known.contains(&EXTENSION))
            };
            if let Some(field) = fields.iter().find(|f| !is_known(f)) {
                return Err(DomainError::invalid(
                    format!("scopes[{i}].field_access"),
                    format!("`{field}` is not a field of {}", scope.resource_type),
                ));
            }
        }
        if !PURPOSES.contains(&scope.purpose.as_str()) {
            return Err(DomainError::invalid(
                format!("scopes[{i}].purpose"),
                format!("must be one of {}", PURPOSES.join(", ")),
            ));
        }
    }
    if !LEGAL_BASES.contains(&terms.legal_basis.as_str()) {
        return Err(DomainError::invalid(
            "legal_basis",
            format!("must be one of {}", LEGAL_BASES.join(", ")),
        ));
    }
    if terms.expiry_date <= terms.effective_date {
        return Err(DomainError::invalid(
            "expiry_date",
            "must be after effective_date",
        ));
    }
    if terms.expiry_date < today {
        return Err(DomainError::invalid(
            "expiry_date",
            "must not be in the past",
        ));
    }
    if !DELEGATION_TYPES.contains(&terms.delegation_type.as_str()) {
        return Err(DomainError::invalid(
            "delegation_type",
            format!("must be one of {}", DELEGATION_TYPES.join(", ")),
        ));
    }
    if terms.delegation_type != "self" && terms.indicated_by.is_none() {
        return Err(DomainError::invalid(
            "indicated_by",
            "a delegated consent names who indicated it",
        ));
    }
    Ok(())
}

impl Aggregate for Consent {
    const TYPE: &'static str = "Consent";
    type Command = ConsentCommand;
    type Event = ConsentEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let today = services.clock.today();
        let event = match command {
            ConsentCommand::Give(terms) => {
                if self.terms.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                let terms = canonical_extension_fields(terms, services.extensions.as_ref())?;
                validate(&terms, today)?;
                ConsentEvent::ConsentGiven { terms }
            }
            ConsentCommand::Withdraw {
                reason,
                channel,
                by,
            } => self.withdrawal(reason, channel, &by)?,
            ConsentCommand::Renew { expiry_date } => {
                let record =
                    self.not_withdrawn("a withdrawn consent cannot be renewed; record a new one")?;
                bounds::date("expiry_date", expiry_date)?;
                if expiry_date <= record.terms.expiry_date || expiry_date < today {
                    return Err(DomainError::invalid(
                        "expiry_date",
                        "must be later than the current expiry and not in the past",
                    ));
                }
                ConsentEvent::ConsentRenewed { expiry_date }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            ConsentEvent::ConsentGiven { terms } => {
                self.terms = Some(terms);
                self.status = Some(ConsentStatus::Given);
            }
            ConsentEvent::ConsentWithdrawn { reason, .. } => {
                self.status = Some(ConsentStatus::Withdrawn);
                self.withdrawal_reason = reason;
            }
            ConsentEvent::RecipientWithdrew { recipient, .. } => {
                if !self.released.contains(&recipient) {
                    self.released.push(recipient);
                }
            }
            ConsentEvent::ConsentRenewed { expiry_date } => {
                self.status = Some(ConsentStatus::Renewed);
                if let Some(terms) = &mut self.terms {
                    terms.expiry_date = expiry_date;
                }
            }
        }
    }
}

impl Consent {
    /// The consent as a record for access checks, once given.
    pub fn record(&self, consent_id: &str) -> Option<ConsentRecord> {
        Some(ConsentRecord {
            consent_id: consent_id.to_owned(),
            status: self.status?,
            terms: self.terms.clone()?,
            released: self.released.clone(),
        })
    }

    /// The consent, once given and unless withdrawn (a conflict, said as `refusal`).
    fn not_withdrawn(&self, refusal: &'static str) -> Result<ConsentRecord, DomainError> {
        let record = self
            .record("")
            .ok_or_else(|| DomainError::not_found("Consent"))?;
        if record.status == ConsentStatus::Withdrawn {
            return Err(DomainError::conflict(None, refusal));
        }
        Ok(record)
    }

    /// Who may withdraw for whom (issue 8, item 6). The controller — a client acting under a
    /// legal basis, for the subject — withdraws the consent for everyone. A recipient (a
    /// client that needs consent) withdraws it for its own organisation only, so that one NGO
    /// named by a category consent cannot cut off every other; where it is the one recipient
    /// the consent still names (a specific consent naming just it), that ends the consent.
    /// Before it takes effect and after it expires too, but never twice.
    fn withdrawal(
        &self,
        reason: Option<String>,
        channel: String,
        by: &Actor,
    ) -> Result<ConsentEvent, DomainError> {
        let record = self.not_withdrawn("the consent is already withdrawn")?;
        if by.needs_consent() {
            if !record.names(by) {
                // As unknown to it as a consent that does not exist.
                return Err(DomainError::not_found("Consent"));
            }
            if record.released_for(&by.organization) {
                return Err(DomainError::conflict(
                    None,
                    "the consent is already withdrawn for this recipient",
                ));
            }
            if !record.sole_recipient(&by.organization) {
                return Ok(ConsentEvent::RecipientWithdrew {
                    recipient: by.organization.clone(),
                    reason,
                    channel,
                });
            }
        }
        Ok(ConsentEvent::ConsentWithdrawn { reason, channel })
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::testing::{date, services, today, FARMER};

    fn terms(mode: RecipientMode, recipients: &[&str], types: &[&str]) -> ConsentTerms {
        ConsentTerms {
            subject_type: "Individual".into(),
            subject: "person".into(),
            recipient_mode: mode,
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            recipient_types: types.iter().map(|s| s.to_string()).collect(),
            scopes: vec![ConsentScope {
                resource_type: "individual".into(),
                field_access: None,
                purpose: "service_delivery".into(),
            }],
            legal_basis: "consent".into(),
            effective_date: date(2024, 1, 1),
            expiry_date: date(2025, 1, 1),
            delegation_type: "self".into(),
            indicated_by: None,
        }
    }

    fn record(terms: ConsentTerms, status: ConsentStatus) -> ConsentRecord {
        ConsentRecord {
            consent_id: "c1".into(),
            status,
            terms,
            released: vec![],
        }
    }

    /// The controller: a client acting under a legal basis, for the subject.
    fn controller() -> Actor {
        Actor {
            legal_basis: Some("public_task".into()),
            ..actor("Registry", "government")
        }
    }

    fn withdraw_by(by: Actor) -> ConsentCommand {
        ConsentCommand::Withdraw {
            reason: None,
            channel: "api".into(),
            by,
        }
    }

    fn withdrawn() -> ConsentEvent {
        ConsentEvent::ConsentWithdrawn {
            reason: None,
            channel: "api".into(),
        }
    }

    fn recipient_withdrew(recipient: &str) -> ConsentEvent {
        ConsentEvent::RecipientWithdrew {
            recipient: recipient.into(),
            reason: None,
            channel: "api".into(),
        }
    }

    /// Runs `command` on a consent given with `given` terms and then `after` events.
    async fn decided(
        given: ConsentTerms,
        after: Vec<ConsentEvent>,
        command: ConsentCommand,
    ) -> Result<Vec<ConsentEvent>, DomainError> {
        let mut events = vec![ConsentEvent::ConsentGiven { terms: given }];
        events.extend(after);
        TestFramework::<Consent>::with(services())
            .given(events)
            .when_async(command)
            .await
            .inspect_result()
    }

    #[tokio::test]
    async fn a_recipient_withdraws_a_category_consent_for_itself_only() {
        let category = || terms(RecipientMode::Category, &[], &["ngo"]);
        assert_eq!(
            decided(category(), vec![], withdraw_by(actor("NGO A", "ngo"))).await,
            Ok(vec![recipient_withdrew("NGO A")])
        );
        // Released: A no longer covered, B still is; the consent itself stays in force.
        let mut state = Consent::default();
        state.apply(ConsentEvent::ConsentGiven { terms: category() });
        state.apply(recipient_withdrew("NGO A"));
        let record = state.record("c1").unwrap();
        assert_eq!(record.status, ConsentStatus::Given);
        assert!(record.in_force(today()));
        assert!(!record.in_force_for("NGO A", today()));
        assert!(!allowed(
            vec![record.clone()],
            actor("NGO A", "ngo"),
            "individual"
        ));
        assert!(allowed(
            vec![record.clone()],
            actor("NGO B", "ngo"),
            "individual"
        ));
        assert_eq!(
            Access {
                actor: actor("NGO A", "ngo"),
                consents: vec![record],
            }
            .fields("individual", today()),
            Some(vec![]),
            "a released recipient is shown nothing"
        );
        // Twice: a conflict; another NGO: released too, the consent still given.
        let again = decided(
            category(),
            vec![recipient_withdrew("NGO A")],
            withdraw_by(actor("NGO A", "ngo")),
        )
        .await;
        assert!(
            matches!(again, Err(DomainError::Conflict { .. })),
            "{again:?}"
        );
        assert_eq!(
            decided(
                category(),
                vec![recipient_withdrew("NGO A")],
                withdraw_by(actor("NGO B", "ngo"))
            )
            .await,
            Ok(vec![recipient_withdrew("NGO B")])
        );
    }

    #[tokio::test]
    async fn a_specific_consent_ends_when_its_last_recipient_withdraws() {
        let one = || terms(RecipientMode::Specific, &["WFP"], &[]);
        assert_eq!(
            decided(one(), vec![], withdraw_by(actor("WFP", "un"))).await,
            Ok(vec![withdrawn()])
        );
        let two = || terms(RecipientMode::Specific, &["WFP", "Red Cross"], &[]);
        assert_eq!(
            decided(two(), vec![], withdraw_by(actor("WFP", "un"))).await,
            Ok(vec![recipient_withdrew("WFP")])
        );
        assert_eq!(
            decided(
                two(),
                vec![recipient_withdrew("WFP")],
                withdraw_by(actor("Red Cross", "ngo"))
            )
            .await,
            Ok(vec![withdrawn()]),
            "the one recipient left ends it"
        );
    }

    #[tokio::test]
    async fn the_controller_withdraws_for_everyone_and_strangers_find_nothing() {
        let category = || terms(RecipientMode::Category, &[], &["ngo"]);
        assert_eq!(
            decided(category(), vec![], withdraw_by(controller())).await,
            Ok(vec![withdrawn()])
        );
        assert_eq!(
            decided(
                category(),
                vec![recipient_withdrew("NGO A")],
                withdraw_by(controller())
            )
            .await,
            Ok(vec![withdrawn()]),
            "after a recipient's own withdrawal too"
        );
        for stranger in [actor("Ministry", "government"), actor("NGO A", "ngo")] {
            let specific = terms(RecipientMode::Specific, &["WFP"], &[]);
            let refused = decided(specific, vec![], withdraw_by(stranger)).await;
            assert!(
                matches!(refused, Err(DomainError::NotFound { .. })),
                "{refused:?}"
            );
        }
        let refused = decided(category(), vec![], withdraw_by(actor("Bank", "private"))).await;
        assert!(
            matches!(refused, Err(DomainError::NotFound { .. })),
            "{refused:?}"
        );
        let ended = decided(
            category(),
            vec![withdrawn()],
            withdraw_by(actor("NGO A", "ngo")),
        )
        .await;
        assert!(
            matches!(ended, Err(DomainError::Conflict { .. })),
            "{ended:?}"
        );
    }

    fn actor(organization: &str, kind: &str) -> Actor {
        Actor {
            organization: organization.into(),
            organization_type: kind.into(),
            legal_basis: None,
            field_filter: vec![],
        }
    }

    fn allowed(consents: Vec<ConsentRecord>, who: Actor, resource: &str) -> bool {
        Access {
            actor: who,
            consents,
        }
        .permits(resource, "Individual", today())
        .is_ok()
    }

    #[test]
    fn specific_recipients_are_matched_by_organisation() {
        let c = record(
            terms(RecipientMode::Specific, &["WFP", "Red Cross"], &[]),
            ConsentStatus::Given,
        );
        assert!(allowed(vec![c.clone()], actor("WFP", "un"), "individual"));
        assert!(allowed(
            vec![c.clone()],
            actor("Red Cross", "ngo"),
            "individual"
        ));
        assert!(!allowed(
            vec![c],
            actor("Acme Bank", "private"),
            "individual"
        ));
    }

    #[test]
    fn categories_are_matched_by_organisation_type() {
        let c = record(
            terms(RecipientMode::Category, &[], &["ngo"]),
            ConsentStatus::Given,
        );
        assert!(allowed(
            vec![c.clone()],
            actor("Any NGO", "ngo"),
            "individual"
        ));
        assert!(!allowed(
            vec![c.clone()],
            actor("Ministry", "government"),
            "individual"
        ));
        assert!(!allowed(vec![c], actor("Acme", "private"), "individual"));
        let several = record(
            terms(RecipientMode::Category, &[], &["ngo", "government"]),
            ConsentStatus::Given,
        );
        assert!(allowed(
            vec![several.clone()],
            actor("Ministry", "government"),
            "individual"
        ));
        assert!(!allowed(
            vec![several],
            actor("Acme", "private"),
            "individual"
        ));
    }

    #[test]
    fn specific_never_satisfies_category_and_vice_versa() {
        // An organisation named like a category, and a category named like an organisation.
        let specific = record(
            terms(RecipientMode::Specific, &["ngo"], &[]),
            ConsentStatus::Given,
        );
        assert!(!allowed(
            vec![specific],
            actor("Other", "ngo"),
            "individual"
        ));
        let category = record(
            terms(RecipientMode::Category, &[], &["ngo"]),
            ConsentStatus::Given,
        );
        assert!(!allowed(
            vec![category],
            actor("ngo", "government"),
            "individual"
        ));
    }

    #[test]
    fn withdrawn_expired_and_future_consents_do_not_count() {
        let who = || actor("WFP", "un");
        let base = || terms(RecipientMode::Specific, &["WFP"], &[]);
        assert!(!allowed(
            vec![record(base(), ConsentStatus::Withdrawn)],
            who(),
            "individual"
        ));
        let mut expired = base();
        expired.expiry_date = today().pred_opt().unwrap();
        assert!(!allowed(
            vec![record(expired, ConsentStatus::Given)],
            who(),
            "individual"
        ));
        let mut last_day = base();
        last_day.expiry_date = today();
        assert!(allowed(
            vec![record(last_day, ConsentStatus::Given)],
            who(),
            "individual"
        ));
        let mut future = base();
        future.effective_date = today().succ_opt().unwrap();
        assert!(!allowed(
            vec![record(future, ConsentStatus::Given)],
            who(),
            "individual"
        ));
        assert!(allowed(
            vec![record(base(), ConsentStatus::Renewed)],
            who(),
            "individual"
        ));
    }

    #[test]
    fn the_scope_must_cover_the_resource_and_no_consent_fails_closed() {
        let c = record(
            terms(RecipientMode::Specific, &["WFP"], &[]),
            ConsentStatus::Given,
        );
        assert!(!allowed(vec![c.clone()], actor("WFP", "un"), "group"));
        let mut all = c.clone();
        all.terms.scopes[0].resource_type = "all".into();
        assert!(allowed(vec![all], actor("WFP", "un"), "group"));
        assert!(!allowed(vec![], actor("WFP", "un"), "individual"));
        let mut by_law = actor("WFP", "un");
        by_law.legal_basis = Some("public_task".into());
        assert!(allowed(vec![], by_law, "individual"));
    }

    #[test]
    fn visible_fields_are_the_union_of_the_consents_narrowed_by_the_client_filter() {
        let limited = |fields: Option<&[&str]>| {
            let mut c = record(
                terms(RecipientMode::Specific, &["WFP"], &[]),
                ConsentStatus::Given,
            );
            c.terms.scopes[0].field_access =
                fields.map(|f| f.iter().map(|s| s.to_string()).collect());
            c
        };
        let names = |fields: Option<Vec<String>>| {
            fields.map(|mut f| {
                f.sort();
                f.join(",")
            })
        };
        let access = |consents, filter: &[&str]| Access {
            actor: Actor {
                field_filter: filter.iter().map(|s| s.to_string()).collect(),
                ..actor("WFP", "un")
            },
            consents,
        };
        let two = vec![limited(Some(&["name"])), limited(Some(&["gender", "name"]))];
        assert_eq!(
            names(access(two.clone(), &[]).fields("individual", today())),
            Some("gender,name".into())
        );
        assert_eq!(
            names(access(two, &["individual:gender", "group:name"]).fields("individual", today())),
            Some("gender".into())
        );
        let all = vec![limited(Some(&["name"])), limited(None)];
        assert_eq!(access(all.clone(), &[]).fields("individual", today()), None);
        assert_eq!(
            names(access(all, &["individual:address"]).fields("individual", today())),
            Some("address".into())
        );
        // A consent that does not cover the access shows nothing.
        let mut withdrawn = limited(None);
        withdrawn.status = ConsentStatus::Withdrawn;
        assert_eq!(
            access(vec![withdrawn], &[]).fields("individual", today()),
            Some(vec![])
        );
        // A legal basis shows everything the client's own filter allows.
        let mut by_law = access(vec![], &["individual:name"]);
        by_law.actor.legal_basis = Some("public_task".into());
        assert_eq!(
            names(by_law.fields("individual", today())),
            Some("name".into())
        );
        assert_eq!(by_law.fields("group", today()), None);
    }

    #[test]
    fn extension_data_is_shown_whole_or_one_extension_at_a_time() {
        let farmer = extension_field(FARMER);
        let fisher = extension_field("urn:openspp:extension:fisher");
        let listed = |fields: &[&str]| fields.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(shows(&listed(&["extension"]), &farmer));
        assert!(shows(&listed(&["name", &farmer]), &farmer));
        assert!(!shows(&listed(&["name", &farmer]), &fisher));
        assert!(!shows(&listed(&[&farmer]), "extension"), "one is not all");
        assert!(!shows(&listed(&["name"]), &farmer));
        // A consent showing all extensions, a client filter showing one: that one.
        let mut c = record(
            terms(RecipientMode::Specific, &["WFP"], &[]),
            ConsentStatus::Given,
        );
        c.terms.scopes[0].field_access = Some(listed(&["name", "extension"]));
        let access = Access {
            actor: Actor {
                field_filter: vec![format!("individual:{farmer}"), "individual:name".into()],
                ..actor("WFP", "un")
            },
            consents: vec![c.clone()],
        };
        let mut visible = access.fields("individual", today()).unwrap();
        visible.sort();
        assert_eq!(visible, listed(&[&farmer, "name"]));
        assert!(access.sees("individual", &farmer, today()));
        assert!(!access.sees("individual", &fisher, today()));
        // A body may state `extension` when it shows one extension (which ones it states is
        // checked per extension); not when it shows none.
        assert!(access
            .hidden_fields("individual", &listed(&["name", "extension"]), today())
            .is_ok());
        c.terms.scopes[0].field_access = Some(listed(&["name"]));
        let name_only = Access {
            actor: actor("WFP", "un"),
            consents: vec![c],
        };
        assert!(matches!(
            name_only.hidden_fields("individual", &listed(&["extension"]), today()),
            Err(DomainError::Forbidden { field, .. }) if field == "extension"
        ));
    }

    #[tokio::test]
    async fn a_consent_names_extensions_by_their_registered_uri() {
        let given = |fields: &[&str], resource_type: &str| {
            let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
            t.scopes[0].resource_type = resource_type.into();
            t.scopes[0].field_access = Some(fields.iter().map(|s| s.to_string()).collect());
            t
        };
        let farmer = extension_field(FARMER);
        TestFramework::<Consent>::with(services())
            .given_no_previous_events()
            .when_async(ConsentCommand::Give(given(
                &["name", "extension.farmer", "extension"],
                "individual",
            )))
            .await
            .then_expect_events(vec![ConsentEvent::ConsentGiven {
                terms: given(&["name", &farmer, "extension"], "individual"),
            }]);
        for (fields, resource_type) in [
            (&["extension.farmer"][..], "all"),
            (&["extension.fisher"][..], "individual"),
            (&["extension.farmer"][..], "group"),
            (&["extension"][..], "program_membership"),
            (&["extension."][..], "individual"),
        ] {
            let error = TestFramework::<Consent>::with(services())
                .given_no_previous_events()
                .when_async(ConsentCommand::Give(given(fields, resource_type)))
                .await
                .inspect_result()
                .expect_err("refused");
            assert!(
                matches!(&error, DomainError::Invalid { field, .. } if field == "scopes[0].field_access"),
                "{fields:?}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_consent_can_be_withdrawn_before_it_takes_effect_and_after_it_expires() {
        let withdraw = || withdraw_by(controller());
        let withdrawn = vec![ConsentEvent::ConsentWithdrawn {
            reason: None,
            channel: "api".into(),
        }];
        let future = (today().succ_opt().unwrap(), date(2030, 1, 1));
        let expired = (date(2023, 1, 1), today().pred_opt().unwrap());
        for (effective_date, expiry_date) in [future, expired] {
            let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
            t.effective_date = effective_date;
            t.expiry_date = expiry_date;
            TestFramework::<Consent>::with(services())
                .given(vec![ConsentEvent::ConsentGiven { terms: t }])
                .when_async(withdraw())
                .await
                .then_expect_events(withdrawn.clone());
        }
        TestFramework::<Consent>::with(services())
            .given(vec![
                ConsentEvent::ConsentGiven {
                    terms: terms(RecipientMode::Specific, &["WFP"], &[]),
                },
                ConsentEvent::ConsentRenewed {
                    expiry_date: date(2026, 1, 1),
                },
            ])
            .when_async(withdraw())
            .await
            .then_expect_events(withdrawn);
    }

    #[tokio::test]
    async fn terms_are_validated() {
        let refused = |t: ConsentTerms| async move {
            match TestFramework::<Consent>::with(services())
                .given_no_previous_events()
                .when_async(ConsentCommand::Give(t))
                .await
                .inspect_result()
            {
                Err(DomainError::Invalid { field, .. }) => field,
                other => panic!("expected a validation error, got {other:?}"),
            }
        };
        let t = terms(RecipientMode::Specific, &[], &[]);
        assert_eq!(refused(t).await, "recipients");
        let t = terms(RecipientMode::Specific, &["WFP"], &["ngo"]);
        assert_eq!(refused(t).await, "recipient_types");
        let t = terms(RecipientMode::Category, &["WFP"], &["ngo"]);
        assert_eq!(refused(t).await, "recipients");
        let t = terms(RecipientMode::Category, &[], &["pirates"]);
        assert_eq!(refused(t).await, "recipient_types[0]");
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.expiry_date = t.effective_date;
        assert_eq!(refused(t).await, "expiry_date");
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.scopes[0].resource_type = "wallet".into();
        assert_eq!(refused(t).await, "scopes[0].resource_type");
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.scopes[0].field_access = Some(vec!["name".into(), "salary".into()]);
        assert_eq!(refused(t).await, "scopes[0].field_access");
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.delegation_type = "guardian".into();
        assert_eq!(refused(t).await, "indicated_by");
    }

    #[tokio::test]
    async fn dates_and_lists_are_bounded() {
        let refused = |t: ConsentTerms| async move {
            match TestFramework::<Consent>::with(services())
                .given_no_previous_events()
                .when_async(ConsentCommand::Give(t))
                .await
                .inspect_result()
            {
                Err(DomainError::Invalid { field, .. }) => field,
                other => panic!("expected a validation error, got {other:?}"),
            }
        };
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.effective_date = NaiveDate::from_ymd_opt(-4714, 11, 24).unwrap();
        assert_eq!(refused(t).await, "effective_date");
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.expiry_date = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        assert_eq!(refused(t).await, "expiry_date");
        let many = vec!["WFP"; crate::bounds::items::RECIPIENTS + 1];
        assert_eq!(
            refused(terms(RecipientMode::Specific, &many, &[])).await,
            "recipients"
        );
        let many = vec!["ngo"; crate::bounds::items::RECIPIENT_TYPES + 1];
        assert_eq!(
            refused(terms(RecipientMode::Category, &[], &many)).await,
            "recipient_types"
        );
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.scopes = vec![t.scopes[0].clone(); crate::bounds::items::SCOPES + 1];
        assert_eq!(refused(t).await, "scopes");
        let mut t = terms(RecipientMode::Specific, &["WFP"], &[]);
        t.scopes[0].field_access = Some(vec!["name".into(); crate::bounds::items::FIELDS + 1]);
        assert_eq!(refused(t).await, "scopes[0].field_access");
    }

    #[tokio::test]
    async fn a_consent_is_given_once_and_withdrawn_once() {
        let given = ConsentEvent::ConsentGiven {
            terms: terms(RecipientMode::Specific, &["WFP"], &[]),
        };
        let withdraw = || ConsentCommand::Withdraw {
            reason: Some("changed my mind".into()),
            channel: "api".into(),
            by: controller(),
        };
        TestFramework::<Consent>::with(services())
            .given(vec![given.clone()])
            .when_async(withdraw())
            .await
            .then_expect_events(vec![ConsentEvent::ConsentWithdrawn {
                reason: Some("changed my mind".into()),
                channel: "api".into(),
            }]);
        let withdrawn = ConsentEvent::ConsentWithdrawn {
            reason: None,
            channel: "api".into(),
        };
        let again = TestFramework::<Consent>::with(services())
            .given(vec![given.clone(), withdrawn])
            .when_async(withdraw())
            .await
            .inspect_result();
        assert!(matches!(again, Err(DomainError::Conflict { .. })));
        let renewed = TestFramework::<Consent>::with(services())
            .given(vec![given.clone()])
            .when_async(ConsentCommand::Renew {
                expiry_date: date(2026, 1, 1),
            })
            .await
            .inspect_result();
        assert_eq!(
            renewed,
            Ok(vec![ConsentEvent::ConsentRenewed {
                expiry_date: date(2026, 1, 1)
            }])
        );
        let shorter = TestFramework::<Consent>::with(services())
            .given(vec![given.clone()])
            .when_async(ConsentCommand::Renew {
                expiry_date: date(2024, 12, 1),
            })
            .await
            .inspect_result();
        assert!(matches!(shorter, Err(DomainError::Invalid { .. })));
        let twice = TestFramework::<Consent>::with(services())
            .given(vec![given])
            .when_async(ConsentCommand::Give(terms(
                RecipientMode::Specific,
                &["WFP"],
                &[],
            )))
            .await
            .inspect_result();
        assert_eq!(twice, Err(DomainError::AlreadyExists));
    }
}
