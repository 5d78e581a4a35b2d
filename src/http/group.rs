//! `/Group`: households and other groups, and their members (CONTRACT §4).

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::NaiveDate;
use openspp_aggregates::{Group, GroupCommand, GroupDetails, MemberSpec};
use openspp_projections::consent;
use openspp_projections::group::{self as view, GroupQuery, GroupRow};
use openspp_projections::individual::primary_identifiers;
use openspp_projections::search::SortKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::{find_visible, grants_for, identity_only, Grant, Stated};
use crate::http::command::IfMatch;
use crate::http::context::Provenance;
use crate::http::history::Version;
use crate::http::json::ApiJson;
use crate::http::reference::parse_reference;
use crate::http::registrant::{self, Registrant};
use crate::http::resource::{self, reply, Write};
use crate::http::schema::{
    Address, CodeableConcept, Identifier, Meta, OperationOutcome, Period, Reference, SearchResult,
};
use crate::http::search::{envelope, Params};
use crate::store::verify::Verification;
use crate::vocabulary::Vocabularies;
use openspp_projections::view::ViewRow;

const RESOURCE: &str = "Group";
const SCOPE: &str = "group";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(read, replace))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(history))
        .routes(routes!(vread))
        .routes(routes!(verify))
}

/// A household or other group of individuals (OpenSPP `schemas/group.py`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupResource {
    /// Always `Group`.
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Vec<GroupMember>>,
    /// Number of current members (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
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
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
}

/// Body of `$remove-member`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveMember {
    pub entity: Reference,
    /// Defaults to today.
    #[serde(default)]
    pub ended_date: Option<NaiveDate>,
    #[serde(default)]
    pub reason: Option<String>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn active_by_default() -> bool {
    true
}

fn household() -> String {
    "household".to_owned()
}

/// The individual's stream for a member reference. Individuals the caller may not see are as
/// unknown as those that do not exist; both are named at `field`.
async fn member_stream(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    entity: &Reference,
    field: &str,
) -> Result<String, ApiError> {
    let identifier = parse_reference(&entity.reference, "Individual", field)?;
    find_visible(
        state,
        principal,
        provenance,
        "Individual",
        "individual",
        &identifier.key(),
    )
    .await
    .map(|visible| visible.stream)
    .map_err(|_| ApiError::unprocessable(field, "no such Individual"))
}

async fn member_spec(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    member: GroupMember,
    field: &str,
) -> Result<MemberSpec, ApiError> {
    Ok(MemberSpec {
        individual: member_stream(
            state,
            principal,
            provenance,
            &member.entity,
            &format!("{field}.entity"),
        )
        .await?,
        roles: member.role.map(|r| r.codes()).unwrap_or_default(),
        start_date: member.period.and_then(|p| p.start),
    })
}

impl GroupResource {
    async fn into_details(
        self,
        state: &AppState,
        principal: &Principal,
        provenance: &Provenance,
    ) -> Result<GroupDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Group"));
        }
        let members = match self.member {
            None => None,
            Some(members) => {
                let mut specs = Vec::with_capacity(members.len());
                // A read lists ended memberships too (inactive, with an end); sending a read
                // back must not revive them, so only current entries say who is in the group.
                let current = members.into_iter().enumerate().filter(|(_, member)| {
                    !member.inactive && member.period.as_ref().and_then(|p| p.end).is_none()
                });
                for (index, member) in current {
                    specs.push(
                        member_spec(
                            state,
                            principal,
                            provenance,
                            member,
                            &format!("member[{index}]"),
                        )
                        .await?,
                    );
                }
                Some(specs)
            }
        };
        Ok(GroupDetails {
            identifiers: self.identifier.into_iter().map(Into::into).collect(),
            active: self.active,
            group_type: self.group_type,
            name: self.name,
            address: self.address.into_iter().map(Into::into).collect(),
            members,
            extension: self.extension,
        })
    }

    fn render(
        row: GroupRow,
        references: &HashMap<String, String>,
        vocabulary: &Vocabularies,
    ) -> Self {
        let state = row.state;
        let quantity = state.quantity();
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
                            period: Some(Period {
                                start: Some(m.start_date),
                                end: m.ended_date,
                            }),
                            inactive: !m.is_active(),
                        })
                    })
                    .collect(),
            ),
            quantity: Some(quantity),
            address: state.address.iter().map(Into::into).collect(),
            extension: None,
            meta: Some(Meta::new(row.version, row.last_updated, row.source)),
        }
    }
}

