//! The DCI Social Registry specification (`social_api_v1.0.0.yaml`, converted to JSON once with
//! `python3 -c 'import yaml,json; json.dump(yaml.safe_load(open(Y)), open(J,"w"), indent=1,
//! default=str)'`), and validators for its component schemas. Requests are checked against the
//! spec itself, so what it demands (required fields, lengths, enums, `date-time` with a zone,
//! `locale` `^[a-z]{3}$`) holds without being restated here; tests check answers the same way.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

/// The specification, served at `/dci_api/v1/social/openapi.json`.
pub const SPEC: &str = include_str!("social_api_v1.0.0.json");

fn spec() -> &'static Value {
    static SPEC_VALUE: OnceLock<Value> = OnceLock::new();
    SPEC_VALUE.get_or_init(|| serde_json::from_str(SPEC).expect("the embedded DCI spec is JSON"))
}

/// A validator for `#/components/schemas/{name}`, resolving references within the spec.
fn validator(name: &str) -> &'static jsonschema::Validator {
    static VALIDATORS: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        NAMES
            .iter()
            .map(|name| {
                let schema = json!({
                    "allOf": [{"$ref": format!("#/components/schemas/{name}")}],
                    "components": spec()["components"],
                });
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft7)
                    .should_validate_formats(true)
                    .build(&schema)
                    .expect("the DCI spec's schemas compile");
                (*name, validator)
            })
            .collect()
    });
    validators
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not a validated DCI schema"))
}

/// The component schemas requests and answers are checked against.
const NAMES: [&str; 10] = [
    "MsgHeader_V1.0.0",
    "MsgCallbackHeader_V1.0.0",
    "SearchRequest",
    "SearchResponse",
    "SubscribeRequest",
    "SubscribeResponse",
    "UnSubscribeRequest",
    "UnSubscribeResponse",
    "TxnStatusRequest",
    "NotifyEventRequest",
];

/// The first way `value` breaks schema `name`, as `where: what` (`where` a JSON pointer below
/// `at`), or `None` if it is valid.
pub fn violation(name: &str, at: &str, value: &Value) -> Option<String> {
    validator(name).iter_errors(value).next().map(|error| {
        let path = error.instance_path().to_string();
        let mut message = error.to_string();
        // Messages quote the offending value; keep them short and in one line.
        if message.len() > 300 {
            let mut end = 300;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        format!("{at}{path}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_schema_compiles() {
        for name in NAMES {
            let _ = validator(name);
        }
    }

    #[test]
    fn timestamps_need_a_zone_and_locales_three_letters() {
        let header = json!({"message_id": "1", "message_ts": "2025-01-01T10:00:00",
            "action": "search", "sender_id": "s", "total_count": 1});
        let found = violation("MsgHeader_V1.0.0", "header", &header).unwrap();
        assert!(found.starts_with("header/message_ts"), "{found}");
        let mut ok = header.clone();
        ok["message_ts"] = json!("2025-01-01T10:00:00+08:00");
        assert_eq!(violation("MsgHeader_V1.0.0", "header", &ok), None);
        let request = json!({"transaction_id": "t", "search_request": [{"reference_id": "r",
            "timestamp": "2025-01-01T10:00:00Z", "locale": "en",
            "search_criteria": {"query_type": "idtype-value", "query": {"type": "UIN", "value": "1"}}}]});
        let found = violation("SearchRequest", "message", &request).unwrap();
        assert!(found.contains("/locale"), "{found}");
    }
}
