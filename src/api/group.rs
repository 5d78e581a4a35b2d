//! The Group resource as the API reads and writes it (OpenSPP `schemas/group.py`), its member
//! operations' bodies, and its rendering from the domain.

use std::collections::HashMap;

use openspp_aggregates::bounds::items;
use openspp_aggregates::{Date, Group};
use openspp_projections::view::ViewRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::schema::{
    active_by_default, at_most, optional_at_most, Address, CodeableConcept, Identifier, Meta,
    Period, Reference,
};
use crate::vocabulary::Vocabularies;

const RESOURCE: &str = "Group";

/// A household or other group of individuals (OpenSPP `schemas/group.py`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupResource {
    /// Always `Group`.
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    #[serde(deserialize_with = "at_most::<_, _, { items::IDENTIFIERS }>")]
    #[schema(max_items = 20)]
    pub identifier: Vec<Identifier>,
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// `household`, `family`, `organization` or `other`.
    #[serde(default = "household")]
    pub group_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// On create: the first members. On replace: the whole member list (members left out end);
    /// leave it out to keep the members as they are.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_at_most::<_, _, { items::MEMBERS }>"
    )]
    #[schema(max_items = 500)]
    pub member: Option<Vec<GroupMember>>,
    /// Number of current members the caller may see, the active entries of `member` (read
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<usize>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most::<_, _, { items::ADDRESSES }>"
    )]
    #[schema(max_items = 10)]
    pub address: Vec<Address>,
    /// Registered extension data, as for Individual (`_extensions` on reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// `Individual/{system}|{value}`.
    pub entity: Reference,
    /// Roles from `urn:openspp:vocab:group-membership-type` (`head`, `spouse`, `child`, `member` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// True once the membership has ended (read only).
    #[serde(default)]
    pub inactive: bool,
}

/// Body of `$add-member`: one member (OpenSPP also accepts `start_date`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub entity: Reference,
    #[serde(default)]
    pub role: Option<CodeableConcept>,
    #[serde(default)]
    pub period: Option<Period>,
    /// `startDate` (OpenSPP) or `start_date`.
    #[serde(default, alias = "startDate")]
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Option<Date>,
}

impl AddMember {
    /// The member this body adds: current, from `startDate` (else `period.start`).
    pub fn into_member(self) -> GroupMember {
        GroupMember {
            entity: self.entity,
            role: self.role,
            period: Some(Period {
                start: self.start_date.or(self.period.and_then(|p| p.start)),
                end: None,
            }),
            inactive: false,
        }
    }
}

/// Body of `$remove-member`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveMember {
    pub entity: Reference,
    /// Defaults to today; `endedDate` (OpenSPP) or `ended_date`.
    #[serde(default, alias = "endedDate")]
    #[schema(value_type = Option<String>, format = Date)]
    pub ended_date: Option<Date>,
    #[serde(default)]
    pub reason: Option<String>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn household() -> String {
    "household".to_owned()
}

