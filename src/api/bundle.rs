//! History Bundles as the API answers them (CONTRACT §6): FHIR `history` Bundles of versions,
//! newest first, paged with `_count` and `_offset` and a `next` link.

use axum::http::Uri;
use openspp_projections::search::Page;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::params::page_link;

/// A FHIR Bundle of type `history`: one page of versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryBundle<E: ToSchema> {
    /// Always `Bundle`.
    pub resource_type: String,
    /// Always `history`.
    #[serde(rename = "type")]
    pub bundle_type: String,
    /// How many versions match, over every page.
    pub total: i64,
    /// `self`, and `next` while more versions follow.
    pub link: Vec<BundleLink>,
    pub entry: Vec<E>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BundleLink {
    /// `self` or `next`.
    pub relation: String,
    pub url: String,
}

impl<E: ToSchema> HistoryBundle<E> {
    /// The page `page` of `entries` (all that match, newest first), linked from `uri`.
    pub fn page(uri: &Uri, page: Page, entries: Vec<E>) -> Self {
        let total = entries.len() as i64;
        let entry: Vec<E> = entries
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.count).unwrap_or_default())
            .collect();
        let mut link = vec![BundleLink {
            relation: "self".to_owned(),
            url: uri.to_string(),
        }];
        if page.offset.saturating_add(entry.len() as i64) < total {
            link.push(BundleLink {
                relation: "next".to_owned(),
                url: page_link(uri, page.offset + page.count),
            });
        }
        Self {
            resource_type: "Bundle".to_owned(),
            bundle_type: "history".to_owned(),
            total,
            link,
            entry,
        }
    }
}

/// What happened at a version.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    /// The event's name (`BirthDateChanged`), or `Changed` where the caller may not see what
    /// changed.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The name in words (`Birth date changed`).
    pub description: String,
}

/// The event a version shows a caller who sees nothing it changed: its own name ("Birth date
/// changed") would tell what is hidden.
const NEUTRAL_EVENT: &str = "Changed";

impl HistoryEvent {
    /// The event `event_type`, with its name in words.
    pub fn named(event_type: &str) -> Self {
        Self {
            event_type: event_type.to_owned(),
            description: in_words(event_type),
        }
    }

    /// The event shown where the caller may not see what changed.
    pub fn neutral() -> Self {
        Self {
            event_type: NEUTRAL_EVENT.to_owned(),
            description: NEUTRAL_EVENT.to_owned(),
        }
    }
}

/// `IdentifierAdded` → "Identifier added": event names read as the story they tell.
pub fn in_words(event_type: &str) -> String {
    let mut words = String::with_capacity(event_type.len() + 4);
    for (i, c) in event_type.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
            words.extend(c.to_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

/// One field a version changed, as the caller may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    /// `null` where the field was not set.
    pub old: Value,
    pub new: Value,
}

/// Who recorded a version of a resource, from where, how, when, in which request, under which
/// consent, and the version's link in the hash chain. GraphQL's live events carry the same.
#[derive(Debug, Clone, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct Provenance {
    /// `urn:openspp:api-client:{client_id}`.
    pub client: Option<String>,
    pub source_system: Option<String>,
    pub source_reference: Option<String>,
    /// `api`, `import`, `mobile`, `manual`, `migration` or `merge`.
    pub collection_method: Option<String>,
    pub request_id: Option<String>,
    pub consent_id: Option<String>,
    /// RFC 3339.
    pub recorded: String,
    /// SHA-256, hex.
    pub hash: String,
}

/// One version of a resource in its history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersion<T: ToSchema> {
    /// `…/{id}/_history/{versionId}`.
    pub full_url: String,
    pub version_id: String,
    pub event: HistoryEvent,
    pub changes: Vec<FieldChange>,
    pub provenance: Provenance,
    /// The resource as a read showed it at this version, as the caller may see it.
    pub resource: T,
}

/// Who changed a vocabulary (the operator, or the API client), how, when, in which run.
#[derive(Debug, Serialize, ToSchema)]
pub struct VocabularyProvenance {
    pub actor: Option<String>,
    pub collection_method: Option<String>,
    pub request_id: Option<String>,
    /// RFC 3339.
    pub recorded: String,
    /// SHA-256, hex.
    pub hash: String,
}

/// One recorded change of a vocabulary.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VocabularyVersion {
    pub version_id: String,
    pub event: HistoryEvent,
    pub changes: Vec<FieldChange>,
    pub provenance: VocabularyProvenance,
}

/// A metadata field of a recorded event, as text.
pub fn text(metadata: &Value, key: &str) -> Option<String> {
    metadata.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Provenance {
    /// The provenance an event was recorded with: its source-tracking metadata, when, and its
    /// hash.
    pub fn of_event(
        metadata: &Value,
        recorded_at: chrono::DateTime<chrono::Utc>,
        hash: &[u8],
    ) -> Self {
        Self {
            client: metadata["client_id"]
                .as_str()
                .map(crate::store::metadata::client_uri),
            source_system: text(metadata, "source_system"),
            source_reference: text(metadata, "source_reference"),
            collection_method: text(metadata, "collection_method"),
            request_id: text(metadata, "request_id"),
            consent_id: text(metadata, "consent_id"),
            recorded: recorded_at.to_rfc3339(),
            hash: hex::encode(hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_read_as_words() {
        assert_eq!(in_words("IdentifierAdded"), "Identifier added");
        assert_eq!(in_words("IndividualRegistered"), "Individual registered");
        assert_eq!(in_words("ConsentWithdrawn"), "Consent withdrawn");
    }

    #[test]
    fn a_page_past_the_end_is_empty_without_next() {
        let uri: Uri = "/x/_history?_offset=9223372036854775807".parse().unwrap();
        let page = Page::new(20, i64::MAX);
        let bundle = HistoryBundle::page(
            &uri,
            page,
            vec![1u8, 2, 3].into_iter().map(|n| n.to_string()).collect(),
        );
        assert_eq!(bundle.total, 3);
        assert!(bundle.entry.is_empty());
        assert_eq!(bundle.link.len(), 1);
    }
}
