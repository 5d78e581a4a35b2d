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

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_graphql::http::{WebSocket as Protocol, WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::api::provenance::Provenance;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::graphql::live::Session;
use crate::graphql::ApiSchema;

/// The close code a slow consumer is disconnected with (policy violation).
pub const SLOW_CONSUMER: u16 = 1008;
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
async fn authenticate(
    state: AppState,
    payload: Value,
    request_id: String,
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
    let mut data = Data::default();
    data.insert(Session {
        state,
        principal,
        request_id,
    });
    Ok(data)
}

/// Pumps one connection: the client's messages to the protocol engine (a task of their own, so
/// pongs are heard while a send waits), the engine's messages to the socket, with the window.
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
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => {
                    if input_tx
                        .send(text.as_str().as_bytes().to_vec())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Message::Binary(bytes) => {
                    if input_tx.send(bytes.to_vec()).await.is_err() {
                        break;
                    }
                }
                Message::Pong(_) => {
                    pongs_tx.send_modify(|n| *n += 1);
                }
                Message::Close(_) => break,
                Message::Ping(_) => {}
            }
        }
    });
    let input = futures_util::stream::poll_fn(move |cx| input_rx.poll_recv(cx));
    let messages = Protocol::new(schema, input, protocol)
        .on_connection_init(move |payload| authenticate(state, payload, request_id));
    futures_util::pin_mut!(messages);
    let mut sent: u64 = 0;
    let mut pings: u64 = 0;
    while let Some(message) = messages.next().await {
        let frame = match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
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
