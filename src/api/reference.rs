//! External identifiers in paths and references: `{system}|{value}`, never an internal id.

use openspp_aggregates::Identifier;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::ApiError;

/// Characters escaped when an identifier is put into a URL path segment (`#` above all).
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The `identifier` a body gives a resource named by its name (`what`: "cycle"): absent, or
/// the name itself; anything else is refused, naming `identifier`.
pub fn identifier_is_name(
    identifier: Option<&str>,
    name: &str,
    what: &str,
) -> Result<(), ApiError> {
    match identifier {
        Some(id) if id.trim() != name.trim() => Err(ApiError::unprocessable(
            "identifier",
            format!("is the {what}'s name; leave it out or send the name"),
        )),
        _ => Ok(()),
    }
}

/// Parses `system|value` (already percent-decoded); a 400 naming `field` if it is not one.
pub fn parse_identifier(text: &str, field: &str) -> Result<Identifier, ApiError> {
    text.parse()
        .map_err(|e: openspp_aggregates::NotAnIdentifier| {
            ApiError::bad_request(Some(field), e.to_string())
        })
}

/// Parses a reference `Individual/{system}|{value}` to an identifier of that resource type. The
/// identifier may be percent-encoded as in a path (`%23` for `#`): both forms name one resource.
pub fn parse_reference(text: &str, resource: &str, field: &str) -> Result<Identifier, ApiError> {
    let rest = text
        .strip_prefix(resource)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| {
            ApiError::unprocessable(
                field,
                format!("must reference {resource}/{{system}}|{{value}}"),
            )
        })?;
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| ApiError::unprocessable(field, "is not UTF-8 once percent-decoded"))?;
    parse_identifier(&decoded, field).map_err(|e| ApiError::unprocessable(field, e.diagnostics))
}

/// Characters escaped in a query value holding a reference (`Program/{system}|{value}`): the
/// path's, but `/` and `?` may stand, and `&`, `+` and `=` may not.
const QUERY_VALUE: &AsciiSet = &PATH_SEGMENT
    .remove(b'/')
    .remove(b'?')
    .add(b'&')
    .add(b'+')
    .add(b'=');

/// A reference with the characters a query value cannot hold escaped.
pub fn query_value(reference: &str) -> String {
    utf8_percent_encode(reference, QUERY_VALUE).to_string()
}

/// `system|value` with the characters a path segment cannot hold escaped.
pub fn path_segment(identifier_key: &str) -> String {
    utf8_percent_encode(identifier_key, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_at_the_first_bar() {
        let id = parse_identifier("urn:openspp:vocab:id-type#national_id|A|1", "id").unwrap();
        assert_eq!(id.system, "urn:openspp:vocab:id-type#national_id");
        assert_eq!(id.value, "A|1");
        assert!(parse_identifier("no-bar", "id").is_err());
        assert!(parse_identifier("|value", "id").is_err());
    }

    #[test]
    fn path_segments_escape_hash_and_slash() {
        assert_eq!(
            path_segment("urn:openspp:vocab:id-type#national_id|A/1"),
            "urn:openspp:vocab:id-type%23national_id|A%2F1"
        );
    }

    #[test]
    fn references_must_name_the_resource_type() {
        assert!(parse_reference("Individual/urn:x|1", "Individual", "entity").is_ok());
        let error = parse_reference("Group/urn:x|1", "Individual", "entity").unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("entity"));
        let encoded = parse_reference(
            "Individual/urn:openspp:vocab:id-type%23national_id%7CA1",
            "Individual",
            "entity",
        )
        .unwrap();
        assert_eq!(encoded.system, "urn:openspp:vocab:id-type#national_id");
        assert_eq!(encoded.value, "A1");
    }
}
