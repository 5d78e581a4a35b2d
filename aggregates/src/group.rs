//! A household or other group and its members. The member rules (one current membership per
//! individual, at most one head) hold inside the group's own stream, so concurrent changes to
//! one group are serialised by its sequence and can never break them.

use std::collections::HashMap;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::consent::{extension_field, Access, ConsentRecord};
use crate::error::DomainError;
use crate::extension::{self, ExtensionData};
use crate::identifiers::{self, IdentifierEntry, IdentifierEvents};
use crate::individual::validate_addresses;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::services::RegistryServices;
use crate::values::{Address, Code, Identifier};
use crate::vocabulary::{TargetType, GROUP_MEMBERSHIP_TYPE, GROUP_TYPE, HEAD_ROLE};

mod restructure;

pub use restructure::{MemberChange, MERGED, SPLIT};

/// A member as a client names it; `individual` is the member's stream, resolved by the caller
/// from an external identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSpec {
    pub individual: String,
    pub roles: Vec<Code>,
    pub start_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupDetails {
    pub identifiers: Vec<Identifier>,
    pub active: bool,
    pub group_type: String,
    pub name: Option<String>,
    pub address: Vec<Address>,
    /// `None` leaves the members as they are.
    pub members: Option<Vec<MemberSpec>>,
    /// The body's `extension` as sent: checked against the registered extensions.
    pub extension: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GroupCommand {
    Register(GroupDetails),
    /// Every change to an existing group says who asks, under which consents or legal basis.
    /// A replacement also names the fields its body `stated` (as for individuals, fields the
    /// caller cannot see stay as they are), and carries the consents covering each current
    /// member: members the caller may not read are not in the list it saw, so its list does
    /// not end them.
    Replace {
        details: GroupDetails,
        stated: Vec<String>,
        access: Access,
        member_consents: HashMap<String, Vec<ConsentRecord>>,
    },
    AddMember {
        member: MemberSpec,
        access: Access,
    },
    RemoveMember {
        individual: String,
        ended_date: Option<NaiveDate>,
        reason: Option<String>,
        access: Access,
    },
    /// A current member's roles or dates (OpenSPP's `PATCH /Group/{id}/member/{individual}`).
    UpdateMember {
        individual: String,
        change: MemberChange,
        access: Access,
    },
    /// A merge, on the source: its members leave and it is deactivated; `target` is the
    /// group (stream) they join.
    MergeInto {
        target: String,
        access: Access,
    },
    /// A merge, on the target: `members` (the source's, as the same batch read them) join.
    Absorb {
        members: Vec<Member>,
        role_mapping: HashMap<String, String>,
        access: Access,
    },
    /// A split, on the source: `members` (individual streams) leave for the new group `into`,
    /// which the same batch registers.
    SplitOff {
        members: Vec<String>,
        into: String,
        access: Access,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GroupEvent {
    GroupRegistered {
        group_type: String,
        name: Option<String>,
        address: Vec<Address>,
    },
    IdentifierAdded {
        identifier: Identifier,
    },
    IdentifierInvalidated {
        identifier: Identifier,
    },
    GroupRenamed {
        name: Option<String>,
    },
    GroupTypeChanged {
        group_type: String,
    },
    GroupAddressChanged {
        address: Vec<Address>,
    },
    GroupDeactivated,
    GroupReactivated,
    MemberAdded {
        individual: String,
        roles: Vec<Code>,
        start_date: NaiveDate,
    },
    MemberRolesChanged {
        individual: String,
        roles: Vec<Code>,
    },
    MembershipEnded {
        individual: String,
        ended_date: NaiveDate,
        reason: Option<String>,
    },
    /// A current member's membership now starts on another date.
    MemberStartDateChanged {
        individual: String,
        start_date: NaiveDate,
    },
    /// This group's members moved to the group (stream) `into`, which absorbed them.
    GroupMerged {
        into: String,
    },
    /// Some of this group's members moved to the new group (stream) `into`.
    GroupSplit {
        into: String,
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

impl DomainEvent for GroupEvent {
    fn event_type(&self) -> String {
        match self {
            Self::GroupRegistered { .. } => "GroupRegistered",
            Self::IdentifierAdded { .. } => "IdentifierAdded",
            Self::IdentifierInvalidated { .. } => "IdentifierInvalidated",
            Self::GroupRenamed { .. } => "GroupRenamed",
            Self::GroupTypeChanged { .. } => "GroupTypeChanged",
            Self::GroupAddressChanged { .. } => "GroupAddressChanged",
            Self::GroupDeactivated => "GroupDeactivated",
            Self::GroupReactivated => "GroupReactivated",
            Self::MemberAdded { .. } => "MemberAdded",
            Self::MemberRolesChanged { .. } => "MemberRolesChanged",
            Self::MembershipEnded { .. } => "MembershipEnded",
            Self::MemberStartDateChanged { .. } => "MemberStartDateChanged",
            Self::GroupMerged { .. } => "GroupMerged",
            Self::GroupSplit { .. } => "GroupSplit",
            Self::ExtensionRecorded { .. } => "ExtensionRecorded",
            Self::ExtensionRemoved { .. } => "ExtensionRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

extension::extension_events!(GroupEvent, Group);
identifiers::identifier_events!(GroupEvent);

impl InlineIndex for GroupEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        if let Some(change) = self.identifier_change() {
            return Some(change);
        }
        match self {
            Self::MemberAdded { individual, .. } => Some(IndexChange::MemberJoined(individual)),
            Self::MembershipEnded { individual, .. } => Some(IndexChange::MemberLeft(individual)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub individual: String,
    pub roles: Vec<Code>,
    pub start_date: NaiveDate,
    pub ended_date: Option<NaiveDate>,
    pub end_reason: Option<String>,
}

impl Member {
    pub fn is_active(&self) -> bool {
        self.ended_date.is_none()
    }

    fn is_head(&self) -> bool {
        is_head(&self.roles)
    }
}

fn is_head(roles: &[Code]) -> bool {
    roles
        .iter()
        .any(|r| r.system == GROUP_MEMBERSHIP_TYPE && r.code == HEAD_ROLE)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub registered: bool,
    pub identifiers: Vec<IdentifierEntry>,
    pub group_type: String,
    pub name: Option<String>,
    pub address: Vec<Address>,
    pub active: bool,
    /// Every membership, ended ones included, in the order they began.
    pub members: Vec<Member>,
    /// Registered extension data, by extension URI.
    #[serde(default, skip_serializing_if = "ExtensionData::is_empty")]
    pub extension: ExtensionData,
    pub version: u64,
}

impl Group {
    pub fn live_identifiers(&self) -> impl Iterator<Item = &Identifier> {
        identifiers::live(&self.identifiers)
    }

    pub fn active_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_active())
    }

    /// Number of current members.
    pub fn quantity(&self) -> usize {
        self.active_members().count()
    }

    fn current(&self, individual: &str) -> Option<&Member> {
        self.active_members().find(|m| m.individual == individual)
    }

    fn add_member(
        &self,
        spec: MemberSpec,
        services: &RegistryServices,
    ) -> Result<GroupEvent, DomainError> {
        check_roles(&spec.roles, "role", services)?;
        if self.current(&spec.individual).is_some() {
            return Err(DomainError::conflict(
                Some("entity"),
                "individual is already a member of this group",
            ));
        }
        if is_head(&spec.roles) && self.active_members().any(Member::is_head) {
            return Err(DomainError::conflict(
                Some("role"),
                "group already has a head",
            ));
        }
        let today = services.clock.today();
        if let Some(start) = spec.start_date {
            bounds::past_date("period.start", start, today)?;
        }
        Ok(GroupEvent::MemberAdded {
            individual: spec.individual,
            roles: spec.roles,
            start_date: spec.start_date.unwrap_or(today),
        })
    }

    fn remove_member(
        &self,
        individual: String,
        ended_date: Option<NaiveDate>,
        reason: Option<String>,
        services: &RegistryServices,
    ) -> Result<GroupEvent, DomainError> {
        let member = self
            .current(&individual)
            .ok_or_else(|| DomainError::not_found("member"))?;
        let today = services.clock.today();
        let ended_date = ended_date.unwrap_or(today);
        bounds::past_date("ended_date", ended_date, today)?;
        bounds::optional_text("reason", reason.as_deref(), bounds::LONG_TEXT)?;
        if ended_date < member.start_date {
            return Err(DomainError::invalid(
                "ended_date",
                "must not precede the start of the membership",
            ));
        }
        Ok(GroupEvent::MembershipEnded {
            individual,
            ended_date,
            reason,
        })
    }

    fn registration(details: GroupDetails, services: &RegistryServices) -> Vec<GroupEvent> {
        let mut events = vec![GroupEvent::GroupRegistered {
            group_type: details.group_type,
            name: details.name,
            address: details.address,
        }];
        events.extend(identifiers::claims(details.identifiers));
        events.extend(
            details
                .members
                .into_iter()
                .flatten()
                .map(|spec| GroupEvent::MemberAdded {
                    individual: spec.individual,
                    roles: spec.roles,
                    start_date: spec.start_date.unwrap_or_else(|| services.clock.today()),
                }),
        );
        if !details.active {
            events.push(GroupEvent::GroupDeactivated);
        }
        events
    }

    /// `details` with the fields the caller cannot see taken from the current state.
    fn keeping(&self, hidden: &[&str], mut details: GroupDetails) -> GroupDetails {
        for field in hidden {
            match *field {
                "name" => details.name = self.name.clone(),
                "groupType" => details.group_type = self.group_type.clone(),
                "address" => details.address = self.address.clone(),
                "active" => details.active = self.active,
                "member" => details.members = None,
                // `quantity` is computed; extensions a body leaves out are kept whoever asks
                // (`extension::change_events`).
                _ => {}
            }
        }
        details
    }

    fn changes(
        &self,
        details: GroupDetails,
        unseen: &[&str],
        services: &RegistryServices,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        let mut events: Vec<GroupEvent> =
            identifiers::changes(&self.identifiers, &details.identifiers);
        if details.name != self.name {
            events.push(GroupEvent::GroupRenamed { name: details.name });
        }
        if details.group_type != self.group_type {
            events.push(GroupEvent::GroupTypeChanged {
                group_type: details.group_type,
            });
        }
        if details.address != self.address {
            events.push(GroupEvent::GroupAddressChanged {
                address: details.address,
            });
        }
        if let Some(members) = details.members {
            events.extend(self.member_changes(members, unseen, services)?);
        }
        match (self.active, details.active) {
            (true, false) => events.push(GroupEvent::GroupDeactivated),
            (false, true) => events.push(GroupEvent::GroupReactivated),
            _ => {}
        }
        Ok(events)
    }

    /// Ends, re-roles and adds members to match `wanted`; the `unseen` members (whom the
    /// caller may not read) stay as they are. Ends and role changes that drop the head role
    /// come before those that give it, so a head can be handed over in one request.
    fn member_changes(
        &self,
        wanted: Vec<MemberSpec>,
        unseen: &[&str],
        services: &RegistryServices,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        let kept = |m: &Member| {
            unseen.contains(&m.individual.as_str())
                && !wanted.iter().any(|w| w.individual == m.individual)
        };
        if wanted.iter().any(|w| is_head(&w.roles))
            && self.active_members().any(|m| kept(m) && m.is_head())
        {
            return Err(DomainError::conflict(
                Some("member"),
                "group already has a head",
            ));
        }
        let today = services.clock.today();
        let mut ends = Vec::new();
        let mut demotions = Vec::new();
        let mut promotions = Vec::new();
        let mut additions = Vec::new();
        for member in self.active_members().filter(|m| !kept(m)) {
            if !wanted.iter().any(|w| w.individual == member.individual) {
                ends.push(GroupEvent::MembershipEnded {
                    individual: member.individual.clone(),
                    ended_date: today.max(member.start_date),
                    reason: None,
                });
            }
        }
        for spec in wanted {
            match self.current(&spec.individual) {
                Some(member) if member.roles != spec.roles => {
                    let change = GroupEvent::MemberRolesChanged {
                        individual: spec.individual,
                        roles: spec.roles.clone(),
                    };
                    if is_head(&spec.roles) {
                        promotions.push(change);
                    } else {
                        demotions.push(change);
                    }
                }
                Some(_) => {}
                None => additions.push(GroupEvent::MemberAdded {
                    individual: spec.individual,
                    roles: spec.roles,
                    start_date: spec.start_date.unwrap_or(today),
                }),
            }
        }
        Ok(ends
            .into_iter()
            .chain(demotions)
            .chain(promotions)
            .chain(additions)
            .collect())
    }
}

fn check_roles(
    roles: &[Code],
    field: &str,
    services: &RegistryServices,
) -> Result<(), DomainError> {
    for role in roles {
        if role.system != GROUP_MEMBERSHIP_TYPE
            || !services
                .vocabulary
                .has_code(GROUP_MEMBERSHIP_TYPE, &role.code)
        {
            return Err(DomainError::invalid(
                field,
                format!(
                    "unknown role {}|{}; use {GROUP_MEMBERSHIP_TYPE}",
                    role.system, role.code
                ),
            ));
        }
    }
    Ok(())
}

fn validate(details: &GroupDetails, services: &RegistryServices) -> Result<(), DomainError> {
    identifiers::validate(
        &details.identifiers,
        TargetType::Group,
        services.vocabulary.as_ref(),
    )?;
    if !services
        .vocabulary
        .has_code(GROUP_TYPE, &details.group_type)
    {
        return Err(DomainError::invalid(
            "groupType",
            "must be household, family, organization or other",
        ));
    }
    bounds::optional_text("name", details.name.as_deref(), bounds::SHORT_TEXT)?;
    validate_addresses(&details.address)?;
    if let Some(members) = &details.members {
        bounds::items("member", members.len(), bounds::items::MEMBERS)?;
        let mut heads = 0;
        for (i, member) in members.iter().enumerate() {
            check_roles(&member.roles, &format!("member[{i}].role"), services)?;
            if let Some(start) = member.start_date {
                let field = format!("member[{i}].period.start");
                bounds::past_date(&field, start, services.clock.today())?;
            }
            if members[..i]
                .iter()
                .any(|earlier| earlier.individual == member.individual)
            {
                return Err(DomainError::invalid(
                    format!("member[{i}].entity"),
                    "the same individual is listed twice",
                ));
            }
            if is_head(&member.roles) {
                heads += 1;
                if heads > 1 {
                    return Err(DomainError::conflict(
                        Some(&format!("member[{i}].role")),
                        "group already has a head",
                    ));
                }
            }
        }
    }
    Ok(())
}

impl Aggregate for Group {
    const TYPE: &'static str = "Group";
    type Command = GroupCommand;
    type Event = GroupEvent;
    type Error = DomainError;
    type Services = RegistryServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let today = services.clock.today();
        let access = match &command {
            GroupCommand::Register(_) => None,
            GroupCommand::Replace { access, .. }
            | GroupCommand::AddMember { access, .. }
            | GroupCommand::RemoveMember { access, .. }
            | GroupCommand::UpdateMember { access, .. }
            | GroupCommand::MergeInto { access, .. }
            | GroupCommand::Absorb { access, .. }
            | GroupCommand::SplitOff { access, .. } => Some(access),
        };
        if let Some(access) = access {
            if !self.registered {
                return Err(DomainError::not_found("Group"));
            }
            access.permits("group", "Group", today)?;
        }
        let events = match command {
            GroupCommand::Register(details) => {
                let extensions = extension::registration_changes(
                    self.registered,
                    || validate(&details, services),
                    details.extension.as_ref(),
                    &self.extension,
                    services.extensions.as_ref(),
                )?;
                let mut events = Self::registration(details, services);
                events.extend(extensions);
                events
            }
            GroupCommand::Replace {
                details,
                stated,
                access,
                member_consents,
            } => {
                identifiers::check_authority(&access, &self.identifiers, &details.identifiers)?;
                let hidden = access.hidden_fields("group", &stated, today)?;
                let details = self.keeping(&hidden, details);
                validate(&details, services)?;
                let unseen: Vec<&str> = self
                    .active_members()
                    .filter(|m| {
                        let consents = member_consents.get(&m.individual);
                        !access.actor.may_use(
                            consents.map_or(&[], Vec::as_slice),
                            "individual",
                            today,
                        )
                    })
                    .map(|m| m.individual.as_str())
                    .collect();
                let visible = |uri: &str| access.sees("group", &extension_field(uri), today);
                let extensions = extension::change_events(
                    details.extension.as_ref(),
                    &self.extension,
                    services.extensions.as_ref(),
                    &visible,
                )?;
                let mut events = self.changes(details, &unseen, services)?;
                events.extend(extensions);
                events
            }
            GroupCommand::AddMember { member, .. } => vec![self.add_member(member, services)?],
            GroupCommand::RemoveMember {
                individual,
                ended_date,
                reason,
                ..
            } => vec![self.remove_member(individual, ended_date, reason, services)?],
            GroupCommand::UpdateMember {
                individual, change, ..
            } => self.update_member(individual, change, services)?,
            GroupCommand::MergeInto { target, .. } => self.merge_into(target, services)?,
            GroupCommand::Absorb {
                members,
                role_mapping,
                ..
            } => self.absorb(members, &role_mapping, services)?,
            GroupCommand::SplitOff { members, into, .. } => {
                self.split_off(members, into, services)?
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
            GroupEvent::GroupRegistered {
                group_type,
                name,
                address,
            } => {
                self.registered = true;
                self.active = true;
                self.group_type = group_type;
                self.name = name;
                self.address = address;
            }
            GroupEvent::IdentifierAdded { identifier } => {
                identifiers::add(&mut self.identifiers, identifier)
            }
            GroupEvent::IdentifierInvalidated { identifier } => {
                identifiers::invalidate(&mut self.identifiers, &identifier)
            }
            GroupEvent::GroupRenamed { name } => self.name = name,
            GroupEvent::GroupTypeChanged { group_type } => self.group_type = group_type,
            GroupEvent::GroupAddressChanged { address } => self.address = address,
            GroupEvent::GroupDeactivated => self.active = false,
            GroupEvent::GroupReactivated => self.active = true,
            GroupEvent::MemberAdded {
                individual,
                roles,
                start_date,
            } => self.members.push(Member {
                individual,
                roles,
                start_date,
                ended_date: None,
                end_reason: None,
            }),
            GroupEvent::MemberRolesChanged { individual, roles } => {
                if let Some(member) = self
                    .members
                    .iter_mut()
                    .find(|m| m.is_active() && m.individual == individual)
                {
                    member.roles = roles;
                }
            }
            GroupEvent::MembershipEnded {
                individual,
                ended_date,
                reason,
            } => {
                if let Some(member) = self
                    .members
                    .iter_mut()
                    .find(|m| m.is_active() && m.individual == individual)
                {
                    member.ended_date = Some(ended_date);
                    member.end_reason = reason;
                }
            }
            GroupEvent::MemberStartDateChanged {
                individual,
                start_date,
            } => {
                if let Some(member) = self
                    .members
                    .iter_mut()
                    .find(|m| m.is_active() && m.individual == individual)
                {
                    member.start_date = start_date;
                }
            }
            // Where members went is the event's to tell; the state changes by the events
            // around it (ends, deactivation).
            GroupEvent::GroupMerged { .. } | GroupEvent::GroupSplit { .. } => {}
            GroupEvent::ExtensionRecorded { url, value } => {
                extension::apply(&mut self.extension, url, Some(value))
            }
            GroupEvent::ExtensionRemoved { url } => {
                extension::apply(&mut self.extension, url, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::consent::Actor;
    use crate::testing::{
        code, date, every_field, full_access, id, ngo, ngo_consent, services, today, GROUP_ID,
        NATIONAL_ID,
    };

    type Given = TestFramework<Group>;

    pub(super) fn role(code_: &str) -> Vec<Code> {
        vec![code(GROUP_MEMBERSHIP_TYPE, code_)]
    }

    pub(super) fn spec(individual: &str, role_: &str) -> MemberSpec {
        MemberSpec {
            individual: individual.into(),
            roles: role(role_),
            start_date: Some(date(2024, 1, 1)),
        }
    }

    pub(super) fn details(members: Option<Vec<MemberSpec>>) -> GroupDetails {
        GroupDetails {
            identifiers: vec![id(GROUP_ID, "HH1")],
            active: true,
            group_type: "household".into(),
            name: Some("Santos".into()),
            address: vec![],
            members,
            extension: None,
        }
    }

    fn everything() -> Vec<String> {
        every_field("group")
    }

    pub(super) fn registered(members: Vec<MemberSpec>) -> Vec<GroupEvent> {
        Group::registration(details(Some(members)), &services())
    }

    pub(super) async fn outcome(
        given: Vec<GroupEvent>,
        command: GroupCommand,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        Given::with(services())
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
    }

    #[tokio::test]
    async fn registration_records_group_identifiers_and_members() {
        let events = outcome(
            vec![],
            GroupCommand::Register(details(Some(vec![spec("a", "head")]))),
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![
                GroupEvent::GroupRegistered {
                    group_type: "household".into(),
                    name: Some("Santos".into()),
                    address: vec![],
                },
                GroupEvent::IdentifierAdded {
                    identifier: id(GROUP_ID, "HH1"),
                },
                GroupEvent::MemberAdded {
                    individual: "a".into(),
                    roles: role("head"),
                    start_date: date(2024, 1, 1),
                },
            ]
        );
    }

    #[tokio::test]
    async fn registration_checks_type_identifier_system_roles_and_heads() {
        let mut d = details(None);
        d.group_type = "tribe".into();
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(d)).await,
            Err(DomainError::Invalid { field, .. }) if field == "groupType"
        ));
        let mut d = details(None);
        d.identifiers = vec![id(NATIONAL_ID, "1")];
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(d)).await,
            Err(DomainError::Invalid { field, .. }) if field == "identifier[0].system"
        ));
        let d = details(Some(vec![spec("a", "chief")]));
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(d)).await,
            Err(DomainError::Invalid { field, .. }) if field == "member[0].role"
        ));
        let d = details(Some(vec![spec("a", "head"), spec("b", "head")]));
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(d)).await,
            Err(DomainError::Conflict { .. })
        ));
        let d = details(Some(vec![spec("a", "child"), spec("a", "member")]));
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(d)).await,
            Err(DomainError::Invalid { field, .. }) if field == "member[1].entity"
        ));
    }

    #[tokio::test]
    async fn adding_a_member_defaults_the_start_to_today() {
        let events = outcome(
            registered(vec![]),
            GroupCommand::AddMember {
                member: MemberSpec {
                    individual: "a".into(),
                    roles: vec![],
                    start_date: None,
                },
                access: full_access(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![GroupEvent::MemberAdded {
                individual: "a".into(),
                roles: vec![],
                start_date: today(),
            }]
        );
    }

    #[tokio::test]
    async fn a_second_head_and_a_second_membership_are_conflicts() {
        let given = registered(vec![spec("a", "head")]);
        assert_eq!(
            outcome(
                given.clone(),
                GroupCommand::AddMember {
                    access: full_access(),
                    member: spec("b", "head")
                }
            )
            .await,
            Err(DomainError::conflict(
                Some("role"),
                "group already has a head"
            ))
        );
        assert!(matches!(
            outcome(given.clone(), GroupCommand::AddMember { access: full_access(), member: spec("a", "member") }).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "entity"
        ));
        assert!(outcome(
            given,
            GroupCommand::AddMember {
                access: full_access(),
                member: spec("b", "spouse")
            }
        )
        .await
        .is_ok());
    }

    #[tokio::test]
    async fn an_ended_head_frees_the_role_and_the_individual_may_return() {
        let mut given = registered(vec![spec("a", "head")]);
        given.push(GroupEvent::MembershipEnded {
            individual: "a".into(),
            ended_date: date(2024, 2, 1),
            reason: None,
        });
        assert!(outcome(
            given.clone(),
            GroupCommand::AddMember {
                access: full_access(),
                member: spec("b", "head")
            }
        )
        .await
        .is_ok());
        assert!(outcome(
            given,
            GroupCommand::AddMember {
                access: full_access(),
                member: spec("a", "member")
            }
        )
        .await
        .is_ok());
    }

    #[tokio::test]
    async fn removing_checks_membership_and_dates() {
        let given = registered(vec![spec("a", "member")]);
        let remove = |who: &str, ended: Option<NaiveDate>| GroupCommand::RemoveMember {
            individual: who.into(),
            ended_date: ended,
            reason: Some("moved".into()),
            access: full_access(),
        };
        assert_eq!(
            outcome(given.clone(), remove("b", None)).await,
            Err(DomainError::not_found("member"))
        );
        assert!(matches!(
            outcome(given.clone(), remove("a", Some(date(2023, 12, 31)))).await,
            Err(DomainError::Invalid { field, .. }) if field == "ended_date"
        ));
        assert_eq!(
            outcome(given, remove("a", None)).await.unwrap(),
            vec![GroupEvent::MembershipEnded {
                individual: "a".into(),
                ended_date: today(),
                reason: Some("moved".into()),
            }]
        );
    }

    #[tokio::test]
    async fn membership_dates_are_past_dates_and_reasons_bounded() {
        let given = registered(vec![spec("a", "member")]);
        let remove = |ended: Option<NaiveDate>, reason: &str| GroupCommand::RemoveMember {
            individual: "a".into(),
            ended_date: ended,
            reason: Some(reason.into()),
            access: full_access(),
        };
        assert!(matches!(
            outcome(given.clone(), remove(today().succ_opt(), "moved")).await,
            Err(DomainError::Invalid { field, .. }) if field == "ended_date"
        ));
        assert!(matches!(
            outcome(given.clone(), remove(None, &"r".repeat(crate::bounds::LONG_TEXT + 1))).await,
            Err(DomainError::Invalid { field, .. }) if field == "reason"
        ));
        let mut future = spec("b", "member");
        future.start_date = today().succ_opt();
        let add = GroupCommand::AddMember {
            member: future.clone(),
            access: full_access(),
        };
        assert!(matches!(
            outcome(given.clone(), add).await,
            Err(DomainError::Invalid { field, .. }) if field == "period.start"
        ));
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(details(Some(vec![future])))).await,
            Err(DomainError::Invalid { field, .. }) if field == "member[0].period.start"
        ));
    }

    #[tokio::test]
    async fn replace_records_type_name_address_and_activity_changes() {
        let mut d = details(None);
        d.group_type = "family".into();
        d.name = Some("Santos-Reyes".into());
        d.address = vec![Address {
            city: Some("Davao".into()),
            ..Default::default()
        }];
        d.active = false;
        let events = outcome(
            registered(vec![]),
            GroupCommand::Replace {
                details: d.clone(),
                access: full_access(),
                stated: everything(),
                member_consents: HashMap::new(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![
                GroupEvent::GroupRenamed {
                    name: d.name.clone()
                },
                GroupEvent::GroupTypeChanged {
                    group_type: "family".into()
                },
                GroupEvent::GroupAddressChanged {
                    address: d.address.clone()
                },
                GroupEvent::GroupDeactivated,
            ]
        );
        let mut given = registered(vec![]);
        given.extend(events);
        d.active = true;
        assert_eq!(
            outcome(
                given,
                GroupCommand::Replace {
                    details: d,
                    access: full_access(),
                    stated: everything(),
                    member_consents: HashMap::new(),
                },
            )
            .await
            .unwrap(),
            vec![GroupEvent::GroupReactivated]
        );
        let mut long = details(None);
        long.name = Some("n".repeat(crate::bounds::SHORT_TEXT + 1));
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(long)).await,
            Err(DomainError::Invalid { field, .. }) if field == "name"
        ));
    }

    #[tokio::test]
    async fn replace_hands_the_head_over_in_one_command() {
        let given = registered(vec![spec("a", "head"), spec("b", "spouse")]);
        let events = outcome(
            given.clone(),
            GroupCommand::Replace {
                details: details(Some(vec![spec("a", "spouse"), spec("b", "head")])),
                stated: everything(),
                access: full_access(),
                member_consents: HashMap::new(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![
                GroupEvent::MemberRolesChanged {
                    individual: "a".into(),
                    roles: role("spouse"),
                },
                GroupEvent::MemberRolesChanged {
                    individual: "b".into(),
                    roles: role("head"),
                },
            ]
        );
        let mut group = Group::default();
        for event in given.into_iter().chain(events) {
            group.apply(event);
        }
        assert_eq!(group.active_members().filter(|m| m.is_head()).count(), 1);
    }

    #[tokio::test]
    async fn replace_ends_members_left_out_and_keeps_them_when_members_is_absent() {
        let given = registered(vec![spec("a", "head"), spec("b", "child")]);
        let events = outcome(
            given.clone(),
            GroupCommand::Replace {
                details: details(Some(vec![spec("a", "head"), spec("c", "member")])),
                stated: everything(),
                access: full_access(),
                member_consents: HashMap::new(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            events,
            vec![
                GroupEvent::MembershipEnded {
                    individual: "b".into(),
                    ended_date: today(),
                    reason: None,
                },
                GroupEvent::MemberAdded {
                    individual: "c".into(),
                    roles: role("member"),
                    start_date: date(2024, 1, 1),
                },
            ]
        );
        let mut renamed = details(None);
        renamed.name = Some("Reyes".into());
        assert_eq!(
            outcome(
                given,
                GroupCommand::Replace {
                    details: renamed,
                    stated: everything(),
                    access: full_access(),
                    member_consents: HashMap::new(),
                }
            )
            .await
            .unwrap(),
            vec![GroupEvent::GroupRenamed {
                name: Some("Reyes".into())
            }]
        );
    }

    #[tokio::test]
    async fn commands_on_an_unregistered_group_are_not_found() {
        assert_eq!(
            outcome(
                vec![],
                GroupCommand::AddMember {
                    access: full_access(),
                    member: spec("a", "member")
                }
            )
            .await,
            Err(DomainError::not_found("Group"))
        );
    }

    /// The NGO under `consents`.
    fn ngo_with(consents: Vec<ConsentRecord>) -> Access {
        Access {
            actor: ngo(),
            consents,
        }
    }

    /// Every command on an existing group, by `access`.
    fn changes_by(access: &Access) -> Vec<GroupCommand> {
        vec![
            GroupCommand::Replace {
                details: details(Some(vec![spec("a", "head")])),
                stated: everything(),
                access: access.clone(),
                member_consents: HashMap::new(),
            },
            GroupCommand::AddMember {
                member: spec("b", "member"),
                access: access.clone(),
            },
            GroupCommand::RemoveMember {
                individual: "a".into(),
                ended_date: None,
                reason: None,
                access: access.clone(),
            },
        ]
    }

    #[tokio::test]
    async fn every_change_needs_a_consent_covering_the_group_and_fails_as_not_found() {
        let given = registered(vec![spec("a", "head")]);
        let mut expired = ngo_consent("g", "group", None);
        expired.terms.expiry_date = date(2024, 6, 14);
        let mut other_org = ngo();
        other_org.organization_type = "private".into();
        let refused = [
            ngo_with(vec![]),
            ngo_with(vec![ngo_consent("g", "individual", None)]),
            ngo_with(vec![expired]),
            Access {
                actor: other_org,
                consents: vec![ngo_consent("g", "group", None)],
            },
        ];
        for access in &refused {
            for command in changes_by(access) {
                assert_eq!(
                    outcome(given.clone(), command).await,
                    Err(DomainError::not_found("Group")),
                    "{access:?}"
                );
            }
        }
        for consent in [
            ngo_consent("g", "group", None),
            ngo_consent("g", "all", None),
        ] {
            for command in changes_by(&ngo_with(vec![consent.clone()])) {
                assert!(outcome(given.clone(), command).await.is_ok());
            }
        }
    }

    #[tokio::test]
    async fn a_field_limited_replace_keeps_the_group_fields_it_cannot_see() {
        let given = registered(vec![spec("a", "head")]);
        let access = ngo_with(vec![ngo_consent("g", "group", Some(&["name"]))]);
        let mut d = details(None);
        d.name = Some("Reyes".into());
        d.group_type = "other".into();
        d.active = false;
        let replace = |stated: &[&str]| GroupCommand::Replace {
            details: d.clone(),
            stated: stated.iter().map(|s| s.to_string()).collect(),
            access: access.clone(),
            member_consents: HashMap::new(),
        };
        assert_eq!(
            outcome(given.clone(), replace(&["type", "identifier", "name"])).await,
            Ok(vec![GroupEvent::GroupRenamed {
                name: Some("Reyes".into())
            }])
        );
        for hidden in ["groupType", "member", "active"] {
            assert!(matches!(
                outcome(given.clone(), replace(&["identifier", "name", hidden])).await,
                Err(DomainError::Forbidden { field, .. }) if field == hidden
            ));
        }
    }

    #[tokio::test]
    async fn a_replace_keeps_the_members_its_author_may_not_read() {
        // The NGO sees the group, and of its members only `a` (whose own consent it has).
        let given = registered(vec![spec("a", "spouse"), spec("b", "child")]);
        let access = ngo_with(vec![ngo_consent("g", "group", None)]);
        let member_consents =
            HashMap::from([("a".to_owned(), vec![ngo_consent("a", "individual", None)])]);
        let replace = |members: Vec<MemberSpec>| GroupCommand::Replace {
            details: details(Some(members)),
            stated: everything(),
            access: access.clone(),
            member_consents: member_consents.clone(),
        };
        assert_eq!(
            outcome(given.clone(), replace(vec![])).await.unwrap(),
            vec![GroupEvent::MembershipEnded {
                individual: "a".into(),
                ended_date: today(),
                reason: None,
            }]
        );
        // A legal basis reads everyone, so its list is the whole list.
        let mut by_law = replace(vec![]);
        if let GroupCommand::Replace { access, .. } = &mut by_law {
            access.actor = Actor {
                legal_basis: Some("public_task".into()),
                ..ngo()
            };
        }
        assert_eq!(outcome(given, by_law).await.unwrap().len(), 2);
        // An unseen head is still the head.
        let given = registered(vec![spec("a", "spouse"), spec("b", "head")]);
        assert!(matches!(
            outcome(given, replace(vec![spec("a", "head")])).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "member"
        ));
    }

    #[tokio::test]
    async fn only_a_legal_basis_changes_a_groups_identifiers() {
        let given = registered(vec![spec("a", "head")]);
        let replace = |identifiers: Vec<Identifier>, access: Access| {
            let mut d = details(None);
            d.identifiers = identifiers;
            GroupCommand::Replace {
                details: d,
                stated: everything(),
                access,
                member_consents: HashMap::new(),
            }
        };
        let consented = ngo_with(vec![ngo_consent("g", "group", None)]);
        for identifiers in [vec![id(GROUP_ID, "HH2")], vec![]] {
            assert!(matches!(
                outcome(given.clone(), replace(identifiers, consented.clone())).await,
                Err(DomainError::Forbidden { field, .. }) if field == "identifier"
            ));
        }
        assert_eq!(
            outcome(given.clone(), replace(vec![id(GROUP_ID, "HH1")], consented)).await,
            Ok(vec![])
        );
        assert_eq!(
            outcome(given, replace(vec![id(GROUP_ID, "HH2")], full_access()))
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_registration_lists_at_most_the_bounded_number_of_members() {
        let members = (0..=crate::bounds::items::MEMBERS)
            .map(|i| spec(&format!("m{i}"), "member"))
            .collect();
        assert!(matches!(
            outcome(vec![], GroupCommand::Register(details(Some(members)))).await,
            Err(DomainError::Invalid { field, .. }) if field == "member"
        ));
    }

    #[test]
    fn member_events_maintain_the_membership_index() {
        let added = GroupEvent::MemberAdded {
            individual: "a".into(),
            roles: vec![],
            start_date: today(),
        };
        assert!(matches!(
            added.index_change(),
            Some(IndexChange::MemberJoined("a"))
        ));
        let ended = GroupEvent::MembershipEnded {
            individual: "a".into(),
            ended_date: today(),
            reason: None,
        };
        assert!(matches!(
            ended.index_change(),
            Some(IndexChange::MemberLeft("a"))
        ));
    }

    #[test]
    fn quantity_counts_current_members_only() {
        let mut group = Group::default();
        for event in registered(vec![spec("a", "head"), spec("b", "child")]) {
            group.apply(event);
        }
        group.apply(GroupEvent::MembershipEnded {
            individual: "b".into(),
            ended_date: date(2024, 3, 1),
            reason: None,
        });
        assert_eq!(group.quantity(), 1);
        assert_eq!(group.members.len(), 2);
        assert_eq!(group.version, 5);
    }
}
