//! Authentication and API clients (CONTRACT §3).
//!
//! INTERFACE (filled in by the auth work):
//! - `AuthConfig`, `AuthState::load(pool, config)`: keys from the database (generated on first start).
//! - `Principal`: the authenticated client, an axum extractor over `AppState` (401/429 on failure).
//! - `Principal::require(resource, action)`: 403 `insufficient_scope` when the scope is missing.
//! - `routes()`: `/api/v2/spp/oauth/token` and `/.well-known/jwks.json`.
//! - `cli`: `openspp client create|list|deactivate|rotate-secret`.

pub mod cli;

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

/// The client behind a request's bearer token, checked against the database on every request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub client_id: String,
    pub organization: String,
    pub organization_type: String,
    pub scopes: Vec<String>,
    pub require_consent: bool,
    pub legal_basis: Option<String>,
    /// `system|value` of the programs this client is limited to; empty = all.
    pub allowed_programs: Vec<String>,
}

/// Signing keys and settings shared by every request (filled in by the auth work).
pub struct AuthState {
    pub config: AuthConfig,
}

impl AuthState {
    pub async fn load(_pool: &sqlx::PgPool, config: AuthConfig) -> anyhow::Result<Self> {
        Ok(Self { config })
    }
}

/// Routes of the token service.
pub fn routes() -> axum::Router<crate::app::AppState> {
    axum::Router::new()
}
