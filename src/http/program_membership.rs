//! `/ProgramMembership` (CONTRACT §4): enrolment and its state machine. Reads and writes go
//! through the consent filter (on the beneficiary, for `program_membership`) and the client's
//! allowed programs; whatever the caller may not see answers as unknown.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::NaiveDate;
use openspp_aggregates::program::TargetType;
use openspp_aggregates::{
    Identifier as DomainIdentifier, MembershipCommand, MembershipStatus, ProgramFacts,
    ProgramMembership,
};
use openspp_projections::membership::{self as view, MembershipQuery, MembershipRow};
use openspp_projections::program as programs;
use openspp_projections::search::SortKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::{find_visible, grants_for, identity_only, Grant};
use crate::http::command::{execute, IfMatch};
use crate::http::context::Provenance;
use crate::http::history::{self, Version};
use crate::http::json::ApiJson;
use crate::http::program as program_http;
use crate::http::reference::path_segment;
use crate::http::reference::{parse_identifier, parse_reference, resolve};
use crate::http::resource::{fresh_or_committed, reply};
use crate::http::schema::{
    CodeableConcept, Identifier, Meta, OperationOutcome, Reference, SearchResult,
};
use crate::http::search::{envelope, Params};
use crate::store::verify::Verification;
use crate::vocabulary::Vocabularies;

const RESOURCE: &str = "ProgramMembership";
const SCOPE: &str = "program_membership";
/// The system of identifiers the server mints for memberships enrolled without one.
pub const MINTED_SYSTEM: &str = "urn:openspp:program-membership";
/// Namespace of the membership stream ids derived from (program, beneficiary).
const STREAM_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f70_656e_7370_702d_6d65_6d62_6572_7331);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, enrol))
        .routes(routes!(read, change))
        .routes(routes!(membership_history))
        .routes(routes!(membership_vread))
        .routes(routes!(membership_verify))
}

/// A beneficiary's membership of a program (OpenSPP `schemas/program_membership.py`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MembershipResource {
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// Minted in `urn:openspp:program-membership` when none is given on enrolment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// `Program/{system}|{value}`.
    pub program: Reference,
    /// `Individual/…` or `Group/…`, as the program's target type says.
    pub beneficiary: Reference,
    /// `draft`, `enrolled`, `paused`, `exited`, `not_eligible` or `duplicated`.
    #[serde(default = "draft")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn draft() -> String {
    "draft".to_owned()
}

fn parse_status(text: &str) -> Result<MembershipStatus, ApiError> {
    MembershipStatus::parse(text).ok_or_else(|| {
        ApiError::unprocessable(
            "status",
            "must be draft, enrolled, paused, exited, not_eligible or duplicated",
        )
    })
}

fn exit_reason(
    concept: Option<CodeableConcept>,
) -> Result<Option<openspp_aggregates::Code>, ApiError> {
    concept.map(|c| c.single("exitReason")).transpose()
}

fn render(
    row: MembershipRow,
    references: &HashMap<String, String>,
    vocabulary: &Vocabularies,
) -> MembershipResource {
    let state = row.state;
    let kind = match state.beneficiary_type {
        Some(TargetType::Group) => "Group",
        _ => "Individual",
    };
    let reference = |prefix: &str, stream: &str| Reference {
        reference: format!(
            "{prefix}/{}",
            references.get(stream).cloned().unwrap_or_default()
        ),
        display: None,
    };
    MembershipResource {
        resource_type: resource_type(),
        identifier: state.identifier.iter().map(Into::into).collect(),
        program: reference("Program", &state.program),
        beneficiary: reference(kind, &state.beneficiary),
        status: state.status.map_or("draft", |s| s.as_str()).to_owned(),
        enrollment_date: state.enrollment_date,
        exit_date: state.exit_date,
        exit_reason: state
            .exit_reason
            .as_ref()
            .map(|c| CodeableConcept::from_codes([c], vocabulary)),
        meta: Some(Meta::new(row.version, row.last_updated, row.source)),
    }
}