/// External identifiers of the members of `groups` the caller may read, in one query; members
/// without one are not listed. A consent-bound caller sees only members it could read as
/// Individuals (an ended member is no longer covered by the household's consent), just as an
/// individual's `groupMembership` lists only groups it may see.
async fn member_references<'a>(
    state: &AppState,
    principal: &Principal,
    groups: impl Iterator<Item = &'a Group>,
) -> Result<HashMap<String, String>, ApiError> {
    let ids: Vec<String> = groups
        .flat_map(|group| group.members.iter().map(|m| m.individual.clone()))
        .collect();
    let mut references = primary_identifiers(&state.pool, &ids).await?;
    if principal.require_consent {
        let readable = grants_for(state, principal, "individual", &ids).await?;
        references.retain(|individual, _| readable.contains_key(individual));
    }
    Ok(references)
}

/// The members a rendering names, as `(reference, stream)` for the access log.
fn mentioned_members<'a>(
    members: impl Iterator<Item = &'a String>,
    references: &HashMap<String, String>,
    grant: Option<&Grant>,
) -> Vec<(String, String)> {
    if !grant.is_some_and(|g| g.allows("member")) {
        return Vec::new();
    }
    members
        .filter_map(|stream| {
            let key = references.get(stream)?;
            Some((format!("Individual/{key}"), stream.clone()))
        })
        .collect()
}

/// Renders one group as every single read and write answers; a read's access-log entry
/// (`log`) is recorded with the members the answer names.
async fn respond(
    state: &AppState,
    principal: &Principal,
    row: GroupRow,
    status: StatusCode,
    grant: Option<&Grant>,
    log: Option<AccessEntry>,
) -> Result<Response, ApiError> {
    let references = member_references(state, principal, std::iter::once(&row.state)).await?;
    if let Some(log) = log {
        let members = row.state.members.iter().map(|m| &m.individual);
        let entry = log.mentioning(mentioned_members(members, &references, grant));
        state.access_log.record(entry).await;
    }
    let version = row.version;
    let first = row.state.live_identifiers().next().map(|i| i.key());
    let resource = GroupResource::render(row, &references, &state.vocabulary);
    Ok(reply(status, RESOURCE, version, first, resource, grant))
}

async fn run(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    write: Write<GroupCommand>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (row, grant) = resource::run::<Group>(
        state,
        principal,
        provenance,
        write,
        RESOURCE,
        "group_view",
        SCOPE,
    )
    .await?;
    respond(state, principal, row, status, grant.as_ref(), None).await
}

/// Search groups.
#[utoipa::path(get, path = "/Group", tag = "Group",
    params(
        ("identifier" = Option<String>, Query, description = "`system|value`"),
        ("name" = Option<String>, Query, description = "Part of the name, case-insensitive"),
        ("groupType" = Option<String>, Query),
        ("active" = Option<bool>, Query),
        ("_lastUpdated" = Option<String>, Query, description = "Instant or date with prefix; repeatable"),
        ("_count" = Option<i64>, Query, description = "1-100, default 20"),
        ("_offset" = Option<i64>, Query),
        ("_sort" = Option<String>, Query, description = "name, groupType, _lastUpdated; `-` for descending"),
    ),
    responses(
        (status = 200, body = SearchResult<GroupResource>),
        (status = 400, body = OperationOutcome),
    ),
    security(("bearer" = ["group:search"])))]
