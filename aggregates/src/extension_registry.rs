//! The registration of an extension (CONTRACT §8, OpenSPP `spp.api.extension`): an operator
//! names a URI, the resources it extends and the JSON Schema its data must satisfy. One stream
//! per URI, so every registration, change and retirement says who did it and when.

use std::collections::BTreeSet;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bounds;
use crate::error::DomainError;
use crate::extension::ExtendedResource;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::managed_vocabulary::uri_syntax;

/// What an extension is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtensionDefinition {
    /// A human-readable name (`farmer`).
    pub name: String,
    pub resources: BTreeSet<ExtendedResource>,
    /// A JSON Schema for the extension's object.
    pub schema: Value,
}

/// The annotation that makes a top-level property of an extension's schema a search parameter
/// of the resources it extends (`"farm_size": {"type": "number", "x-openspp-searchable": true}`
/// → `GET /Individual?extension.farmer.farm_size=3`). JSON Schema ignores `x-` keywords.
pub const SEARCHABLE: &str = "x-openspp-searchable";

/// What one value of a searchable property is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    Text,
    Integer,
    Number,
    Boolean,
}

/// A property an extension's schema marks searchable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchableProperty {
    pub name: String,
    pub kind: SearchKind,
    /// A list of such values: a search matches a registrant whose list holds the value.
    pub list: bool,
}

fn search_kind(schema: &Value) -> Option<SearchKind> {
    match schema.get("type")?.as_str()? {
        "string" => Some(SearchKind::Text),
        "integer" => Some(SearchKind::Integer),
        "number" => Some(SearchKind::Number),
        "boolean" => Some(SearchKind::Boolean),
        _ => None,
    }
}

/// The top-level properties `schema` marks searchable (`SEARCHABLE`). A property so marked
/// must be matchable by one value: a string, integer, number or boolean, or a list of one of
/// them; the marker itself is `true` or `false`.
pub fn searchable_properties(schema: &Value) -> Result<Vec<SearchableProperty>, String> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut searchable = Vec::new();
    for (name, property) in properties {
        match property.get(SEARCHABLE) {
            None | Some(Value::Bool(false)) => continue,
            Some(Value::Bool(true)) => {}
            Some(_) => return Err(format!("`{SEARCHABLE}` of `{name}` must be true or false")),
        }
        let (kind, list) = match search_kind(property) {
            Some(kind) => (Some(kind), false),
            None if property.get("type").and_then(Value::as_str) == Some("array") => {
                (property.get("items").and_then(search_kind), true)
            }
            None => (None, false),
        };
        let kind = kind.ok_or_else(|| {
            format!(
                "`{name}` is marked `{SEARCHABLE}` but is not a string, integer, number or \
                 boolean, nor a list of one of them (say which with `type`)"
            )
        })?;
        searchable.push(SearchableProperty {
            name: name.clone(),
            kind,
            list,
        });
    }
    Ok(searchable)
}

