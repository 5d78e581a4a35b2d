//! `/Group`: households and other groups, and their members (CONTRACT §4).

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path};
use axum::Json;
use openspp_aggregates::{Date, ExtendedResource, Group, GroupCommand, GroupDetails, MemberSpec};
use openspp_projections::consent;
use openspp_projections::group::{self as view, GroupQuery};
use openspp_projections::individual::primary_identifiers;
use openspp_projections::search::SortKey;
use serde_json::Value;

use crate::api::group::{AddMember, GroupMember, GroupResource, MemberAnswer, RemoveMember};
use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::schema::{OperationOutcome, Reference, SearchResult};
use crate::api::stated::Stated;
use crate::error::ApiError;
use crate::resource::{
    self, grants_for, locate_registrant, Answer, Call, Grant, Located, Registrant, Resource,
    Searchable, Snapshot,
};
use openspp_aggregates::Individual;

const RESOURCE: &str = "Group";
const SCOPE: &str = "group";
const EXTENDED: ExtendedResource = ExtendedResource::Group;

/// The individual's stream for a member reference. Individuals the caller may not see are as
/// unknown as those that do not exist; both are named at `field`.
pub(super) async fn member_stream(
    call: &Call,
    entity: &Reference,
    field: &str,
) -> Result<String, ApiError> {
    let located = resource::named::<Individual>(call, &entity.reference, field).await?;
    Ok(located.stream)
}

async fn member_spec(
    call: &Call,
    member: GroupMember,
    field: &str,
) -> Result<MemberSpec, ApiError> {
    Ok(MemberSpec {
        individual: member_stream(call, &member.entity, &format!("{field}.entity")).await?,
        roles: member.role.map(|r| r.codes()).unwrap_or_default(),
        start_date: member.period.and_then(|p| p.start()),
    })
}

/// The domain's view of a group body: member references are resolved to the individuals
/// the caller may see.
async fn details(body: GroupResource, call: &Call) -> Result<GroupDetails, ApiError> {
    if body.resource_type != RESOURCE {
        return Err(ApiError::unprocessable("type", "must be Group"));
    }
    let members = match body.member {
        None => None,
        Some(members) => {
            let mut specs = Vec::with_capacity(members.len());
            // A read lists ended memberships too (inactive, with an end); sending a read
            // back must not revive them, so only current entries say who is in the group.
            let current = members.into_iter().enumerate().filter(|(_, member)| {
                !member.inactive && member.period.as_ref().and_then(|p| p.end).is_none()
            });
            for (index, member) in current {
                specs.push(member_spec(call, member, &format!("member[{index}]")).await?);
            }
            Some(specs)
        }
    };
    Ok(GroupDetails {
        identifiers: body.identifier.into_iter().map(Into::into).collect(),
        active: body.active,
        group_type: body.group_type,
        name: body.name,
        address: body.address.into_iter().map(Into::into).collect(),
        members,
        extension: body.extension,
    })
}

/// The external identifiers of members (individual streams) the caller may read.
type MemberReferences = HashMap<String, String>;

impl Resource for Group {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("group_view");
    const EXTENDED: Option<ExtendedResource> = Some(EXTENDED);
    type Rendered = GroupResource;
    type Context = MemberReferences;

    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        locate_registrant(call, id).await
    }

    /// External identifiers of everyone who is or was a member, in one query; members without
    /// one are not listed. A consent-bound caller sees only members it could read as
    /// Individuals (an ended member is no longer covered by the household's consent), just as an
    /// individual's `groupMembership` lists only groups it may see.
    async fn context(
        call: &Call,
        snapshots: &[&Snapshot<Self>],
    ) -> Result<MemberReferences, ApiError> {
        let ids: Vec<String> = snapshots
            .iter()
            .flat_map(|s| s.state.members.iter().map(|m| m.individual.clone()))
            .collect();
        let mut references = primary_identifiers(&call.state.pool, &ids).await?;
        if call.principal.require_consent {
            let readable = grants_for(call, "individual", &ids).await?;
            references.retain(|individual, _| readable.contains_key(individual));
        }
        Ok(references)
    }

    fn render(call: &Call, references: &MemberReferences, row: &Snapshot<Self>) -> GroupResource {
        GroupResource::render(
            row,
            references,
            &call.state.vocabulary,
            call.extensions_shown(EXTENDED, &row.state.extension),
        )
    }

    /// The members `member` names.
    fn mentioned(
        references: &MemberReferences,
        row: &Snapshot<Self>,
        grant: &Grant,
    ) -> Vec<(String, String)> {
        if !grant.allows("member") {
            return Vec::new();
        }
        row.state
            .members
            .iter()
            .filter_map(|m| {
                let key = references.get(&m.individual)?;
                Some((format!("Individual/{key}"), m.individual.clone()))
            })
            .collect()
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.live_identifiers().next().map(|i| i.key())
    }
}

