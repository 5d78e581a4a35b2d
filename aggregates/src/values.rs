//! Value types shared by the aggregates and their events.

use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
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

impl HumanName {
    /// The text a name is searched by (family, given, middle and text; `bounds::search_text`):
    /// what the read model stores as `name_search`, and what `bounds::search_name` measures.
    pub fn search_text(&self) -> String {
        crate::bounds::search_text(
            [&self.family, &self.given, &self.middle, &self.text]
                .into_iter()
                .flatten(),
        )
    }
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

/// A calendar date of the years 1 to 9999, written `YYYY-MM-DD`: the one date type of every
/// date a client sends, in a body or a query. PostgreSQL, JSON consumers and the other
/// systems a registry talks to all represent these years; a year outside them (0, −4714,
/// 12345, which the general `NaiveDate` accepts) is refused where it arrives, naming the field,
/// instead of failing later in a query or a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(NaiveDate);

/// Why a text is not a `Date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("must be a date YYYY-MM-DD")]
    Malformed,
    #[error("must be a date between 0001-01-01 and 9999-12-31")]
    OutOfRange,
}

impl Date {
    /// The first and last years every consumer can hold.
    pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

    /// `date`, if its year is within `YEARS`.
    pub fn new(date: NaiveDate) -> Result<Self, DateError> {
        if Self::YEARS.contains(&date.year()) {
            Ok(Self(date))
        } else {
            Err(DateError::OutOfRange)
        }
    }

    /// A date the domain accepted earlier (read back from its events), shown as it was stored.
    /// Only for rendering what is already stored: input goes through `new` or parsing.
    pub fn stored(date: NaiveDate) -> Self {
        Self(date)
    }

    pub fn get(self) -> NaiveDate {
        self.0
    }
}

impl From<Date> for NaiveDate {
    fn from(date: Date) -> Self {
        date.0
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Exactly `YYYY-MM-DD` (`1985-3-5` is not). Text that is a date only outside the bound
    /// (`-4714-01-01`, `+12345-01-01`, `0000-01-01`) says so, rather than "malformed".
    fn from_str(text: &str) -> Result<Self, DateError> {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| DateError::Malformed)?;
        let date = Self::new(date)?;
        let shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if shaped {
            Ok(date)
        } else {
            Err(DateError::Malformed)
        }
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_years_1_to_9999_parse_and_others_are_out_of_range() {
        assert_eq!(
            "0001-01-01".parse::<Date>().unwrap().get(),
            NaiveDate::from_ymd_opt(1, 1, 1).unwrap()
        );
        assert!("9999-12-31".parse::<Date>().is_ok());
        for text in ["0000-12-31", "-4714-01-01", "-0001-01-01", "+10000-01-01"] {
            assert_eq!(text.parse::<Date>(), Err(DateError::OutOfRange), "{text}");
        }
        for text in [
            "",
            "2024-02-30",
            "2024/01/01",
            "2024-01-01T00:00:00Z",
            "tomorrow",
        ] {
            assert_eq!(text.parse::<Date>(), Err(DateError::Malformed), "{text}");
        }
    }

    #[test]
    fn dates_serialise_as_iso_text_and_refuse_out_of_range_text() {
        let date: Date = serde_json::from_str("\"1985-03-15\"").unwrap();
        assert_eq!(serde_json::to_string(&date).unwrap(), "\"1985-03-15\"");
        let error = serde_json::from_str::<Date>("\"-4714-11-24\"").unwrap_err();
        assert!(error
            .to_string()
            .contains("between 0001-01-01 and 9999-12-31"));
        assert!(serde_json::from_str::<Date>("19850315").is_err());
    }
}