/// Whether a document is a JSON Schema the server can apply (the server compiles it with a
/// JSON Schema implementation; the domain stays free of one).
pub trait SchemaCompiler: Send + Sync {
    fn compile(&self, schema: &Value) -> Result<(), String>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExtensionCommand {
    /// Register the extension, or change what it is; the same definition again changes nothing.
    Register {
        uri: String,
        definition: ExtensionDefinition,
    },
    /// Stop accepting data for the extension. Data already recorded stays in its registrants'
    /// history; a registrant may still remove it.
    Retire { uri: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExtensionEvent {
    ExtensionRegistered(ExtensionDefinition),
    ExtensionChanged(ExtensionDefinition),
    ExtensionRetired,
}

impl DomainEvent for ExtensionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ExtensionRegistered(_) => "ExtensionRegistered",
            Self::ExtensionChanged(_) => "ExtensionChanged",
            Self::ExtensionRetired => "ExtensionRetired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for ExtensionEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        None
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtensionRegistration {
    pub definition: Option<ExtensionDefinition>,
    pub active: bool,
    pub version: u64,
}

impl Aggregate for ExtensionRegistration {
    const TYPE: &'static str = "Extension";
    type Command = ExtensionCommand;
    type Event = ExtensionEvent;
    type Error = DomainError;
    type Services = Arc<dyn SchemaCompiler>;

    async fn handle(
        &mut self,
        command: Self::Command,
        compiler: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ExtensionCommand::Register { uri, definition } => {
                validate(&uri, &definition, compiler.as_ref())?;
                match (&self.definition, self.active) {
                    (Some(current), true) if *current == definition => None,
                    (Some(_), true) => Some(ExtensionEvent::ExtensionChanged(definition)),
                    _ => Some(ExtensionEvent::ExtensionRegistered(definition)),
                }
            }
            ExtensionCommand::Retire { uri } => match (&self.definition, self.active) {
                (None, _) => return Err(DomainError::not_found(format!("Extension {uri}"))),
                (Some(_), false) => None,
                (Some(_), true) => Some(ExtensionEvent::ExtensionRetired),
            },
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            ExtensionEvent::ExtensionRegistered(definition)
            | ExtensionEvent::ExtensionChanged(definition) => {
                self.definition = Some(definition);
                self.active = true;
            }
            ExtensionEvent::ExtensionRetired => self.active = false,
        }
    }
}

fn validate(
    uri: &str,
    definition: &ExtensionDefinition,
    compiler: &dyn SchemaCompiler,
) -> Result<(), DomainError> {
    uri_syntax("uri", uri)?;
    if definition.name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    bounds::text("name", &definition.name, bounds::SHORT_TEXT)?;
    if definition.resources.is_empty() {
        return Err(DomainError::invalid(
            "resource",
            "name at least one resource: Individual or Group",
        ));
    }
    // Field paths (`extension.<uri>.farm_size`) and the `/metadata` field list assume an object.
    if definition.schema.get("type") != Some(&Value::String("object".into())) {
        return Err(DomainError::invalid(
            "schema",
            "must describe an object (`\"type\": \"object\"`)",
        ));
    }
    compiler
        .compile(&definition.schema)
        .map_err(|reason| DomainError::invalid("schema", reason))?;
    searchable_properties(&definition.schema)
        .map(|_| ())
        .map_err(|reason| DomainError::invalid("schema", reason))
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;

    struct AnyObjectSchema;

    impl SchemaCompiler for AnyObjectSchema {
        fn compile(&self, schema: &Value) -> Result<(), String> {
            match schema.get("properties") {
                Some(Value::Object(_)) | None => Ok(()),
                Some(_) => Err("properties must be an object".into()),
            }
        }
    }

    const URI: &str = "urn:openspp:extension:farmer";

    fn given() -> TestFramework<ExtensionRegistration> {
        let compiler: Arc<dyn SchemaCompiler> = Arc::new(AnyObjectSchema);
        TestFramework::with(compiler)
    }

    fn farmer(schema: Value) -> ExtensionCommand {
        ExtensionCommand::Register {
            uri: URI.into(),
            definition: ExtensionDefinition {
                name: "farmer".into(),
                resources: BTreeSet::from([ExtendedResource::Individual]),
                schema,
            },
        }
    }

    fn definition(schema: Value) -> ExtensionDefinition {
        let ExtensionCommand::Register { definition, .. } = farmer(schema) else {
            unreachable!()
        };
        definition
    }

    #[tokio::test]
    async fn registering_again_is_idempotent_and_a_change_is_recorded() {
        let schema = json!({"type": "object"});
        given()
            .given_no_previous_events()
            .when_async(farmer(schema.clone()))
            .await
            .then_expect_events(vec![ExtensionEvent::ExtensionRegistered(definition(
                schema.clone(),
            ))]);
        let registered = vec![ExtensionEvent::ExtensionRegistered(definition(
            schema.clone(),
        ))];
        given()
            .given(registered.clone())
            .when_async(farmer(schema))
            .await
            .then_expect_events(vec![]);
        let wider = json!({"type": "object", "properties": {}});
        given()
            .given(registered)
            .when_async(farmer(wider.clone()))
            .await
            .then_expect_events(vec![ExtensionEvent::ExtensionChanged(definition(wider))]);
    }

    #[tokio::test]
    async fn retiring_stops_it_and_registering_again_reinstates() {
        let schema = json!({"type": "object"});
        let registered = vec![ExtensionEvent::ExtensionRegistered(definition(
            schema.clone(),
        ))];
        given()
            .given(registered.clone())
            .when_async(ExtensionCommand::Retire { uri: URI.into() })
            .await
            .then_expect_events(vec![ExtensionEvent::ExtensionRetired]);
        let mut retired = registered;
        retired.push(ExtensionEvent::ExtensionRetired);
        given()
            .given(retired.clone())
            .when_async(farmer(schema.clone()))
            .await
            .then_expect_events(vec![ExtensionEvent::ExtensionRegistered(definition(
                schema,
            ))]);
        given()
            .given_no_previous_events()
            .when_async(ExtensionCommand::Retire { uri: URI.into() })
            .await
            .then_expect_error(DomainError::not_found(format!("Extension {URI}")));
    }

    #[test]
    fn searchable_properties_are_scalars_or_lists_of_them() {
        let schema = json!({"type": "object", "properties": {
            "farm_size": {"type": "number", SEARCHABLE: true},
            "crops": {"type": "array", "items": {"type": "string"}, SEARCHABLE: true},
            "organic": {"type": "boolean", SEARCHABLE: false},
            "notes": {"type": "string"}
        }});
        assert_eq!(
            searchable_properties(&schema).unwrap(),
            vec![
                SearchableProperty {
                    name: "crops".into(),
                    kind: SearchKind::Text,
                    list: true
                },
                SearchableProperty {
                    name: "farm_size".into(),
                    kind: SearchKind::Number,
                    list: false
                },
            ]
        );
    }

    #[tokio::test]
    async fn bad_registrations_name_the_option() {
        let cases = [
            (json!({"type": "string"}), "schema"),
            (json!({"type": "object", "properties": 1}), "schema"),
            (
                json!({"type": "object", "properties": {"plots": {"type": "object", SEARCHABLE: true}}}),
                "schema",
            ),
            (
                json!({"type": "object", "properties": {"size": {"type": "number", SEARCHABLE: "yes"}}}),
                "schema",
            ),
        ];
        for (schema, expected) in cases {
            let error = given()
                .given_no_previous_events()
                .when_async(farmer(schema))
                .await
                .inspect_result()
                .expect_err("refused");
            assert!(
                matches!(&error, DomainError::Invalid { field, .. } if field == expected),
                "{error:?}"
            );
        }
        let no_uri = ExtensionCommand::Register {
            uri: "farmer".into(),
            definition: definition(json!({"type": "object"})),
        };
        let error = given()
            .given_no_previous_events()
            .when_async(no_uri)
            .await
            .inspect_result()
            .expect_err("refused");
        assert!(matches!(&error, DomainError::Invalid { field, .. } if field == "uri"));
    }
}
