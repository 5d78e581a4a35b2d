//! A vocabulary operators manage (CONTRACT §8): the codes coded values are drawn from and, in
//! `urn:openspp:vocab:id-type`, the identifier systems registrants may carry.
//!
//! A vocabulary shipped with the server (seeded by a migration) is the *baseline*. Every change
//! an operator makes is an event of the vocabulary's own stream (the stream id is its namespace
//! URI), and the stream's state is laid over the baseline: so each change says who made it and
//! when, and a later release's newly seeded codes still appear beside the operator's.
//!
//! Codes are never removed (data already coded with one must keep its meaning); a code that
//! should no longer be used is deprecated.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Deserializer, Serialize};

use crate::bounds;
use crate::error::DomainError;
use crate::inline_index::{IndexChange, InlineIndex};
use crate::vocabulary::ID_TYPE;

/// OpenSPP's vocabulary domains (`spp.vocabulary.domain`).
pub const DOMAINS: [&str; 8] = [
    "core",
    "social_assistance",
    "social_insurance",
    "labor",
    "disability",
    "agriculture",
    "health",
    "education",
];
/// The longest namespace URI or code URI (OpenSPP refuses longer namespace paths).
pub const MAX_URI: usize = 255;
/// The longest code (OpenSPP bounds `parent_code` filters to this).
pub const MAX_CODE: usize = 64;

/// What a vocabulary says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VocabularyHeader {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub reference_url: Option<String>,
    pub domain: String,
    pub is_hierarchical: bool,
}

/// Which registrants a code (an identifier type) applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeTarget {
    Individual,
    Group,
    Both,
}

impl CodeTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Individual => "individual",
            Self::Group => "group",
            Self::Both => "both",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "individual" => Some(Self::Individual),
            "group" => Some(Self::Group),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// One code, complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeDefinition {
    pub code: String,
    pub display: String,
    pub definition: Option<String>,
    pub parent_code: Option<String>,
    pub target_type: CodeTarget,
    /// `{namespace}#{code}` unless stated; for an identifier type, its identifier system.
    pub uri: String,
    pub sequence: i32,
    pub deprecated: bool,
}

/// A vocabulary's header and codes: a baseline, a stream's changes, or the two laid together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VocabularyState {
    pub header: Option<VocabularyHeader>,
    pub codes: BTreeMap<String, CodeDefinition>,
}

impl VocabularyState {
    /// `changes` laid over `self`: its header if it has one, its codes in place of these.
    pub fn overlaid(&self, changes: &VocabularyState) -> VocabularyState {
        let mut effective = self.clone();
        if let Some(header) = &changes.header {
            effective.header = Some(header.clone());
        }
        for (code, definition) in &changes.codes {
            effective.codes.insert(code.clone(), definition.clone());
        }
        effective
    }

    /// How deep `code` sits in the hierarchy (0 for a root). Cycles are refused on every
    /// change, so the walk ends; the bound only guards against a corrupt baseline.
    pub fn level(&self, code: &str) -> usize {
        let mut level = 0;
        let mut current = self.codes.get(code).and_then(|c| c.parent_code.as_deref());
        while let Some(parent) = current {
            level += 1;
            if level > self.codes.len() {
                break;
            }
            current = self
                .codes
                .get(parent)
                .and_then(|c| c.parent_code.as_deref());
        }
        level
    }
}

/// A field a file may leave out (keep what is there), state as null (clear it), or set.
/// `Option<Option<T>>`: the outer `None` is "not stated".
pub fn stated<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A vocabulary's header as an operator states it; what is left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderInput {
    pub name: Option<String>,
    pub version: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub reference_url: Option<Option<String>>,
    pub domain: Option<String>,
    pub is_hierarchical: Option<bool>,
}

