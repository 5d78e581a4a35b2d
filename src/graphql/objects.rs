//! The resource types (CONTRACT §7): fields with the REST JSON names, read from the filtered
//! REST rendering, and the links between resources, each resolved through the request's batch
//! loaders under the linked resource's own scope and consent; and the connections of each type,
//! pages of its REST search (`connections::search`).

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, Json, Object, SimpleObject, Union};
use openspp_aggregates::{Group, Individual, Program, ProgramMembership};
use serde_json::Value;

use crate::auth::Action;
use crate::extensions::Shown;
use crate::graphql::connections::{search, Cursor, MembershipFilter, Total};
use crate::graphql::context::{bad_argument, call, open};
use crate::graphql::loaders::Loaders;
use crate::graphql::nodes::{Node, Shared};
use crate::graphql::values::{
    Address, CodeableConcept, ContactPoint, GroupMemberRef, GroupMembershipRef, HumanName,
    Identifier, Meta, Period,
};
use crate::resource::Resource;

/// An `#[Object] impl` of a resource type, with the fields every resource type starts with
/// (`identifier`, `active`, `meta`) before the type's own. The attribute (`#[Object(…)]`) is
/// passed through as the caller wrote it, token for token, so what async-graphql defines
/// under it (`child_complexity`) is in the caller's scope, where complexities name it.
macro_rules! resource_object {
    ($pound:tt $attribute:tt impl $object:ident { $($own:tt)* }) => {
        $pound $attribute
        impl $object {
            async fn identifier(&self) -> Vec<Identifier> {
                self.0.field("identifier").unwrap_or_default()
            }

            async fn active(&self) -> Option<bool> {
                self.0.field("active")
            }

            async fn meta(&self) -> Option<Meta> {
                self.0.field("meta")
            }

            $($own)*
        }
    };
}

