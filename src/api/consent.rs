//! Consents as the API records and shows them (OpenSPP `GET /Consent/{id}`, with the parties
//! added), and the bodies of their operations.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use openspp_aggregates::bounds::{self, items, LONG_TEXT, SHORT_TEXT};
use openspp_aggregates::consent::{
    shows_any_extension, ConsentScope, ConsentStatus, RecipientMode, EXTENSION,
};
use openspp_aggregates::{ConsentRecord, ConsentTerms, Date, DomainError, Identifier, TargetType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access_log::AccessRow;
use crate::api::reference::parse_identifier;
use crate::api::schema::at_most;
use crate::api::BASE;
use crate::error::ApiError;
use crate::store::history::Recorded;
use crate::store::metadata::client_uri;

/// A scope of a consent as a client writes it: which resource, which fields, why. `field_access`
/// takes this server's list of fields (`null` = all) or OpenSPP's levels: `all`, `basic`
/// (name, active) or `custom` (the fields `custom_fields` lists); `type`, `identifier` and
/// `meta` are shown to every reader.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    /// `individual`, `group`, `program_membership` or `all`.
    pub resource_type: String,
    #[serde(default)]
    #[schema(schema_with = field_access_schema)]
    pub field_access: FieldAccess,
    /// With `field_access: "custom"`: the fields, as a list or comma-separated (OpenSPP).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<CustomFields>,
    /// OpenSPP's flag: with `basic` or `custom`, the consent covers extension data too. With
    /// `all` (or this server's `null`) extension data is always covered.
    #[serde(default)]
    pub include_extensions: Option<bool>,
    /// `service_delivery`, `eligibility_verification`, `analytics`, `research` or `audit`.
    pub purpose: String,
}

/// `field_access` in the OpenAPI document: a level, a bounded list of fields, or `null`.
fn field_access_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["all", "basic", "custom"])),
        )
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .max_items(Some(items::FIELDS)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// The fields OpenSPP's `basic` level shows, besides `type`, `identifier` and `meta`, which
/// every reader gets.
pub const BASIC_FIELDS: [&str; 2] = ["name", "active"];

/// `field_access` as written: all fields, OpenSPP's `basic` or `custom`, or a list of fields.
#[derive(Debug, Clone, Default)]
pub enum FieldAccess {
    #[default]
    All,
    Basic,
    Custom,
    Listed(Vec<String>),
}

impl<'de> Deserialize<'de> for FieldAccess {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Access;
        impl<'de> serde::de::Visitor<'de> for Access {
            type Value = FieldAccess;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(
                    f,
                    "all, basic, custom, null or a list of at most {} fields",
                    items::FIELDS
                )
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<FieldAccess, E> {
                Ok(FieldAccess::All)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<FieldAccess, E> {
                Ok(FieldAccess::All)
            }
            fn visit_str<E: serde::de::Error>(self, level: &str) -> Result<FieldAccess, E> {
                match level {
                    "all" => Ok(FieldAccess::All),
                    "basic" => Ok(FieldAccess::Basic),
                    "custom" => Ok(FieldAccess::Custom),
                    _ => Err(E::custom("must be all, basic, custom or a list of fields")),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FieldAccess, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = seq.next_element::<String>()? {
                    if fields.len() == items::FIELDS {
                        return Err(serde::de::Error::custom(format!(
                            "must have at most {} entries",
                            items::FIELDS
                        )));
                    }
                    fields.push(field);
                }
                Ok(FieldAccess::Listed(fields))
            }
        }
        deserializer.deserialize_any(Access)
    }
}

/// OpenSPP's `custom_fields`: a list, or one comma-separated string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CustomFields {
    Listed(Vec<String>),
    Joined(String),
}

impl ScopeBody {
    /// The fields the scope covers (`None` = all), as the domain keeps them; `at` names the
    /// scope in a 422.
    pub fn fields(&self, at: &str) -> Result<Option<Vec<String>>, ApiError> {
        let custom = match &self.custom_fields {
            None => None,
            Some(CustomFields::Listed(list)) => Some(list.clone()),
            Some(CustomFields::Joined(text)) => Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        };
        let field = |name: &str| format!("{at}.{name}");
        if custom.is_some() && !matches!(self.field_access, FieldAccess::Custom) {
            return Err(ApiError::unprocessable(
                &field("custom_fields"),
                "only with field_access: custom",
            ));
        }
        let mut fields = match &self.field_access {
            FieldAccess::All => {
                if self.include_extensions == Some(false) {
                    return Err(ApiError::unprocessable(
                        &field("include_extensions"),
                        "field_access all covers extension data; list the fields to leave \
                         extensions out",
                    ));
                }
                return Ok(None);
            }
            FieldAccess::Listed(list) => return Ok(Some(list.clone())),
            FieldAccess::Basic => BASIC_FIELDS.iter().map(|f| f.to_string()).collect(),
            FieldAccess::Custom => {
                // `identifier` is shown to every reader, as OpenSPP always includes it.
                custom.ok_or_else(|| {
                    ApiError::unprocessable(
                        &field("custom_fields"),
                        "field_access custom lists them",
                    )
                })?
            }
        };
        if self.include_extensions == Some(true) && !fields.iter().any(|f| f == EXTENSION) {
            fields.push(EXTENSION.to_owned());
        }
        if fields.len() > items::FIELDS {
            return Err(ApiError::unprocessable(
                &field("custom_fields"),
                format!("must have at most {} entries", items::FIELDS),
            ));
        }
        Ok(Some(fields))
    }
}

/// A scope of a consent as shown: OpenSPP's `field_access` level, and the fields it covers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScopeShown {
    pub resource_type: String,
    /// OpenSPP's level: `all`, `basic` (name, active) or `custom`.
    pub field_access: &'static str,
    /// The fields covered; `null` = all.
    pub fields: Option<Vec<String>>,
    /// With `custom`: the fields covered, as OpenSPP lists them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<String>>,
    /// Whether extension data is covered.
    pub include_extensions: bool,
    pub purpose: String,
}

