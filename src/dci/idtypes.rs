//! DCI identifier types (`UIN`, `BRN`, …) and the identifier systems they name in this registry
//! (`dci_identifier_types`, which the operator edits; `UIN` is the national id by default).

use sqlx::PgPool;

/// The mapping, best name first for each system.
#[derive(Debug, Default)]
pub struct IdTypes(Vec<(String, String)>);

impl IdTypes {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// Read for each request, so an operator's change applies at once.
    pub async fn load(pool: &PgPool) -> sqlx::Result<Self> {
        let pairs = sqlx::query_as(
            "SELECT dci_type, system FROM dci_identifier_types ORDER BY rank, dci_type",
        )
        .fetch_all(pool)
        .await?;
        Ok(Self(pairs))
    }

    /// The system a DCI type names (case-insensitively); a system URI names itself.
    pub fn system(&self, kind: &str) -> Option<String> {
        if let Some((_, system)) = self.0.iter().find(|(t, _)| t.eq_ignore_ascii_case(kind)) {
            return Some(system.clone());
        }
        kind.contains(':').then(|| kind.to_owned())
    }

    /// The DCI type records show for `system`: its best name, else the system itself.
    pub fn dci_type<'a>(&'a self, system: &'a str) -> &'a str {
        self.0
            .iter()
            .find(|(_, s)| s == system)
            .map(|(t, _)| t.as_str())
            .unwrap_or(system)
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(t, _)| t.as_str()).collect()
    }
}
