//! `POST /$batch` (CONTRACT §10): many requests in one, FHIR-style.
//!
//! Each entry is dispatched, as a request of its own, to the very routes a lone request
//! reaches — same extraction, scope and consent checks, aggregate invariants, answer and
//! access-log entry — so a Bundle cannot behave differently from its entries sent one by one.
//! The entries run as the Bundle's principal, authenticated once; each entry counts as one
//! request against the client's rate limits (the Bundle's own admission is its first entry's).
//! A `transaction` is admitted whole before any entry runs, or refused (429) having run none; a
//! `batch` admits entry by entry, so an entry past the limit is answered 429 and not run.
//!
//! An entry's answer is read into memory (it is rendered into the Bundle's), so it is bounded:
//! [`MAX_ENTRY_ANSWER`] bytes an entry, [`MAX_BUNDLE_ANSWER`] for the whole Bundle. An answer
//! over the bound keeps its status, `Location` and `ETag` (what happened happened) and carries
//! an OperationOutcome saying it was left out, instead of its body.
//!
//! A `batch` runs each entry on its own. A `transaction` runs them inside one
//! [`Transaction`]: their commands are decided into one store batch and committed in ONE
//! statement once every entry has succeeded, or not at all; `urn:uuid:` placeholders name
//! what earlier entries created (a household and its members in one request).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::{Json, Router};
use serde_json::Value;
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::batch::{
    BatchBundle, BatchEntry, BatchResponse, EntryResponse, ResponseEntry, MAX_ENTRIES,
};
use crate::api::json::ApiJson;
use crate::api::schema::OperationOutcome;
use crate::api::BASE;
use crate::app::AppState;
use crate::auth::rate_limit::QuotaSlot;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::resource::{store_error, Audit};
use crate::store::{StoreError, Transaction};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(batch))
}

/// Attempts of a transaction that lost a race for one of its streams (each decides anew).
const TRANSACTION_ATTEMPTS: u32 = 4;

/// The largest answer of one entry that is read (this API's own JSON: a page of 100
/// registrants, or a large household, is far smaller).
const MAX_ENTRY_ANSWER: usize = 4 * 1024 * 1024;

/// The most answer bytes read for all the entries of one Bundle together.
const MAX_BUNDLE_ANSWER: usize = 32 * 1024 * 1024;

/// The routes an entry may address: every resource's, but neither `$batch` itself nor
/// authentication. Built once; each Bundle gives it the server's state.
fn entry_routes() -> Router<AppState> {
    static ROUTES: OnceLock<Router<AppState>> = OnceLock::new();
    ROUTES
        .get_or_init(|| {
            let resources = OpenApiRouter::new()
                .merge(super::individual::routes())
                .merge(super::group::routes())
                .merge(super::program::routes())
                .merge(super::program_membership::routes())
                .merge(super::household::routes())
                .merge(super::consent::routes())
                .merge(super::cycle::routes())
                .merge(super::entitlement::routes())
                .merge(super::product::routes())
                .merge(super::service_point::routes())
                .merge(super::vocabulary::routes());
            let (router, _) = OpenApiRouter::new().nest(BASE, resources).split_for_parts();
            router
                .fallback(super::not_found)
                .layer(axum::middleware::map_response(
                    super::outcome::framework_errors_as_outcomes,
                ))
        })
        .clone()
}

/// Apply many requests in one: a `transaction` (all or nothing, in one database transaction,
/// resolving `urn:uuid:` placeholders between entries) or a `batch` (each entry on its own).
/// Scopes and consent are checked per entry, as for the request alone.
#[utoipa::path(post, path = "/$batch", tag = "Batch",
    request_body = BatchBundle,
    responses(
        (status = 200, body = BatchResponse, description = "`transaction-response` (every entry applied) or `batch-response` (each entry's own status, `Location`, `ETag`, or OperationOutcome)"),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
        (status = 409, body = OperationOutcome, description = "A transaction kept losing races for its resources; nothing was applied"),
        (status = 413, body = OperationOutcome, description = "The Bundle is larger than the server accepts"),
        (status = 415, body = OperationOutcome),
        (status = 422, body = OperationOutcome, description = "Not a Bundle, more than 1 000 entries, or a transaction entry failed (named with its own diagnostics; nothing was applied)"),
        (status = 429, body = OperationOutcome, description = "The client's rate limit is spent; each entry counts as one request, and a transaction whose entries exceed what is left runs none"),
        (status = 503, body = OperationOutcome, description = "The database could not serve a transaction entry just now (unavailable, a lock or statement timeout, a deadlock): nothing was applied; send it again after Retry-After"),
    ),
    security(("bearer" = [])))]
