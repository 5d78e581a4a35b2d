//! Message signatures (standards §2.2): `signature` is an HTTP-Signature-like parameter list,
//! `namespace="dci", kidId="{sender_id}|{key_id}|ed25519", algorithm="ed25519", created=…,
//! expires=…, headers="(created) (expires) digest", signature="…"`. The spec fixes no
//! canonical form, so this server signs, and verifies, the lines
//! `(created): {created}\n(expires): {expires}\ndigest: SHA-256={digest}` where `digest` is the
//! base64 SHA-256 of the canonical JSON (keys sorted, no whitespace) of `header` followed by that
//! of `message`. Envelopes this server sends are signed with its token-signing key (published at
//! `/.well-known/jwks.json`, `kid` as in `kidId`); incoming ones are checked against the keys
//! registered for their sender (`openspp dci sender add`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::keys::KeyRing;

/// How long a signature this server makes stays valid.
const LIFETIME_SECS: i64 = 3600;
/// Clock difference tolerated on `created` and `expires`.
const SKEW_SECS: i64 = 300;

/// `value` as canonical JSON: object keys sorted, no whitespace.
pub fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn signing_string(created: i64, expires: i64, header: &Value, message: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(canonical(header).as_bytes());
    hasher.update(canonical(message).as_bytes());
    let digest = STANDARD.encode(hasher.finalize());
    format!("(created): {created}\n(expires): {expires}\ndigest: SHA-256={digest}")
}

/// This server's signature of an envelope, or `None` if it holds no key it can sign with.
pub fn sign(keys: &KeyRing, registry_id: &str, header: &Value, message: &Value) -> Option<String> {
    let key = keys.signing()?;
    let created = chrono::Utc::now().timestamp();
    let expires = created + LIFETIME_SECS;
    let text = signing_string(created, expires, header, message);
    let signature = jsonwebtoken::crypto::sign(
        text.as_bytes(),
        key.encoding()?,
        jsonwebtoken::Algorithm::EdDSA,
    )
    .ok()?;
    // jsonwebtoken encodes base64url; the envelope carries standard base64.
    let raw = URL_SAFE_NO_PAD.decode(signature).ok()?;
    Some(format!(
        "namespace=\"dci\", kidId=\"{registry_id}|{}|ed25519\", algorithm=\"ed25519\", \
         created=\"{created}\", expires=\"{expires}\", headers=\"(created) (expires) digest\", \
         signature=\"{}\"",
        key.kid,
        STANDARD.encode(raw)
    ))
}

/// A sender's signature of an envelope with its key `key_id`: what a DCI client sends (and what
/// tests send); valid for a minute.
pub fn sign_with(
    key: &ed25519_dalek::SigningKey,
    sender_id: &str,
    key_id: &str,
    header: &Value,
    message: &Value,
) -> String {
    use ed25519_dalek::Signer;
    let created = chrono::Utc::now().timestamp();
    let expires = created + 60;
    let text = signing_string(created, expires, header, message);
    let signature = key.sign(text.as_bytes());
    format!(
        "namespace=\"dci\", kidId=\"{sender_id}|{key_id}|ed25519\", algorithm=\"ed25519\", \
         created=\"{created}\", expires=\"{expires}\", headers=\"(created) (expires) digest\", \
         signature=\"{}\"",
        STANDARD.encode(signature.to_bytes())
    )
}

/// A parsed signature parameter list.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub sender_id: String,
    pub key_id: String,
    created: i64,
    expires: i64,
    signature: Vec<u8>,
}

