//! Consents as the API records and shows them (OpenSPP `GET /Consent/{id}`, with the parties
//! added), and the bodies of their operations.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use openspp_aggregates::bounds::{self, items, LONG_TEXT, SHORT_TEXT};
use openspp_aggregates::consent::{ConsentScope, ConsentStatus, RecipientMode};
use openspp_aggregates::{ConsentRecord, ConsentTerms, Date, DomainError, Identifier, TargetType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access_log::AccessRow;
use crate::api::reference::parse_identifier;
use crate::api::schema::{at_most, optional_at_most};
use crate::api::BASE;
use crate::error::ApiError;
use crate::store::history::Recorded;
use crate::store::metadata::client_uri;

/// A scope of a consent: which resource, which fields (all when `field_access` is null), why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    /// `individual`, `group`, `program_membership` or `all`.
    pub resource_type: String,
    #[serde(
        default,
        deserialize_with = "optional_at_most::<_, _, { items::FIELDS }>"
    )]
    #[schema(max_items = 20)]
    pub field_access: Option<Vec<String>>,
    /// `service_delivery`, `eligibility_verification`, `analytics`, `research` or `audit`.
    pub purpose: String,
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
    pub recipient_mode: String,
    pub recipients: Vec<String>,
    pub recipient_types: Vec<String>,
    pub scopes: Vec<ScopeBody>,
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
        ConsentStatus::Withdrawn => "withdrawn",
        _ if record.terms.expiry_date < today => "expired",
        ConsentStatus::Renewed => "renewed",
        ConsentStatus::Given => "given",
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
        Some(organization) if record.released_for(organization) => ("withdrawn", false),
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
        recipient_mode: terms.recipient_mode.as_str().to_owned(),
        recipients: terms.recipients.clone(),
        recipient_types: terms.recipient_types.clone(),
        scopes: terms
            .scopes
            .iter()
            .map(|s| ScopeBody {
                resource_type: s.resource_type.clone(),
                field_access: s.field_access.clone(),
                purpose: s.purpose.clone(),
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
        Ok(ConsentTerms {
            subject_type: subject_type.to_owned(),
            subject,
            recipient_mode,
            recipients: self.recipients,
            recipient_types: self.recipient_types,
            scopes: self
                .scopes
                .into_iter()
                .map(|s| ConsentScope {
                    resource_type: s.resource_type,
                    field_access: s.field_access,
                    purpose: s.purpose,
                })
                .collect(),
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
    pub purposes: Vec<String>,
    pub data_categories: Vec<ReceiptCategory>,
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
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptController {
    /// The API client that recorded the consent.
    pub recorded_by: Option<String>,
}

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
    pub fn of(consent: ConsentResource, events: &[Recorded]) -> Option<Self> {
        let given = events.first()?;
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
                reference: consent.subject,
            },
            data_controller: ReceiptController {
                recorded_by: meta(given, "client_id").map(|c| client_uri(&c)),
            },
            recipients: ReceiptRecipients {
                mode: consent.recipient_mode,
                organizations: consent.recipients,
                organization_types: consent.recipient_types,
                withdrawn: consent.withdrawn_recipients,
            },
            purposes: consent.scopes.iter().map(|s| s.purpose.clone()).collect(),
            data_categories: consent
                .scopes
                .into_iter()
                .map(|s| ReceiptCategory {
                    resource_type: s.resource_type,
                    fields: s.field_access,
                })
                .collect(),
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
    /// The recipient that withdrew for itself (`withdraw_recipient`), shown to the controller
    /// and to that recipient; another recipient sees that one withdrew, not who, nor why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
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

/// How a consent has been used (`$access-summary`): accesses per client and interaction, and
/// the fields returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessSummary {
    pub consent_id: String,
    pub total_accesses: usize,
    pub by_client: Vec<ClientAccesses>,
    pub by_interaction: BTreeMap<String, usize>,
    /// `"all"`, or the fields returned.
    #[schema(value_type = Object)]
    pub fields_returned: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientAccesses {
    pub client: String,
    pub organization: String,
    pub accesses: usize,
    pub last_access: String,
}

impl AccessSummary {
    /// The summary of `rows`, the accesses under `consent_id` (oldest first).
    pub fn of(consent_id: String, rows: &[AccessRow]) -> Self {
        let mut by_client: BTreeMap<&str, ClientAccesses> = BTreeMap::new();
        let mut by_interaction: BTreeMap<String, usize> = BTreeMap::new();
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
        Self {
            consent_id,
            total_accesses: rows.len(),
            by_client: by_client.into_values().collect(),
            by_interaction,
            fields_returned: if all_fields {
                serde_json::json!("all")
            } else {
                serde_json::json!(fields)
            },
        }
    }
}
