//! The vocabularies every server process holds in memory: the ones shipped with the server
//! (the migrations' `vocabularies` and `vocabulary_codes` tables, the *baseline*) with the
//! operators' recorded changes (the `Vocabulary` event streams) laid over them, by the domain's
//! own `ManagedVocabulary::apply` and `VocabularyState::overlaid`. The domain checks coded
//! values and identifier systems against it; `/Vocabulary` serves it.
//!
//! A change reaches every process through `catalog_sync`, which swaps in a freshly loaded
//! catalog: readers take the current one (`catalog()`), never a half-updated one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cqrs_es::Aggregate;
use openspp_aggregates::{
    CodeDefinition, CodeTarget, ManagedVocabulary, TargetType, Vocabulary, VocabularyCatalog,
    VocabularyEvent, VocabularyHeader, VocabularyState,
};
use sqlx::{PgConnection, Row};

use crate::current::Current;

pub use openspp_aggregates::vocabulary::ID_TYPE;

/// One vocabulary as served: header and codes in OpenSPP's order (sequence, then code).
pub struct VocabularyEntry {
    pub namespace_uri: String,
    pub header: VocabularyHeader,
    pub codes: Vec<CodeEntry>,
    index: HashMap<String, usize>,
}

pub struct CodeEntry {
    pub definition: CodeDefinition,
    /// Depth in the hierarchy; 0 for a root.
    pub level: usize,
}

impl VocabularyEntry {
    pub fn code(&self, code: &str) -> Option<&CodeDefinition> {
        self.index.get(code).map(|&i| &self.codes[i].definition)
    }

    /// The code a resource names by its display (OpenSPP names categories and units by name),
    /// or by the code itself.
    pub fn named(&self, name: &str) -> Option<&CodeDefinition> {
        self.codes
            .iter()
            .map(|c| &c.definition)
            .find(|c| c.display == name)
            .or_else(|| self.code(name))
    }

    /// The codes whose display holds `part`, whatever its case (OpenSPP's name searches).
    pub fn displays_containing(&self, part: &str) -> Vec<&CodeDefinition> {
        let part = part.to_lowercase();
        self.codes
            .iter()
            .map(|c| &c.definition)
            .filter(|c| c.display.to_lowercase().contains(&part))
            .collect()
    }

    /// Every code, deprecated ones included (OpenSPP's `code_count`).
    pub fn code_count(&self) -> usize {
        self.codes.len()
    }
}

/// Everything loaded at one moment.
#[derive(Default)]
pub struct Catalog {
    baseline: HashMap<String, VocabularyState>,
    vocabularies: BTreeMap<String, VocabularyEntry>,
    identifier_systems: HashMap<String, CodeTarget>,
    uris: HashMap<String, (String, String)>,
}