impl ScopeShown {
    pub fn of(resource_type: String, fields: Option<Vec<String>>, purpose: String) -> Self {
        let include_extensions = fields.as_deref().is_none_or(shows_any_extension);
        let field_access = match &fields {
            None => "all",
            Some(list)
                if list.len() == BASIC_FIELDS.len()
                    && BASIC_FIELDS.iter().all(|b| list.iter().any(|f| f == b)) =>
            {
                "basic"
            }
            Some(_) => "custom",
        };
        Self {
            resource_type,
            field_access,
            custom_fields: (field_access == "custom").then(|| fields.clone()).flatten(),
            fields,
            include_extensions,
            purpose,
        }
    }
}

/// Body of `POST /Consent`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// `Individual/{system}|{value}` or `Group/{system}|{value}` (a group's consent covers its
    /// members).
    pub subject: String,
    /// `specific` (named organisations) or `category` (organisation types).
    pub recipient_mode: String,
    #[serde(default, deserialize_with = "at_most::<_, _, { items::RECIPIENTS }>")]
    #[schema(max_items = 50)]
    pub recipients: Vec<String>,
    #[serde(
        default,
        deserialize_with = "at_most::<_, _, { items::RECIPIENT_TYPES }>"
    )]
    #[schema(max_items = 9)]
    pub recipient_types: Vec<String>,
    #[serde(deserialize_with = "at_most::<_, _, { items::SCOPES }>")]
    #[schema(max_items = 20)]
    pub scopes: Vec<ScopeBody>,
    #[serde(default = "consent_basis")]
    pub legal_basis: String,
    /// Defaults to today.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_date: Option<Date>,
    #[schema(value_type = String, format = Date)]
    pub expiry_date: Date,
    /// `self`, `guardian`, `parent`, `poa` or `representative`.
    #[serde(default = "self_delegation")]
    pub delegation_type: String,
    /// Who indicated the consent, when not the subject.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub indicated_by: Option<String>,
}