/// A registrant's type (an individual, a group): the fields every resource type starts with,
/// its own `fields`, its `address` and `extension`, its `links` to other resources, and last
/// its own program memberships, with the attributes (doc, complexity) given before
/// `memberships`.
macro_rules! registrant_object {
    (
        $pound:tt $attribute:tt
        impl $object:ident {
            fields { $($fields:tt)* }
            links { $($links:tt)* }
            $(#[$memberships:meta])* memberships
        }
    ) => {
        resource_object! {
            $pound $attribute
            impl $object {
                $($fields)*

                async fn address(&self) -> Option<Vec<Address>> {
                    self.0.field("address")
                }

                /// Registered extensions' data (CONTRACT §8), as REST's `extension` with `_extensions=*`.
                async fn extension(
                    &self,
                    ctx: &Context<'_>,
                    only: Option<Vec<String>>,
                ) -> async_graphql::Result<Option<Json<Value>>> {
                    extension(ctx, &self.0, only)
                }

                $($links)*

                $(#[$memberships])*
                async fn memberships(
                    &self,
                    ctx: &Context<'_>,
                ) -> async_graphql::Result<Vec<ProgramMembershipObject>> {
                    memberships(ctx, &self.0.snapshot.aggregate_id).await
                }
            }
        }
    };
}

fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

/// A registrant's `extension` as REST shows it with `_extensions=*` (GraphQL renders every
/// extension, see `graphql::execute`): keyed by OpenSPP's short key, each with its `url`, and
/// already narrowed by the caller's grant, so an extension a consent or a client filter hides
/// is absent exactly as on REST. `only` keeps the extensions it names (URIs, short keys or
/// names, as `_extensions=` takes them); `null` where the caller may see no extension at all.
fn extension<R: Resource>(
    ctx: &Context<'_>,
    node: &Node<R>,
    only: Option<Vec<String>>,
) -> async_graphql::Result<Option<Json<Value>>> {
    let Some(Value::Object(mut shown)) = node.field::<Value>("extension") else {
        return Ok(None);
    };
    if let (Some(names), Some(resource)) = (only, R::EXTENDED) {
        let chosen = call(ctx)
            .state
            .extensions
            .catalog()
            .choose(resource, &names.join(","))
            .map_err(|name| {
                bad_argument(
                    "only",
                    &format!("`{name}` is not an extension registered for {}", R::TYPE),
                )
            })?;
        if let Shown::Only(uris) = chosen {
            shown.retain(|_, data| {
                data.get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|url| uris.contains(url))
            });
        }
    }
    Ok(Some(Json(Value::Object(shown))))
}

pub struct IndividualObject(pub Shared<Individual>);

registrant_object! {
    #[Object(name = "Individual")]
    impl IndividualObject {
        fields {
            async fn name(&self) -> Option<HumanName> {
                self.0.field("name")
            }

            async fn birth_date(&self) -> Option<String> {
                self.0.field("birthDate")
            }

            async fn birth_date_estimated(&self) -> Option<bool> {
                self.0.field("birthDateEstimated")
            }

            async fn gender(&self) -> Option<CodeableConcept> {
                self.0.field("gender")
            }

            async fn telecom(&self) -> Option<Vec<ContactPoint>> {
                self.0.field("telecom")
            }
        }
        links {
            /// The groups the individual belongs to now, as REST shows them.
            async fn group_membership(&self, ctx: &Context<'_>) -> Option<Vec<GroupMembershipRef>> {
                if !self.0.allows("groupMembership") {
                    return None;
                }
                call(ctx).audit.mentioning(self.0.mentioned.clone());
                Some(self.0.field("groupMembership").unwrap_or_default())
            }

            /// The groups the individual belongs to now (needs `group:read`); `null` where the caller
            /// may not see the individual's `groupMembership`.
            #[graphql(complexity = "10 * child_complexity")]
            async fn groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<GroupObject>>> {
                if !self.0.allows("groupMembership") {
                    return Ok(None);
                }
                open(call(ctx), "group", Action::Read)?;
                let streams: Vec<String> = self.0.mentioned.iter().map(|(_, s)| s.clone()).collect();
                let loaded = loaders(ctx)
                    .groups
                    .load_many(streams.iter().cloned())
                    .await?;
                Ok(Some(
                    streams
                        .iter()
                        .filter_map(|stream| loaded.get(stream).cloned().map(GroupObject))
                        .collect(),
                ))
            }
        }
        /// The individual's program memberships the caller may see (needs
        /// `program_membership:read`).
        #[graphql(complexity = "10 * child_complexity")]
        memberships
    }
}

async fn memberships(
    ctx: &Context<'_>,
    beneficiary: &str,
) -> async_graphql::Result<Vec<ProgramMembershipObject>> {
    open(call(ctx), "program_membership", Action::Read)?;
    let loaded = loaders(ctx)
        .memberships_of
        .load_one(beneficiary.to_owned())
        .await?;
    Ok(loaded
        .map(|nodes| nodes.iter().cloned().map(ProgramMembershipObject).collect())
        .unwrap_or_default())
}

pub struct GroupObject(pub Shared<Group>);

/// A member of a group: the person (`null` where the caller may not see them) and the
/// membership's role and period.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct GroupMember {
    #[graphql(skip)]
    stream: Option<String>,
    pub role: Option<CodeableConcept>,
    pub period: Option<Period>,
    pub inactive: bool,
}

#[ComplexObject]
impl GroupMember {
    /// The member (needs `individual:read`).
    async fn individual(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<IndividualObject>> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        open(call(ctx), "individual", Action::Read)?;
        let loaded = loaders(ctx).individuals.load_one(stream.clone()).await?;
        Ok(loaded.map(IndividualObject))
    }
}

registrant_object! {
    #[Object(name = "Group")]
    impl GroupObject {
        fields {
            async fn group_type(&self) -> Option<String> {
                self.0.field("groupType")
            }

            async fn name(&self) -> Option<String> {
                self.0.field("name")
            }

            async fn quantity(&self) -> Option<i64> {
                self.0.field("quantity")
            }
        }
        links {
            /// The members as REST lists them (references).
            async fn member(&self, ctx: &Context<'_>) -> Option<Vec<GroupMemberRef>> {
                let members = self.0.field("member")?;
                call(ctx).audit.mentioning(self.0.mentioned.clone());
                Some(members)
            }

            /// The members with the people themselves; `null` where the caller may not see `member`.
            #[graphql(complexity = "10 * child_complexity")]
            async fn members(&self, ctx: &Context<'_>) -> Option<Vec<GroupMember>> {
                let members: Vec<GroupMemberRef> = self.0.field("member")?;
                call(ctx).audit.mentioning(self.0.mentioned.clone());
                Some(
                    members
                        .into_iter()
                        .map(|m| GroupMember {
                            stream: self.0.stream_of(&m.entity.reference).map(str::to_owned),
                            role: m.role,
                            period: m.period,
                            inactive: m.inactive,
                        })
                        .collect(),
                )
            }
        }
        /// The group's own program memberships (needs `program_membership:read`).
        #[graphql(complexity = "10 * child_complexity")]
        memberships
    }
}

