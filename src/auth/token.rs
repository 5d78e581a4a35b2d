//! Access tokens: EdDSA-signed JWTs. The verifier accepts exactly one algorithm, so `alg: none`
//! and algorithm confusion (an HMAC keyed with the public key) fail before any claim is read.

use std::collections::HashSet;

use jsonwebtoken::{decode, decode_header, encode, Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::keys::{KeyPair, KeyRing};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub client_id: String,
    /// Space-separated `resource:action` scopes.
    pub scope: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    /// The client's secret version when the token was issued: rotating the secret makes every
    /// earlier token fail. Absent (0) in tokens issued before versions existed.
    #[serde(default)]
    pub secret_version: i32,
}

/// Why a presented token was refused; the client only ever sees "invalid_token".
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("malformed token")]
    Malformed,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("{0}")]
    Invalid(jsonwebtoken::errors::Error),
}

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

pub struct Issuer<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub lifetime_secs: u64,
}

impl Issuer<'_> {
    /// Signs a token; `key` must be one `KeyRing::signing` handed out (it has its private half).
    pub fn issue(
        &self,
        key: &KeyPair,
        client_id: &str,
        scopes: &[String],
        secret_version: i32,
        now: u64,
    ) -> String {
        let claims = Claims {
            iss: self.issuer.to_owned(),
            aud: self.audience.to_owned(),
            sub: client_id.to_owned(),
            client_id: client_id.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            nbf: now,
            exp: now + self.lifetime_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            secret_version,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let private = key
            .encoding()
            .expect("signing keys have their private half");
        encode(&header, &claims, private).expect("an Ed25519 key always signs")
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and not-before; returns the
    /// claims and the id of the key that signed them.
    pub fn verify(&self, keys: &KeyRing, token: &str) -> Result<(Claims, String), Rejected> {
        let header = decode_header(token).map_err(|_| Rejected::Malformed)?;
        let kid = header.kid.ok_or(Rejected::UnknownKey)?;
        let key = keys.find(&kid).ok_or(Rejected::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[self.issuer]);
        validation.set_audience(&[self.audience]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation.required_spec_claims =
            HashSet::from(["exp", "nbf", "iss", "aud", "sub"].map(str::to_owned));
        decode::<Claims>(token, key.decoding(), &validation)
            .map(|data| (data.claims, kid))
            .map_err(Rejected::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::EncodingKey;

    use super::*;
    use crate::auth::keys::ephemeral;

    const NOW: u64 = 1_900_000_000;

    fn issuer() -> Issuer<'static> {
        Issuer {
            issuer: "urn:openspp:api",
            audience: "urn:openspp:api:v2",
            lifetime_secs: 3600,
        }
    }

    fn ring(key: KeyPair) -> KeyRing {
        KeyRing::from_keys(vec![key])
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_token_it_issued_verifies_with_its_claims() {
        let key = ephemeral("k1");
        let token = issuer().issue(&key, "client_a", &["individual:read".into()], 0, now());
        let (claims, kid) = issuer().verify(&ring(key), &token).unwrap();
        assert_eq!(kid, "k1");
        assert_eq!(claims.client_id, "client_a");
        assert_eq!(claims.scope, "individual:read");
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_fail() {
        let key = ephemeral("k1");
        let old = issuer().issue(&key, "c", &[], 0, now() - 7200);
        let keys = ring(key);
        assert!(issuer().verify(&keys, &old).is_err());
        let key = ephemeral("k2");
        let future = issuer().issue(&key, "c", &[], 0, NOW.max(now() + 600));
        assert!(issuer().verify(&ring(key), &future).is_err());
    }

    #[test]
    fn wrong_issuer_or_audience_fails() {
        let key = ephemeral("k1");
        let mut other = issuer();
        other.audience = "urn:elsewhere";
        let token = other.issue(&key, "c", &[], 0, now());
        assert!(issuer().verify(&ring(key), &token).is_err());
        let key = ephemeral("k1");
        let mut other = issuer();
        other.issuer = "urn:evil";
        let token = other.issue(&key, "c", &[], 0, now());
        assert!(issuer().verify(&ring(key), &token).is_err());
    }

    #[test]
    fn tokens_signed_by_another_key_fail() {
        let ours = ephemeral("k1");
        let forged = issuer().issue(&ephemeral("k1"), "c", &[], 0, now());
        assert!(issuer().verify(&ring(ours), &forged).is_err());
    }

    #[test]
    fn alg_none_and_hmac_with_the_public_key_fail() {
        let key = ephemeral("k1");
        let claims = serde_json::json!({
            "iss": "urn:openspp:api", "aud": "urn:openspp:api:v2", "sub": "c", "client_id": "c",
            "scope": "individual:all", "iat": now(), "nbf": now(), "exp": now() + 600, "jti": "x"
        });
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#);
        let none_token = format!("{none_header}.{body}.");
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("k1".into());
        let confused = encode(&hs, &claims, &EncodingKey::from_secret(&key.public_key)).unwrap();
        let keys = ring(key);
        assert!(issuer().verify(&keys, &none_token).is_err());
        assert!(issuer().verify(&keys, &confused).is_err());
    }

    #[test]
    fn a_tampered_payload_fails() {
        let key = ephemeral("k1");
        let token = issuer().issue(&key, "c", &["individual:read".into()], 0, now());
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["scope"] = "individual:all".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert!(issuer().verify(&ring(key), &tampered).is_err());
    }
}
