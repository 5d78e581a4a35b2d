//! OpenSPP's household operations on `/Group` beyond one member's arrival or departure: a
//! member's `PATCH`, `$merge`, `$split` and the membership history (CONTRACT §4a). Each change
//! is a command of the groups it changes; a merge or a split commits both groups' events in
//! one transaction.

use axum::extract::{OriginalUri, Path};
use axum::http::StatusCode;
use axum::Json;
use openspp_aggregates::{Date, Group, GroupCommand, GroupDetails, Individual, MemberChange};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::group::MemberAnswer;
use crate::api::household::{
    versioned_group, MembershipHistoryEntry, MergeGroups, SplitGroup, UpdateMember,
};
use crate::api::json::ApiJson;
use crate::api::params::{envelope, Params};
use crate::api::preconditions::IfMatch;
use crate::api::schema::{OperationOutcome, SearchResult};
use crate::app::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::http::group::{member_answer, member_stream};
use crate::resource::history::versions;
use crate::resource::{
    self, committed_answer, execute_together, Answer, Call, Interaction, Resource, Write,
};
use openspp_projections::search::{Found, Page};

const RESOURCE: &str = "Group";
const SCOPE: &str = "group";

/// Role mappings name codes of one small vocabulary; more entries than this are no mapping.
const MAX_ROLE_MAPPINGS: usize = 50;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_member))
        .routes(routes!(merge))
        .routes(routes!(split))
        .routes(routes!(membership_history))
}

/// Change a member's role or dates (OpenSPP's `UpdateMemberRequest`): roles replace the current
/// ones, `endedDate` ends the membership. Still one head per group.
#[utoipa::path(patch, path = "/Group/{id}/member/{individual}", tag = "Group",
    params(
        ("id" = String, Path, description = "The group: `system|value`, URL-encoded"),
        ("individual" = String, Path, description = "The member: `system|value`, URL-encoded"),
        ("If-Match" = Option<String>, Header, description = "The group's `ETag` the change is based on"),
    ),
    request_body = UpdateMember,
    responses(
        (status = 200, body = MemberAnswer, description = "OpenSPP's `GroupMember`; `ETag` is the group's version"),
        (status = 404, body = OperationOutcome, description = "No such group or individual, or not a current member"),
        (status = 409, body = OperationOutcome, description = "A second head"),
        (status = 412, body = OperationOutcome, description = "`If-Match` is stale"),
        (status = 422, body = OperationOutcome, description = "An unknown role, or a date out of bounds; names the field"),
    ),
    security(("bearer" = ["group:update"])))]
async fn update_member(
    call: Call,
    if_match: IfMatch,
    Path((id, individual)): Path<(String, String)>,
    body: Result<ApiJson<UpdateMember>, ApiError>,
) -> Result<Answer, ApiError> {
    let (body, target) = resource::open_update::<Group, _>(&call, &id, body).await?;
    let member = Individual::locate(&call, &individual).await?.stream;
    let ends = body.ended_date.is_some();
    let change = MemberChange {
        roles: body.role.map(|r| r.codes()),
        start_date: body.start_date.map(Date::get),
        ended_date: body.ended_date.map(Date::get),
    };
    let write = target.change(if_match, |access| GroupCommand::UpdateMember {
        individual: member.clone(),
        change,
        access,
    });
    let answer = resource::commit(&call, write).await?;
    Ok(member_answer(&call, answer, &member, !ends).await)
}

