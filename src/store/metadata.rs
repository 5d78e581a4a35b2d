//! Source tracking carried by every event (DESIGN "Events", CONTRACT §6): who caused it, from
//! which system, through which channel, in which request, and when it was recorded.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};

/// How the data reached the registry (OpenSPP `collection_method`).
pub const COLLECTION_METHODS: [&str; 6] =
    ["api", "import", "mobile", "manual", "migration", "merge"];

#[derive(Clone, Debug)]
pub struct CommandMetadata {
    pub client_id: String,
    /// `X-Source-System`, else the client's own URI.
    pub source_system: String,
    /// `X-Source-Reference`: the record's id in the source system, if given.
    pub source_reference: Option<String>,
    pub collection_method: String,
    pub request_id: String,
    /// The consent the command relies on, if the client needs one: recorded with the events,
    /// and held in force until they commit.
    pub consent_id: Option<String>,
    /// The subject (stream) that consent is relied on for. When the consent is a household's,
    /// the subject's membership is held until the events commit too. Not stored.
    pub consent_subject: Option<String>,
    /// The organisation relying on that consent: held in force for it, so a write racing
    /// that recipient's own withdrawal fails as a lapse does. Not stored.
    pub consent_recipient: Option<String>,
}

impl CommandMetadata {
    /// Names the subject the consent is relied on for (see `consent_subject`), and the
    /// organisation relying on it (`consent_recipient`).
    pub fn relied_on_for(mut self, subject: &str, recipient: &str) -> Self {
        self.consent_subject = Some(subject.to_owned());
        self.consent_recipient = Some(recipient.to_owned());
        self
    }

    /// The metadata object stored with each event. `recorded_at` is truncated to microseconds,
    /// PostgreSQL's precision, so that the hash computed now is the hash recomputed from storage.
    pub fn to_json(&self, recorded_at: DateTime<Utc>) -> Value {
        let mut map = Map::new();
        map.insert("client_id".into(), self.client_id.clone().into());
        map.insert("source_system".into(), self.source_system.clone().into());
        if let Some(reference) = &self.source_reference {
            map.insert("source_reference".into(), reference.clone().into());
        }
        map.insert(
            "collection_method".into(),
            self.collection_method.clone().into(),
        );
        map.insert("request_id".into(), self.request_id.clone().into());
        if let Some(consent) = &self.consent_id {
            map.insert("consent_id".into(), consent.clone().into());
        }
        map.insert(
            "recorded_at".into(),
            recorded_at.trunc_subsecs(6).to_rfc3339().into(),
        );
        Value::Object(map)
    }
}

/// The API client as a provenance URI (ADR-008).
pub fn client_uri(client_id: &str) -> String {
    format!("urn:openspp:api-client:{client_id}")
}
