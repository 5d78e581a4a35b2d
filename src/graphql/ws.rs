//! Subscriptions over WebSocket at `/api/v2/graphql/ws` (CONTRACT §7): the
//! `graphql-transport-ws` protocol (and the older `graphql-ws`), spoken by async-graphql's
//! protocol engine; the token comes in `connection_init` (`{"Authorization": "Bearer …"}`),
//! since a browser cannot set headers on a WebSocket.
//!
//! The socket is pumped here rather than by async-graphql-axum so that a slow consumer cannot
//! grow the server's memory: nothing is queued for a client beyond what the socket accepts (the
//! subscription is only polled when the previous message was handed to the socket), and every
//! `WINDOW` messages the server pings the client, which a client that reads its socket answers
//! at once. A client that has not answered the previous ping by the next one — it has left a
//! whole window unread — gets `ACK_TIMEOUT` more, then is disconnected with close code 1008
//! and the reason; it resumes with `events(after:)` from the last cursor it received.
//!
//! A connection holds at most `OPENSPP_SUBSCRIPTIONS_PER_CONNECTION` (default 16) operations at
//! once: one more is refused with the protocol's `error` message (a GraphQL error, status 429),
//! and the connection carries on. It lives no longer than the token `connection_init` gave:
//! when a request with that token would be refused, the socket is closed with 4403 and the
//! reason; the client reconnects with a fresh token and resumes from its last cursor. A query
//! or mutation sent on the socket is refused with the protocol's `error` (status 400): those
//! are answered at `POST /api/v2/graphql`, where each request is authorised, loaded and
//! access-logged as one call.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_graphql::http::{WebSocket as Protocol, WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::api::provenance::Provenance;
use crate::app::AppState;
use crate::auth::{Principal, TokenExpiry};
use crate::error::ApiError;
use crate::graphql::live::Session;
use crate::graphql::ApiSchema;

/// The close code a slow consumer is disconnected with (policy violation).
pub const SLOW_CONSUMER: u16 = 1008;
/// The close code of a connection whose token expired (graphql-transport-ws's "Forbidden").
pub const TOKEN_EXPIRED: u16 = 4403;
/// The longest one message may take to be handed to the socket before the client is taken
/// for gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// A whole number from the environment, or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &u64| *n >= 1)
        .unwrap_or(default)
}

/// Messages sent between two pings (`OPENSPP_SUBSCRIPTION_WINDOW`, default 256).
fn window() -> u64 {
    static WINDOW: OnceLock<u64> = OnceLock::new();
    *WINDOW.get_or_init(|| setting("OPENSPP_SUBSCRIPTION_WINDOW", 256))
}

/// How long a client that left a window unread has to answer
/// (`OPENSPP_SUBSCRIPTION_ACK_TIMEOUT_MS`, default 10 s).
fn ack_timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        Duration::from_millis(setting("OPENSPP_SUBSCRIPTION_ACK_TIMEOUT_MS", 10_000))
    })
}

/// Operations one connection may hold at once (`OPENSPP_SUBSCRIPTIONS_PER_CONNECTION`,
/// default 16).
fn max_operations() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| setting("OPENSPP_SUBSCRIPTIONS_PER_CONNECTION", 16) as usize)
}

/// Subscriptions (CONTRACT §7): a WebSocket speaking `graphql-transport-ws`; the token comes
/// in `connection_init` as `{"Authorization": "Bearer <token>"}`.
#[utoipa::path(get, path = "/api/v2/graphql/ws", tag = "GraphQL",
    responses(
        (status = 101, description = "Switched to a WebSocket speaking graphql-transport-ws"),
        (status = 400, body = crate::api::schema::OperationOutcome,
            description = "Not a WebSocket upgrade offering graphql-transport-ws"),
    ),
    security(()))]
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(schema): Extension<ApiSchema>,
    request: Request<axum::body::Body>,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        });
    let Some(protocol) = protocol else {
        return ApiError::bad_request(
            Some("Sec-WebSocket-Protocol"),
            "subscriptions speak graphql-transport-ws over a WebSocket",
        )
        .into_response();
    };
    let provenance = match Provenance::from_request_parts(&mut parts, &state).await {
        Ok(provenance) => provenance,
        Err(error) => return error.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("a WebSocket upgrade is required: {rejection}"),
            )
            .into_response()
        }
    };
    let request_id = provenance.request_id().to_owned();
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .on_upgrade(move |socket| serve(socket, schema, protocol, state, request_id))
}

