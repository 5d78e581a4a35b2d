//! The auditor's endpoints every registrant resource shares — history, one version, the resource
//! at an instant, chain verification — written once over a small trait.

use std::future::Future;

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;

use openspp_projections::view::{self, ViewRow};
use serde::de::DeserializeOwned;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::{find_visible, Grant, Visible};
use crate::http::context::Provenance;
use crate::http::history::{self, Version};
use crate::http::reference::path_segment;
use crate::http::resource::reply;
use crate::http::search::Params;
use crate::store::verify::Verification;

/// A resource about a data subject, read back version by version.
pub trait Registrant: Aggregate + Clone + Send + Sync + 'static {
    /// `Individual`, `Group`.
    const RESOURCE: &'static str;
    /// The consent scope's resource type: `individual`, `group`.
    const SCOPE: &'static str;
    /// The read model holding the current version: `individual_view`, `group_view`.
    const VIEW: &'static str;
    type Rendered: Serialize;
    /// What rendering needs beyond the state (member references …), loaded once per request
    /// and limited to what the caller may see.
    type Context: Send + Sync;

    fn context<'a>(
        state: &'a AppState,
        principal: &'a Principal,
        versions: &'a [Version<Self>],
    ) -> impl Future<Output = Result<Self::Context, ApiError>> + Send + 'a;

    fn render(state: &AppState, context: &Self::Context, version: &Version<Self>)
        -> Self::Rendered;

    /// Other subjects the rendered versions name, as `(reference, stream)`, for the access
    /// log; only those the grant lets the caller see.
    fn mentioned(context: &Self::Context, grant: &Grant) -> Vec<(String, String)>;
}

/// `GET /{R}/{id}`: the subject as its read model holds it now, or with `_at` as it was then.
/// `respond` renders the row under the caller's grant and records the access entry.
pub async fn read<R, F, Fut>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    uri: &Uri,
    respond: F,
) -> Result<Response, ApiError>
where
    R: Registrant + DeserializeOwned,
    F: FnOnce(ViewRow<R>, Grant, AccessEntry) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    principal.require(R::SCOPE, Action::Read)?;
    if let Some(instant) = Params::at_only(uri)? {
        return at::<R>(state, principal, provenance, id, &instant).await;
    }
    let visible = find_visible(state, principal, provenance, R::RESOURCE, R::SCOPE, id).await?;
    let log = visible.entry(principal, provenance, R::RESOURCE, "read", id);
    // The identifier is claimed when its event commits; the read model may still lag.
    let Some(row) = view::get(&state.pool, R::VIEW, &visible.stream).await? else {
        state.access_log.record(log.outcome(404)).await;
        return Err(ApiError::not_found(R::RESOURCE));
    };
    respond(row, visible.grant, log).await
}

/// Answers a request about the subject `id` with `answer` over its versions, then logs the
/// access with the outcome the request really has (a missing version, an instant before the
/// subject existed or a malformed parameter is not a 200) and the subjects the answer names.
async fn answered<R: Registrant, T>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    interaction: &'static str,
    answer: impl FnOnce(&Visible, Vec<Version<R>>, &R::Context) -> Result<T, ApiError> + Send,
) -> Result<T, ApiError> {
    let visible = find_visible(state, principal, provenance, R::RESOURCE, R::SCOPE, id).await?;
    let loaded = async {
        let versions = history::versions::<R>(state, &visible.stream).await?;
        let context = R::context(state, principal, &versions).await?;
        Ok::<_, ApiError>((versions, context))
    }
    .await;
    let (result, mentioned) = match loaded {
        Ok((versions, context)) => {
            let mentioned = R::mentioned(&context, &visible.grant);
            (answer(&visible, versions, &context), mentioned)
        }
        Err(error) => (Err(error), Vec::new()),
    };
    let log = visible
        .entry(principal, provenance, R::RESOURCE, interaction, id)
        .mentioning(mentioned)
        .outcome_of(&result);
    state.access_log.record(log).await;
    result
}

/// `GET /{R}/{id}/_history`.
pub async fn history<R: Registrant>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    uri: &Uri,
) -> Result<Json<Value>, ApiError> {
    principal.require("audit", Action::Read)?;
    let path = format!("/api/v2/spp/{}/{}", R::RESOURCE, path_segment(id));
    answered::<R, _>(
        state,
        principal,
        provenance,
        id,
        "history",
        |visible, versions, context| {
            history::bundle(uri, &path, &versions, Some(&visible.grant), |v| {
                serde_json::to_value(R::render(state, context, v)).unwrap_or_default()
            })
        },
    )
    .await
    .map(Json)
}

/// `GET /{R}/{id}/_history/{versionId}`.
pub async fn vread<R: Registrant>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    version: &str,
) -> Result<Response, ApiError> {
    principal.require("audit", Action::Read)?;
    answered::<R, _>(
        state,
        principal,
        provenance,
        id,
        "vread",
        |visible, versions, context| {
            let version = history::at_version(versions, version, R::RESOURCE)?;
            Ok(past(state, context, &version, &visible.grant))
        },
    )
    .await
}

/// `GET /{R}/{id}?_at=…`: the resource as it was at an instant (the caller checked the read
/// scope).
pub async fn at<R: Registrant>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    instant: &str,
) -> Result<Response, ApiError> {
    answered::<R, _>(
        state,
        principal,
        provenance,
        id,
        "read",
        |visible, versions, context| {
            let version = history::at_instant(versions, instant, R::RESOURCE)?;
            Ok(past(state, context, &version, &visible.grant))
        },
    )
    .await
}

/// A past version, answered as a read answered then.
fn past<R: Registrant>(
    state: &AppState,
    context: &R::Context,
    version: &Version<R>,
    grant: &Grant,
) -> Response {
    reply(
        StatusCode::OK,
        R::RESOURCE,
        version.number(),
        None,
        R::render(state, context, version),
        Some(grant),
    )
}

/// `GET /{R}/{id}/_history/$verify`. The chain is checked on the stored events, not on the
/// folded versions, so that a payload edited beyond reading is reported, not a fault.
pub async fn verify<R: Registrant>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
) -> Result<Json<Verification>, ApiError> {
    principal.require("audit", Action::Read)?;
    let visible = find_visible(state, principal, provenance, R::RESOURCE, R::SCOPE, id).await?;
    let result = history::verify_stream(state, R::RESOURCE, &visible.stream).await;
    let log = visible
        .entry(principal, provenance, R::RESOURCE, "verify", id)
        .outcome_of(&result);
    state.access_log.record(log).await;
    result.map(Json)
}