/// Whether the caller's allowed programs (if any) include this program stream.
async fn program_allowed(
    state: &AppState,
    principal: &Principal,
    program: &str,
) -> Result<bool, ApiError> {
    Ok(principal.allowed_programs.is_empty()
        || programs::is_among(&state.pool, program, &principal.allowed_programs).await?)
}

/// The membership `id` and what the caller may see of it; anything else is the one 404.
async fn find(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(MembershipRow, Grant, openspp_aggregates::Access), ApiError> {
    let identifier = parse_identifier(id, "id")?;
    let stream = resolve(&state.pool, RESOURCE, &identifier).await?;
    let row = match &stream {
        Some(stream) => view::get(&state.pool, stream).await?,
        None => None,
    };
    let beneficiary = row
        .as_ref()
        .map(|r| r.state.beneficiary.clone())
        .unwrap_or_default();
    let consents = if principal.require_consent {
        openspp_projections::consent::covering(&state.pool, std::slice::from_ref(&beneficiary))
            .await?
            .remove(&beneficiary)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let access = principal.access(consents);
    let not_found = || ApiError::not_found(RESOURCE);
    let row = row.ok_or_else(not_found)?;
    if !program_allowed(state, principal, &row.state.program).await? {
        return Err(not_found());
    }
    let grant = principal.grant(&access, SCOPE).ok_or_else(not_found)?;
    Ok((row, grant, access))
}

async fn respond(
    state: &AppState,
    row: MembershipRow,
    status: StatusCode,
    grant: Option<&Grant>,
) -> Result<Response, ApiError> {
    let references = view::references(
        &state.pool,
        &[row.state.program.clone(), row.state.beneficiary.clone()],
    )
    .await?;
    let version = row.version;
    let first = row.state.identifier.as_ref().map(|i| i.key());
    Ok(reply(
        status,
        RESOURCE,
        version,
        first,
        render(row, &references, &state.vocabulary),
        grant,
    ))
}

/// Enrol a beneficiary in a program: one membership per beneficiary and program.
#[utoipa::path(post, path = "/ProgramMembership", tag = "ProgramMembership", request_body = MembershipResource,
    responses(
        (status = 201, body = MembershipResource, description = "`Location` names the membership's identifier"),
        (status = 409, body = OperationOutcome, description = "Already a member, or the program is not active"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["program_membership:create"])))]
