//! The bodies of OpenSPP's household operations (`schemas/membership.py`): a member's `PATCH`,
//! `$merge`, `$split`, and the entries of a group's membership history. Each accepts OpenSPP's
//! camelCase names and their snake_case spellings (`populate_by_name`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use openspp_aggregates::bounds::items;
use openspp_aggregates::{Code, Date, Group, GroupEvent};
use openspp_projections::events::StoredEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::reference::parse_reference;
use crate::api::schema::{at_most, CodeableConcept, Identifier, Reference};
use crate::error::ApiError;
use crate::store::metadata::client_uri;
use crate::vocabulary::Vocabularies;

/// Body of `PATCH /Group/{id}/member/{individual}`: what changes; a field left out stays.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateMember {
    /// The member's roles from now on (replacing the current ones).
    #[serde(default)]
    pub role: Option<CodeableConcept>,
    /// `startDate` or `start_date`.
    #[serde(default, alias = "start_date")]
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Option<Date>,
    /// `endedDate` or `ended_date`: ends the membership on that date.
    #[serde(default, alias = "ended_date")]
    #[schema(value_type = Option<String>, format = Date)]
    pub ended_date: Option<Date>,
}

/// Body of `POST /Group/$merge`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MergeGroups {
    /// The group merged FROM: its members leave and it is deactivated. `sourceGroup` or
    /// `source_group`; `Group/{system}|{value}/_history/{versionId}` makes the merge
    /// conditional on that version (412 otherwise).
    #[serde(alias = "source_group")]
    pub source_group: Reference,
    /// The group merged INTO: it receives the members. `targetGroup` or `target_group`;
    /// `If-Match`, or a versioned reference, makes the merge conditional on its version.
    #[serde(alias = "target_group")]
    pub target_group: Reference,
    /// Source role code → target role code (`{"head": "member"}`). Without it a source head
    /// joins as `member` when the target has a head already.
    #[serde(default, alias = "role_mapping")]
    pub role_mapping: Option<HashMap<String, String>>,
}

/// Body of `POST /Group/{id}/$split`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SplitGroup {
    /// The new group's identifiers. `newGroupIdentifier` or `new_group_identifier`.
    #[serde(
        alias = "new_group_identifier",
        deserialize_with = "at_most::<_, _, { items::IDENTIFIERS }>"
    )]
    #[schema(min_items = 1, max_items = 20)]
    pub new_group_identifier: Vec<Identifier>,
    /// Current members (not the head) who move to the new group; at least one stays.
    /// `membersToMove` or `members_to_move`.
    #[serde(
        alias = "members_to_move",
        deserialize_with = "at_most::<_, _, { items::MEMBERS }>"
    )]
    #[schema(min_items = 1, max_items = 500)]
    pub members_to_move: Vec<Reference>,
    /// One of `membersToMove`, who becomes the new group's head. `newHead` or `new_head`.
    #[serde(default, alias = "new_head")]
    pub new_head: Option<Reference>,
}

/// One change in a group's membership (OpenSPP's `MembershipHistoryEntry`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipHistoryEntry {
    /// When the change was recorded.
    pub timestamp: String,
    /// `added`, `removed`, `role_changed`, or `status_changed` (the membership's start moved).
    pub action: &'static str,
    /// `Individual/{system}|{value}`.
    pub member: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_role: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_role: Option<CodeableConcept>,
    /// The API client that made the change (`urn:openspp:api-client:{client_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    /// The membership's start (`added`, `status_changed`) or end (`removed`) date.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub date: Option<String>,
    /// Why it ended (`removed`): as given, or `merged` / `split`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The group's version this change made.
    pub version_id: String,
    /// When the change was recorded, for `_since`.
    #[serde(skip)]
    pub recorded: DateTime<Utc>,
}