/// A code as an operator states it; what is left out stays as it is (or takes its default,
/// for a new code).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodeInput {
    pub code: String,
    pub display: String,
    pub definition: Option<Option<String>>,
    pub parent_code: Option<Option<String>>,
    pub target_type: Option<CodeTarget>,
    pub uri: Option<String>,
    pub sequence: Option<i32>,
    pub deprecated: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VocabularyCommand {
    /// Make the vocabulary say what a file says: its header, and each code it lists. Codes it
    /// does not list stay as they are. Importing the same file again changes nothing.
    Import {
        namespace: String,
        header: HeaderInput,
        codes: Vec<CodeInput>,
    },
    /// Add one code to an existing vocabulary (`add-id-type`); the same code again is
    /// accepted and changes nothing, a different one under that code is a conflict.
    AddCode { namespace: String, code: CodeInput },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VocabularyEvent {
    /// The header as it now is (the first event of a new vocabulary).
    VocabularyDescribed(VocabularyHeader),
    CodeAdded(CodeDefinition),
    /// The code as it now is (a deprecation is one).
    CodeChanged(CodeDefinition),
}

impl DomainEvent for VocabularyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::VocabularyDescribed(_) => "VocabularyDescribed",
            Self::CodeAdded(_) => "CodeAdded",
            Self::CodeChanged(_) => "CodeChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

impl InlineIndex for VocabularyEvent {
    fn index_change(&self) -> Option<IndexChange<'_>> {
        None
    }
}

/// What deciding a vocabulary change consults beyond the stream: the shipped baseline, and
/// which code already uses a URI (code URIs are unique across every vocabulary).
pub trait VocabularyCatalog: Send + Sync {
    fn seeded(&self, namespace: &str) -> Option<VocabularyState>;
    /// `(namespace, code)` of the code whose URI is `uri`, if any.
    fn uri_owner(&self, uri: &str) -> Option<(String, String)>;
}

/// A vocabulary stream: the operator's changes, to be laid over the baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedVocabulary {
    pub changes: VocabularyState,
    pub version: u64,
}

impl Aggregate for ManagedVocabulary {
    const TYPE: &'static str = "Vocabulary";
    type Command = VocabularyCommand;
    type Event = VocabularyEvent;
    type Error = DomainError;
    type Services = Arc<dyn VocabularyCatalog>;

    async fn handle(
        &mut self,
        command: Self::Command,
        catalog: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            VocabularyCommand::Import {
                namespace,
                header,
                codes,
            } => {
                let current = self.effective(&namespace, catalog.as_ref());
                import(&namespace, &current, header, codes, catalog.as_ref())?
            }
            VocabularyCommand::AddCode { namespace, code } => {
                let current = self.effective(&namespace, catalog.as_ref());
                if current.header.is_none() {
                    return Err(DomainError::not_found(format!("Vocabulary {namespace}")));
                }
                let events = import(
                    &namespace,
                    &current,
                    HeaderInput::default(),
                    vec![code.clone()],
                    catalog.as_ref(),
                )
                .map_err(without_row)?;
                if let Some(VocabularyEvent::CodeChanged(_)) = events.first() {
                    return Err(DomainError::conflict(
                        Some("code"),
                        format!(
                            "code `{}` already exists in {namespace} with other values; \
                             change it with `openspp vocabulary import`",
                            code.code
                        ),
                    ));
                }
                events
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            VocabularyEvent::VocabularyDescribed(header) => self.changes.header = Some(header),
            VocabularyEvent::CodeAdded(code) | VocabularyEvent::CodeChanged(code) => {
                self.changes.codes.insert(code.code.clone(), code);
            }
        }
    }
}

impl ManagedVocabulary {
    /// The vocabulary as it now is: the baseline with this stream's changes over it.
    pub fn effective(&self, namespace: &str, catalog: &dyn VocabularyCatalog) -> VocabularyState {
        catalog
            .seeded(namespace)
            .unwrap_or_default()
            .overlaid(&self.changes)
    }
}

/// `add-id-type` has one code and no rows: name its fields without the `codes[0]` prefix.
fn without_row(error: DomainError) -> DomainError {
    match error {
        DomainError::Invalid { field, message } => DomainError::Invalid {
            field: field.strip_prefix("codes[0].").unwrap_or(&field).to_owned(),
            message,
        },
        other => other,
    }
}

