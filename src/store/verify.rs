//! Recomputing a stream's hash chain from what is stored, to find the first link that no longer
//! holds (an edited payload, metadata or hash, a removed or reordered event, or a recording time
//! edited in its column: reads go back in time by that column, but only the metadata's copy is
//! hashed).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::hash_chain::Link;
use super::history::Recorded;

/// Whether a stream's hash chain holds (`GET …/_history/$verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Verification {
    pub valid: bool,
    /// How many versions were checked.
    pub versions: usize,
    /// The first version whose link is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Checks events of ONE stream, oldest first.
pub fn verify(events: &[Recorded]) -> Verification {
    let mut chain = Chain::default();
    for event in events {
        if let Err(reason) = chain.push(event) {
            return Verification {
                valid: false,
                versions: events.len(),
                first_broken_version: Some(event.sequence),
                reason: Some(reason),
            };
        }
    }
    Verification {
        valid: true,
        versions: events.len(),
        first_broken_version: None,
        reason: None,
    }
}

/// The state of a walk along one stream's chain.
#[derive(Default)]
pub struct Chain {
    previous: Option<Vec<u8>>,
    expected_sequence: i64,
}

impl Chain {
    /// Checks the next event of the stream.
    pub fn push(&mut self, event: &Recorded) -> Result<(), String> {
        self.expected_sequence += 1;
        if event.sequence != self.expected_sequence {
            return Err(format!(
                "version {} follows version {}",
                event.sequence,
                self.expected_sequence - 1
            ));
        }
        if event.prev_hash != self.previous {
            return Err("does not link to the previous version's hash".to_owned());
        }
        let recomputed = Link {
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            event_version: &event.event_version,
            payload: &event.payload,
            metadata: &event.metadata,
            prev_hash: event.prev_hash.as_deref(),
        }
        .hash();
        if recomputed != event.hash {
            return Err("its content does not match its hash".to_owned());
        }
        if hashed_time(&event.metadata) != Some(event.recorded_at) {
            return Err("its recorded time differs from the hashed one".to_owned());
        }
        self.previous = Some(event.hash.clone());
        Ok(())
    }
}

/// The recording time the hash covers (`metadata.recorded_at`).
fn hashed_time(metadata: &serde_json::Value) -> Option<DateTime<Utc>> {
    let text = metadata.get("recorded_at")?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, SubsecRound};
    use serde_json::json;

    use super::*;

    /// A stream of `n` correctly chained events, recorded a second apart.
    fn stream(n: i64) -> Vec<Recorded> {
        let start = Utc::now().trunc_subsecs(6);
        let mut previous: Option<Vec<u8>> = None;
        (1..=n)
            .map(|sequence| {
                let recorded_at = start + Duration::seconds(sequence);
                let payload = json!({"NameChanged": {"given": format!("G{sequence}")}});
                let metadata = json!({"client_id": "c", "recorded_at": recorded_at.to_rfc3339()});
                let hash = Link {
                    aggregate_type: "Individual",
                    aggregate_id: "s",
                    sequence,
                    event_type: "NameChanged",
                    event_version: "1.0",
                    payload: &payload,
                    metadata: &metadata,
                    prev_hash: previous.as_deref(),
                }
                .hash();
                let event = Recorded {
                    aggregate_type: "Individual".into(),
                    aggregate_id: "s".into(),
                    sequence,
                    event_type: "NameChanged".into(),
                    event_version: "1.0".into(),
                    payload,
                    metadata,
                    recorded_at,
                    prev_hash: previous.take(),
                    hash,
                    feed: Default::default(),
                };
                previous = Some(event.hash.clone());
                event
            })
            .collect()
    }

    #[test]
    fn an_untouched_stream_verifies() {
        let verification = verify(&stream(3));
        assert!(verification.valid, "{verification:?}");
        assert_eq!(verification.versions, 3);
    }

    #[test]
    fn an_edited_recording_time_breaks_the_chain_at_that_version() {
        let mut events = stream(3);
        events[1].recorded_at -= Duration::days(30);
        let verification = verify(&events);
        assert!(!verification.valid);
        assert_eq!(verification.first_broken_version, Some(2));
        assert!(verification.reason.unwrap().contains("recorded time"));
    }

    #[test]
    fn an_edited_payload_breaks_the_chain_at_that_version() {
        let mut events = stream(3);
        events[2].payload = json!({"NameChanged": {"given": "Forged"}});
        let verification = verify(&events);
        assert_eq!(verification.first_broken_version, Some(3));
        assert!(verification.reason.unwrap().contains("hash"));
    }
}
