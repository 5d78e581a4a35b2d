//! The access log as the API answers it: each access a FHIR-shaped `AuditEvent`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::access_log::AccessRow;
use crate::store::metadata::client_uri;

/// One access to the registry: who, when, what, under which consent, and how it ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventResource {
    /// Always `AuditEvent`.
    pub resource_type: String,
    /// RFC 3339.
    pub recorded: String,
    #[serde(rename = "type")]
    pub event_type: AuditCode,
    /// The interaction (`read`, `search`, `history`, `create`, `update` …).
    pub subtype: String,
    /// `C`, `R`, `U`, `D` or `E`.
    pub action: String,
    /// The HTTP status the access was answered with.
    pub outcome: String,
    pub agent: AuditAgent,
    pub source: AuditSource,
    /// Every subject the answer named (`Individual/{system}|{value}` …).
    pub entity: Vec<AuditEntity>,
    pub resource: String,
    pub purpose_of_use: Option<String>,
    /// The consents relied on.
    pub consent: Vec<String>,
    /// The fields returned, where a consent or a field filter limited them.
    pub fields_returned: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditCode {
    /// Always `rest`.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditAgent {
    /// `urn:openspp:api-client:{client_id}`.
    pub who: String,
    pub organization: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSource {
    pub request_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntity {
    pub what: AuditReference,
    /// `not found`: the request asked for this subject and did not get it (unknown, or not
    /// the caller's to see); absent for a subject returned or touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditReference {
    pub reference: String,
}

impl From<&AccessRow> for AuditEventResource {
    fn from(row: &AccessRow) -> Self {
        Self {
            resource_type: "AuditEvent".to_owned(),
            recorded: row.at.to_rfc3339(),
            event_type: AuditCode {
                code: "rest".to_owned(),
            },
            subtype: row.interaction.clone(),
            action: row.action.clone(),
            outcome: row.outcome.to_string(),
            agent: AuditAgent {
                who: client_uri(&row.client_id),
                organization: row.organization.clone(),
            },
            source: AuditSource {
                request_id: row.request_id.clone(),
            },
            entity: row
                .subjects
                .iter()
                .map(|s| AuditEntity {
                    what: AuditReference {
                        reference: s.clone(),
                    },
                    description: row
                        .subjects_not_found
                        .contains(s)
                        .then(|| "not found".to_owned()),
                })
                .collect(),
            resource: row.resource_type.clone(),
            purpose_of_use: row.purpose.clone(),
            consent: row.consent_ids.clone(),
            fields_returned: row.fields.clone(),
        }
    }
}
