//! `/ProgramMembership` (CONTRACT §4): enrolment and its state machine. Reads and writes go
//! through the consent filter (on the beneficiary, for `program_membership`: a consent for the
//! person's record is not one for their memberships) and the client's allowed programs;
//! whatever the caller may not see answers as unknown.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use openspp_aggregates::program::{is_namespace_uri, TargetType};
use openspp_aggregates::program_membership::{ExitReason, IDENTIFIER_SYSTEM};
use openspp_aggregates::{
    Date, Identifier as DomainIdentifier, MembershipCommand, MembershipStatus, ProgramFacts,
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
    /// At most one, in `urn:openspp:program-membership`: chosen by the client, or minted when
    /// none is given on enrolment. It never changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1)]
    pub identifier: Vec<Identifier>,
    /// `Program/{system}|{value}`.
    pub program: Reference,
    /// `Individual/…` or `Group/…`, as the program's target type says.
    pub beneficiary: Reference,
    /// `draft`, `enrolled`, `paused`, `exited`, `not_eligible` or `duplicated`.
    #[serde(default = "draft")]
    pub status: String,
    /// Set by the first enrolment (today unless given) and never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub enrollment_date: Option<Date>,
    /// Given with the change to `exited`, not before the enrolment date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub exit_date: Option<Date>,
    /// Given with the change to `exited`: a code of `urn:openspp:vocab:exit-reason`, a text,
    /// or both.
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

const STATUSES: &str = "must be draft, enrolled, paused, exited, not_eligible or duplicated";

fn parse_status(text: &str) -> Result<MembershipStatus, ApiError> {
    MembershipStatus::parse(text).ok_or_else(|| ApiError::unprocessable("status", STATUSES))
}

fn exit_reason(concept: Option<CodeableConcept>) -> Result<Option<ExitReason>, ApiError> {
    concept
        .map(|concept| match concept.codes().as_slice() {
            [_, _, ..] => Err(ApiError::unprocessable(
                "exitReason",
                "must have at most one coding",
            )),
            codes => Ok(ExitReason {
                code: codes.first().cloned(),
                text: concept.text,
            }),
        })
        .transpose()
}

fn unknown_beneficiary(kind_name: &str) -> ApiError {
    ApiError::unprocessable("beneficiary", format!("no such {kind_name}"))
}

/// `Individual/…` or `Group/…`: the kind of beneficiary, its resource name and the identifier.
fn split_beneficiary(reference: &str) -> Option<(TargetType, &'static str, &str)> {
    match reference.split_once('/')? {
        ("Individual", rest) => Some((TargetType::Individual, "Individual", rest)),
        ("Group", rest) => Some((TargetType::Group, "Group", rest)),
        _ => None,
    }
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
        enrollment_date: state.enrollment_date.map(Date::stored),
        exit_date: state.exit_date.map(Date::stored),
        exit_reason: (state.exit_reason.is_some() || state.exit_reason_text.is_some()).then(|| {
            CodeableConcept {
                text: state.exit_reason_text.clone(),
                ..CodeableConcept::from_codes(&state.exit_reason, vocabulary)
            }
        }),
        meta: Some(Meta::new(row.version, row.last_updated, row.source)),
    }
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
    if !program_http::allowed(principal, &row.state.program) {
        return Err(not_found());
    }
    let grant = principal.grant(&access, SCOPE).ok_or_else(not_found)?;
    Ok((row, grant, access))
}

/// The beneficiary a rendering names, as `(reference, stream)` for the access log.
fn mentioned_beneficiary(
    membership: &ProgramMembership,
    references: &HashMap<String, String>,
    grant: Option<&Grant>,
) -> Vec<(String, String)> {
    let kind = match membership.beneficiary_type {
        Some(TargetType::Group) => "Group",
        _ => "Individual",
    };
    references
        .get(&membership.beneficiary)
        .filter(|_| grant.is_some_and(|g| g.allows("beneficiary")))
        .map(|key| (format!("{kind}/{key}"), membership.beneficiary.clone()))
        .into_iter()
        .collect()
}