/// The events that take `current` to what the operator stated; none when it already says so.
fn import(
    namespace: &str,
    current: &VocabularyState,
    header: HeaderInput,
    codes: Vec<CodeInput>,
    catalog: &dyn VocabularyCatalog,
) -> Result<Vec<VocabularyEvent>, DomainError> {
    uri_syntax("namespace_uri", namespace)?;
    let mut proposed = current.clone();
    let mut listed = HashSet::new();
    let mut next_sequence = current
        .codes
        .values()
        .map(|c| c.sequence)
        .max()
        .unwrap_or(0);
    let mut touched = Vec::with_capacity(codes.len());
    for (row, input) in codes.into_iter().enumerate() {
        let field = |name: &str| format!("codes[{row}].{name}");
        code_syntax(&field("code"), &input.code)?;
        if !listed.insert(input.code.clone()) {
            return Err(DomainError::invalid(
                field("code"),
                format!("code `{}` is listed twice", input.code),
            ));
        }
        let existing = current.codes.get(&input.code);
        let definition = merge(namespace, existing, input, &mut next_sequence);
        check_code(namespace, row, &definition)?;
        touched.push(definition.code.clone());
        proposed.codes.insert(definition.code.clone(), definition);
    }
    let has_parents = proposed.codes.values().any(|c| c.parent_code.is_some());
    let new_header = merge_header(current.header.as_ref(), header, has_parents)?;
    check_relations(namespace, &proposed, &touched, catalog)?;

    let mut events = Vec::new();
    if current.header.as_ref() != Some(&new_header) {
        events.push(VocabularyEvent::VocabularyDescribed(new_header));
    }
    for code in touched {
        let definition = proposed.codes[&code].clone();
        match current.codes.get(&code) {
            None => events.push(VocabularyEvent::CodeAdded(definition)),
            Some(old) if *old != definition => {
                events.push(VocabularyEvent::CodeChanged(definition))
            }
            Some(_) => {}
        }
    }
    Ok(events)
}

fn merge(
    namespace: &str,
    existing: Option<&CodeDefinition>,
    input: CodeInput,
    next_sequence: &mut i32,
) -> CodeDefinition {
    let keep = |stated: Option<Option<String>>, old: Option<&Option<String>>| match stated {
        Some(value) => value.filter(|v| !v.is_empty()),
        None => old.cloned().flatten(),
    };
    let sequence = input
        .sequence
        .or(existing.map(|e| e.sequence))
        .unwrap_or_else(|| {
            *next_sequence = next_sequence.saturating_add(10);
            *next_sequence
        });
    CodeDefinition {
        definition: keep(input.definition, existing.map(|e| &e.definition)),
        parent_code: keep(input.parent_code, existing.map(|e| &e.parent_code)),
        target_type: input
            .target_type
            .or(existing.map(|e| e.target_type))
            .unwrap_or(CodeTarget::Both),
        uri: input
            .uri
            .or(existing.map(|e| e.uri.clone()))
            .unwrap_or_else(|| format!("{namespace}#{}", input.code)),
        sequence,
        deprecated: input
            .deprecated
            .or(existing.map(|e| e.deprecated))
            .unwrap_or(false),
        display: input.display,
        code: input.code,
    }
}

