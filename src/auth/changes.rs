//! How changes to clients and keys reach every server process, and how the CLI knows they have.
//!
//! Each server keeps one listening connection (`follow`), named `openspp-cache:<id>` so that it
//! shows in `pg_stat_activity`. It applies announcements in the order they committed: a client
//! change drops that client from the cache, a key change reloads the key ring. After a CLI
//! command commits a change, `confirm` pings every listening server and waits for each to answer;
//! as a server handles notifications in commit order, its answer means it has applied the change.
//! So a change takes effect on the next request after the command returns, on every process.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

use std::sync::Arc;

use crate::auth::keys::KEYS_CHANNEL;
use crate::auth::AuthState;

/// Announced by a trigger on `api_clients`; the payload is the client id.
pub const CLIENTS_CHANNEL: &str = "openspp_api_clients";
/// A CLI asks every server to confirm it is up to date; the payload is a nonce.
pub const PING_CHANNEL: &str = "openspp_cache_ping";
/// Servers answer `<nonce> <listener id>`.
pub const PONG_CHANNEL: &str = "openspp_cache_pong";
/// `application_name` prefix of the servers' listening connections.
const LISTENER_PREFIX: &str = "openspp-cache:";
/// How long `confirm` waits for a server before it cuts that server's listener off.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps this process's key ring and caches equal to the database for as long as it runs.
/// Never returns; on any loss it marks the caches stale, reconnects, reloads and goes live again.
pub async fn follow(auth: Arc<AuthState>) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let options = (*auth.pool.connect_options())
        .clone()
        .application_name(&format!("{LISTENER_PREFIX}{id}"));
    // A pool of one, only so that the listener can reconnect; no timeouts apply to it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options);
    loop {
        let Err(error) = listen(&auth, &pool, &id).await;
        auth.caches.go_stale();
        tracing::warn!(%error, "not hearing client and key changes; reading them from the database until reconnected");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One listening connection's life: returns (why) when it is lost.
async fn listen(
    auth: &AuthState,
    pool: &PgPool,
    id: &str,
) -> anyhow::Result<std::convert::Infallible> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported at once (not silently re-established), so that the caches
    // are never trusted across the gap.
    listener.eager_reconnect(false);
    listener
        .listen_all([KEYS_CHANNEL, CLIENTS_CHANNEL, PING_CHANNEL])
        .await?;
    // Anything announced before now is either in what these reads see or will be heard.
    auth.keys.reload(&auth.pool).await?;
    auth.caches.go_live();
    loop {
        let Some(notification) = listener.try_recv().await? else {
            anyhow::bail!("connection lost");
        };
        match notification.channel() {
            CLIENTS_CHANNEL => auth.caches.client_changed(notification.payload()),
            KEYS_CHANNEL => {
                auth.keys.reload(&auth.pool).await?;
                auth.caches.keys_changed();
            }
            PING_CHANNEL => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(PONG_CHANNEL)
                    .bind(format!("{} {id}", notification.payload()))
                    .execute(&mut listener)
                    .await?;
            }
            _ => {}
        }
    }
}

/// After a change has committed: returns once every server process listening on this database
/// has applied it. A server that does not answer within ten seconds has its listening
/// connection ended, which makes it stop trusting its caches; the operator is told.
pub async fn confirm(pool: &PgPool) -> anyhow::Result<()> {
    let mut pongs = PgListener::connect_with(pool).await?;
    pongs.listen(PONG_CHANNEL).await?;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("{nonce} ");
    let deadline = Instant::now() + CONFIRM_TIMEOUT;
    let mut confirmed: HashSet<String> = HashSet::new();
    loop {
        // Re-read each round: a server that stopped need not answer, and one that started
        // listening after the change has read it fresh (it answers too, harmlessly).
        let listening: Vec<(String, i32)> = sqlx::query_as(
            "SELECT substr(application_name, length($1) + 1), pid FROM pg_stat_activity \
             WHERE datname = current_database() AND starts_with(application_name, $1)",
        )
        .bind(LISTENER_PREFIX)
        .fetch_all(pool)
        .await?;
        let waiting: Vec<(String, i32)> = listening
            .into_iter()
            .filter(|(id, _)| !confirmed.contains(id))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            for (id, pid) in &waiting {
                tracing::warn!(listener = %id, "a server did not confirm the change in time; ending its listener so it stops trusting its caches");
                let _ = sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .execute(pool)
                    .await;
            }
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PING_CHANNEL)
            .bind(&nonce)
            .execute(pool)
            .await?;
        let round = Instant::now() + Duration::from_millis(200);
        while let Ok(answer) = tokio::time::timeout_at(round.into(), pongs.recv()).await {
            if let Some(id) = answer?.payload().strip_prefix(&prefix) {
                confirmed.insert(id.to_owned());
            }
            if waiting.iter().all(|(id, _)| confirmed.contains(id)) {
                break;
            }
        }
    }
}
