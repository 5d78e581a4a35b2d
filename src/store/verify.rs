//! Recomputing a stream's hash chain from what is stored, to find the first link that no longer
//! holds (an edited payload, metadata or hash, a removed or reordered event).

use serde::Serialize;

use super::hash_chain::Link;
use super::history::Recorded;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub valid: bool,
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
        self.previous = Some(event.hash.clone());
        Ok(())
    }
}
