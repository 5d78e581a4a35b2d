//! The value types resources are made of (identifiers, names, codes, references …), as GraphQL
//! objects with the REST JSON names (CONTRACT §7). Each is read back from a resource's REST
//! rendering after the caller's grant has filtered it, so a hidden field is simply absent and
//! resolves to `null`: the GraphQL surface cannot show more than REST does.

use async_graphql::SimpleObject;
use serde::Deserialize;

#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct HumanName {
    pub family: Option<String>,
    pub given: Option<String>,
    pub middle: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub text: Option<String>,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct Coding {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
    pub text: Option<String>,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub version_id: String,
    pub last_updated: String,
    pub source: Option<String>,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// `{"reference": "Group/{system}|{value}"}`, as REST shows it.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct Reference {
    pub reference: String,
    pub display: Option<String>,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct ContactPoint {
    pub system: String,
    pub value: String,
    #[serde(rename = "use")]
    #[graphql(name = "use")]
    pub use_: Option<String>,
    pub rank: Option<u32>,
}

#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(rename = "type")]
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub line: Vec<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// One entry of an individual's `groupMembership`.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct GroupMembershipRef {
    pub group: Reference,
    pub role: Option<CodeableConcept>,
    pub period: Option<Period>,
}

/// One entry of a group's `member`, as REST shows it (the `members` link resolves the person).
#[derive(SimpleObject, Deserialize, Clone, Debug)]
pub struct GroupMemberRef {
    pub entity: Reference,
    pub role: Option<CodeableConcept>,
    pub period: Option<Period>,
    #[serde(default)]
    pub inactive: bool,
}
