//! The sender registry: which API client a DCI `sender_id` belongs to, and the Ed25519 keys its
//! signatures are verified with (`openspp dci sender add|list|remove`). A request is refused
//! unless it is signed with a registered key of its sender, or the operator allows unsigned
//! requests (`OPENSPP_DCI_ALLOW_UNSIGNED`, for testing); a malformed or wrong signature is
//! always refused, as is a `sender_id` registered to another client.

use anyhow::{bail, Context};
use axum::http::StatusCode;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use clap::Subcommand;
use sqlx::PgPool;

use crate::app::AppState;
use crate::auth::Principal;
use crate::dci::envelope::{DciError, Incoming};
use crate::dci::signature;

fn refused(code: &'static str, message: impl Into<String>) -> DciError {
    DciError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Checks `incoming`'s sender and signature for a request by `principal`.
pub async fn check(
    state: &AppState,
    principal: &Principal,
    incoming: &Incoming,
) -> Result<(), DciError> {
    let sender_id = incoming.sender_id();
    let keys: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT client_id, key_id, public_key FROM dci_sender_keys WHERE sender_id = $1",
    )
    .bind(sender_id)
    .fetch_all(&state.pool)
    .await
    .map_err(|e| DciError::from(crate::error::ApiError::from(e)))?;
    if !keys.is_empty() && !keys.iter().any(|(c, _, _)| *c == principal.client_id) {
        return Err(DciError::new(
            StatusCode::FORBIDDEN,
            "err.sender_id.invalid",
            "header/sender_id: this sender is registered to another client",
        ));
    }
    let Some(text) = &incoming.signature else {
        if state.dci.allow_unsigned {
            return Ok(());
        }
        return Err(refused(
            "err.signature.missing",
            "signature: requests must be signed with a key registered for their sender",
        ));
    };
    let parsed = signature::parse(text)
        .map_err(|why| refused("err.signature.invalid", format!("signature: {why}")))?;
    if parsed.sender_id != sender_id {
        return Err(refused(
            "err.signature.invalid",
            "signature: kidId names another sender than header/sender_id",
        ));
    }
    let (_, _, public_key) = keys
        .iter()
        .find(|(_, key_id, _)| *key_id == parsed.key_id)
        .ok_or_else(|| {
            refused(
                "err.signature.invalid",
                "signature: no such key is registered for this sender",
            )
        })?;
    signature::verify(&parsed, public_key, &incoming.header, &incoming.message)
        .map_err(|why| refused("err.signature.invalid", format!("signature: {why}")))
}

/// `openspp dci …`.
#[derive(Subcommand, Debug)]
pub enum DciCommand {
    /// Manage DCI senders and their signing keys.
    #[command(subcommand)]
    Sender(SenderCommand),
    /// Map a DCI identifier type (`UIN`, `BRN`, …) to one of this registry's identifier systems.
    Idtype {
        /// The DCI identifier type, e.g. `UIN`.
        dci_type: String,
        /// The identifier system URI, e.g. `urn:openspp:vocab:id-type#national_id`.
        system: String,
        /// Preference among names of the same system (lowest is shown on records).
        #[arg(long, default_value_t = 100)]
        rank: i32,
    },
}

#[derive(Subcommand, Debug)]
pub enum SenderCommand {
    /// Register a signing key of a sender, binding the sender id to an API client.
    Add {
        #[arg(long)]
        sender_id: String,
        /// The API client whose tokens this sender uses.
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        key_id: String,
        /// The Ed25519 public key: 32 bytes in base64 or base64url (a JWK's `x`).
        #[arg(long)]
        public_key: String,
    },
    /// List senders and key ids.
    List,
    /// Remove one key of a sender.
    Remove {
        #[arg(long)]
        sender_id: String,
        #[arg(long)]
        key_id: String,
    },
}

pub async fn run(pool: &PgPool, command: DciCommand) -> anyhow::Result<()> {
    match command {
        DciCommand::Sender(SenderCommand::Add {
            sender_id,
            client_id,
            key_id,
            public_key,
        }) => {
            let key = STANDARD
                .decode(public_key.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(public_key.trim()))
                .context("--public-key is not base64")?;
            let bytes: [u8; 32] = key
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("--public-key must be 32 bytes (Ed25519)"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| anyhow::anyhow!("--public-key is not a valid Ed25519 key"))?;
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM api_clients WHERE client_id = $1)",
            )
            .bind(&client_id)
            .fetch_one(pool)
            .await?;
            if !exists {
                bail!("no API client {client_id}");
            }
            let other: Option<String> = sqlx::query_scalar(
                "SELECT client_id FROM dci_sender_keys WHERE sender_id = $1 AND client_id <> $2 \
                 LIMIT 1",
            )
            .bind(&sender_id)
            .bind(&client_id)
            .fetch_optional(pool)
            .await?;
            if other.is_some() {
                bail!("sender {sender_id} is registered to another client");
            }
            sqlx::query(
                "INSERT INTO dci_sender_keys (sender_id, key_id, client_id, public_key) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&sender_id)
            .bind(&key_id)
            .bind(&client_id)
            .bind(bytes.as_slice())
            .execute(pool)
            .await
            .context("the key id is already registered for this sender")?;
            println!(
                "{}",
                serde_json::json!({"sender_id": sender_id, "key_id": key_id})
            );
        }
        DciCommand::Sender(SenderCommand::List) => {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT sender_id, key_id, client_id FROM dci_sender_keys ORDER BY 1, 2",
            )
            .fetch_all(pool)
            .await?;
            for (sender_id, key_id, client_id) in rows {
                println!(
                    "{}",
                    serde_json::json!({"sender_id": sender_id, "key_id": key_id, "client_id": client_id})
                );
            }
        }
        DciCommand::Sender(SenderCommand::Remove { sender_id, key_id }) => {
            let done =
                sqlx::query("DELETE FROM dci_sender_keys WHERE sender_id = $1 AND key_id = $2")
                    .bind(&sender_id)
                    .bind(&key_id)
                    .execute(pool)
                    .await?;
            if done.rows_affected() == 0 {
                bail!("no key {key_id} for sender {sender_id}");
            }
        }
        DciCommand::Idtype {
            dci_type,
            system,
            rank,
        } => {
            sqlx::query(
                "INSERT INTO dci_identifier_types (dci_type, system, rank) VALUES ($1, $2, $3) \
                 ON CONFLICT (dci_type) DO UPDATE SET system = EXCLUDED.system, rank = EXCLUDED.rank",
            )
            .bind(&dci_type)
            .bind(&system)
            .bind(rank)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}
