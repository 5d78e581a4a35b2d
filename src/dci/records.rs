//! Registry records in DCI's shape (`reg_records`: `Member` / `Group`, identifiers as
//! `identifier_type` + `identifier_value`), made from what the REST rendering showed. Built
//! from the rendered resource, never from the stored state, so a field the caller's consent or
//! field filter hides cannot appear here either.

use serde_json::{json, Map, Value};

use crate::dci::idtypes::IdTypes;
use crate::dci::query::Target;

const CONTEXT: &str = "https://schema.spdci.org/extensions/social/v1/";

pub fn record(target: Target, rendered: &Value, ids: &IdTypes) -> Value {
    match target {
        Target::Individual => member(rendered, ids),
        Target::Group => group(rendered, ids),
    }
}

fn identifiers(rendered: &Value, ids: &IdTypes) -> Vec<Value> {
    rendered["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| {
            let system = id["system"].as_str().unwrap_or_default();
            json!({
                "@type": "Identifier",
                "identifier_type": ids.dci_type(system),
                "identifier_value": id["value"],
            })
        })
        .collect()
}

/// `Individual/{system}|{value}` as a DCI identifier.
fn reference_identifier(reference: &str, ids: &IdTypes) -> Value {
    let key = reference.split_once('/').map_or(reference, |(_, key)| key);
    let (system, value) = key.split_once('|').unwrap_or(("", key));
    json!({"@type": "Identifier", "identifier_type": ids.dci_type(system), "identifier_value": value})
}

fn put(into: &mut Map<String, Value>, key: &str, value: Value) {
    if !value.is_null() {
        into.insert(key.to_owned(), value);
    }
}

fn member(rendered: &Value, ids: &IdTypes) -> Value {
    let mut person = Map::new();
    person.insert("@type".into(), json!("SRPerson"));
    person.insert("identifier".into(), json!(identifiers(rendered, ids)));
    let name = &rendered["name"];
    if name.is_object() {
        let mut dci_name = Map::new();
        dci_name.insert("@type".into(), json!("Name"));
        put(&mut dci_name, "surname", name["family"].clone());
        put(&mut dci_name, "given_name", name["given"].clone());
        put(&mut dci_name, "second_name", name["middle"].clone());
        put(&mut dci_name, "prefix", name["prefix"].clone());
        put(&mut dci_name, "suffix", name["suffix"].clone());
        person.insert("name".into(), Value::Object(dci_name));
    }
    let sex = match rendered["gender"]["coding"][0]["code"].as_str() {
        Some("1") => json!("male"),
        Some("2") => json!("female"),
        Some("0") | Some("9") => json!("unknown"),
        Some(other) => json!(other),
        None => Value::Null,
    };
    put(&mut person, "sex", sex);
    put(&mut person, "birth_date", rendered["birthDate"].clone());
    if let Some(address) = rendered["address"].as_array().and_then(|a| a.first()) {
        person.insert("address".into(), address_of(address));
    }
    if let Some(phone) = rendered["telecom"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["system"] == "phone")
    {
        put(&mut person, "phone_number", phone["value"].clone());
    }
    let mut record = Map::new();
    record.insert("@context".into(), json!(CONTEXT));
    record.insert("@type".into(), json!("spdci:Member"));
    record.insert(
        "member_identifier".into(),
        json!(identifiers(rendered, ids)),
    );
    record.insert("demographic_info".into(), Value::Object(person));
    let groups: Vec<Value> = rendered["groupMembership"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["group"]["reference"].as_str())
        .map(|r| reference_identifier(r, ids))
        .collect();
    if !groups.is_empty() {
        record.insert("group_identifier".into(), json!(groups));
    }
    finish(record, rendered)
}

/// What every record ends with: whether it is active, and when it last changed.
fn finish(mut record: Map<String, Value>, rendered: &Value) -> Value {
    put(&mut record, "is_active", rendered["active"].clone());
    put(
        &mut record,
        "last_updated",
        rendered["meta"]["lastUpdated"].clone(),
    );
    Value::Object(record)
}

fn address_of(address: &Value) -> Value {
    let mut dci = Map::new();
    dci.insert("@type".into(), json!("Address"));
    let street: Vec<&str> = address["line"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !street.is_empty() {
        dci.insert("street_address".into(), json!(street.join(", ")));
    }
    put(&mut dci, "city", address["city"].clone());
    put(&mut dci, "region", address["state"].clone());
    put(&mut dci, "postal_code", address["postalCode"].clone());
    put(&mut dci, "country", address["country"].clone());
    Value::Object(dci)
}

fn group(rendered: &Value, ids: &IdTypes) -> Value {
    let mut record = Map::new();
    record.insert("@context".into(), json!(CONTEXT));
    record.insert("@type".into(), json!("spdci:Group"));
    record.insert("group_identifier".into(), json!(identifiers(rendered, ids)));
    put(&mut record, "group_type", rendered["groupType"].clone());
    put(&mut record, "group_name", rendered["name"].clone());
    if let Some(members) = rendered["member"].as_array() {
        let list: Vec<Value> = members
            .iter()
            .filter(|m| m["inactive"] != true)
            .filter_map(|m| {
                let reference = m["entity"]["reference"].as_str()?;
                Some(json!({
                    "@type": "Member",
                    "member_identifier": [reference_identifier(reference, ids)],
                    "role": m["role"]["coding"][0]["code"],
                }))
            })
            .collect();
        record.insert("group_size".into(), json!(list.len()));
        record.insert("member_list".into(), json!(list));
    }
    if let Some(address) = rendered["address"].as_array().and_then(|a| a.first()) {
        record.insert("place".into(), address_of(address));
    }
    finish(record, rendered)
}