async fn batch(
    State(state): State<AppState>,
    principal: Principal,
    quota: Option<Extension<QuotaSlot>>,
    headers: HeaderMap,
    body: Result<ApiJson<BatchBundle>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(bundle) = body?;
    if bundle.resource_type != "Bundle" {
        return Err(ApiError::unprocessable("resourceType", "must be Bundle"));
    }
    if bundle.entry.len() > MAX_ENTRIES {
        return Err(ApiError::unprocessable(
            "entry",
            format!(
                "a Bundle carries at most {MAX_ENTRIES} entries; this one has {}",
                bundle.entry.len()
            ),
        ));
    }
    let mut dispatch = Dispatch::new(state, principal, headers);
    dispatch.quota = quota.map(|Extension(slot)| slot);
    match bundle.bundle_type.as_str() {
        "batch" => Ok(Json(dispatch.each_alone(&bundle.entry).await).into_response()),
        "transaction" => {
            let entries = bundle.entry.len();
            // The Bundle's own admission counted its first entry; the rest count now, all
            // together, before any entry runs.
            dispatch
                .admit(entries.saturating_sub(1))
                .await
                .map_err(|error| {
                    throttled(
                        error,
                        &format!(
                            "this transaction's {entries} entries are more than the current \
                             window has left, so none was applied"
                        ),
                    )
                })?;
            dispatch
                .all_or_nothing(&bundle.entry)
                .await
                .map(|answer| Json(answer).into_response())
        }
        _ => Err(ApiError::unprocessable(
            "type",
            "must be transaction or batch",
        )),
    }
}

/// A rate-limit refusal of Bundle entries, saying so (any other error as it is).
fn throttled(error: ApiError, what: &str) -> ApiError {
    if error.status != StatusCode::TOO_MANY_REQUESTS {
        return error;
    }
    ApiError {
        diagnostics: format!(
            "rate limit exceeded: each entry of a Bundle counts as one request, and {what}; \
             retry after the number of seconds in Retry-After"
        ),
        ..error
    }
}

/// How the entries of one Bundle (or the rows of an imported file) are sent.
pub(crate) struct Dispatch {
    routes: Router,
    state: AppState,
    principal: Principal,
    /// The Bundle's headers, which every entry carries (token, request id, source system).
    headers: HeaderMap,
    /// Where the Bundle's response tells the client's quota (after its entries counted).
    quota: Option<QuotaSlot>,
}

/// What one entry was answered, with the access-log entry it built.
pub(crate) struct Outcome {
    pub status: StatusCode,
    pub location: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    pub body: Option<Value>,
    /// The answer was longer than it was allowed to be, and was not read.
    too_large: Option<usize>,
    /// The answer says to try again (a 503, or `Retry-After`): nothing the entry asked for is
    /// wrong, the server could not do it just now.
    pub transient: bool,
    /// The answer's `Retry-After`.
    retry_after: Option<String>,
    /// How many bytes of answer were read.
    answer_bytes: usize,
    audit: Audit,
}

impl Dispatch {
    /// Entries run as `principal`, with `headers` (provenance, request id).
    pub(crate) fn new(state: AppState, principal: Principal, headers: HeaderMap) -> Self {
        Self {
            routes: entry_routes().with_state(state.clone()),
            state,
            principal,
            headers,
            quota: None,
        }
    }

    /// Counts `n` more requests of the Bundle's client against its rate limits: all of them,
    /// or (429) none.
    async fn admit(&self, n: usize) -> Result<(), ApiError> {
        let auth = &self.state.auth;
        let (client, limits) = (&self.principal.client_id, self.principal.limits);
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let admitted = auth.limiter.admit_many(&auth.pool, client, limits, n).await;
        if let Some(slot) = &self.quota {
            slot.set(auth.limiter.quota(client, limits));
        }
        admitted
    }

