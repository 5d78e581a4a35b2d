//! `/Consent` (CONTRACT §5): recording consents, reading them, withdrawing them, and the
//! receipt and history a data subject or auditor asks for.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use openspp_aggregates::bounds::items;
use openspp_aggregates::consent::{ConsentScope, ConsentStatus, RecipientMode};
use openspp_aggregates::{Consent, ConsentCommand, ConsentRecord, ConsentTerms, Date};
use openspp_projections::consent as index;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::today;
use crate::http::command::{execute, IfMatch};
use crate::http::context::Provenance;
use crate::http::history::{self, versions, Version};
use crate::http::json::ApiJson;
use crate::http::reference::{parse_identifier, resolve};
use crate::http::schema::{at_most, optional_at_most, OperationOutcome, SearchMeta};
use crate::store::history as stored;
use crate::store::metadata::client_uri;
use crate::store::verify::Verification;

const RESOURCE: &str = "Consent";
const SCOPE: &str = "consent";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, withdraw_by_delete))
        .routes(routes!(revoke))
        .routes(routes!(renew))
        .routes(routes!(receipt))
        .routes(routes!(consent_history))
        .routes(routes!(access_summary))
        .routes(routes!(history))
        .routes(routes!(vread))
        .routes(routes!(verify))
}

/// A scope of a consent: which resource, which fields (all when `field_access` is null), why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    /// `individual`, `group`, `program_membership` or `all`.
    pub resource_type: String,
    #[serde(
        default,
        deserialize_with = "optional_at_most::<_, _, { items::FIELDS }>"
    )]
    #[schema(max_items = 20)]
    pub field_access: Option<Vec<String>>,
    /// `service_delivery`, `eligibility_verification`, `analytics`, `research` or `audit`.
    pub purpose: String,
}

/// Body of `POST /Consent`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// `Individual/{system}|{value}` or `Group/{system}|{value}` (a group's consent covers its
    /// members).
    pub subject: String,
    /// `specific` (named organisations) or `category` (organisation types).
    pub recipient_mode: String,
    #[serde(default, deserialize_with = "at_most::<_, _, { items::RECIPIENTS }>")]
    #[schema(max_items = 50)]
    pub recipients: Vec<String>,
    #[serde(
        default,
        deserialize_with = "at_most::<_, _, { items::RECIPIENT_TYPES }>"
    )]
    #[schema(max_items = 9)]
    pub recipient_types: Vec<String>,
    #[serde(deserialize_with = "at_most::<_, _, { items::SCOPES }>")]
    #[schema(max_items = 20)]
    pub scopes: Vec<ScopeBody>,
    #[serde(default = "consent_basis")]
    pub legal_basis: String,
    /// Defaults to today.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_date: Option<Date>,
    #[schema(value_type = String, format = Date)]
    pub expiry_date: Date,
    /// `self`, `guardian`, `parent`, `poa` or `representative`.
    #[serde(default = "self_delegation")]
    pub delegation_type: String,
    /// Who indicated the consent, when not the subject.
    #[serde(default)]
    pub indicated_by: Option<String>,
}

fn consent_basis() -> String {
    "consent".to_owned()
}

fn self_delegation() -> String {
    "self".to_owned()
}

/// A consent as the API shows it (OpenSPP `GET /Consent/{id}`, with the parties added).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentResource {
    pub consent_id: String,
    /// `given`, `renewed`, `withdrawn` or `expired` (evaluated now).
    pub status: String,
    /// Whether the consent allows access today (OpenSPP's `is_valid`): given or renewed, and
    /// between its effective and expiry dates. A consent given for a later start is `given`
    /// but not yet valid.
    pub is_valid: bool,
    pub subject: Option<String>,
    pub recipient_mode: String,
    pub recipients: Vec<String>,
    pub recipient_types: Vec<String>,
    pub scopes: Vec<ScopeBody>,
    pub legal_basis: String,
    pub effective_date: NaiveDate,
    pub expiry_date: NaiveDate,
    pub delegation_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicated_by: Option<String>,
}

fn mode_name(mode: RecipientMode) -> &'static str {
    match mode {
        RecipientMode::Specific => "specific",
        RecipientMode::Category => "category",
    }
}