fn consent_basis() -> String {
    "consent".to_owned()
}

fn self_delegation() -> String {
    "self".to_owned()
}

/// A consent as the API shows it (OpenSPP `GET /Consent/{id}`, with the parties added).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentResource {
    pub consent_id: String,
    /// `given`, `renewed`, `withdrawn` or `expired` (evaluated now).
    pub status: String,
    /// Whether the consent allows access today (OpenSPP's `is_valid`): given or renewed, and
    /// between its effective and expiry dates. A consent given for a later start is `given`
    /// but not yet valid.
    pub is_valid: bool,
    pub subject: Option<String>,
    /// OpenSPP's `grantee`: the organisations granted access (`specific`), or the
    /// organisation types (`category`), comma-separated.
    pub grantee: Option<String>,
    pub recipient_mode: String,
    pub recipients: Vec<String>,
    pub recipient_types: Vec<String>,
    pub scopes: Vec<ScopeShown>,
    pub legal_basis: String,
    pub effective_date: NaiveDate,
    pub expiry_date: NaiveDate,
    pub delegation_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicated_by: Option<String>,
    /// The recipients that withdrew from the consent for themselves (it stays in force for
    /// the others). The controller sees them all; a recipient sees only itself, if it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn_recipients: Vec<String>,
}

/// Whose view of a consent is rendered: `None` the controller's (a legal-basis client, for the
/// subject), `Some(organization)` a recipient's, for whom the consent is what it is for that
/// recipient (withdrawn once it withdrew for itself).
pub type Viewer<'a> = Option<&'a str>;

/// The status a reader sees: expiry is evaluated at request time.
pub fn status_now(record: &ConsentRecord, today: NaiveDate) -> &'static str {
    match record.status {
        ConsentStatus::Withdrawn => ConsentStatus::Withdrawn.as_str(),
        _ if record.terms.expiry_date < today => "expired",
        status => status.as_str(),
    }
}

/// The consent as shown `today` (its status and validity are evaluated then) to `viewer`.
pub fn shown(
    record: ConsentRecord,
    subject: Option<String>,
    today: NaiveDate,
    viewer: Viewer<'_>,
) -> ConsentResource {
    let terms = &record.terms;
    let (status, is_valid) = match viewer {
        Some(organization) if record.released_for(organization) => {
            (ConsentStatus::Withdrawn.as_str(), false)
        }
        Some(organization) => (
            status_now(&record, today),
            record.in_force_for(organization, today),
        ),
        None => (status_now(&record, today), record.in_force(today)),
    };
    let withdrawn_recipients = record
        .released
        .iter()
        .filter(|released| viewer.is_none_or(|organization| *released == organization))
        .cloned()
        .collect();
    ConsentResource {
        consent_id: record.consent_id.clone(),
        status: status.to_owned(),
        is_valid,
        subject,
        grantee: Some(match terms.recipient_mode.as_str() {
            "specific" => terms.recipients.join(", "),
            _ => terms.recipient_types.join(", "),
        })
        .filter(|g| !g.is_empty()),
        recipient_mode: terms.recipient_mode.as_str().to_owned(),
        recipients: terms.recipients.clone(),
        recipient_types: terms.recipient_types.clone(),
        scopes: terms
            .scopes
            .iter()
            .map(|s| {
                ScopeShown::of(
                    s.resource_type.clone(),
                    s.field_access.clone(),
                    s.purpose.clone(),
                )
            })
            .collect(),
        legal_basis: terms.legal_basis.clone(),
        effective_date: terms.effective_date,
        expiry_date: terms.expiry_date,
        delegation_type: terms.delegation_type.clone(),
        indicated_by: terms.indicated_by.clone(),
        withdrawn_recipients,
    }
}

/// Body of `$revoke`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