/// Merge the source group into the target (OpenSPP's `MergeGroupRequest`): the source's current
/// members end there and join the target from today (a source head joins as `member` when the
/// target has a head, unless `roleMapping` says otherwise; members already in the target stay as
/// they are), and the source is deactivated. Both groups change in one transaction, recorded
/// with `collection_method: merge`.
#[utoipa::path(post, path = "/Group/$merge", tag = "Group",
    params(
        ("If-Match" = Option<String>, Header, description = "The target group's `ETag` the merge is based on (a versioned `sourceGroup` reference does the same for the source)"),
    ),
    request_body = MergeGroups,
    responses(
        (status = 200, body = crate::api::group::GroupResource, description = "The target group as it now is"),
        (status = 400, body = OperationOutcome, description = "Source and target are the same group"),
        (status = 403, body = OperationOutcome, description = "The client acts under consent"),
        (status = 404, body = OperationOutcome, description = "No such group (names `sourceGroup` or `targetGroup`)"),
        (status = 409, body = OperationOutcome, description = "The source or the target is inactive"),
        (status = 412, body = OperationOutcome, description = "A version named is stale"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:update"])))]
async fn merge(
    call: Call,
    if_match: IfMatch,
    body: Result<ApiJson<MergeGroups>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Update, RESOURCE, Interaction::UPDATE)?;
    // A merge moves people the caller may not see into a household it may: under consent it
    // would widen a household consent to them without theirs. It is the controller's act.
    call.principal.require_controller("merge groups")?;
    let ApiJson(body) = body?;
    let (source_id, source_version) = versioned_group(&body.source_group, "sourceGroup")?;
    let (target_id, target_version) = versioned_group(&body.target_group, "targetGroup")?;
    let role_mapping = body.role_mapping.unwrap_or_default();
    if role_mapping.len() > MAX_ROLE_MAPPINGS {
        return Err(ApiError::unprocessable(
            "roleMapping",
            format!("must have at most {MAX_ROLE_MAPPINGS} entries"),
        ));
    }
    let source = Group::locate(&call, &source_id)
        .await
        .map_err(|e| e.at(Some("sourceGroup")))?;
    let target = Group::locate(&call, &target_id)
        .await
        .map_err(|e| e.at(Some("targetGroup")))?;
    if source.stream == target.stream {
        return Err(ApiError::bad_request(
            Some("targetGroup"),
            "source and target must be different groups",
        ));
    }
    let target_version = match (if_match.version()?, target_version) {
        (Some(header), Some(body)) if header != body => {
            return Err(ApiError::precondition_failed(
                "If-Match and the versioned targetGroup name different versions",
            ))
        }
        (header, body) => header.or(body),
    };
    let snapshots = execute_together(
        &call,
        &[&source.stream],
        Some("merge"),
        |states: Vec<Group>| {
            let members = states[0].active_members().cloned().collect();
            Ok(vec![
                source.write(version(source_version), |access| GroupCommand::MergeInto {
                    target: target.stream.clone(),
                    access,
                }),
                target.write(version(target_version), |access| GroupCommand::Absorb {
                    members,
                    role_mapping: role_mapping.clone(),
                    access,
                }),
            ])
        },
    )
    .await?;
    Ok(committed_answer(&call, StatusCode::OK, &snapshots[1], None).await)
}

/// Move members into a new group (OpenSPP's `SplitGroupRequest`): they end in this group and
/// join the new one from today with their roles (`newHead` as its head). The new group has this
/// one's type; registering it is the data controller's act, as `POST /Group` is.
#[utoipa::path(post, path = "/Group/{id}/$split", tag = "Group",
    params(
        ("id" = String, Path, description = "The group split: `system|value`, URL-encoded"),
        ("If-Match" = Option<String>, Header, description = "The group's `ETag` the split is based on"),
    ),
    request_body = SplitGroup,
    responses(
        (status = 201, body = crate::api::group::GroupResource, description = "The new group; `Location` names it"),
        (status = 400, body = OperationOutcome, description = "`newHead` is not one of `membersToMove`"),
        (status = 403, body = OperationOutcome, description = "The client acts under consent"),
        (status = 404, body = OperationOutcome, description = "No such group, or someone named is not a current member"),
        (status = 409, body = OperationOutcome, description = "The head would move, nobody would stay, or the new identifier is in use"),
        (status = 412, body = OperationOutcome, description = "`If-Match` is stale"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:create", "group:update"])))]
async fn split(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<SplitGroup>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    call.principal.require(SCOPE, Action::Update)?;
    call.principal.require_controller("split groups")?;
    let ApiJson(body) = body?;
    if body.new_group_identifier.is_empty() {
        return Err(ApiError::unprocessable(
            "newGroupIdentifier",
            "name at least one identifier",
        ));
    }
    let source = Group::locate(&call, &id).await?;
    let mut moving = Vec::with_capacity(body.members_to_move.len());
    for (i, member) in body.members_to_move.iter().enumerate() {
        moving.push(member_stream(&call, member, &format!("membersToMove[{i}]")).await?);
    }
    let new_head = match &body.new_head {
        None => None,
        Some(head) => Some(member_stream(&call, head, "newHead").await?),
    };
    if new_head.as_ref().is_some_and(|head| !moving.contains(head)) {
        return Err(ApiError::bad_request(
            Some("newHead"),
            "must be one of membersToMove",
        ));
    }
    let identifiers: Vec<openspp_aggregates::Identifier> = body
        .new_group_identifier
        .into_iter()
        .map(Into::into)
        .collect();
    let expected = if_match.version()?;
    let new_group = uuid::Uuid::now_v7().to_string();
    let snapshots = execute_together(&call, &[&source.stream], None, |states: Vec<Group>| {
        let group = &states[0];
        // The source holds its own identifiers: the new group cannot take one of them.
        if let Some(held) = group.live_identifiers().find(|i| identifiers.contains(i)) {
            return Err(ApiError::conflict(
                Some("newGroupIdentifier"),
                format!("identifier {} is already in use", held.key()),
            ));
        }
        let details = GroupDetails {
            identifiers: identifiers.clone(),
            active: true,
            group_type: group.group_type.clone(),
            name: group.name.as_ref().map(|name| format!("Split from {name}")),
            address: Vec::new(),
            members: Some(group.moving_members(&moving, new_head.as_deref())),
            extension: None,
        };
        Ok(vec![
            source.write(version(expected), |access| GroupCommand::SplitOff {
                members: moving.clone(),
                into: new_group.clone(),
                access,
            }),
            Write {
                stream: new_group.clone(),
                if_match: IfMatch::LATEST,
                command: GroupCommand::Register(details),
                consent: None,
                status: StatusCode::CREATED,
                known: None,
            },
        ])
    })
    .await?;
    Ok(committed_answer(
        &call,
        StatusCode::CREATED,
        &snapshots[1],
        Group::created_context(),
    )
    .await)
}

/// The group's membership changes, newest first (OpenSPP's `MembershipHistoryEntry`), from its
/// events: additions, removals (with the reason: `merged`, `split` or the one given), role
/// changes and moved start dates. Needs only `group:read`; lists only members the client may
/// read, and nothing when its grant hides the group's members.
#[utoipa::path(get, path = "/Group/{id}/membership-history", tag = "Group",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("_since" = Option<String>, Query, description = "Only changes recorded at or after this instant (ISO 8601)"),
        ("_count" = Option<i64>, Query, description = "1-500, default 100"),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = SearchResult<MembershipHistoryEntry>),
        (status = 400, body = OperationOutcome),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["group:read"])))]