async fn enrol(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    body: Result<ApiJson<MembershipResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Create)?;
    let ApiJson(body) = body?;
    if body.resource_type != RESOURCE {
        return Err(ApiError::unprocessable("type", "must be ProgramMembership"));
    }
    let program_key = parse_reference(&body.program.reference, "Program", "program")?;
    let program_stream = program_http::find(&state, &principal, &program_key.key())
        .await
        .map_err(|_| ApiError::unprocessable("program", "no such Program"))?;
    let program = programs::get(&state.pool, &program_stream)
        .await?
        .ok_or_else(|| ApiError::unprocessable("program", "no such Program"))?;
    let (kind, kind_name) = match body.beneficiary.reference.split_once('/') {
        Some(("Individual", _)) => (TargetType::Individual, "Individual"),
        Some(("Group", _)) => (TargetType::Group, "Group"),
        _ => {
            return Err(ApiError::unprocessable(
                "beneficiary",
                "must reference Individual/… or Group/…",
            ))
        }
    };
    let beneficiary_key = parse_reference(&body.beneficiary.reference, kind_name, "beneficiary")?;
    let scope = if kind == TargetType::Individual {
        "individual"
    } else {
        "group"
    };
    let visible = find_visible(
        &state,
        &principal,
        &provenance,
        kind_name,
        scope,
        &beneficiary_key.key(),
    )
    .await
    .map_err(|_| ApiError::unprocessable("beneficiary", format!("no such {kind_name}")))?;
    let identifier: DomainIdentifier = match body.identifier.into_iter().next() {
        Some(given) => given.into(),
        None => DomainIdentifier {
            system: MINTED_SYSTEM.to_owned(),
            value: uuid::Uuid::new_v4().to_string(),
        },
    };
    let status = parse_status(&body.status)?;
    let stream = uuid::Uuid::new_v5(
        &STREAM_NAMESPACE,
        format!("{program_stream}/{}", visible.stream).as_bytes(),
    )
    .to_string();
    let consent_id = principal
        .grant(&visible.access, SCOPE)
        .and_then(|g| g.consent_id());
    let metadata = provenance
        .metadata(&principal, consent_id)
        .relied_on_for(&visible.stream);
    let committed = execute::<ProgramMembership>(
        &state,
        &stream,
        IfMatch(None),
        MembershipCommand::Enrol {
            program: ProgramFacts {
                stream: program_stream,
                target_type: program.state.target_type.unwrap_or(TargetType::Group),
                active: program.state.is_active(),
            },
            beneficiary: visible.stream,
            beneficiary_type: kind,
            identifier,
            status,
            enrollment_date: body.enrollment_date,
            access: visible.access,
        },
        &metadata,
    )
    .await
    .map_err(|e| {
        // A racing enrolment that lost finds the membership already there.
        if e.status == StatusCode::NOT_FOUND {
            ApiError::unprocessable("beneficiary", "no such beneficiary")
        } else {
            e
        }
    })?;
    let row = fresh_or_committed(&stream, view::get(&state.pool, &stream).await?, committed);
    let grants = grants_for(
        &state,
        &principal,
        SCOPE,
        std::slice::from_ref(&row.state.beneficiary),
    )
    .await?;
    let grant = grants.get(&row.state.beneficiary).cloned();
    state
        .access_log
        .record(
            AccessEntry::new(&principal, provenance.request_id(), RESOURCE, "write").returned(
                format!(
                    "{RESOURCE}/{}",
                    row.state
                        .identifier
                        .as_ref()
                        .map(|i| i.key())
                        .unwrap_or_default()
                ),
                grant.as_ref(),
            ),
        )
        .await;
    respond(&state, row, StatusCode::CREATED, grant.as_ref()).await
}

/// Read a membership by its identifier; with `_at`, as it was at that instant.
#[utoipa::path(get, path = "/ProgramMembership/{id}", tag = "ProgramMembership",
    params(
        ("id" = String, Path, description = "`system|value`, URL-encoded"),
        ("_at" = Option<String>, Query, description = "An RFC 3339 instant"),
    ),
    responses((status = 200, body = MembershipResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["program_membership:read"])))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let at = Params::at_only(&uri)?;
    let (row, grant, _) = find(&state, &principal, &id).await?;
    state
        .access_log
        .one(
            &principal,
            provenance.request_id(),
            RESOURCE,
            "read",
            Some(id.clone()),
            Some(&grant),
        )
        .await;
    if let Some(at) = at {
        let (versions, references) = membership_versions(&state, &row.aggregate_id).await?;
        let version = history::at_instant(versions, &at, RESOURCE)?;
        let resource = render_version(&state, &version, &references);
        return Ok(reply(
            StatusCode::OK,
            RESOURCE,
            version.number(),
            None,
            resource,
            Some(&grant),
        ));
    }
    respond(&state, row, StatusCode::OK, Some(&grant)).await
}

/// Change a membership's status along the state machine (impossible moves are 409, naming the
/// allowed ones). `program` and `beneficiary`, if sent, must be the membership's own.
#[utoipa::path(put, path = "/ProgramMembership/{id}", tag = "ProgramMembership", request_body = MembershipResource,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = MembershipResource), (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Impossible transition"),
        (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["program_membership:update"])))]