/// The status a reader sees: expiry is evaluated at request time.
fn status_now(record: &ConsentRecord) -> &'static str {
    match record.status {
        ConsentStatus::Withdrawn => "withdrawn",
        _ if record.terms.expiry_date < today() => "expired",
        ConsentStatus::Renewed => "renewed",
        ConsentStatus::Given => "given",
    }
}

async fn render(state: &AppState, record: ConsentRecord) -> Result<ConsentResource, ApiError> {
    let subject = subject_reference(state, &record).await?;
    Ok(shown(record, subject))
}

/// `Individual/{system}|{value}` of the consent's subject.
async fn subject_reference(
    state: &AppState,
    record: &ConsentRecord,
) -> Result<Option<String>, ApiError> {
    let terms = &record.terms;
    Ok(
        index::subject_identifier(&state.pool, &terms.subject_type, &terms.subject)
            .await?
            .map(|key| format!("{}/{key}", terms.subject_type)),
    )
}

fn shown(record: ConsentRecord, subject: Option<String>) -> ConsentResource {
    let terms = &record.terms;
    ConsentResource {
        consent_id: record.consent_id.clone(),
        status: status_now(&record).to_owned(),
        is_valid: record.in_force(today()),
        subject,
        recipient_mode: mode_name(terms.recipient_mode).to_owned(),
        recipients: terms.recipients.clone(),
        recipient_types: terms.recipient_types.clone(),
        scopes: terms
            .scopes
            .iter()
            .map(|s| ScopeBody {
                resource_type: s.resource_type.clone(),
                field_access: s.field_access.clone(),
                purpose: s.purpose.clone(),
            })
            .collect(),
        legal_basis: terms.legal_basis.clone(),
        effective_date: terms.effective_date,
        expiry_date: terms.expiry_date,
        delegation_type: terms.delegation_type.clone(),
        indicated_by: terms.indicated_by.clone(),
    }
}

/// Recording and renewing consents is an act of the data controller: a client that itself needs
/// the subjects' consent may not record one for itself, nor extend it, nor probe with it which
/// subjects exist. Refused before anything is looked up.
fn require_controller(principal: &Principal) -> Result<(), ApiError> {
    if principal.require_consent {
        return Err(ApiError::forbidden(
            None,
            "insufficient authority: only a client acting under a legal basis (the data \
             controller's) may record or renew consents",
        ));
    }
    Ok(())
}

/// A consent is shown to clients it names, and to clients acting under a legal basis.
fn may_see(principal: &Principal, record: &ConsentRecord) -> bool {
    !principal.require_consent || record.names(&principal.actor())
}

