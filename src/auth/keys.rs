//! Ed25519 token-signing keys, kept in the database so every server process signs and verifies
//! with the same ones, their private halves sealed under the operator's key-encryption key
//! (`key_sealing`). Generated on first start; rotated with `openspp key rotate` and withdrawn
//! with `openspp key retire`. A trigger announces every change on `KEYS_CHANNEL`, so every
//! process takes it at once (`changes`): a retired key must stop verifying everywhere, not
//! within a polling period.

use std::sync::{Arc, RwLock};

use anyhow::{bail, Context};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::auth::key_sealing::KeyEncryptionKey;
use openspp_projections::begin::begin;

/// Where key changes are announced (`LISTEN`/`NOTIFY`).
pub const KEYS_CHANNEL: &str = "openspp_signing_keys";

/// One key pair. The private half never leaves this struct except to sign.
pub struct KeyPair {
    pub kid: String,
    pub public_key: Vec<u8>,
    /// `None` where this process cannot open the sealed private half (it still verifies).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

impl KeyPair {
    fn from_parts(kid: String, private_der: Option<&[u8]>, public_key: Vec<u8>) -> Self {
        Self {
            encoding: private_der.map(EncodingKey::from_ed_der),
            decoding: DecodingKey::from_ed_der(&public_key),
            kid,
            public_key,
        }
    }