/// The client `connection_init` names: its payload's `Authorization` (any case), verified as
/// a request's header would be.
/// Until when its token is accepted goes to `expiry`.
async fn authenticate(
    state: AppState,
    payload: Value,
    request_id: String,
    expiry: watch::Sender<Option<u64>>,
) -> async_graphql::Result<Data> {
    let authorization = payload
        .as_object()
        .and_then(|p| {
            p.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        })
        .and_then(|(_, v)| v.as_str())
        .ok_or_else(|| {
            async_graphql::Error::new(
                "connection_init must carry {\"Authorization\": \"Bearer <token>\"}",
            )
        })?;
    let (mut parts, ()) = Request::builder()
        .header(header::AUTHORIZATION, authorization)
        .body(())
        .map_err(|_| async_graphql::Error::new("the Authorization value is not a header value"))?
        .into_parts();
    let principal = Principal::from_request_parts(&mut parts, &state)
        .await
        .map_err(|error| async_graphql::Error::new(error.detail()))?;
    if let Some(TokenExpiry(until)) = parts.extensions.get::<TokenExpiry>() {
        expiry.send_replace(Some(*until));
    }
    let mut data = Data::default();
    data.insert(Session {
        state,
        principal,
        request_id,
    });
    Ok(data)
}

/// The operations a connection holds, by id: what the client started and neither it nor the
/// server has completed yet.
#[derive(Default)]
struct Operations(Mutex<HashSet<String>>);

/// The kind and id of a protocol message, and the operation it starts, all this pump reads of it.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Started>,
}

/// The operation a `subscribe` (or `start`) message starts.
#[derive(Deserialize)]
struct Started {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

impl Started {
    /// Whether the operation started is a query or a mutation: those are answered at
    /// `POST /api/v2/graphql`, where each request brings its own call (principal, access log,
    /// loaders) that their resolvers read; a socket has only the session of its subscriptions.
    /// What cannot be parsed or picked is the engine's to refuse.
    fn is_not_a_subscription(&self) -> bool {
        use async_graphql::parser::types::{DocumentOperations, OperationType};
        let Some(document) = self
            .query
            .as_deref()
            .and_then(|q| async_graphql::parser::parse_query(q).ok())
        else {
            return false;
        };
        let operation = match (&document.operations, self.operation_name.as_deref()) {
            (DocumentOperations::Single(operation), _) => Some(operation),
            (DocumentOperations::Multiple(operations), Some(name)) => operations
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, operation)| operation),
            // A lone named operation needs no name to be picked.
            (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                operations.values().next()
            }
            (DocumentOperations::Multiple(_), None) => None,
        };
        operation.is_some_and(|o| o.node.ty != OperationType::Subscription)
    }
}

impl Operations {
    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes note of a client message; the refusal to send back instead of passing it on to
    /// the protocol engine when it starts one operation too many.
    fn admit(&self, message: &[u8], protocol: WebSocketProtocols) -> Option<String> {
        // What cannot be read is the engine's to refuse.
        let Envelope { kind, id, payload } = serde_json::from_slice(message).ok()?;
        let id = id?;
        let mut ids = self.ids();
        let starts = matches!(kind.as_str(), "subscribe" | "start");
        // Before anything else: a start reusing a running operation's id would otherwise reach
        // the engine, which replaces the operation with it.
        if starts && payload.is_some_and(|p| p.is_not_a_subscription()) {
            return Some(refusal(
                &id,
                protocol,
                "this socket carries subscriptions only; send queries and mutations to \
                 POST /api/v2/graphql",
                400,
                "invalid",
            ));
        }
        match kind.as_str() {
            "subscribe" | "start" if !ids.contains(&id) => {
                if ids.len() >= max_operations() {
                    return Some(refusal(
                        &id,
                        protocol,
                        &format!(
                            "this connection already holds {} operations; complete one first, \
                             or open another connection",
                            max_operations()
                        ),
                        429,
                        "throttled",
                    ));
                }
                ids.insert(id);
            }
            "complete" | "stop" => {
                ids.remove(&id);
            }
            _ => {}
        }
        None
    }

