//! `/Consent` (CONTRACT §5): recording consents, reading them, withdrawing them, and the
//! receipt and history a data subject or auditor asks for.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path};
use axum::http::StatusCode;
use axum::Json;
use openspp_aggregates::consent::ConsentStatus;
use openspp_aggregates::{Consent, ConsentCommand, ConsentRecord, ConsentTerms};
use openspp_projections::consent as index;

use crate::access_log::{self, AccessQuery};
use crate::api::consent::{
    shown, AccessSummary, ConsentBody, ConsentLife, ConsentResource, Receipt, RenewBody,
    RevokeBody, Viewer, Withdrawal,
};
use crate::api::json::ApiJson;
use crate::api::params::{unpaged, Params};
use crate::api::preconditions::IfMatch;
use crate::api::reference::parse_identifier;
use crate::api::schema::{OperationOutcome, SearchResult};
use crate::auth::clients::organization_of;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::resource::{self, today, Answer, Call, Interaction, Located, Resource, Snapshot};
use crate::store::claims;
use crate::store::history as stored;

const RESOURCE: &str = "Consent";
const SCOPE: &str = "consent";

/// A consent is shown to clients it names, and to clients acting under a legal basis.
fn may_see(principal: &Principal, record: &ConsentRecord) -> bool {
    !principal.require_consent || record.names(&principal.actor())
}

/// Whose view of a consent `principal` has: a recipient's (its organisation's), or the
/// controller's.
fn viewer(principal: &Principal) -> Viewer<'_> {
    principal
        .require_consent
        .then_some(principal.organization.as_str())
}

/// `Individual/{system}|{value}` (or `Group/…`): how a consent names its subject, if the
/// subject has an identifier.
async fn subject_reference(call: &Call, terms: &ConsentTerms) -> Result<Option<String>, ApiError> {
    let key = index::subject_identifier(&call.state.pool, &terms.subject_type, &terms.subject);
    Ok(key
        .await?
        .map(|key| format!("{}/{key}", terms.subject_type)))
}

/// What rendering consents needs besides their states.
#[derive(Default)]
pub struct Context {
    /// The reference (`Individual/{system}|{value}`) of each consent's subject, by its stream.
    subjects: HashMap<String, String>,
    /// Each consent as the server enforces it now (the consent index, kept in the append
    /// transaction), by id: a current read shows what applies today, a past version what its
    /// events said then.
    in_force: HashMap<String, ConsentRecord>,
}

impl Context {
    async fn subjects(call: &Call, snapshots: &[&Snapshot<Consent>]) -> Result<Self, ApiError> {
        let mut context = Self::default();
        for terms in snapshots.iter().filter_map(|s| s.state.terms.as_ref()) {
            if let Some(reference) = subject_reference(call, terms).await? {
                context.subjects.insert(terms.subject.clone(), reference);
            }
        }
        Ok(context)
    }
}

impl Resource for Consent {
    const SCOPE: &'static str = SCOPE;
    const VIEW: Option<&'static str> = None;
    /// A consent is shown whole to whoever may see it (`may_see`), never field by field.
    const PERSONAL: bool = false;
    type Rendered = Option<ConsentResource>;
    type Context = Context;

    /// By its UUID, if the caller may see it; else the one 404. A consent reveals who its data
    /// subject is, so the access log names the subject too, and a subject search finds who
    /// read their consent.
    async fn locate(call: &Call, id: &str) -> Result<Located<Self>, ApiError> {
        let pool = &call.state.pool;
        let record = match uuid::Uuid::parse_str(id) {
            Ok(_) => index::get(pool, id).await?,
            Err(_) => None,
        };
        let record = record.filter(|r| may_see(&call.principal, r));
        let found = record.as_ref().map(|r| (r.consent_id.clone(), None));
        let located = resource::not_personal(call, format!("{RESOURCE}/{id}"), found)?;
        if let Some(terms) = record.map(|r| r.terms) {
            if let Some(reference) = subject_reference(call, &terms).await? {
                call.audit.mentioning([(reference, terms.subject)]);
            }
        }
        Ok(located)
    }