/// The consent `id`, if it exists and the caller may see it; else the one 404.
async fn find(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<ConsentRecord, ApiError> {
    let valid = uuid::Uuid::parse_str(id).is_ok();
    let record = if valid {
        index::get(&state.pool, id).await?
    } else {
        None
    };
    record
        .filter(|r| may_see(principal, r))
        .ok_or_else(|| ApiError::not_found(RESOURCE))
}

/// Record a consent given by a data subject (or on their behalf).
#[utoipa::path(post, path = "/Consent", tag = "Consent",
    request_body = ConsentBody,
    responses(
        (status = 201, body = ConsentResource, description = "Recorded; `Location` set"),
        (status = 403, body = OperationOutcome, description = "The client needs consent itself, so it is not the controller"),
        (status = 422, body = OperationOutcome, description = "Names the field at fault"),
    ),
    security(("bearer" = ["consent:create"])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    body: Result<ApiJson<ConsentBody>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(SCOPE, Action::Create)?;
    require_controller(&principal)?;
    let ApiJson(body) = body?;
    let (subject_type, key) = body
        .subject
        .split_once('/')
        .filter(|(kind, _)| *kind == "Individual" || *kind == "Group")
        .ok_or_else(|| {
            ApiError::unprocessable(
                "subject",
                "must be Individual/{system}|{value} or Group/{system}|{value}",
            )
        })?;
    let identifier = parse_identifier(key, "subject")
        .map_err(|e| ApiError::unprocessable("subject", e.diagnostics))?;
    let subject = resolve(&state.pool, subject_type, &identifier)
        .await?
        .ok_or_else(|| ApiError::unprocessable("subject", format!("no such {subject_type}")))?;
    let recipient_mode = match body.recipient_mode.as_str() {
        "specific" => RecipientMode::Specific,
        "category" => RecipientMode::Category,
        _ => {
            return Err(ApiError::unprocessable(
                "recipient_mode",
                "must be specific or category",
            ))
        }
    };
    let terms = ConsentTerms {
        subject_type: subject_type.to_owned(),
        subject,
        recipient_mode,
        recipients: body.recipients,
        recipient_types: body.recipient_types,
        scopes: body
            .scopes
            .into_iter()
            .map(|s| ConsentScope {
                resource_type: s.resource_type,
                field_access: s.field_access,
                purpose: s.purpose,
            })
            .collect(),
        legal_basis: body.legal_basis,
        effective_date: body.effective_date.map_or_else(today, Date::get),
        expiry_date: body.expiry_date.get(),
        delegation_type: body.delegation_type,
        indicated_by: body.indicated_by,
    };
    let consent_id = uuid::Uuid::new_v4().to_string();
    let committed = execute::<Consent>(
        &state,
        &consent_id,
        IfMatch::LATEST,
        ConsentCommand::Give(terms),
        &provenance.metadata(&principal, None),
    )
    .await?;
    let record = committed
        .aggregate
        .record(&consent_id)
        .ok_or_else(ApiError::internal)?;
    let resource = render(&state, record).await?;
    let location = format!("/api/v2/spp/Consent/{consent_id}");
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(resource),
    )
        .into_response())
}

/// Read a consent; with `_at`, as it was at that instant.
#[utoipa::path(get, path = "/Consent/{id}", tag = "Consent",
    params(
        ("id" = String, Path, description = "The consent's UUID"),
        ("_at" = Option<String>, Query, description = "An RFC 3339 instant"),
    ),
    responses((status = 200, body = ConsentResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let at = crate::http::search::Params::at_only(&uri)?;
    let record = find(&state, &principal, &id).await?;
    let result = async {
        if let Some(at) = at {
            let (versions, subject) = consent_versions(&state, &record).await?;
            let version = history::at_instant(versions, &at, RESOURCE)?;
            return Ok(Json(render_version(&version, &record.consent_id, &subject)));
        }
        Ok(Json(
            serde_json::to_value(render(&state, record.clone()).await?).unwrap_or_default(),
        ))
    }
    .await;
    logged(&state, &principal, &provenance, "read", &record, &result).await;
    result
}

/// Body of `$revoke`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    #[serde(default)]
    pub reason: Option<String>,
}

async fn withdraw(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    reason: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let record = find(state, principal, id).await?;
    execute::<Consent>(
        state,
        &record.consent_id,
        IfMatch::LATEST,
        ConsentCommand::Withdraw {
            reason,
            channel: "api".to_owned(),
        },
        &provenance.metadata(principal, None),
    )
    .await?;
    Ok(Json(json!({
        "consent_id": record.consent_id,
        "status": "withdrawn",
        "revoked_at": chrono::Utc::now().to_rfc3339(),
        "message": "consent withdrawn; it no longer allows any access",
    })))
}

/// Withdraw a consent (given or renewed, even before it takes effect); effective for every
/// request that starts after this answers. A client that needs consent may withdraw only
/// consents that name it.
#[utoipa::path(post, path = "/Consent/{id}/$revoke", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    request_body = RevokeBody,
    responses(
        (status = 200, description = "`status: withdrawn`"),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Already withdrawn"),
    ),
    security(("bearer" = ["consent:update"])))]
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    body: Result<ApiJson<RevokeBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    let reason = match body {
        Ok(ApiJson(body)) => body.reason,
        Err(error) if error.status == StatusCode::UNSUPPORTED_MEDIA_TYPE => None,
        Err(error) => return Err(error),
    };
    withdraw(&state, &principal, &provenance, &id, reason).await
}