async fn change(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<MembershipResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let ApiJson(body) = body?;
    let (row, grant, access) = find(&state, &principal, &id).await?;
    let references = view::references(
        &state.pool,
        &[row.state.program.clone(), row.state.beneficiary.clone()],
    )
    .await?;
    let current = render(row.clone(), &references, &state.vocabulary);
    if body.program.reference != current.program.reference {
        return Err(ApiError::unprocessable(
            "program",
            "a membership cannot move to another program",
        ));
    }
    if body.beneficiary.reference != current.beneficiary.reference {
        return Err(ApiError::unprocessable(
            "beneficiary",
            "a membership cannot move to another beneficiary",
        ));
    }
    let stream = row.aggregate_id.clone();
    let committed = execute::<ProgramMembership>(
        &state,
        &stream,
        if_match,
        MembershipCommand::ChangeStatus {
            status: parse_status(&body.status)?,
            exit_date: body.exit_date,
            exit_reason: exit_reason(body.exit_reason)?,
            access,
        },
        &provenance
            .metadata(&principal, grant.consent_id())
            .relied_on_for(&row.state.beneficiary),
    )
    .await?;
    let row = fresh_or_committed(&stream, view::get(&state.pool, &stream).await?, committed);
    state
        .access_log
        .one(
            &principal,
            provenance.request_id(),
            RESOURCE,
            "write",
            Some(id.clone()),
            Some(&grant),
        )
        .await;
    respond(&state, row, StatusCode::OK, Some(&grant)).await
}

/// Search memberships by program, beneficiary, status and `_lastUpdated`.
#[utoipa::path(get, path = "/ProgramMembership", tag = "ProgramMembership",
    params(
        ("program" = Option<String>, Query, description = "`Program/{system}|{value}` or `{system}|{value}`"),
        ("beneficiary" = Option<String>, Query, description = "`Individual/…` or `Group/…`"),
        ("status" = Option<String>, Query), ("_lastUpdated" = Option<String>, Query),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query), ("_sort" = Option<String>, Query),
    ),
    responses((status = 200, body = SearchResult<MembershipResource>), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["program_membership:search"])))]
