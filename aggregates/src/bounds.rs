//! What every stored value must fit. An event the domain accepts must also be storable and
//! indexable by every read model: one value the projector cannot write (a year PostgreSQL
//! cannot hold, a name longer than a B-tree entry) would stop the feed for every resource.
//! So the bounds are checked here, before any event exists, not discovered by the projector.

use chrono::NaiveDate;

use crate::error::DomainError;
use crate::values::Date;

/// Names, group names and other short, indexed text. 200 characters of up to four bytes each
/// keep a composite (family, given) index entry under PostgreSQL's B-tree limit of 2,704 bytes.
pub const SHORT_TEXT: usize = 200;
/// The bytes of a person's name as its search text holds it (family, given, middle and text,
/// lowercased, joined by spaces: the read model's `name_search`). The index of the newest
/// individuals carries that text, so that a count of a common name reads no row (migration
/// 0250), and its entry, with the update time, the id, the birth date and the gender beside
/// the name, must stay under PostgreSQL's B-tree limit of 2,704 bytes. Four parts of 200
/// characters of three bytes each (any name in a script of the Basic Multilingual Plane) fit.
pub const SEARCH_NAME_BYTES: usize = 2_500;
/// Free text that is searched by trigram but never held in a B-tree (addresses, reasons).
pub const LONG_TEXT: usize = 1000;
/// A photo (OpenSPP's `photo`, base64): 256 KiB of text, an ID photo of ~190 KB. It is kept in
/// the person's row and shown in every read and search result, so it stays small.
pub const PHOTO: usize = 262_144;

/// The most entries a list in a request may hold, per list. Every list a client sends is
/// bounded, so that one request costs a bounded amount of work (a group's members are each
/// looked up) and of storage in every event and read model; the HTTP layer refuses a longer
/// list while parsing, naming it, and shows each bound as `maxItems` in the OpenAPI document.
pub mod items {
    /// A registrant's or program's identifiers (one per identifier system).
    pub const IDENTIFIERS: usize = 20;
    /// A person's phone numbers, e-mail addresses and other contact points.
    pub const TELECOM: usize = 20;
    /// A registrant's addresses.
    pub const ADDRESSES: usize = 10;
    /// The lines of one address.
    pub const ADDRESS_LINES: usize = 10;
    /// A group's members as one request lists them (create, replace); larger groups grow by
    /// `$add-member`.
    pub const MEMBERS: usize = 500;
    /// The groups listed with a person (read only: a body that sends a read back carries them).
    pub const GROUPS: usize = 100;
    /// The codings of one coded value.
    pub const CODINGS: usize = 10;
    /// A consent's named recipient organisations.
    pub const RECIPIENTS: usize = 50;
    /// A consent's recipient organisation types (there are nine).
    pub const RECIPIENT_TYPES: usize = 9;
    /// A consent's scopes (resource type and purpose pairs: four resource types, five purposes).
    pub const SCOPES: usize = 20;
    /// The fields one consent scope names (no resource has more than nine consentable fields).
    pub const FIELDS: usize = 20;
    /// The goods of one in-kind entitlement (OpenSPP's has exactly one).
    pub const ENTITLEMENT_ITEMS: usize = 1;
}

