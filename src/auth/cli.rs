//! `openspp client …` and `openspp key …`: the operator's only way to manage API clients and
//! signing keys. Output is JSON, one object per line, for scripts.

use sqlx::PgPool;

use crate::auth::clients::{self, NewClient};
use crate::auth::keys;

#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Create a client; prints {"client_id", "client_secret"} once (the secret is stored hashed).
    Create {
        #[arg(long)]
        name: String,
        /// The organisation the client acts for.
        #[arg(long)]
        organization: String,
        /// Organisation type (government, ngo, private, international, …), used by category consents.
        #[arg(long)]
        organization_type: String,
        /// A `resource:action` scope; repeat for more.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Limit the client to this program (`SYSTEM|VALUE`); repeat for more.
        #[arg(long = "program")]
        programs: Vec<String>,
        /// Limit the client to this field of a resource (`individual:name`); repeat for more.
        #[arg(long = "field")]
        fields: Vec<String>,
        /// Act under a legal basis other than the data subject's consent.
        #[arg(long, requires = "legal_basis")]
        no_consent_required: bool,
        /// The GDPR article 6 basis the client acts under (with --no-consent-required).
        #[arg(long, requires = "no_consent_required")]
        legal_basis: Option<String>,
        /// Requests per minute (0 = unlimited).
        #[arg(long, default_value_t = 60, value_parser = rate_limit())]
        rate_limit_per_minute: u32,
        /// Requests per day (0 = unlimited).
        #[arg(long, default_value_t = 10_000, value_parser = rate_limit())]
        rate_limit_per_day: u32,
    },
    /// List clients (no secrets).
    List,
    /// Deactivate a client; its tokens stop working at once.
    Deactivate { client_id: String },
    /// Replace a client's secret; prints the new one once.
    RotateSecret { client_id: String },
}

/// Limits are stored as PostgreSQL integers.
fn rate_limit() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::new().range(0..=i32::MAX as u64)
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a new token-signing key the signing key; older keys keep verifying.
    Rotate,
    /// Withdraw a key: tokens it signed stop working at once on every server.
    Retire { kid: String },
}

pub async fn run(pool: &PgPool, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            name,
            organization,
            organization_type,
            scopes,
            programs,
            fields,
            no_consent_required,
            legal_basis,
            rate_limit_per_minute,
            rate_limit_per_day,
        } => {
            let created = clients::create_client(
                pool,
                NewClient {
                    name,
                    organization,
                    organization_type,
                    scopes,
                    allowed_programs: programs,
                    field_filter: fields,
                    require_consent: !no_consent_required,
                    legal_basis,
                    rate_limit_per_minute,
                    rate_limit_per_day,
                },
            )
            .await?;
            println!("{}", serde_json::to_string(&created)?);
        }
        ClientCommand::List => {
            for client in clients::list_clients(pool).await? {
                println!("{}", serde_json::to_string(&client)?);
            }
        }
        ClientCommand::Deactivate { client_id } => {
            clients::deactivate_client(pool, &client_id).await?;
            println!(
                "{}",
                serde_json::json!({"client_id": client_id, "active": false})
            );
        }
        ClientCommand::RotateSecret { client_id } => {
            let rotated = clients::rotate_secret(pool, &client_id).await?;
            println!("{}", serde_json::to_string(&rotated)?);
        }
    }
    Ok(())
}

pub async fn run_key(pool: &PgPool, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Rotate => {
            let kid = keys::rotate(pool).await?;
            println!("{}", serde_json::json!({"kid": kid}));
        }
        KeyCommand::Retire { kid } => {
            keys::retire(pool, &kid).await?;
            println!("{}", serde_json::json!({"kid": kid, "retired": true}));
        }
    }
    Ok(())
}