async fn search(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<serde_json::Value>>, ApiError> {
    principal.require(SCOPE, Action::Search)?;
    let mut params = Params::from_uri(&uri)?;
    let page = params.page()?;
    let program = match params.one("program")? {
        None => None,
        Some(text) => {
            let key = text.strip_prefix("Program/").unwrap_or(&text);
            let identifier = parse_identifier(key, "program")?;
            // An unknown program matches nothing, as does a program outside the allowed ones.
            Some(
                resolve(&state.pool, "Program", &identifier)
                    .await?
                    .unwrap_or_default(),
            )
        }
    };
    let beneficiary = match params.one("beneficiary")? {
        None => None,
        Some(text) => {
            let (kind, key) = text.split_once('/').ok_or_else(|| {
                ApiError::bad_request(Some("beneficiary"), "must be Individual/… or Group/…")
            })?;
            let identifier = parse_identifier(key, "beneficiary")?;
            Some(
                resolve(&state.pool, kind, &identifier)
                    .await?
                    .unwrap_or_default(),
            )
        }
    };
    let query = MembershipQuery {
        program,
        beneficiary,
        status: params.one("status")?,
        last_updated: params.instants("_lastUpdated")?,
        allowed_programs: (!principal.allowed_programs.is_empty())
            .then(|| principal.allowed_programs.clone()),
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
    let found = view::search(&state.pool, &query, page).await?;
    let mut streams: Vec<String> = Vec::new();
    for row in &found.rows {
        streams.push(row.state.program.clone());
        streams.push(row.state.beneficiary.clone());
    }
    let references = view::references(&state.pool, &streams).await?;
    let beneficiaries: Vec<String> = found
        .rows
        .iter()
        .map(|r| r.state.beneficiary.clone())
        .collect();
    let grants = grants_for(&state, &principal, SCOPE, &beneficiaries).await?;
    let mut entry = AccessEntry::new(&principal, provenance.request_id(), RESOURCE, "search");
    for row in &found.rows {
        if let Some(identifier) = &row.state.identifier {
            entry = entry.returned(
                format!("{RESOURCE}/{}", identifier.key()),
                grants.get(&row.state.beneficiary),
            );
        }
    }
    state.access_log.record(entry).await;
    Ok(Json(envelope(&uri, page, found, |row| {
        let grant = grants.get(&row.state.beneficiary);
        let resource =
            serde_json::to_value(render(row, &references, &state.vocabulary)).unwrap_or_default();
        match grant {
            Some(grant) => grant.filter(resource),
            None => identity_only(resource),
        }
    })))
}

/// The membership's versions, with the references its rendering needs.
async fn membership_versions(
    state: &AppState,
    stream: &str,
) -> Result<(Vec<Version<ProgramMembership>>, HashMap<String, String>), ApiError> {
    let versions = history::versions::<ProgramMembership>(state, stream).await?;
    let streams: Vec<String> = versions
        .last()
        .map(|v| vec![v.state.program.clone(), v.state.beneficiary.clone()])
        .unwrap_or_default();
    Ok((versions, view::references(&state.pool, &streams).await?))
}

fn render_version(
    state: &AppState,
    version: &Version<ProgramMembership>,
    references: &HashMap<String, String>,
) -> MembershipResource {
    let row = openspp_projections::view::ViewRow {
        aggregate_id: String::new(),
        version: version.number(),
        state: version.state.clone(),
        last_updated: version.event.recorded_at,
        source: version.source(),
    };
    render(row, references, &state.vocabulary)
}

/// The membership's versions (every status change), newest first, with provenance.
#[utoipa::path(get, path = "/ProgramMembership/{id}/_history", tag = "ProgramMembership",
    params(("id" = String, Path), ("_since" = Option<String>, Query), ("_at" = Option<String>, Query),
           ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query)),
    responses((status = 200, description = "FHIR Bundle of type history"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn membership_history(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require("audit", Action::Read)?;
    let (row, grant, _) = find(&state, &principal, &id).await?;
    state
        .access_log
        .one(
            &principal,
            provenance.request_id(),
            RESOURCE,
            "history",
            Some(id.clone()),
            Some(&grant),
        )
        .await;
    let (versions, references) = membership_versions(&state, &row.aggregate_id).await?;
    let path = format!("/api/v2/spp/{RESOURCE}/{}", path_segment(&id));
    Ok(Json(history::bundle(&uri, &path, &versions, |v| {
        grant.filter(
            serde_json::to_value(render_version(&state, v, &references)).unwrap_or_default(),
        )
    })?))
}

/// The membership exactly as it was at one version.
#[utoipa::path(get, path = "/ProgramMembership/{id}/_history/{versionId}", tag = "ProgramMembership",
    params(("id" = String, Path), ("versionId" = String, Path)),
    responses((status = 200, body = MembershipResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn membership_vread(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require("audit", Action::Read)?;
    let (row, grant, _) = find(&state, &principal, &id).await?;
    let (versions, references) = membership_versions(&state, &row.aggregate_id).await?;
    let version = history::at_version(versions, &version, RESOURCE)?;
    let resource = render_version(&state, &version, &references);
    Ok(reply(
        StatusCode::OK,
        RESOURCE,
        version.number(),
        None,
        resource,
        Some(&grant),
    ))
}

/// Recomputes the membership's hash chain.
#[utoipa::path(get, path = "/ProgramMembership/{id}/_history/$verify", tag = "ProgramMembership",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{valid, versions, first_broken_version?}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn membership_verify(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    principal.require("audit", Action::Read)?;
    let (row, _, _) = find(&state, &principal, &id).await?;
    Ok(Json(
        history::verify_stream(&state, RESOURCE, &row.aggregate_id).await?,
    ))
}
