//! Alerting on repeated identifier clashes (issue 8, item 3). A client whose writes keep
//! naming identifiers other registrants hold is either broken or probing which identifiers
//! exist; past a threshold in a window the server warns in its log and records an access-log
//! entry marking the alert, so an auditor finds it with `GET /AuditEvent?client=…`. Neither
//! names the identifiers (they are personal data): only the client, the count and the window.
//!
//! Clashes are counted in PostgreSQL (`rate_counters`, fixed windows), like the rate limits, so
//! that every server process counts against one total and exactly one request per window
//! crosses the threshold.

use crate::access_log::AccessEntry;
use crate::app::AppState;
pub use crate::config::ClashAlerts;

/// The access-log interaction of an alert (shown as the AuditEvent `subtype`).
pub const INTERACTION: &str = "identifier-clash-alert";

/// Counts one identifier clash of `client_id` (in a write on `resource_type`); on the clash
/// that reaches the threshold, raises the alert. A failure to count is logged, never turned
/// into the request's answer: the 409 stands either way.
pub async fn count(
    state: &AppState,
    client_id: &str,
    request_id: &str,
    resource_type: &'static str,
) {
    let alerts = state.clash_alerts;
    if alerts.threshold == 0 {
        return;
    }
    let counted: Result<(i32, Option<String>), sqlx::Error> = sqlx::query_as(
        "WITH counted AS ( \
             INSERT INTO rate_counters (key, window_start, used) \
             VALUES ('clash:' || $1, \
                     to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1) \
             ON CONFLICT (key, window_start) DO UPDATE SET used = rate_counters.used + 1 \
             RETURNING used) \
         SELECT used, (SELECT organization FROM api_clients WHERE client_id = $1) FROM counted",
    )
    .bind(client_id)
    .bind(f64::from(alerts.window_secs))
    .fetch_one(&state.pool)
    .await;
    let (clashes, organization) = match counted {
        Ok(counted) => counted,
        Err(error) => {
            tracing::warn!(%error, "cannot count an identifier clash");
            return;
        }
    };
    if clashes != alerts.threshold as i32 {
        return;
    }
    tracing::warn!(
        client_id,
        clashes,
        window_secs = alerts.window_secs,
        "alert: one client's writes named identifiers other registrants hold, repeatedly"
    );
    let mut entry = AccessEntry::new(
        client_id,
        &organization.unwrap_or_default(),
        request_id,
        resource_type,
        INTERACTION,
        "E",
    );
    entry.outcome = 409;
    state.access_log.record(entry).await;
}
