//! `openspp client …` and `openspp key …`: the operator's only way to manage API clients and
//! signing keys. Output is JSON, one object per line, for scripts.

use std::path::Path;

use sqlx::PgPool;

use crate::auth::clients::{self, ClientChanges, NewClient};
use crate::auth::key_sealing::{self, IfMissing, KeyEncryptionArgs};
use crate::auth::{changes, keys};

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
    /// Change a client's scopes, field or program limits, or rate limits; every running server
    /// applies it before the command returns.
    Update {
        client_id: String,
        /// Replace the scopes with these (`resource:action`; repeat for more).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Replace the program limits with these programs (`SYSTEM|VALUE`; repeat for more).
        #[arg(long = "program", conflicts_with = "all_programs")]
        programs: Vec<String>,
        /// Lift the program limits.
        #[arg(long)]
        all_programs: bool,
        /// Replace the field limits with these (`individual:name`; repeat for more).
        #[arg(long = "field", conflicts_with = "all_fields")]
        fields: Vec<String>,
        /// Lift the field limits.
        #[arg(long)]
        all_fields: bool,
        /// Requests per minute (0 = unlimited).
        #[arg(long, value_parser = rate_limit())]
        rate_limit_per_minute: Option<u32>,
        /// Requests per day (0 = unlimited).
        #[arg(long, value_parser = rate_limit())]
        rate_limit_per_day: Option<u32>,
    },
    /// Deactivate a client; its tokens stop working on every server before the command returns.
    Deactivate { client_id: String },
    /// Replace a client's secret (prints the new one once); tokens issued under the old one stop
    /// working on every server before the command returns.
    RotateSecret { client_id: String },
}

/// `Some(list)` if given, `Some([])` if lifted, `None` if left alone.
fn replacement(given: Vec<String>, lift: bool) -> Option<Vec<String>> {
    (lift || !given.is_empty()).then_some(given)
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
    /// Re-seal every signing key under a new key-encryption key (read from FILE, which is
    /// created with a fresh key if it does not exist); then restart the servers with it.
    Reencrypt {
        /// The new key-encryption key's file.
        #[arg(long, value_name = "FILE")]
        new_key_file: std::path::PathBuf,
    },
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
        ClientCommand::Update {
            client_id,
            scopes,
            programs,
            all_programs,
            fields,
            all_fields,
            rate_limit_per_minute,
            rate_limit_per_day,
        } => {
            let update = ClientChanges {
                scopes: replacement(scopes, false),
                allowed_programs: replacement(programs, all_programs),
                field_filter: replacement(fields, all_fields),
                rate_limit_per_minute,
                rate_limit_per_day,
            };
            if update.scopes.is_none()
                && update.allowed_programs.is_none()
                && update.field_filter.is_none()
                && rate_limit_per_minute.is_none()
                && rate_limit_per_day.is_none()
            {
                anyhow::bail!(
                    "nothing to change: give --scope, --program, --field or a rate limit"
                );
            }
            clients::update_client(pool, &client_id, update).await?;
            changes::confirm(pool).await?;
            println!(
                "{}",
                serde_json::json!({"client_id": client_id, "updated": true})
            );
        }
        ClientCommand::Deactivate { client_id } => {
            clients::deactivate_client(pool, &client_id).await?;
            changes::confirm(pool).await?;
            println!(
                "{}",
                serde_json::json!({"client_id": client_id, "active": false})
            );
        }
        ClientCommand::RotateSecret { client_id } => {
            let rotated = clients::rotate_secret(pool, &client_id).await?;
            changes::confirm(pool).await?;
            println!("{}", serde_json::to_string(&rotated)?);
        }
    }
    Ok(())
}

/// Key commands; `kek` names the key-encryption key the servers use (never generated here: a
/// key of the CLI's own would seal keys no server can open).
pub async fn run_key(
    pool: &PgPool,
    command: KeyCommand,
    kek: &KeyEncryptionArgs,
    data_dir: &Path,
) -> anyhow::Result<()> {
    match command {
        KeyCommand::Rotate => {
            let kid = keys::rotate(pool, &kek.load(data_dir, IfMissing::Refuse)?).await?;
            changes::confirm(pool).await?;
            println!("{}", serde_json::json!({"kid": kid}));
        }
        KeyCommand::Retire { kid } => {
            keys::retire(pool, &kid).await?;
            changes::confirm(pool).await?;
            println!("{}", serde_json::json!({"kid": kid, "retired": true}));
        }
        KeyCommand::Reencrypt { new_key_file } => {
            let current = kek.load(data_dir, IfMissing::Refuse)?;
            let created = !new_key_file.exists();
            if created {
                key_sealing::generate_file(&new_key_file)?;
            }
            let new = KeyEncryptionArgs {
                key_encryption_key_file: Some(new_key_file.clone()),
                key_encryption_key: None,
            }
            .load(data_dir, IfMissing::Refuse)?;
            let resealed = keys::reencrypt(pool, &current, &new).await?;
            println!(
                "{}",
                serde_json::json!({
                    "resealed": resealed,
                    "key_encryption_key": new.fingerprint,
                    "file": new_key_file.display().to_string(),
                    "created": created,
                })
            );
        }
    }
    Ok(())
}
