//! The request bodies' bounds, held against what the OpenAPI document says of them.

use serde_json::Value;
use utoipa::PartialSchema;

use crate::api::schema::*;
use crate::api::{
    consent, entitlement, group, individual, membership as program_membership, program,
};
use openspp_aggregates::bounds::items;

fn schema<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()
}

/// `#[schema(max_items = …)]` takes a literal only: this holds every documented bound equal
/// to the bound the server enforces, so the document cannot drift from the code.
#[test]
fn every_documented_list_bound_is_the_enforced_one() {
    let bounds = [
        (
            schema::<individual::IndividualResource>(),
            "identifier",
            items::IDENTIFIERS,
        ),
        (
            schema::<individual::IndividualResource>(),
            "telecom",
            items::TELECOM,
        ),
        (
            schema::<individual::IndividualResource>(),
            "address",
            items::ADDRESSES,
        ),
        (
            schema::<individual::IndividualResource>(),
            "groupMembership",
            items::GROUPS,
        ),
        (
            schema::<group::GroupResource>(),
            "identifier",
            items::IDENTIFIERS,
        ),
        (schema::<group::GroupResource>(), "member", items::MEMBERS),
        (
            schema::<group::GroupResource>(),
            "address",
            items::ADDRESSES,
        ),
        (
            schema::<program::ProgramResource>(),
            "identifier",
            items::IDENTIFIERS,
        ),
        (
            schema::<program_membership::MembershipResource>(),
            "identifier",
            1,
        ),
        (
            schema::<consent::ConsentBody>(),
            "recipients",
            items::RECIPIENTS,
        ),
        (
            schema::<consent::ConsentBody>(),
            "recipient_types",
            items::RECIPIENT_TYPES,
        ),
        (schema::<consent::ConsentBody>(), "scopes", items::SCOPES),
        (
            schema::<consent::ScopeBody>(),
            "field_access",
            items::FIELDS,
        ),
        (schema::<CodeableConcept>(), "coding", items::CODINGS),
        (
            schema::<entitlement::EntitlementResource>(),
            "items",
            items::ENTITLEMENT_ITEMS,
        ),
        (schema::<Address>(), "line", items::ADDRESS_LINES),
    ];
    for (schema, property, bound) in bounds {
        // A list property, or the list form of one that also takes other forms (`oneOf`).
        let documented = &schema["properties"][property];
        let list = documented["oneOf"]
            .as_array()
            .and_then(|forms| forms.iter().find(|f| f["type"] == "array"))
            .unwrap_or(documented);
        assert_eq!(list["maxItems"], bound, "maxItems of {property}");
    }
}

#[test]
fn a_list_past_its_bound_is_refused_naming_it() {
    let error = crate::api::json::parse::<Address>(
        serde_json::to_string(&serde_json::json!({"line": vec!["x"; items::ADDRESS_LINES + 1]}))
            .unwrap()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(error.status.as_u16(), 422);
    assert_eq!(error.expression.as_deref(), Some("line"));
    assert!(error.diagnostics.contains("at most 10 entries"));
    let bound = serde_json::json!({"line": vec!["x"; items::ADDRESS_LINES]}).to_string();
    assert!(crate::api::json::parse::<Address>(bound.as_bytes()).is_ok());
    let error = crate::api::json::parse::<consent::ScopeBody>(
        br#"{"resource_type": "individual", "purpose": "audit", "field_access": ["a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a"]}"#,
    )
    .unwrap_err();
    assert_eq!(error.expression.as_deref(), Some("field_access"));
    let null = br#"{"resource_type": "individual", "purpose": "audit", "field_access": null}"#;
    assert!(crate::api::json::parse::<consent::ScopeBody>(null).is_ok());
    // An in-kind entitlement's goods: bounded while parsed, before any item is looked at.
    let item = serde_json::json!({"product": {"reference": "Product/RICE-25KG"}});
    let goods = |count: usize| {
        serde_json::json!({"entitlementType": "inkind",
            "beneficiary": {"reference": "Individual/urn:x|1"},
            "cycle": {"reference": "Cycle/C"}, "items": vec![item.clone(); count]})
        .to_string()
    };
    let error = crate::api::json::parse::<entitlement::EntitlementResource>(
        goods(items::ENTITLEMENT_ITEMS + 1).as_bytes(),
    )
    .unwrap_err();
    assert_eq!(error.status.as_u16(), 422);
    assert_eq!(error.expression.as_deref(), Some("items"));
    assert!(error.diagnostics.contains("at most 1 entries"), "{error:?}");
    let bound = goods(items::ENTITLEMENT_ITEMS);
    assert!(crate::api::json::parse::<entitlement::EntitlementResource>(bound.as_bytes()).is_ok());
}

#[test]
fn body_dates_are_bounded_naming_the_field() {
    let error = crate::api::json::parse::<Period>(br#"{"start": "-4714-11-24"}"#).unwrap_err();
    assert_eq!(error.status.as_u16(), 422);
    assert_eq!(error.expression.as_deref(), Some("start"));
    assert!(error
        .diagnostics
        .contains("between 0001-01-01 and 9999-12-31"));
    let period = crate::api::json::parse::<Period>(br#"{"end": "9999-12-31"}"#).unwrap();
    assert_eq!(period.end().unwrap().to_string(), "9999-12-31");
}
