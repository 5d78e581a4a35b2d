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

    #[tokio::test]
    async fn bad_registrations_name_the_option() {
        let cases = [
            (json!({"type": "string"}), "schema"),
            (json!({"type": "object", "properties": 1}), "schema"),
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