    async fn context(call: &Call, snapshots: &[&Snapshot<Self>]) -> Result<Context, ApiError> {
        let mut context = Context::subjects(call, snapshots).await?;
        for snapshot in snapshots {
            if let Some(record) = index::get(&call.state.pool, &snapshot.aggregate_id).await? {
                context.in_force.insert(record.consent_id.clone(), record);
            }
        }
        Ok(context)
    }

    async fn past_context(call: &Call, latest: &Snapshot<Self>) -> Result<Context, ApiError> {
        Context::subjects(call, &[latest]).await
    }

    fn render(call: &Call, context: &Context, row: &Snapshot<Self>) -> Option<ConsentResource> {
        let record = match context.in_force.get(&row.aggregate_id) {
            Some(record) => record.clone(),
            None => row.state.record(&row.aggregate_id)?,
        };
        let subject = context.subjects.get(&record.terms.subject).cloned();
        Some(shown(record, subject, today(), viewer(&call.principal)))
    }

    fn key(stream: &str, _state: &Self) -> Option<String> {
        Some(stream.to_owned())
    }
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
    call: Call,
    body: Result<ApiJson<ConsentBody>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Create, RESOURCE, Interaction::CREATE)?;
    call.principal
        .require_controller("record or renew consents")?;
    let ApiJson(body) = body?;
    body.check_text()?;
    let (subject_type, identifier) = body.subject()?;
    let subject = claims::resolve(&call.state.pool, subject_type, &identifier)
        .await?
        .ok_or_else(|| ApiError::unprocessable("subject", format!("no such {subject_type}")))?;
    call.audit
        .mentioning([(body.subject.clone(), subject.clone())]);
    let terms = body.into_terms(subject_type, subject, today())?;
    resource::create::<Consent>(&call, None, ConsentCommand::Give(terms)).await
}

async fn withdraw(
    call: &Call,
    id: &str,
    reason: Option<String>,
) -> Result<Json<Withdrawal>, ApiError> {
    let target = Consent::locate(call, id).await?;
    let consent_id = target.stream.clone();
    let by = call.principal.actor();
    let write = target.change(IfMatch::LATEST, |_| ConsentCommand::Withdraw {
        reason,
        channel: "api".to_owned(),
        by,
    });
    let withdrawn = resource::execute(call, write).await?;
    Ok(Json(match withdrawn.state.status {
        Some(ConsentStatus::Withdrawn) => Withdrawal::for_everyone(consent_id),
        _ => Withdrawal::for_recipient(consent_id, call.principal.organization.clone()),
    }))
}

/// Withdraw a consent (given or renewed, even before it takes effect); effective for every
/// request that starts after this answers. The controller (a client acting under a legal
/// basis, for the subject) withdraws it for everyone. A client that needs consent may withdraw
/// only consents that name it, and only for its own organisation: the consent stays in force
/// for the other recipients, unless the caller is the one recipient it still names.
#[utoipa::path(post, path = "/Consent/{id}/$revoke", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    request_body = RevokeBody,
    responses(
        (status = 200, body = Withdrawal),
        (status = 404, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "Already withdrawn"),
    ),
    security(("bearer" = ["consent:update"]), ("bearer" = ["consent:read"])))]