    /// A `batch`: each entry applied on its own, answered as it would be alone.
    async fn each_alone(&self, entries: &[BatchEntry]) -> BatchResponse {
        let mut placeholders = Placeholders::default();
        let mut answered = Vec::with_capacity(entries.len());
        let mut budget = MAX_BUNDLE_ANSWER;
        for (index, entry) in entries.iter().enumerate() {
            // The first entry was counted with the Bundle.
            let admitted = if index == 0 {
                Ok(())
            } else {
                self.admit(1).await
            };
            let outcome = match admitted {
                Ok(()) => {
                    let limit = MAX_ENTRY_ANSWER.min(budget);
                    self.send_within(entry, &placeholders, limit).await
                }
                Err(error) => {
                    let error = throttled(
                        error,
                        "the current window was spent before this entry, which was not applied",
                    );
                    Outcome::read(error.into_response(), Audit::default(), MAX_ENTRY_ANSWER).await
                }
            };
            budget = budget.saturating_sub(outcome.answer_bytes);
            if outcome.status.is_success() {
                placeholders.learn(entry, &outcome);
            }
            self.record(&outcome, outcome.status).await;
            answered.push(outcome.entry(entry, true));
        }
        BatchResponse {
            resource_type: "Bundle",
            bundle_type: "batch-response",
            entry: answered,
        }
    }

    /// A `transaction`: every entry decided into one batch, committed once all succeeded.
    async fn all_or_nothing(&self, entries: &[BatchEntry]) -> Result<BatchResponse, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let transaction = Transaction::new(&self.state.store);
            let mut placeholders = Placeholders::default();
            let mut outcomes: Vec<Outcome> = Vec::with_capacity(entries.len());
            let mut budget = MAX_BUNDLE_ANSWER;
            for (index, entry) in entries.iter().enumerate() {
                let limit = MAX_ENTRY_ANSWER.min(budget);
                let outcome = transaction
                    .run(self.send_within(entry, &placeholders, limit))
                    .await;
                budget = budget.saturating_sub(outcome.answer_bytes);
                if !outcome.status.is_success() {
                    let error = if outcome.transient || outcome.status.is_server_error() {
                        not_done(index, entry, &outcome)
                    } else {
                        entry_failed(index, entry, &outcome)
                    };
                    self.record_all(&outcomes, error.status).await;
                    self.record(&outcome, outcome.status).await;
                    return Err(error);
                }
                placeholders.learn(entry, &outcome);
                outcomes.push(outcome);
            }
            match transaction.commit().await {
                Ok(receipt) => {
                    let committed_at = receipt.map(|r| {
                        r.recorded_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    });
                    let mut answered = Vec::with_capacity(entries.len());
                    for (entry, mut outcome) in entries.iter().zip(outcomes) {
                        self.record(&outcome, outcome.status).await;
                        if committed_at.is_some() && outcome.location.is_some() {
                            outcome.last_modified.clone_from(&committed_at);
                        }
                        answered.push(outcome.entry(entry, false));
                    }
                    return Ok(BatchResponse {
                        resource_type: "Bundle",
                        bundle_type: "transaction-response",
                        entry: answered,
                    });
                }
                // A lost race, or a status an entry was decided on changed: every entry is
                // decided again, from what now holds.
                Err(StoreError::Conflict | StoreError::FactChanged)
                    if attempt < TRANSACTION_ATTEMPTS =>
                {
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Err(StoreError::IdentifierInUse(identifier)) => {
                    // Two entries claimed one identifier, or another writer took it meanwhile:
                    // the entry claiming it is the one that failed.
                    let key = identifier.key();
                    let claimed = outcomes.iter().rposition(|o| claims(o, &identifier));
                    let alone = ApiError::conflict(
                        Some("identifier"),
                        format!("identifier {key} is already in use"),
                    );
                    let error = match claimed {
                        Some(index) => failed_at(index, &entries[index], &alone),
                        None => alone,
                    };
                    self.record_all(&outcomes, error.status).await;
                    return Err(error);
                }
                Err(error) => {
                    let error = store_error(error, "Bundle");
                    self.record_all(&outcomes, error.status).await;
                    return Err(error);
                }
            }
        }
    }

    /// Sends one entry to its route, as a request of its own.
    pub(crate) async fn send(&self, entry: &BatchEntry, placeholders: &Placeholders) -> Outcome {
        self.send_within(entry, placeholders, MAX_ENTRY_ANSWER)
            .await
    }

    /// Sends one entry, reading at most `limit` bytes of its answer.
    async fn send_within(
        &self,
        entry: &BatchEntry,
        placeholders: &Placeholders,
        limit: usize,
    ) -> Outcome {
        let audit = Audit::default();
        let response = match self.request(entry, placeholders, &audit) {
            Ok(request) => match self.routes.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(error) => error.into_response(),
        };
        Outcome::read(response, audit, limit).await
    }

    fn request(
        &self,
        entry: &BatchEntry,
        placeholders: &Placeholders,
        audit: &Audit,
    ) -> Result<Request, ApiError> {
        let method = match entry.request.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            _ => {
                return Err(ApiError::unprocessable(
                    "request.method",
                    "must be GET, POST, PUT, PATCH or DELETE",
                ))
            }
        };
        let url = placeholders.in_url(&entry.request.url);
        let relative = url
            .strip_prefix(BASE)
            .unwrap_or(&url)
            .trim_start_matches('/');
        let uri: Uri = format!("{BASE}/{relative}").parse().map_err(|_| {
            ApiError::bad_request(Some("request.url"), "is not a relative URL of this API")
        })?;
        let mut headers = self.headers.clone();
        for name in [
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::TRANSFER_ENCODING,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
        ] {
            headers.remove(name);
        }
        let content_type = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(tag) = &entry.request.if_match {
            let tag = HeaderValue::from_str(tag).map_err(|_| {
                ApiError::bad_request(Some("request.ifMatch"), "is not a valid ETag")
            })?;
            headers.insert(header::IF_MATCH, tag);
        }
        let body = match &entry.resource {
            Some(resource) => Body::from(placeholders.in_body(resource.clone()).to_string()),
            None => Body::empty(),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        request.extensions_mut().insert(self.principal.clone());
        request.extensions_mut().insert(audit.clone());
        Ok(request)
    }

    /// Records an entry's access with `status`: its own, or (for an entry of a transaction
    /// that applied nothing) the transaction's.
    async fn record(&self, outcome: &Outcome, status: StatusCode) {
        outcome
            .audit
            .record(&self.state.access_log, status.as_u16())
            .await;
    }

    async fn record_all(&self, outcomes: &[Outcome], status: StatusCode) {
        for outcome in outcomes {
            self.record(outcome, status).await;
        }
    }
}

