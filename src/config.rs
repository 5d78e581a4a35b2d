//! Settings: every one has a flag and an environment variable (CONTRACT §3a).

use std::net::SocketAddr;

/// Where the database is. Without `DATABASE_URL` the server uses the local PostgreSQL on
/// 127.0.0.1:5432 (database `openspp`, created if missing), and where none answers it starts a
/// private cluster under `<data-dir>/pg` (and stops it when it stops).
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Port of the local PostgreSQL tried when DATABASE_URL is unset (libpq's PGPORT).
    #[arg(long, env = "PGPORT", default_value_t = 5432)]
    pub pg_port: u16,
    /// Folder for the private PostgreSQL cluster used when no server answers (and for the
    /// generated key-encryption key).
    #[arg(long, env = "OPENSPP_DATA_DIR", default_value = "./data")]
    pub data_dir: std::path::PathBuf,
    /// Port of that private cluster (loopback only).
    #[arg(long, env = "OPENSPP_EMBEDDED_PORT", default_value_t = crate::embedded::DEFAULT_PORT)]
    pub embedded_port: u16,
    /// Connections in the pool.
    #[arg(long, env = "OPENSPP_DB_POOL_SIZE", default_value_t = 32)]
    pub pool_size: u32,
}

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub key_encryption: crate::auth::key_sealing::KeyEncryptionArgs,
    /// Address to listen on.
    #[arg(long, env = "OPENSPP_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Address that serves `GET /metrics` without a token (Prometheus); keep it private. On the
    /// API port, `/metrics` needs a token with the scope `metrics:read`.
    #[arg(long, env = "OPENSPP_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "OPENSPP_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Token requests allowed per source address and minute (0 = no limit).
    #[arg(long, env = "OPENSPP_TOKEN_RATE_PER_MINUTE", default_value_t = 20)]
    pub token_rate_per_minute: u32,
    /// `iss` of the tokens this server issues and accepts.
    #[arg(long, env = "OPENSPP_JWT_ISSUER", default_value = "urn:openspp:api")]
    pub jwt_issuer: String,
    /// `aud` of the tokens this server issues and accepts.
    #[arg(
        long,
        env = "OPENSPP_JWT_AUDIENCE",
        default_value = "urn:openspp:api:v2"
    )]
    pub jwt_audience: String,
    /// Lifetime of an access token, in seconds (OpenSPP: one day).
    #[arg(long, env = "OPENSPP_TOKEN_LIFETIME_SECS", default_value_t = 86_400)]
    pub token_lifetime_secs: u64,
    /// Identifier clashes (409) by one client that raise an alert in the log and the access
    /// log, per window (0 = never).
    #[arg(
        long,
        env = "OPENSPP_IDENTIFIER_CLASH_ALERT_THRESHOLD",
        default_value_t = 5
    )]
    pub identifier_clash_alert_threshold: u32,
    /// The window those clashes are counted in, in seconds (at most a day).
    #[arg(
        long,
        env = "OPENSPP_IDENTIFIER_CLASH_ALERT_WINDOW_SECS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u32).range(1..=86_400)
    )]
    pub identifier_clash_alert_window_secs: u32,
    /// Longest a search statement may run (its `statement_timeout`), and longest a search
    /// waits for a place in the search budget, in milliseconds; past either it is answered 503
    /// with `Retry-After`.
    #[arg(long, env = "OPENSPP_SEARCH_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub search_timeout_ms: u64,
    /// Pool connections searches may hold at once (each search holds two); default half the
    /// pool, so that writes, reads and the projector always find a connection.
    #[arg(long, env = "OPENSPP_SEARCH_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(2..))]
    pub search_connections: Option<u32>,
    #[command(flatten)]
    pub dci: DciArgs,
}

impl ServeArgs {
    /// The search budget (`view::limit_searches`): never the whole pool.
    pub fn search_limits(&self) -> openspp_projections::view::SearchLimits {
        let pool = self.database.pool_size;
        let half = (pool / 2).max(2);
        let connections = self
            .search_connections
            .unwrap_or(half)
            .min(pool.saturating_sub(2).max(2));
        openspp_projections::view::SearchLimits {
            connections,
            timeout: std::time::Duration::from_millis(self.search_timeout_ms),
        }
    }
}

/// When to alert: `threshold` clashes by one client within one window of `window_secs`.
#[derive(Debug, Clone, Copy)]
pub struct ClashAlerts {
    /// 0 = never alert.
    pub threshold: u32,
    pub window_secs: u32,
}

/// The operator's DCI settings (`openspp serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct DciArgs {
    /// This registry's id: the `sender_id` of what it sends, the `receiver_id` it expects.
    #[arg(
        long = "dci-registry-id",
        env = "OPENSPP_DCI_REGISTRY_ID",
        default_value = "openspp"
    )]
    pub registry_id: String,
    /// Accept requests without a signature (testing only).
    #[arg(long = "dci-allow-unsigned", env = "OPENSPP_DCI_ALLOW_UNSIGNED")]
    pub allow_unsigned: bool,
    /// Allow `http://` callback URLs (testing only).
    #[arg(
        long = "dci-allow-http-callbacks",
        env = "OPENSPP_DCI_ALLOW_HTTP_CALLBACKS"
    )]
    pub allow_http_callbacks: bool,
    /// Non-public networks callbacks may reach (CIDRs, comma-separated), e.g. `127.0.0.0/8`.
    #[arg(
        long = "dci-callback-allow",
        env = "OPENSPP_DCI_CALLBACK_ALLOW",
        value_delimiter = ','
    )]
    pub callback_allow: Vec<ipnet::IpNet>,
}

impl Default for DciArgs {
    fn default() -> Self {
        Self {
            registry_id: "openspp".to_owned(),
            allow_unsigned: false,
            allow_http_callbacks: false,
            callback_allow: Vec::new(),
        }
    }
}

/// What the DCI endpoints and the outbox share (`AppState::dci`); built by `dci::Dci::new`.
pub struct DciSettings {
    pub registry_id: String,
    pub allow_unsigned: bool,
    pub callbacks: CallbackPolicy,
    pub http: reqwest::Client,
}

/// Where DCI callbacks may go (checked by `dci::callback`).
#[derive(Clone, Debug, Default)]
pub struct CallbackPolicy {
    pub allow_http: bool,
    pub allow: Vec<ipnet::IpNet>,
}
