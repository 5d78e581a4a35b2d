//! Ed25519 token-signing keys, kept in the database so every server process signs and verifies
//! with the same ones. Generated on first start; rotated with `openspp key rotate` and withdrawn
//! with `openspp key retire`. Each change is announced on `KEYS_CHANNEL`, so every process
//! takes it at once: a retired key must stop verifying everywhere, not within a polling period.

use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Where key changes are announced (`LISTEN`/`NOTIFY`).
pub const KEYS_CHANNEL: &str = "openspp_signing_keys";

/// One key pair. The private half never leaves this struct except to sign.
pub struct KeyPair {
    pub kid: String,
    pub public_key: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl KeyPair {
    fn from_parts(kid: String, private_der: &[u8], public_key: Vec<u8>) -> Self {
        Self {
            encoding: EncodingKey::from_ed_der(private_der),
            decoding: DecodingKey::from_ed_der(&public_key),
            kid,
            public_key,
        }
    }

    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public key as a JWK (RFC 8037).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(&self.public_key),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The active keys, newest first (the first signs).
pub struct KeyRing {
    keys: RwLock<Vec<std::sync::Arc<KeyPair>>>,
}

impl KeyRing {
    /// Loads the active keys, creating the first one if there is none. An advisory lock makes
    /// concurrent first starts agree on one key.
    pub async fn load(pool: &PgPool) -> anyhow::Result<Self> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('openspp:signing-keys'))")
            .execute(&mut *tx)
            .await?;
        let existing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        if existing == 0 {
            insert_new(&mut tx).await?;
        }
        tx.commit().await?;
        let ring = Self {
            keys: RwLock::new(Vec::new()),
        };
        ring.reload(pool).await?;
        Ok(ring)
    }

    /// Re-reads the active keys (after a rotation by another process).
    pub async fn reload(&self, pool: &PgPool) -> sqlx::Result<()> {
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT kid, private_der, public_key FROM signing_keys \
             WHERE retired_at IS NULL ORDER BY created_at DESC, kid",
        )
        .fetch_all(pool)
        .await?;
        let keys = rows
            .into_iter()
            .map(|(kid, der, public)| std::sync::Arc::new(KeyPair::from_parts(kid, &der, public)))
            .collect();
        *self.keys.write().expect("key ring lock") = keys;
        Ok(())
    }

    pub fn signing(&self) -> Option<std::sync::Arc<KeyPair>> {
        self.keys.read().expect("key ring lock").first().cloned()
    }

    pub fn find(&self, kid: &str) -> Option<std::sync::Arc<KeyPair>> {
        self.keys
            .read()
            .expect("key ring lock")
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
    }

    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .read()
            .expect("key ring lock")
            .iter()
            .map(|k| k.jwk())
            .collect();
        json!({ "keys": keys })
    }
}

/// Adds a new signing key; older keys keep verifying the tokens they signed.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    let kid = insert_new(&mut tx).await?;
    announce(&mut tx).await?;
    tx.commit().await?;
    Ok(kid)
}

/// Withdraws a key (say, one that leaked): tokens it signed stop verifying at once. The newest
/// key cannot be retired, as there would be nothing left to sign with: rotate first.
pub async fn retire(pool: &PgPool, kid: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('openspp:signing-keys'))")
        .execute(&mut *tx)
        .await?;
    let active: Vec<String> = sqlx::query_scalar(
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid",
    )
    .fetch_all(&mut *tx)
    .await?;
    match active.iter().position(|k| k == kid) {
        None => anyhow::bail!("no active signing key {kid}"),
        Some(0) => anyhow::bail!("{kid} is the signing key; run `openspp key rotate` first"),
        Some(_) => {}
    }
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE kid = $1")
        .bind(kid)
        .execute(&mut *tx)
        .await?;
    announce(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn announce(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(KEYS_CHANNEL)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// Keeps `ring` equal to the database's active keys for as long as the server runs: reloads on
/// every announcement, and after every (re)connection, when announcements may have been missed.
pub async fn follow_changes(pool: &PgPool, ring: &KeyRing) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for signing-key changes; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(KEYS_CHANNEL).await {
            tracing::warn!(%error, "cannot listen for signing-key changes; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        loop {
            if let Err(error) = ring.reload(pool).await {
                tracing::warn!(%error, "cannot reload signing keys");
            }
            if let Err(error) = listener.recv().await {
                tracing::warn!(%error, "signing-key notifications interrupted; reconnecting");
                break;
            }
        }
    }
}

async fn insert_new(tx: &mut sqlx::PgConnection) -> anyhow::Result<String> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der()?;
    let public = key.verifying_key().to_bytes().to_vec();
    let kid = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_der, public_key) VALUES ($1, 'EdDSA', $2, $3)",
    )
    .bind(&kid)
    .bind(der.as_bytes())
    .bind(&public)
    .execute(&mut *tx)
    .await?;
    Ok(kid)
}

#[cfg(test)]
impl KeyRing {
    pub fn from_keys(keys: Vec<KeyPair>) -> Self {
        Self {
            keys: RwLock::new(keys.into_iter().map(std::sync::Arc::new).collect()),
        }
    }
}

/// A fresh key pair outside the database, for tests of forged tokens.
#[cfg(test)]
pub fn ephemeral(kid: &str) -> KeyPair {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().unwrap();
    KeyPair::from_parts(
        kid.to_owned(),
        der.as_bytes(),
        key.verifying_key().to_bytes().to_vec(),
    )
}
