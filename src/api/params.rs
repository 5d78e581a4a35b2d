//! Search parameters (`_count`, `_offset`, `_sort`, prefixed dates …) and the result envelope.
//! Unknown parameters are refused: a typo must not silently widen a search.

use axum::http::Uri;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use openspp_aggregates::{Date, DateError, Identifier};
use openspp_projections::search::{Comparator, Found, Page, SortKey, Total};
use utoipa::ToSchema;

use crate::api::reference::parse_identifier;
use crate::api::schema::{SearchLinks, SearchMeta, SearchResult};
use crate::error::ApiError;

pub const DEFAULT_COUNT: i64 = 20;
pub const MAX_COUNT: i64 = 100;

/// The query string of a search, consumed parameter by parameter.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The decoded query string of a request; a malformed one is a 400.
    pub fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        let pairs = decode_query(uri.query().unwrap_or_default())?;
        // No stored text can hold NUL, so no value with one can match anything: refuse it as
        // the malformed parameter it is rather than let the database reject the query.
        let holds_nul =
            |(name, value): &&(String, String)| name.contains('\0') || value.contains('\0');
        if let Some((name, _)) = pairs.iter().find(holds_nul) {
            return Err(ApiError::bad_request(
                Some(name),
                "must not contain the NUL character",
            ));
        }
        Ok(Self(pairs))
    }

    /// Every parameter whose name starts with `prefix` (`extension.`), as `(name, value)`,
    /// in the order given; a parameter given empty is left out, as `one` leaves it out.
    pub fn prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(key, _)| key.starts_with(prefix));
        self.0 = rest;
        let taken: Vec<(String, String)> = taken;
        taken
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .collect()
    }

    pub fn all(&mut self, name: &str) -> Vec<String> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(key, _)| key == name);
        self.0 = rest;
        taken.into_iter().map(|(_, value)| value).collect()
    }

    /// A text parameter given at most once; an empty one (`name=`) is not given.
    pub fn one(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.given(name)?.filter(|v| !v.is_empty()))
    }

    /// A parameter given at most once, as sent: a typed parameter sent empty (`_count=`,
    /// `active=`) is malformed, not absent, so that it cannot silently widen a search.
    fn given(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.all(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(ApiError::bad_request(Some(name), "may be given only once")),
        }
    }

    pub fn integer(
        &mut self,
        name: &str,
        default: i64,
        range: (i64, i64),
    ) -> Result<i64, ApiError> {
        let Some(text) = self.given(name)? else {
            return Ok(default);
        };
        text.parse::<i64>()
            .ok()
            .filter(|n| (range.0..=range.1).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    Some(name),
                    format!("must be a whole number from {} to {}", range.0, range.1),
                )
            })
    }

    pub fn page(&mut self) -> Result<Page, ApiError> {
        Ok(Page {
            count: self.integer("_count", DEFAULT_COUNT, (1, MAX_COUNT))?,
            offset: self.integer("_offset", 0, (0, i64::MAX))?,
            total: self.total()?,
        })
    }

    /// `_total` (FHIR): `accurate` counts every match; `estimate` (the default) counts
    /// exactly up to `EXACT_BEYOND_PAGE` matches past the page and estimates beyond.
    pub fn total(&mut self) -> Result<Total, ApiError> {
        match self.one("_total")?.as_deref() {
            None | Some("estimate") => Ok(Total::Estimate),
            Some("accurate") => Ok(Total::Accurate),
            Some(other) => Err(ApiError::bad_request(
                Some("_total"),
                format!("`{other}` is not a way of counting; use `accurate` or `estimate`"),
            )),
        }
    }

    /// `_sort=name,-birthdate`: fields from `allowed` (parameter name → column).
    pub fn sort(
        &mut self,
        allowed: &[(&str, &'static str)],
        default: SortKey,
    ) -> Result<Vec<SortKey>, ApiError> {
        let Some(text) = self.one("_sort")? else {
            return Ok(vec![default]);
        };
        text.split(',')
            .map(|field| {
                let (descending, name) = match field.strip_prefix('-') {
                    Some(name) => (true, name),
                    None => (false, field),
                };
                allowed
                    .iter()
                    .find(|(param, _)| *param == name)
                    .map(|(_, column)| SortKey { column, descending })
                    .ok_or_else(|| {
                        let names: Vec<&str> = allowed.iter().map(|(p, _)| *p).collect();
                        ApiError::bad_request(
                            Some("_sort"),
                            format!("cannot sort by `{name}`; use {}", names.join(", ")),
                        )
                    })
            })
            .collect()
    }

    /// Dates (`YYYY-MM-DD`, years 1 to 9999: `Date`), with prefixes.
    pub fn dates(&mut self, name: &str) -> Result<Vec<(Comparator, NaiveDate)>, ApiError> {
        self.all(name)
            .iter()
            .map(|value| {
                let (comparator, text) = Comparator::split(value);
                let date = text.parse::<Date>().map_err(|error| {
                    ApiError::bad_request(
                        Some(name),
                        format!("{error}, with an optional prefix eq, ne, gt, lt, ge or le"),
                    )
                })?;
                Ok((comparator, date.get()))
            })
            .collect()
    }

    /// Instants (RFC 3339) or dates (taken as midnight UTC), with prefixes.
    pub fn instants(&mut self, name: &str) -> Result<Vec<(Comparator, DateTime<Utc>)>, ApiError> {
        self.all(name)
            .iter()
            .map(|value| {
                let (comparator, text) = Comparator::split(value);
                let instant = instant(name, text, true).map_err(|error| {
                    ApiError::bad_request(
                        Some(name),
                        format!("{}, with an optional prefix", error.diagnostics),
                    )
                })?;
                Ok((comparator, instant))
            })
            .collect()
    }

    /// A range given as two parameters of instants (`date_from`, `date_to`): at or after
    /// each `from`, at or before each `to`, whatever prefix they carry.
    pub fn between(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<(Comparator, DateTime<Utc>)>, ApiError> {
        let after = self.instants(from)?.into_iter();
        let before = self.instants(to)?.into_iter();
        Ok(after
            .map(|(_, instant)| (Comparator::Ge, instant))
            .chain(before.map(|(_, instant)| (Comparator::Le, instant)))
            .collect())
    }

    /// One value that must be a wire name of a domain enum (`parse` and `expected` are the
    /// enum's, from `wire_names!`): anything else is a 400 naming the parameter, never an
    /// empty result.
    pub fn one_of<E>(
        &mut self,
        name: &str,
        parse: fn(&str) -> Option<E>,
        expected: fn() -> String,
    ) -> Result<Option<String>, ApiError> {
        let value = self.one(name)?;
        if value.as_deref().is_some_and(|text| parse(text).is_none()) {
            return Err(ApiError::bad_request(Some(name), expected()));
        }
        Ok(value)
    }

    /// One instant without prefix (`_at`): RFC 3339 with a zone.
    pub fn instant(&mut self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.one(name)?
            .map(|text| instant(name, &text, false))
            .transpose()
    }

    pub fn identifier(&mut self) -> Result<Option<Identifier>, ApiError> {
        self.one("identifier")?
            .map(|text| parse_identifier(&text, "identifier"))
            .transpose()
    }

    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.given(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::bad_request(Some(name), "must be true or false")),
        }
    }

    /// Refuses whatever parameter nobody consumed.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.first() {
            None => Ok(()),
            Some((name, _)) => Err(ApiError::bad_request(
                Some(name),
                format!("unknown search parameter `{name}`"),
            )),
        }
    }
}

