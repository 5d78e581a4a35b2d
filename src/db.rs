//! Finding the database, creating it when missing, and migrating it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseArgs;

/// The database used when no `DATABASE_URL` is given.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/openspp";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects (creating the database if it does not exist yet) and applies every migration.
pub async fn connect_and_migrate(args: &DatabaseArgs) -> anyhow::Result<PgPool> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None if local_server_answers().await => DEFAULT_DATABASE_URL.to_owned(),
        None => crate::embedded::start(&args.data_dir, args.embedded_port)?,
    };
    let options = PgConnectOptions::from_str(&url)
        .context("DATABASE_URL is not a PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(args.pool_size)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations failed")?;
    Ok(pool)
}

/// Whether anything listens on the default PostgreSQL address.
async fn local_server_answers() -> bool {
    tokio::net::TcpStream::connect("127.0.0.1:5432")
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
