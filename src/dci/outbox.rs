//! The outbox: callbacks delivered by POST to senders (CONTRACT §9), from `dci_outbox`.
//!
//! Every server process runs [`run`]. A worker claims due rows in one statement that skips rows
//! another holds (`FOR UPDATE SKIP LOCKED`) and leases them by moving `next_attempt_at` past
//! the lease, so one process delivers each message; one that dies mid-delivery leaves its rows
//! to be claimed again when the lease ends (delivery is at least once). A job row (no envelope
//! yet: an asynchronous search) is computed under the sender's principal, resumed from the
//! stored client id, and stored before the first attempt, so retries send the same answer.
//! Failures are retried with exponential backoff; rows with an ordering key (a subscription's
//! notifications) are delivered one at a time in id order. New rows, and rows of a key
//! delivered (which lets the next one go), are announced on [`CHANNEL`]; between
//! announcements the worker sleeps until the next deliverable row is due.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::api::provenance::Provenance;
use crate::app::AppState;
use crate::auth::Principal;
use crate::dci::envelope::{batch, callback_header, now, uniform_response};
use crate::dci::{search, signature};
use crate::resource::{Audit, Call};
use openspp_projections::begin::begin;

/// Where new rows are announced.
pub const CHANNEL: &str = "openspp_dci_outbox";
/// How long a claim holds a row; longer than a delivery can take (the client times out at 15 s).
const LEASE_SECS: i64 = 60;
/// Rows claimed at once.
const BATCH: i64 = 64;
/// Attempts before a callback is given up (about a day of backoff).
const MAX_ATTEMPTS: i32 = 20;
/// The longest wait between attempts.
const MAX_BACKOFF_SECS: i64 = 3600;
/// The longest the worker sleeps without an announcement.
const IDLE: Duration = Duration::from_secs(30);

#[derive(sqlx::FromRow, Debug)]
struct Claimed {
    id: i64,
    correlation_id: Option<String>,
    uri: String,
    action: String,
    ordering_key: Option<String>,
    envelope: Option<Value>,
    attempts: i32,
}

