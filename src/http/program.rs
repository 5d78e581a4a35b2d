//! `/Program` (CONTRACT §4; **beyond OpenSPP**, programs are created and changed here by
//! operators with `program:create` / `program:update`).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use openspp_aggregates::bounds::items;
use openspp_aggregates::program::{lookup_key, TargetType};
use openspp_aggregates::{
    Identifier as DomainIdentifier, Program, ProgramCommand, ProgramDetails, ProgramStatus,
};
use openspp_projections::program::{self as view, ProgramQuery, ProgramRow};
use openspp_projections::search::SortKey;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::Grant;
use crate::http::command::{execute, IfMatch};
use crate::http::context::Provenance;
use crate::http::history::{self, Version};
use crate::http::json::ApiJson;
use crate::http::reference::path_segment;
use crate::http::reference::{parse_identifier, resolve};
use crate::http::resource::reply;
use crate::http::schema::{
    at_most, CodeableConcept, Identifier, Meta, OperationOutcome, Period, SearchResult,
};
use crate::http::search::{envelope, Params};
use crate::store::verify::Verification;
use crate::vocabulary::Vocabularies;
use openspp_projections::view::ViewRow;

pub const RESOURCE: &str = "Program";
const SCOPE: &str = "program";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(read, replace))
        .routes(routes!(history))
        .routes(routes!(vread))
        .routes(routes!(verify))
}

/// A program (OpenSPP `schemas/program.py`, with `currency` and `status` added).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProgramResource {
    #[serde(rename = "type", default = "resource_type")]
    pub resource_type: String,
    /// The operator's identifiers; `urn:openspp:program|{name-with-hyphens}` is always added.
    #[serde(default, deserialize_with = "at_most::<_, _, { items::IDENTIFIERS }>")]
    #[schema(max_items = 20)]
    pub identifier: Vec<Identifier>,
    /// True while the program is active (read only; use `status`; if sent, it must agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `urn:openspp:vocab:program-type`; `social-protection` (OpenSPP's default) when not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_type: Option<CodeableConcept>,
    /// `individual` or `group`.
    pub target_type: String,
    /// ISO 4217 currency of the program's benefits.
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility_criteria: Option<String>,
    /// `end` only on an ended program: when it ended (today if not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// `active`, `ended` or `archived`.
    #[serde(default = "active_status")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

fn resource_type() -> String {
    RESOURCE.to_owned()
}

fn active_status() -> String {
    "active".to_owned()
}

fn target_name(target: Option<TargetType>) -> &'static str {
    match target {
        Some(TargetType::Individual) => "individual",
        _ => "group",
    }
}

fn parse_target(text: &str) -> Option<TargetType> {
    match text {
        "individual" => Some(TargetType::Individual),
        "group" => Some(TargetType::Group),
        _ => None,
    }
}

fn status_name(status: Option<ProgramStatus>) -> &'static str {
    match status {
        Some(ProgramStatus::Ended) => "ended",
        Some(ProgramStatus::Archived) => "archived",
        _ => "active",
    }
}

fn parse_status(text: &str) -> Option<ProgramStatus> {
    match text {
        "active" => Some(ProgramStatus::Active),
        "ended" => Some(ProgramStatus::Ended),
        "archived" => Some(ProgramStatus::Archived),
        _ => None,
    }
}

const TARGETS: &str = "must be individual or group";
const STATUSES: &str = "must be active, ended or archived";

