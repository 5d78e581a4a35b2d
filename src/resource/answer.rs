//! A resource as one answer shows it: the rendering filtered by the caller's grant, with the
//! version (`ETag`), the consent headers, and on creation its `Location`.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::preconditions::etag;
use crate::api::reference::path_segment;
use crate::api::BASE;
use crate::error::ApiError;
use crate::resource::call::Call;
use crate::resource::grant::{shown, Grant, ALWAYS};
use crate::resource::traits::{Resource, Snapshot};

/// One resource answered: what the caller may see of it, and the headers that go with it.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, self.headers, Json(self.body)).into_response()
    }
}

/// Renders `snapshot` under `grant` (identity only without one), names in the access log the
/// other subjects the answer shows, and sets `ETag` (and `Location` on 201).
pub async fn show<R: Resource>(
    call: &Call,
    status: StatusCode,
    snapshot: &Snapshot<R>,
    grant: Option<&Grant>,
) -> Result<Answer, ApiError> {
    let context = R::context(call, &[snapshot]).await?;
    Ok(show_with(call, status, snapshot, grant, context))
}

/// `show`, with the context already at hand.
pub fn show_with<R: Resource>(
    call: &Call,
    status: StatusCode,
    snapshot: &Snapshot<R>,
    grant: Option<&Grant>,
    context: R::Context,
) -> Answer {
    if let Some(grant) = grant {
        call.audit
            .mentioning(R::mentioned(&context, snapshot, grant));
    }
    answer::<R>(
        status,
        snapshot,
        rendered(call, &context, snapshot, grant),
        grant,
    )
}

/// The rendering of `snapshot` as `grant` lets the caller see it.
pub fn rendered<R: Resource>(
    call: &Call,
    context: &R::Context,
    snapshot: &Snapshot<R>,
    grant: Option<&Grant>,
) -> Value {
    let body = serde_json::to_value(R::render(call, context, snapshot)).unwrap_or_default();
    sparse(shown(body, grant), call.elements())
}

/// Only the fields `_elements` named (OpenSPP's sparse fieldsets), and those that identify the
/// resource; applied after the grant, so it can only narrow what the caller may see.
fn sparse(mut body: Value, elements: Option<&[String]>) -> Value {
    if let (Some(elements), Value::Object(map)) = (elements, &mut body) {
        map.retain(|key, _| ALWAYS.contains(&key.as_str()) || elements.iter().any(|e| e == key));
    }
    body
}

/// The `ETag` of `body`, a rendering of `snapshot`: its version; for a resource whose rendering
/// shows what other streams change (`Resource::RENDERS_OTHERS`), its version and a digest of
/// the rendering, `"<version>.<digest>"`, so that a copy held is not modified exactly while
/// the rendering is the same (`If-None-Match`). `If-Match` checks the version: a write changes
/// the stream, never what other streams show in it.
fn entity_tag<R: Resource>(snapshot: &Snapshot<R>, body: &Value) -> HeaderValue {
    if !R::RENDERS_OTHERS {
        return etag(snapshot.version);
    }
    let digest = Sha256::digest(body.to_string().as_bytes());
    etag(format!(
        "{}.{}",
        snapshot.version,
        hex::encode(&digest[..8])
    ))
}

/// An already rendered body with the headers of `snapshot`.
pub fn answer<R: Resource>(
    status: StatusCode,
    snapshot: &Snapshot<R>,
    body: Value,
    grant: Option<&Grant>,
) -> Answer {
    let mut headers = grant.map(Grant::headers).unwrap_or_default();
    headers.insert(header::ETAG, entity_tag(snapshot, &body));
    if status == StatusCode::CREATED {
        if let Some(location) = R::key(&snapshot.aggregate_id, &snapshot.state)
            .map(|key| format!("{BASE}/{}/{}", R::TYPE, path_segment(&key)))
            .and_then(|l| l.parse().ok())
        {
            headers.insert(header::LOCATION, location);
        }
    }
    Answer {
        status,
        body,
        headers,
    }
}
