//! Conditional requests: the version a writer says it is changing (`If-Match`), and the `ETag`
//! every single read and write answers with.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};

use crate::error::ApiError;

/// The version a writer says it is changing (`If-Match`): a version, "the latest" (no header,
/// or `*`), or a header that is not an entity tag at all.
///
/// A malformed header is a 400 naming it, not a 412: it is a broken request, not a stale one.
/// It is answered only when the command runs, so that authentication, scope and the path and
/// body are judged first, whatever the header says; and a precondition is only ever judged
/// on a request that is otherwise valid.
#[derive(Clone)]
pub struct IfMatch {
    asked: Result<Option<u64>, ApiError>,
    /// Whether the tag was `"<versionId>.<digest>"`, which only a resource whose rendering
    /// shows what other streams change (a cycle) issues.
    digest: bool,
}

/// The version a well-formed entity tag this server never issued stands for: no stream
/// reaches it, so the precondition fails as it should.
const NEVER_ISSUED: u64 = u64::MAX;

impl IfMatch {
    /// "The latest version": for writes that take no `If-Match` (creations, operations).
    pub const LATEST: Self = Self::of(Ok(None));

    /// Exactly `version`: a write derived from what that version showed (a merge patch) must
    /// not land on another.
    pub const fn at(version: u64) -> Self {
        Self::of(Ok(Some(version)))
    }

    const fn of(asked: Result<Option<u64>, ApiError>) -> Self {
        Self {
            asked,
            digest: false,
        }
    }

    /// The version asked for of a resource whose `ETag` is `"<versionId>"`; `None` = the
    /// latest. A `"<versionId>.<digest>"` tag is well formed but never issued for it: a
    /// precondition that fails (412), whatever the version says.
    pub fn version(self) -> Result<Option<u64>, ApiError> {
        self.version_of(false)
    }

    /// The version asked for; `None` = the latest. `digests` says whether the resource's
    /// `ETag` is `"<versionId>.<digest>"` (`Resource::RENDERS_OTHERS`): only then does such a
    /// tag name its version.
    pub fn version_of(self, digests: bool) -> Result<Option<u64>, ApiError> {
        match self.asked {
            Ok(Some(_)) if self.digest && !digests => Ok(Some(NEVER_ISSUED)),
            asked => asked,
        }
    }

    /// Reads `If-Match` (RFC 9110 §13.1.1): `*`, or one entity tag — `"<versionId>"` as `ETag`
    /// sends it, weak (`W/"3"`) or bare (`3`) too, or `"<versionId>.<digest>"`, the `ETag` of a
    /// resource whose rendering shows what other streams change (a cycle), of which the version
    /// is what the write is checked against. A well-formed tag this server never issued
    /// (`"abc"`) is a precondition that fails (412); an empty header, a list of tags or text
    /// that is no entity tag is malformed (400).
    pub fn parse(value: Option<&HeaderValue>) -> Self {
        let Some(value) = value else {
            return Self::LATEST;
        };
        let malformed = || {
            ApiError::bad_request(
                Some("If-Match"),
                "must be * or one entity tag as ETag sent it (\"<versionId>\")",
            )
        };
        let text = value.to_str().map(str::trim).unwrap_or_default();
        if text == "*" {
            return Self::LATEST;
        }
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let tag = text.strip_prefix("W/").unwrap_or(text);
        let quoted = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
        match quoted.map(|opaque| (opaque, version_in(opaque))) {
            Some((opaque, Some(version))) => Self {
                asked: version.parse().map(Some).map_err(|_| malformed()),
                digest: version.len() != opaque.len(),
            },
            // `etagc` of RFC 9110: visible ASCII but `"`; a comma would make it a list.
            Some((opaque, None))
                if opaque
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b',') =>
            {
                Self::of(Ok(Some(NEVER_ISSUED)))
            }
            None if digits(tag) && tag.len() == text.len() => {
                Self::of(tag.parse().map(Some).map_err(|_| malformed()))
            }
            _ => Self::of(Err(malformed())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Self::parse(parts.headers.get(header::IF_MATCH)))
    }
}

