//! How a write of a registrant (Individual, Group) opens: its body may carry registered
//! extensions, and which it states decides who may write it and what the answer shows.

use crate::api::stated::{ExtendedBody, Stated};
use crate::auth::Action;
use crate::error::ApiError;
use crate::extensions::Shown;
use crate::resource::audit::Interaction;
use crate::resource::call::Call;
use crate::resource::ops::answer_extensions;
use crate::resource::traits::Resource;
use axum::http::Uri;

/// Opens a registration (`POST`): only the data controller registers, and only fields and
/// extensions its own filter shows; the answer shows the extensions the body wrote, unless
/// `_extensions` says otherwise.
pub fn open_registration<R: Resource, B: ExtendedBody>(
    call: &Call,
    uri: &Uri,
    body: Result<Stated<B>, ApiError>,
) -> Result<Stated<B>, ApiError> {
    call.open(R::SCOPE, Action::Create, R::TYPE, Interaction::CREATE)?;
    call.principal
        .require_controller(&format!("register {}s", R::SCOPE))?;
    let body = body?;
    let stated = stated_extensions::<R>(call, &body.body);
    call.principal
        .may_register(R::SCOPE, &body.fields, &stated)?;
    answer_extensions::<R>(call, uri, Shown::stated(&stated))?;
    Ok(body)
}

/// Opens a replacement (`PUT`): the answer shows the extensions the body wrote, unless
/// `_extensions` says otherwise. What the caller may write is the aggregate's to decide.
pub fn open_replacement<R: Resource, B: ExtendedBody>(
    call: &Call,
    uri: &Uri,
    body: Result<Stated<B>, ApiError>,
) -> Result<Stated<B>, ApiError> {
    call.open(R::SCOPE, Action::Update, R::TYPE, Interaction::UPDATE)?;
    let body = body?;
    let stated = stated_extensions::<R>(call, &body.body);
    answer_extensions::<R>(call, uri, Shown::stated(&stated))?;
    Ok(body)
}

/// The extensions `body` states, as the key each was sent under and its URI.
fn stated_extensions<R: Resource>(call: &Call, body: &impl ExtendedBody) -> Vec<(String, String)> {
    match R::EXTENDED {
        Some(resource) => call.state.extensions.stated(resource, body.extension()),
        None => Vec::new(),
    }
}
