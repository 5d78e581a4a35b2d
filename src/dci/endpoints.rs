//! The DCI endpoints: each authenticates as REST does, checks the envelope against the spec and
//! the sender's signature, then answers (sync) or records the request and its callback and
//! ACKs (async). Handlers stay thin; the work is in `search`, `txn` and `outbox`.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::dci::envelope::{ack, batch, callback_header, fresh_id, now, DciError, Incoming};
use crate::dci::query::Rejected;
use crate::dci::schema::SPEC;
use crate::dci::txn::{self, database, Accepted};
use crate::dci::{search, senders, signature, subscriptions, BASE};
use crate::error::ApiError;
use crate::resource::Call;
use openspp_projections::begin::begin;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/registry/sync/search"), post(sync_search))
        .route(
            &format!("{BASE}/registry/search"),
            post(asynchronous::<AsyncSearch>),
        )
        .route(
            &format!("{BASE}/registry/sync/txn/status"),
            post(sync_txn_status),
        )
        .route(
            &format!("{BASE}/registry/txn/status"),
            post(asynchronous::<AsyncTxnStatus>),
        )
        .route(
            &format!("{BASE}/registry/subscribe"),
            post(asynchronous::<Subscribe>),
        )
        .route(
            &format!("{BASE}/registry/unsubscribe"),
            post(asynchronous::<Unsubscribe>),
        )
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

/// An asynchronous request, accepted: who sent what, and what its ACK will promise.
struct Received<'a> {
    state: &'a AppState,
    call: &'a Call,
    incoming: &'a Incoming,
    /// The callback URL (checked).
    uri: &'a str,
    /// The ACK's correlation id, which the callback names too.
    correlation_id: &'a str,
}

impl Received<'_> {
    /// The header of the callback: `status`, `total` requests all completed.
    fn header(&self, action: &str, status: &str, total: usize) -> Value {
        callback_header(
            &self.state.dci.registry_id,
            action,
            status,
            self.incoming.sender_id(),
            total,
            total,
        )
    }
}

/// What the transaction records of an asynchronous request until its callback is delivered.
struct Pending {
    /// The callback's `{header, message}`, or `None` for a job the outbox computes.
    envelope: Option<Value>,
    /// The transaction's status meanwhile.
    status: String,
}

/// One kind of asynchronous request: what differs between them. [`asynchronous`] does the
/// rest once: authentication, the envelope and signature, the callback URL, the transaction
/// and its callback recorded durably in one database transaction, and the ACK.
trait Asynchronous {
    /// The request's `action`, its message's schema, and the callback's action.
    const ACTION: &'static str;
    const SCHEMA: &'static str;
    const CALLBACK: &'static str;
    /// What [`Asynchronous::check`] found, for [`Asynchronous::record`].
    type Checked: Send;
    /// Refuses now what would be refused later; reads what it needs before the write begins.
    fn check(
        received: &Received<'_>,
    ) -> impl Future<Output = Result<Self::Checked, DciError>> + Send;
    /// Records what the request registers, in `tx` beside its transaction.
    fn record(
        received: &Received<'_>,
        checked: Self::Checked,
        tx: &mut sqlx::PgConnection,
    ) -> impl Future<Output = Result<Pending, DciError>> + Send;
}