fn merge_header(
    current: Option<&VocabularyHeader>,
    input: HeaderInput,
    has_parents: bool,
) -> Result<VocabularyHeader, DomainError> {
    let keep = |stated: Option<Option<String>>, old: Option<&Option<String>>| match stated {
        Some(value) => value.filter(|v| !v.is_empty()),
        None => old.cloned().flatten(),
    };
    let name = match (input.name, current) {
        (Some(name), _) => name,
        (None, Some(current)) => current.name.clone(),
        (None, None) => {
            return Err(DomainError::invalid(
                "name",
                "is required for a new vocabulary",
            ))
        }
    };
    let header = VocabularyHeader {
        name,
        version: keep(input.version, current.map(|c| &c.version)),
        description: keep(input.description, current.map(|c| &c.description)),
        reference_url: keep(input.reference_url, current.map(|c| &c.reference_url)),
        domain: input
            .domain
            .or(current.map(|c| c.domain.clone()))
            .unwrap_or_else(|| "core".to_owned()),
        is_hierarchical: input
            .is_hierarchical
            .unwrap_or(current.is_some_and(|c| c.is_hierarchical) || has_parents),
    };
    if header.name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    bounds::text("name", &header.name, bounds::SHORT_TEXT)?;
    bounds::optional_text("version", header.version.as_deref(), bounds::SHORT_TEXT)?;
    bounds::optional_text(
        "description",
        header.description.as_deref(),
        bounds::LONG_TEXT,
    )?;
    if let Some(url) = &header.reference_url {
        uri_syntax("reference_url", url)?;
    }
    if !DOMAINS.contains(&header.domain.as_str()) {
        return Err(DomainError::invalid(
            "domain",
            format!("must be one of {}", DOMAINS.join(", ")),
        ));
    }
    if has_parents && !header.is_hierarchical {
        return Err(DomainError::invalid(
            "is_hierarchical",
            "must be true: codes of this vocabulary have parents",
        ));
    }
    Ok(header)
}

/// A code's own fields.
fn check_code(namespace: &str, row: usize, code: &CodeDefinition) -> Result<(), DomainError> {
    let field = |name: &str| format!("codes[{row}].{name}");
    if code.display.trim().is_empty() {
        return Err(DomainError::invalid(field("display"), "must not be empty"));
    }
    bounds::text(&field("display"), &code.display, bounds::SHORT_TEXT)?;
    bounds::optional_text(
        &field("definition"),
        code.definition.as_deref(),
        bounds::LONG_TEXT,
    )?;
    if let Some(parent) = &code.parent_code {
        code_syntax(&field("parent_code"), parent)?;
    }
    if namespace == ID_TYPE {
        identifier_system_syntax(&field("uri"), &code.uri)
    } else {
        uri_syntax(&field("uri"), &code.uri)
    }
}

/// Rules between codes: parents exist in the vocabulary and form no cycle, and no two codes
/// (in any vocabulary) share a URI.
fn check_relations(
    namespace: &str,
    proposed: &VocabularyState,
    touched: &[String],
    catalog: &dyn VocabularyCatalog,
) -> Result<(), DomainError> {
    let mut by_uri: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for code in proposed.codes.values() {
        by_uri.entry(&code.uri).or_default().push(&code.code);
    }
    for (row, code) in touched.iter().enumerate() {
        let uri = proposed.codes[code].uri.as_str();
        if let Some(other) = by_uri[uri].iter().find(|other| **other != code) {
            return Err(DomainError::invalid(
                format!("codes[{row}].uri"),
                format!("`{uri}` is the URI of code `{other}` already"),
            ));
        }
    }
    for (row, code) in touched.iter().enumerate() {
        let definition = &proposed.codes[code];
        if let Some((owner_namespace, owner_code)) = catalog.uri_owner(&definition.uri) {
            if owner_namespace != namespace {
                return Err(DomainError::invalid(
                    format!("codes[{row}].uri"),
                    format!(
                        "`{}` is the URI of code `{owner_code}` of {owner_namespace} already",
                        definition.uri
                    ),
                ));
            }
        }
        let Some(parent) = &definition.parent_code else {
            continue;
        };
        let field = format!("codes[{row}].parent_code");
        if !proposed.codes.contains_key(parent) {
            return Err(DomainError::invalid(
                field,
                format!("`{parent}` is not a code of this vocabulary"),
            ));
        }
        let mut seen = BTreeSet::from([code.as_str()]);
        let mut current = Some(parent.as_str());
        while let Some(ancestor) = current {
            if !seen.insert(ancestor) {
                return Err(DomainError::invalid(
                    field,
                    format!("`{parent}` would make code `{code}` its own ancestor"),
                ));
            }
            current = proposed
                .codes
                .get(ancestor)
                .and_then(|c| c.parent_code.as_deref());
        }
    }
    Ok(())
}

