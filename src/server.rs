//! `openspp serve`: migrate, start the projector, serve HTTP until SIGTERM/SIGINT, then stop
//! what it started (the private PostgreSQL cluster included, if it started one).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;

use crate::access_log::AccessLog;
use crate::app::{AppState, Shared};
use crate::auth::key_sealing::IfMissing;
use crate::auth::{AuthConfig, AuthState};
use crate::catalog_sync::{self, Catalogs};
use crate::config::ClashAlerts;
use crate::config::ServeArgs;
use crate::store::EventStore;
use crate::{db, http};
use openspp_aggregates::{RegistryServices, SystemClock};
use openspp_projections::{runner, CheckpointWatch};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    openspp_projections::view::limit_searches(args.search_limits());
    let database = db::connect_and_migrate(&args.database).await?;
    let pool = database.pool.clone();
    let kek = args
        .key_encryption
        .load(&args.database.data_dir, IfMissing::Generate)?;
    let auth = AuthState::load(
        &pool,
        AuthConfig {
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            token_lifetime_secs: args.token_lifetime_secs,
            token_rate_per_minute: args.token_rate_per_minute,
        },
        kek,
    )
    .await?;
    crate::metrics::install()?;
    let catalogs = Catalogs::load(&pool).await?;
    let checkpoints = CheckpointWatch::start(pool.clone()).await?;
    let projector = tokio::spawn(runner::run(pool.clone(), checkpoints.clone()));
    let (access_log, access_log_writer) = AccessLog::start(pool.clone());
    let state = AppState::new(Shared {
        pool: pool.clone(),
        auth: Arc::new(auth),
        access_log,
        store: EventStore::new(pool.clone()),
        services: RegistryServices {
            vocabulary: catalogs.vocabulary.clone(),
            extensions: catalogs.extensions.clone(),
            clock: Arc::new(SystemClock),
        },
        vocabulary: catalogs.vocabulary.clone(),
        extensions: catalogs.extensions.clone(),
        clash_alerts: ClashAlerts {
            threshold: args.identifier_clash_alert_threshold,
            window_secs: args.identifier_clash_alert_window_secs,
        },
        dci: Arc::new(crate::dci::Dci::new(&args.dci)),
        checkpoints,
    });
    // Tasks that hold the state; each is ended before the access-log writer is drained.
    let mut tasks = vec![
        tokio::spawn(housekeeping(state.clone())),
        tokio::spawn(crate::auth::changes::follow(state.auth.clone())),
        tokio::spawn(catalog_sync::follow(pool.clone(), catalogs)),
        tokio::spawn(crate::dci::outbox::run(state.clone())),
        tokio::spawn(crate::dci::subscriptions::follow(state.clone())),
    ];
    // Serve once changes are heard (so the first requests are already cached), but not later
    // than a few seconds: until then requests read clients from the database, which is correct.
    for _ in 0..500 {
        if state.auth.caches.live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(bind) = args.metrics_bind {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind} for metrics"))?;
        let local = listener.local_addr()?;
        println!("openspp metrics on http://{local}");
        tracing::info!(%local, "serving metrics");
        let router = crate::metrics::private_router(state.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the metrics server stopped");
            }
        }));
    }
    let app = http::router(state, args.body_limit_bytes);
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listener.local_addr()?;
    // Requests hyper cannot parse get OperationOutcome answers too (`early_errors`). The no-op
    // tap is what gives a wrapped listener axum's `ConnectInfo<SocketAddr>`.
    let listener = http::early_errors::OutcomeListener(listener).tap_io(|_| {});
    let shutdown = shutdown_signal();
    // Tests and operators read this line to learn the port when binding to :0.
    println!("openspp listening on http://{local}");
    tracing::info!(%local, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    // Aborting mid-batch rolls the batch back; the checkpoint was never advanced past it.
    projector.abort();
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    // The server's state (and with it the last access-log sender) is gone: let the writer drain.
    let _ = access_log_writer.await;
    database.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Forgets old rate-limit windows, hourly.
async fn housekeeping(state: AppState) {
    loop {
        if let Err(error) = crate::auth::rate_limit::prune(&state.pool).await {
            tracing::warn!(%error, "cannot prune rate counters");
        }
        state.auth.limiter.prune();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives before its handler exists kills the process outright,
/// and axum polls the shutdown future only from a task of its own, some time after serving
/// has begun (seen: a SIGTERM right after the first answered request killed the server).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let received = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = received(terminate) => {},
            _ = received(interrupt) => {},
        }
        tracing::info!("shutdown requested; finishing requests in flight");
    }
}
