//! The registered extensions every server process holds in memory (CONTRACT §8): each
//! `Extension` stream folded by the domain's own `apply`, with its JSON Schema compiled once by
//! the `jsonschema` crate. The domain asks it (`ExtensionSchemas`) whether `extension.<uri>` data
//! is registered and valid; `/metadata` lists it. Swapped whole by `catalog_sync`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use openspp_aggregates::{
    ExtendedResource, ExtensionDefinition, ExtensionEvent, ExtensionRegistration, ExtensionSchemas,
    SchemaCompiler, SchemaViolation,
};
use serde_json::Value;
use sqlx::{PgConnection, Row};

use crate::catalog_sync::Current;

/// Compiles schemas with the `jsonschema` crate, offline: without its network and file
/// features, a remote `$ref` cannot be fetched and is refused when the schema is registered.
pub struct JsonSchemaCompiler;

impl SchemaCompiler for JsonSchemaCompiler {
    fn compile(&self, schema: &Value) -> Result<(), String> {
        jsonschema::validator_for(schema)
            .map(|_| ())
            .map_err(|error| format!("is not a usable JSON Schema: {error}"))
    }
}

/// One extension as last recorded.
pub struct Registered {
    pub uri: String,
    pub definition: ExtensionDefinition,
    pub active: bool,
    /// When it was last registered, changed or retired, and by whom (`source_system`).
    pub changed_at: DateTime<Utc>,
    pub changed_by: Option<String>,
    pub version: u64,
    validator: Option<jsonschema::Validator>,
}

impl Registered {
    /// The top-level properties its schema names, for `/metadata` (OpenSPP lists fields).
    pub fn fields(&self) -> Vec<String> {
        self.definition
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The short key OpenSPP derives from a URN (`farmer` for `urn:openspp:extension:farmer`).
    fn key(&self) -> &str {
        self.uri.rsplit(':').next().unwrap_or(&self.uri)
    }
}

#[derive(Default)]
pub struct ExtensionCatalog {
    entries: BTreeMap<String, Registered>,
}

impl ExtensionCatalog {
    pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Self> {
        let rows = sqlx::query(
            "SELECT aggregate_id, sequence, payload, metadata, recorded_at FROM events \
             WHERE aggregate_type = $1 ORDER BY aggregate_id, sequence",
        )
        .bind(ExtensionRegistration::TYPE)
        .fetch_all(&mut *conn)
        .await?;
        let mut streams: BTreeMap<String, (ExtensionRegistration, DateTime<Utc>, Option<String>)> =
            BTreeMap::new();
        for row in rows {
            let uri: String = row.try_get("aggregate_id")?;
            let sequence: i64 = row.try_get("sequence")?;
            let payload: Value = row.try_get("payload")?;
            let metadata: Value = row.try_get("metadata")?;
            let event: ExtensionEvent = serde_json::from_value(payload).map_err(|e| {
                sqlx::Error::Decode(format!("Extension {uri} event {sequence}: {e}").into())
            })?;
            let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
            let entry = streams
                .entry(uri)
                .or_insert_with(|| (ExtensionRegistration::default(), recorded_at, None));
            entry.0.apply(event);
            entry.1 = recorded_at;
            entry.2 = metadata["source_system"].as_str().map(str::to_owned);
        }
        let mut entries = BTreeMap::new();
        for (uri, (registration, changed_at, changed_by)) in streams {
            let Some(definition) = registration.definition else {
                continue;
            };
            let validator = match jsonschema::validator_for(&definition.schema) {
                Ok(validator) => Some(validator),
                Err(error) => {
                    // Registration compiled it; a newer crate may disagree. Refuse its data
                    // rather than accept it unchecked.
                    tracing::error!(%uri, %error, "registered extension schema does not compile");
                    None
                }
            };
            entries.insert(
                uri.clone(),
                Registered {
                    uri,
                    definition,
                    active: registration.active,
                    changed_at,
                    changed_by,
                    version: registration.version,
                    validator,
                },
            );
        }
        Ok(Self { entries })
    }

    /// Every extension ever registered, retired ones included, by URI.
    pub fn all(&self) -> impl Iterator<Item = &Registered> {
        self.entries.values()
    }

    /// The extensions in force.
    pub fn active(&self) -> impl Iterator<Item = &Registered> {
        self.entries.values().filter(|e| e.active)
    }

    fn for_resource(&self, resource: ExtendedResource) -> impl Iterator<Item = &Registered> {
        self.active()
            .filter(move |e| e.definition.resources.contains(&resource))
    }
}

/// `/plots/0/area` (a JSON Pointer into `data`) as `plots[0].area`.
fn dotted(pointer: &str, data: &Value) -> String {
    let mut path = String::new();
    let mut at = Some(data);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                at = token.parse::<usize>().ok().and_then(|i| items.get(i));
                path.push_str(&format!("[{token}]"));
            }
            other => {
                at = other.and_then(|v| v.get(&token));
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&token);
            }
        }
    }
    path
}

