//! The shared building blocks of OpenSPP's resource shapes (`schemas/base.py`): what the API
//! reads and writes. The domain has its own types; the conversions live here, at the edge.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use openspp_aggregates::bounds::items;
use openspp_aggregates::{self as domain, Date};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::vocabulary::Vocabularies;

/// An external identifier: a namespace URI and a value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Namespace URI of the identifier type (e.g. `urn:openspp:vocab:id-type#national_id`).
    pub system: String,
    pub value: String,
}

impl From<Identifier> for domain::Identifier {
    fn from(id: Identifier) -> Self {
        Self {
            system: id.system,
            value: id.value,
        }
    }
}

impl From<&domain::Identifier> for Identifier {
    fn from(id: &domain::Identifier) -> Self {
        Self {
            system: id.system.clone(),
            value: id.value.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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

impl From<HumanName> for domain::HumanName {
    fn from(n: HumanName) -> Self {
        Self {
            family: n.family,
            given: n.given,
            middle: n.middle,
            prefix: n.prefix,
            suffix: n.suffix,
            text: n.text,
        }
    }
}

impl From<&domain::HumanName> for HumanName {
    fn from(n: &domain::HumanName) -> Self {
        Self {
            family: n.family.clone(),
            given: n.given.clone(),
            middle: n.middle.clone(),
            prefix: n.prefix.clone(),
            suffix: n.suffix.clone(),
            text: n.text.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    pub system: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeableConcept {
    #[serde(default, deserialize_with = "at_most::<_, _, { items::CODINGS }>")]
    #[schema(max_items = 10)]
    pub coding: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    /// The codes a client sent; the domain checks them against the vocabularies.
    pub fn codes(&self) -> Vec<domain::Code> {
        self.coding
            .iter()
            .map(|c| domain::Code {
                system: c.system.clone(),
                code: c.code.clone(),
            })
            .collect()
    }

    /// Exactly one code, as single-valued fields (gender) need.
    pub fn single(&self, field: &str) -> Result<domain::Code, ApiError> {
        match self.codes().as_slice() {
            [code] => Ok(code.clone()),
            _ => Err(ApiError::unprocessable(
                field,
                "must have exactly one coding",
            )),
        }
    }

    /// A concept from codes, with their displays from the vocabulary.
    pub fn from_codes<'a>(
        codes: impl IntoIterator<Item = &'a domain::Code>,
        vocabulary: &Vocabularies,
    ) -> Self {
        Self {
            coding: codes
                .into_iter()
                .map(|c| Coding {
                    system: c.system.clone(),
                    code: c.code.clone(),
                    display: vocabulary.display(&c.system, &c.code),
                })
                .collect(),
            text: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPoint {
    /// `phone`, `email`, `fax`, `url` or `sms`.
    pub system: String,
    pub value: String,
    /// `home`, `work` or `mobile`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

impl From<ContactPoint> for domain::ContactPoint {
    fn from(c: ContactPoint) -> Self {
        Self {
            system: c.system,
            value: c.value,
            use_: c.use_,
            rank: c.rank,
        }
    }
}

impl From<&domain::ContactPoint> for ContactPoint {
    fn from(c: &domain::ContactPoint) -> Self {
        Self {
            system: c.system.clone(),
            value: c.value.clone(),
            use_: c.use_.clone(),
            rank: c.rank,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Address {
    /// `physical`, `postal` or `both`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most::<_, _, { items::ADDRESS_LINES }>"
    )]
    #[schema(max_items = 10)]
    pub line: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl From<Address> for domain::Address {
    fn from(a: Address) -> Self {
        Self {
            kind: a.kind,
            text: a.text,
            line: a.line,
            city: a.city,
            district: a.district,
            state: a.state,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<&domain::Address> for Address {
    fn from(a: &domain::Address) -> Self {
        Self {
            kind: a.kind.clone(),
            text: a.text.clone(),
            line: a.line.clone(),
            city: a.city.clone(),
            district: a.district.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub start: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub end: Option<Date>,
}

impl Period {
    /// A period as the domain stored it.
    pub fn stored(start: Option<NaiveDate>, end: Option<NaiveDate>) -> Self {
        Self {
            start: start.map(Date::stored),
            end: end.map(Date::stored),
        }
    }

    pub fn start(&self) -> Option<NaiveDate> {
        self.start.map(Date::get)
    }

    pub fn end(&self) -> Option<NaiveDate> {
        self.end.map(Date::get)
    }
}

/// The default of a body's `active`: a resource sent without it is active.
pub fn active_by_default() -> bool {
    true
}

/// A list a client sends, refused (422 naming it) past `MAX` entries while it is parsed, before
/// any entry is acted on. `MAX` is one of the domain's `bounds::items`; the field's
/// `#[schema(max_items = …)]` shows the same number, which a test holds equal.
pub fn at_most<'de, D, T, const MAX: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Limited::<T, MAX>::deserialize(deserializer).map(|list| list.0)
}

/// `at_most` for a list that may be left out or null.
pub fn optional_at_most<'de, D, T, const MAX: usize>(
    deserializer: D,
) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Limited<T, MAX>>::deserialize(deserializer).map(|list| list.map(|l| l.0))
}

struct Limited<T, const MAX: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Limited<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T, const MAX: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Entries<T, MAX> {
            type Value = Limited<T, MAX>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a list of at most {MAX} entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
                while let Some(entry) = seq.next_element()? {
                    if entries.len() == MAX {
                        return Err(de::Error::custom(format!(
                            "must have at most {MAX} entries"
                        )));
                    }
                    entries.push(entry);
                }
                Ok(Limited(entries))
            }
        }
        deserializer.deserialize_seq(Entries(std::marker::PhantomData))
    }
}

/// A reference to another resource by external identifier: `Individual/{system}|{value}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// Version and provenance of a resource. Read only: a client may send it back, it is ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    /// The stream's event sequence number; also the `ETag`.
    pub version_id: String,
    pub last_updated: String,
    /// Source system of the latest change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Meta {
    pub fn new(version: i64, last_updated: DateTime<Utc>, source: Option<String>) -> Self {
        Self {
            version_id: version.to_string(),
            last_updated: last_updated.to_rfc3339_opts(SecondsFormat::Micros, true),
            source,
        }
    }
}

/// `meta` of a search result page.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchMeta {
    /// How many match: exact, unless `totalEstimated` says it is PostgreSQL's estimate (more
    /// matched than a search counts unless asked `_total=accurate`).
    pub total: i64,
    /// Present (`true`) only when `total` is an estimate.
    #[serde(rename = "totalEstimated", skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub total_estimated: bool,
    pub count: usize,
    pub offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchLinks {
    #[serde(rename = "self")]
    pub self_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

/// The search envelope of OpenSPP's `SearchResult`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult<T: ToSchema> {
    pub data: Vec<T>,
    pub meta: SearchMeta,
    pub links: SearchLinks,
}

/// The error body (CONTRACT §2), documented for the OpenAPI description.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    /// Always `OperationOutcome`.
    pub resource_type: String,
    pub issue: Vec<OutcomeIssue>,
    /// The first issue's text, for clients that read `{"detail": …}`.
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeIssue {
    pub severity: String,
    pub code: String,
    pub diagnostics: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<Vec<String>>,
}