/// Delivers callbacks until the task is aborted.
pub async fn run(state: AppState) {
    let mut listener = crate::dci::listening(&state.pool, CHANNEL).await;
    loop {
        match deliver_due(&state).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "cannot deliver DCI callbacks");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let wait = next_due(&state.pool).await.unwrap_or(IDLE).min(IDLE);
        tokio::select! {
            received = listener.recv() => {
                if let Err(error) = received {
                    tracing::warn!(%error, "DCI callback announcements interrupted");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Of the undelivered rows `d`, those nothing waits for: no ordering key, or the first of theirs.
/// A later row of a key is not deliverable however due it is, so neither the claim nor the
/// sleep looks at it (the sleep would otherwise end at once, and the worker spin, while it
/// waits behind an earlier row that backs off).
const FIRST_OF_ITS_KEY: &str =
    "d.delivered_at IS NULL AND (d.ordering_key IS NULL OR NOT EXISTS ( \
     SELECT 1 FROM dci_outbox e WHERE e.ordering_key = d.ordering_key \
       AND e.delivered_at IS NULL AND e.id < d.id))";

/// How long until the next deliverable row is due.
async fn next_due(pool: &PgPool) -> Option<Duration> {
    // No GREATEST(…, 0) here: it ignores NULL, so an empty outbox would read as "due now"
    // and the loop would spin; an empty outbox is NULL and waits for a notification.
    let seconds: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8 \
         FROM dci_outbox d WHERE {FIRST_OF_ITS_KEY}"
    ))
    .fetch_one(pool)
    .await
    .ok()
    .flatten();
    seconds.map(|s| {
        Duration::from_secs_f64(s.clamp(0.0, IDLE.as_secs_f64())) + Duration::from_millis(5)
    })
}

/// Claims and delivers the rows due now; how many were claimed.
async fn deliver_due(state: &AppState) -> sqlx::Result<usize> {
    let claimed: Vec<Claimed> = sqlx::query_as(&format!(
        "UPDATE dci_outbox o \
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1 \
         FROM (SELECT id FROM dci_outbox d \
               WHERE d.next_attempt_at <= now() AND {FIRST_OF_ITS_KEY} \
               ORDER BY d.id LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE o.id = due.id \
         RETURNING o.id, o.correlation_id, o.uri, o.action, o.ordering_key, o.envelope, \
                   o.attempts"
    ))
    .bind(BATCH)
    .bind(LEASE_SECS as f64)
    .fetch_all(&state.pool)
    .await?;
    let count = claimed.len();
    // Rows of one ordering key go one after another; the rest all at once.
    let mut groups: HashMap<Option<String>, Vec<Claimed>> = HashMap::new();
    let mut unordered = Vec::new();
    for row in claimed {
        match &row.ordering_key {
            Some(_) => groups
                .entry(row.ordering_key.clone())
                .or_default()
                .push(row),
            None => unordered.push(row),
        }
    }
    let ordered = groups.into_values().map(|rows| async move {
        for row in rows {
            if !deliver(state, row).await {
                break;
            }
        }
    });
    let single = unordered.into_iter().map(|row| async move {
        deliver(state, row).await;
    });
    tokio::join!(join_all(ordered), join_all(single));
    Ok(count)
}

/// One attempt; whether it was delivered.
async fn deliver(state: &AppState, row: Claimed) -> bool {
    let envelope = match row.envelope.clone() {
        Some(envelope) => envelope,
        None => match compute(state, &row).await {
            Ok(envelope) => {
                let stored = sqlx::query("UPDATE dci_outbox SET envelope = $2 WHERE id = $1")
                    .bind(row.id)
                    .bind(&envelope)
                    .execute(&state.pool)
                    .await;
                if let Err(error) = stored {
                    failed(state, &row, &format!("cannot store the result: {error}")).await;
                    return false;
                }
                envelope
            }
            Err(error) => {
                failed(state, &row, &error).await;
                return false;
            }
        },
    };
    match post(state, &row.uri, &envelope).await {
        Ok(()) => {
            delivered(state, &row, &envelope).await;
            true
        }
        Err(error) => {
            failed(state, &row, &error).await;
            false
        }
    }
}

/// POSTs `envelope`, signed now (a signature has a validity window; retries may be late).
async fn post(state: &AppState, uri: &str, envelope: &Value) -> Result<(), String> {
    let url = state
        .dci
        .callbacks
        .check(uri)
        .await
        .map_err(|why| format!("the callback URL is refused: {why}"))?;
    let header = &envelope["header"];
    let message = &envelope["message"];
    let mut body = json!({"header": header, "message": message});
    if let Some(signed) = signature::sign(&state.auth.keys, &state.dci.registry_id, header, message)
    {
        body["signature"] = json!(signed);
    }
    let response = state
        .dci
        .http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("the callback did not answer: {}", without_url(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the callback answered HTTP {}", status.as_u16()))
    }
}

/// A transport error without the URL (which the sender chose; it may carry anything).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    kind.to_owned()
}

async fn delivered(state: &AppState, row: &Claimed, envelope: &Value) {
    let done = async {
        let mut tx = begin(&state.pool).await?;
        sqlx::query("UPDATE dci_outbox SET delivered_at = now(), last_error = NULL WHERE id = $1")
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        if let Some(correlation_id) = &row.correlation_id {
            sqlx::query(
                "UPDATE dci_transactions SET status = $2, response = $3, updated_at = now() \
                 WHERE correlation_id = $1",
            )
            .bind(correlation_id)
            .bind(envelope["header"]["status"].as_str().unwrap_or("succ"))
            .bind(&envelope["message"])
            .execute(&mut *tx)
            .await?;
        }
        if row.ordering_key.is_some() {
            // The next row of its key may be due now: wake the workers sleeping on this one.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    };
    if let Err(error) = done.await {
        // Delivered but not recorded: the lease ends and it is delivered again (at least once).
        tracing::warn!(%error, id = row.id, "cannot record a delivered DCI callback");
    }
}

async fn failed(state: &AppState, row: &Claimed, error: &str) {
    tracing::info!(id = row.id, action = %row.action, attempts = row.attempts, %error,
        "DCI callback not delivered");
    let backoff = 2_i64
        .saturating_pow(row.attempts.clamp(0, 30) as u32)
        .min(MAX_BACKOFF_SECS);
    let gave_up = row.attempts >= MAX_ATTEMPTS;
    let done = async {
        let mut tx = begin(&state.pool).await?;
        sqlx::query(
            "UPDATE dci_outbox SET last_error = $2, next_attempt_at = CASE WHEN $4 \
                THEN 'infinity'::timestamptz ELSE now() + make_interval(secs => $3) END \
             WHERE id = $1",
        )
        .bind(row.id)
        .bind(error)
        .bind(backoff as f64)
        .bind(gave_up)
        .execute(&mut *tx)
        .await?;
        if gave_up {
            if let Some(correlation_id) = &row.correlation_id {
                sqlx::query(
                    "UPDATE dci_transactions SET status = 'rjct', updated_at = now() \
                     WHERE correlation_id = $1",
                )
                .bind(correlation_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    };
    if let Err(error) = done.await {
        tracing::warn!(%error, id = row.id, "cannot record a failed DCI callback");
    }
}

#[derive(sqlx::FromRow)]
struct Transaction {
    client_id: String,
    scopes: Vec<String>,
    sender_id: String,
    request: Value,
}

/// The `on-search` envelope of an asynchronous search, run now under the sender's principal
/// (its client as it stands now, with at most the scopes its token had). The access is logged
/// as a request's would be.
async fn compute(state: &AppState, row: &Claimed) -> Result<Value, String> {
    let correlation_id = row
        .correlation_id
        .as_deref()
        .ok_or("a job without a transaction")?;
    let transaction: Transaction = sqlx::query_as(
        "SELECT client_id, scopes, sender_id, request FROM dci_transactions \
         WHERE correlation_id = $1",
    )
    .bind(correlation_id)
    .fetch_one(&state.pool)
    .await
    .map_err(|e| format!("cannot read the transaction: {e}"))?;
    let message = &transaction.request;
    let total = batch(message, "search_request").map_or(0, <[Value]>::len);
    let header = |status: &str, completed: usize| {
        callback_header(
            &state.dci.registry_id,
            "on-search",
            status,
            &transaction.sender_id,
            total,
            completed,
        )
    };
    let principal = Principal::resume(&state.pool, &transaction.client_id, &transaction.scopes)
        .await
        .map_err(|e| format!("cannot resume the client: {}", e.diagnostics))?;
    let Some(principal) = principal else {
        return Ok(rejected_search(
            header("rjct", total),
            message,
            correlation_id,
            "the client that asked is no longer active",
        ));
    };
    let audit = Audit::default();
    let call = Call::new(
        state.clone(),
        principal,
        Provenance::internal(correlation_id.to_owned()),
        audit.clone(),
    );
    let outcome = async {
        let (ids, translated) = search::prepare(&call, message, true).await?;
        search::run(&call, message, correlation_id, &ids, translated).await
    }
    .await;
    let (envelope, status) = match outcome {
        Ok((answer, succeeded)) => {
            let status = if succeeded > 0 { "succ" } else { "rjct" };
            (
                json!({"header": header(status, total), "message": answer}),
                200,
            )
        }
        Err(error) if error.status.is_server_error() => {
            return Err(format!("the search failed: {}", error.message));
        }
        Err(error) => (
            rejected_search(
                header("rjct", total),
                message,
                correlation_id,
                &error.message,
            ),
            error.status.as_u16(),
        ),
    };
    audit.record(&state.access_log, status).await;
    Ok(envelope)
}

/// An `on-search` whose every request is rejected, for a reason that concerns them all.
fn rejected_search(header: Value, message: &Value, correlation_id: &str, reason: &str) -> Value {
    json!({
        "header": header,
        "message": uniform_response(
            message,
            "search_request",
            correlation_id,
            &now(),
            "rjct",
            Some(reason),
        ),
    })
}
