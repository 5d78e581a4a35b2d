//! The DCI endpoints: each authenticates as REST does, checks the envelope against the spec and
//! the sender's signature, then answers (sync) or records the request and its callback and
//! ACKs (async). Handlers stay thin; the work is in `search`, `txn` and `outbox`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::dci::envelope::{ack, batch, callback_header, fresh_id, now, DciError, Incoming};
use crate::dci::schema::SPEC;
use crate::dci::txn::{self, database, Accepted};
use crate::dci::{search, senders, signature, subscriptions, BASE};
use crate::error::ApiError;
use crate::resource::Call;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/registry/sync/search"), post(sync_search))
        .route(&format!("{BASE}/registry/search"), post(async_search))
        .route(
            &format!("{BASE}/registry/sync/txn/status"),
            post(sync_txn_status),
        )
        .route(
            &format!("{BASE}/registry/txn/status"),
            post(async_txn_status),
        )
        .route(&format!("{BASE}/registry/subscribe"), post(subscribe))
        .route(&format!("{BASE}/registry/unsubscribe"), post(unsubscribe))
        .route(&format!("{BASE}/openapi.json"), get(spec))
}

/// The specification these endpoints follow.
async fn spec() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], SPEC).into_response()
}

/// Authentication (as REST), then the envelope against the spec, then its sender and signature.
async fn accept(
    state: &AppState,
    call: Result<Call, ApiError>,
    body: &[u8],
    action: &str,
    schema: &str,
) -> Result<(Call, Incoming), DciError> {
    let call = call?;
    let incoming = Incoming::parse(body, action, schema)?;
    senders::check(state, &call.principal, &incoming).await?;
    Ok((call, incoming))
}

/// `{signature, header, message}`, signed by this server.
fn signed(state: &AppState, header: Value, message: Value) -> Value {
    let mut envelope = json!({"header": header, "message": message});
    if let Some(text) = signature::sign(
        &state.auth.keys,
        &state.dci.registry_id,
        &envelope["header"],
        &envelope["message"],
    ) {
        envelope["signature"] = json!(text);
    }
    envelope
}