/// The access-log entry of a request about membership `id`, before its outcome is known.
fn access_entry(
    principal: &Principal,
    provenance: &Provenance,
    interaction: &'static str,
    id: &str,
    stream: &str,
    grant: &Grant,
) -> AccessEntry {
    AccessEntry::new(principal, provenance.request_id(), RESOURCE, interaction).returned(
        format!("{RESOURCE}/{id}"),
        Some(stream),
        Some(grant),
    )
}

/// Renders one membership as reads and writes answer; `log`, if given, is recorded with the
/// beneficiary the answer names.
async fn respond(
    state: &AppState,
    row: MembershipRow,
    status: StatusCode,
    grant: Option<&Grant>,
    log: Option<AccessEntry>,
) -> Result<Response, ApiError> {
    let references = view::references(
        &state.pool,
        &[row.state.program.clone(), row.state.beneficiary.clone()],
    )
    .await?;
    if let Some(log) = log {
        let entry = log.mentioning(mentioned_beneficiary(&row.state, &references, grant));
        state.access_log.record(entry).await;
    }
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
    if body.identifier.len() > 1 {
        return Err(ApiError::unprocessable(
            "identifier[1]",
            "a membership has one identifier",
        ));
    }
    if body.exit_date.is_some() || body.exit_reason.is_some() {
        let field = if body.exit_date.is_some() {
            "exitDate"
        } else {
            "exitReason"
        };
        return Err(ApiError::unprocessable(
            field,
            "a new membership has not exited; record the exit with a change to exited",
        ));
    }
    let program_key = parse_reference(&body.program.reference, "Program", "program")?;
    let program_stream = program_http::find(&state, &principal, &program_key.key())
        .await
        .map_err(|_| ApiError::unprocessable("program", "no such Program"))?;
    let program = programs::get(&state.pool, &program_stream)
        .await?
        .ok_or_else(|| ApiError::unprocessable("program", "no such Program"))?;
    let (kind, kind_name, _) = split_beneficiary(&body.beneficiary.reference).ok_or_else(|| {
        ApiError::unprocessable("beneficiary", "must reference Individual/… or Group/…")
    })?;
    let beneficiary_key = parse_reference(&body.beneficiary.reference, kind_name, "beneficiary")?;
    // What enrolment needs is a consent for memberships, not for the person's record.
    let visible = find_visible(
        &state,
        &principal,
        &provenance,
        kind_name,
        SCOPE,
        &beneficiary_key.key(),
    )
    .await
    .map_err(|_| unknown_beneficiary(kind_name))?;
    let identifier: DomainIdentifier = match body.identifier.into_iter().next() {
        Some(given) => given.into(),
        None => DomainIdentifier {
            system: IDENTIFIER_SYSTEM.to_owned(),
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
        IfMatch::LATEST,
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
            enrollment_date: body.enrollment_date.map(Date::get),
            access: visible.access,
        },
        &metadata,
    )
    .await
    .map_err(|e| {
        // The aggregate's own consent check refused (or the consent was withdrawn meanwhile):
        // the same answer as for a beneficiary that does not exist.
        if e.status == StatusCode::NOT_FOUND {
            unknown_beneficiary(kind_name)
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
    let log = AccessEntry::new(&principal, provenance.request_id(), RESOURCE, "write").returned(
        format!(
            "{RESOURCE}/{}",
            row.state
                .identifier
                .as_ref()
                .map(|i| i.key())
                .unwrap_or_default()
        ),
        Some(&row.aggregate_id),
        grant.as_ref(),
    );
    respond(&state, row, StatusCode::CREATED, grant.as_ref(), Some(log)).await
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
    let log = access_entry(
        &principal,
        &provenance,
        "read",
        &id,
        &row.aggregate_id,
        &grant,
    );
    if let Some(at) = at {
        return past(&state, log, &row, &grant, |versions| {
            history::at_instant(versions, &at, RESOURCE)
        })
        .await;
    }
    respond(&state, row, StatusCode::OK, Some(&grant), Some(log)).await
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
    check_unmoved(&state, &row, &body).await?;
    let stream = row.aggregate_id.clone();
    let log = access_entry(&principal, &provenance, "write", &id, &stream, &grant);
    let executed = execute::<ProgramMembership>(
        &state,
        &stream,
        if_match,
        MembershipCommand::ChangeStatus {
            status: parse_status(&body.status)?,
            enrollment_date: body.enrollment_date.map(Date::get),
            exit_date: body.exit_date.map(Date::get),
            exit_reason: exit_reason(body.exit_reason)?,
            access,
        },
        &provenance
            .metadata(&principal, grant.consent_id())
            .relied_on_for(&row.state.beneficiary),
    )
    .await;
    let committed = match executed {
        Ok(committed) => committed,
        Err(error) => {
            // A refused change (an impossible transition, a stale version) is an access too.
            state
                .access_log
                .record(log.outcome(error.status.as_u16()))
                .await;
            return Err(error);
        }
    };
    let row = fresh_or_committed(&stream, view::get(&state.pool, &stream).await?, committed);
    respond(&state, row, StatusCode::OK, Some(&grant), Some(log)).await
}

/// Refuses a change that names another identifier, program or beneficiary than the
/// membership's own. References are compared by what they resolve to, so any identifier of
/// the program or the beneficiary (the name alias, `%23` for `#`) names it.
async fn check_unmoved(
    state: &AppState,
    row: &MembershipRow,
    body: &MembershipResource,
) -> Result<(), ApiError> {
    let own = row.state.identifier.as_ref();
    let same_identifier = match body.identifier.as_slice() {
        [] => true,
        [given] => own == Some(&DomainIdentifier::from(given.clone())),
        _ => false,
    };
    if !same_identifier {
        return Err(ApiError::unprocessable(
            "identifier",
            "a membership's identifier never changes",
        ));
    }
    let program = parse_reference(&body.program.reference, "Program", "program")?;
    if program_http::resolve_program(&state.pool, program)
        .await?
        .as_ref()
        != Some(&row.state.program)
    {
        return Err(ApiError::unprocessable(
            "program",
            "a membership cannot move to another program",
        ));
    }
    let moved = ApiError::unprocessable(
        "beneficiary",
        "a membership cannot move to another beneficiary",
    );
    let (kind, kind_name, _) =
        split_beneficiary(&body.beneficiary.reference).ok_or_else(|| moved.clone())?;
    let beneficiary = parse_reference(&body.beneficiary.reference, kind_name, "beneficiary")?;
    if Some(kind) != row.state.beneficiary_type
        || resolve(&state.pool, kind_name, &beneficiary)
            .await?
            .as_ref()
            != Some(&row.state.beneficiary)
    {
        return Err(moved);
    }
    Ok(())
}

/// Search memberships by program, beneficiary, status and `_lastUpdated`. A malformed value
/// is a 400 naming the parameter, never an empty result.
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
            if !is_namespace_uri(&identifier.system) {
                return Err(ApiError::bad_request(
                    Some("program"),
                    "must be Program/{system}|{value} or {system}|{value}",
                ));
            }
            // An unknown program matches nothing, as does a program outside the allowed ones.
            Some(
                program_http::resolve_program(&state.pool, identifier)
                    .await?
                    .unwrap_or_default(),
            )
        }
    };
    let beneficiary = match params.one("beneficiary")? {
        None => None,
        Some(text) => {
            let (_, kind_name, key) = split_beneficiary(&text).ok_or_else(|| {
                ApiError::bad_request(
                    Some("beneficiary"),
                    "must be Individual/{system}|{value} or Group/{system}|{value}",
                )
            })?;
            let identifier = parse_identifier(key, "beneficiary")?;
            Some(
                resolve(&state.pool, kind_name, &identifier)
                    .await?
                    .unwrap_or_default(),
            )
        }
    };
    let status = params.one("status")?;
    if status
        .as_deref()
        .is_some_and(|s| MembershipStatus::parse(s).is_none())
    {
        return Err(ApiError::bad_request(Some("status"), STATUSES));
    }
    let query = MembershipQuery {
        program,
        beneficiary,
        status,
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
        let grant = grants.get(&row.state.beneficiary);
        if let Some(identifier) = &row.state.identifier {
            entry = entry.returned(
                format!("{RESOURCE}/{}", identifier.key()),
                Some(&row.aggregate_id),
                grant,
            );
        }
        entry = entry.mentioning(mentioned_beneficiary(&row.state, &references, grant));
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
    let log = access_entry(
        &principal,
        &provenance,
        "history",
        &id,
        &row.aggregate_id,
        &grant,
    );
    let (versions, references) = membership_versions(&state, &row.aggregate_id).await?;
    let path = format!("/api/v2/spp/{RESOURCE}/{}", path_segment(&id));
    let result = history::bundle(&uri, &path, &versions, Some(&grant), |v| {
        serde_json::to_value(render_version(&state, v, &references)).unwrap_or_default()
    });
    let log = log
        .mentioning(mentioned_beneficiary(&row.state, &references, Some(&grant)))
        .outcome_of(&result);
    state.access_log.record(log).await;
    Ok(Json(result?))
}

/// The membership exactly as it was at one version.
#[utoipa::path(get, path = "/ProgramMembership/{id}/_history/{versionId}", tag = "ProgramMembership",
    params(("id" = String, Path), ("versionId" = String, Path)),
    responses((status = 200, body = MembershipResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn membership_vread(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require("audit", Action::Read)?;
    let (row, grant, _) = find(&state, &principal, &id).await?;
    let log = access_entry(
        &principal,
        &provenance,
        "vread",
        &id,
        &row.aggregate_id,
        &grant,
    );
    past(&state, log, &row, &grant, |versions| {
        history::at_version(versions, &version, RESOURCE)
    })
    .await
}

/// The past version `pick` chooses, answered as a read answered then; `log` is recorded with
/// the beneficiary named and the outcome the request really has.
async fn past(
    state: &AppState,
    log: AccessEntry,
    row: &MembershipRow,
    grant: &Grant,
    pick: impl FnOnce(Vec<Version<ProgramMembership>>) -> Result<Version<ProgramMembership>, ApiError>,
) -> Result<Response, ApiError> {
    let (versions, references) = membership_versions(state, &row.aggregate_id).await?;
    let result = pick(versions).map(|version| {
        let resource = render_version(state, &version, &references);
        reply(
            StatusCode::OK,
            RESOURCE,
            version.number(),
            None,
            resource,
            Some(grant),
        )
    });
    let log = log
        .mentioning(mentioned_beneficiary(&row.state, &references, Some(grant)))
        .outcome_of(&result);
    state.access_log.record(log).await;
    result
}

/// Recomputes the membership's hash chain.
#[utoipa::path(get, path = "/ProgramMembership/{id}/_history/$verify", tag = "ProgramMembership",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{valid, versions, first_broken_version?}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn membership_verify(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    principal.require("audit", Action::Read)?;
    let (row, grant, _) = find(&state, &principal, &id).await?;
    let result = history::verify_stream(&state, RESOURCE, &row.aggregate_id).await;
    let log = access_entry(
        &principal,
        &provenance,
        "verify",
        &id,
        &row.aggregate_id,
        &grant,
    );
    state.access_log.record(log.outcome_of(&result)).await;
    Ok(Json(result?))
}
