//! The JSON body extractor: 415 for another media type, 413 past the size limit, 400 for broken
//! JSON, 422 naming the field for well-formed JSON of the wrong shape (unknown fields included).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        parse(&json_bytes(request, state).await?).map(ApiJson)
    }
}

/// The bytes of a JSON body: 415 for another media type, 413 past the size limit.
pub async fn json_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "the request body must be application/json",
        ));
    }
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-long",
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::bad_request(None, "the request body could not be read")
            }
        })?;
    Ok(bytes)
}

/// Parses a body, telling syntax errors (400) from shape errors (422 at a field path).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                let field = field_path(&path, &message);
                ApiError::unprocessable(&field, message)
            }
            _ => ApiError::bad_request(None, format!("malformed JSON: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(None, format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// PostgreSQL text cannot hold NUL, so a string carrying one could never be stored: it is
/// refused here, at its field, before any rule or write sees it. The escape is the only way
/// JSON can carry NUL; the costly walk runs only for bodies that contain it.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !bytes.windows(ESCAPE.len()).any(|w| w == ESCAPE) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // broken JSON: the parse reports it
    };
    match nul_path(&value, String::new()) {
        Some(path) => Err(ApiError::unprocessable(
            &path,
            "must not contain the NUL character",
        )),
        None => Ok(()),
    }
}

/// Where the first string (or key) holding NUL sits, as a JSON path (`name.family`, `line[0]`).
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    let at = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(text) => text.contains('\0').then(|| at(&path)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(at(&path))
            } else {
                nul_path(item, child)
            }
        }),
        _ => None,
    }
}

/// The path of the field at fault; for a missing field serde reports the parent's path, so
/// the field's own name is taken from the message.
fn field_path(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (_, Some(name)) => format!("{path}.{name}"),
        (".", None) => "body".to_owned(),
        (_, None) => path.to_owned(),
    }
}

/// serde's messages end with "at line L column C", which means nothing to a field-level reader.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        name: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        given: String,
    }

    #[test]
    fn unknown_fields_are_422_at_their_path() {
        let error = parse::<Body>(br#"{"name": {"given": "A", "nickname": "B"}}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.expression.as_deref(), Some("name.nickname"));
        assert!(error.detail().contains("unknown field `nickname`"));
    }

    #[test]
    fn wrong_types_are_422_and_broken_json_is_400() {
        let error = parse::<Body>(br#"{"name": {"given": 5}}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.expression.as_deref(), Some("name.given"));
        let error = parse::<Body>(br#"{"name": {"given": "A"}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let error = parse::<Body>(br#"{"name": {}}"#).unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("name.given"));
        let error = parse::<Body>(br#"{"name": {"given": "A"}} trailing"#).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn nul_characters_are_422_at_their_field() {
        let error = parse::<Body>(br#"{"name": {"given": "a\u0000b"}}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.expression.as_deref(), Some("name.given"));
        let error = parse::<Vec<String>>(br#"["ok", "\u0000"]"#).unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("[1]"));
        // An escaped backslash followed by "u0000" is ordinary text.
        assert!(parse::<Body>(br#"{"name": {"given": "a\\u0000b"}}"#).is_ok());
    }
}
