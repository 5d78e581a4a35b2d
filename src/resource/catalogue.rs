//! The writes of a resource an operator registers and replaces whole (a program, a product, a
//! service point), written once: `POST` and `PUT`. Such a resource says only how its body
//! becomes details, which identifier a new one is named by, and which commands carry them;
//! opening the write, locating the subject, committing and answering are the same for each.

use serde::de::DeserializeOwned;

use crate::api::json::ApiJson;
use crate::api::preconditions::IfMatch;
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::answer::Answer;
use crate::resource::audit::Interaction;
use crate::resource::call::Call;
use crate::resource::traits::Resource;
use crate::resource::write::{commit, create, open_update};

/// A resource registered and replaced whole through its body.
pub trait Catalogued: Resource {
    /// The body `POST` and `PUT` take (what a read renders).
    type Body: DeserializeOwned + Send;
    /// What a registration and a replacement carry.
    type Details: Send;

    /// The body as the aggregate's details, or the 4xx naming the field that is wrong.
    fn details(call: &Call, body: Self::Body) -> Result<Self::Details, ApiError>;

    /// The identifier a new one is named by in the access log before it is stored, if any.
    fn subject(details: &Self::Details) -> Option<String>;

    fn register(details: Self::Details) -> Self::Command;

    fn replace(details: Self::Details) -> Self::Command;
}

/// `POST /{R}`: registers a new one.
pub async fn create_whole<R: Catalogued>(
    call: &Call,
    body: Result<ApiJson<R::Body>, ApiError>,
) -> Result<Answer, ApiError> {
    call.open(R::SCOPE, Action::Create, R::TYPE, Interaction::CREATE)?;
    let ApiJson(body) = body?;
    let details = R::details(call, body)?;
    let subject = R::subject(&details);
    create::<R>(call, subject, R::register(details)).await
}

/// `PUT /{R}/{id}`: replaces the one `id` names.
pub async fn replace_whole<R: Catalogued>(
    call: &Call,
    if_match: IfMatch,
    id: &str,
    body: Result<ApiJson<R::Body>, ApiError>,
) -> Result<Answer, ApiError> {
    let (body, target) = open_update::<R, _>(call, id, body).await?;
    let details = R::details(call, body)?;
    commit(call, target.change(if_match, |_| R::replace(details))).await
}
