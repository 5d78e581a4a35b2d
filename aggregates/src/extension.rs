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

/// The most bytes one extension's data may take, as compact JSON: it is stored in an event and
/// in a read model's row, and read back whole on every read.
pub const MAX_BYTES: usize = 16 * 1024;
/// How deeply one extension's data may nest objects and lists (the extension's own object is
/// level 1).
pub const MAX_DEPTH: usize = 8;
/// The most entries a list inside extension data may hold when its schema sets no `maxItems`.
pub const DEFAULT_MAX_ITEMS: usize = 100;

/// The registered extensions, as the server holds them.
pub trait ExtensionSchemas: Send + Sync {
    /// The registered URI that `key` names for `resource`: the URI itself or, as OpenSPP
    /// accepts, its short key (`farmer` for `urn:openspp:extension:farmer`) when that is
    /// unambiguous. `None` when nothing registered for `resource` answers to `key`.
    fn resolve(&self, resource: ExtendedResource, key: &str) -> Option<String>;
    /// Checks `data` against the schema registered for `uri`.
    fn check(&self, uri: &str, data: &Value) -> Result<(), SchemaViolation>;
    /// The JSON Schema registered for `uri`, if any (its lists' `maxItems` bound the data).
    fn schema(&self, uri: &str) -> Option<Value>;
}

/// The schema of `key`'s value inside an object described by `schema`.
fn property_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()))
}

/// The schema of entry `index` of a list described by `schema`.
fn item_schema(schema: Option<&Value>, index: usize) -> Option<&Value> {
    let schema = schema?;
    schema
        .get("prefixItems")
        .and_then(|p| p.get(index))
        .or_else(|| schema.get("items").filter(|s| s.is_object()))
}

/// Checks that `value` (at `path`, `depth` levels deep) nests at most `MAX_DEPTH` levels, that
/// each list holds at most its schema's `maxItems` (else `DEFAULT_MAX_ITEMS`) entries, and that
/// no text holds NUL (which no stored JSON can carry).
fn bounded(
    path: &str,
    value: &Value,
    schema: Option<&Value>,
    depth: usize,
) -> Result<(), DomainError> {
    let too_deep = || {
        DomainError::invalid(
            path,
            format!("nests more than {MAX_DEPTH} levels of objects and lists"),
        )
    };
    match value {
        Value::Object(map) => {
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            for (key, value) in map {
                let path = format!("{path}.{key}");
                if key.contains('\0') {
                    return Err(DomainError::invalid(
                        path,
                        "must not contain the NUL character",
                    ));
                }
                bounded(&path, value, property_schema(schema, key), depth + 1)?;
            }
        }
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            let max = schema
                .and_then(|s| s.get("maxItems"))
                .and_then(Value::as_u64)
                .map_or(DEFAULT_MAX_ITEMS, |max| {
                    usize::try_from(max).unwrap_or(usize::MAX)
                });
            crate::bounds::items(path, items.len(), max)?;
            for (index, item) in items.iter().enumerate() {
                let path = format!("{path}[{index}]");
                bounded(&path, item, item_schema(schema, index), depth + 1)?;
            }
        }
        Value::String(text) if text.contains('\0') => {
            return Err(DomainError::invalid(
                path,
                "must not contain the NUL character",
            ))
        }
        _ => {}
    }
    Ok(())
}

/// The bounds of one extension's data (`object`, recorded under `uri`): its size, its depth,
/// its lists. Checked before the schema, so that no validator walks an unbounded document.
fn within_bounds(uri: &str, object: &Value, schema: Option<&Value>) -> Result<(), DomainError> {
    let field = format!("extension.{uri}");
    let size = serde_json::to_vec(object).map_or(usize::MAX, |bytes| bytes.len());
    if size > MAX_BYTES {
        return Err(DomainError::invalid(
            field,
            format!("is {size} bytes as JSON; extension data may take at most {MAX_BYTES}"),
        ));
    }
    bounded(&field, object, schema, 1)
}

