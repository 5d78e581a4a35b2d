//! The per-stream hash chain that makes tampering with stored events evident.
//!
//! Each event's hash is SHA-256 over a canonical JSON document (keys sorted, no whitespace) of
//! the previous hash, the stream position, the payload and the metadata. The document is
//! rebuilt from what the database returns, never from bytes we sent, because jsonb normalises
//! its text (stack.md §1.3); serde_json's default map is sorted, which makes it canonical.

use serde::Serialize;
use serde_json::Value;
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

/// The hashed document: its fields in alphabetical order, as a sorted map would write them,
/// borrowing the payload and metadata rather than copying them into a new tree.
#[derive(Serialize)]
struct Document<'a> {
    aggregate_id: &'a str,
    aggregate_type: &'a str,
    event_type: &'a str,
    event_version: &'a str,
    metadata: &'a Value,
    payload: &'a Value,
    prev_hash: Option<String>,
    sequence: i64,
}

impl Link<'_> {
    pub fn hash(&self) -> Vec<u8> {
        let document = Document {
            aggregate_id: self.aggregate_id,
            aggregate_type: self.aggregate_type,
            event_type: self.event_type,
            event_version: self.event_version,
            metadata: self.metadata,
            payload: self.payload,
            prev_hash: self.prev_hash.map(hex::encode),
            sequence: self.sequence,
        };
        let text = serde_json::to_vec(&document).expect("JSON values always serialize");
        Sha256::digest(&text).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The document as the chain has always been hashed: a `json!` object, whose keys a
    /// sorted map orders. Every stored hash was made this way; the borrowed document must
    /// write the very same bytes.
    #[test]
    fn the_document_is_the_sorted_object_of_the_first_hashes() {
        let payload = json!({"NameChanged": {"given": "Ana", "family": null}});
        let metadata = json!({"client_id": "c", "recorded_at": "2026-01-01T00:00:00+00:00"});
        let prev = [7u8; 32];
        let link = link(&payload, &metadata, Some(&prev));
        let original = json!({
            "aggregate_type": link.aggregate_type,
            "aggregate_id": link.aggregate_id,
            "sequence": link.sequence,
            "event_type": link.event_type,
            "event_version": link.event_version,
            "payload": link.payload,
            "metadata": link.metadata,
            "prev_hash": link.prev_hash.map(hex::encode),
        });
        assert_eq!(
            link.hash(),
            Sha256::digest(original.to_string().as_bytes()).to_vec()
        );
    }

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