impl RevokeBody {
    /// The reason, bounded as every stored text is (422 naming `reason` otherwise).
    pub fn checked_reason(self) -> Result<Option<String>, ApiError> {
        if let Some(reason) = &self.reason {
            text("reason", reason, LONG_TEXT)?;
        }
        Ok(self.reason)
    }
}

impl ConsentBody {
    /// Text the consent keeps as given is bounded like every stored text: a recipient is
    /// indexed, and PostgreSQL cannot index an entry of kilobytes, nor store NUL anywhere.
    pub fn check_text(&self) -> Result<(), ApiError> {
        for (i, recipient) in self.recipients.iter().enumerate() {
            text(&format!("recipients[{i}]"), recipient, SHORT_TEXT)?;
        }
        if let Some(indicated_by) = &self.indicated_by {
            text("indicated_by", indicated_by, SHORT_TEXT)?;
        }
        Ok(())
    }

    /// The data subject the body names: its kind (`Individual`, `Group`) and identifier.
    pub fn subject(&self) -> Result<(&'static str, Identifier), ApiError> {
        let (kind, key) = self
            .subject
            .split_once('/')
            .and_then(|(kind, key)| Some((TargetType::of_resource(kind)?, key)))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "subject",
                    "must be Individual/{system}|{value} or Group/{system}|{value}",
                )
            })?;
        let identifier = parse_identifier(key, "subject")
            .map_err(|e| ApiError::unprocessable("subject", e.diagnostics))?;
        Ok((kind.resource(), identifier))
    }

    /// The terms the body gives, of the subject `subject` (its stream), a `subject_type`;
    /// effective from `today` unless the body says when.
    pub fn into_terms(
        self,
        subject_type: &str,
        subject: String,
        today: NaiveDate,
    ) -> Result<ConsentTerms, ApiError> {
        let recipient_mode = RecipientMode::parse(&self.recipient_mode)
            .ok_or_else(|| ApiError::unprocessable("recipient_mode", RecipientMode::expected()))?;
        let mut scopes = Vec::with_capacity(self.scopes.len());
        for (index, scope) in self.scopes.into_iter().enumerate() {
            scopes.push(ConsentScope {
                field_access: scope.fields(&format!("scopes[{index}]"))?,
                resource_type: scope.resource_type,
                purpose: scope.purpose,
            });
        }
        Ok(ConsentTerms {
            subject_type: subject_type.to_owned(),
            subject,
            recipient_mode,
            recipients: self.recipients,
            recipient_types: self.recipient_types,
            scopes,
            legal_basis: self.legal_basis,
            effective_date: self.effective_date.map_or(today, Date::get),
            expiry_date: self.expiry_date.get(),
            delegation_type: self.delegation_type,
            indicated_by: self.indicated_by,
        })
    }
}

fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    bounds::text(field, value, max).map_err(|error| match error {
        DomainError::Invalid { field, message } => ApiError::unprocessable(&field, message),
        other => ApiError::unprocessable(field, other.to_string()),
    })
}

/// Body of `$renew`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    #[schema(value_type = String, format = Date)]
    pub expiry_date: Date,
}

/// The answer to `$revoke` and `DELETE`: for whom the consent was withdrawn.
#[derive(Debug, Serialize, ToSchema)]
pub struct Withdrawal {
    pub consent_id: String,
    /// Always `withdrawn` (for the caller, at least).
    pub status: &'static str,
    /// `everyone` (the controller's withdrawal, or the last recipient's), or `recipient`: the
    /// caller's organisation only, the consent staying in force for the other recipients.
    pub withdrawn_for: &'static str,
    /// The organisation it was withdrawn for, when `withdrawn_for` is `recipient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    pub revoked_at: String,
    pub message: &'static str,
}

impl Withdrawal {
    /// The consent withdrawn for everyone: it no longer allows any access.
    pub fn for_everyone(consent_id: String) -> Self {
        Self {
            consent_id,
            status: "withdrawn",
            withdrawn_for: "everyone",
            recipient: None,
            revoked_at: chrono::Utc::now().to_rfc3339(),
            message: "consent withdrawn; it no longer allows any access",
        }
    }