async fn search(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<serde_json::Value>>, ApiError> {
    principal.require(SCOPE, Action::Search)?;
    let mut params = Params::from_uri(&uri)?;
    let page = params.page()?;
    let query = GroupQuery {
        identifier: params.identifier()?,
        name: params.one("name")?,
        group_type: params.one("groupType")?,
        last_updated: params.instants("_lastUpdated")?,
        active: params.boolean("active")?,
        visibility: principal.visibility(),
        sort: params.sort(
            &view::SORT_COLUMNS,
            SortKey {
                column: "last_updated",
                descending: true,
            },
        )?,
    };
    params.finish()?;
    principal.may_search_on(SCOPE, &query.fields())?;
    let found = view::search(&state.pool, &query, page).await?;
    let references =
        member_references(&state, &principal, found.rows.iter().map(|r| &r.state)).await?;
    let ids: Vec<String> = found.rows.iter().map(|r| r.aggregate_id.clone()).collect();
    let grants = grants_for(&state, &principal, SCOPE, &ids).await?;
    let mut entry = AccessEntry::new(&principal, provenance.request_id(), RESOURCE, "search");
    for row in &found.rows {
        let grant = grants.get(&row.aggregate_id);
        if let Some(key) = row.state.live_identifiers().next() {
            entry = entry.returned(
                format!("{RESOURCE}/{}", key.key()),
                Some(&row.aggregate_id),
                grant,
            );
        }
        let members = row.state.members.iter().map(|m| &m.individual);
        entry = entry.mentioning(mentioned_members(members, &references, grant));
    }
    state.access_log.record(entry).await;
    Ok(Json(envelope(&uri, page, found, |row| {
        let grant = grants.get(&row.aggregate_id);
        let resource =
            serde_json::to_value(GroupResource::render(row, &references, &state.vocabulary))
                .unwrap_or_default();
        match grant {
            Some(grant) => grant.filter(resource),
            None => identity_only(resource),
        }
    })))
}

/// Register a group, optionally with its first members.
#[utoipa::path(post, path = "/Group", tag = "Group",
    request_body = GroupResource,
    responses(
        (status = 201, body = GroupResource, description = "Registered; `Location` and `ETag` set"),
        (status = 409, body = OperationOutcome),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:create"])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    body: Result<ApiJson<GroupResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Create)?;
    let ApiJson(body) = body?;
    let details = body.into_details(&state, &principal, &provenance).await?;
    let aggregate_id = uuid::Uuid::now_v7().to_string();
    let subject = details
        .identifiers
        .first()
        .map(|i| i.key())
        .unwrap_or_default();
    run(
        &state,
        &principal,
        &provenance,
        Write {
            stream: aggregate_id,
            if_match: IfMatch(None),
            command: GroupCommand::Register(details),
            consent_id: None,
            subject,
        },
        StatusCode::CREATED,
    )
    .await
}

/// Read a group by external identifier; with `_at`, as it was at that instant.
#[utoipa::path(get, path = "/Group/{id}", tag = "Group",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("_at" = Option<String>, Query, description = "An RFC 3339 instant: the group as it was then"),
    ),
    responses(
        (status = 200, body = GroupResource, description = "With `ETag`"),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["group:read"])))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    registrant::read::<Group, _, _>(
        &state,
        &principal,
        &provenance,
        &id,
        &uri,
        |row, grant, log| {
            let (state, principal) = (&state, &principal);
            async move {
                respond(
                    state,
                    principal,
                    row,
                    StatusCode::OK,
                    Some(&grant),
                    Some(log),
                )
                .await
            }
        },
    )
    .await
}

/// Replace a group's data (and, when `member` is given, its member list). Fields the client may
/// not see must be left out, and stay as they are; so do members it may not read.
#[utoipa::path(put, path = "/Group/{id}", tag = "Group",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` the change is based on"),
    ),
    request_body = GroupResource,
    responses(
        (status = 200, body = GroupResource),
        (status = 403, body = OperationOutcome, description = "The body states a field this client may not see"),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome),
        (status = 412, body = OperationOutcome),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:update"])))]
async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<Stated<GroupResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let Stated { body, fields } = body?;
    let visible = find_visible(&state, &principal, &provenance, RESOURCE, SCOPE, &id).await?;
    let details = body.into_details(&state, &principal, &provenance).await?;
    let member_consents = if principal.require_consent {
        let members = consent::current_members(&state.pool, &visible.stream).await?;
        consent::covering(&state.pool, &members).await?
    } else {
        HashMap::new()
    };
    run(
        &state,
        &principal,
        &provenance,
        Write {
            stream: visible.stream,
            if_match,
            command: GroupCommand::Replace {
                details,
                stated: fields,
                access: visible.access,
                member_consents,
            },
            consent_id: visible.grant.consent_id(),
            subject: id,
        },
        StatusCode::OK,
    )
    .await
}

/// Add an individual to the group.
#[utoipa::path(post, path = "/Group/{id}/$add-member", tag = "Group",
    params(("id" = String, Path, description = "`system|value`, URL-encoded")),
    request_body = AddMember,
    responses(
        (status = 201, body = GroupResource),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Already a member, or a second head"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:update"])))]
