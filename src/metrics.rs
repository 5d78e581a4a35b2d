//! What an operator watches, at `GET /metrics` in Prometheus' text format (`metrics` with its
//! Prometheus exporter): requests by route template and status, their latency, the database
//! pool, the access-log queue and how far the projector is behind the feed.
//!
//! Routes are labelled by the matched template (`/api/v2/spp/Individual/{id}`), never by the
//! raw path: identifiers are personal data, and raw paths would make labels unbounded. Gauges
//! that need the database are read when scraped, so an idle server makes no query for them.
//!
//! Unauthenticated only on its own address (`OPENSPP_METRICS_BIND`, to be kept private); on the
//! API port the route needs a token with `metrics:read`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;

const REQUESTS: &str = "openspp_http_requests_total";
const DURATION: &str = "openspp_http_request_duration_seconds";

/// Latency buckets, in seconds: from a cached read to a write stuck behind the projector.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls are no-ops) and keeps its histograms
/// drained in the background (in memory only: no query).
pub fn install() -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), &BUCKETS)?
        .install_recorder()?;
    metrics::describe_counter!(
        REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency, by method, route template and status"
    );
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let _ = HANDLE.set(handle);
    Ok(())
}

/// A request being timed: its route template and method, from when it arrived.
pub struct Tracked {
    started: Instant,
    method: &'static str,
    route: String,
}

impl Tracked {
    pub fn start(request: &Request) -> Self {
        Self {
            started: Instant::now(),
            method: method_label(request.method()),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |path| path.as_str())
                .to_owned(),
        }
    }

    /// Counts the request and records its duration, by route, method and `status`.
    pub fn finish(self, status: StatusCode) {
        let labels = [
            ("method", self.method.to_owned()),
            ("route", self.route),
            ("status", status.as_u16().to_string()),
        ];
        metrics::counter!(REQUESTS, &labels).increment(1);
        metrics::histogram!(DURATION, &labels).record(self.started.elapsed().as_secs_f64());
    }
}

/// Methods outside the standard set share one label, so a caller cannot invent label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Server metrics in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "Operations",
    security(("bearer" = ["metrics:read"])),
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
        (status = 401, description = "No or invalid token", body = crate::api::schema::OperationOutcome),
        (status = 403, description = "The token lacks metrics:read", body = crate::api::schema::OperationOutcome)))]
pub async fn metrics(
    principal: Principal,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    principal.require("metrics", Action::Read)?;
    Ok(render(&state).await)
}

/// The router of the private metrics address: `/metrics` and nothing else, no token.
pub fn private_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move { render(&state).await }),
        )
        .with_state(state)
}

/// Sets the scrape-time gauges, then renders everything.
async fn render(state: &AppState) -> Response {
    let pool = &state.pool;
    // A connection the lane keeps for the next single statement is as idle as one in the
    // pool: counted in use, the gauge showed every connection a read had just finished with.
    let idle = (pool.num_idle() + state.lane().idle()) as f64;
    metrics::gauge!("openspp_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("openspp_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.size()) - idle);
    metrics::gauge!("openspp_db_pool_max_connections")
        .set(f64::from(pool.options().get_max_connections()));
    metrics::gauge!("openspp_access_log_queue_depth").set(state.access_log.queued() as f64);
    metrics::gauge!("openspp_auth_cached_clients").set(state.auth.caches.clients.len() as f64);
    metrics::gauge!("openspp_auth_cache_live").set(if state.auth.caches.live() {
        1.0
    } else {
        0.0
    });
    match projector_lag(pool).await {
        Ok(lags) => {
            for (projection, events, seconds) in lags {
                metrics::gauge!("openspp_projector_lag_events", "projection" => projection.clone())
                    .set(events as f64);
                metrics::gauge!("openspp_projector_lag_seconds", "projection" => projection)
                    .set(seconds);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read the projector's lag for /metrics"),
    }
    let body = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Per projection: committed events after its checkpoint in feed order, and how long the oldest
/// of them has waited. Read from the checkpoint table and the feed, not the projector's insides.
async fn projector_lag(pool: &sqlx::PgPool) -> sqlx::Result<Vec<(String, i64, f64)>> {
    sqlx::query_as(
        "SELECT c.name, behind.events, \
                COALESCE(extract(epoch FROM now() - behind.oldest), 0)::float8 \
         FROM projection_checkpoints c \
         CROSS JOIN LATERAL ( \
             SELECT count(*) AS events, min(e.recorded_at) AS oldest FROM events e \
             WHERE (e.tx_id, e.global_position) > (c.tx_id::text::xid8, c.position) \
         ) behind \
         ORDER BY c.name",
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
