//! The key-encryption key: token-signing keys are stored sealed under it (XChaCha20-Poly1305), so
//! a copy of the database — a backup, a replica, a stolen dump — cannot mint tokens.
//!
//! The operator supplies it as a file (`OPENSPP_KEY_ENCRYPTION_KEY_FILE`) or in the environment
//! (`OPENSPP_KEY_ENCRYPTION_KEY`): 32 random bytes, base64. When neither is given, `serve` uses
//! `<data-dir>/key-encryption.key`, generating it on first start with a warning: a key kept beside
//! the data protects the database's copies, not the machine. Every server process on one
//! database needs the same key; `openspp key reencrypt` re-seals the keys under a new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The file used when the operator supplies no key.
pub const DEFAULT_FILE: &str = "key-encryption.key";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Where the key-encryption key comes from (at most one of the two; else the data folder).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KeyEncryptionArgs {
    /// File holding the key that seals the token-signing keys in the database (32 random
    /// bytes, base64; e.g. `openssl rand -base64 32`). Default: <data-dir>/key-encryption.key,
    /// generated on first start.
    #[arg(
        long,
        env = "OPENSPP_KEY_ENCRYPTION_KEY_FILE",
        conflicts_with = "key_encryption_key"
    )]
    pub key_encryption_key_file: Option<PathBuf>,
    /// The key-encryption key itself, base64 (prefer the environment variable or the file: a
    /// flag is visible to every user of the machine).
    #[arg(long, env = "OPENSPP_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<String>,
}

/// May a missing default key file be created? Only a server's first start makes one: a CLI
/// command that made its own would seal keys no server can open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    Generate,
    Refuse,
}

impl KeyEncryptionArgs {
    pub fn load(&self, data_dir: &Path, if_missing: IfMissing) -> anyhow::Result<KeyEncryptionKey> {
        if let Some(text) = &self.key_encryption_key {
            return KeyEncryptionKey::parse(text, "OPENSPP_KEY_ENCRYPTION_KEY");
        }
        if let Some(path) = &self.key_encryption_key_file {
            return read_file(path);
        }
        let path = data_dir.join(DEFAULT_FILE);
        if !path.exists() {
            if if_missing == IfMissing::Refuse {
                bail!(
                    "no key-encryption key: set OPENSPP_KEY_ENCRYPTION_KEY_FILE (or \
                     OPENSPP_KEY_ENCRYPTION_KEY) to the key the servers use, or run from the \
                     folder whose {} holds it",
                    path.display()
                );
            }
            generate_file(&path)?;
        }
        read_file(&path)
    }
}

fn read_file(path: &Path) -> anyhow::Result<KeyEncryptionKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key-encryption key {}", path.display()))?;
    warn_if_readable_by_others(path);
    KeyEncryptionKey::parse(&text, &path.display().to_string())
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the key-encryption key file is readable by other users; chmod 600 it");
        }
    }
}

/// Writes a fresh key to `path` (mode 0600). Concurrent first starts agree on one key: each
/// writes its own temporary file and links it into place; whoever loses reads the winner's.
pub fn generate_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut bytes = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    writeln!(file, "{}", STANDARD.encode(bytes))?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            tracing::warn!(
                file = %path.display(),
                "no key-encryption key was supplied, so one was generated beside the data; \
                 back it up (without it the signing keys cannot be opened) and, in production, \
                 supply it from outside the data folder (OPENSPP_KEY_ENCRYPTION_KEY_FILE)"
            );
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// A key-encryption key, with where it came from and its fingerprint (a hash that names the
/// key in messages and in the database without revealing it).
pub struct KeyEncryptionKey {
    cipher: XChaCha20Poly1305,
    pub fingerprint: String,
    pub source: String,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("fingerprint", &self.fingerprint)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl KeyEncryptionKey {
    /// Reads base64 of exactly 32 bytes (surrounding whitespace ignored).
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .filter(|bytes| bytes.len() == KEY_BYTES)
            .with_context(|| {
                format!(
                    "the key-encryption key from {source} is not base64 of 32 bytes \
                     (make one with `openssl rand -base64 32`)"
                )
            })?;
        let digest = Sha256::new()
            .chain_update(b"openspp key-encryption key fingerprint\0")
            .chain_update(&bytes)
            .finalize();
        Ok(Self {
            cipher: XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key"),
            fingerprint: hex::encode(&digest[..8]),
            source: source.to_owned(),
        })
    }

    /// Seals `secret` for the signing key `kid` (bound to it: a sealed key copied onto another
    /// row does not open). Returns nonce || ciphertext.
    pub fn seal(&self, kid: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(kid);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of this size");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens what `seal` made for `kid`; `None` if this is not the key it was sealed under (or
    /// the bytes were altered).
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        let aad = associated_data(kid);
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
    }
}

fn associated_data(kid: &str) -> Vec<u8> {
    format!("openspp signing key {kid}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyEncryptionKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        KeyEncryptionKey::parse(&STANDARD.encode(bytes), "test").unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_their_key_and_kid() {
        let kek = key();
        let sealed = kek.seal("k1", b"private key bytes");
        assert!(!sealed.windows(b"private".len()).any(|w| w == b"private"));
        assert_eq!(kek.open("k1", &sealed).unwrap(), b"private key bytes");
        assert!(kek.open("k2", &sealed).is_none(), "bound to its key id");
        assert!(
            key().open("k1", &sealed).is_none(),
            "another key cannot open it"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(kek.open("k1", &altered).is_none());
        assert!(kek.open("k1", &sealed[..10]).is_none());
    }

    #[test]
    fn keys_must_be_base64_of_32_bytes() {
        assert!(KeyEncryptionKey::parse("short", "t").is_err());
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([1u8; 31]), "t").is_err());
        let a =
            KeyEncryptionKey::parse(&format!(" {}\n", STANDARD.encode([1u8; 32])), "t").unwrap();
        let b = KeyEncryptionKey::parse(&STANDARD.encode([2u8; 32]), "t").unwrap();
        assert_eq!(a.fingerprint.len(), 16);
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn a_generated_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("openspp-kek-{}", uuid::Uuid::new_v4()));
        let args = KeyEncryptionArgs::default();
        assert!(args.load(&dir, IfMissing::Refuse).is_err());
        let first = args.load(&dir, IfMissing::Generate).unwrap();
        let mode = std::fs::metadata(dir.join(DEFAULT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = args.load(&dir, IfMissing::Refuse).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
