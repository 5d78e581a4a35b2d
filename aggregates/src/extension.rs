//! Extension fields (CONTRACT §8): what `extension.<uri>` of a registrant may hold. The
//! operator registers a JSON Schema per extension URI (`extension_registry`); the domain asks
//! the injected `ExtensionSchemas` whether a body's data is registered and valid, and records it
//! in the registrant's own events, so history, `_at`, `$verify` and replay include it.
//!
//! Nothing sent is silently dropped: data under an unregistered URI, or data its schema
//! refuses, is a validation error naming the field path
//! (`extension.urn:openspp:extension:farmer.farm_size`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;

/// A registrant's extension data: each registered URI with the object recorded for it.
pub type ExtensionData = BTreeMap<String, Value>;

/// The resources extensions can be registered for (more will follow with their resources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExtendedResource {
    Individual,
    Group,
}

impl ExtendedResource {
    pub const ALL: [Self; 2] = [Self::Individual, Self::Group];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Individual => "Individual",
            Self::Group => "Group",
        }
    }

    /// `Individual` or OpenSPP's `individual`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(text))
    }
}

/// Where data breaks its schema: the path inside the extension's object (`farm_size`,
/// `plots[0].area`; empty for the object itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    pub path: String,
    pub message: String,
}

/// The registered extensions, as the server holds them.
pub trait ExtensionSchemas: Send + Sync {
    /// The registered URI that `key` names for `resource`: the URI itself or, as OpenSPP
    /// accepts, its short key (`farmer` for `urn:openspp:extension:farmer`) when that is
    /// unambiguous. `None` when nothing registered for `resource` answers to `key`.
    fn resolve(&self, resource: ExtendedResource, key: &str) -> Option<String>;
    /// Checks `data` against the schema registered for `uri`.
    fn check(&self, uri: &str, data: &Value) -> Result<(), SchemaViolation>;
}

/// What a body's `extension` changes: each URI with its new data, or `None` to remove what is
/// recorded under it. A URI the body leaves out keeps its data (OpenSPP reads show extensions
/// only when asked, so a read-modify-write that never saw them must not erase them); `null`
/// removes one.
pub fn stated_changes(
    resource: ExtendedResource,
    extension: Option<&Value>,
    current: &ExtensionData,
    schemas: &dyn ExtensionSchemas,
) -> Result<Vec<(String, Option<Value>)>, DomainError> {
    let Some(extension) = extension else {
        return Ok(Vec::new());
    };
    let Value::Object(entries) = extension else {
        return Err(DomainError::invalid(
            "extension",
            "must be an object keyed by extension URI",
        ));
    };
    let mut stated: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for (key, value) in entries {
        let field = format!("extension.{key}");
        let uri = match schemas.resolve(resource, key) {
            Some(uri) => uri,
            // Data recorded under an extension since retired may still be removed.
            None if value.is_null() && current.contains_key(key) => key.clone(),
            None => {
                return Err(DomainError::invalid(
                    field,
                    format!("is not an extension registered for {}", resource.as_str()),
                ))
            }
        };
        let data = match value {
            Value::Null => None,
            Value::Object(object) => {
                let mut object = object.clone();
                // OpenSPP repeats the URI inside each extension as `url`: accept it when it
                // says the same, never store it twice.
                match object.remove("url") {
                    None => {}
                    Some(Value::String(url)) if url == uri => {}
                    Some(_) => {
                        return Err(DomainError::invalid(
                            format!("extension.{uri}.url"),
                            format!("must be {uri}, the extension it is in"),
                        ))
                    }
                }
                let object = Value::Object(object);
                schemas.check(&uri, &object).map_err(|violation| {
                    let field = match violation.path.as_str() {
                        "" => format!("extension.{uri}"),
                        path => format!("extension.{uri}.{path}"),
                    };
                    DomainError::invalid(field, violation.message)
                })?;
                Some(object)
            }
            _ => return Err(DomainError::invalid(field, "must be an object or null")),
        };
        if stated.insert(uri.clone(), data).is_some() {
            return Err(DomainError::invalid(
                field,
                format!("{uri} is stated twice (by its URI and its short key)"),
            ));
        }
    }
    Ok(stated
        .into_iter()
        .filter(|(uri, data)| current.get(uri) != data.as_ref())
        .collect())
}

