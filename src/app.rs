//! What every request handler shares.

use std::ops::Deref;
use std::sync::Arc;

use openspp_aggregates::RegistryServices;
use sqlx::PgPool;

use crate::access_log::AccessLog;
use crate::auth::AuthState;
use crate::config::ClashAlerts;
use crate::extensions::Extensions;
use crate::store::EventStore;
use crate::vocabulary::Vocabularies;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub pool: PgPool,
    pub auth: Arc<AuthState>,
    pub access_log: AccessLog,
    pub store: EventStore,
    /// What the aggregates consult: vocabularies, extensions and the clock.
    pub services: RegistryServices,
    pub vocabulary: Arc<Vocabularies>,
    /// The registered extensions (`/metadata` lists them).
    pub extensions: Arc<Extensions>,
    /// When repeated identifier clashes raise an alert.
    pub clash_alerts: ClashAlerts,
    /// The DCI interface's settings and callback client (CONTRACT §9).
    pub dci: Arc<crate::config::DciSettings>,
    /// The feed follower's checkpoint, followed by GraphQL subscriptions (CONTRACT §7).
    pub checkpoints: openspp_projections::CheckpointWatch,
}

impl Shared {
    /// Connections for the request path's single statements, handed back without sqlx's ping
    /// (`openspp_projections::lane`); the store's, which its appends use too.
    pub fn lane(&self) -> &openspp_projections::lane::Lane {
        self.store.lane()
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Authentication reaches its own state, not the whole application's.
impl axum::extract::FromRef<AppState> for Arc<AuthState> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
