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

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The state of a process that runs the API's operations without serving them (`openspp
    /// import`, `openspp seed`): the catalogs as stored, no signing keys (it issues and checks
    /// no token), and an access log nothing is recorded to unless an operation records it.
    pub async fn offline(pool: PgPool) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let auth = AuthState {
            pool: pool.clone(),
            config: crate::auth::AuthConfig {
                issuer: String::new(),
                audience: String::new(),
                token_lifetime_secs: 0,
                token_rate_per_minute: 0,
            },
            keys: crate::auth::keys::KeyRing::none(),
            caches: Default::default(),
            limiter: Default::default(),
        };
        let catalogs = crate::catalog_sync::Catalogs::load(&pool).await?;
        let (access_log, writer) = AccessLog::start(pool.clone());
        let state = Self::new(Shared {
            store: EventStore::new(pool.clone()),
            services: RegistryServices {
                vocabulary: catalogs.vocabulary.clone(),
                extensions: catalogs.extensions.clone(),
                clock: Arc::new(openspp_aggregates::SystemClock),
            },
            vocabulary: catalogs.vocabulary,
            extensions: catalogs.extensions,
            auth: Arc::new(auth),
            access_log,
            clash_alerts: ClashAlerts {
                threshold: 0,
                window_secs: 0,
            },
            dci: Arc::new(crate::dci::Dci::new(&crate::dci::DciArgs::default())),
            checkpoints: openspp_projections::CheckpointWatch::start(pool.clone()).await?,
            pool,
        });
        Ok((state, writer))
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