fn answer(result: Result<Value, DciError>) -> Response {
    match result {
        Ok(envelope) => (StatusCode::OK, Json(envelope)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /registry/sync/search`: the `on-search` envelope, at once.
async fn sync_search(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    answer(
        async {
            let (call, incoming) = accept(&state, call, &body, "search", "SearchRequest").await?;
            let correlation_id = fresh_id();
            let (ids, translated) = search::prepare(&call, &incoming.message, true).await?;
            let total = translated.len();
            let (message, succeeded) =
                search::run(&call, &incoming.message, &correlation_id, &ids, translated).await?;
            let status = if succeeded > 0 { "succ" } else { "rjct" };
            let header = callback_header(
                &state.dci.registry_id,
                "on-search",
                status,
                incoming.sender_id(),
                total,
                total,
            );
            Ok(signed(&state, header, message))
        }
        .await,
    )
}

/// The callback URL of an asynchronous request: its `sender_uri`, which must be allowed.
async fn callback_uri(state: &AppState, incoming: &Incoming) -> Result<String, DciError> {
    let uri = incoming.header["sender_uri"].as_str().ok_or_else(|| {
        DciError::new(
            StatusCode::BAD_REQUEST,
            "err.sender_uri.invalid",
            "header/sender_uri: asynchronous requests name the callback URL",
        )
    })?;
    state.dci.callbacks.check(uri).await.map_err(|why| {
        DciError::new(
            StatusCode::BAD_REQUEST,
            "err.sender_uri.invalid",
            format!("header/sender_uri: {why}"),
        )
    })?;
    Ok(uri.to_owned())
}

/// `POST /registry/search`: ACK now; the `on-search` callback follows from the outbox.
async fn async_search(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    async {
        let (call, incoming) = accept(&state, call, &body, "search", "SearchRequest").await?;
        let uri = callback_uri(&state, &incoming).await?;
        // Refuse now what would be refused later: a missing scope, a malformed batch.
        search::prepare(&call, &incoming.message, false).await?;
        let correlation_id = fresh_id();
        txn::enqueue(
            &state.pool,
            Accepted {
                correlation_id: &correlation_id,
                transaction_id: incoming.transaction_id(),
                principal: &call.principal,
                sender_id: incoming.sender_id(),
                action: "search",
                request: &incoming.message,
                callback_action: "on-search",
                uri: &uri,
                envelope: None,
                status: "pdng",
            },
        )
        .await?;
        Ok::<_, DciError>(ack(&correlation_id))
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// The `txn-on-status` envelope answering a `TxnStatusRequest` of the calling client.
async fn txn_status_envelope(
    state: &AppState,
    call: &Call,
    incoming: &Incoming,
) -> Result<(Value, Value), DciError> {
    let (message, status, reason) =
        txn::status(&state.pool, &call.principal.client_id, &incoming.message).await?;
    let mut header = callback_header(
        &state.dci.registry_id,
        "txn-on-status",
        status,
        incoming.sender_id(),
        1,
        1,
    );
    if let Some(reason) = reason {
        header["status_reason_message"] = json!(reason);
    }
    Ok((header, message))
}

/// `POST /registry/sync/txn/status`.
async fn sync_txn_status(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    answer(
        async {
            let (call, incoming) =
                accept(&state, call, &body, "txn-status", "TxnStatusRequest").await?;
            let (header, message) = txn_status_envelope(&state, &call, &incoming).await?;
            Ok(signed(&state, header, message))
        }
        .await,
    )
}

/// `POST /registry/txn/status`: ACK now; `txn/on-status` follows from the outbox.
async fn async_txn_status(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    async {
        let (call, incoming) =
            accept(&state, call, &body, "txn-status", "TxnStatusRequest").await?;
        let uri = callback_uri(&state, &incoming).await?;
        let (header, mut message) = txn_status_envelope(&state, &call, &incoming).await?;
        let correlation_id = fresh_id();
        // The callback names the ACK's correlation id; the transaction asked about keeps its
        // own inside `txn_status`.
        message["correlation_id"] = json!(correlation_id);
        let status = header["status"].as_str().unwrap_or("succ").to_owned();
        txn::enqueue(
            &state.pool,
            Accepted {
                correlation_id: &correlation_id,
                transaction_id: incoming.transaction_id(),
                principal: &call.principal,
                sender_id: incoming.sender_id(),
                action: "txn-status",
                request: &incoming.message,
                callback_action: "txn-on-status",
                uri: &uri,
                envelope: Some(json!({"header": header, "message": message})),
                status: &status,
            },
        )
        .await?;
        Ok::<_, DciError>(ack(&correlation_id))
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /registry/subscribe`: registers the subscriptions, ACKs; `on-subscribe` follows with
/// their codes, and `notify` with each matching event after this.
async fn subscribe(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    async {
        let (call, incoming) = accept(&state, call, &body, "subscribe", "SubscribeRequest").await?;
        let uri = callback_uri(&state, &incoming).await?;
        let notify_uri = subscriptions::notify_uri(&uri);
        state
            .dci
            .callbacks
            .check(&notify_uri)
            .await
            .map_err(|why| {
                DciError::new(
                    StatusCode::BAD_REQUEST,
                    "err.sender_uri.invalid",
                    format!("header/sender_uri: the notify URL {why}"),
                )
            })?;
        let (checked, _) = subscriptions::prepare(&call, &incoming.message).await?;
        let items = batch(&incoming.message, "subscribe_request")?;
        let correlation_id = fresh_id();
        let mut tx = state.pool.begin().await.map_err(database)?;
        let end = subscriptions::feed_end(&mut tx).await.map_err(database)?;
        let mut responses = Vec::new();
        let mut succeeded = 0;
        for (item, checked) in items.iter().zip(checked) {
            let mut response = json!({"reference_id": item["reference_id"], "timestamp": now()});
            if let Some(locale) = item.get("locale") {
                response["locale"] = locale.clone();
            }
            match checked {
                Err(rejected) => {
                    response["status"] = json!("rjct");
                    response["status_reason_code"] = json!(rejected.code);
                    response["status_reason_message"] = json!(rejected.message);
                }
                Ok(checked) => {
                    let code = fresh_id();
                    sqlx::query(
                        "INSERT INTO dci_subscriptions (code, correlation_id, transaction_id, \
                            client_id, scopes, sender_id, notify_uri, event_type, criteria, \
                            locale, feed_tx, feed_position) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(&code)
                    .bind(&correlation_id)
                    .bind(incoming.transaction_id())
                    .bind(&call.principal.client_id)
                    .bind(&call.principal.scopes)
                    .bind(incoming.sender_id())
                    .bind(&notify_uri)
                    .bind(&checked.event_type)
                    .bind(&checked.criteria)
                    .bind(item["locale"].as_str())
                    .bind(end.tx_id)
                    .bind(end.position)
                    .execute(&mut *tx)
                    .await
                    .map_err(database)?;
                    succeeded += 1;
                    let criteria = &item["subscribe_criteria"];
                    response["status"] = json!("succ");
                    response["subscriptions"] = json!([{
                        "code": code,
                        "status": "subscribe",
                        "timestamp": now(),
                        "reg_event_type": checked.event_type,
                        "notify_record_type": checked.target.record_type(),
                        "filter_type": criteria["filter_type"],
                        "filter": criteria["filter"],
                    }]);
                }
            }
            responses.push(response);
        }
        let status = if succeeded > 0 { "succ" } else { "rjct" };
        let header = callback_header(
            &state.dci.registry_id,
            "on-subscribe",
            status,
            incoming.sender_id(),
            items.len(),
            items.len(),
        );
        let message = json!({
            "transaction_id": incoming.transaction_id(),
            "correlation_id": correlation_id,
            "subscribe_response": responses,
        });
        txn::enqueue_in(
            &mut tx,
            Accepted {
                correlation_id: &correlation_id,
                transaction_id: incoming.transaction_id(),
                principal: &call.principal,
                sender_id: incoming.sender_id(),
                action: "subscribe",
                request: &incoming.message,
                callback_action: "on-subscribe",
                uri: &uri,
                envelope: Some(json!({"header": header, "message": message})),
                status: "pdng",
            },
        )
        .await?;
        tx.commit().await.map_err(database)?;
        Ok::<_, DciError>(ack(&correlation_id))
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /registry/unsubscribe`: ends the sender's own subscriptions named; ACK, then
/// `on-unsubscribe`.
async fn unsubscribe(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    async {
        let (call, incoming) =
            accept(&state, call, &body, "unsubscribe", "UnSubscribeRequest").await?;
        let uri = callback_uri(&state, &incoming).await?;
        let codes = batch(&incoming.message, "subscription_codes")?;
        let correlation_id = fresh_id();
        let mut tx = state.pool.begin().await.map_err(database)?;
        let mut ended = Vec::new();
        for code in codes {
            let done: Option<String> = sqlx::query_scalar(
                "UPDATE dci_subscriptions SET active = false, ended_at = now() \
                 WHERE code = $1 AND client_id = $2 AND active RETURNING code",
            )
            .bind(code.as_str().unwrap_or_default())
            .bind(&call.principal.client_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(database)?;
            if let Some(code) = done {
                ended.push(json!({"code": code, "status": "unsubscribe"}));
            }
        }
        let status = if ended.len() == codes.len() {
            "succ"
        } else {
            "rjct"
        };
        let mut message = json!({
            "transaction_id": incoming.transaction_id(),
            "correlation_id": correlation_id,
            "timestamp": now(),
            "status": status,
            "subscription_status": ended,
        });
        if status == "rjct" {
            message["status_reason_code"] = json!("rjct.subscription_code.invalid");
            message["status_reason_message"] =
                json!("a code names no active subscription of this sender");
        }
        let header = callback_header(
            &state.dci.registry_id,
            "on-unsubscribe",
            status,
            incoming.sender_id(),
            codes.len(),
            codes.len(),
        );
        txn::enqueue_in(
            &mut tx,
            Accepted {
                correlation_id: &correlation_id,
                transaction_id: incoming.transaction_id(),
                principal: &call.principal,
                sender_id: incoming.sender_id(),
                action: "unsubscribe",
                request: &incoming.message,
                callback_action: "on-unsubscribe",
                uri: &uri,
                envelope: Some(json!({"header": header, "message": message})),
                status: "pdng",
            },
        )
        .await?;
        tx.commit().await.map_err(database)?;
        Ok::<_, DciError>(ack(&correlation_id))
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}