/// The version an entity tag names: `<versionId>`, or `<versionId>.<hex digest>` (the tag of a
/// rendering that shows what other streams change, see `answer::entity_tag`).
fn version_in(opaque: &str) -> Option<&str> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match opaque.split_once('.') {
        None => digits(opaque).then_some(opaque),
        Some((version, digest)) => {
            (digits(version) && !digest.is_empty() && digest.bytes().all(|b| b.is_ascii_hexdigit()))
                .then_some(version)
        }
    }
}

/// `ETag: "<versionId>"`.
pub fn etag(version: impl std::fmt::Display) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version `text` names for a resource whose tag carries a digest (a cycle).
    fn parsed(text: &str) -> Result<Option<u64>, u16> {
        parsed_for(text, true)
    }

    fn parsed_for(text: &str, digests: bool) -> Result<Option<u64>, u16> {
        IfMatch::parse(Some(&HeaderValue::from_str(text).unwrap()))
            .version_of(digests)
            .map_err(|e| {
                assert_eq!(e.expression.as_deref(), Some("If-Match"));
                e.status.as_u16()
            })
    }

    /// Only a cycle's `ETag` carries a digest: for any other resource a tag with one was never
    /// issued, and the precondition fails (412) rather than naming the version before the dot.
    #[test]
    fn a_digest_names_a_version_only_where_tags_carry_one() {
        for text in ["\"3.00ab9f\"", "W/\"3.00ab9f\""] {
            assert_eq!(parsed_for(text, true), Ok(Some(3)), "{text}");
            assert_eq!(parsed_for(text, false), Ok(Some(NEVER_ISSUED)), "{text}");
            let header = HeaderValue::from_str(text).unwrap();
            assert_eq!(
                IfMatch::parse(Some(&header)).version().unwrap(),
                Some(NEVER_ISSUED)
            );
        }
        for (text, version) in [("\"3\"", Some(3)), ("3", Some(3)), ("*", None)] {
            assert_eq!(parsed_for(text, false), Ok(version), "{text}");
            assert_eq!(parsed_for(text, true), Ok(version), "{text}");
        }
        assert_eq!(parsed_for("\"3.\"", false), Ok(Some(NEVER_ISSUED)));
        assert_eq!(parsed_for("\"3", false), Err(400));
    }

    #[test]
    fn if_match_names_a_version_or_the_latest() {
        assert_eq!(IfMatch::parse(None).version().unwrap(), None);
        assert_eq!(parsed("*"), Ok(None));
        assert_eq!(parsed("\"3\""), Ok(Some(3)));
        assert_eq!(parsed("W/\"3\""), Ok(Some(3)));
        assert_eq!(parsed("3"), Ok(Some(3)));
        // A cycle's tag: its version and a digest of its rendering.
        assert_eq!(parsed("\"3.00ab9f\""), Ok(Some(3)));
        assert_eq!(parsed("W/\"3.00ab9f\""), Ok(Some(3)));
        assert_eq!(parsed("\"3.xyz\""), Ok(Some(NEVER_ISSUED)));
        assert_eq!(parsed("\"3.\""), Ok(Some(NEVER_ISSUED)));
        // Well formed, never issued: a precondition that fails, not a broken request.
        assert_eq!(parsed("\"abc\""), Ok(Some(NEVER_ISSUED)));
    }

    #[test]
    fn an_empty_or_malformed_if_match_is_a_400_naming_the_header() {
        for text in [
            "",
            "  ",
            "abc",
            "-1",
            "+3",
            "\"3",
            "\"1\", \"2\"",
            "W/3",
            "\"a b\"",
        ] {
            assert_eq!(parsed(text), Err(400), "{text:?}");
        }
    }
}