impl Outcome {
    /// The answer `response`, reading at most `limit` bytes of its body.
    async fn read(response: Response, audit: Audit, limit: usize) -> Self {
        let (parts, body) = response.into_parts();
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(header::LOCATION);
        let retry_after = header(header::RETRY_AFTER);
        let etag = header(header::ETAG);
        let last_modified = header(header::LAST_MODIFIED);
        let status = parts.status;
        // What may pass if sent again: the database unavailable (503) or a write that lost a
        // race (a `Retry-After` on a 409 or 429). Any other 5xx (a corrupt stream, an internal
        // fault) would fail the same way every time, so it is the row's refusal.
        let transient = status == StatusCode::SERVICE_UNAVAILABLE || retry_after.is_some();
        let (body, answer_bytes, too_large) = match to_bytes(body, limit).await {
            Ok(bytes) => (serde_json::from_slice(&bytes).ok(), bytes.len(), None),
            Err(_) => (None, limit, Some(limit)),
        };
        Self {
            status,
            location,
            etag,
            last_modified,
            body,
            too_large,
            transient,
            retry_after,
            answer_bytes,
            audit,
        }
    }

    /// The text at `pointer` in the answer's body.
    fn text(&self, pointer: &str) -> Option<String> {
        self.body
            .as_ref()
            .and_then(|b| b.pointer(pointer))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// What the answer says went wrong: its OperationOutcome's diagnostics, else its status.
    fn diagnostics(&self) -> String {
        self.text("/issue/0/diagnostics")
            .or_else(|| self.text("/detail"))
            .unwrap_or_else(|| status_line(self.status))
    }

    /// The response entry. A transaction's shows no resource: it was rendered before the
    /// commit, so its stamps are not the committed ones (read it back for its body).
    fn entry(self, request: &BatchEntry, with_resource: bool) -> ResponseEntry {
        let success = self.status.is_success();
        let (resource, outcome) = match (self.body, self.too_large) {
            (_, Some(limit)) => (None, Some(left_out(limit))),
            (Some(body), None) if success => (with_resource.then_some(body), None),
            (Some(body), None) => (None, Some(body)),
            (None, None) => (None, None),
        };
        ResponseEntry {
            full_url: request.full_url.clone(),
            resource,
            response: EntryResponse {
                status: status_line(self.status),
                location: self.location,
                etag: self.etag,
                last_modified: self.last_modified,
                outcome,
            },
        }
    }
}

/// What an entry whose answer was too long to carry carries instead.
fn left_out(limit: usize) -> Value {
    let diagnostics = format!(
        "the answer to this entry is longer than {limit} bytes and is left out of the Bundle \
         (its status, Location and ETag stand); send this request on its own"
    );
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "too-costly", "diagnostics": diagnostics}],
        "detail": diagnostics,
    })
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Whether the resource an entry answered carries `identifier`.
pub(crate) fn claims(outcome: &Outcome, identifier: &openspp_aggregates::Identifier) -> bool {
    outcome
        .body
        .as_ref()
        .and_then(|b| b.get("identifier"))
        .and_then(Value::as_array)
        .is_some_and(|identifiers| {
            identifiers.iter().any(|i| {
                i["system"].as_str() == Some(identifier.system.as_str())
                    && i["value"].as_str() == Some(identifier.value.as_str())
            })
        })
}

