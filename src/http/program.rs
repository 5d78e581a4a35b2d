//! `/Program` (CONTRACT §4; **beyond OpenSPP**, programs are created and changed here by
//! operators with `program:create` / `program:update`).

use axum::extract::{OriginalUri, Path};
use axum::Json;
use openspp_aggregates::program::TargetType;
use openspp_aggregates::{Program, ProgramCommand, ProgramDetails, ProgramStatus};
use openspp_projections::program::{self as view, ProgramQuery};
use openspp_projections::search::{Found, Page, SortKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::api::reference::parse_identifier;
use crate::api::schema::{
    CodeableConcept, Identifier, Meta, OperationOutcome, Period, SearchResult,
};
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::resource::{
    self, Answer, Call, Grant, Interaction, Located, Resource, Searchable, Snapshot,
};
use crate::store::claims::resolve_program;
use crate::vocabulary::Vocabularies;

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
    #[serde(default)]
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

impl ProgramResource {
    fn into_details(self) -> Result<ProgramDetails, ApiError> {
        if self.resource_type != RESOURCE {
            return Err(ApiError::unprocessable("type", "must be Program"));
        }
        let target_type = TargetType::parse(&self.target_type)
            .ok_or_else(|| ApiError::unprocessable("targetType", TargetType::expected()))?;
        let status = ProgramStatus::parse(&self.status)
            .ok_or_else(|| ApiError::unprocessable("status", ProgramStatus::expected()))?;
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
            start_date: period.start,
            end_date: period.end,
            status,
        })
    }

    fn render(row: &Snapshot<Program>, vocabulary: &Vocabularies) -> Self {
        let state = &row.state;
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
            target_type: state
                .target_type
                .unwrap_or(TargetType::Group)
                .as_str()
                .to_owned(),
            currency: state.currency.clone(),
            eligibility_criteria: state.eligibility_criteria.clone(),
            period: (state.start_date.is_some() || state.end_date.is_some()).then_some(Period {
                start: state.start_date,
                end: state.end_date,
            }),
            status: state
                .status
                .unwrap_or(ProgramStatus::Active)
                .as_str()
                .to_owned(),
            meta: Some(Meta::new(row.version, row.last_updated, row.source.clone())),
        }
    }
}

/// Whether the caller may use the program `stream`: a client limited to some programs (bound
/// to the programs themselves when it was created) uses only those.
pub fn allowed(principal: &Principal, stream: &str) -> bool {
    principal.allowed_programs.is_empty() || principal.allowed_programs.iter().any(|p| p == stream)
}

impl Resource for Program {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = Some("program_view");
    const PERSONAL: bool = false;
    type Rendered = ProgramResource;
    type Context = ();

    /// By any of its identifiers, the name alias matched whatever its case; a client limited
    /// to some programs finds only those.
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let identifier = parse_identifier(id, "id")?;
        let subject = format!("{RESOURCE}/{}", identifier.key());
        let stream = resolve_program(&call.state.pool, identifier)
            .await?
            .filter(|stream| allowed(&call.principal, stream));
        let Some(stream) = stream else {
            call.audit.not_found(subject, None);
            return Err(ApiError::not_found(RESOURCE));
        };
        call.audit.returned(subject, Some(&stream), None);
        Ok(Located {
            consent_subject: stream.clone(),
            stream,
            grant: Grant::not_personal(SCOPE),
            access: call.principal.access(Vec::new()),
            current: None,
        })
    }

    async fn context(_call: &Call, _snapshots: &[&Snapshot<Self>]) -> Result<(), ApiError> {
        Ok(())
    }

    fn render(call: &Call, _context: &(), row: &Snapshot<Self>) -> ProgramResource {
        ProgramResource::render(row, &call.state.vocabulary)
    }

    fn mentioned(_context: &(), _row: &Snapshot<Self>, _grant: &Grant) -> Vec<(String, String)> {
        Vec::new()
    }

    fn key(_stream: &str, state: &Self) -> Option<String> {
        state.live_identifiers().next().map(|i| i.key())
    }
}

impl Searchable for Program {
    type Query = ProgramQuery;

    async fn query(call: &Call, params: &mut Params) -> Result<ProgramQuery, ApiError> {
        let status = params.one("status")?;
        if status
            .as_deref()
            .is_some_and(|s| ProgramStatus::parse(s).is_none())
        {
            return Err(ApiError::bad_request(
                Some("status"),
                ProgramStatus::expected(),
            ));
        }
        let target_type = params.one("targetType")?;
        if target_type
            .as_deref()
            .is_some_and(|t| TargetType::parse(t).is_none())
        {
            return Err(ApiError::bad_request(
                Some("targetType"),
                TargetType::expected(),
            ));
        }
        let principal = &call.principal;
        Ok(ProgramQuery {
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
        })
    }

    async fn find(
        call: &Call,
        query: &ProgramQuery,
        page: Page,
    ) -> Result<Found<Snapshot<Self>>, ApiError> {
        Ok(view::search(&call.state.pool, query, page).await?)
    }
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
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<Value>>, ApiError> {
    resource::search::<Program>(&call, &uri).await.map(Json)
}

/// Create a program (operators).
#[utoipa::path(post, path = "/Program", tag = "Program", request_body = ProgramResource,
    responses((status = 201, body = ProgramResource), (status = 409, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["program:create"])))]
async fn create(
    call: Call,
    body: Result<ApiJson<ProgramResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    let details = body.into_details()?;
    resource::create::<Program>(&call, None, ProgramCommand::Create(details)).await
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
    call: Call,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Answer, ApiError> {
    resource::read::<Program>(&call, &id, &uri).await
}

/// Change a program: rename, describe, target type, currency, end, archive.
#[utoipa::path(put, path = "/Program/{id}", tag = "Program", request_body = ProgramResource,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = ProgramResource), (status = 404, body = OperationOutcome),
              (status = 412, body = OperationOutcome), (status = 422, body = OperationOutcome)),
    security(("bearer" = ["program:update"])))]
async fn replace(
    call: Call,
    if_match: IfMatch,
    Path(id): Path<String>,
    body: Result<ApiJson<ProgramResource>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Update, RESOURCE, Interaction::UPDATE)?;
    let ApiJson(body) = body?;
    let target = Program::locate(&call, &id).await?;
    let details = body.into_details()?;
    let write = target.change(if_match.0, |_| ProgramCommand::Replace(details));
    resource::commit(&call, write).await
}

crate::http::audit_routes!(
    Program,
    "Program",
    "`system|value`, URL-encoded",
    "/Program/{id}/_history",
    "/Program/{id}/_history/{versionId}",
    "/Program/{id}/_history/$verify"
);