impl GroupResource {
    /// `extension` is the extension data as the request asked to see it (`_extensions`).
    pub fn render(
        row: &ViewRow<Group>,
        references: &HashMap<String, String>,
        vocabulary: &Vocabularies,
        extension: Option<serde_json::Value>,
    ) -> Self {
        let state = &row.state;
        // Only the current members the rendering lists: counting members the caller may not
        // see would disclose them (a household of five listing three).
        let quantity = state
            .members
            .iter()
            .filter(|m| m.is_active() && references.contains_key(&m.individual))
            .count();
        Self {
            resource_type: resource_type(),
            identifier: state.live_identifiers().map(Into::into).collect(),
            active: state.active,
            group_type: state.group_type.clone(),
            name: state.name.clone(),
            member: Some(
                state
                    .members
                    .iter()
                    .filter_map(|m| {
                        let key = references.get(&m.individual)?;
                        Some(GroupMember {
                            entity: Reference {
                                reference: format!("Individual/{key}"),
                                display: None,
                            },
                            role: (!m.roles.is_empty())
                                .then(|| CodeableConcept::from_codes(&m.roles, vocabulary)),
                            period: Some(Period::stored(Some(m.start_date), m.ended_date)),
                            inactive: !m.is_active(),
                        })
                    })
                    .collect(),
            ),
            quantity: Some(quantity),
            address: state.address.iter().map(Into::into).collect(),
            extension,
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}

/// OpenSPP's `GroupMember`: the answer of the member operations — one membership of one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberAnswer {
    /// Always `GroupMember`.
    #[serde(rename = "type")]
    pub resource_type: &'static str,
    /// `Group/{system}|{value}`.
    pub group: Reference,
    /// `Individual/{system}|{value}`.
    pub entity: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<CodeableConcept>,
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    pub ended_date: Option<String>,
    /// `active` or `inactive` (ended).
    pub status: &'static str,
}

impl MemberAnswer {
    /// The membership of `entity` (`Individual/{system}|{value}`) as `group` (a rendered,
    /// grant-filtered group) lists it: its latest entry. `None` when the rendering does not
    /// list it (the caller may not see members).
    pub fn of(group: &serde_json::Value, entity: &str) -> Option<Self> {
        let member = group["member"]
            .as_array()?
            .iter()
            .rev()
            .find(|m| m["entity"]["reference"] == entity)?;
        let member: GroupMember = serde_json::from_value(member.clone()).ok()?;
        let period = member.period.unwrap_or_default();
        Some(Self {
            role: member.role,
            start_date: period.start.map(|d| d.get().to_string()),
            ended_date: period.end.map(|d| d.get().to_string()),
            ..Self::bare(group, member.entity.reference, !member.inactive)
        })
    }

    /// Only which membership, for a caller whose grant does not show the group's members.
    pub fn bare(group: &serde_json::Value, entity: String, active: bool) -> Self {
        let key = identifier_key(group);
        Self {
            resource_type: "GroupMember",
            group: Reference {
                reference: format!("Group/{key}"),
                display: None,
            },
            entity: Reference {
                reference: entity,
                display: None,
            },
            role: None,
            start_date: None,
            ended_date: None,
            status: if active { "active" } else { "inactive" },
        }
    }
}

/// OpenSPP's `GroupMembershipList` (`GET /Individual/{id}/groups`): the individual's current
/// group memberships, each as a `GroupMember`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupMembershipList {
    /// Always `GroupMembershipList`.
    #[serde(rename = "type")]
    pub resource_type: &'static str,
    pub total: usize,
    pub entry: Vec<MemberEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberEntry {
    pub resource: MemberAnswer,
}

impl GroupMembershipList {
    /// From an individual as the caller may see it: its `groupMembership` (absent when the
    /// caller's grant hides it, or the group is one it may not see).
    pub fn of(individual: &serde_json::Value) -> Self {
        let entity = format!("Individual/{}", identifier_key(individual));
        let entry: Vec<MemberEntry> = individual["groupMembership"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let reference = m["group"]["reference"].as_str()?.to_owned();
                let role = serde_json::from_value(m["role"].clone()).ok();
                let start = m["period"]["start"].as_str().map(str::to_owned);
                Some(MemberEntry {
                    resource: MemberAnswer {
                        resource_type: "GroupMember",
                        group: Reference {
                            reference,
                            display: None,
                        },
                        entity: Reference {
                            reference: entity.clone(),
                            display: None,
                        },
                        role,
                        start_date: start,
                        ended_date: None,
                        status: "active",
                    },
                })
            })
            .collect();
        Self {
            resource_type: "GroupMembershipList",
            total: entry.len(),
            entry,
        }
    }
}

/// `system|value` of a rendered resource's first identifier.
fn identifier_key(resource: &serde_json::Value) -> String {
    resource["identifier"][0]
        .as_object()
        .map(|i| {
            format!(
                "{}|{}",
                i.get("system").and_then(|s| s.as_str()).unwrap_or_default(),
                i.get("value").and_then(|s| s.as_str()).unwrap_or_default()
            )
        })
        .unwrap_or_default()
}
impl crate::api::stated::ExtendedBody for GroupResource {
    fn extension(&self) -> Option<&serde_json::Value> {
        self.extension.as_ref()
    }
}