/// `POST` of an asynchronous request `A`: ACK now; the callback follows from the outbox.
async fn asynchronous<A: Asynchronous>(
    State(state): State<AppState>,
    call: Result<Call, ApiError>,
    body: Bytes,
) -> Response {
    async {
        let (call, incoming) = accept(&state, call, &body, A::ACTION, A::SCHEMA).await?;
        let uri = callback_uri(&state, &incoming).await?;
        let correlation_id = fresh_id();
        let received = Received {
            state: &state,
            call: &call,
            incoming: &incoming,
            uri: &uri,
            correlation_id: &correlation_id,
        };
        let checked = A::check(&received).await?;
        let mut tx = begin(&state.pool).await.map_err(database)?;
        let pending = A::record(&received, checked, &mut tx).await?;
        txn::enqueue_in(
            &mut tx,
            Accepted {
                correlation_id: &correlation_id,
                transaction_id: incoming.transaction_id(),
                principal: &call.principal,
                sender_id: incoming.sender_id(),
                action: A::ACTION,
                request: &incoming.message,
                callback_action: A::CALLBACK,
                uri: &uri,
                envelope: pending.envelope,
                status: &pending.status,
            },
        )
        .await?;
        tx.commit().await.map_err(database)?;
        Ok::<_, DciError>(ack(&correlation_id))
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /registry/search`: the outbox runs the search when it delivers `on-search`.
struct AsyncSearch;

impl Asynchronous for AsyncSearch {
    const ACTION: &'static str = "search";
    const SCHEMA: &'static str = "SearchRequest";
    const CALLBACK: &'static str = "on-search";
    type Checked = ();

    async fn check(received: &Received<'_>) -> Result<(), DciError> {
        // A missing scope, a malformed batch: refused now rather than in the callback.
        search::prepare(received.call, &received.incoming.message, false).await?;
        Ok(())
    }

    async fn record(
        _: &Received<'_>,
        _: (),
        _: &mut sqlx::PgConnection,
    ) -> Result<Pending, DciError> {
        Ok(Pending {
            envelope: None,
            status: "pdng".into(),
        })
    }
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

/// `POST /registry/txn/status`: the status as it is now, delivered on `txn/on-status`.
struct AsyncTxnStatus;

impl Asynchronous for AsyncTxnStatus {
    const ACTION: &'static str = "txn-status";
    const SCHEMA: &'static str = "TxnStatusRequest";
    const CALLBACK: &'static str = "txn-on-status";
    type Checked = Pending;

    async fn check(received: &Received<'_>) -> Result<Pending, DciError> {
        let (header, mut message) =
            txn_status_envelope(received.state, received.call, received.incoming).await?;
        // The callback names the ACK's correlation id; the transaction asked about keeps its
        // own inside `txn_status`.
        message["correlation_id"] = json!(received.correlation_id);
        let status = header["status"].as_str().unwrap_or("succ").to_owned();
        Ok(Pending {
            envelope: Some(json!({"header": header, "message": message})),
            status,
        })
    }

    async fn record(
        _: &Received<'_>,
        checked: Pending,
        _: &mut sqlx::PgConnection,
    ) -> Result<Pending, DciError> {
        Ok(checked)
    }
}

/// `POST /registry/subscribe`: registers the subscriptions; `on-subscribe` follows with their
/// codes, and `notify` with each matching event after this.
struct Subscribe;

impl Asynchronous for Subscribe {
    const ACTION: &'static str = "subscribe";
    const SCHEMA: &'static str = "SubscribeRequest";
    const CALLBACK: &'static str = "on-subscribe";
    /// Each request checked, and where notifications go.
    type Checked = (Vec<Result<subscriptions::Checked, Rejected>>, String);

    async fn check(received: &Received<'_>) -> Result<Self::Checked, DciError> {
        let notify_uri = subscriptions::notify_uri(received.uri);
        received
            .state
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
        let (checked, _) =
            subscriptions::prepare(received.call, &received.incoming.message).await?;
        Ok((checked, notify_uri))
    }

    async fn record(
        received: &Received<'_>,
        (checked, notify_uri): Self::Checked,
        tx: &mut sqlx::PgConnection,
    ) -> Result<Pending, DciError> {
        let incoming = received.incoming;
        let principal = &received.call.principal;
        let items = batch(&incoming.message, "subscribe_request")?;
        let end = subscriptions::feed_end(tx).await.map_err(database)?;
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
                    .bind(received.correlation_id)
                    .bind(incoming.transaction_id())
                    .bind(&principal.client_id)
                    .bind(&principal.scopes)
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
        let message = json!({
            "transaction_id": incoming.transaction_id(),
            "correlation_id": received.correlation_id,
            "subscribe_response": responses,
        });
        let header = received.header(Self::CALLBACK, status, items.len());
        Ok(Pending {
            envelope: Some(json!({"header": header, "message": message})),
            status: "pdng".into(),
        })
    }
}

/// `POST /registry/unsubscribe`: ends the sender's own subscriptions named; `on-unsubscribe`
/// follows.
struct Unsubscribe;

impl Asynchronous for Unsubscribe {
    const ACTION: &'static str = "unsubscribe";
    const SCHEMA: &'static str = "UnSubscribeRequest";
    const CALLBACK: &'static str = "on-unsubscribe";
    type Checked = ();

    async fn check(received: &Received<'_>) -> Result<(), DciError> {
        batch(&received.incoming.message, "subscription_codes")?;
        Ok(())
    }

    async fn record(
        received: &Received<'_>,
        _: (),
        tx: &mut sqlx::PgConnection,
    ) -> Result<Pending, DciError> {
        let codes = batch(&received.incoming.message, "subscription_codes")?;
        let mut ended = Vec::new();
        for code in codes {
            let done: Option<String> = sqlx::query_scalar(
                "UPDATE dci_subscriptions SET active = false, ended_at = now() \
                 WHERE code = $1 AND client_id = $2 AND active RETURNING code",
            )
            .bind(code.as_str().unwrap_or_default())
            .bind(&received.call.principal.client_id)
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
            "transaction_id": received.incoming.transaction_id(),
            "correlation_id": received.correlation_id,
            "timestamp": now(),
            "status": status,
            "subscription_status": ended,
        });
        if status == "rjct" {
            message["status_reason_code"] = json!("rjct.subscription_code.invalid");
            message["status_reason_message"] =
                json!("a code names no active subscription of this sender");
        }
        let header = received.header(Self::CALLBACK, status, codes.len());
        Ok(Pending {
            envelope: Some(json!({"header": header, "message": message})),
            status: "pdng".into(),
        })
    }
}
