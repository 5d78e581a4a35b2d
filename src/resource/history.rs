//! Provenance for auditors (CONTRACT §6): a resource's versions as a FHIR history Bundle, the
//! resource as it was at a version or an instant, and the verification of its hash chain.
//! Versions are folded from the event log with the domain's own `apply`, so a past version is
//! exactly what a read answered then (cross-resource parts, such as an individual's group
//! memberships, are not part of the stream and are left out).

use axum::http::Uri;
use cqrs_es::Aggregate;
use openspp_projections::view::ViewRow;
use serde_json::{Map, Value};

use crate::api::bundle::{FieldChange, HistoryBundle, HistoryEvent, Provenance, ResourceVersion};
use crate::api::params::{self, Params};
use crate::app::AppState;
use crate::error::ApiError;
use crate::resource::grant::Grant;
use crate::store::history::{self, Recorded};
use crate::store::verify::{verify, Verification};

/// One version of a resource: the state after an event, and the event.
pub struct Version<A> {
    pub state: A,
    pub event: Recorded,
}

impl<A> Version<A> {
    pub fn number(&self) -> i64 {
        self.event.sequence
    }

    /// This version as a snapshot of `stream`, to render as a read answered then.
    pub fn snapshot(&self, stream: &str) -> ViewRow<A>
    where
        A: Clone,
    {
        ViewRow {
            aggregate_id: stream.to_owned(),
            version: self.event.sequence,
            last_updated: self.event.recorded_at,
            source: self.source(),
            state: self.state.clone(),
        }
    }

    pub fn source(&self) -> Option<String> {
        self.event.metadata["source_system"]
            .as_str()
            .map(str::to_owned)
    }
}

/// Every version of a stream, oldest first.
pub async fn versions<A: Aggregate + Clone>(
    state: &AppState,
    stream: &str,
) -> Result<Vec<Version<A>>, ApiError> {
    let versions =
        history::versions::<A>(&state.pool, stream)
            .await
            .map_err(|error| match error {
                history::VersionsError::Database(error) => ApiError::from(error),
                history::VersionsError::Undecodable(error) => {
                    tracing::error!(%error, "unreadable stored event");
                    ApiError::internal()
                }
            })?;
    Ok(versions
        .into_iter()
        .map(|(state, event)| Version { state, event })
        .collect())
}

/// The version a vread asks for.
pub fn at_version<A>(
    versions: Vec<Version<A>>,
    version: &str,
    resource: &str,
) -> Result<Version<A>, ApiError> {
    let number: i64 = version
        .parse()
        .map_err(|_| ApiError::bad_request(Some("versionId"), "must be a version number"))?;
    versions
        .into_iter()
        .find(|v| v.number() == number)
        .ok_or_else(|| ApiError::not_found(&format!("{resource} version")))
}

/// The version current at `instant` (`_at`); 404 before the resource existed.
pub fn at_instant<A>(
    versions: Vec<Version<A>>,
    instant: &str,
    resource: &str,
) -> Result<Version<A>, ApiError> {
    let instant = params::instant("_at", instant, false)?;
    versions
        .into_iter()
        .take_while(|v| v.event.recorded_at <= instant)
        .last()
        .ok_or_else(|| ApiError::not_found(resource))
}

/// Top-level fields that differ between two renderings (`meta` aside).
fn changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| key.as_str() != "meta")
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| FieldChange {
            field: key.clone(),
            old: before.get(key).cloned().unwrap_or(Value::Null),
            new: after.get(key).cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// Who, from where, how, when, in which request, under which consent.
fn provenance(event: &Recorded) -> Provenance {
    Provenance::of_event(&event.metadata, event.recorded_at, &event.hash)
}

/// The versions as a FHIR `history` Bundle, newest first, with `_since`, `_at`, `_count`,
/// `_offset` (taken from `params`, the query of `uri` less what the caller took). `render` shows a version as a read would; `grant`, if given, is applied to every
/// version before the changes are computed, so hidden fields appear neither in the resources
/// nor in `changes`.
///
/// A caller whose view is limited (a field filter, or a consent) learns *that* the resource
/// changed and *when* — every version is listed, with its real `versionId` and time, as
/// optimistic concurrency needs them and as `_history/{n}` and `_at` serve them — but never
/// *what* changed where it may not see: a version that changed nothing the caller sees has
/// empty `changes` and the neutral event `Changed` instead of its own.
pub fn bundle<A>(
    uri: &Uri,
    mut params: Params,
    path: &str,
    versions: &[Version<A>],
    grant: Option<&Grant>,
    render: impl Fn(&Version<A>) -> Value,
) -> Result<HistoryBundle<ResourceVersion<Value>>, ApiError> {
    let page = params.page()?;
    let since = params.instants("_since")?;
    let at = params.instant("_at")?;
    params.finish()?;
    let rendered: Vec<Value> = versions
        .iter()
        .map(|v| match grant {
            Some(grant) => grant.filter(render(v)),
            None => render(v),
        })
        .collect();
    let limited = grant.is_some_and(Grant::is_limited);
    let entries: Vec<ResourceVersion<Value>> = (0..versions.len())
        .rev()
        .filter(|&i| {
            let when = versions[i].event.recorded_at;
            since.iter().all(|(_, s)| when >= *s) && at.is_none_or(|a| when <= a)
        })
        .map(|i| {
            let version = &versions[i];
            let before = if i == 0 {
                &Value::Null
            } else {
                &rendered[i - 1]
            };
            let changes = changes(before, &rendered[i]);
            let event = if limited && changes.is_empty() {
                HistoryEvent::neutral()
            } else {
                HistoryEvent::named(&version.event.event_type)
            };
            ResourceVersion {
                full_url: format!("{path}/_history/{}", version.number()),
                version_id: version.number().to_string(),
                event,
                changes,
                provenance: provenance(&version.event),
                resource: rendered[i].clone(),
            }
        })
        .collect();
    Ok(HistoryBundle::page(uri, page, entries))
}

/// Recomputes the stream's hash chain.
pub async fn verify_stream(
    state: &AppState,
    aggregate_type: &str,
    stream: &str,
) -> Result<Verification, ApiError> {
    let events = history::stream(&state.pool, aggregate_type, stream).await?;
    Ok(verify(&events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_list_old_and_new_values_except_meta() {
        let before = json!({"name": {"family": "A"}, "active": true, "meta": {"versionId": "1"}});
        let after = json!({"name": {"family": "B"}, "active": true, "gender": "2", "meta": {"versionId": "2"}});
        let diff = changes(&before, &after);
        assert_eq!(diff.len(), 2);
        assert_eq!(diff[0].field, "gender");
        assert_eq!(diff[0].old, Value::Null);
        assert_eq!(diff[1].field, "name");
        assert_eq!(diff[1].new["family"], "B");
    }
}