impl ProgramResource {
    fn into_details(self) -> Result<ProgramDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Program"));
        }
        let target_type = parse_target(&self.target_type)
            .ok_or_else(|| ApiError::unprocessable("targetType", TARGETS))?;
        let status = parse_status(&self.status)
            .ok_or_else(|| ApiError::unprocessable("status", STATUSES))?;
        if self
            .active
            .is_some_and(|active| active != (status == ProgramStatus::Active))
        {
            return Err(ApiError::unprocessable(
                "active",
                "is read only and must agree with status",
            ));
        }
        let period = self.period.unwrap_or_default();
        Ok(ProgramDetails {
            identifiers: self.identifier.into_iter().map(Into::into).collect(),
            name: self.name,
            description: self.description,
            program_type: self
                .program_type
                .map(|c| c.single("programType"))
                .transpose()?,
            target_type,
            currency: self.currency,
            eligibility_criteria: self.eligibility_criteria,
            start_date: period.start(),
            end_date: period.end(),
            status,
        })
    }

    fn render(row: ProgramRow, vocabulary: &Vocabularies) -> Self {
        let state = row.state;
        Self {
            resource_type: resource_type(),
            identifier: state.live_identifiers().map(Into::into).collect(),
            active: Some(state.is_active()),
            name: state.name.clone(),
            description: state.description.clone(),
            program_type: Some(CodeableConcept::from_codes(
                [&state.program_type()],
                vocabulary,
            )),
            target_type: target_name(state.target_type).to_owned(),
            currency: state.currency.clone(),
            eligibility_criteria: state.eligibility_criteria.clone(),
            period: (state.start_date.is_some() || state.end_date.is_some())
                .then_some(Period::stored(state.start_date, state.end_date)),
            status: status_name(state.status).to_owned(),
            meta: Some(Meta::new(row.version, row.last_updated, row.source)),
        }
    }
}

/// The program an identifier names, the name alias matched whatever its case.
pub async fn resolve_program(
    pool: &PgPool,
    identifier: DomainIdentifier,
) -> Result<Option<String>, ApiError> {
    resolve(pool, RESOURCE, &lookup_key(identifier)).await
}

/// Whether the caller may use the program `stream`: a client limited to some programs (bound
/// to the programs themselves when it was created) uses only those.
pub fn allowed(principal: &Principal, stream: &str) -> bool {
    principal.allowed_programs.is_empty() || principal.allowed_programs.iter().any(|p| p == stream)
}

/// A program the caller may see: clients limited to some programs see only those.
pub async fn find(state: &AppState, principal: &Principal, key: &str) -> Result<String, ApiError> {
    let identifier = parse_identifier(key, "id")?;
    resolve_program(&state.pool, identifier)
        .await?
        .filter(|stream| allowed(principal, stream))
        .ok_or_else(|| ApiError::not_found(RESOURCE))
}

async fn respond(state: &AppState, stream: &str, status: StatusCode) -> Result<Response, ApiError> {
    let row = view::get(&state.pool, stream)
        .await?
        .ok_or_else(|| ApiError::not_found(RESOURCE))?;
    let version = row.version;
    let first = row.state.live_identifiers().next().map(|i| i.key());
    let resource = ProgramResource::render(row, &state.vocabulary);
    Ok(crate::http::resource::reply(
        status,
        RESOURCE,
        version,
        first,
        resource,
        Some(&Grant::not_personal(SCOPE)),
    ))
}

/// Search programs (clients limited to some programs see only those).
#[utoipa::path(get, path = "/Program", tag = "Program",
    params(
        ("name" = Option<String>, Query), ("status" = Option<String>, Query),
        ("targetType" = Option<String>, Query), ("_lastUpdated" = Option<String>, Query),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query), ("_sort" = Option<String>, Query),
    ),
    responses((status = 200, body = SearchResult<ProgramResource>), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["program:search"])))]
async fn search(
    State(state): State<AppState>,
    principal: Principal,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<ProgramResource>>, ApiError> {
    principal.require(SCOPE, Action::Search)?;
    let mut params = Params::from_uri(&uri)?;
    let page = params.page()?;
    let status = params.one("status")?;
    if status.as_deref().is_some_and(|s| parse_status(s).is_none()) {
        return Err(ApiError::bad_request(Some("status"), STATUSES));
    }
    let target_type = params.one("targetType")?;
    if target_type
        .as_deref()
        .is_some_and(|t| parse_target(t).is_none())
    {
        return Err(ApiError::bad_request(Some("targetType"), TARGETS));
    }
    let query = ProgramQuery {
        name: params.one("name")?,
        status,
        target_type,
        last_updated: params.instants("_lastUpdated")?,
        allowed: (!principal.allowed_programs.is_empty())
            .then(|| principal.allowed_programs.clone()),
        sort: params.sort(
            &view::SORT_COLUMNS,
            SortKey {
                column: "name",
                descending: false,
            },
        )?,
    };
    params.finish()?;
    let found = view::search(&state.pool, &query, page).await?;
    Ok(Json(envelope(&uri, page, found, |row| {
        ProgramResource::render(row, &state.vocabulary)
    })))
}

/// Create a program (operators).
#[utoipa::path(post, path = "/Program", tag = "Program", request_body = ProgramResource,
    responses((status = 201, body = ProgramResource), (status = 409, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["program:create"])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    body: Result<ApiJson<ProgramResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Create)?;
    let ApiJson(body) = body?;
    let details = body.into_details()?;
    let stream = uuid::Uuid::now_v7().to_string();
    execute::<Program>(
        &state,
        &stream,
        IfMatch::LATEST,
        ProgramCommand::Create(details),
        &provenance.metadata(&principal, None),
    )
    .await?;
    respond(&state, &stream, StatusCode::CREATED).await
}