/// The text read models search by (`name LIKE`, `address LIKE`): `parts` lowercased and
/// joined by spaces. Defined beside the bounds so that a bound on it (`search_name`) measures
/// the very text a read model stores.
pub fn search_text<S: AsRef<str>>(parts: impl IntoIterator<Item = S>) -> String {
    parts
        .into_iter()
        .map(|part| part.as_ref().to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A name's search text (`HumanName::search_text`) fits the index that carries it (see
/// `SEARCH_NAME_BYTES`).
pub fn search_name(field: &str, search_text: &str) -> Result<(), DomainError> {
    let bytes = search_text.len();
    if bytes > SEARCH_NAME_BYTES {
        return Err(DomainError::invalid(
            field,
            format!(
                "its parts (family, given, middle and text) must together be at most \
                 {SEARCH_NAME_BYTES} bytes in UTF-8, lowercased; they are {bytes}"
            ),
        ));
    }
    Ok(())
}

/// A list of at most `max` entries.
pub fn items(field: &str, len: usize, max: usize) -> Result<(), DomainError> {
    if len > max {
        return Err(DomainError::invalid(
            field,
            format!("must have at most {max} entries"),
        ));
    }
    Ok(())
}

/// Dates are calendar dates of years 1 to 9999 (`YYYY-MM-DD`), which every consumer of the
/// API (and PostgreSQL) can represent: the bound of `values::Date`, checked again here for
/// commands that did not come through a parsed body.
pub fn date(field: &str, value: NaiveDate) -> Result<(), DomainError> {
    Date::new(value)
        .map(|_| ())
        .map_err(|error| DomainError::invalid(field, error.to_string()))
}

/// A date that records something that has happened: not after `today`.
pub fn past_date(field: &str, value: NaiveDate, today: NaiveDate) -> Result<(), DomainError> {
    date(field, value)?;
    if value > today {
        return Err(DomainError::invalid(field, "must not be in the future"));
    }
    Ok(())
}

/// Text of at most `max` characters, without NUL (which PostgreSQL text cannot hold).
pub fn text(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.contains('\0') {
        return Err(DomainError::invalid(
            field,
            "must not contain the NUL character",
        ));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// As `text`, for an optional value.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<(), DomainError> {
    value.map_or(Ok(()), |value| text(field, value, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(year: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, 1, 1).unwrap()
    }

    #[test]
    fn dates_outside_years_1_to_9999_are_refused_naming_the_field() {
        assert!(date("birthDate", day(1)).is_ok());
        assert!(date("birthDate", day(9999)).is_ok());
        for year in [0, -5000, 10000, 200000] {
            assert_eq!(
                date("birthDate", day(year)).unwrap_err(),
                DomainError::invalid(
                    "birthDate",
                    "must be a date between 0001-01-01 and 9999-12-31"
                )
            );
        }
    }

    #[test]
    fn past_dates_may_be_today_but_not_tomorrow() {
        let today = day(2024);
        assert!(past_date("start", today, today).is_ok());
        assert_eq!(
            past_date("start", today.succ_opt().unwrap(), today).unwrap_err(),
            DomainError::invalid("start", "must not be in the future")
        );
        assert!(past_date("start", day(-1), today).is_err());
    }

    #[test]
    fn text_is_bounded_by_characters_and_refuses_nul() {
        assert!(text("name", &"é".repeat(SHORT_TEXT), SHORT_TEXT).is_ok());
        assert_eq!(
            text("name", &"a".repeat(SHORT_TEXT + 1), SHORT_TEXT).unwrap_err(),
            DomainError::invalid("name", "must be at most 200 characters")
        );
        assert!(text("name", "a\0b", SHORT_TEXT).is_err());
        assert!(optional_text("name", None, 1).is_ok());
        assert!(optional_text("name", Some("ab"), 1).is_err());
    }

    #[test]
    fn a_search_name_is_bounded_by_its_lowercased_bytes_joined() {
        // Four parts of 200 three-byte characters: 2,403 bytes with the spaces between them.
        let cjk = "漢".repeat(SHORT_TEXT);
        assert!(search_name("name", &search_text([&cjk; 4])).is_ok());
        // Four-byte characters (emoji, rare ideographs): 3,203 bytes.
        let emoji = "😀".repeat(SHORT_TEXT);
        assert_eq!(
            search_name("name", &search_text([&emoji; 4])).unwrap_err(),
            DomainError::invalid(
                "name",
                "its parts (family, given, middle and text) must together be at most 2500 \
                 bytes in UTF-8, lowercased; they are 3203"
            )
        );
        // Counted lowercased, as the search text holds them: 'İ' (two bytes) lowers to three,
        // so these parts of 2,483 bytes are 2,523 in the search text.
        let dotted = "İ".repeat(40);
        assert_eq!(
            search_name("name", &search_text([&emoji, &emoji, &emoji, &dotted])).unwrap_err(),
            DomainError::invalid(
                "name",
                "its parts (family, given, middle and text) must together be at most 2500 \
                 bytes in UTF-8, lowercased; they are 2523"
            )
        );
        assert!(search_name("name", &search_text::<&str>([])).is_ok());
    }
}
