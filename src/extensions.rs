//! The registered extensions every server process holds in memory (CONTRACT §8): each
//! `Extension` stream folded by the domain's own `apply`, with its JSON Schema compiled once by
//! the `jsonschema` crate. The domain asks it (`ExtensionSchemas`) whether `extension.<uri>` data
//! is registered and valid; `/metadata` lists it. Swapped whole by `catalog_sync`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use openspp_aggregates::{
    searchable_properties, ExtendedResource, ExtensionData, ExtensionDefinition, ExtensionEvent,
    ExtensionRegistration, ExtensionSchemas, SchemaCompiler, SchemaViolation, SearchKind,
    SearchableProperty,
};
use openspp_projections::extension::ExtensionFilter;
use serde_json::{Map, Value};
use sqlx::{PgConnection, Row};

use crate::current::Current;
use crate::error::ApiError;

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
    /// The properties its schema marks searchable (`x-openspp-searchable`).
    pub searchable: Vec<SearchableProperty>,
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

    /// Whether `name` (of `_extensions`) names it: its URI, short key or name, as OpenSPP.
    fn answers_to(&self, name: &str) -> bool {
        name == self.uri || name == self.key() || name == self.definition.name
    }
}

/// Which extensions an answer shows (`_extensions`, as OpenSPP reads it): none unless asked,
/// every extension registered for the resource (`*`), or those named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Shown {
    #[default]
    None,
    All,
    /// By URI.
    Only(BTreeSet<String>),
}

impl Shown {
    /// The extensions a write's body stated (`Extensions::stated`), which its answer shows;
    /// a body that states none is answered without `extension`, as a read would be.
    pub fn stated(stated: &[(String, String)]) -> Self {
        if stated.is_empty() {
            return Self::None;
        }
        Self::Only(stated.iter().map(|(_, uri)| uri.clone()).collect())
    }

    fn includes(&self, uri: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Only(uris) => uris.contains(uri),
        }
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
            let searchable = searchable_properties(&definition.schema).unwrap_or_else(|error| {
                tracing::error!(%uri, %error, "registered searchable properties are unusable");
                Vec::new()
            });
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
                    searchable,
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

