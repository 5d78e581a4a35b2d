//! Fields a client may not see (outside its consent's `field_access` or its own field filter)
//! cannot be changed by its writes (CONTRACT §5).

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::{client, consent_body, events_of};
use crate::support::{admin, path_id, register_individual, unique, Api, NATIONAL_ID};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "consent_fields::a_name_only_put_keeps_the_fields_it_cannot_see",
            name_only_individual_put,
        ),
        trial(
            "consent_fields::a_name_only_group_put_keeps_the_group_as_it_is",
            name_only_group_put,
        ),
    ]
}

/// Registers a person with every field set, and records a consent for `organization` that
/// shows only `fields`; returns the person's identifier value and path.
async fn person_showing(admin: &Api, organization: &str, fields: Value) -> (String, String) {
    let id = unique("CF");
    let path = register_individual(admin, &id).await;
    let mut body = consent_body(
        &format!("Individual/{NATIONAL_ID}|{id}"),
        "specific",
        &[organization],
        &[],
    );
    body["scopes"][0]["field_access"] = fields;
    admin.post("/api/v2/spp/Consent", body).await.expect(201);
    (id, path)
}

/// What a read answered, as a body to send back.
fn as_body(read: &Value) -> Value {
    let mut body = read.clone();
    body.as_object_mut().unwrap().remove("meta");
    body
}

async fn name_only_individual_put() {
    let admin = admin().await;
    let org = unique("Org");
    let (id, path) = person_showing(&admin, &org, json!(["name"])).await;
    let original = admin.get(&path).await.body;
    let writer = client(&org, "ngo").await;
    let read = writer.get(&path).await;
    read.expect(200);
    assert!(read.body.get("birthDate").is_none(), "{}", read.text);
    let etag = read.header("etag").unwrap().to_owned();
    let version: u64 = etag.trim_matches('"').parse().unwrap();
    // The client sends back what it saw, with a new given name.
    let mut body = as_body(&read.body);
    body["name"]["given"] = json!("Ana");
    let written = writer.put(&path, body.clone(), Some(&etag)).await;
    written.expect(200);
    assert_eq!(
        written.header("etag"),
        Some(format!("\"{}\"", version + 1).as_str()),
        "one event: the name; nothing about the fields it cannot see"
    );
    let full = admin.get(&path).await;
    assert_eq!(full.body["name"]["given"], "Ana");
    for field in ["birthDate", "gender", "telecom", "address", "active"] {
        assert!(!original[field].is_null(), "{field} was set");
        assert_eq!(full.body[field], original[field], "{field} was kept");
    }
    // Stating a hidden field is refused, whatever the value (here: the stored one).
    let before = events_of(&id);
    for hidden in [
        original["birthDate"].clone(),
        json!("1990-01-01"),
        Value::Null,
    ] {
        let mut stating = body.clone();
        stating["birthDate"] = hidden;
        let refused = writer.put(&path, stating, None).await;
        refused.expect(403);
        assert_eq!(refused.body["issue"][0]["expression"][0], "birthDate");
    }
    assert_eq!(events_of(&id), before, "nothing was written");
}

async fn name_only_group_put() {
    let admin = admin().await;
    let org = unique("Org");
    let member = unique("GMF");
    register_individual(&admin, &member).await;
    let value = unique("HHF");
    let path = format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &value));
    admin
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": GROUP_SYSTEM, "value": value}], "groupType": "family",
                   "name": "Before",
                   "address": [{"city": "Cebu"}],
                   "member": [{"entity": {"reference": format!("Individual/{NATIONAL_ID}|{member}")}}]}),
        )
        .await
        .expect(201);
    let mut consent = consent_body(
        &format!("Group/{GROUP_SYSTEM}|{value}"),
        "specific",
        &[&org],
        &[],
    );
    consent["scopes"] = json!([{"resource_type": "group", "field_access": ["name"], "purpose": "service_delivery"}]);
    admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    let writer = client(&org, "ngo").await;
    let read = writer.get(&path).await;
    read.expect(200);
    assert!(read.body.get("member").is_none(), "{}", read.text);
    let mut body = as_body(&read.body);
    body["name"] = json!("After");
    writer.put(&path, body.clone(), None).await.expect(200);
    let full = admin.get(&path).await;
    assert_eq!(full.body["name"], "After");
    assert_eq!(full.body["groupType"], "family");
    assert_eq!(full.body["address"][0]["city"], "Cebu");
    assert_eq!(full.body["member"].as_array().unwrap().len(), 1);
    assert_eq!(full.body["member"][0]["inactive"], false);
    for (field, value) in [
        ("member", json!([])),
        ("groupType", json!("family")),
        ("active", json!(false)),
    ] {
        let mut stating = body.clone();
        stating[field] = value;
        let refused = writer.put(&path, stating, None).await;
        refused.expect(403);
        assert_eq!(refused.body["issue"][0]["expression"][0], field);
    }
    assert_eq!(admin.get(&path).await.body["member"], full.body["member"]);
}