    /// The consent withdrawn for `recipient` only.
    pub fn for_recipient(consent_id: String, recipient: String) -> Self {
        Self {
            recipient: Some(recipient),
            withdrawn_for: "recipient",
            message: "consent withdrawn for this recipient; it stays in force for the others \
                      it names",
            ..Self::for_everyone(consent_id)
        }
    }
}

/// A consent receipt (ISO/IEC 29184:2020, with the Kantara Consent Receipt's fields).
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    /// Names the consent and its version: a new version is a new receipt.
    pub receipt_id: String,
    pub version: &'static str,
    pub consent_id: String,
    pub consent_timestamp: String,
    pub collection_method: Option<String>,
    pub data_subject: ReceiptSubject,
    pub data_controller: ReceiptController,
    pub recipients: ReceiptRecipients,
    /// OpenSPP's shape: one entry per scope's purpose.
    pub purposes: Vec<ReceiptPurpose>,
    pub data_categories: Vec<ReceiptCategory>,
    /// The rights the data subject holds (GDPR arts. 15-20, 7(3)), as OpenSPP lists them.
    pub data_subject_rights: Vec<&'static str>,
    pub legal_basis: String,
    pub delegation: ReceiptDelegation,
    pub effective_date: NaiveDate,
    pub expiry_date: NaiveDate,
    pub status: String,
    pub is_valid: bool,
    pub withdrawal_uri: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptSubject {
    /// `Individual/{system}|{value}`.
    pub reference: Option<String>,
    /// `{system}|{value}` (OpenSPP's field): an identifier, no other personal data.
    pub identifier: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptController {
    /// The organisation of the API client that recorded the consent.
    pub name: Option<String>,
    /// Where to reach it: the recording client's URI.
    pub contact: Option<String>,
    /// The API client that recorded the consent.
    pub recorded_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptPurpose {
    /// The purpose's code (`service_delivery` …).
    pub id: String,
    pub description: &'static str,
    /// The resource type the purpose applies to.
    pub resource_type: String,
}

/// What each purpose a consent can name means, for a receipt.
fn purpose_description(purpose: &str) -> &'static str {
    match purpose {
        "service_delivery" => "Delivering the programme's services and benefits",
        "eligibility_verification" => "Checking eligibility for a programme",
        "analytics" => "Statistics and programme analytics",
        "research" => "Research",
        "audit" => "Audit and oversight",
        _ => "A purpose this server does not describe",
    }
}

/// The data subject's rights, as a receipt states them.
const DATA_SUBJECT_RIGHTS: [&str; 5] = [
    "Right to access your data",
    "Right to rectification",
    "Right to erasure",
    "Right to data portability",
    "Right to withdraw consent at any time",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptRecipients {
    pub mode: String,
    pub organizations: Vec<String>,
    pub organization_types: Vec<String>,
    /// Recipients that withdrew for themselves (as `ConsentResource::withdrawn_recipients`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptCategory {
    pub resource_type: String,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptDelegation {
    #[serde(rename = "type")]
    pub kind: String,
    pub indicated_by: Option<String>,
}

/// A metadata string of a stored event.
fn meta(event: &Recorded, key: &str) -> Option<String> {
    event
        .metadata
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

impl Receipt {
    /// The receipt of `consent` as shown now, from its stored events (the first records who
    /// took it, when and how).
    pub fn of(
        consent: ConsentResource,
        events: &[Recorded],
        controller: Option<String>,
    ) -> Option<Self> {
        let given = events.first()?;
        let recorded_by = meta(given, "client_id").map(|c| client_uri(&c));
        Some(Self {
            receipt_id: format!(
                "urn:openspp:consent-receipt:{}:{}",
                consent.consent_id,
                events.len()
            ),
            version: "ISO/IEC 29184:2020",
            consent_timestamp: given.recorded_at.to_rfc3339(),
            collection_method: meta(given, "collection_method"),
            data_subject: ReceiptSubject {
                identifier: consent
                    .subject
                    .as_deref()
                    .and_then(|s| s.split_once('/'))
                    .map(|(_, key)| key.to_owned()),
                reference: consent.subject,
            },
            data_controller: ReceiptController {
                name: controller,
                contact: recorded_by.clone(),
                recorded_by,
            },
            recipients: ReceiptRecipients {
                mode: consent.recipient_mode,
                organizations: consent.recipients,
                organization_types: consent.recipient_types,
                withdrawn: consent.withdrawn_recipients,
            },
            purposes: consent
                .scopes
                .iter()
                .map(|s| ReceiptPurpose {
                    description: purpose_description(&s.purpose),
                    id: s.purpose.clone(),
                    resource_type: s.resource_type.clone(),
                })
                .collect(),
            data_categories: consent
                .scopes
                .into_iter()
                .map(|s| ReceiptCategory {
                    resource_type: s.resource_type,
                    fields: s.fields,
                })
                .collect(),
            data_subject_rights: DATA_SUBJECT_RIGHTS.to_vec(),
            legal_basis: consent.legal_basis,
            delegation: ReceiptDelegation {
                kind: consent.delegation_type,
                indicated_by: consent.indicated_by,
            },
            effective_date: consent.effective_date,
            expiry_date: consent.expiry_date,
            status: consent.status,
            is_valid: consent.is_valid,
            withdrawal_uri: format!("{BASE}/Consent/{}/$revoke", consent.consent_id),
            consent_id: consent.consent_id,
        })
    }
}

/// A consent's life (`$history`): given, renewed, withdrawn, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentLife {
    pub consent_id: String,
    pub current_version: usize,
    pub history: Vec<ConsentChange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentChange {
    pub version: i64,
    /// `give`, `renew`, `withdraw` (for everyone) or `withdraw_recipient` (one recipient for
    /// itself).
    pub action: &'static str,
    pub changed_date: String,
    pub changed_by: Option<String>,
    pub channel: Option<String>,
    pub reason: Option<String>,
    /// The consent's fields the change set (OpenSPP's `changed_fields`).
    pub changed_fields: Vec<&'static str>,
    /// The recipient that withdrew for itself (`withdraw_recipient`), shown to the controller
    /// and to that recipient; another recipient sees that one withdrew, not who, nor why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// The fields each kind of consent event sets.
fn changed_fields(event_type: &str) -> Vec<&'static str> {
    match event_type {
        "ConsentGiven" => vec![
            "subject",
            "recipient_mode",
            "recipients",
            "recipient_types",
            "scopes",
            "legal_basis",
            "effective_date",
            "expiry_date",
            "delegation_type",
            "status",
        ],
        "ConsentRenewed" => vec!["expiry_date", "status"],
        "RecipientWithdrew" => vec!["withdrawn_recipients"],
        _ => vec!["status"],
    }
}

impl ConsentLife {
    pub fn of(consent_id: String, events: &[Recorded], viewer: Viewer<'_>) -> Self {
        let history = events
            .iter()
            .rev()
            .map(|e| {
                let text = |key: &str| {
                    e.payload[e.event_type.as_str()][key]
                        .as_str()
                        .map(str::to_owned)
                };
                let mut change = ConsentChange {
                    version: e.sequence,
                    action: "withdraw",
                    changed_date: e.recorded_at.to_rfc3339(),
                    changed_by: meta(e, "client_id").map(|c| client_uri(&c)),
                    channel: meta(e, "collection_method"),
                    reason: text("reason"),
                    recipient: None,
                    changed_fields: changed_fields(&e.event_type),
                };
                match e.event_type.as_str() {
                    "ConsentGiven" => change.action = "give",
                    "ConsentRenewed" => change.action = "renew",
                    "RecipientWithdrew" => {
                        change.action = "withdraw_recipient";
                        change.recipient = text("recipient");
                        let own = change.recipient.as_deref() == viewer;
                        if viewer.is_some() && !own {
                            change.recipient = None;
                            change.changed_by = None;
                            change.reason = None;
                        }
                    }
                    _ => {}
                }
                change
            })
            .collect();
        Self {
            consent_id,
            current_version: events.len(),
            history,
        }
    }
}

/// How a consent has been used (`$access-summary`): OpenSPP's counts by action, resource type
/// and client and the span of the accesses counted, with this server's detail per client and
/// interaction, and the fields returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessSummary {
    pub consent_id: String,
    pub total_accesses: usize,
    /// OpenSPP's: accesses by action (`read`, `search`, `create`, `update`, `delete`, `history` …).
    pub by_action: BTreeMap<String, usize>,
    /// OpenSPP's: accesses by the resource type asked for.
    pub by_resource_type: BTreeMap<String, usize>,
    /// OpenSPP's: accesses by client (`urn:openspp:api-client:{client_id}`).
    pub by_client: BTreeMap<String, usize>,
    /// OpenSPP's: the first and last access counted (`from`, `to`; `null` without accesses).
    pub date_range: DateRange,
    /// Each client's organisation, accesses and last access.
    pub clients: Vec<ClientAccesses>,
    pub by_interaction: BTreeMap<String, usize>,
    /// `"all"`, or the fields returned.
    #[schema(value_type = Object)]
    pub fields_returned: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DateRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientAccesses {
    pub client: String,
    pub organization: String,
    pub accesses: usize,
    pub last_access: String,
}

/// OpenSPP's name of an access's action: a write by what it did (`create`, `update`,
/// `delete`), anything else by its interaction (`read`, `search`, `history` …).
fn action_name(row: &AccessRow) -> &str {
    match (row.interaction.as_str(), row.action.as_str()) {
        ("write", "C") => "create",
        ("write", "U") => "update",
        ("write", "D") => "delete",
        (interaction, _) => interaction,
    }
}

impl AccessSummary {
    /// The summary of `rows`, the accesses under `consent_id` (oldest first).
    pub fn of(consent_id: String, rows: &[AccessRow]) -> Self {
        let mut by_client: BTreeMap<&str, ClientAccesses> = BTreeMap::new();
        let mut by_interaction: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_action: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_resource_type: BTreeMap<String, usize> = BTreeMap::new();
        let mut fields: Vec<String> = Vec::new();
        let mut all_fields = false;
        for row in rows {
            let client = by_client
                .entry(&row.client_id)
                .or_insert_with(|| ClientAccesses {
                    client: client_uri(&row.client_id),
                    organization: row.organization.clone(),
                    accesses: 0,
                    last_access: String::new(),
                });
            client.accesses += 1;
            client.last_access = row.at.to_rfc3339();
            *by_interaction.entry(row.interaction.clone()).or_default() += 1;
            *by_action.entry(action_name(row).to_owned()).or_default() += 1;
            *by_resource_type
                .entry(row.resource_type.clone())
                .or_default() += 1;
            match &row.fields {
                Some(list) => {
                    for field in list {
                        if !fields.contains(field) {
                            fields.push(field.clone());
                        }
                    }
                }
                None => all_fields = true,
            }
        }
        let clients: Vec<ClientAccesses> = by_client.into_values().collect();
        Self {
            consent_id,
            total_accesses: rows.len(),
            by_action,
            by_resource_type,
            by_client: clients
                .iter()
                .map(|c| (c.client.clone(), c.accesses))
                .collect(),
            date_range: DateRange {
                from: rows.iter().map(|r| r.at).min().map(|t| t.to_rfc3339()),
                to: rows.iter().map(|r| r.at).max().map(|t| t.to_rfc3339()),
            },
            clients,
            by_interaction,
            fields_returned: if all_fields {
                serde_json::json!("all")
            } else {
                serde_json::json!(fields)
            },
        }
    }
}