async fn revoke(
    call: Call,
    Path(id): Path<String>,
    body: Result<ApiJson<RevokeBody>, ApiError>,
) -> Result<Json<Withdrawal>, ApiError> {
    open_withdrawal(&call, Action::Update, Interaction::UPDATE)?;
    let reason = match body {
        Ok(ApiJson(body)) => body.checked_reason()?,
        Err(error) if error.status == StatusCode::UNSUPPORTED_MEDIA_TYPE => None,
        Err(error) => return Err(error),
    };
    withdraw(&call, &id, reason).await
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
    call: Call,
    Path(id): Path<String>,
    body: Result<ApiJson<RenewBody>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(SCOPE, Action::Update, RESOURCE, Interaction::UPDATE)?;
    call.principal
        .require_controller("record or renew consents")?;
    let ApiJson(body) = body?;
    let target = Consent::locate(&call, &id).await?;
    let write = target.change(IfMatch::LATEST, |_| ConsentCommand::Renew {
        expiry_date: body.expiry_date.get(),
    });
    resource::commit(&call, write).await
}

/// Withdraw a consent (same as `$revoke`); a recipient needs only `consent:read`.
#[utoipa::path(delete, path = "/Consent/{id}", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID"),
        ("reason" = Option<String>, Query, description = "Why it is withdrawn")),
    responses((status = 200, body = Withdrawal), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:delete"]), ("bearer" = ["consent:read"])))]
async fn withdraw_by_delete(
    call: Call,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Withdrawal>, ApiError> {
    open_withdrawal(&call, Action::Delete, Interaction::DELETE)?;
    withdraw(&call, &id, reason(&uri)?).await
}

/// `?reason=` of a `DELETE` (OpenSPP's), bounded as a `$revoke` body's.
fn reason(uri: &axum::http::Uri) -> Result<Option<String>, ApiError> {
    let mut params = Params::from_uri(uri)?;
    let reason = params.one("reason")?;
    params.finish()?;
    RevokeBody { reason }.checked_reason()
}

/// Opens a withdrawal. The controller needs `consent:{action}`; a recipient (a client acting
/// under consent) may withdraw a consent that names it holding `consent:read` alone, since
/// OpenSPP lets any recipient withdraw (GDPR Art. 7(3): as easy as giving it). `locate` finds
/// only consents that name the recipient, so no other is within its reach.
fn open_withdrawal(call: &Call, action: Action, interaction: Interaction) -> Result<(), ApiError> {
    let recipient_reading = call.principal.require_consent
        && call.principal.require(SCOPE, action).is_err()
        && call.principal.require(SCOPE, Action::Read).is_ok();
    let action = if recipient_reading {
        Action::Read
    } else {
        action
    };
    call.open(SCOPE, action, RESOURCE, interaction)
}

/// The consent `id` as it now is, and what rendering it needs.
async fn current(call: &Call, id: &str) -> Result<(Snapshot<Consent>, Context), ApiError> {
    let snapshot = Consent::locate(call, id).await?.take_current(call).await?;
    let context = Consent::context(call, &[&snapshot]).await?;
    Ok((snapshot, context))
}

/// A consent receipt (ISO/IEC 29184, Kantara Consent Receipt fields).
#[utoipa::path(get, path = "/Consent/{id}/$receipt", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    responses((status = 200, body = Receipt), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn receipt(call: Call, Path(id): Path<String>) -> Result<Json<Receipt>, ApiError> {
    call.open(
        SCOPE,
        Action::Read,
        RESOURCE,
        Interaction::new("receipt", "R"),
    )?;
    let (snapshot, context) = current(&call, &id).await?;
    let consent = Consent::render(&call, &context, &snapshot).ok_or_else(ApiError::internal)?;
    let events = stored::stream(&call.state.pool, RESOURCE, &snapshot.aggregate_id).await?;
    let recorder = events
        .first()
        .and_then(|e| e.metadata.get("client_id"))
        .and_then(|c| c.as_str())
        .unwrap_or_default();
    let controller = organization_of(&call.state.pool, recorder).await?;
    Receipt::of(consent, &events, controller)
        .map(Json)
        .ok_or_else(ApiError::internal)
}

/// The consent's life: given, withdrawn …, newest first.
#[utoipa::path(get, path = "/Consent/{id}/$history", tag = "Consent",
    params(("id" = String, Path, description = "The consent's UUID")),
    responses((status = 200, body = ConsentLife), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn consent_history(
    call: Call,
    Path(id): Path<String>,
) -> Result<Json<ConsentLife>, ApiError> {
    call.open(SCOPE, Action::Read, RESOURCE, Interaction::HISTORY)?;
    let (snapshot, _) = current(&call, &id).await?;
    let events = stored::stream(&call.state.pool, RESOURCE, &snapshot.aggregate_id).await?;
    Ok(Json(ConsentLife::of(
        snapshot.aggregate_id,
        &events,
        viewer(&call.principal),
    )))
}

/// The consents of one subject that the caller may see.
#[utoipa::path(get, path = "/Consent", tag = "Consent",
    params(("subject" = String, Query, description = "`Individual/{system}|{value}` or `Group/…`")),
    responses((status = 200, body = SearchResult<ConsentResource>), (status = 400, body = OperationOutcome)),
    security(("bearer" = ["consent:search"])))]