pub use openspp_aggregates::vocabulary::GROUP_MEMBERSHIP_TYPE;

/// A code parameter given as the bare code or as `system|code`, whose system must then be
/// `system` (the parameter `name` is named in the 400 otherwise).
pub fn code_of(text: &str, system: &str, name: &str) -> Result<String, ApiError> {
    match text.rsplit_once('|') {
        None => Ok(text.to_owned()),
        Some((given, code)) if given == system && !code.is_empty() => Ok(code.to_owned()),
        Some(_) => Err(ApiError::bad_request(
            Some(name),
            format!("must be a code of {system}, bare or as `{system}|code`"),
        )),
    }
}

/// An RFC 3339 instant (or, where `dates` allows, a date taken as midnight UTC), of the years
/// `Date` bounds: any other year is refused here, naming the parameter, rather than by the
/// database the search would hand it to.
pub fn instant(name: &str, text: &str, dates: bool) -> Result<DateTime<Utc>, ApiError> {
    let expected = if dates {
        "must be an RFC 3339 instant or a date YYYY-MM-DD"
    } else {
        "must be an RFC 3339 instant with a zone"
    };
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request(Some(name), expected));
    let instant = match parsed {
        Err(_) if dates => match text.parse::<Date>() {
            Ok(date) => Ok(date.get().and_time(NaiveTime::MIN).and_utc()),
            Err(DateError::OutOfRange) => Err(DateError::OutOfRange),
            Err(DateError::Malformed) => return parsed,
        },
        Err(error) => return Err(error),
        Ok(instant) => Date::new(instant.date_naive()).map(|_| instant),
    };
    instant.map_err(|error| ApiError::bad_request(Some(name), error.to_string()))
}

