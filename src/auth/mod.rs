//! Authentication and API clients (CONTRACT §3): OAuth 2.0 client credentials, EdDSA-signed
//! JWTs whose keys live in the database, `resource:action` scopes checked on every endpoint, and
//! per-client rate limits. There is no way to call the API without a valid token.

pub mod cache;
pub mod changes;
pub mod cli;
pub mod clients;
pub mod endpoint;
pub mod key_sealing;
pub mod keys;
mod principal;
pub mod rate_limit;
pub mod scopes;
pub mod token;

pub use principal::TokenExpiry;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Settings of the token service, taken from `ServeArgs`.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub token_lifetime_secs: u64,
    /// Token requests per source address and minute; 0 = unlimited.
    pub token_rate_per_minute: u32,
}

/// What a scope lets a client do with a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Search,
    Create,
    Update,
    Delete,
}

/// The client behind a request's bearer token, as it stands now (see `principal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub client_id: String,
    pub organization: String,
    pub organization_type: String,
    pub scopes: Vec<String>,
    pub require_consent: bool,
    pub legal_basis: Option<String>,
    /// Streams of the programs this client is limited to (resolved when it was created, so a
    /// rename does not move them; internal, never shown); empty = all.
    pub allowed_programs: Vec<String>,
    /// `resource:field` entries this client is limited to; none for a resource = all its fields.
    pub field_filter: Vec<String>,
    /// The client's rate limits, against which each entry of a `$batch` Bundle counts.
    pub limits: rate_limit::Limits,
}

/// Signing keys, caches, rate-limit budgets and settings shared by every request, with the
/// database they are kept in. Every surface reaches it through `FromRef`, so authentication
/// depends on nothing above it.
pub struct AuthState {
    pub pool: sqlx::PgPool,
    pub config: AuthConfig,
    pub keys: keys::KeyRing,
    /// Clients and verified tokens; trusted only while `changes::follow` is listening.
    pub caches: cache::AuthCaches,
    pub limiter: rate_limit::Limiter,
}

impl AuthState {
    pub async fn load(
        pool: &sqlx::PgPool,
        config: AuthConfig,
        kek: key_sealing::KeyEncryptionKey,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool: pool.clone(),
            config,
            keys: keys::KeyRing::load(pool, kek).await?,
            caches: cache::AuthCaches::default(),
            limiter: rate_limit::Limiter::default(),
        })
    }
}

/// The token endpoint, documented in the OpenAPI description (nested under the API base).
pub fn api_routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    std::sync::Arc<AuthState>: axum::extract::FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(endpoint::token))
}

/// Public routes outside the API base.
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    std::sync::Arc<AuthState>: axum::extract::FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(endpoint::jwks))
}