/// A transaction's answer when entry `index` failed: 422 naming the entry (and its field,
/// if its own answer named one), carrying that entry's own diagnostics.
fn entry_failed(index: usize, entry: &BatchEntry, outcome: &Outcome) -> ApiError {
    let mut alone = ApiError::new(outcome.status, "invalid", outcome.diagnostics());
    alone.expression = outcome.text("/issue/0/expression/0");
    failed_at(index, entry, &alone)
}

/// A transaction's answer when the server could not do entry `index` (the database
/// unavailable or failing, a race lost: a 5xx, or `Retry-After`): nothing the entry asked for
/// is wrong, so it is not the transaction's 422 but the entry's own status (503 …) with its
/// `Retry-After`, naming the entry; nothing was applied, and the Bundle may be sent again.
fn not_done(index: usize, entry: &BatchEntry, outcome: &Outcome) -> ApiError {
    let code = match outcome.status {
        StatusCode::INTERNAL_SERVER_ERROR => "exception",
        StatusCode::CONFLICT => "conflict",
        _ => "transient",
    };
    let error = ApiError::new(
        outcome.status,
        code,
        format!(
            "{} could not be applied just now ({}: {}); the transaction applied nothing",
            entry_name(index, entry),
            status_line(outcome.status),
            outcome.diagnostics()
        ),
    );
    match &outcome.retry_after {
        Some(after) => error.with_header(header::RETRY_AFTER, after),
        None => error,
    }
}

/// How an answer names entry `index`: by its position, and its `fullUrl` if it has one.
fn entry_name(index: usize, entry: &BatchEntry) -> String {
    match &entry.full_url {
        Some(full_url) => format!("entry[{index}] ({full_url})"),
        None => format!("entry[{index}]"),
    }
}

fn failed_at(index: usize, entry: &BatchEntry, alone: &ApiError) -> ApiError {
    let name = entry_name(index, entry);
    let field = match &alone.expression {
        Some(expression) => format!("entry[{index}].resource.{expression}"),
        None => format!("entry[{index}]"),
    };
    ApiError::unprocessable(
        &field,
        format!(
            "{name} failed with {}: {}; the transaction applied nothing",
            status_line(alone.status),
            alone.diagnostics
        ),
    )
}

/// What the `urn:uuid:` placeholders of earlier entries stand for: the resource each created,
/// by its type and identifier as its `Location` names it (`Individual`, `urn:…%23…|…`).
#[derive(Default)]
pub(crate) struct Placeholders(HashMap<String, (String, String)>);

const UUID_URN: &str = "urn:uuid:";

impl Placeholders {
    pub(crate) fn learn(&mut self, entry: &BatchEntry, outcome: &Outcome) {
        let (Some(full_url), Some(location)) = (&entry.full_url, &outcome.location) else {
            return;
        };
        if !full_url.starts_with(UUID_URN) {
            return;
        }
        let (path, query) = location.split_once('?').unwrap_or((location, ""));
        let Some(path) = path.strip_prefix(BASE).and_then(|p| p.strip_prefix('/')) else {
            return;
        };
        let Some((kind, id)) = path.split_once('/') else {
            return;
        };
        // A `Location` that needs its query (a membership, by beneficiary and `?program=`)
        // does not name the resource alone: its own identifier does.
        let id = if query.is_empty() {
            id.to_owned()
        } else {
            let Some(own) = outcome.body.as_ref().map(|b| &b["identifier"][0]) else {
                return;
            };
            match (own["system"].as_str(), own["value"].as_str()) {
                (Some(system), Some(value)) => format!("{}|{value}", system.replace('#', "%23")),
                _ => return,
            }
        };
        self.0.insert(full_url.clone(), (kind.to_owned(), id));
    }

