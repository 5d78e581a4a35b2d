//! `POST /oauth/token` (OAuth 2.0 client credentials, RFC 6749 §4.4) and the public keys at
//! `/.well-known/jwks.json`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::clients::{hash_secret, verify_secret};
use crate::auth::rate_limit::{self, QuotaSlot};
use crate::auth::scopes::{self, covers};
use crate::auth::token::Issuer;
use crate::auth::AuthState;

/// The token request, in any of its three encodings (JSON, form, HTTP Basic for the
/// credentials). Unknown parameters are ignored, as RFC 6749 §3.2 requires.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials`.
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated subset of the client's scopes; all of them when absent.
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
}

#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }
}

/// RFC 6749 §5.2 fields, plus the OperationOutcome every error of this API carries.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": self.description,
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": if self.status == StatusCode::UNAUTHORIZED { "login" } else { "invalid" }, "diagnostics": self.description}],
            "detail": self.description,
        });
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"openspp\""),
            );
        }
        response
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// `client_id:client_secret` from `Authorization: Basic`, each form-urlencoded (§2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_request(
            "malformed Authorization header",
        ));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request(
            "use HTTP Basic for client credentials",
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(OAuthError::invalid_client)?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Some((decode(id), decode(secret))))
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    if body.is_empty() {
        return Ok(TokenRequest::default());
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/json" => serde_json::from_slice(body)
            .map_err(|_| OAuthError::invalid_request("the JSON body is malformed")),
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::invalid_request("the form body is malformed")),
        _ => Err(OAuthError::invalid_request(
            "send application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// A hash to verify against when the client is unknown, so that unknown and wrong-secret
/// clients take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_secret("decoy"))
}

/// Issue an access token (OAuth 2.0 client credentials).
#[utoipa::path(post, path = "/oauth/token", tag = "Authentication",
    request_body(
        description = "JSON or form; the client credentials may instead come by HTTP Basic",
        content(
            (TokenRequest = "application/json"),
            (TokenRequest = "application/x-www-form-urlencoded")
        )
    ),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope"),
        (status = 401, description = "invalid_client"),
        (status = 429, description = "Too many token requests from this address"),
    ))]
pub async fn token(
    State(auth): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    quota: Option<Extension<QuotaSlot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let limits = rate_limit::Limits {
        per_minute: auth.config.token_rate_per_minute,
        per_day: 0,
    };
    let key = format!("addr:{}", peer.ip());
    let admitted = auth.limiter.admit(&auth.pool, &key, limits).await;
    // The address's standing, for the `X-RateLimit-*` headers (`http::conventions`).
    if let Some(Extension(slot)) = &quota {
        slot.set(auth.limiter.quota(&key, limits));
    }
    if let Err(error) = admitted {
        return error.into_response();
    }
    match issue(&auth, &headers, &body).await {
        Ok(response) => (StatusCode::OK, no_store(), Json(response)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn issue(
    auth: &AuthState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, OAuthError> {
    let request = parse_body(headers, body)?;
    let (client_id, secret) = match (basic_credentials(headers)?, &request.client_id) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send the client credentials once: in the body or by HTTP Basic",
            ))
        }
        (Some(credentials), None) => credentials,
        (None, Some(id)) => (
            id.clone(),
            request.client_secret.clone().unwrap_or_default(),
        ),
        (None, None) => return Err(OAuthError::invalid_request("client_id is required")),
    };
    match request.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            ))
        }
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    }

    // No stored client id holds NUL (PostgreSQL text cannot): such an id is simply unknown,
    // and is answered like any other unknown client rather than as a database fault.
    let row: Option<(String, Vec<String>, i32)> = if client_id.contains('\0') {
        None
    } else {
        sqlx::query_as(
            "SELECT secret_hash, scopes, secret_version FROM api_clients \
             WHERE client_id = $1 AND active",
        )
        .bind(&client_id)
        .fetch_optional(&auth.pool)
        .await
        .map_err(|_| {
            OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again shortly",
            )
        })?
    };
    let (hash, held, secret_version) = match row {
        Some((hash, held, version)) => (hash, Some(held), version),
        None => (decoy_hash().to_owned(), None, 0),
    };
    let verified = tokio::task::spawn_blocking(move || verify_secret(&secret, &hash))
        .await
        .unwrap_or(false);
    let held = match (verified, held) {
        (true, Some(held)) => held,
        _ => return Err(OAuthError::invalid_client()),
    };

    let scopes: Vec<String> = match &request.scope {
        None => held,
        Some(requested) => {
            let requested: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
            // `x:all` covers `x:anything` by its wording; only real scopes are granted.
            if let Some(unknown) = requested.iter().find_map(|s| scopes::validate(s).err()) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    unknown,
                ));
            }
            if let Some(extra) = requested.iter().find(|s| !covers(&held, s)) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("scope {extra} is not granted to this client"),
                ));
            }
            requested
        }
    };
    let config = &auth.config;
    let key = auth.keys.signing().ok_or_else(|| {
        OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "no signing key",
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let issuer = Issuer {
        issuer: &config.issuer,
        audience: &config.audience,
        lifetime_secs: config.token_lifetime_secs,
    };
    Ok(TokenResponse {
        access_token: issuer.issue(&key, &client_id, &scopes, secret_version, now),
        token_type: "Bearer".to_owned(),
        expires_in: config.token_lifetime_secs,
        scope: scopes.join(" "),
    })
}

/// The public keys that verify this server's tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "Authentication",
    responses((status = 200, description = "JSON Web Key Set (RFC 7517) of the token-signing keys")))]
pub async fn jwks(State(auth): State<Arc<AuthState>>) -> Response {
    // The ring follows every rotation as it is announced (`keys::follow_changes`), so this
    // public endpoint costs no database round trip.
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(auth.keys.jwks()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = STANDARD.encode("client_a:s%2Bcret+x");
        let parsed = basic_credentials(&basic(&format!("Basic {encoded}"))).unwrap();
        assert_eq!(parsed, Some(("client_a".into(), "s+cret x".into())));
        assert!(basic_credentials(&basic("Basic !!!")).is_err());
        assert!(basic_credentials(&basic("Bearer abc")).is_err());
        assert_eq!(basic_credentials(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn bodies_parse_as_json_or_form() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let form = parse_body(
            &headers,
            b"grant_type=client_credentials&client_id=a&scope=x+y",
        )
        .unwrap();
        assert_eq!(form.scope.as_deref(), Some("x y"));
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let json = parse_body(
            &headers,
            br#"{"grant_type":"client_credentials","client_id":"a"}"#,
        )
        .unwrap();
        assert_eq!(json.client_id.as_deref(), Some("a"));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(parse_body(&headers, b"x").is_err());
    }
}