    /// Takes note of a message of the engine's: an operation it completed is gone.
    fn sent(&self, text: &str) {
        if !text.starts_with(r#"{"type":"complete""#) {
            return;
        }
        if let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str(text) {
            self.ids().remove(&id);
        }
    }
}

/// The protocol's `error` for an operation refused before the engine saw it.
fn refusal(
    id: &str,
    protocol: WebSocketProtocols,
    message: &str,
    status: u16,
    code: &str,
) -> String {
    let error = json!({
        "message": message,
        "extensions": {"status": status, "code": code},
    });
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => json!([error]),
        WebSocketProtocols::SubscriptionsTransportWS => error,
    };
    json!({"id": id, "type": "error", "payload": payload}).to_string()
}

/// Resolves once the token `expiry` names is no longer accepted (never before
/// `connection_init` has named one).
async fn expired(expiry: &mut watch::Receiver<Option<u64>>) {
    loop {
        let until = *expiry.borrow_and_update();
        if let Some(until) = until {
            // Accepted while the clock reads `until` or less: refused from the next second.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let left = Duration::from_secs(until + 1).saturating_sub(now);
            tokio::time::sleep(left).await;
            return;
        }
        if expiry.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Pumps one connection: the client's messages to the protocol engine (a task of their own, so
/// pongs are heard while a send waits), the engine's messages to the socket, with the window;
/// an operation over the bound is refused here, and the connection closed when its token
/// expires.
async fn serve(
    socket: WebSocket,
    schema: ApiSchema,
    protocol: WebSocketProtocols,
    state: AppState,
    request_id: String,
) {
    let (mut sink, mut stream) = socket.split();
    let (pongs_tx, pongs) = watch::channel(0u64);
    let (input_tx, mut input_rx) = mpsc::channel::<Vec<u8>>(16);
    let (refusals_tx, mut refusals) = mpsc::channel::<String>(16);
    let (expiry_tx, mut expiry) = watch::channel::<Option<u64>>(None);
    let operations = std::sync::Arc::new(Operations::default());
    let held = operations.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let bytes = match message {
                Message::Text(text) => text.as_str().as_bytes().to_vec(),
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Pong(_) => {
                    pongs_tx.send_modify(|n| *n += 1);
                    continue;
                }
                Message::Close(_) => break,
                Message::Ping(_) => continue,
            };
            let forwarded = match held.admit(&bytes, protocol) {
                Some(refusal) => refusals_tx.send(refusal).await.is_ok(),
                None => input_tx.send(bytes).await.is_ok(),
            };
            if !forwarded {
                break;
            }
        }
    });
    let input = futures_util::stream::poll_fn(move |cx| input_rx.poll_recv(cx));
    let messages = Protocol::new(schema, input, protocol)
        .on_connection_init(move |payload| authenticate(state, payload, request_id, expiry_tx));
    futures_util::pin_mut!(messages);
    let mut sent: u64 = 0;
    let mut pings: u64 = 0;
    loop {
        let frame = tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    operations.sent(&text);
                    Message::Text(text.into())
                }
                Some(WsMessage::Close(code, reason)) => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                None => break,
            },
            Some(refusal) = refusals.recv() => Message::Text(refusal.into()),
            () = expired(&mut expiry) => {
                tracing::info!("subscriber disconnected: its token expired");
                let close = Message::Close(Some(CloseFrame {
                    code: TOKEN_EXPIRED,
                    reason: "the access token expired; reconnect with a new one and resume with \
                             events(after: the last cursor received)"
                        .into(),
                }));
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                break;
            }
        };
        if !matches!(
            tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await,
            Ok(Ok(()))
        ) {
            break;
        }
        sent += 1;
        if !sent.is_multiple_of(window()) {
            continue;
        }
        // A window sent: the previous ping must have been answered (within the grace).
        if pings > 0 {
            let mut answered = pongs.clone();
            let caught_up = {
                let waited =
                    tokio::time::timeout(ack_timeout(), answered.wait_for(|n| *n >= pings)).await;
                matches!(waited, Ok(Ok(_)))
            };
            if !caught_up {
                let reason = format!(
                    "slow consumer: {} messages unread; resume with events(after: the last \
                     cursor received)",
                    window()
                );
                tracing::info!(%reason, "subscriber disconnected");
                let close = Message::Close(Some(CloseFrame {
                    code: SLOW_CONSUMER,
                    reason: reason.into(),
                }));
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
                break;
            }
        }
        pings += 1;
        if !matches!(
            tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Vec::new().into()))).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_or_mutation_is_refused_and_a_subscription_passes() {
        let operations = Operations::default();
        operations.ids().insert("running".to_owned());
        let protocol = WebSocketProtocols::GraphQLWS;
        let start = |id: &str, query: &str, name: Option<&str>| {
            json!({"id": id, "type": "subscribe",
                   "payload": {"query": query, "operationName": name}})
            .to_string()
            .into_bytes()
        };
        for (id, query, name) in [
            ("q", "{ individuals { totalCount } }", None),
            // An id already running does not let a query through.
            ("running", "{ individuals { totalCount } }", None),
            ("n", "query Q { individuals { totalCount } }", None),
            (
                "m",
                "subscription S { events { cursor } } query Q { __typename }",
                Some("Q"),
            ),
        ] {
            let refused: Value =
                serde_json::from_str(&operations.admit(&start(id, query, name), protocol).unwrap())
                    .unwrap();
            assert_eq!(refused["type"], "error", "{query}");
            assert_eq!(
                refused["payload"][0]["extensions"]["status"], 400,
                "{query}"
            );
        }
        assert_eq!(
            operations.admit(
                &start(
                    "s",
                    "subscription S { events { cursor } } query Q { __typename }",
                    Some("S")
                ),
                protocol
            ),
            None
        );
        // Unparsable: the engine's to answer.
        assert_eq!(operations.admit(&start("x", "{", None), protocol), None);
    }

    fn subscribe(id: &str) -> Vec<u8> {
        json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { events { cursor } }"}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn one_operation_over_the_bound_is_refused_until_one_completes() {
        let operations = Operations::default();
        let protocol = WebSocketProtocols::GraphQLWS;
        for n in 0..max_operations() {
            assert_eq!(operations.admit(&subscribe(&n.to_string()), protocol), None);
        }
        // The same id again is the engine's to judge, not one more.
        assert_eq!(operations.admit(&subscribe("0"), protocol), None);
        let refused: Value =
            serde_json::from_str(&operations.admit(&subscribe("over"), protocol).unwrap()).unwrap();
        assert_eq!(refused["type"], "error");
        assert_eq!(refused["id"], "over");
        assert_eq!(refused["payload"][0]["extensions"]["status"], 429);
        // Completed by the client, or by the server: a place is free again.
        let complete = json!({"id": "1", "type": "complete"}).to_string();
        assert_eq!(operations.admit(complete.as_bytes(), protocol), None);
        assert_eq!(operations.admit(&subscribe("over"), protocol), None);
        assert!(operations.admit(&subscribe("more"), protocol).is_some());
        operations.sent(r#"{"type":"complete","id":"2"}"#);
        assert_eq!(operations.admit(&subscribe("more"), protocol), None);
        // Anything else passes untouched.
        assert_eq!(operations.admit(b"not json", protocol), None);
        assert_eq!(operations.admit(br#"{"type":"ping"}"#, protocol), None);
    }
}