impl Catalog {
    /// Loads the baseline and folds every vocabulary stream over it, on `conn` (a caller that
    /// needs one consistent view of several catalogs passes one transaction).
    pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Self> {
        let mut baseline: HashMap<String, VocabularyState> = HashMap::new();
        let headers = sqlx::query(
            "SELECT namespace_uri, name, version, description, reference_url, domain, \
                    is_hierarchical FROM vocabularies",
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in headers {
            let namespace: String = row.try_get("namespace_uri")?;
            let header = VocabularyHeader {
                name: row.try_get("name")?,
                version: row.try_get("version")?,
                description: row.try_get("description")?,
                reference_url: row.try_get("reference_url")?,
                domain: row.try_get("domain")?,
                is_hierarchical: row.try_get("is_hierarchical")?,
            };
            baseline.entry(namespace).or_default().header = Some(header);
        }
        let codes = sqlx::query(
            "SELECT namespace_uri, code, display, definition, parent_code, target_type, uri, \
                    sequence, deprecated FROM vocabulary_codes WHERE active",
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in codes {
            let namespace: String = row.try_get("namespace_uri")?;
            let target: String = row.try_get("target_type")?;
            let definition = CodeDefinition {
                code: row.try_get("code")?,
                display: row.try_get("display")?,
                definition: row.try_get("definition")?,
                parent_code: row.try_get("parent_code")?,
                target_type: CodeTarget::parse(&target).unwrap_or(CodeTarget::Both),
                uri: row.try_get("uri")?,
                sequence: row.try_get("sequence")?,
                deprecated: row.try_get("deprecated")?,
            };
            baseline
                .entry(namespace)
                .or_default()
                .codes
                .insert(definition.code.clone(), definition);
        }

        let mut streams: BTreeMap<String, ManagedVocabulary> = BTreeMap::new();
        let events = sqlx::query(
            "SELECT aggregate_id, sequence, payload FROM events WHERE aggregate_type = $1 \
             ORDER BY aggregate_id, sequence",
        )
        .bind(ManagedVocabulary::TYPE)
        .fetch_all(&mut *conn)
        .await?;
        for row in events {
            let namespace: String = row.try_get("aggregate_id")?;
            let sequence: i64 = row.try_get("sequence")?;
            let payload: serde_json::Value = row.try_get("payload")?;
            let event: VocabularyEvent = serde_json::from_value(payload).map_err(|e| {
                sqlx::Error::Decode(format!("Vocabulary {namespace} event {sequence}: {e}").into())
            })?;
            streams.entry(namespace).or_default().apply(event);
        }
        Ok(Self::build(baseline, streams))
    }

    fn build(
        baseline: HashMap<String, VocabularyState>,
        streams: BTreeMap<String, ManagedVocabulary>,
    ) -> Self {
        let mut namespaces: Vec<&String> = baseline.keys().chain(streams.keys()).collect();
        namespaces.sort();
        namespaces.dedup();
        let mut vocabularies = BTreeMap::new();
        let mut identifier_systems = HashMap::new();
        let mut uris = HashMap::new();
        for namespace in namespaces {
            let effective = match streams.get(namespace) {
                Some(stream) => baseline
                    .get(namespace)
                    .cloned()
                    .unwrap_or_default()
                    .overlaid(&stream.changes),
                None => baseline[namespace].clone(),
            };
            let Some(header) = effective.header.clone() else {
                continue;
            };
            let mut codes: Vec<CodeEntry> = effective
                .codes
                .values()
                .map(|definition| CodeEntry {
                    level: effective.level(&definition.code),
                    definition: definition.clone(),
                })
                .collect();
            codes.sort_by(|a, b| {
                (a.definition.sequence, &a.definition.code)
                    .cmp(&(b.definition.sequence, &b.definition.code))
            });
            for entry in &codes {
                let code = &entry.definition;
                uris.insert(code.uri.clone(), (namespace.clone(), code.code.clone()));
                if namespace == ID_TYPE && !code.deprecated {
                    identifier_systems.insert(code.uri.clone(), code.target_type);
                }
            }
            let index = codes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.definition.code.clone(), i))
                .collect();
            vocabularies.insert(
                namespace.clone(),
                VocabularyEntry {
                    namespace_uri: namespace.clone(),
                    header,
                    codes,
                    index,
                },
            );
        }
        Self {
            baseline,
            vocabularies,
            identifier_systems,
            uris,
        }
    }

    pub fn vocabulary(&self, namespace: &str) -> Option<&VocabularyEntry> {
        self.vocabularies.get(namespace)
    }

    /// Every vocabulary, ordered by name (as OpenSPP lists them), then namespace.
    pub fn by_name(&self) -> Vec<&VocabularyEntry> {
        let mut all: Vec<&VocabularyEntry> = self.vocabularies.values().collect();
        all.sort_by(|a, b| {
            (&a.header.name, &a.namespace_uri).cmp(&(&b.header.name, &b.namespace_uri))
        });
        all
    }
}

impl VocabularyCatalog for Catalog {
    fn seeded(&self, namespace: &str) -> Option<VocabularyState> {
        self.baseline.get(namespace).cloned()
    }

    fn uri_owner(&self, uri: &str) -> Option<(String, String)> {
        self.uris.get(uri).cloned()
    }
}

/// The current catalog of this process.
pub struct Vocabularies {
    current: Current<Catalog>,
}

impl Vocabularies {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            current: Current::new(catalog),
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.current.get()
    }

    pub fn replace(&self, catalog: Catalog) {
        self.current.replace(catalog);
    }

    /// The human-readable text of a code, for `CodeableConcept.coding[].display`; deprecated
    /// codes keep theirs, since data recorded with them still shows them.
    pub fn display(&self, system: &str, code: &str) -> Option<String> {
        let catalog = self.catalog();
        catalog
            .vocabulary(system)
            .and_then(|v| v.code(code))
            .map(|c| c.display.clone())
    }
}

fn allows(target: CodeTarget, kind: TargetType) -> bool {
    match kind {
        TargetType::Individual => target != CodeTarget::Group,
        TargetType::Group => target != CodeTarget::Individual,
    }
}

impl Vocabulary for Vocabularies {
    fn has_code(&self, system: &str, code: &str) -> bool {
        let catalog = self.catalog();
        catalog
            .vocabulary(system)
            .and_then(|v| v.code(code))
            .is_some_and(|c| !c.deprecated)
    }

    fn identifier_system_allowed(&self, uri: &str, target: TargetType) -> Option<bool> {
        let catalog = self.catalog();
        catalog
            .identifier_systems
            .get(uri)
            .map(|allowed| allows(*allowed, target))
    }
}