/// A code: short, without whitespace, and without `|` and `#`, which separate a system from a
/// code in identifiers and URIs.
fn code_syntax(field: &str, code: &str) -> Result<(), DomainError> {
    if code.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if code.chars().count() > MAX_CODE {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_CODE} characters"),
        ));
    }
    if code
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '|' || c == '#')
    {
        return Err(DomainError::invalid(
            field,
            "must not contain whitespace, control characters, `|` or `#`",
        ));
    }
    Ok(())
}

/// An absolute URI (`scheme:rest`) of printable characters.
pub fn uri_syntax(field: &str, uri: &str) -> Result<(), DomainError> {
    let scheme = uri.split_once(':').map(|(scheme, _)| scheme);
    let scheme_ok = scheme.is_some_and(|s| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok || uri.ends_with(':') {
        return Err(DomainError::invalid(
            field,
            "must be an absolute URI such as urn:openspp:vocab:example",
        ));
    }
    if uri.chars().count() > MAX_URI {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_URI} characters"),
        ));
    }
    if uri.contains("..")
        || uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '|')
    {
        return Err(DomainError::invalid(
            field,
            "must not contain whitespace, control characters, `|` or `..`",
        ));
    }
    Ok(())
}

/// An identifier system (ADR-007): `urn:`, a namespace id of lower-case letters, digits and
/// hyphens, then `:`-separated segments of lower-case letters, digits, `.`, `_` and `-`,
/// optionally a `#code` (the vocabulary's own `urn:openspp:vocab:id-type#national_id`).
pub fn identifier_system_syntax(field: &str, uri: &str) -> Result<(), DomainError> {
    let explain = || {
        DomainError::invalid(
            field,
            "must be a URN such as urn:gov:ke:iprs:national-id: `urn:` then `:`-separated \
             segments of lower-case letters, digits, `.`, `_` and `-`",
        )
    };
    let (path, fragment) = match uri.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (uri, None),
    };
    let segment = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    let mut parts = path.split(':');
    if parts.next() != Some("urn") {
        return Err(explain());
    }
    let nid_ok = parts.next().is_some_and(|nid| {
        nid.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && nid
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    let rest: Vec<&str> = parts.collect();
    if !nid_ok || rest.is_empty() || !rest.iter().all(|s| segment(s)) {
        return Err(explain());
    }
    if fragment.is_some_and(|f| !segment(f)) {
        return Err(explain());
    }
    uri_syntax(field, uri)
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    const NS: &str = "urn:test:vocab:crops";

    struct Catalog(Option<VocabularyState>, Vec<(String, String, String)>);

    impl VocabularyCatalog for Catalog {
        fn seeded(&self, namespace: &str) -> Option<VocabularyState> {
            (namespace == ID_TYPE || namespace == "urn:seeded")
                .then(|| self.0.clone())
                .flatten()
        }

        fn uri_owner(&self, uri: &str) -> Option<(String, String)> {
            self.1
                .iter()
                .find(|(u, _, _)| u == uri)
                .map(|(_, ns, code)| (ns.clone(), code.clone()))
        }
    }

    fn id_types() -> VocabularyState {
        let mut state = VocabularyState {
            header: Some(VocabularyHeader {
                name: "ID type".into(),
                version: None,
                description: None,
                reference_url: None,
                domain: "core".into(),
                is_hierarchical: false,
            }),
            codes: BTreeMap::new(),
        };
        state.codes.insert(
            "national_id".into(),
            CodeDefinition {
                code: "national_id".into(),
                display: "National ID".into(),
                definition: None,
                parent_code: None,
                target_type: CodeTarget::Individual,
                uri: format!("{ID_TYPE}#national_id"),
                sequence: 1,
                deprecated: false,
            },
        );
        state
    }

    fn given() -> TestFramework<ManagedVocabulary> {
        let catalog: Arc<dyn VocabularyCatalog> = Arc::new(Catalog(
            Some(id_types()),
            vec![("urn:other#x".into(), "urn:other".into(), "x".into())],
        ));
        TestFramework::with(catalog)
    }

    fn code(code: &str, display: &str) -> CodeInput {
        CodeInput {
            code: code.into(),
            display: display.into(),
            ..Default::default()
        }
    }

    fn crops(codes: Vec<CodeInput>) -> VocabularyCommand {
        VocabularyCommand::Import {
            namespace: NS.into(),
            header: HeaderInput {
                name: Some("Crops".into()),
                domain: Some("agriculture".into()),
                ..Default::default()
            },
            codes,
        }
    }

    async fn events(
        given: Vec<VocabularyEvent>,
        command: VocabularyCommand,
    ) -> Vec<VocabularyEvent> {
        self::given()
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
            .expect("accepted")
    }

    async fn refused(given: Vec<VocabularyEvent>, command: VocabularyCommand) -> DomainError {
        self::given()
            .given(given)
            .when_async(command)
            .await
            .inspect_result()
            .expect_err("refused")
    }

    fn field(error: DomainError) -> String {
        match error {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_new_vocabulary_is_described_then_each_code_added_in_file_order() {
        let recorded = events(
            vec![],
            crops(vec![code("rice", "Rice"), code("maize", "Maize")]),
        )
        .await;
        assert_eq!(recorded.len(), 3);
        let VocabularyEvent::VocabularyDescribed(header) = &recorded[0] else {
            panic!("header first: {recorded:?}");
        };
        assert_eq!(header.domain, "agriculture");
        assert!(!header.is_hierarchical);
        let VocabularyEvent::CodeAdded(rice) = &recorded[1] else {
            panic!("{recorded:?}");
        };
        assert_eq!(rice.uri, format!("{NS}#rice"));
        assert_eq!(rice.target_type, CodeTarget::Both);
        let VocabularyEvent::CodeAdded(maize) = &recorded[2] else {
            panic!("{recorded:?}");
        };
        assert!(maize.sequence > rice.sequence, "file order is kept");
    }

    #[tokio::test]
    async fn importing_the_same_file_again_records_nothing() {
        let command = crops(vec![code("rice", "Rice"), code("maize", "Maize")]);
        let first = events(vec![], command.clone()).await;
        assert!(events(first, command).await.is_empty());
    }

    #[tokio::test]
    async fn a_changed_or_deprecated_code_is_recorded_and_unlisted_codes_stay() {
        let first = events(
            vec![],
            crops(vec![code("rice", "Rice"), code("maize", "Maize")]),
        )
        .await;
        let mut deprecated = code("maize", "Maize");
        deprecated.deprecated = Some(true);
        let later = events(first, crops(vec![deprecated])).await;
        assert_eq!(later.len(), 1);
        let VocabularyEvent::CodeChanged(maize) = &later[0] else {
            panic!("{later:?}");
        };
        assert!(maize.deprecated);
    }

    #[tokio::test]
    async fn a_new_vocabulary_needs_a_name_and_a_known_domain() {
        let command = VocabularyCommand::Import {
            namespace: NS.into(),
            header: HeaderInput::default(),
            codes: vec![],
        };
        assert_eq!(field(refused(vec![], command).await), "name");
        let command = VocabularyCommand::Import {
            namespace: NS.into(),
            header: HeaderInput {
                name: Some("Crops".into()),
                domain: Some("space".into()),
                ..Default::default()
            },
            codes: vec![],
        };
        assert_eq!(field(refused(vec![], command).await), "domain");
    }

    #[tokio::test]
    async fn bad_rows_are_named_by_their_index() {
        let cases: Vec<(Vec<CodeInput>, &str)> = vec![
            (vec![code("a", "A"), code("a", "Again")], "codes[1].code"),
            (vec![code("a b", "A")], "codes[0].code"),
            (vec![code("a", " ")], "codes[0].display"),
            (
                vec![
                    code("a", "A"),
                    CodeInput {
                        parent_code: Some(Some("nowhere".into())),
                        ..code("b", "B")
                    },
                ],
                "codes[1].parent_code",
            ),
            (
                vec![CodeInput {
                    uri: Some("urn:other#x".into()),
                    ..code("x", "X")
                }],
                "codes[0].uri",
            ),
        ];
        for (codes, expected) in cases {
            assert_eq!(field(refused(vec![], crops(codes)).await), expected);
        }
    }

    #[tokio::test]
    async fn hierarchies_have_levels_and_no_cycles() {
        let child = |c: &str, parent: &str| CodeInput {
            parent_code: Some(Some(parent.into())),
            ..code(c, c)
        };
        let recorded = events(
            vec![],
            crops(vec![
                code("cereal", "Cereal"),
                child("rice", "cereal"),
                child("red", "rice"),
            ]),
        )
        .await;
        let mut state = ManagedVocabulary::default();
        for event in recorded {
            state.apply(event);
        }
        assert!(state.changes.header.as_ref().unwrap().is_hierarchical);
        assert_eq!(state.changes.level("cereal"), 0);
        assert_eq!(state.changes.level("red"), 2);
        let cycle = crops(vec![child("cereal", "red")]);
        let given: Vec<VocabularyEvent> = events(
            vec![],
            crops(vec![
                code("cereal", "Cereal"),
                child("rice", "cereal"),
                child("red", "rice"),
            ]),
        )
        .await;
        assert_eq!(field(refused(given, cycle).await), "codes[0].parent_code");
    }

    fn id_type(code: &str, uri: &str) -> VocabularyCommand {
        VocabularyCommand::AddCode {
            namespace: ID_TYPE.into(),
            code: CodeInput {
                uri: Some(uri.into()),
                target_type: Some(CodeTarget::Individual),
                ..self::code(code, "Kenya national ID")
            },
        }
    }

    #[tokio::test]
    async fn an_identifier_type_is_added_over_the_seeded_ones_once() {
        let added = events(
            vec![],
            id_type("ke_national_id", "urn:gov:ke:iprs:national-id"),
        )
        .await;
        let [VocabularyEvent::CodeAdded(code)] = added.as_slice() else {
            panic!("one code added: {added:?}");
        };
        assert_eq!(code.uri, "urn:gov:ke:iprs:national-id");
        assert!(code.sequence > 1, "after the seeded codes");
        let again = events(
            added.clone(),
            id_type("ke_national_id", "urn:gov:ke:iprs:national-id"),
        )
        .await;
        assert!(again.is_empty(), "the same code again changes nothing");
        let other = refused(added, id_type("ke_national_id", "urn:gov:ke:iprs:other")).await;
        assert!(matches!(other, DomainError::Conflict { .. }), "{other:?}");
    }

    #[tokio::test]
    async fn identifier_systems_are_urns_and_unique() {
        for bad in [
            "http://x.org/id",
            "urn:gov:KE:id",
            "urn:gov",
            "urn:gov:ke:id#",
            "urn:gov:ke id",
        ] {
            let error = refused(vec![], id_type("x", bad)).await;
            assert_eq!(field(error), "uri", "{bad}");
        }
        let taken = refused(
            vec![],
            id_type("again", "urn:openspp:vocab:id-type#national_id"),
        )
        .await;
        assert_eq!(field(taken), "uri");
        let missing = VocabularyCommand::AddCode {
            namespace: "urn:nowhere".into(),
            code: code("x", "X"),
        };
        assert!(matches!(
            refused(vec![], missing).await,
            DomainError::NotFound { .. }
        ));
    }

    #[test]
    fn events_serialise_stably() {
        let event = VocabularyEvent::CodeAdded(CodeDefinition {
            code: "KE".into(),
            display: "Kenya".into(),
            definition: None,
            parent_code: None,
            target_type: CodeTarget::Both,
            uri: "urn:iso:std:iso:3166-1#KE".into(),
            sequence: 10,
            deprecated: false,
        });
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"CodeAdded": {"code": "KE", "display": "Kenya", "definition": null,
                "parent_code": null, "target_type": "both", "uri": "urn:iso:std:iso:3166-1#KE",
                "sequence": 10, "deprecated": false}})
        );
    }
}
