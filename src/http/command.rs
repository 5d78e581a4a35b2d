//! Running a command from a handler: domain and store errors become API errors. The store
//! writes every read model in the append itself, so once a write returns, the writer's next
//! read (and everyone else's) reflects it: there is nothing to wait for.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use openspp_aggregates::{DomainError, RegistryServices};

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{CommandMetadata, Committed, StoreError, Stored};

/// The version a writer says it is changing (`If-Match`); `None` means "the latest".
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(Self(None));
        }
        let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        // A tag this server never issued cannot be current.
        tag.parse::<u64>().map(|v| Self(Some(v))).map_err(|_| {
            ApiError::precondition_failed("If-Match does not name a version of this resource")
        })
    }
}

/// `ETag: "<versionId>"`.
pub fn etag(version: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// Runs `command` on stream `aggregate_id`; every read model includes it once this returns.
pub async fn execute<A>(
    state: &AppState,
    aggregate_id: &str,
    if_match: IfMatch,
    command: A::Command,
    metadata: &CommandMetadata,
) -> Result<Committed<A>, ApiError>
where
    A: Stored<Services = RegistryServices, Error = DomainError>,
{
    state
        .store
        .execute::<A>(aggregate_id, if_match.0, command, &state.services, metadata)
        .await
        .map_err(|error| store_error(error, A::TYPE))
}

pub fn domain_error(error: DomainError) -> ApiError {
    match error {
        DomainError::Invalid { field, message } => ApiError::unprocessable(&field, message),
        DomainError::Conflict { field, message } => ApiError::conflict(field.as_deref(), message),
        DomainError::Forbidden { field, message } => ApiError::forbidden(Some(&field), message),
        DomainError::NotFound { what } => ApiError::not_found(&what),
        DomainError::AlreadyExists => ApiError::conflict(None, "already registered"),
    }
}

/// `resource` is the aggregate's type, which is also the resource's name in not-found answers.
fn store_error(error: StoreError<DomainError>, resource: &str) -> ApiError {
    match error {
        StoreError::Domain(e) => domain_error(e),
        StoreError::PreconditionFailed { current } => ApiError::precondition_failed(format!(
            "If-Match names a stale version; the current version is {current}"
        )),
        StoreError::Conflict => {
            ApiError::conflict(None, "the resource is being changed concurrently; retry")
                .with_header(header::RETRY_AFTER, "1")
        }
        StoreError::IdentifierInUse(identifier) => ApiError::conflict(
            Some("identifier"),
            format!("identifier {} is already in use", identifier.key()),
        ),
        // The consent was withdrawn while the command ran: from now on the subject is unknown
        // to this client, and the answer is exactly the one for an unknown subject.
        StoreError::ConsentLapsed => ApiError::not_found(resource),
        StoreError::Unavailable(error) => {
            tracing::warn!(%error, "database unavailable; nothing was written");
            ApiError::unavailable("the database is unavailable; nothing was written, retry")
                .with_header(header::RETRY_AFTER, "1")
        }
        StoreError::OutcomeUnknown => {
            tracing::error!("connection lost while committing; the outcome is unknown");
            ApiError::unavailable(
                "the connection to the database was lost while this write was committing: it \
                 may have been recorded; read the resource before sending it again",
            )
        }
        StoreError::Corrupt(reason) => {
            tracing::error!(%reason, "unreadable event stream");
            ApiError::internal()
        }
        StoreError::Database(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_database_is_503_with_retry_after_and_an_unknown_outcome_is_not_a_retry() {
        let unavailable = store_error(
            StoreError::Unavailable(sqlx::Error::PoolTimedOut),
            "Individual",
        );
        assert_eq!(unavailable.status.as_u16(), 503);
        assert!(unavailable
            .headers
            .iter()
            .any(|(name, value)| name == header::RETRY_AFTER && value == "1"));
        let unknown = store_error(StoreError::OutcomeUnknown, "Individual");
        assert_eq!(unknown.status.as_u16(), 503);
        assert!(
            unknown.headers.is_empty(),
            "no automatic retry of a write that may be recorded"
        );
        assert!(unknown.diagnostics.contains("may have been recorded"));
    }
}