/// Parses `text`; `Err` says what is malformed.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let text = text.trim();
    let text = text
        .strip_prefix("Signature:")
        .map(str::trim)
        .unwrap_or(text);
    let mut kid = None;
    let mut algorithm = None;
    let mut created = None;
    let mut expires = None;
    let mut signature = None;
    let mut headers = None;
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or("expected name=\"value\" parameters")?;
        let name = name.trim().trim_start_matches(',').trim();
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("{name}: the value must be quoted"))?;
        let (value, after) = after
            .split_once('"')
            .ok_or_else(|| format!("{name}: unterminated value"))?;
        match name {
            "kidId" | "keyId" => kid = Some(value),
            "algorithm" => algorithm = Some(value),
            "created" => created = Some(value),
            "expires" => expires = Some(value),
            "signature" => signature = Some(value),
            "headers" => headers = Some(value),
            _ => {}
        }
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    let kid = kid.ok_or("kidId is required")?;
    let mut parts = kid.split('|');
    let (Some(sender_id), Some(key_id), Some(kid_alg), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("kidId must be {sender_id}|{key_id}|{algorithm}".into());
    };
    if !kid_alg.eq_ignore_ascii_case("ed25519")
        || !algorithm.is_some_and(|a| a.eq_ignore_ascii_case("ed25519"))
    {
        return Err("the algorithm must be ed25519".into());
    }
    if headers.is_some_and(|h| h != "(created) (expires) digest") {
        return Err("headers must be \"(created) (expires) digest\"".into());
    }
    let number = |v: Option<&str>, name: &str| {
        v.and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| format!("{name} must be Unix seconds"))
    };
    let signature = signature.ok_or("signature is required")?;
    let signature = STANDARD
        .decode(signature)
        .or_else(|_| URL_SAFE_NO_PAD.decode(signature))
        .map_err(|_| "signature is not base64")?;
    if signature.len() != 64 {
        return Err("signature is not an Ed25519 signature".into());
    }
    Ok(Parsed {
        sender_id: sender_id.to_owned(),
        key_id: key_id.to_owned(),
        created: number(created, "created")?,
        expires: number(expires, "expires")?,
        signature,
    })
}

/// Whether `parsed` signs `header` + `message` with `public_key`, and is in its validity window.
pub fn verify(
    parsed: &Parsed,
    public_key: &[u8],
    header: &Value,
    message: &Value,
) -> Result<(), String> {
    let now = chrono::Utc::now().timestamp();
    if parsed.created > now + SKEW_SECS || parsed.expires < now - SKEW_SECS {
        return Err("the signature is outside its created–expires window".into());
    }
    let key: [u8; 32] = public_key
        .try_into()
        .map_err(|_| "the registered key is not an Ed25519 key")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "the registered key is invalid")?;
    let signature = Signature::from_slice(&parsed.signature).map_err(|_| "malformed signature")?;
    let text = signing_string(parsed.created, parsed.expires, header, message);
    key.verify(text.as_bytes(), &signature)
        .map_err(|_| "the signature does not match the message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    #[test]
    fn a_signature_verifies_once_and_not_after_a_change() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let header = json!({"b": 1, "a": "x"});
        let message = json!({"transaction_id": "t"});
        let text = sign_with(&key, "spmis", "k1", &header, &message);
        let parsed = parse(&text).unwrap();
        assert_eq!(
            (parsed.sender_id.as_str(), parsed.key_id.as_str()),
            ("spmis", "k1")
        );
        let public = key.verifying_key().to_bytes();
        // Key order is not part of what is signed.
        let reordered: Value = serde_json::from_str(r#"{"a":"x","b":1}"#).unwrap();
        assert_eq!(verify(&parsed, &public, &reordered, &message), Ok(()));
        let changed = json!({"transaction_id": "u"});
        assert!(verify(&parsed, &public, &header, &changed).is_err());
    }

    #[test]
    fn malformed_signatures_are_named() {
        for bad in [
            "",
            "garbage",
            "kidId=\"a|b|rsa\", algorithm=\"rsa\", created=\"1\", expires=\"2\", signature=\"AA==\"",
            "kidId=\"a|b|ed25519\", algorithm=\"ed25519\", created=\"x\", expires=\"2\", signature=\"AA==\"",
            "kidId=\"a|b|ed25519\", algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"AA==\"",
            "kidId=\"a|b|ed25519\", algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"not base64!\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