/// `application/x-www-form-urlencoded` pairs, decoded strictly: `+` is a space, `%XX` a byte,
/// and the bytes must be UTF-8. The usual decoders replace invalid UTF-8 with U+FFFD, which
/// would search for text nobody sent; here it is a 400 naming the parameter (or `query` when
/// the name itself is not UTF-8).
fn decode_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |text: &str| {
        let spaced = text.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|decoded| decoded.into_owned())
            .ok()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).ok_or_else(|| {
                ApiError::bad_request(
                    Some("query"),
                    "a parameter name is not UTF-8 once percent-decoded",
                )
            })?;
            let value = decode(value).ok_or_else(|| {
                ApiError::bad_request(Some(&name), "must be UTF-8 once percent-decoded")
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Wraps a page in OpenSPP's envelope; `next` is present iff more results exist.
pub fn envelope<T: ToSchema, R>(
    uri: &Uri,
    page: Page,
    found: Found<R>,
    render: impl FnMut(R) -> T,
) -> SearchResult<T> {
    let data: Vec<T> = found.rows.into_iter().map(render).collect();
    let link = |offset: i64| page_link(uri, offset);
    let next = (page.offset + (data.len() as i64) < found.total && !data.is_empty())
        .then(|| link(page.offset + page.count));
    let prev = (page.offset > 0).then(|| link((page.offset - page.count).max(0)));
    SearchResult {
        meta: SearchMeta {
            total: found.total,
            total_estimated: found.estimated,
            count: data.len(),
            offset: page.offset,
        },
        links: SearchLinks {
            self_: uri.to_string(),
            next,
            prev,
        },
        data,
    }
}

/// Every result in one page of the envelope: a list that is not paged.
pub fn unpaged<T: ToSchema>(uri: &Uri, data: Vec<T>) -> SearchResult<T> {
    let total = data.len() as i64;
    let page = Page::new(total, 0);
    envelope(uri, page, Found::exact(total, data), |row| row)
}

/// The request's own URL at another `_offset`: every other parameter (filters, `_count`,
/// `_sort`) is carried as it came, so following the link continues the same search.
pub fn page_link(uri: &Uri, offset: i64) -> String {
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .filter(|(k, _)| k != "_offset")
                .collect()
        })
        .unwrap_or_default();
    pairs.push(("_offset".into(), offset.to_string()));
    let query = serde_urlencoded_pairs(&pairs);
    format!("{}?{query}", uri.path())
}

/// The request's own URL continued after the row `key` (`system|value`): `_lastId` names it,
/// and every other parameter but `_offset` is carried as it came.
pub fn cursor_link(uri: &Uri, key: &str) -> String {
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .filter(|(k, _)| k != "_offset" && k != "_lastId")
                .collect()
        })
        .unwrap_or_default();
    let encoded = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    pairs.push(("_lastId".into(), encoded.to_string()));
    format!("{}?{}", uri.path(), serde_urlencoded_pairs(&pairs))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Re-joins pairs that are still percent-encoded as they came in.
