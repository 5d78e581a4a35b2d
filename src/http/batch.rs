//! `POST /$batch` (CONTRACT §10): many requests in one, FHIR-style.
//!
//! Each entry is dispatched, as a request of its own, to the very routes a lone request
//! reaches — same extraction, scope and consent checks, aggregate invariants, answer and
//! access-log entry — so a Bundle cannot behave differently from its entries sent one by one.
//! The entries run as the Bundle's principal, admitted (and counted against the rate limits)
//! once.
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
use crate::auth::Principal;
use crate::error::ApiError;
use crate::resource::{store_error, Audit};
use crate::store::{StoreError, Transaction};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(batch))
}

/// Attempts of a transaction that lost a race for one of its streams (each decides anew).
const TRANSACTION_ATTEMPTS: u32 = 4;

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
                .merge(super::consent::routes())
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
        (status = 429, body = OperationOutcome),
    ),
    security(("bearer" = [])))]
async fn batch(
    State(state): State<AppState>,
    principal: Principal,
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
    let dispatch = Dispatch::new(state, principal, headers);
    match bundle.bundle_type.as_str() {
        "batch" => Ok(Json(dispatch.each_alone(&bundle.entry).await).into_response()),
        "transaction" => dispatch
            .all_or_nothing(&bundle.entry)
            .await
            .map(|answer| Json(answer).into_response()),
        _ => Err(ApiError::unprocessable(
            "type",
            "must be transaction or batch",
        )),
    }
}

/// How the entries of one Bundle (or the rows of an imported file) are sent.
pub(crate) struct Dispatch {
    routes: Router,
    state: AppState,
    principal: Principal,
    /// The Bundle's headers, which every entry carries (token, request id, source system).
    headers: HeaderMap,
}

/// What one entry was answered, with the access-log entry it built.
pub(crate) struct Outcome {
    pub status: StatusCode,
    pub location: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    pub body: Option<Value>,
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
        }
    }

    /// A `batch`: each entry applied on its own, answered as it would be alone.
    async fn each_alone(&self, entries: &[BatchEntry]) -> BatchResponse {
        let mut placeholders = Placeholders::default();
        let mut answered = Vec::with_capacity(entries.len());
        for entry in entries {
            let outcome = self.send(entry, &placeholders).await;
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
            for (index, entry) in entries.iter().enumerate() {
                let outcome = transaction.run(self.send(entry, &placeholders)).await;
                if !outcome.status.is_success() {
                    let error = entry_failed(index, entry, &outcome);
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
        let audit = Audit::default();
        let response = match self.request(entry, placeholders, &audit) {
            Ok(request) => match self.routes.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(error) => error.into_response(),
        };
        Outcome::read(response, audit).await
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
        if let Some(entry) = outcome.audit.finish(status.as_u16()) {
            self.state.access_log.record(entry).await;
        }
    }

    async fn record_all(&self, outcomes: &[Outcome], status: StatusCode) {
        for outcome in outcomes {
            self.record(outcome, status).await;
        }
    }
}

impl Outcome {
    async fn read(response: Response, audit: Audit) -> Self {
        let (parts, body) = response.into_parts();
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(header::LOCATION);
        let etag = header(header::ETAG);
        let last_modified = header(header::LAST_MODIFIED);
        let status = parts.status;
        let body = to_bytes(body, usize::MAX)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Self {
            status,
            location,
            etag,
            last_modified,
            body,
            audit,
        }
    }

    /// The response entry. A transaction's shows no resource: it was rendered before the
    /// commit, so its stamps are not the committed ones (read it back for its body).
    fn entry(self, request: &BatchEntry, with_resource: bool) -> ResponseEntry {
        let success = self.status.is_success();
        let (resource, outcome) = match self.body {
            Some(body) if success => (with_resource.then_some(body), None),
            Some(body) => (None, Some(body)),
            None => (None, None),
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
    let body = outcome.body.as_ref();
    let text = |pointer: &str| {
        body.and_then(|b| b.pointer(pointer))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut alone = ApiError::new(
        outcome.status,
        "invalid",
        text("/issue/0/diagnostics")
            .or_else(|| text("/detail"))
            .unwrap_or_else(|| status_line(outcome.status)),
    );
    alone.expression = text("/issue/0/expression/0");
    failed_at(index, entry, &alone)
}

fn failed_at(index: usize, entry: &BatchEntry, alone: &ApiError) -> ApiError {
    let name = match &entry.full_url {
        Some(full_url) => format!("entry[{index}] ({full_url})"),
        None => format!("entry[{index}]"),
    };
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
