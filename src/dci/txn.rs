//! Transactions: what an ACK promised (`dci_transactions`), enqueued with its callback in one
//! database transaction, and reported by `txn/status` and `sync/txn/status`.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::auth::Principal;
use crate::dci::envelope::{fresh_id, uniform_response, DciError};
use crate::dci::outbox::CHANNEL;

pub fn database(error: sqlx::Error) -> DciError {
    DciError::from(crate::error::ApiError::from(error))
}

/// An accepted asynchronous request and the callback that answers it.
pub struct Accepted<'a> {
    pub correlation_id: &'a str,
    pub transaction_id: &'a str,
    pub principal: &'a Principal,
    pub sender_id: &'a str,
    /// `search`, `subscribe`, `unsubscribe`, `txn-status`.
    pub action: &'a str,
    pub request: &'a Value,
    /// The callback's action (`on-search` …) and URL.
    pub callback_action: &'a str,
    pub uri: &'a str,
    /// The envelope to deliver (`{header, message}`), or `None` for a job the outbox computes.
    pub envelope: Option<Value>,
    /// The status the transaction has until the callback is delivered.
    pub status: &'a str,
}

/// Records `accepted` and its callback durably, inside the caller's transaction (with what
/// else the request records); the ACK may be sent once that commits.
pub async fn enqueue_in(
    tx: &mut sqlx::PgConnection,
    accepted: Accepted<'_>,
) -> Result<(), DciError> {
    sqlx::query(
        "INSERT INTO dci_transactions \
            (correlation_id, transaction_id, client_id, scopes, sender_id, action, request, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(accepted.correlation_id)
    .bind(accepted.transaction_id)
    .bind(&accepted.principal.client_id)
    .bind(&accepted.principal.scopes)
    .bind(accepted.sender_id)
    .bind(accepted.action)
    .bind(accepted.request)
    .bind(accepted.status)
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    sqlx::query(
        "INSERT INTO dci_outbox (correlation_id, client_id, uri, action, envelope) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(accepted.correlation_id)
    .bind(&accepted.principal.client_id)
    .bind(accepted.uri)
    .bind(accepted.callback_action)
    .bind(&accepted.envelope)
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    correlation_id: String,
    action: String,
    request: Value,
    status: String,
    response: Option<Value>,
    created_at: chrono::DateTime<chrono::Utc>,
    attempts: Option<i32>,
    last_error: Option<String>,
}

/// The `TxnStatusResponse` for a `TxnStatusRequest` of `client_id` (only its own transactions
/// are found), and the header status and reason it is sent with.
pub async fn status(
    pool: &PgPool,
    client_id: &str,
    request: &Value,
) -> Result<(Value, &'static str, Option<String>), DciError> {
    let asked = &request["txnstatus_request"];
    let txn_type = asked["txn_type"].as_str().unwrap_or_default();
    let action = match txn_type {
        "search" => "search",
        "subscribe" => "subscribe",
        _ => {
            return Err(DciError::new(
                StatusCode::BAD_REQUEST,
                "err.request.bad",
                format!("message/txnstatus_request/txn_type: `{txn_type}` is not supported; use search or subscribe"),
            ))
        }
    };
    let value = &asked["attribute_value"];
    let sql = |condition: &str| {
        format!(
            "SELECT t.correlation_id, t.action, t.request, t.status, \
                    t.response, t.created_at, o.attempts, o.last_error \
             FROM dci_transactions t \
             LEFT JOIN dci_outbox o ON o.correlation_id = t.correlation_id \
             WHERE t.client_id = $1 AND t.action = $3 AND {condition} \
             ORDER BY t.created_at DESC LIMIT 1"
        )
    };
    let found =
        match (asked["attribute_type"].as_str(), value) {
            (Some(attribute @ ("transaction_id" | "correlation_id")), Value::String(v)) => {
                sqlx::query_as::<_, Row>(&sql(&format!("t.{attribute} = $2")))
                    .bind(client_id)
                    .bind(v)
                    .bind(action)
                    .fetch_optional(pool)
                    .await
            }
            (Some("reference_id_list"), Value::Array(ids)) if !ids.is_empty() => {
                sqlx::query_as::<_, Row>(&sql(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements(t.request->'search_request') r \
                 WHERE $2::jsonb @> jsonb_build_array(r->'reference_id'))",
                ))
                .bind(client_id)
                .bind(sqlx::types::Json(value))
                .bind(action)
                .fetch_optional(pool)
                .await
            }
            _ => return Err(DciError::bad(
                "message/txnstatus_request/attribute_value: a transaction_id or correlation_id \
                 string, or a non-empty reference_id_list array, as attribute_type says",
            )),
        };
    let row = found.map_err(database)?;
    let transaction_id = request["transaction_id"].clone();
    let Some(row) = row else {
        return Ok((
            json!({"transaction_id": transaction_id, "correlation_id": fresh_id(),
                   "txnstatus_response": {"txn_type": txn_type}}),
            "rjct",
            Some("no such transaction of this sender".to_owned()),
        ));
    };
    let reason = match (&row.response, row.attempts, &row.last_error) {
        (None, Some(attempts), Some(error)) if attempts > 0 => Some(format!(
            "the callback is not delivered yet: {attempts} attempt(s), last: {error}"
        )),
        (None, _, _) => Some("the callback is not delivered yet".to_owned()),
        _ => None,
    };
    let txn_status = match row.response.clone() {
        Some(response) => response,
        None => pending(&row),
    };
    Ok((
        json!({
            "transaction_id": transaction_id,
            "correlation_id": row.correlation_id,
            "txnstatus_response": {"txn_type": txn_type, "txn_status": txn_status},
        }),
        "succ",
        reason,
    ))
}

/// A transaction whose callback is not delivered: each request `pdng`, in `SearchResponse`'s
/// shape.
fn pending(row: &Row) -> Value {
    let list = match row.action.as_str() {
        "subscribe" => "subscribe_request",
        _ => "search_request",
    };
    uniform_response(
        &row.request,
        list,
        &row.correlation_id,
        &row.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        &row.status,
        None,
    )
}