async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<AddMember>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let ApiJson(body) = body?;
    let visible = find_visible(&state, &principal, &provenance, RESOURCE, SCOPE, &id).await?;
    let spec = member_spec(
        &state,
        &principal,
        &provenance,
        GroupMember {
            entity: body.entity,
            role: body.role,
            period: Some(Period {
                start: body.start_date.or(body.period.and_then(|p| p.start)),
                end: None,
            }),
            inactive: false,
        },
        "member",
    )
    .await
    .map_err(|e| ApiError {
        expression: Some("entity".into()),
        ..e
    })?;
    run(
        &state,
        &principal,
        &provenance,
        Write {
            stream: visible.stream,
            if_match,
            command: GroupCommand::AddMember {
                member: spec,
                access: visible.access,
            },
            consent_id: visible.grant.consent_id(),
            subject: id,
        },
        StatusCode::CREATED,
    )
    .await
}

/// End an individual's membership of the group.
#[utoipa::path(post, path = "/Group/{id}/$remove-member", tag = "Group",
    params(("id" = String, Path, description = "`system|value`, URL-encoded")),
    request_body = RemoveMember,
    responses(
        (status = 200, body = GroupResource),
        (status = 404, body = OperationOutcome, description = "No such group, or not a member"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["group:update"])))]
async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<RemoveMember>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let ApiJson(body) = body?;
    let visible = find_visible(&state, &principal, &provenance, RESOURCE, SCOPE, &id).await?;
    let individual = member_stream(&state, &principal, &provenance, &body.entity, "entity").await?;
    run(
        &state,
        &principal,
        &provenance,
        Write {
            stream: visible.stream,
            if_match,
            command: GroupCommand::RemoveMember {
                individual,
                ended_date: body.ended_date,
                reason: body.reason,
                access: visible.access,
            },
            consent_id: visible.grant.consent_id(),
            subject: id,
        },
        StatusCode::OK,
    )
    .await
}

impl Registrant for Group {
    const RESOURCE: &'static str = RESOURCE;
    const SCOPE: &'static str = SCOPE;
    const VIEW: &'static str = "group_view";
    type Rendered = GroupResource;
    /// The external identifiers of everyone who was ever a member, as far as the caller may
    /// read them.
    type Context = HashMap<String, String>;

    fn context<'a>(
        state: &'a AppState,
        principal: &'a Principal,
        versions: &'a [Version<Self>],
    ) -> impl std::future::Future<Output = Result<Self::Context, ApiError>> + Send + 'a {
        member_references(
            state,
            principal,
            versions.last().map(|v| &v.state).into_iter(),
        )
    }

    fn mentioned(references: &HashMap<String, String>, grant: &Grant) -> Vec<(String, String)> {
        mentioned_members(references.keys(), references, Some(grant))
    }

    fn render(
        state: &AppState,
        references: &HashMap<String, String>,
        version: &Version<Self>,
    ) -> GroupResource {
        let row = ViewRow {
            aggregate_id: String::new(),
            version: version.number(),
            state: version.state.clone(),
            last_updated: version.event.recorded_at,
            source: version.source(),
        };
        GroupResource::render(row, references, &state.vocabulary)
    }
}

/// The group's versions, newest first, with what changed and who changed it.
#[utoipa::path(get, path = "/Group/{id}/_history", tag = "Group",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("_since" = Option<String>, Query), ("_at" = Option<String>, Query),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
    ),
    responses((status = 200, description = "FHIR Bundle of type history"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn history(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<serde_json::Value>, ApiError> {
    registrant::history::<Group>(&state, &principal, &provenance, &id, &uri).await
}

/// The group exactly as it was at one version.
#[utoipa::path(get, path = "/Group/{id}/_history/{versionId}", tag = "Group",
    params(("id" = String, Path), ("versionId" = String, Path)),
    responses((status = 200, body = GroupResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn vread(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    registrant::vread::<Group>(&state, &principal, &provenance, &id, &version).await
}

/// Recomputes the group's hash chain and names the first broken version, if any.
#[utoipa::path(get, path = "/Group/{id}/_history/$verify", tag = "Group",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{valid, versions, first_broken_version?}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    registrant::verify::<Group>(&state, &principal, &provenance, &id).await
}