    /// The name an extension's data is shown and searched under for `resource`: OpenSPP's
    /// short key (`farmer`), or the URI when another extension of the resource shares the key.
    fn shown_key<'a>(&self, resource: ExtendedResource, entry: &'a Registered) -> &'a str {
        let sharing = self
            .for_resource(resource)
            .filter(|e| e.key() == entry.key())
            .count();
        if sharing == 1 {
            entry.key()
        } else {
            &entry.uri
        }
    }

    /// `_extensions=` of a request for `resource`: `*`, or a comma-separated list of URIs,
    /// short keys or names. `Err` names the first that no extension in force for `resource`
    /// answers to (OpenSPP ignores it; here a typo is not silently an empty answer).
    pub fn choose(&self, resource: ExtendedResource, text: &str) -> Result<Shown, String> {
        let mut uris = BTreeSet::new();
        for name in text.split(',').map(str::trim) {
            if name == "*" {
                return Ok(Shown::All);
            }
            let entry = self
                .for_resource(resource)
                .find(|e| e.answers_to(name))
                .ok_or_else(|| name.to_owned())?;
            uris.insert(entry.uri.clone());
        }
        Ok(Shown::Only(uris))
    }

    /// A registrant's `extension` as OpenSPP shows it: `{"farmer": {"url": "urn:…:farmer",
    /// …data}}` for each shown extension in force for `resource` that holds data; `None` when
    /// none is asked for (the field is then absent), `{}` when those asked for hold nothing.
    pub fn render(
        &self,
        resource: ExtendedResource,
        data: &ExtensionData,
        shown: &Shown,
    ) -> Option<Value> {
        if *shown == Shown::None {
            return None;
        }
        let mut rendered = Map::new();
        for entry in self
            .for_resource(resource)
            .filter(|e| shown.includes(&e.uri))
        {
            let Some(Value::Object(fields)) = data.get(&entry.uri) else {
                continue;
            };
            let mut object = Map::with_capacity(fields.len() + 1);
            object.insert("url".into(), Value::String(entry.uri.clone()));
            object.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            rendered.insert(
                self.shown_key(resource, entry).to_owned(),
                Value::Object(object),
            );
        }
        Some(Value::Object(rendered))
    }

    /// The search parameters `resource`'s extensions offer (`extension.farmer.farm_size`).
    pub fn search_parameters(&self, resource: ExtendedResource) -> Vec<String> {
        self.for_resource(resource)
            .flat_map(|entry| {
                let key = self.shown_key(resource, entry);
                entry
                    .searchable
                    .iter()
                    .map(move |p| format!("extension.{key}.{}", p.name))
            })
            .collect()
    }

    /// One `extension.<key>.<property>=<value>` parameter of a search of `resource` (the key
    /// may also be the extension's URI): 400 naming the parameter for a property no extension
    /// in force marks searchable, or a value of the wrong kind.
    pub fn filter(
        &self,
        resource: ExtendedResource,
        parameter: &str,
        value: &str,
    ) -> Result<ExtensionFilter, ApiError> {
        let rest = parameter.strip_prefix("extension.").unwrap_or_default();
        let found = self.for_resource(resource).find_map(|entry| {
            [self.shown_key(resource, entry), entry.uri.as_str()]
                .into_iter()
                .filter_map(|name| rest.strip_prefix(name)?.strip_prefix('.'))
                .find_map(|name| entry.searchable.iter().find(|p| p.name == name))
                .map(|property| (entry, property))
        });
        let Some((entry, property)) = found else {
            return Err(ApiError::bad_request(
                Some(parameter),
                format!(
                    "is not a searchable property of an extension registered for {}; \
                     /metadata lists them",
                    resource.as_str()
                ),
            ));
        };
        let invalid =
            |kind: &str| ApiError::bad_request(Some(parameter), format!("must be {kind}"));
        let scalar = match property.kind {
            SearchKind::Text => Value::String(value.to_owned()),
            SearchKind::Integer => value
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| invalid("a whole number"))?,
            SearchKind::Number => value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| invalid("a number"))?,
            SearchKind::Boolean => match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(invalid("true or false")),
            },
        };
        Ok(ExtensionFilter {
            parameter: parameter.to_owned(),
            uri: entry.uri.clone(),
            property: property.name.clone(),
            value: if property.list {
                Value::Array(vec![scalar])
            } else {
                scalar
            },
        })
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

    /// The `extension.<key>.<property>` parameters of a search of `resource`, as `(name,
    /// value)`.
    pub fn filters(
        &self,
        resource: ExtendedResource,
        parameters: &[(String, String)],
    ) -> Result<Vec<ExtensionFilter>, ApiError> {
        let catalog = self.catalog();
        parameters
            .iter()
            .map(|(name, value)| catalog.filter(resource, name, value))
            .collect()
    }

    /// A registrant's extension data as a request asked to see it (`ExtensionCatalog::render`).
    pub fn shown(
        &self,
        resource: ExtendedResource,
        data: &ExtensionData,
        shown: &Shown,
    ) -> Option<Value> {
        self.catalog().render(resource, data, shown)
    }

    /// The extensions a body's `extension` states, as `(key as sent, URI)`, for those that
    /// resolve (the domain refuses the others, naming them).
    pub fn stated(
        &self,
        resource: ExtendedResource,
        extension: Option<&Value>,
    ) -> Vec<(String, String)> {
        let Some(Value::Object(entries)) = extension else {
            return Vec::new();
        };
        entries
            .keys()
            .filter_map(|key| Some((key.clone(), self.resolve(resource, key)?)))
            .collect()
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

    fn schema(&self, uri: &str) -> Option<Value> {
        let catalog = self.catalog();
        catalog
            .entries
            .get(uri)
            .map(|e| e.definition.schema.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    /// One extension of Individuals, in force.
    fn registered(uri: &str, schema: Value) -> Registered {
        Registered {
            uri: uri.to_owned(),
            validator: Some(jsonschema::validator_for(&schema).unwrap()),
            searchable: searchable_properties(&schema).unwrap(),
            definition: ExtensionDefinition {
                name: "farmer".into(),
                resources: BTreeSet::from([ExtendedResource::Individual]),
                schema,
            },
            active: true,
            changed_at: Utc::now(),
            changed_by: None,
            version: 1,
        }
    }

    fn of(registrations: Vec<Registered>) -> ExtensionCatalog {
        ExtensionCatalog {
            entries: registrations
                .into_iter()
                .map(|r| (r.uri.clone(), r))
                .collect(),
        }
    }

    fn catalog(schema: Value) -> Extensions {
        Extensions::new(of(vec![registered("urn:openspp:extension:farmer", schema)]))
    }

    #[test]
    fn data_is_shown_under_its_short_key_unless_another_extension_shares_it() {
        let schema = json!({"type": "object", "properties": {
            "size": {"type": "integer", "x-openspp-searchable": true}}});
        let ours = "urn:gov:ke:extension:farmer";
        let data = ExtensionData::from([(ours.to_owned(), json!({"size": 2}))]);
        let alone = of(vec![registered(ours, schema.clone())]);
        let individual = ExtendedResource::Individual;
        assert_eq!(
            alone.render(individual, &data, &Shown::All),
            Some(json!({"farmer": {"url": ours, "size": 2}}))
        );
        assert_eq!(alone.render(individual, &data, &Shown::None), None);
        assert_eq!(
            alone.render(ExtendedResource::Group, &data, &Shown::All),
            Some(json!({}))
        );
        assert_eq!(
            alone.search_parameters(individual),
            vec!["extension.farmer.size".to_owned()]
        );
        let shared = of(vec![
            registered(ours, schema.clone()),
            registered("urn:openspp:extension:farmer", schema),
        ]);
        assert_eq!(
            shared.render(individual, &data, &Shown::All),
            Some(json!({ours: {"url": ours, "size": 2}}))
        );
        // By URI, not by the key they share.
        assert!(shared.choose(individual, ours).is_ok());
        let filter = shared
            .filter(individual, &format!("extension.{ours}.size"), "2")
            .unwrap();
        assert_eq!(
            (filter.uri.as_str(), filter.value.clone()),
            (ours, json!(2))
        );
        assert!(shared
            .filter(individual, "extension.farmer.size", "2")
            .is_err());
        assert_eq!(
            alone.choose(individual, "farmer,nosuch"),
            Err("nosuch".to_owned())
        );
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