/// Body of `$renew`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    #[schema(value_type = String, format = Date)]
    pub expiry_date: Date,
}

/// Renew a consent that is in force or has expired, to a later expiry date.
#[utoipa::path(post, path = "/Consent/{id}/$renew", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    request_body = RenewBody,
    responses(
        (status = 200, body = ConsentResource),
        (status = 403, body = OperationOutcome, description = "The client needs consent itself, so it is not the controller"),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Withdrawn"),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["consent:update"])))]
async fn renew(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    body: Result<ApiJson<RenewBody>, ApiError>,
) -> Result<Json<ConsentResource>, ApiError> {
    principal.require(SCOPE, Action::Update)?;
    require_controller(&principal)?;
    let ApiJson(body) = body?;
    let record = find(&state, &principal, &id).await?;
    let committed = execute::<Consent>(
        &state,
        &record.consent_id,
        IfMatch::LATEST,
        ConsentCommand::Renew {
            expiry_date: body.expiry_date.get(),
        },
        &provenance.metadata(&principal, None),
    )
    .await?;
    let record = committed
        .aggregate
        .record(&record.consent_id)
        .ok_or_else(ApiError::internal)?;
    Ok(Json(render(&state, record).await?))
}

/// Withdraw a consent (same as `$revoke`).
#[utoipa::path(delete, path = "/Consent/{id}", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    responses((status = 200, description = "`status: withdrawn`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:delete"])))]
async fn withdraw_by_delete(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Delete)?;
    withdraw(&state, &principal, &provenance, &id, None).await
}

/// A consent receipt (ISO/IEC 29184, Kantara Consent Receipt fields).
#[utoipa::path(get, path = "/Consent/{id}/$receipt", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    responses((status = 200, description = "The receipt"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn receipt(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let record = find(&state, &principal, &id).await?;
    let result = receipt_of(&state, record.clone()).await;
    logged(&state, &principal, &provenance, "receipt", &record, &result).await;
    result
}

async fn receipt_of(state: &AppState, record: ConsentRecord) -> Result<Json<Value>, ApiError> {
    let events = stored::stream(&state.pool, RESOURCE, &record.consent_id).await?;
    let given = events.first().ok_or_else(ApiError::internal)?;
    let resource = render(state, record).await?;
    Ok(Json(json!({
        "receipt_id": format!("urn:openspp:consent-receipt:{}:{}", resource.consent_id, events.len()),
        "version": "ISO/IEC 29184:2020",
        "consent_id": resource.consent_id,
        "consent_timestamp": given.recorded_at.to_rfc3339(),
        "collection_method": given.metadata.get("collection_method"),
        "data_subject": {"reference": resource.subject},
        "data_controller": {"recorded_by": given.metadata.get("client_id").and_then(Value::as_str).map(client_uri)},
        "recipients": {"mode": resource.recipient_mode, "organizations": resource.recipients, "organization_types": resource.recipient_types},
        "purposes": resource.scopes.iter().map(|s| &s.purpose).collect::<Vec<_>>(),
        "data_categories": resource.scopes.iter().map(|s| json!({"resource_type": s.resource_type, "fields": s.field_access})).collect::<Vec<_>>(),
        "legal_basis": resource.legal_basis,
        "delegation": {"type": resource.delegation_type, "indicated_by": resource.indicated_by},
        "effective_date": resource.effective_date,
        "expiry_date": resource.expiry_date,
        "status": resource.status,
        "is_valid": resource.is_valid,
        "withdrawal_uri": format!("/api/v2/spp/Consent/{}/$revoke", resource.consent_id),
    })))
}

/// The consent's life: given, withdrawn …, newest first.
#[utoipa::path(get, path = "/Consent/{id}/$history", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    responses((status = 200, description = "`{consent_id, current_version, history}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn consent_history(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let record = find(&state, &principal, &id).await?;
    let result = story(&state, &record).await;
    logged(&state, &principal, &provenance, "history", &record, &result).await;
    result
}

