//! The per-stream hash chain that makes tampering with stored events evident.
//!
//! Each event's hash is SHA-256 over a canonical JSON document (keys sorted, no whitespace) of
//! the previous hash, the stream position, the payload and the metadata. The document is
//! rebuilt from what the database returns, never from bytes we sent, because jsonb normalises
//! its text (stack.md §1.3); serde_json's default map is sorted, which makes it canonical.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What a link covers, as stored.
pub struct Link<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a Value,
    pub metadata: &'a Value,
    pub prev_hash: Option<&'a [u8]>,
}

impl Link<'_> {
    pub fn hash(&self) -> Vec<u8> {
        let document = json!({
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "sequence": self.sequence,
            "event_type": self.event_type,
            "event_version": self.event_version,
            "payload": self.payload,
            "metadata": self.metadata,
            "prev_hash": self.prev_hash.map(hex::encode),
        });
        Sha256::digest(document.to_string().as_bytes()).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link<'a>(payload: &'a Value, metadata: &'a Value, prev: Option<&'a [u8]>) -> Link<'a> {
        Link {
            aggregate_type: "Individual",
            aggregate_id: "a",
            sequence: 1,
            event_type: "NameChanged",
            event_version: "1.0",
            payload,
            metadata,
            prev_hash: prev,
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order_or_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": "2", "x": [1, 2]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":[1,2],"y":"2"},"b":1}"#).unwrap();
        let meta = json!({"client_id": "c"});
        assert_eq!(link(&a, &meta, None).hash(), link(&b, &meta, None).hash());
    }

    #[test]
    fn every_covered_part_changes_the_hash() {
        let payload = json!({"name": "Ana"});
        let meta = json!({"client_id": "c"});
        let base = link(&payload, &meta, None).hash();
        let other_payload = json!({"name": "Ana "});
        assert_ne!(base, link(&other_payload, &meta, None).hash());
        let other_meta = json!({"client_id": "d"});
        assert_ne!(base, link(&payload, &other_meta, None).hash());
        assert_ne!(base, link(&payload, &meta, Some(&[0u8; 32])).hash());
        let mut moved = link(&payload, &meta, None);
        moved.sequence = 2;
        assert_ne!(base, moved.hash());
    }
}