    /// The signing half; `KeyRing::signing` only hands out keys that have one.
    pub fn encoding(&self) -> Option<&EncodingKey> {
        self.encoding.as_ref()
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

/// The active keys, newest first (the first that this process can open signs).
pub struct KeyRing {
    keys: RwLock<Vec<Arc<KeyPair>>>,
    /// Opens the sealed private halves of keys this process has not seen yet.
    kek: Option<KeyEncryptionKey>,
}

impl KeyRing {
    /// Checks that `kek` opens the stored keys, seals any an earlier version stored in
    /// plaintext, creates the first key if there is none, and loads them. An advisory lock makes
    /// concurrent first starts agree on one key. A wrong `kek` is an error, never a new key.
    pub async fn load(pool: &PgPool, kek: KeyEncryptionKey) -> anyhow::Result<Self> {
        let mut tx = begin(pool).await?;
        lock(&mut tx).await?;
        check_opens(&mut tx, &kek).await?;
        let sealed = seal_plaintext(&mut tx, &kek).await?;
        let existing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        if existing == 0 {
            insert_new(&mut tx, &kek).await?;
        }
        tx.commit().await?;
        if sealed > 0 {
            // The plaintext rows are dead tuples now; rewrite the (tiny) table so they are gone
            // from its files too. Old WAL and backups still hold them: rotate the keys.
            if let Err(error) = sqlx::query("VACUUM FULL signing_keys").execute(pool).await {
                tracing::warn!(%error, "cannot rewrite signing_keys after sealing");
            }
            tracing::warn!(
                sealed,
                "sealed signing keys that were stored in plaintext; backups and WAL made before                  now still hold them: run `openspp key rotate`, then retire the old keys"
            );
        }
        let ring = Self {
            keys: RwLock::new(Vec::new()),
            kek: Some(kek),
        };
        ring.reload(pool).await?;
        Ok(ring)
    }

    /// Re-reads the active keys (after a rotation by another process). Keys already held are
    /// kept as they are: their private half never changes, and a re-sealing under a new
    /// key-encryption key (`key reencrypt`) must not stop a running server from signing.
    pub async fn reload(&self, pool: &PgPool) -> sqlx::Result<()> {
        let rows: Vec<(String, Option<Vec<u8>>, Vec<u8>)> = sqlx::query_as(
            "SELECT kid, private_sealed, public_key FROM signing_keys \
             WHERE retired_at IS NULL ORDER BY created_at DESC, kid",
        )
        .fetch_all(pool)
        .await?;
        let held = self.keys.read().expect("key ring lock").clone();
        let keys = rows
            .into_iter()
            .map(|(kid, sealed, public)| {
                if let Some(key) = held.iter().find(|k| k.kid == kid) {
                    return key.clone();
                }
                let private = sealed.and_then(|s| self.kek.as_ref()?.open(&kid, &s));
                if private.is_none() {
                    tracing::error!(
                        %kid,
                        "this server's key-encryption key cannot open signing key; it verifies \
                         tokens but this server will not sign with it"
                    );
                }
                Arc::new(KeyPair::from_parts(kid, private.as_deref(), public))
            })
            .collect();
        *self.keys.write().expect("key ring lock") = keys;
        Ok(())
    }

    /// The key new tokens are signed with: the newest this process can open.
    pub fn signing(&self) -> Option<Arc<KeyPair>> {
        self.keys
            .read()
            .expect("key ring lock")
            .iter()
            .find(|k| k.encoding.is_some())
            .cloned()
    }

    pub fn find(&self, kid: &str) -> Option<Arc<KeyPair>> {
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

/// Serialises changes to the key set across processes.
async fn lock(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('openspp:signing-keys'))")
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// Fails, naming both fingerprints, unless `kek` opens every active sealed key.
async fn check_opens(tx: &mut sqlx::PgConnection, kek: &KeyEncryptionKey) -> anyhow::Result<()> {
    let rows: Vec<(String, Vec<u8>, Option<String>)> = sqlx::query_as(
        "SELECT kid, private_sealed, sealed_with FROM signing_keys \
         WHERE retired_at IS NULL AND private_sealed IS NOT NULL ORDER BY created_at",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (kid, sealed, sealed_with) in rows {
        if kek.open(&kid, &sealed).is_some() {
            continue;
        }
        let sealed_with = sealed_with.unwrap_or_else(|| "unknown".to_owned());
        if sealed_with == kek.fingerprint {
            bail!("signing key {kid} does not open with its key-encryption key: the stored key is damaged");
        }
        bail!(
            "the token-signing keys in the database are sealed with key-encryption key \
             {sealed_with}, but the key from {} is {}: supply the key they were sealed with \
             (every server on one database needs the same one)",
            kek.source,
            kek.fingerprint
        );
    }
    Ok(())
}

/// Seals the private halves an earlier version stored in plaintext (and drops those of retired
/// keys, which nothing signs with again). Returns how many rows changed.
async fn seal_plaintext(tx: &mut sqlx::PgConnection, kek: &KeyEncryptionKey) -> sqlx::Result<u64> {
    let rows: Vec<(String, Vec<u8>, bool)> = sqlx::query_as(
        "SELECT kid, private_der, retired_at IS NULL FROM signing_keys \
         WHERE private_der IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let count = rows.len() as u64;
    for (kid, der, active) in rows {
        let sealed = active.then(|| kek.seal(&kid, &der));
        sqlx::query(
            "UPDATE signing_keys SET private_der = NULL, private_sealed = $2, sealed_with = $3 \
             WHERE kid = $1",
        )
        .bind(&kid)
        .bind(&sealed)
        .bind(sealed.as_ref().map(|_| &kek.fingerprint))
        .execute(&mut *tx)
        .await?;
    }
    Ok(count)
}

/// Adds a new signing key, sealed under `kek`; older keys keep verifying the tokens they signed.
/// Refuses if `kek` is not the key the other keys are sealed under (no server could sign).
pub async fn rotate(pool: &PgPool, kek: &KeyEncryptionKey) -> anyhow::Result<String> {
    let mut tx = begin(pool).await?;
    lock(&mut tx).await?;
    check_opens(&mut tx, kek).await?;
    let kid = insert_new(&mut tx, kek).await?;
    tx.commit().await?;
    Ok(kid)
}

/// Withdraws a key (say, one that leaked): tokens it signed stop verifying at once, and its
/// private half is erased. The newest key cannot be retired, as there would be nothing left to
/// sign with: rotate first.
pub async fn retire(pool: &PgPool, kid: &str) -> anyhow::Result<()> {
    let mut tx = begin(pool).await?;
    lock(&mut tx).await?;
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
    sqlx::query(
        "UPDATE signing_keys SET retired_at = now(), private_der = NULL, private_sealed = NULL \
         WHERE kid = $1",
    )
    .bind(kid)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Re-seals every active key under `new` (opened with `current`), in one transaction: the
/// operator's way to rotate the key-encryption key. Running servers keep the keys they hold;
/// restart them with the new key afterwards. Returns how many keys were re-sealed.
pub async fn reencrypt(
    pool: &PgPool,
    current: &KeyEncryptionKey,
    new: &KeyEncryptionKey,
) -> anyhow::Result<u64> {
    let mut tx = begin(pool).await?;
    lock(&mut tx).await?;
    check_opens(&mut tx, current).await?;
    seal_plaintext(&mut tx, current).await?;
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT kid, private_sealed FROM signing_keys \
         WHERE retired_at IS NULL AND private_sealed IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let count = rows.len() as u64;
    for (kid, sealed) in rows {
        let private = current
            .open(&kid, &sealed)
            .context("a signing key changed while being re-sealed")?;
        sqlx::query("UPDATE signing_keys SET private_sealed = $2, sealed_with = $3 WHERE kid = $1")
            .bind(&kid)
            .bind(new.seal(&kid, &private))
            .bind(&new.fingerprint)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(count)
}

async fn insert_new(tx: &mut sqlx::PgConnection, kek: &KeyEncryptionKey) -> anyhow::Result<String> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der()?;
    let public = key.verifying_key().to_bytes().to_vec();
    let kid = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_sealed, sealed_with, public_key) \
         VALUES ($1, 'EdDSA', $2, $3, $4)",
    )
    .bind(&kid)
    .bind(kek.seal(&kid, der.as_bytes()))
    .bind(&kek.fingerprint)
    .bind(&public)
    .execute(&mut *tx)
    .await?;
    Ok(kid)
}

impl KeyRing {
    /// No keys: for a process that issues and verifies no token (`AppState::offline`).
    pub fn none() -> Self {
        Self {
            keys: RwLock::new(Vec::new()),
            kek: None,
        }
    }
}

#[cfg(test)]
impl KeyRing {
    pub fn from_keys(keys: Vec<KeyPair>) -> Self {
        Self {
            keys: RwLock::new(keys.into_iter().map(Arc::new).collect()),
            kek: None,
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
        Some(der.as_bytes()),
        key.verifying_key().to_bytes().to_vec(),
    )
}