async fn story(state: &AppState, record: &ConsentRecord) -> Result<Json<Value>, ApiError> {
    let events = stored::stream(&state.pool, RESOURCE, &record.consent_id).await?;
    let entries: Vec<Value> = events
        .iter()
        .rev()
        .map(|e| {
            let (action, reason) = match e.event_type.as_str() {
                "ConsentGiven" => ("give", None),
                "ConsentRenewed" => ("renew", None),
                _ => ("withdraw", e.payload["ConsentWithdrawn"]["reason"].as_str()),
            };
            json!({
                "version": e.sequence,
                "action": action,
                "changed_date": e.recorded_at.to_rfc3339(),
                "changed_by": e.metadata.get("client_id").and_then(Value::as_str).map(client_uri),
                "channel": e.metadata.get("collection_method"),
                "reason": reason,
            })
        })
        .collect();
    Ok(Json(json!({
        "consent_id": record.consent_id,
        "current_version": events.len(),
        "history": entries,
    })))
}

/// The consents of one subject that the caller may see.
#[utoipa::path(get, path = "/Consent", tag = "Consent",
    params(("subject" = String, Query, description = "`Individual/{system}|{value}` or `Group/…`")),
    responses((status = 200, description = "Search envelope of ConsentResource"), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["consent:search"])))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Search)?;
    let mut params = crate::http::search::Params::from_uri(&uri)?;
    let subject = params
        .one("subject")?
        .ok_or_else(|| ApiError::bad_request(Some("subject"), "is required"))?;
    params.finish()?;
    let (kind, key) = subject.split_once('/').ok_or_else(|| {
        ApiError::bad_request(Some("subject"), "must be Individual/{system}|{value}")
    })?;
    let identifier = parse_identifier(key, "subject")?;
    let stream = resolve(&state.pool, kind, &identifier).await?;
    let records = match &stream {
        Some(stream) => index::for_subject(&state.pool, stream).await?,
        None => Vec::new(),
    };
    let mut log = AccessEntry::new(&principal, provenance.request_id(), RESOURCE, "search");
    let mut data = Vec::new();
    for record in records.into_iter().filter(|r| may_see(&principal, r)) {
        log = log.returned(
            format!("{RESOURCE}/{}", record.consent_id),
            Some(&record.consent_id),
            None,
        );
        data.push(render(&state, record).await?);
    }
    if !data.is_empty() {
        log = log.mentioning(stream.map(|stream| (subject.clone(), stream)));
    }
    state.access_log.record(log).await;
    let count = data.len();
    Ok(Json(json!({
        "data": data,
        "meta": SearchMeta { total: count as i64, count, offset: 0 },
        "links": {"self": uri.to_string()},
    })))
}

/// The consent's versions, and the reference to its subject.
async fn consent_versions(
    state: &AppState,
    record: &ConsentRecord,
) -> Result<(Vec<Version<Consent>>, Option<String>), ApiError> {
    let versions = versions::<Consent>(state, &record.consent_id).await?;
    Ok((versions, subject_reference(state, record).await?))
}

/// Logs a request about `record` with the outcome it really had. A consent reveals who its
/// data subject is, so the entry names the subject too, and a subject search finds it.
async fn logged<T>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    interaction: &'static str,
    record: &ConsentRecord,
    result: &Result<T, ApiError>,
) {
    let subject = subject_reference(state, record).await.ok().flatten();
    let entry = AccessEntry::new(principal, provenance.request_id(), RESOURCE, interaction)
        .returned(
            format!("{RESOURCE}/{}", record.consent_id),
            Some(&record.consent_id),
            None,
        )
        .mentioning(subject.map(|s| (s, record.terms.subject.clone())))
        .outcome_of(result);
    state.access_log.record(entry).await;
}

fn render_version(version: &Version<Consent>, consent_id: &str, subject: &Option<String>) -> Value {
    version
        .state
        .record(consent_id)
        .map(|record| serde_json::to_value(shown(record, subject.clone())).unwrap_or_default())
        .unwrap_or_default()
}

