//! Finding the database, creating it when missing, and migrating it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseArgs;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A migrated database, and the private cluster this process started for it, if it did: the
/// cluster stops when this is dropped (after the pool closes, in `close`).
pub struct Database {
    pub pool: PgPool,
    cluster: Option<crate::embedded::Cluster>,
}

impl Database {
    /// Closes the pool, then stops the private cluster if this process started it.
    pub async fn close(mut self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
    }
}

/// Connects (creating the database if it does not exist yet) and applies every migration.
/// Without `DATABASE_URL`: the local server on 127.0.0.1:`--pg-port` if one answers, else the
/// private cluster under the data folder.
pub async fn connect_and_migrate(args: &DatabaseArgs) -> anyhow::Result<Database> {
    let mut cluster = None;
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None if local_server_answers(args.pg_port).await => {
            format!("postgres://postgres@127.0.0.1:{}/openspp", args.pg_port)
        }
        None => {
            let data_dir = args.data_dir.clone();
            let port = args.embedded_port;
            let started =
                tokio::task::spawn_blocking(move || crate::embedded::start(&data_dir, port))
                    .await??;
            let url = started.url.clone();
            cluster = Some(started);
            url
        }
    };
    let options = PgConnectOptions::from_str(&url)
        .context("DATABASE_URL is not a PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
        // No JIT: it compiles a statement PostgreSQL costs above `jit_above_cost` before running
        // it, which an API pays on every request: a consent-bound page of a common name at
        // 1,000,000 people spent 505 ms of its 1,376 compiling. The statements here are planned
        // per search (unnamed) and answer in milliseconds once their indexes are used.
        .options([("jit", "off")]);
    create_database_if_missing(&options).await?;
    let pool = pool_options(args.pool_size)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations failed")?;
    Ok(Database { pool, cluster })
}

/// A connection idle longer than this is tested (pinged) before it is handed out.
const IDLE_PING: Duration = Duration::from_secs(1);

/// How the server's pool hands out connections. sqlx's default pings every connection before
/// handing it out: a round trip per statement, which doubled the round trips of a
/// `GET /Individual/{id}` (one statement) and was a tenth of the server's CPU under a write
/// load (perf, release build). Here only a connection idle for longer than `IDLE_PING` is
/// pinged — the ones a database restart or a network cut may have broken while nothing used
/// them; one in constant use has just proved itself, and if it breaks all the same, its
/// statement fails as a lost connection (503 with `Retry-After`, `tests/e2e/faults.rs`) and
/// the pool replaces it. sqlx also pings every connection on its way back to the pool, which no
/// setting turns off: the statements of the request path run on the store's lane
/// (`openspp_projections::lane`), which hands a connection whose statement completed to the
/// next statement without that ping.
fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_PING {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Whether anything listens on the local PostgreSQL address.
async fn local_server_answers(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

async fn create_database_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let maintenance = options.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&maintenance)
        .await
        .context("cannot connect to PostgreSQL (is it running? set DATABASE_URL)")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("cannot create the database"),
        }
    }
    conn.close().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_server_s_connections_run_without_jit() {
        let name = format!("openspp_dbtest_{}", uuid::Uuid::new_v4().simple());
        let args = DatabaseArgs {
            database_url: Some(format!("postgres://postgres@127.0.0.1:5432/{name}")),
            pg_port: 5432,
            data_dir: std::env::temp_dir(),
            embedded_port: crate::embedded::DEFAULT_PORT,
            pool_size: 2,
        };
        let database = connect_and_migrate(&args).await.expect("database");
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(&database.pool)
            .await
            .unwrap();
        database.close().await;
        let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        assert_eq!(jit, "off");
    }

    /// The backend of the pool's one connection, terminated from another session.
    async fn terminate_the_pool_s_backend(pool: &PgPool) {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(pool)
            .await
            .unwrap();
        let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .unwrap();
        let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(terminated);
        // Until the backend has gone, a ping would still be answered.
        for _ in 0..100 {
            let alive: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                    .bind(pid)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !alive {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("backend {pid} did not end");
    }

    /// A connection used a moment ago is handed out as it is, without the round trip of a
    /// ping (so a connection broken meanwhile fails its statement); one idle for longer than
    /// `IDLE_PING` is pinged first, and a broken one replaced unnoticed.
    #[tokio::test]
    async fn the_pool_pings_only_connections_idle_for_a_while() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        let options = PgConnectOptions::from_str(url).unwrap();
        let pool = pool_options(1).connect_with(options).await.unwrap();

        terminate_the_pool_s_backend(&pool).await;
        let hot = sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&pool)
            .await;
        assert!(hot.is_err(), "a hot connection was pinged: {hot:?}");
        // The broken connection is gone; the next statement gets a new one.
        let fresh: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(fresh, 1);

        terminate_the_pool_s_backend(&pool).await;
        tokio::time::sleep(IDLE_PING + Duration::from_millis(200)).await;
        let idle: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(idle, 1);
        pool.close().await;
    }
}