fn serde_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn count_is_bounded_and_unknown_parameters_are_refused() {
        assert_eq!(params(&[]).page().unwrap().count, DEFAULT_COUNT);
        assert!(params(&[("_count", "0")]).page().is_err());
        assert!(params(&[("_count", "101")]).page().is_err());
        assert_eq!(params(&[("_count", "100")]).page().unwrap().count, 100);
        let error = params(&[("nmae", "x")]).finish().unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("nmae"));
    }

    #[test]
    fn repeated_date_parameters_combine() {
        let mut p = params(&[("birthdate", "ge1980-01-01"), ("birthdate", "lt1990-01-01")]);
        let dates = p.dates("birthdate").unwrap();
        assert_eq!(dates.len(), 2);
        assert_eq!(dates[0].0, Comparator::Ge);
        assert!(params(&[("birthdate", "1980/01/01")])
            .dates("birthdate")
            .is_err());
    }

    #[test]
    fn dates_and_instants_outside_years_1_to_9999_are_400_naming_the_parameter() {
        for value in ["-4714-01-01", "0000-06-01", "ge+10000-01-01"] {
            let error = params(&[("birthdate", value)])
                .dates("birthdate")
                .unwrap_err();
            assert_eq!(error.status.as_u16(), 400);
            assert_eq!(error.expression.as_deref(), Some("birthdate"));
            assert!(error
                .diagnostics
                .contains("between 0001-01-01 and 9999-12-31"));
        }
        for value in [
            "-4714-01-01",
            "lt0000-01-01T00:00:00Z",
            "9999-12-31T23:00:00-05:00",
        ] {
            let error = params(&[("date", value)]).instants("date").unwrap_err();
            assert_eq!(error.expression.as_deref(), Some("date"), "{value}");
            assert!(error.diagnostics.contains("between"), "{value}");
        }
        assert!(params(&[("date", "ge0001-01-01")]).instants("date").is_ok());
        assert!(params(&[("date", "9999-12-31T23:59:59Z")])
            .instants("date")
            .is_ok());
        let error = params(&[("_at", "2024-01-01")]).instant("_at").unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("_at"));
        let error = params(&[("_at", "0000-01-01T00:00:00Z")])
            .instant("_at")
            .unwrap_err();
        assert!(error.diagnostics.contains("between"));
    }

    #[test]
    fn query_strings_decode_strictly() {
        let pairs = decode_query("name=Mar%C3%ADa+Santos&_count=2&&flag").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("name".to_owned(), "María Santos".to_owned()),
                ("_count".to_owned(), "2".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        let error = decode_query("_count=1&name=%C3%28").unwrap_err();
        assert_eq!(error.status.as_u16(), 400);
        assert_eq!(error.expression.as_deref(), Some("name"));
        let error = decode_query("na%FFme=x").unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("query"));
    }

    #[test]
    fn cursor_links_name_the_last_row_and_drop_the_offset() {
        let uri: Uri = "/api/v2/spp/Program?name=cash&_offset=3&_lastId=x&_count=2"
            .parse()
            .unwrap();
        assert_eq!(
            cursor_link(&uri, "urn:openspp:program#a|p-1"),
            "/api/v2/spp/Program?name=cash&_count=2&_lastId=urn%3Aopenspp%3Aprogram%23a%7Cp%2D1"
        );
    }

    #[test]
    fn next_link_only_when_more_results_exist() {
        let uri: Uri = "/api/v2/spp/Individual?name=ana&_count=2".parse().unwrap();
        let page = Page::new(2, 0);
        let more =
            envelope::<String, i32>(&uri, page, Found::exact(3, vec![1, 2]), |n| n.to_string());
        assert_eq!(
            more.links.next.as_deref(),
            Some("/api/v2/spp/Individual?name=ana&_count=2&_offset=2")
        );
        assert!(more.links.prev.is_none());
        let last =
            envelope::<String, i32>(&uri, page, Found::exact(2, vec![1, 2]), |n| n.to_string());
        assert!(last.links.next.is_none());
    }
}