/// The consent's versions as a FHIR history Bundle, with provenance.
#[utoipa::path(get, path = "/Consent/{id}/_history", tag = "Consent",
    params(("id" = String, Path), ("_since" = Option<String>, Query), ("_at" = Option<String>, Query),
           ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query)),
    responses((status = 200, description = "FHIR Bundle of type history"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn history(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    principal.require("audit", Action::Read)?;
    let record = find(&state, &principal, &id).await?;
    let result = async {
        let (versions, subject) = consent_versions(&state, &record).await?;
        let path = format!("/api/v2/spp/Consent/{}", record.consent_id);
        history::bundle(&uri, &path, &versions, None, |v| {
            render_version(v, &record.consent_id, &subject)
        })
    }
    .await;
    logged(&state, &principal, &provenance, "history", &record, &result).await;
    result.map(Json)
}

/// The consent exactly as it was at one version.
#[utoipa::path(get, path = "/Consent/{id}/_history/{versionId}", tag = "Consent",
    params(("id" = String, Path), ("versionId" = String, Path)),
    responses((status = 200, body = ConsentResource), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn vread(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    principal.require("audit", Action::Read)?;
    let record = find(&state, &principal, &id).await?;
    let result = async {
        let (versions, subject) = consent_versions(&state, &record).await?;
        let version = history::at_version(versions, &version, RESOURCE)?;
        Ok(Json(render_version(&version, &record.consent_id, &subject)))
    }
    .await;
    logged(&state, &principal, &provenance, "vread", &record, &result).await;
    result
}

/// Recomputes the consent's hash chain.
#[utoipa::path(get, path = "/Consent/{id}/_history/$verify", tag = "Consent",
    params(("id" = String, Path)),
    responses((status = 200, description = "`{valid, versions, first_broken_version?}`"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["audit:read"])))]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    provenance: Provenance,
    Path(id): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    principal.require("audit", Action::Read)?;
    let record = find(&state, &principal, &id).await?;
    let result = history::verify_stream(&state, RESOURCE, &record.consent_id).await;
    logged(&state, &principal, &provenance, "verify", &record, &result).await;
    result.map(Json)
}

/// How a consent has been used: accesses per client and interaction, and the fields returned.
#[utoipa::path(get, path = "/Consent/{id}/$access-summary", tag = "Consent",
    params(("id" = String, Path), ("date_from" = Option<String>, Query), ("date_to" = Option<String>, Query)),
    responses((status = 200, description = "Summary of the access log for this consent"), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn access_summary(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let record = find(&state, &principal, &id).await?;
    let mut params = crate::http::search::Params::from_uri(&uri)?;
    let mut at = params.instants("date_from")?;
    for bound in &mut at {
        bound.0 = openspp_projections::search::Comparator::Ge;
    }
    for (_, instant) in params.instants("date_to")? {
        at.push((openspp_projections::search::Comparator::Le, instant));
    }
    params.finish()?;
    let rows = crate::access_log::all(
        &state.pool,
        &crate::access_log::AccessQuery {
            consent_id: Some(record.consent_id.clone()),
            at,
            ..Default::default()
        },
    )
    .await?;
    let mut by_client: std::collections::BTreeMap<String, (String, usize, String)> =
        Default::default();
    let mut by_interaction: std::collections::BTreeMap<String, usize> = Default::default();
    let mut fields: Vec<String> = Vec::new();
    let mut all_fields = false;
    for row in &rows {
        let entry = by_client
            .entry(row.client_id.clone())
            .or_insert_with(|| (row.organization.clone(), 0, String::new()));
        entry.1 += 1;
        entry.2 = row.at.to_rfc3339();
        *by_interaction.entry(row.interaction.clone()).or_default() += 1;
        match &row.fields {
            Some(list) => {
                for field in list {
                    if !fields.contains(field) {
                        fields.push(field.clone());
                    }
                }
            }
            None => all_fields = true,
        }
    }
    Ok(Json(json!({
        "consent_id": record.consent_id,
        "total_accesses": rows.len(),
        "by_client": by_client.into_iter().map(|(client, (organization, accesses, last))| json!({
            "client": client_uri(&client), "organization": organization, "accesses": accesses, "last_access": last,
        })).collect::<Vec<_>>(),
        "by_interaction": by_interaction,
        "fields_returned": if all_fields { json!("all") } else { json!(fields) },
    })))
}
