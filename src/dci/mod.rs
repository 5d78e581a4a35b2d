//! The DCI Social Registry API (CONTRACT §9, `spec/dci/social_api_v1.0.0.yaml`), mounted under
//! `/dci_api/v1/social`: other registries, national ID systems and payment providers search
//! this registry and subscribe to its changes.
//!
//! A DCI request is a REST search in another envelope: it is authenticated with the same
//! tokens and runs through `resource::search` with the same scopes, consent filter and access
//! log (`search`). Asynchronous requests are answered with an ACK and their result is POSTed
//! to the sender's callback from a durable outbox (`outbox`), computed under the sender's
//! principal when the job runs. Envelopes sent are signed with the server's key (`signature`);
//! incoming ones are verified against keys registered per sender (`senders`).

pub mod callback;
mod endpoints;
pub mod envelope;
pub mod idtypes;
pub mod outbox;
mod query;
mod records;
pub mod schema;
mod search;
pub mod senders;
pub mod signature;
pub mod subscriptions;
mod txn;

use std::time::Duration;

use axum::Router;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::app::AppState;

pub use crate::config::{DciArgs, DciSettings as Dci};
pub use endpoints::routes;

/// Where the API is mounted.
pub const BASE: &str = "/dci_api/v1/social";

impl Dci {
    pub fn new(args: &DciArgs) -> Self {
        let callbacks = callback::Policy {
            allow_http: args.allow_http_callbacks,
            allow: args.callback_allow.clone(),
        };
        Self {
            registry_id: args.registry_id.clone(),
            allow_unsigned: args.allow_unsigned,
            http: callback::client(&callbacks),
            callbacks,
        }
    }
}

/// The DCI routes with the server's state, for `http::router` to merge.
pub fn router(state: AppState) -> Router {
    routes().with_state(state)
}

/// A listener on `channel`, retried each second until the database takes it: the outbox and
/// the subscription follower wait on announcements rather than poll.
async fn listening(pool: &PgPool, channel: &str) -> PgListener {
    loop {
        match PgListener::connect_with(pool).await {
            Ok(mut listener) => match listener.listen(channel).await {
                Ok(()) => return listener,
                Err(error) => tracing::warn!(%error, channel, "cannot listen"),
            },
            Err(error) => tracing::warn!(%error, channel, "cannot listen"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
