//! What every resource endpoint shares: finding a stream by external identifier, choosing the
//! row a write answers with, and the response headers (`ETag`, `Location`).

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use openspp_projections::view::ViewRow;
use serde::Serialize;

use openspp_aggregates::{DomainError, RegistryServices};
use openspp_projections::view;
use serde::de::DeserializeOwned;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::access::{grants_for, identity_only, Grant};
use crate::http::command::{etag, execute, IfMatch};
use crate::http::context::Provenance;
use crate::http::reference::path_segment;
use crate::store::{Committed, Stored};

/// A command on one stream, as a handler prepared it.
pub struct Write<C> {
    pub stream: String,
    pub if_match: IfMatch,
    pub command: C,
    /// The consent the command relies on, if the caller needs one.
    pub consent_id: Option<String>,
    /// The subject as the request named it (`system|value`: the path's id for a change, the
    /// first identifier of the body for a registration), for the access log of a refused write.
    pub subject: String,
}

/// Runs a write, then returns the resource as its read model now holds it (read-your-writes has
/// waited for it) and what the caller may see of it.
pub async fn run<A>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    write: Write<A::Command>,
    resource: &'static str,
    view_table: &'static str,
    resource_type: &'static str,
) -> Result<(ViewRow<A>, Option<Grant>), ApiError>
where
    A: Stored<Services = RegistryServices, Error = DomainError> + DeserializeOwned + Subject,
{
    let executed = execute::<A>(
        state,
        &write.stream,
        write.if_match,
        write.command,
        &provenance
            .metadata(principal, write.consent_id)
            .relied_on_for(&write.stream),
    )
    .await;
    let committed = match executed {
        Ok(committed) => committed,
        Err(error) => {
            // A refused write touched the subject too (a stale version, a rule, an identifier
            // another registrant holds): the auditor sees who tried what, and how it ended.
            let entry = AccessEntry::new(principal, provenance.request_id(), resource, "write")
                .returned(
                    format!("{resource}/{}", write.subject),
                    Some(&write.stream),
                    None,
                )
                .outcome(error.status.as_u16());
            state.access_log.record(entry).await;
            return Err(error);
        }
    };
    let row = fresh_or_committed(
        &write.stream,
        view::get(&state.pool, view_table, &write.stream).await?,
        committed,
    );
    let mut grants = grants_for(
        state,
        principal,
        resource_type,
        std::slice::from_ref(&row.aggregate_id),
    )
    .await?;
    let grant = grants.remove(&row.aggregate_id);
    state
        .access_log
        .one(
            principal,
            provenance.request_id(),
            resource,
            "write",
            row.state.key().map(|key| (key, row.aggregate_id.as_str())),
            grant.as_ref(),
        )
        .await;
    Ok((row, grant))
}

/// A resource that other records reference by its first live identifier.
pub trait Subject {
    fn key(&self) -> Option<String>;
}

impl Subject for openspp_aggregates::Individual {
    fn key(&self) -> Option<String> {
        self.live_identifiers().next().map(|i| i.key())
    }
}

impl Subject for openspp_aggregates::Group {
    fn key(&self) -> Option<String> {
        self.live_identifiers().next().map(|i| i.key())
    }
}

/// The read model's row after a write (read-your-writes has waited for it), or, if the
/// projector lags beyond the wait, the committed state itself: the write is durable either way.
pub fn fresh_or_committed<A>(
    aggregate_id: &str,
    row: Option<ViewRow<A>>,
    committed: Committed<A>,
) -> ViewRow<A> {
    match row {
        Some(row) if row.version as u64 >= committed.version => row,
        _ => ViewRow {
            aggregate_id: aggregate_id.to_owned(),
            version: committed.version as i64,
            state: committed.aggregate,
            last_updated: chrono::Utc::now(),
            source: None,
        },
    }
}

/// A single resource with its `ETag`, consent headers, and on 201 its `Location` (by its first
/// identifier). Fields the grant does not allow are dropped; without a grant (a consent-requiring
/// client that just registered someone who has not consented yet) only the identity is shown.
pub fn reply<T: Serialize>(
    status: StatusCode,
    resource: &str,
    version: i64,
    first_identifier: Option<String>,
    body: T,
    grant: Option<&Grant>,
) -> Response {
    let body = serde_json::to_value(body).unwrap_or_default();
    let (body, mut headers) = match grant {
        Some(grant) => (grant.filter(body), grant.headers()),
        None => (identity_only(body), HeaderMap::new()),
    };
    headers.insert(header::ETAG, etag(version));
    if status == StatusCode::CREATED {
        if let Some(location) = first_identifier
            .map(|key| format!("/api/v2/spp/{resource}/{}", path_segment(&key)))
            .and_then(|l| l.parse().ok())
        {
            headers.insert(header::LOCATION, location);
        }
    }
    (status, headers, Json(body)).into_response()
}
