//! Vocabularies, loaded from the database at start. They change only through migrations, so
//! every server process holds the same copy; the domain checks coded values against it.

use std::collections::HashMap;

use openspp_aggregates::{TargetType, Vocabulary};
use sqlx::PgPool;

struct CodeEntry {
    display: String,
    target: String,
}

pub struct Vocabularies {
    codes: HashMap<(String, String), CodeEntry>,
    /// Identifier systems: the URIs of `urn:openspp:vocab:id-type` codes.
    identifier_systems: HashMap<String, String>,
}

/// The vocabulary whose codes name identifier systems (ADR-007).
pub const ID_TYPE: &str = "urn:openspp:vocab:id-type";

impl Vocabularies {
    pub async fn load(pool: &PgPool) -> sqlx::Result<Self> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT namespace_uri, code, display, uri, target_type FROM vocabulary_codes \
             WHERE active AND NOT deprecated",
        )
        .fetch_all(pool)
        .await?;
        let mut codes = HashMap::with_capacity(rows.len());
        let mut identifier_systems = HashMap::new();
        for (namespace, code, display, uri, target) in rows {
            if namespace == ID_TYPE {
                identifier_systems.insert(uri, target.clone());
            }
            codes.insert((namespace, code), CodeEntry { display, target });
        }
        Ok(Self {
            codes,
            identifier_systems,
        })
    }

    /// The human-readable text of a code, for `CodeableConcept.coding[].display`.
    pub fn display(&self, system: &str, code: &str) -> Option<&str> {
        self.codes
            .get(&(system.to_owned(), code.to_owned()))
            .map(|entry| entry.display.as_str())
    }
}

fn allows(target: &str, kind: TargetType) -> bool {
    match kind {
        TargetType::Individual => target != "group",
        TargetType::Group => target != "individual",
    }
}

impl Vocabulary for Vocabularies {
    fn has_code(&self, system: &str, code: &str) -> bool {
        self.codes
            .get(&(system.to_owned(), code.to_owned()))
            .is_some_and(|entry| !entry.target.is_empty())
    }

    fn identifier_system_allowed(&self, uri: &str, target: TargetType) -> Option<bool> {
        self.identifier_systems
            .get(uri)
            .map(|allowed| allows(allowed, target))
    }
}
