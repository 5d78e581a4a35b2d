//! Value types shared by the aggregates and their events.

use serde::{Deserialize, Serialize};

/// An external identifier: a namespace URI (ADR-007) and a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

impl Identifier {
    /// `system|value`, the form identifiers take in paths and references.
    pub fn key(&self) -> String {
        format!("{}|{}", self.system, self.value)
    }
}

/// Why a text is not an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnIdentifier;

impl std::fmt::Display for NotAnIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("must be an external identifier `{system}|{value}`")
    }
}

impl std::str::FromStr for Identifier {
    type Err = NotAnIdentifier;

    /// `system|value` (already percent-decoded), split at the first bar: values may hold bars,
    /// systems (namespace URIs) may not. Neither part may be empty or hold NUL.
    fn from_str(text: &str) -> Result<Self, NotAnIdentifier> {
        match text.split_once('|') {
            Some((system, value))
                if !system.is_empty() && !value.is_empty() && !text.contains('\0') =>
            {
                Ok(Self {
                    system: system.to_owned(),
                    value: value.to_owned(),
                })
            }
            _ => Err(NotAnIdentifier),
        }
    }
}

/// A code from a vocabulary (ADR-009).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Code {
    pub system: String,
    pub code: String,
}

/// A person's name, stored exactly as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPoint {
    pub system: String,
    pub value: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}
