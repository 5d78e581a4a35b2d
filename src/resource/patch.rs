//! `PATCH` (RFC 7396 JSON Merge Patch, as OpenSPP's API V2 accepts it): the patch is merged into
//! the resource as the caller may see it, and the result is sent down the very path a `PUT`
//! takes — the same body parser, the same command, the same consent and field checks — so a
//! patch can do nothing a replacement could not.

use std::future::Future;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::json::parse;
use crate::api::preconditions::IfMatch;
use crate::api::stated::Stated;
use crate::error::ApiError;
use crate::extensions::Shown;
use crate::resource::answer::{rendered, Answer};
use crate::resource::call::Call;
use crate::resource::traits::{Located, Resource};

/// How many times a patch sent without `If-Match` is merged again onto a newer version when
/// another writer changed the resource between the read and the commit.
pub const ATTEMPTS: usize = 3;

/// The replacement body a merge patch makes of `located` (its current version as the caller
/// may see it), with the fields it states, and the version it was based on.
///
/// `read_only` are fields a rendering shows but a replacement does not take (they are
/// dropped from the base, and a patch naming them is refused as a body naming them would be).
/// A patch that names a field the caller's grant hides is a 403 naming it: the caller cannot
/// know what it would merge into.
async fn merged<R: Resource, T: DeserializeOwned>(
    call: &Call,
    located: &mut Located<R>,
    patch: &Value,
    read_only: &[&str],
) -> Result<(Stated<T>, u64), ApiError> {
    let Value::Object(changes) = patch else {
        return Err(ApiError::unprocessable(
            "",
            "a merge patch must be a JSON object",
        ));
    };
    if let Some(hidden) = changes.keys().find(|key| !located.grant.allows(key)) {
        return Err(ApiError::forbidden(
            Some(hidden),
            format!("this client may not see `{hidden}`, so it may not change it"),
        ));
    }
    let snapshot = located.take_current(call).await?;
    // The base shows every extension the grant lets the caller see: a patch of one extension
    // must keep the others as they are. The answer shows them too (the first choice stands).
    call.show_extensions(Shown::All);
    // The context located with the subject, if it was (it renders the answer too).
    let read;
    let context = match &located.context {
        Some(context) => context,
        None => {
            read = R::context(call, &[&snapshot]).await?;
            &read
        }
    };
    let mut base = rendered(call, context, &snapshot, Some(&located.grant));
    if let Value::Object(map) = &mut base {
        for field in read_only {
            map.remove(*field);
        }
    }
    json_patch::merge(&mut base, patch);
    let mut fields: Vec<String> = match &base {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    // A field the patch removes (`null`) is stated too: it is cleared, not left as it was.
    fields.extend(
        changes
            .keys()
            .filter(|key| !fields.contains(key))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let bytes = serde_json::to_vec(&base).map_err(|_| ApiError::internal())?;
    let body = parse(&bytes)?;
    Ok((
        Stated { body, fields },
        u64::try_from(snapshot.version).unwrap_or_default(),
    ))
}

/// Runs a merge patch of the resource `id` names: `replace` is the resource's `PUT` (it takes
/// the located resource, the version the write must land on, and the replacement body). With
/// `If-Match` the patch applies to that version or fails with 412; without, it is merged onto
/// the current version and, when another writer got there first, merged again onto the newer
/// one — never written over a version it did not see.
pub async fn apply<R, T, F, Fut>(
    call: &Call,
    id: &str,
    if_match: IfMatch,
    patch: &Value,
    read_only: &[&str],
    replace: F,
) -> Result<Answer, ApiError>
where
    R: Resource,
    T: DeserializeOwned,
    F: Fn(Located<R>, IfMatch, Stated<T>) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let asked = if_match.version_of(R::RENDERS_OTHERS)?;
    let mut attempt = 1;
    loop {
        let mut located = R::locate_to_render(call, id).await?;
        let (body, seen) = merged::<R, T>(call, &mut located, patch, read_only).await?;
        let version = IfMatch::at(asked.unwrap_or(seen));
        match replace(located, version, body).await {
            Err(error)
                if error.status == StatusCode::PRECONDITION_FAILED
                    && asked.is_none()
                    && attempt < ATTEMPTS =>
            {
                attempt += 1;
            }
            answer => return answer,
        }
    }
}