async fn membership_history(
    call: Call,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<MembershipHistoryEntry>>, ApiError> {
    call.open(SCOPE, Action::Read, RESOURCE, Interaction::HISTORY)?;
    let mut params = Params::from_uri(&uri)?;
    let page = Page::new(
        params.integer("_count", 100, (1, 500))?,
        params.integer("_offset", 0, (0, i64::MAX))?,
    );
    let since = params.instant("_since")?;
    params.finish()?;
    let group = Group::locate(&call, &id).await?;
    let versions = versions::<Group>(&call.state, &group.stream).await?;
    let entries = match versions.last() {
        Some(latest) if group.grant.allows("member") => {
            let snapshot = latest.snapshot(&group.stream);
            let references = Group::context(&call, &[&snapshot]).await?;
            call.audit
                .mentioning(Group::mentioned(&references, &snapshot, &group.grant));
            let versions: Vec<_> = versions.into_iter().map(|v| (v.state, v.event)).collect();
            MembershipHistoryEntry::timeline(&versions, &references, &call.state.vocabulary)
        }
        _ => Vec::new(),
    };
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| since.is_none_or(|since| e.recorded >= since))
        .collect();
    let total = entries.len() as i64;
    let rows = entries
        .into_iter()
        .skip(page.offset as usize)
        .take(page.count as usize)
        .collect();
    Ok(Json(envelope(&uri, page, Found::exact(total, rows), |e| e)))
}

/// The precondition of a write on a version, if one was named.
fn version(expected: Option<u64>) -> IfMatch {
    expected.map_or(IfMatch::LATEST, IfMatch::at)
}
