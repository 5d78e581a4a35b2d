//! The auditor's endpoints every registrant resource shares — history, one version, the resource
//! at an instant, chain verification — written once over a small trait.

use std::future::Future;

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::http::access::{find_visible, Visible};
use crate::http::context::Provenance;
use crate::http::history::{self, Version};
use crate::http::reference::path_segment;
use crate::http::resource::reply;
use crate::store::verify::Verification;

/// A resource about a data subject, read back version by version.
pub trait Registrant: Aggregate + Clone + Send + Sync + 'static {
    /// `Individual`, `Group`.
    const RESOURCE: &'static str;
    /// The consent scope's resource type: `individual`, `group`.
    const SCOPE: &'static str;
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
}

/// A subject the caller may see, with its versions.
struct Loaded<R: Registrant> {
    visible: Visible,
    versions: Vec<Version<R>>,
    context: R::Context,
}

async fn load<R: Registrant>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
    interaction: &'static str,
) -> Result<Loaded<R>, ApiError> {
    let visible = find_visible(state, principal, provenance, R::RESOURCE, R::SCOPE, id).await?;
    state
        .access_log
        .one(
            principal,
            provenance.request_id(),
            R::RESOURCE,
            interaction,
            Some(id.to_owned()),
            Some(&visible.grant),
        )
        .await;
    let versions = history::versions::<R>(state, &visible.stream).await?;
    let context = R::context(state, principal, &versions).await?;
    Ok(Loaded {
        visible,
        versions,
        context,
    })
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
    let loaded = load::<R>(state, principal, provenance, id, "history").await?;
    let path = format!("/api/v2/spp/{}/{}", R::RESOURCE, path_segment(id));
    let bundle = history::bundle(uri, &path, &loaded.versions, |v| {
        let rendered = R::render(state, &loaded.context, v);
        loaded
            .visible
            .grant
            .filter(serde_json::to_value(rendered).unwrap_or_default())
    })?;
    Ok(Json(bundle))
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
    let loaded = load::<R>(state, principal, provenance, id, "vread").await?;
    let version = history::at_version(loaded.versions, version, R::RESOURCE)?;
    let rendered = R::render(state, &loaded.context, &version);
    Ok(reply(
        StatusCode::OK,
        R::RESOURCE,
        version.number(),
        None,
        rendered,
        Some(&loaded.visible.grant),
    ))
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
    let loaded = load::<R>(state, principal, provenance, id, "read").await?;
    let version = history::at_instant(loaded.versions, instant, R::RESOURCE)?;
    let rendered = R::render(state, &loaded.context, &version);
    Ok(reply(
        StatusCode::OK,
        R::RESOURCE,
        version.number(),
        None,
        rendered,
        Some(&loaded.visible.grant),
    ))
}

/// `GET /{R}/{id}/_history/$verify`.
pub async fn verify<R: Registrant>(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    id: &str,
) -> Result<Json<Verification>, ApiError> {
    principal.require("audit", Action::Read)?;
    let visible = find_visible(state, principal, provenance, R::RESOURCE, R::SCOPE, id).await?;
    Ok(Json(
        history::verify_stream(state, R::RESOURCE, &visible.stream).await?,
    ))
}
