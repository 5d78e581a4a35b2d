//! Household changes beyond adding and removing one member (OpenSPP's member `PATCH`, `$merge`
//! and `$split`). Each is decided by the group it changes, on its own stream: a merge and a split
//! are two commands on two streams (and for a split a registration), which the application
//! layer commits together, so either both groups change or neither does.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::{check_roles, is_head, Group, GroupEvent, Member, MemberSpec};
use crate::bounds;
use crate::error::DomainError;
use crate::services::RegistryServices;
use crate::values::Code;
use crate::vocabulary::{GROUP_MEMBERSHIP_TYPE, HEAD_ROLE};

/// What a member `PATCH` changes; `None` leaves it as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberChange {
    pub roles: Option<Vec<Code>>,
    pub start_date: Option<NaiveDate>,
    pub ended_date: Option<NaiveDate>,
}

/// Why memberships ended in a merge or a split, as `MembershipEnded` records it.
pub const MERGED: &str = "merged";
pub const SPLIT: &str = "split";

/// The role every member has when a role mapping or a head already in place takes theirs.
const MEMBER_ROLE: &str = "member";

impl Group {
    /// A current member's roles and dates changed, in that order; ending it is a removal.
    pub(super) fn update_member(
        &self,
        individual: String,
        change: MemberChange,
        services: &RegistryServices,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        let member = self
            .current(&individual)
            .ok_or_else(|| DomainError::not_found("member"))?;
        let today = services.clock.today();
        let mut events = Vec::new();
        if let Some(roles) = change.roles.filter(|r| *r != member.roles) {
            check_roles(&roles, "role", services)?;
            if is_head(&roles)
                && self
                    .active_members()
                    .any(|m| m.individual != individual && m.is_head())
            {
                return Err(DomainError::conflict(
                    Some("role"),
                    "group already has a head",
                ));
            }
            events.push(GroupEvent::MemberRolesChanged {
                individual: individual.clone(),
                roles,
            });
        }
        let start_date = change.start_date.unwrap_or(member.start_date);
        if start_date != member.start_date {
            bounds::past_date("startDate", start_date, today)?;
            events.push(GroupEvent::MemberStartDateChanged {
                individual: individual.clone(),
                start_date,
            });
        }
        if let Some(ended_date) = change.ended_date {
            bounds::past_date("endedDate", ended_date, today)?;
            if ended_date < start_date {
                return Err(DomainError::invalid(
                    "endedDate",
                    "must not precede the start of the membership",
                ));
            }
            events.push(GroupEvent::MembershipEnded {
                individual,
                ended_date,
                reason: None,
            });
        }
        Ok(events)
    }

    /// The source's side of a merge: every current member leaves, and the group is
    /// deactivated. An inactive group has been merged (or closed) already.
    pub(super) fn merge_into(
        &self,
        target: String,
        services: &RegistryServices,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        if !self.active {
            return Err(DomainError::conflict(
                Some("sourceGroup"),
                "source group is already inactive and cannot be merged",
            ));
        }
        let today = services.clock.today();
        let mut events: Vec<GroupEvent> = self
            .active_members()
            .map(|m| GroupEvent::MembershipEnded {
                individual: m.individual.clone(),
                ended_date: today.max(m.start_date),
                reason: Some(MERGED.to_owned()),
            })
            .collect();
        events.push(GroupEvent::GroupMerged { into: target });
        events.push(GroupEvent::GroupDeactivated);
        Ok(events)
    }

