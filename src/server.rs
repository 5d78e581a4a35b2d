//! `openspp serve`: migrate, start the projector, serve HTTP until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::access_log::AccessLog;
use crate::app::{AppState, Shared};
use crate::auth::{AuthConfig, AuthState};
use crate::catalog_sync::{self, Catalogs};
use crate::config::ServeArgs;
use crate::store::EventStore;
use crate::{db, http};
use openspp_aggregates::{RegistryServices, SystemClock};
use openspp_projections::{runner, CheckpointWatch};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let pool = db::connect_and_migrate(&args.database).await?;
    let auth = AuthState::load(
        &pool,
        AuthConfig {
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            token_lifetime_secs: args.token_lifetime_secs,
            token_rate_per_minute: args.token_rate_per_minute,
        },
    )
    .await?;
    let catalogs = Catalogs::load(&pool).await?;
    let checkpoints = CheckpointWatch::start(pool.clone()).await?;
    let projector = tokio::spawn(runner::run(pool.clone(), checkpoints.clone()));
    let (access_log, access_log_writer) = AccessLog::start(pool.clone());
    let state = AppState::new(Shared {
        pool: pool.clone(),
        auth,
        access_log,
        store: EventStore::new(pool.clone()),
        services: RegistryServices {
            vocabulary: catalogs.vocabulary.clone(),
            extensions: catalogs.extensions.clone(),
            clock: Arc::new(SystemClock),
        },
        vocabulary: catalogs.vocabulary.clone(),
        extensions: catalogs.extensions.clone(),
        checkpoints,
        read_your_writes_timeout: Duration::from_millis(args.read_your_writes_timeout_ms),
    });
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let key_changes = {
        let state = state.clone();
        tokio::spawn(async move {
            crate::auth::keys::follow_changes(&state.pool, &state.auth.keys).await
        })
    };
    let catalog_changes = tokio::spawn(catalog_sync::follow(pool.clone(), catalogs));
    let app = http::router(state, args.body_limit_bytes);
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listener.local_addr()?;
    // Tests and operators read this line to learn the port when binding to :0.
    println!("openspp listening on http://{local}");
    tracing::info!(%local, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    // Aborting mid-batch rolls the batch back; the checkpoint was never advanced past it.
    projector.abort();
    housekeeping.abort();
    key_changes.abort();
    catalog_changes.abort();
    let _ = housekeeping.await;
    let _ = key_changes.await;
    // The server's state (and with it the last access-log sender) is gone: let the writer drain.
    let _ = access_log_writer.await;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Forgets old rate-limit windows, hourly.
async fn housekeeping(state: AppState) {
    loop {
        if let Err(error) = crate::auth::rate_limit::prune(&state.pool).await {
            tracing::warn!(%error, "cannot prune rate counters");
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