    /// A reference to a placeholder (`"urn:uuid:…"`) becomes `{Type}/{identifier}`.
    fn in_body(&self, value: Value) -> Value {
        match value {
            Value::String(text) if text.starts_with(UUID_URN) => match self.0.get(&text) {
                Some((kind, id)) => Value::String(format!("{kind}/{id}")),
                None => Value::String(text),
            },
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.in_body(v)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, self.in_body(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// A placeholder in a path segment (`Group/urn:uuid:…/$add-member`) becomes the identifier.
    fn in_url(&self, url: &str) -> String {
        let mut resolved = String::with_capacity(url.len());
        let mut rest = url;
        while let Some(start) = rest.find(UUID_URN) {
            let end = rest[start..]
                .find(['/', '?'])
                .map_or(rest.len(), |n| start + n);
            resolved.push_str(&rest[..start]);
            match self.0.get(&rest[start..end]) {
                Some((_, id)) => resolved.push_str(id),
                None => resolved.push_str(&rest[start..end]),
            }
            rest = &rest[end..];
        }
        resolved.push_str(rest);
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answered(body: String, limit: usize) -> Outcome {
        let response = (
            StatusCode::OK,
            [(header::LOCATION, "/api/v2/spp/Individual/x|1")],
            body,
        )
            .into_response();
        Outcome::read(response, Audit::default(), limit).await
    }

    #[tokio::test]
    async fn an_answer_over_the_bound_is_left_out_with_its_status() {
        let text = serde_json::json!({"padding": "x".repeat(100)}).to_string();
        let whole = answered(text.clone(), text.len()).await;
        assert_eq!(whole.answer_bytes, text.len());
        assert!(whole.body.is_some() && whole.too_large.is_none());

        let cut = answered(text.clone(), text.len() - 1).await;
        assert!(cut.body.is_none());
        assert_eq!(cut.too_large, Some(text.len() - 1));
        assert!(cut.answer_bytes < text.len());
        let entry = cut.entry(
            &BatchEntry {
                full_url: None,
                resource: None,
                request: crate::api::batch::EntryRequest {
                    method: "GET".to_owned(),
                    url: "Individual".to_owned(),
                    if_match: None,
                },
            },
            true,
        );
        assert_eq!(entry.response.status, "200 OK");
        assert_eq!(
            entry.response.location.as_deref(),
            Some("/api/v2/spp/Individual/x|1")
        );
        assert!(entry.resource.is_none());
        let outcome = entry.response.outcome.expect("an OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "too-costly");
    }

    #[tokio::test]
    async fn a_transaction_entry_the_server_could_not_do_keeps_its_status() {
        let entry = BatchEntry {
            full_url: Some("urn:uuid:00000000-0000-4000-8000-000000000001".to_owned()),
            resource: None,
            request: crate::api::batch::EntryRequest {
                method: "POST".to_owned(),
                url: "Group".to_owned(),
                if_match: None,
            },
        };
        let unavailable = crate::error::ApiError::unavailable("down")
            .with_header(header::RETRY_AFTER, "1")
            .into_response();
        let outcome = Outcome::read(unavailable, Audit::default(), 1024).await;
        let error = not_done(2, &entry, &outcome);
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "transient");
        assert!(error
            .headers
            .iter()
            .any(|(name, value)| name == header::RETRY_AFTER && value == "1"));
        assert!(
            error.diagnostics.contains("entry[2] (urn:uuid:")
                && error.diagnostics.contains("down")
                && error.diagnostics.contains("applied nothing"),
            "{}",
            error.diagnostics
        );
        // A fault of the server is not the entry's: it stays a 500, with nothing to retry.
        let internal = crate::error::ApiError::internal().into_response();
        let outcome = Outcome::read(internal, Audit::default(), 1024).await;
        let error = not_done(0, &entry, &outcome);
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.code, "exception");
        assert!(error.headers.is_empty());
    }

    #[tokio::test]
    async fn the_server_saying_retry_is_transient() {
        let unavailable = crate::error::ApiError::unavailable("down")
            .with_header(header::RETRY_AFTER, "1")
            .into_response();
        assert!(
            Outcome::read(unavailable, Audit::default(), 1024)
                .await
                .transient
        );
        let refused =
            crate::error::ApiError::conflict(Some("identifier"), "in use").into_response();
        assert!(
            !Outcome::read(refused, Audit::default(), 1024)
                .await
                .transient
        );
        // A fault that would recur on every attempt (a corrupt stream) is the row's refusal,
        // not a pause of the whole import.
        let internal = crate::error::ApiError::internal().into_response();
        assert!(
            !Outcome::read(internal, Audit::default(), 1024)
                .await
                .transient
        );
    }
}