    /// The target's side of a merge: the source's current `members` join from today, with their
    /// roles mapped by `role_mapping` (code to code); a head is demoted to member when the
    /// group has one already. Members already here stay as they are.
    pub(super) fn absorb(
        &self,
        members: Vec<Member>,
        role_mapping: &HashMap<String, String>,
        services: &RegistryServices,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        if !self.active {
            return Err(DomainError::conflict(
                Some("targetGroup"),
                "target group is inactive and cannot take members",
            ));
        }
        let mapped = |code: &str| -> Code {
            Code {
                system: GROUP_MEMBERSHIP_TYPE.to_owned(),
                code: role_mapping.get(code).cloned().unwrap_or(code.to_owned()),
            }
        };
        let targets: Vec<Code> = role_mapping
            .values()
            .map(|code| Code {
                system: GROUP_MEMBERSHIP_TYPE.to_owned(),
                code: code.clone(),
            })
            .collect();
        check_roles(&targets, "roleMapping", services)?;
        let today = services.clock.today();
        let mut has_head = self.active_members().any(Member::is_head);
        let mut events = Vec::new();
        for member in members.into_iter().filter(|m| m.is_active()) {
            if self.current(&member.individual).is_some() {
                continue;
            }
            let mut roles: Vec<Code> = member.roles.iter().map(|r| mapped(&r.code)).collect();
            if is_head(&roles) {
                if has_head {
                    roles = demoted(roles);
                } else {
                    has_head = true;
                }
            }
            events.push(GroupEvent::MemberAdded {
                individual: member.individual,
                roles,
                start_date: today,
            });
        }
        Ok(events)
    }

    /// The source's side of a split: `moving` (current members, not the head) leave, and at
    /// least one member stays.
    pub(super) fn split_off(
        &self,
        moving: Vec<String>,
        into: String,
        services: &RegistryServices,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        bounds::items("membersToMove", moving.len(), bounds::items::MEMBERS)?;
        if moving.is_empty() {
            return Err(DomainError::invalid(
                "membersToMove",
                "name at least one member to move",
            ));
        }
        let today = services.clock.today();
        let mut events = Vec::with_capacity(moving.len() + 1);
        for (i, individual) in moving.iter().enumerate() {
            if moving[..i].contains(individual) {
                return Err(DomainError::invalid(
                    format!("membersToMove[{i}]"),
                    "the same individual is listed twice",
                ));
            }
            let member = self
                .current(individual)
                .ok_or_else(|| DomainError::not_found("member"))?;
            if member.is_head() {
                return Err(DomainError::conflict(
                    Some(&format!("membersToMove[{i}]")),
                    "the head of the group cannot be moved; give the group another head first",
                ));
            }
            events.push(GroupEvent::MembershipEnded {
                individual: individual.clone(),
                ended_date: today.max(member.start_date),
                reason: Some(SPLIT.to_owned()),
            });
        }
        if self.quantity() <= moving.len() {
            return Err(DomainError::conflict(
                Some("membersToMove"),
                "the group must keep at least one member",
            ));
        }
        events.push(GroupEvent::GroupSplit { into });
        Ok(events)
    }

    /// The members a split moves, as the new group registers them: their roles kept, and
    /// `new_head` (one of them) given the head role alone.
    pub fn moving_members(&self, moving: &[String], new_head: Option<&str>) -> Vec<MemberSpec> {
        moving
            .iter()
            .filter_map(|individual| self.current(individual))
            .map(|m| MemberSpec {
                individual: m.individual.clone(),
                roles: if new_head == Some(m.individual.as_str()) {
                    vec![Code {
                        system: GROUP_MEMBERSHIP_TYPE.to_owned(),
                        code: HEAD_ROLE.to_owned(),
                    }]
                } else {
                    m.roles.clone()
                },
                start_date: None,
            })
            .collect()
    }
}