/// Read a program by any of its identifiers (the name alias included); with `_at`, as it was
/// at that instant.
#[utoipa::path(get, path = "/Program/{id}", tag = "Program",
    params(
        ("id" = String, Path, description = "`system|value`, e.g. `urn:openspp:program|cash-transfer`"),
        ("_at" = Option<String>, Query, description = "An RFC 3339 instant"),
    ),
    responses((status = 200, body = ProgramResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["program:read"])))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let at = Params::at_only(&uri)?;
    let stream = find(&state, &principal, &id).await?;
    if let Some(at) = at {
        let versions = history::versions::<Program>(&state, &stream).await?;
        let version = history::at_instant(versions, &at, RESOURCE)?;
        let resource = render_version(&state, &version);
        let grant = Grant::not_personal(SCOPE);
        return Ok(reply(
            StatusCode::OK,
            RESOURCE,
            version.number(),
            None,
            resource,
            Some(&grant),
        ));
    }
    respond(&state, &stream, StatusCode::OK).await
}

/// Change a program: rename, describe, target type, currency, end, archive.
#[utoipa::path(put, path = "/Program/{id}", tag = "Program", request_body = ProgramResource,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ProgramResource), (status = 404, body = OperationOutcome),
              (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["program:update"])))]
async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<ProgramResource>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let ApiJson(body) = body?;
    let stream = find(&state, &principal, &id).await?;
    let details = body.into_details()?;
    execute::<Program>(
        &state,
        &stream,
        if_match,
        ProgramCommand::Replace(details),
        &provenance.metadata(&principal, None),
    )
    .await?;
    respond(&state, &stream, StatusCode::OK).await
}

fn render_version(state: &AppState, version: &Version<Program>) -> ProgramResource {
    let row = ViewRow {
        aggregate_id: String::new(),
        version: version.number(),
        state: version.state.clone(),
        last_updated: version.event.recorded_at,
        source: version.source(),
    };
    ProgramResource::render(row, &state.vocabulary)
}

/// The program's versions, newest first, with what changed and who changed it.
#[utoipa::path(get, path = "/Program/{id}/_history", tag = "Program",
    params(("id" = String, Path), ("_since" = Option<String>, Query), ("_at" = Option<String>, Query),
           ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query)),
    responses((status = 200, description = "FHIR Bundle of type history"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn history(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require("audit", Action::Read)?;
    let stream = find(&state, &principal, &id).await?;
    let versions = history::versions::<Program>(&state, &stream).await?;
    let path = format!("/api/v2/spp/{RESOURCE}/{}", path_segment(&id));
    Ok(Json(history::bundle(&uri, &path, &versions, None, |v| {
        serde_json::to_value(render_version(&state, v)).unwrap_or_default()
    })?))
}

/// The program exactly as it was at one version.
#[utoipa::path(get, path = "/Program/{id}/_history/{versionId}", tag = "Program",
    params(("id" = String, Path), ("versionId" = String, Path)),
    responses((status = 200, body = ProgramResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn vread(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require("audit", Action::Read)?;
    let stream = find(&state, &principal, &id).await?;
    let versions = history::versions::<Program>(&state, &stream).await?;
    let version = history::at_version(versions, &version, RESOURCE)?;
    let resource = render_version(&state, &version);
    Ok(reply(
        StatusCode::OK,
        RESOURCE,
        version.number(),
        None,
        resource,
        Some(&Grant::not_personal(SCOPE)),
    ))
}

/// Recomputes the program's hash chain.
#[utoipa::path(get, path = "/Program/{id}/_history/$verify", tag = "Program",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{valid, versions, first_broken_version?}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    principal.require("audit", Action::Read)?;
    let stream = find(&state, &principal, &id).await?;
    Ok(Json(
        history::verify_stream(&state, RESOURCE, &stream).await?,
    ))
}