fn join(path: &str, property: &str) -> String {
    if path.is_empty() {
        property.to_owned()
    } else {
        format!("{path}.{property}")
    }
}

/// The current extension catalog of this process.
pub struct Extensions {
    current: Current<ExtensionCatalog>,
}

impl Extensions {
    pub fn new(catalog: ExtensionCatalog) -> Self {
        Self {
            current: Current::new(catalog),
        }
    }

    pub fn catalog(&self) -> Arc<ExtensionCatalog> {
        self.current.get()
    }

    pub fn replace(&self, catalog: ExtensionCatalog) {
        self.current.replace(catalog);
    }
}

impl ExtensionSchemas for Extensions {
    fn resolve(&self, resource: ExtendedResource, key: &str) -> Option<String> {
        let catalog = self.catalog();
        if catalog.for_resource(resource).any(|e| e.uri == key) {
            return Some(key.to_owned());
        }
        let mut by_key = catalog.for_resource(resource).filter(|e| e.key() == key);
        match (by_key.next(), by_key.next()) {
            (Some(only), None) => Some(only.uri.clone()),
            _ => None,
        }
    }

    fn check(&self, uri: &str, data: &Value) -> Result<(), SchemaViolation> {
        let catalog = self.catalog();
        let validator = catalog
            .entries
            .get(uri)
            .and_then(|e| e.validator.as_ref())
            .ok_or_else(|| SchemaViolation {
                path: String::new(),
                message: "the extension's registered schema cannot be applied".into(),
            })?;
        let Some(error) = validator.iter_errors(data).next() else {
            return Ok(());
        };
        let path = dotted(error.instance_path().as_str(), data);
        let (path, message) = match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => (
                join(&path, property.as_str().unwrap_or_default()),
                "is required".to_owned(),
            ),
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected }
            | jsonschema::error::ValidationErrorKind::UnevaluatedProperties { unexpected } => (
                join(&path, unexpected.first().map_or("", String::as_str)),
                "is not a field of this extension".to_owned(),
            ),
            _ => (path, error.to_string()),
        };
        Err(SchemaViolation { path, message })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn catalog(schema: Value) -> Extensions {
        let uri = "urn:openspp:extension:farmer".to_owned();
        let mut entries = BTreeMap::new();
        entries.insert(
            uri.clone(),
            Registered {
                uri,
                validator: Some(jsonschema::validator_for(&schema).unwrap()),
                definition: ExtensionDefinition {
                    name: "farmer".into(),
                    resources: BTreeSet::from([ExtendedResource::Individual]),
                    schema,
                },
                active: true,
                changed_at: Utc::now(),
                changed_by: None,
                version: 1,
            },
        );
        Extensions::new(ExtensionCatalog { entries })
    }

    fn farmer() -> Extensions {
        catalog(json!({
            "type": "object",
            "properties": {
                "farm_size": {"type": "number", "minimum": 0},
                "plots": {"type": "array", "items": {"type": "object",
                    "properties": {"area": {"type": "number"}}}}
            },
            "required": ["farm_size"],
            "additionalProperties": false
        }))
    }

    fn violation(data: Value) -> SchemaViolation {
        farmer()
            .check("urn:openspp:extension:farmer", &data)
            .expect_err("refused")
    }

    #[test]
    fn violations_name_the_path_inside_the_extension() {
        assert_eq!(violation(json!({"farm_size": "big"})).path, "farm_size");
        assert_eq!(
            violation(json!({"farm_size": 1, "plots": [{"area": 1}, {"area": "x"}]})).path,
            "plots[1].area"
        );
        let missing = violation(json!({}));
        assert_eq!(
            (missing.path.as_str(), missing.message.as_str()),
            ("farm_size", "is required")
        );
        assert_eq!(
            violation(json!({"farm_size": 1, "crop": "rice"})).path,
            "crop"
        );
        assert!(farmer()
            .check("urn:openspp:extension:farmer", &json!({"farm_size": 2.5}))
            .is_ok());
    }

    #[test]
    fn a_uri_or_an_unambiguous_short_key_resolves_for_its_resources_only() {
        let extensions = farmer();
        let uri = Some("urn:openspp:extension:farmer".to_owned());
        assert_eq!(
            extensions.resolve(ExtendedResource::Individual, "farmer"),
            uri
        );
        assert_eq!(
            extensions.resolve(ExtendedResource::Individual, "urn:openspp:extension:farmer"),
            uri
        );
        assert_eq!(extensions.resolve(ExtendedResource::Group, "farmer"), None);
        assert_eq!(
            extensions.resolve(ExtendedResource::Individual, "fisher"),
            None
        );
    }

    #[test]
    fn remote_references_are_not_fetched() {
        let remote = json!({"type": "object", "$ref": "http://127.0.0.1:9/schema.json"});
        assert!(JsonSchemaCompiler.compile(&remote).is_err());
        assert!(JsonSchemaCompiler
            .compile(&json!({"type": "object"}))
            .is_ok());
    }
}