/// `roles` with the head role replaced by the plain member role.
fn demoted(roles: Vec<Code>) -> Vec<Code> {
    let mut roles: Vec<Code> = roles
        .into_iter()
        .filter(|r| !(r.system == GROUP_MEMBERSHIP_TYPE && r.code == HEAD_ROLE))
        .collect();
    if !roles.iter().any(|r| r.code == MEMBER_ROLE) {
        roles.push(Code {
            system: GROUP_MEMBERSHIP_TYPE.to_owned(),
            code: MEMBER_ROLE.to_owned(),
        });
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::super::tests::{outcome, registered, role, spec};
    use super::*;
    use crate::group::GroupCommand;
    use crate::testing::{date, full_access, ngo, ngo_consent, today};
    use crate::Access;

    fn update(individual: &str, change: MemberChange) -> GroupCommand {
        GroupCommand::UpdateMember {
            individual: individual.into(),
            change,
            access: full_access(),
        }
    }

    fn member(individual: &str, code: &str) -> Member {
        Member {
            individual: individual.into(),
            roles: role(code),
            start_date: date(2023, 5, 1),
            ended_date: None,
            end_reason: None,
        }
    }

    #[tokio::test]
    async fn a_member_patch_changes_roles_then_dates_and_keeps_one_head() {
        let given = registered(vec![spec("a", "head"), spec("b", "child")]);
        let change = MemberChange {
            roles: Some(role("spouse")),
            start_date: Some(date(2024, 2, 1)),
            ended_date: Some(date(2024, 3, 1)),
        };
        assert_eq!(
            outcome(given.clone(), update("b", change)).await.unwrap(),
            vec![
                GroupEvent::MemberRolesChanged {
                    individual: "b".into(),
                    roles: role("spouse"),
                },
                GroupEvent::MemberStartDateChanged {
                    individual: "b".into(),
                    start_date: date(2024, 2, 1),
                },
                GroupEvent::MembershipEnded {
                    individual: "b".into(),
                    ended_date: date(2024, 3, 1),
                    reason: None,
                },
            ]
        );
        let second_head = MemberChange {
            roles: Some(role("head")),
            ..Default::default()
        };
        assert!(matches!(
            outcome(given.clone(), update("b", second_head.clone())).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "role"
        ));
        // The head itself may say it is head again: nothing changes.
        assert_eq!(
            outcome(given.clone(), update("a", second_head)).await,
            Ok(vec![])
        );
        assert_eq!(
            outcome(given.clone(), update("x", MemberChange::default())).await,
            Err(DomainError::not_found("member"))
        );
        let backwards = MemberChange {
            ended_date: Some(date(2023, 12, 31)),
            ..Default::default()
        };
        assert!(matches!(
            outcome(given.clone(), update("b", backwards)).await,
            Err(DomainError::Invalid { field, .. }) if field == "endedDate"
        ));
        let future = MemberChange {
            start_date: today().succ_opt(),
            ..Default::default()
        };
        assert!(matches!(
            outcome(given.clone(), update("b", future)).await,
            Err(DomainError::Invalid { field, .. }) if field == "startDate"
        ));
        let unknown_role = MemberChange {
            roles: Some(role("cousin")),
            ..Default::default()
        };
        assert!(matches!(
            outcome(given, update("b", unknown_role)).await,
            Err(DomainError::Invalid { field, .. }) if field == "role"
        ));
    }

    #[tokio::test]
    async fn a_merge_empties_and_deactivates_the_source_once() {
        let given = registered(vec![spec("a", "head"), spec("b", "child")]);
        let merge = GroupCommand::MergeInto {
            target: "t".into(),
            access: full_access(),
        };
        let events = outcome(given.clone(), merge.clone()).await.unwrap();
        let ended = |who: &str| GroupEvent::MembershipEnded {
            individual: who.into(),
            ended_date: today(),
            reason: Some(MERGED.into()),
        };
        assert_eq!(
            events,
            vec![
                ended("a"),
                ended("b"),
                GroupEvent::GroupMerged { into: "t".into() },
                GroupEvent::GroupDeactivated,
            ]
        );
        let mut merged = given;
        merged.extend(events);
        assert!(matches!(
            outcome(merged, merge).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "sourceGroup"
        ));
    }

    #[tokio::test]
    async fn the_target_takes_new_members_maps_roles_and_keeps_its_head() {
        let given = registered(vec![spec("t", "head"), spec("b", "child")]);
        let absorb = |mapping: &[(&str, &str)]| GroupCommand::Absorb {
            members: vec![
                member("a", "head"),
                member("b", "child"),
                member("c", "spouse"),
            ],
            role_mapping: mapping
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            access: full_access(),
        };
        let added = |who: &str, code: &str| GroupEvent::MemberAdded {
            individual: who.into(),
            roles: role(code),
            start_date: today(),
        };
        // `b` is a member already; the source's head becomes a member.
        assert_eq!(
            outcome(given.clone(), absorb(&[])).await.unwrap(),
            vec![added("a", "member"), added("c", "spouse")]
        );
        assert_eq!(
            outcome(given.clone(), absorb(&[("spouse", "other")]))
                .await
                .unwrap(),
            vec![added("a", "member"), added("c", "other")]
        );
        assert!(matches!(
            outcome(given.clone(), absorb(&[("spouse", "cousin")])).await,
            Err(DomainError::Invalid { field, .. }) if field == "roleMapping"
        ));
        // A group without a head takes the source's.
        let headless = registered(vec![spec("b", "child")]);
        assert_eq!(
            outcome(headless, absorb(&[])).await.unwrap(),
            vec![added("a", "head"), added("c", "spouse")]
        );
        // A household merged away (inactive) takes nobody: its members would join a dead group.
        let mut inactive = given;
        inactive.push(GroupEvent::GroupDeactivated);
        assert!(matches!(
            outcome(inactive, absorb(&[])).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "targetGroup"
        ));
    }

    #[tokio::test]
    async fn a_split_moves_members_but_not_the_head_and_leaves_someone() {
        let given = registered(vec![
            spec("a", "head"),
            spec("b", "child"),
            spec("c", "child"),
        ]);
        let split = |members: &[&str]| GroupCommand::SplitOff {
            members: members.iter().map(|m| m.to_string()).collect(),
            into: "n".into(),
            access: full_access(),
        };
        assert_eq!(
            outcome(given.clone(), split(&["b"])).await.unwrap(),
            vec![
                GroupEvent::MembershipEnded {
                    individual: "b".into(),
                    ended_date: today(),
                    reason: Some(SPLIT.into()),
                },
                GroupEvent::GroupSplit { into: "n".into() },
            ]
        );
        assert!(matches!(
            outcome(given.clone(), split(&["a"])).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "membersToMove[0]"
        ));
        assert_eq!(
            outcome(given.clone(), split(&["x"])).await,
            Err(DomainError::not_found("member"))
        );
        assert!(matches!(
            outcome(given.clone(), split(&["b", "b"])).await,
            Err(DomainError::Invalid { field, .. }) if field == "membersToMove[1]"
        ));
        assert!(matches!(
            outcome(given.clone(), split(&[])).await,
            Err(DomainError::Invalid { field, .. }) if field == "membersToMove"
        ));
        let pair = registered(vec![spec("b", "child"), spec("c", "child")]);
        assert!(matches!(
            outcome(pair, split(&["b", "c"])).await,
            Err(DomainError::Conflict { field: Some(f), .. }) if f == "membersToMove"
        ));
        // The new group: the moved members' roles, the new head's alone.
        let mut group = Group::default();
        for event in given {
            cqrs_es::Aggregate::apply(&mut group, event);
        }
        let moving = group.moving_members(&["b".into(), "c".into()], Some("c"));
        assert_eq!(moving[0].roles, role("child"));
        assert_eq!(moving[1].roles, role("head"));
    }

    #[tokio::test]
    async fn every_restructuring_needs_a_consent_covering_the_group() {
        let given = registered(vec![spec("a", "head"), spec("b", "child")]);
        let unconsented = Access {
            actor: ngo(),
            consents: vec![],
        };
        let consented = Access {
            actor: ngo(),
            consents: vec![ngo_consent("g", "group", None)],
        };
        let commands = |access: &Access| {
            vec![
                GroupCommand::UpdateMember {
                    individual: "b".into(),
                    change: MemberChange {
                        roles: Some(role("spouse")),
                        ..Default::default()
                    },
                    access: access.clone(),
                },
                GroupCommand::MergeInto {
                    target: "t".into(),
                    access: access.clone(),
                },
                GroupCommand::Absorb {
                    members: vec![member("c", "child")],
                    role_mapping: HashMap::new(),
                    access: access.clone(),
                },
                GroupCommand::SplitOff {
                    members: vec!["b".into()],
                    into: "n".into(),
                    access: access.clone(),
                },
            ]
        };
        for command in commands(&unconsented) {
            assert_eq!(
                outcome(given.clone(), command).await,
                Err(DomainError::not_found("Group"))
            );
        }
        for command in commands(&consented) {
            assert!(outcome(given.clone(), command).await.is_ok());
        }
    }
}