impl Registrant for Group {
    type Body = GroupResource;
    const READ_ONLY: &'static [&'static str] = &["meta"];

    async fn registration(
        call: &Call,
        body: GroupResource,
    ) -> Result<(Option<String>, GroupCommand), ApiError> {
        let details = details(body, call).await?;
        let subject = details.identifiers.first().map(|i| i.key());
        Ok((subject, GroupCommand::Register(details)))
    }

    /// Under consent, the consents covering the current members go with the command: the
    /// aggregate keeps members the caller may not read.
    async fn replacement(
        call: &Call,
        target: &Located<Self>,
        Stated { body, fields }: Stated<GroupResource>,
    ) -> Result<GroupCommand, ApiError> {
        let details = details(body, call).await?;
        let member_consents = if call.principal.require_consent {
            let pool = &call.state.pool;
            let members = consent::current_members(pool, &target.stream).await?;
            consent::covering(pool, &members).await?
        } else {
            HashMap::new()
        };
        Ok(GroupCommand::Replace {
            details,
            stated: fields,
            access: target.access.clone(),
            member_consents,
        })
    }
}

impl Searchable for Group {
    type Query = GroupQuery;

    async fn query(call: &Call, params: &mut Params) -> Result<GroupQuery, ApiError> {
        Ok(GroupQuery {
            identifier: params.identifier()?,
            name: params.one("name")?,
            group_type: group_type(params)?,
            member: resource::referenced(call, params, "member", "Individual").await?,
            last_updated: params.instants("_lastUpdated")?,
            active: params.boolean("active")?,
            extension: call.extension_filters(EXTENDED, params)?,
            visibility: call.principal.visibility(),
            sort: params.sort(&view::SORT_COLUMNS, SortKey::NEWEST_FIRST)?,
        })
    }
}

/// `type` (OpenSPP's name) or `groupType` (this server's, kept): one of them, once.
fn group_type(params: &mut Params) -> Result<Option<String>, ApiError> {
    match (params.one("type")?, params.one("groupType")?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            Some("type"),
            "give `type` or `groupType`, not both",
        )),
        (one, other) => Ok(one.or(other)),
    }
}

/// Search groups.
#[utoipa::path(get, path = "/Group", tag = "Group",
    params(
        ("identifier" = Option<String>, Query, description = "`system|value`"),
        ("name" = Option<String>, Query, description = "Part of the name, case-insensitive"),
        ("type" = Option<String>, Query, description = "household, family, organization or other (OpenSPP's name)"),
        ("groupType" = Option<String>, Query, description = "The same as `type`"),
        ("member" = Option<String>, Query, description = "`Individual/{system}|{value}` (or `{system}|{value}`): groups it is a current member of"),
        ("_elements" = Option<String>, Query, description = "Comma-separated top-level fields each result shows (and `type`, `identifier`, `meta`)"),
        ("active" = Option<bool>, Query),
        ("_lastUpdated" = Option<String>, Query, description = "Instant or date with prefix; repeatable"),
        ("_count" = Option<i64>, Query, description = "1-100, default 20"),
        ("_offset" = Option<i64>, Query),
        ("_sort" = Option<String>, Query, description = "name, groupType, _lastUpdated; `-` for descending"),
        ("_extensions" = Option<String>, Query, description = "`*`, or the URIs or names of the extensions to show in each result; none by default (as OpenSPP)"),
        ("extension.{key}.{property}" = Option<String>, Query, description = "A property an extension's schema marks `x-openspp-searchable` equals this value (a list property: holds it); repeatable; `/metadata` lists them"),
    ),
    responses(
        (status = 200, body = SearchResult<GroupResource>),
        (status = 400, body = OperationOutcome),
    ),
    security(("bearer" = ["group:search"])))]
