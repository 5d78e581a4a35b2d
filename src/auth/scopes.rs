//! Scopes are `resource:action` (CONTRACT §3); `all` implies every action of its resource.

use crate::auth::Action;

/// CONTRACT §3's resources (the core's and the extensions'), and `metrics` for `GET /metrics`
/// on the API port (beyond the contract, which names no operator scope).
pub const RESOURCES: [&str; 16] = [
    "individual",
    "group",
    "program",
    "program_membership",
    "consent",
    "audit",
    "cycle",
    "entitlement",
    "product",
    "service_point",
    "vocabulary",
    "data",
    "statistics",
    "aggregation",
    "dci",
    "metrics",
];
pub const ACTIONS: [&str; 6] = ["read", "search", "create", "update", "delete", "all"];

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Search => "search",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// Checks a scope's syntax and vocabulary.
pub fn validate(scope: &str) -> Result<(), String> {
    let (resource, action) = scope
        .split_once(':')
        .ok_or_else(|| format!("scope `{scope}` is not resource:action"))?;
    if !RESOURCES.contains(&resource) {
        return Err(format!(
            "scope `{scope}`: unknown resource; use one of {}",
            RESOURCES.join(", ")
        ));
    }
    if !ACTIONS.contains(&action) {
        return Err(format!(
            "scope `{scope}`: unknown action; use one of {}",
            ACTIONS.join(", ")
        ));
    }
    Ok(())
}

/// Whether `scopes` let their holder do `action` on `resource`.
pub fn grants(scopes: &[String], resource: &str, action: Action) -> bool {
    scopes
        .iter()
        .any(|held| implies(held, resource, action.as_str()))
}

/// Whether holding `held` includes the scope `wanted` (`x:all` includes every `x:…`).
pub fn covers(held: &[String], wanted: &str) -> bool {
    wanted
        .split_once(':')
        .is_some_and(|(resource, action)| held.iter().any(|h| implies(h, resource, action)))
}

/// `x:all` implies every action of `x`; `x:read` also implies `x:search`, as OpenSPP grants
/// it (CONTRACT §4a), while `x:search` stays the narrower scope that allows searches only.
/// This is the one place a held scope is matched against a wanted one.
fn implies(held: &str, resource: &str, action: &str) -> bool {
    held.split_once(':').is_some_and(|(r, a)| {
        r == resource && (a == action || a == "all" || (a == "read" && action == "search"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_implies_every_action_of_its_resource_only() {
        let scopes = vec!["individual:all".to_owned(), "group:read".to_owned()];
        assert!(grants(&scopes, "individual", Action::Delete));
        assert!(grants(&scopes, "group", Action::Read));
        assert!(!grants(&scopes, "group", Action::Create));
        assert!(!grants(&scopes, "program", Action::Read));
    }

    #[test]
    fn read_allows_searches_as_openspp_but_search_does_not_allow_reads() {
        let read = vec!["group:read".to_owned()];
        assert!(grants(&read, "group", Action::Search));
        assert!(!grants(&read, "individual", Action::Search));
        let search = vec!["group:search".to_owned()];
        assert!(grants(&search, "group", Action::Search));
        assert!(!grants(&search, "group", Action::Read));
        assert!(covers(&read, "group:search"));
        assert!(!covers(&search, "group:read"));
    }

    #[test]
    fn held_scopes_cover_narrower_ones() {
        let held = vec!["individual:all".to_owned()];
        assert!(covers(&held, "individual:read"));
        assert!(covers(&held, "individual:all"));
        assert!(!covers(&held, "group:read"));
        assert!(!covers(&["individual:read".to_owned()], "individual:all"));
    }

    #[test]
    fn scopes_are_validated() {
        assert!(validate("individual:read").is_ok());
        assert!(validate("program_membership:all").is_ok());
        assert!(validate("individual").is_err());
        assert!(validate("wallet:read").is_err());
        assert!(validate("individual:steal").is_err());
        assert!(validate("individual:bogus").is_err());
        assert!(validate("dci:search").is_ok());
        assert!(validate("aggregation:read").is_ok());
        assert!(validate("individual:read:extra").is_err());
        assert!(validate("").is_err());
    }
}