impl MembershipHistoryEntry {
    /// The membership changes among a group's `versions` (each the state after its event, oldest
    /// first), newest first. Only members in `references` (stream → `system|value`: those the
    /// caller may read) are listed; a change of anyone else is left out, not counted.
    pub fn timeline(
        versions: &[(Group, StoredEvent)],
        references: &HashMap<String, String>,
        vocabulary: &Vocabularies,
    ) -> Vec<Self> {
        let role = |roles: &[Code]| {
            (!roles.is_empty()).then(|| CodeableConcept::from_codes(roles, vocabulary))
        };
        let empty = Group::default();
        let mut entries = Vec::new();
        for (i, (_, event)) in versions.iter().enumerate() {
            let before = if i == 0 { &empty } else { &versions[i - 1].0 };
            let Ok(decoded) = GroupEvent::deserialize(&event.payload) else {
                continue;
            };
            let roles_before = |individual: &str| {
                before
                    .active_members()
                    .find(|m| m.individual == individual)
                    .map(|m| m.roles.clone())
                    .unwrap_or_default()
            };
            let (individual, action, old_role, new_role, date, reason) = match decoded {
                GroupEvent::MemberAdded {
                    individual,
                    roles,
                    start_date,
                } => (
                    individual,
                    "added",
                    None,
                    role(&roles),
                    Some(start_date),
                    None,
                ),
                GroupEvent::MembershipEnded {
                    individual,
                    ended_date,
                    reason,
                } => {
                    let old = role(&roles_before(&individual));
                    (individual, "removed", old, None, Some(ended_date), reason)
                }
                GroupEvent::MemberRolesChanged { individual, roles } => {
                    let old = role(&roles_before(&individual));
                    (individual, "role_changed", old, role(&roles), None, None)
                }
                GroupEvent::MemberStartDateChanged {
                    individual,
                    start_date,
                } => (
                    individual,
                    "status_changed",
                    None,
                    None,
                    Some(start_date),
                    None,
                ),
                _ => continue,
            };
            let Some(key) = references.get(&individual) else {
                continue;
            };
            entries.push(Self {
                timestamp: event.recorded_at.to_rfc3339(),
                action,
                member: Reference {
                    reference: format!("Individual/{key}"),
                    display: None,
                },
                old_role,
                new_role,
                changed_by: event.meta("client_id").map(client_uri),
                date: date.map(|d| d.to_string()),
                reason,
                version_id: event.sequence.to_string(),
                recorded: event.recorded_at,
            });
        }
        entries.reverse();
        entries
    }
}

/// A group reference, optionally versioned (`Group/{system}|{value}/_history/{versionId}`):
/// the identifier key and the version it names, if any.
pub fn versioned_group(
    reference: &Reference,
    field: &str,
) -> Result<(String, Option<u64>), ApiError> {
    let text = reference.reference.as_str();
    let (base, version) = match text.rsplit_once("/_history/") {
        Some((base, tail)) => {
            let version = tail.parse::<u64>().map_err(|_| {
                ApiError::unprocessable(field, "a versioned reference ends in a version number")
            })?;
            (base, Some(version))
        }
        None => (text, None),
    };
    Ok((parse_reference(base, "Group", field)?.key(), version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_take_camel_and_snake_case_names() {
        let camel: UpdateMember =
            serde_json::from_value(json!({"startDate": "2024-01-15", "endedDate": "2024-02-01"}))
                .unwrap();
        let snake: UpdateMember =
            serde_json::from_value(json!({"start_date": "2024-01-15", "ended_date": "2024-02-01"}))
                .unwrap();
        assert_eq!(camel.start_date, snake.start_date);
        assert_eq!(camel.ended_date, snake.ended_date);
        let merge: MergeGroups = serde_json::from_value(json!({
            "source_group": {"reference": "Group/s|1"},
            "targetGroup": {"reference": "Group/s|2"},
            "roleMapping": {"head": "member"}
        }))
        .unwrap();
        assert_eq!(merge.role_mapping.unwrap()["head"], "member");
        assert!(serde_json::from_value::<UpdateMember>(json!({"roles": []})).is_err());
    }

    #[test]
    fn a_group_reference_may_name_a_version() {
        let reference = |text: &str| Reference {
            reference: text.into(),
            display: None,
        };
        assert_eq!(
            versioned_group(&reference("Group/urn:openspp:group|HH-1"), "f").unwrap(),
            ("urn:openspp:group|HH-1".to_owned(), None)
        );
        assert_eq!(
            versioned_group(&reference("Group/urn:openspp:group|HH-1/_history/7"), "f").unwrap(),
            ("urn:openspp:group|HH-1".to_owned(), Some(7))
        );
        for bad in ["Group/s|1/_history/x", "Individual/s|1", "Group/nobar"] {
            let error = versioned_group(&reference(bad), "sourceGroup").unwrap_err();
            assert_eq!(error.expression.as_deref(), Some("sourceGroup"), "{bad}");
        }
    }
}