async fn search(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<Value>>, ApiError> {
    resource::search::<Group>(&call, &uri).await.map(Json)
}

/// Add an individual to the group.
#[utoipa::path(post, path = "/Group/{id}/$add-member", tag = "Group",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the change is based on"),
    ),
    request_body = AddMember,
    responses(
        (status = 201, body = MemberAnswer, description = "OpenSPP's `GroupMember`; `ETag` is the group's version"),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Already a member, or a second head"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:update"])))]
async fn add_member(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<AddMember>, ApiError>,
) -> Result<Answer, ApiError> {
    let (body, target) = resource::open_update::<Group, _>(&call, &id, body).await?;
    let member = member_spec(&call, body.into_member(), "member")
        .await
        .map_err(|e| e.at(Some("entity")))?;
    let individual = member.individual.clone();
    let mut write = target.change(if_match, |access| GroupCommand::AddMember {
        member,
        access,
    });
    write.status = axum::http::StatusCode::CREATED;
    let answer = resource::commit(&call, write).await?;
    Ok(member_answer(&call, answer, &individual, true).await)
}

/// A member operation's answer in OpenSPP's shape (`GroupMember`), from the group as the caller
/// may now see it; `ETag` stays the group's version. The write is committed: nothing here can
/// fail it, so a member the rendering does not list is answered by its identity only.
pub(super) async fn member_answer(
    call: &Call,
    answer: Answer,
    individual: &str,
    active: bool,
) -> Answer {
    let entity = primary_identifiers(&call.state.pool, &[individual.to_owned()])
        .await
        .ok()
        .and_then(|mut keys| keys.remove(individual))
        .map(|key| format!("Individual/{key}"))
        .unwrap_or_default();
    let member = MemberAnswer::of(&answer.body, &entity)
        .unwrap_or_else(|| MemberAnswer::bare(&answer.body, entity, active));
    Answer {
        body: serde_json::to_value(member).unwrap_or_default(),
        ..answer
    }
}

/// End an individual's membership of the group.
#[utoipa::path(post, path = "/Group/{id}/$remove-member", tag = "Group",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the change is based on"),
    ),
    request_body = RemoveMember,
    responses(
        (status = 200, body = MemberAnswer, description = "OpenSPP's `GroupMember`; `ETag` is the group's version"),
        (status = 404, body = OperationOutcome, description = "No such group, or not a member"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:update"])))]
async fn remove_member(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<RemoveMember>, ApiError>,
) -> Result<Answer, ApiError> {
    let (body, target) = resource::open_update::<Group, _>(&call, &id, body).await?;
    let individual = member_stream(&call, &body.entity, "entity").await?;
    let write = target.change(if_match, |access| GroupCommand::RemoveMember {
        individual: individual.clone(),
        ended_date: body.ended_date.map(Date::get),
        reason: body.reason,
        access,
    });
    let answer = resource::commit(&call, write).await?;
    Ok(member_answer(&call, answer, &individual, false).await)
}

crate::http::registrant_routes!(Group, GroupResource,
    create:
    /// Register a group, optionally with its first members.
    replace:
    /// Replace a group's data (and, when `member` is given, its member list). Fields the client may
    /// not see must be left out, and stay as they are; so do members it may not read.
    patch:
    /// Change some of a group's data with a JSON Merge Patch (RFC 7396), as OpenSPP does: merged
    /// into the group as this client sees it and written as a `PUT` of the result would be. A
    /// patch that names `member` replaces the member list (arrays are replaced whole); the member
    /// operations change one member.
);

crate::http::read_routes!(Group, GroupResource, "`system|value`, URL-encoded",
    routes: (search, create), (read, replace, patch), (add_member), (remove_member));
