//! Fields a client may not see (outside its consent's `field_access` or its own field filter)
//! can neither be changed by its writes nor probed by its searches (CONTRACT §5).

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::{client, events_of, give_consent};
use crate::support::{
    admin, as_body, create_client, path_id, register_individual, unique, world, Api, NATIONAL_ID,
};
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
        trial(
            "consent_fields::searches_cannot_probe_fields_the_consent_hides",
            search_oracle,
        ),
        trial(
            "consent_fields::searches_on_fields_the_client_filter_hides_are_refused",
            search_client_filter,
        ),
    ]
}

/// Registers a person with every field set, and records a consent for `organization` that
/// shows only `fields`; returns the person's identifier value and path.
async fn person_showing(admin: &Api, organization: &str, fields: Value) -> (String, String) {
    let id = unique("CF");
    let path = register_individual(admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    give_consent(admin, &subject, organization, "individual", fields).await;
    (id, path)
}

/// Records a consent of the group `value` for `organization` that shows only its name.
async fn group_showing_name(admin: &Api, value: &str, organization: &str) {
    let subject = format!("Group/{GROUP_SYSTEM}|{value}");
    give_consent(admin, &subject, organization, "group", json!(["name"])).await;
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
    group_showing_name(&admin, &value, &org).await;
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
        ("extension", json!({})),
    ] {
        let mut stating = body.clone();
        stating[field] = value;
        let refused = writer.put(&path, stating, None).await;
        refused.expect(403);
        assert_eq!(refused.body["issue"][0]["expression"][0], field);
    }
    assert_eq!(admin.get(&path).await.body["member"], full.body["member"]);
}

/// `meta.total` of a search by `reader`.
async fn total(reader: &Api, query: &str) -> Value {
    let reply = reader.get(query).await;
    reply.expect(200);
    reply.body["meta"]["total"].clone()
}

async fn search_oracle() {
    let admin = admin().await;
    let org = unique("Org");
    let (name_only, _) = person_showing(&admin, &org, json!(["name"])).await;
    let (with_birth, _) = person_showing(&admin, &org, json!(["name", "birthDate"])).await;
    let reader = client(&org, "ngo").await;
    let by_id = |id: &str| {
        format!(
            "/api/v2/spp/Individual?identifier={}",
            path_id(NATIONAL_ID, id)
        )
    };
    assert_eq!(total(&reader, &by_id(&name_only)).await, 1);
    assert_eq!(
        total(&reader, &format!("{}&name=santos", by_id(&name_only))).await,
        1
    );
    // The true and a false birth date answer alike: the field is not shown, so not searched.
    for condition in [
        "birthdate=eq1985-03-15",
        "birthdate=eq1985-03-16",
        "birthdate=ne1985-03-16",
        "gender=2",
        "gender=1",
        "address=mabini",
        "address=nowhere",
        "active=true",
        "_sort=birthdate",
        "_sort=-birthdate",
    ] {
        assert_eq!(
            total(&reader, &format!("{}&{condition}", by_id(&name_only))).await,
            0,
            "{condition}"
        );
    }
    // Where the consent shows the birth date, it is searched as usual.
    let with = by_id(&with_birth);
    assert_eq!(
        total(&reader, &format!("{with}&birthdate=eq1985-03-15")).await,
        1
    );
    assert_eq!(
        total(&reader, &format!("{with}&birthdate=eq1985-03-16")).await,
        0
    );
    assert_eq!(total(&reader, &format!("{with}&gender=2")).await, 0);
    // Groups: a name-only group consent does not let the group type be probed.
    let value = unique("HHS");
    admin
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": GROUP_SYSTEM, "value": value}], "groupType": "household", "name": "Probe"}),
        )
        .await
        .expect(201);
    group_showing_name(&admin, &value, &org).await;
    let group = format!(
        "/api/v2/spp/Group?identifier={}",
        path_id(GROUP_SYSTEM, &value)
    );
    assert_eq!(total(&reader, &format!("{group}&name=probe")).await, 1);
    for condition in ["groupType=household", "groupType=family", "_sort=groupType"] {
        assert_eq!(
            total(&reader, &format!("{group}&{condition}")).await,
            0,
            "{condition}"
        );
    }
}

async fn search_client_filter() {
    let credentials = create_client(
        &world().database_url,
        &[
            "--scope",
            "individual:all",
            "--scope",
            "group:all",
            "--field",
            "individual:name",
            "--field",
            "group:name",
        ],
    );
    let limited = Api::new(&world().base).login(&credentials).await;
    limited
        .get("/api/v2/spp/Individual?name=santos&_sort=name")
        .await
        .expect(200);
    for (query, parameter) in [
        ("/api/v2/spp/Individual?birthdate=ge1980-01-01", "birthdate"),
        ("/api/v2/spp/Individual?gender=2", "gender"),
        (
            "/api/v2/spp/Individual?name=santos&_sort=-birthdate",
            "_sort",
        ),
        ("/api/v2/spp/Group?groupType=household", "groupType"),
    ] {
        let refused = limited.get(query).await;
        refused.expect(403);
        assert_eq!(
            refused.body["issue"][0]["expression"][0], parameter,
            "{}",
            refused.text
        );
    }
}