async fn list(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<SearchResult<ConsentResource>>, ApiError> {
    call.open(SCOPE, Action::Search, RESOURCE, Interaction::SEARCH)?;
    let mut params = Params::from_uri(&uri)?;
    let subject = params
        .one("subject")?
        .ok_or_else(|| ApiError::bad_request(Some("subject"), "is required"))?;
    params.finish()?;
    let (kind, key) = subject.split_once('/').ok_or_else(|| {
        ApiError::bad_request(Some("subject"), "must be Individual/{system}|{value}")
    })?;
    let identifier = parse_identifier(key, "subject")?;
    let pool = &call.state.pool;
    let stream = claims::resolve(pool, kind, &identifier).await?;
    let records = match &stream {
        Some(stream) => index::for_subject(pool, stream).await?,
        None => Vec::new(),
    };
    let mut data = Vec::new();
    for record in records.into_iter().filter(|r| may_see(&call.principal, r)) {
        resource::note_found::<Consent>(&call, &record.consent_id, &record.consent_id, None);
        let reference = subject_reference(&call, &record.terms).await?;
        data.push(shown(record, reference, today(), viewer(&call.principal)));
    }
    if let Some(stream) = stream.filter(|_| !data.is_empty()) {
        call.audit.mentioning([(subject.clone(), stream)]);
    }
    Ok(Json(unpaged(&uri, data)))
}

/// How a consent has been used: accesses per client and interaction, and the fields returned.
/// A client that itself needs consent sees only its own accesses: other recipients' use of a
/// consent (who they are, how often they looked) is theirs.
#[utoipa::path(get, path = "/Consent/{id}/$access-summary", tag = "Consent",
    params(("id" = String, Path), ("date_from" = Option<String>, Query), ("date_to" = Option<String>, Query)),
    responses((status = 200, body = AccessSummary), (status = 404, body = OperationOutcome)),
    security(("bearer" = ["consent:read"])))]
async fn access_summary(
    call: Call,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<AccessSummary>, ApiError> {
    call.open(
        SCOPE,
        Action::Read,
        RESOURCE,
        Interaction::new("access-summary", "R"),
    )?;
    let located = Consent::locate(&call, &id).await?;
    let mut params = Params::from_uri(&uri)?;
    let at = params.between("date_from", "date_to")?;
    params.finish()?;
    let query = AccessQuery {
        consent_id: Some(located.stream.clone()),
        client_id: call
            .principal
            .require_consent
            .then(|| call.principal.client_id.clone()),
        at,
        ..Default::default()
    };
    let rows = access_log::all(&call.state.pool, &query).await?;
    Ok(Json(AccessSummary::of(located.stream, &rows)))
}

crate::http::read_routes!(Consent, ConsentResource, "The consent's UUID",
    routes: (list, create), (read, withdraw_by_delete), (revoke), (renew), (receipt),
        (consent_history), (access_summary));