/// What a body's `extension` changes: each URI with its new data, or `None` to remove what is
/// recorded under it. A URI the body leaves out keeps its data (OpenSPP reads show extensions
/// only when asked, so a read-modify-write that never saw them must not erase them); `null`
/// removes one. `visible` says whether the writer may see an extension (by URI): stating one
/// it may not see is refused whatever the value, as for any hidden field.
pub fn stated_changes(
    resource: ExtendedResource,
    extension: Option<&Value>,
    current: &ExtensionData,
    schemas: &dyn ExtensionSchemas,
    visible: &dyn Fn(&str) -> bool,
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
        if !visible(&uri) {
            return Err(DomainError::forbidden(
                field,
                "this client may not see this extension, so it may not change it; leave it out",
            ));
        }
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
                within_bounds(&uri, &object, schemas.schema(&uri).as_ref())?;
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

/// The events of a registrant that carries extension data: one records an extension's value,
/// one removes it.
pub trait ExtensionEvents: Sized {
    const RESOURCE: ExtendedResource;
    fn recorded(url: String, value: Value) -> Self;
    fn removed(url: String) -> Self;
}

/// `ExtensionEvents` for an event enum whose variants are `ExtensionRecorded { url, value }` and
/// `ExtensionRemoved { url }`, of the registrant `resource` (an `ExtendedResource` variant).
macro_rules! extension_events {
    ($event:ty, $resource:ident) => {
        impl crate::extension::ExtensionEvents for $event {
            const RESOURCE: crate::extension::ExtendedResource =
                crate::extension::ExtendedResource::$resource;

            fn recorded(url: String, value: serde_json::Value) -> Self {
                Self::ExtensionRecorded { url, value }
            }

            fn removed(url: String) -> Self {
                Self::ExtensionRemoved { url }
            }
        }
    };
}
pub(crate) use extension_events;

/// `stated_changes` as the registrant's own events: one per extension the body changes.
pub fn change_events<E: ExtensionEvents>(
    extension: Option<&Value>,
    current: &ExtensionData,
    schemas: &dyn ExtensionSchemas,
    visible: &dyn Fn(&str) -> bool,
) -> Result<Vec<E>, DomainError> {
    Ok(
        stated_changes(E::RESOURCE, extension, current, schemas, visible)?
            .into_iter()
            .map(|(url, value)| match value {
                Some(value) => E::recorded(url, value),
                None => E::removed(url),
            })
            .collect(),
    )
}

/// A registration's extension events, once it may register: refused if the registrant
/// exists, then its details checked (`validate`), then one event per extension field the body
/// states (every field may be set at registration). Individuals and groups register alike.
pub fn registration_changes<E: ExtensionEvents>(
    registered: bool,
    validate: impl FnOnce() -> Result<(), DomainError>,
    extension: Option<&Value>,
    current: &ExtensionData,
    schemas: &dyn ExtensionSchemas,
) -> Result<Vec<E>, DomainError> {
    if registered {
        return Err(DomainError::AlreadyExists);
    }
    validate()?;
    change_events(extension, current, schemas, &|_| true)
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
            &|_| true,
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
    fn extension_data_is_bounded_in_size_depth_and_lists() {
        let current = ExtensionData::new();
        let deep = (0..MAX_DEPTH).fold(json!(1), |inner, _| json!({"a": inner}));
        assert_eq!(
            field(changes(
                json!({FARMER: {"farm_size": 1, "deep": deep}}),
                &current
            )),
            format!("extension.{FARMER}.deep{}", ".a".repeat(MAX_DEPTH - 1))
        );
        let shallow = (0..MAX_DEPTH - 2).fold(json!(1), |inner, _| json!({"a": inner}));
        assert!(changes(json!({FARMER: {"farm_size": 1, "deep": shallow}}), &current).is_ok());
        // `plots` is bounded by its schema's `maxItems`, other lists by the default.
        assert_eq!(
            field(changes(
                json!({FARMER: {"farm_size": 1, "plots": [1, 2, 3, 4]}}),
                &current
            )),
            format!("extension.{FARMER}.plots")
        );
        let many: Vec<u32> = (0..=DEFAULT_MAX_ITEMS as u32).collect();
        assert_eq!(
            field(changes(
                json!({FARMER: {"farm_size": 1, "tags": many}}),
                &current
            )),
            format!("extension.{FARMER}.tags")
        );
        let enough: Vec<u32> = (0..DEFAULT_MAX_ITEMS as u32).collect();
        assert!(changes(json!({FARMER: {"farm_size": 1, "tags": enough}}), &current).is_ok());
        let big = "x".repeat(MAX_BYTES);
        assert_eq!(
            field(changes(
                json!({FARMER: {"farm_size": 1, "note": big}}),
                &current
            )),
            format!("extension.{FARMER}")
        );
        assert_eq!(
            field(changes(
                json!({FARMER: {"farm_size": 1, "tags": ["a\0"]}}),
                &current
            )),
            format!("extension.{FARMER}.tags[0]")
        );
    }

    #[test]
    fn an_extension_the_writer_may_not_see_is_refused_by_the_name_it_was_sent_under() {
        let current = ExtensionData::new();
        let hidden = stated_changes(
            ExtendedResource::Individual,
            Some(&json!({"farmer": {"farm_size": 3}})),
            &current,
            &FakeExtensions,
            &|uri| uri != FARMER,
        );
        assert!(
            matches!(&hidden, Err(DomainError::Forbidden { field, .. }) if field == "extension.farmer"),
            "{hidden:?}"
        );
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
            &FakeExtensions,
            &|_| true
        )
        .unwrap()
        .is_empty());
    }
}
