//! Who is calling: the bearer token is verified, then ONE database round trip confirms the
//! client is still active (a deactivated client's tokens fail at once) and counts the request
//! against its rate limits.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use crate::app::AppState;
use crate::auth::rate_limit::check;
use crate::auth::scopes::{covers, grants};
use crate::auth::token::Issuer;
use crate::auth::{Action, Principal};
use crate::error::ApiError;

fn unauthenticated(challenge: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "login", message)
        .with_header(header::WWW_AUTHENTICATE, challenge)
}

fn invalid_token() -> ApiError {
    unauthenticated(
        "Bearer realm=\"openspp\", error=\"invalid_token\"",
        "the access token is invalid, expired or revoked",
    )
}

impl Principal {
    /// 403 unless a scope grants `action` on `resource`.
    pub fn require(&self, resource: &str, action: Action) -> Result<(), ApiError> {
        if grants(&self.scopes, resource, action) {
            return Ok(());
        }
        let scope = format!("{resource}:{}", action.as_str());
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this client lacks the scope {scope}"),
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            &format!("Bearer realm=\"openspp\", error=\"insufficient_scope\", scope=\"{scope}\""),
        ))
    }
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    organization: String,
    organization_type: String,
    scopes: Vec<String>,
    allowed_programs: Vec<String>,
    field_filter: Vec<String>,
    require_consent: bool,
    legal_basis: Option<String>,
    rate_limit_per_minute: i32,
    rate_limit_per_day: i32,
    used_minute: Option<i32>,
    used_day: Option<i32>,
    minute_left: i32,
    day_left: i32,
}

/// The client row and both counters in one statement; counters only for active clients.
const CLIENT_AND_COUNT: &str = "
WITH client AS (
    SELECT * FROM api_clients WHERE client_id = $1 AND active
), minute AS (
    INSERT INTO rate_counters (key, window_start, used)
    SELECT 'm:' || client_id, date_trunc('minute', now()), 1 FROM client WHERE rate_limit_per_minute > 0
    ON CONFLICT (key, window_start) DO UPDATE SET used = rate_counters.used + 1
    RETURNING used
), day AS (
    INSERT INTO rate_counters (key, window_start, used)
    SELECT 'd:' || client_id, date_trunc('day', now()), 1 FROM client WHERE rate_limit_per_day > 0
    ON CONFLICT (key, window_start) DO UPDATE SET used = rate_counters.used + 1
    RETURNING used
)
SELECT organization, organization_type, scopes, allowed_programs, field_filter, require_consent, legal_basis,
       rate_limit_per_minute, rate_limit_per_day,
       (SELECT used FROM minute) AS used_minute, (SELECT used FROM day) AS used_day,
       ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int AS minute_left,
       ceil(extract(epoch FROM date_trunc('day', now()) + interval '1 day' - now()))::int AS day_left
FROM client";

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                unauthenticated(
                    "Bearer realm=\"openspp\"",
                    "a bearer access token is required",
                )
            })?;
        let config = &state.auth.config;
        let issuer = Issuer {
            issuer: &config.issuer,
            audience: &config.audience,
            lifetime_secs: config.token_lifetime_secs,
        };
        // Rotations reach the key ring as they are announced, so an unknown key id is simply
        // invalid: an unauthenticated caller cannot make the server query the database.
        let claims = issuer
            .verify(&state.auth.keys, token)
            .map_err(|_| invalid_token())?;
        let row: ClientRow = sqlx::query_as(CLIENT_AND_COUNT)
            .bind(&claims.client_id)
            .fetch_optional(&state.pool)
            .await?
            .ok_or_else(invalid_token)?;
        check(
            row.used_minute.unwrap_or(0),
            row.rate_limit_per_minute,
            row.minute_left,
        )?;
        check(
            row.used_day.unwrap_or(0),
            row.rate_limit_per_day,
            row.day_left,
        )?;
        // The token's scopes, never more than the client holds now.
        let scopes = claims
            .scope
            .split_whitespace()
            .filter(|s| covers(&row.scopes, s))
            .map(str::to_owned)
            .collect();
        Ok(Principal {
            client_id: claims.client_id,
            organization: row.organization,
            organization_type: row.organization_type,
            scopes,
            require_consent: row.require_consent,
            legal_basis: row.legal_basis,
            allowed_programs: row.allowed_programs,
            field_filter: row.field_filter,
        })
    }
}