pub struct ProgramObject(pub Shared<Program>);

resource_object! {
    #[Object(name = "Program")]
    impl ProgramObject {
        async fn name(&self) -> Option<String> {
            self.0.field("name")
        }

        async fn description(&self) -> Option<String> {
            self.0.field("description")
        }

        async fn program_type(&self) -> Option<CodeableConcept> {
            self.0.field("programType")
        }

        async fn target_type(&self) -> Option<String> {
            self.0.field("targetType")
        }

        async fn currency(&self) -> Option<String> {
            self.0.field("currency")
        }

        async fn eligibility_criteria(&self) -> Option<String> {
            self.0.field("eligibilityCriteria")
        }

        async fn period(&self) -> Option<Period> {
            self.0.field("period")
        }

        async fn status(&self) -> Option<String> {
            self.0.field("status")
        }

        /// The program's memberships the caller may see (needs `program_membership:search`).
        #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
        async fn memberships(
            &self,
            ctx: &Context<'_>,
            first: Option<i32>,
            after: Option<String>,
            filter: Option<MembershipFilter>,
        ) -> async_graphql::Result<MembershipConnection> {
            memberships_of_program(ctx, &self.0, first, after, filter).await
        }
    }
}

pub struct ProgramMembershipObject(pub Shared<ProgramMembership>);

/// Who a membership is for.
#[derive(Union)]
pub enum Beneficiary {
    Individual(IndividualObject),
    Group(GroupObject),
}

resource_object! {
    #[Object(name = "ProgramMembership")]
    impl ProgramMembershipObject {
        /// The program (needs `program:read`); `null` where the caller may not see it.
        async fn program(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ProgramObject>> {
            if !self.0.allows("program") {
                return Ok(None);
            }
            open(call(ctx), "program", Action::Read)?;
            let loaded = loaders(ctx)
                .programs
                .load_one(self.0.snapshot.state.program.clone())
                .await?;
            Ok(loaded.map(ProgramObject))
        }

        /// The individual or group enrolled (needs that resource's `read` scope); `null` where the
        /// caller may not see it.
        async fn beneficiary(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Beneficiary>> {
            let Some((reference, stream)) = self.0.mentioned.first().cloned() else {
                return Ok(None);
            };
            let call = call(ctx);
            call.audit.mentioning([(reference.clone(), stream.clone())]);
            if reference.starts_with("Group/") {
                open(call, "group", Action::Read)?;
                let loaded = loaders(ctx).groups.load_one(stream).await?;
                Ok(loaded.map(|g| Beneficiary::Group(GroupObject(g))))
            } else {
                open(call, "individual", Action::Read)?;
                let loaded = loaders(ctx).individuals.load_one(stream).await?;
                Ok(loaded.map(|i| Beneficiary::Individual(IndividualObject(i))))
            }
        }

        async fn status(&self) -> Option<String> {
            self.0.field("status")
        }

        async fn enrollment_date(&self) -> Option<String> {
            self.0.field("enrollmentDate")
        }

        async fn exit_date(&self) -> Option<String> {
            self.0.field("exitDate")
        }

        async fn exit_reason(&self) -> Option<CodeableConcept> {
            self.0.field("exitReason")
        }
    }
}

pub type IndividualConnection = Connection<Cursor, IndividualObject, Total>;
pub type GroupConnection = Connection<Cursor, GroupObject, Total>;
pub type ProgramConnection = Connection<Cursor, ProgramObject, Total>;
pub type MembershipConnection = Connection<Cursor, ProgramMembershipObject, Total>;

/// `Program.memberships`: the membership search with the program as its `program`.
pub async fn memberships_of_program(
    ctx: &Context<'_>,
    program: &Node<Program>,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<MembershipFilter>,
) -> async_graphql::Result<MembershipConnection> {
    let mut filter = filter.unwrap_or_default();
    if filter.program.is_some() {
        return Err(bad_argument(
            "filter.program",
            "is the program itself here; leave it out",
        ));
    }
    filter.program = Program::key(&program.snapshot.aggregate_id, &program.snapshot.state);
    if filter.program.is_none() {
        return Ok(Connection::with_additional_fields(
            false,
            false,
            Total { total_count: 0 },
        ));
    }
    search::<ProgramMembership, _, _>(ctx, first, after, Some(filter), ProgramMembershipObject)
        .await
}