/// `stated_changes` as the resource's own events: `recorded(url, value)`, `removed(url)`.
pub fn change_events<E>(
    resource: ExtendedResource,
    extension: Option<&Value>,
    current: &ExtensionData,
    schemas: &dyn ExtensionSchemas,
    recorded: impl Fn(String, Value) -> E,
    removed: impl Fn(String) -> E,
) -> Result<Vec<E>, DomainError> {
    Ok(stated_changes(resource, extension, current, schemas)?
        .into_iter()
        .map(|(url, value)| match value {
            Some(value) => recorded(url, value),
            None => removed(url),
        })
        .collect())
}

/// Applies one recorded change to a registrant's extension data.
pub fn apply(data: &mut ExtensionData, url: String, value: Option<Value>) {
    match value {
        Some(value) => {
            data.insert(url, value);
        }
        None => {
            data.remove(&url);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{FakeExtensions, FARMER};

    fn changes(
        body: Value,
        current: &ExtensionData,
    ) -> Result<Vec<(String, Option<Value>)>, DomainError> {
        stated_changes(
            ExtendedResource::Individual,
            Some(&body),
            current,
            &FakeExtensions,
        )
    }

    fn field(result: Result<Vec<(String, Option<Value>)>, DomainError>) -> String {
        match result {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn registered_data_is_checked_and_named_by_its_uri() {
        let current = ExtensionData::new();
        let by_key = changes(json!({"farmer": {"farm_size": 3}}), &current).unwrap();
        assert_eq!(
            by_key,
            vec![(FARMER.to_owned(), Some(json!({"farm_size": 3})))]
        );
        let with_url = changes(json!({FARMER: {"url": FARMER, "farm_size": 3}}), &current).unwrap();
        assert_eq!(with_url, by_key, "OpenSPP's `url` member is not data");
    }

    #[test]
    fn unregistered_invalid_and_malformed_data_is_refused_by_path() {
        let current = ExtensionData::new();
        assert_eq!(
            field(changes(json!({"urn:x:unknown": {"a": 1}}), &current)),
            "extension.urn:x:unknown"
        );
        assert_eq!(
            field(changes(json!({FARMER: {"farm_size": "big"}}), &current)),
            format!("extension.{FARMER}.farm_size")
        );
        assert_eq!(
            field(changes(json!({FARMER: [1]}), &current)),
            format!("extension.{FARMER}")
        );
        assert_eq!(
            field(changes(
                json!({FARMER: {"url": "urn:x", "farm_size": 1}}),
                &current
            )),
            format!("extension.{FARMER}.url")
        );
        assert_eq!(
            field(changes(
                json!({"farmer": {"farm_size": 1}, FARMER: {"farm_size": 2}}),
                &current
            )),
            "extension.urn:openspp:extension:farmer"
        );
        assert_eq!(field(changes(json!([1]), &current)), "extension");
    }

    #[test]
    fn only_what_differs_is_a_change_and_null_removes() {
        let mut current = ExtensionData::new();
        current.insert(FARMER.to_owned(), json!({"farm_size": 3}));
        current.insert("urn:retired".to_owned(), json!({"a": 1}));
        assert!(changes(json!({FARMER: {"farm_size": 3}}), &current)
            .unwrap()
            .is_empty());
        assert_eq!(
            changes(json!({FARMER: null, "urn:retired": null}), &current).unwrap(),
            vec![(FARMER.to_owned(), None), ("urn:retired".to_owned(), None)]
        );
        assert!(stated_changes(
            ExtendedResource::Individual,
            None,
            &current,
            &FakeExtensions
        )
        .unwrap()
        .is_empty());
    }
}
