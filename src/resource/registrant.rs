//! The writes of a registrant (an Individual, a Group), written once: registration (`POST`),
//! replacement (`PUT`) and merge patch (`PATCH`). A registrant says only how its body becomes
//! a command; opening the write (scope, controller, field filter, extensions shown), locating
//! the subject, committing and answering are the same for each.

use std::future::Future;

use axum::http::Uri;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::json::ApiJson;
use crate::api::preconditions::IfMatch;
use crate::api::stated::{ExtendedBody, Stated};
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::answer::Answer;
use crate::resource::audit::Interaction;
use crate::resource::call::Call;
use crate::resource::extended::{open_registration, open_replacement};
use crate::resource::patch;
use crate::resource::traits::{Located, Resource};
use crate::resource::write::{commit, create};

/// A resource registered, replaced whole and merge-patched through its body.
pub trait Registrant: Resource {
    /// The body `POST` and `PUT` take (what a read renders).
    type Body: ExtendedBody + DeserializeOwned + Send;
    /// Fields a rendering shows but a replacement does not take: a merge patch drops them from
    /// its base, and refuses a patch naming them as a body naming them is refused.
    const READ_ONLY: &'static [&'static str];

    /// The registration a body asks for, and how the request names the registrant (its first
    /// identifier, for the access log).
    fn registration(
        call: &Call,
        body: Self::Body,
    ) -> impl Future<Output = Result<(Option<String>, Self::Command), ApiError>> + Send;

    /// The command replacing `target`'s data with `body`, which states `fields`; the caller's
    /// access is `target.access`, for the aggregate to decide with.
    fn replacement(
        call: &Call,
        target: &Located<Self>,
        body: Stated<Self::Body>,
    ) -> impl Future<Output = Result<Self::Command, ApiError>> + Send;
}

/// `POST /{R}`: registers the body's registrant in a new stream.
pub async fn register<R: Registrant>(
    call: &Call,
    uri: &Uri,
    body: Result<Stated<R::Body>, ApiError>,
) -> Result<Answer, ApiError> {
    let Stated { body, .. } = open_registration::<R, _>(call, uri, body)?;
    let (subject, command) = R::registration(call, body).await?;
    create::<R>(call, subject, command).await
}

/// `PUT /{R}/{id}`: replaces the data of the registrant `id` names. Fields the caller may not
/// see must be left out, and stay as they are.
pub async fn replace<R: Registrant>(
    call: &Call,
    id: &str,
    if_match: IfMatch,
    uri: &Uri,
    body: Result<Stated<R::Body>, ApiError>,
) -> Result<Answer, ApiError> {
    let body = open_replacement::<R, _>(call, uri, body)?;
    let target = R::locate_to_render(call, id).await?;
    put(call, target, if_match, body).await
}

/// `PATCH /{R}/{id}`: a merge patch, written as a `PUT` of the result (see [`patch::apply`]).
pub async fn merge_patch<R: Registrant>(
    call: &Call,
    id: &str,
    if_match: IfMatch,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(R::SCOPE, Action::Update, R::TYPE, Interaction::UPDATE)?;
    let ApiJson(changes) = body?;
    let replace = |target, version, body| put::<R>(call, target, version, body);
    patch::apply::<R, R::Body, _, _>(call, id, if_match, &changes, R::READ_ONLY, replace).await
}

/// The replacement itself, shared by `PUT` and `PATCH`.
async fn put<R: Registrant>(
    call: &Call,
    target: Located<R>,
    if_match: IfMatch,
    body: Stated<R::Body>,
) -> Result<Answer, ApiError> {
    let command = R::replacement(call, &target, body).await?;
    commit(call, target.change(if_match, |_| command)).await
}
