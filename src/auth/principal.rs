//! Who is calling: the bearer token is verified (once per process: verified tokens are cached),
//! the client it names is looked up (cached, dropped from the cache when it changes, see
//! `cache`), and the request is counted against the client's rate limits (in memory, leased
//! from a shared count, see `rate_limit`). In the common case no database round trip is made.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use std::sync::Arc;

use openspp_projections::search::{Page, Total};

use crate::auth::cache::{ClientRecord, VerifiedToken};
use crate::auth::rate_limit::{Limits, QuotaSlot};
use crate::auth::scopes::{covers, grants};
use crate::auth::token::{Issuer, LEEWAY_SECS};
use crate::auth::{Action, AuthState, Principal};
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
    /// Whether this client may use the program `stream`: a client limited to some programs
    /// (bound to the programs themselves when it was created) uses only those.
    pub fn uses_program(&self, stream: &str) -> bool {
        self.allowed_programs.is_empty() || self.allowed_programs.iter().any(|p| p == stream)
    }

    /// `page` as this client may have its matches counted: a client bound by consent is never
    /// given PostgreSQL's estimate of a large total (drawn from the whole registry, seen or
    /// not), only the lower bound it counted among the subjects it may see.
    pub fn countable(&self, page: Page) -> Page {
        match page.total {
            Total::Estimate if self.require_consent => Page {
                total: Total::AtLeast,
                ..page
            },
            _ => page,
        }
    }

    /// The programs (streams) a search must keep to: `None` for a client not limited to any.
    pub fn program_limit(&self) -> Option<Vec<String>> {
        (!self.allowed_programs.is_empty()).then(|| self.allowed_programs.clone())
    }

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

/// The client row, and whether the token's key is still active: one statement, used when the
/// client is not cached, and for every request while the caches cannot be trusted (then the
/// key ring may be stale too, so the key is checked here).
const CLIENT: &str =
    "SELECT organization, organization_type, scopes, allowed_programs, field_filter, \
        require_consent, legal_basis, rate_limit_per_minute, rate_limit_per_day, active, \
        secret_version, \
        EXISTS (SELECT 1 FROM signing_keys WHERE kid = $2 AND retired_at IS NULL) AS key_active \
    FROM api_clients WHERE client_id = $1";

#[derive(sqlx::FromRow)]
struct ClientRow {
    #[sqlx(flatten)]
    client: ClientRecord,
    key_active: bool,
}

/// The client named by a verified token, from the cache or else the database.
async fn client(
    auth: &AuthState,
    client_id: &str,
    kid: &str,
) -> Result<Option<Arc<ClientRecord>>, ApiError> {
    let caches = &auth.caches;
    let live = caches.live();
    if live {
        if let Some(cached) = caches.clients.get(client_id) {
            return Ok(cached);
        }
    }
    let epoch = caches.clients.epoch();
    let row: Option<ClientRow> = sqlx::query_as(CLIENT)
        .bind(client_id)
        .bind(kid)
        .fetch_optional(&auth.pool)
        .await?;
    match row {
        Some(row) if !row.key_active => Ok(None),
        row => {
            let client = row.map(|row| Arc::new(row.client));
            if live {
                caches.clients.insert(epoch, client_id, client.clone());
            }
            Ok(client)
        }
    }
}

/// Verifies the token's signature and claims, unless this process already has.
fn verified(auth: &AuthState, token: &str) -> Result<Arc<VerifiedToken>, ApiError> {
    let now = unix_now();
    let live = auth.caches.live();
    if live {
        if let Some(hit) = auth.caches.tokens.get(token) {
            if now <= hit.valid_until {
                return Ok(hit);
            }
        }
    }
    let epoch = auth.caches.tokens.epoch();
    let config = &auth.config;
    let issuer = Issuer {
        issuer: &config.issuer,
        audience: &config.audience,
        lifetime_secs: config.token_lifetime_secs,
    };
    // Rotations reach the key ring as they are announced, so an unknown key id is simply
    // invalid: an unauthenticated caller cannot make the server query the database.
    let (claims, kid) = issuer
        .verify(&auth.keys, token)
        .map_err(|_| invalid_token())?;
    let verified = Arc::new(VerifiedToken {
        valid_until: claims.exp.saturating_add(LEEWAY_SECS),
        claims,
        kid,
    });
    if live {
        auth.caches.tokens.insert(epoch, token, verified.clone());
    }
    Ok(verified)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Until when (Unix seconds) the request's bearer token is accepted: its `exp` and the leeway.
/// Put in the request's extensions when the token is verified, so that what outlives the
/// request (a subscription) can end when a request with that token would be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenExpiry(pub u64);

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Arc<AuthState>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // An entry of a `$batch` Bundle runs as the Bundle's principal, which the Bundle's
        // handler counts against the rate limits once per entry (`http::batch`). Only the
        // server puts one here: extensions never come from the wire.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let auth = Arc::<AuthState>::from_ref(state);
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
        let token = verified(&auth, token)?;
        parts.extensions.insert(TokenExpiry(token.valid_until));
        let claims = &token.claims;
        // Deactivated, or its secret rotated since the token was issued: the token is dead.
        let client = client(&auth, &claims.client_id, &token.kid)
            .await?
            .filter(|c| c.active && c.secret_version == claims.secret_version)
            .ok_or_else(invalid_token)?;
        let limits = Limits::new(client.rate_limit_per_minute, client.rate_limit_per_day);
        let admitted = auth
            .limiter
            .admit(&auth.pool, &claims.client_id, limits)
            .await;
        if let Some(slot) = parts.extensions.get::<QuotaSlot>() {
            slot.set(auth.limiter.quota(&claims.client_id, limits));
        }
        admitted?;
        // The token's scopes, never more than the client holds now.
        let scopes = claims
            .scope
            .split_whitespace()
            .filter(|s| covers(&client.scopes, s))
            .map(str::to_owned)
            .collect();
        Ok(Principal {
            client_id: claims.client_id.clone(),
            organization: client.organization.clone(),
            organization_type: client.organization_type.clone(),
            scopes,
            require_consent: client.require_consent,
            legal_basis: client.legal_basis.clone(),
            allowed_programs: client.allowed_programs.clone(),
            field_filter: client.field_filter.clone(),
            limits,
        })
    }
}

impl Principal {
    /// The client `client_id` as it stands now, holding at most `scopes` (what its token had
    /// when it asked): work a client asked for and the server does later (a DCI asynchronous
    /// search) runs under it. `None` if the client is gone or deactivated.
    pub async fn resume(
        pool: &sqlx::PgPool,
        client_id: &str,
        scopes: &[String],
    ) -> Result<Option<Self>, ApiError> {
        let client: Option<ClientRecord> = sqlx::query_as(
            "SELECT organization, organization_type, scopes, allowed_programs, field_filter, \
                require_consent, legal_basis, rate_limit_per_minute, rate_limit_per_day, active, \
                secret_version \
             FROM api_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(pool)
        .await?;
        Ok(client.filter(|c| c.active).map(|client| Principal {
            client_id: client_id.to_owned(),
            scopes: scopes
                .iter()
                .filter(|s| covers(&client.scopes, s))
                .cloned()
                .collect(),
            limits: Limits::new(client.rate_limit_per_minute, client.rate_limit_per_day),
            organization: client.organization,
            organization_type: client.organization_type,
            require_consent: client.require_consent,
            legal_basis: client.legal_basis,
            allowed_programs: client.allowed_programs,
            field_filter: client.field_filter,
        }))
    }
}
