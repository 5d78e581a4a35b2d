//! Extension data on every answer (CONTRACT §8): shown on reads, searches, `_at`, history and
//! write answers in OpenSPP's shape, chosen with `_extensions` as OpenSPP chooses it; and
//! covered by consents and client field filters like any other field — all extension data as
//! `extension`, one extension as `extension.<name>`.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::consent_body;
use crate::extension::{expression, register, with_extension};
use crate::support::{
    admin, as_body, consent_client, create_client, path_id, query_instant, unique, world, Api,
    NATIONAL_ID,
};
use crate::trial;
use crate::vocabulary::temp_file;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "extension_fields::extension_data_is_on_every_answer_as_extensions_asks",
            every_answer,
        ),
        trial(
            "extension_fields::an_extension_a_consent_hides_is_absent_unwritable_and_unsearchable",
            consent_hides,
        ),
        trial(
            "extension_fields::a_client_filter_narrows_extension_data_like_any_field",
            client_filter,
        ),
    ]
}

/// A farmer's extension: its size is searchable, its crops are a searchable list.
pub const FARMER_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "farm_size": {"type": "number", "minimum": 0, "x-openspp-searchable": true},
    "crops": {"type": "array", "items": {"type": "string"}, "x-openspp-searchable": true},
    "organic": {"type": "boolean", "x-openspp-searchable": true},
    "notes": {"type": "string"}
  },
  "additionalProperties": false
}"#;

const HEALTH_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {"condition": {"type": "string", "x-openspp-searchable": true}}
}"#;

/// Registers an extension `name…` (made unique) of `resource` with `schema`; returns its
/// short key and URI.
pub fn extension_of(name: &str, resource: &str, schema: &str) -> (String, String) {
    let key = format!("{name}{}", uuid::Uuid::new_v4().simple());
    let uri = format!("urn:openspp:extension:{key}");
    let file = temp_file(&format!("{name}.json"), schema);
    register(&key, &uri, resource, &file, &[]).expect("registered");
    (key, uri)
}

fn individual_path(value: &str) -> String {
    format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, value))
}

fn by_identifier(value: &str) -> String {
    format!(
        "/api/v2/spp/Individual?identifier={}",
        path_id(NATIONAL_ID, value)
    )
}

async fn every_answer() {
    let api = admin().await;
    let (key, uri) = extension_of("farmer", "Individual", FARMER_SCHEMA);
    let (other, _) = extension_of("fisher", "Individual", HEALTH_SCHEMA);
    let id = unique("EXR");
    let data = json!({"farm_size": 2.5, "crops": ["rice"]});
    let expected = json!({key.clone(): {"url": uri, "farm_size": 2.5, "crops": ["rice"]}});

    // The answer to the write shows what was written.
    let created = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&id, json!({key.clone(): data})),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["extension"], expected, "{}", created.text);

    // OpenSPP's default: a read shows extensions only when asked.
    let path = individual_path(&id);
    let plain = api.get(&path).await;
    plain.expect(200);
    assert!(plain.body.get("extension").is_none(), "{}", plain.text);
    for asked in ["*", key.as_str(), uri.as_str(), &format!("{key},{other}")] {
        let read = api.get(&format!("{path}?_extensions={asked}")).await;
        read.expect(200);
        assert_eq!(read.body["extension"], expected, "_extensions={asked}");
    }
    // Asked for an extension that holds nothing here: shown, empty.
    let none = api.get(&format!("{path}?_extensions={other}")).await;
    assert_eq!(none.body["extension"], json!({}));
    // A name nothing is registered under is a mistake, not an empty answer.
    let unknown = api.get(&format!("{path}?_extensions=nosuch")).await;
    unknown.expect(400);
    assert_eq!(expression(&unknown), "_extensions");
    let program = api.get("/api/v2/spp/Program?_extensions=*").await;
    program.expect(400);

    // Searches.
    let found = api
        .get(&format!("{}&_extensions=*", by_identifier(&id)))
        .await;
    found.expect(200);
    assert_eq!(found.body["data"][0]["extension"], expected);
    let found = api.get(&by_identifier(&id)).await;
    assert!(found.body["data"][0].get("extension").is_none());

    // As it was at an instant.
    let instant = query_instant(plain.body["meta"]["lastUpdated"].as_str().unwrap());
    let then = api
        .get(&format!("{path}?_at={instant}&_extensions=*"))
        .await;
    then.expect(200);
    assert_eq!(then.body["extension"], expected);

    // History shows every extension (its job is to show what changed); the version that
    // recorded the data names it among its changes.
    let history = api.get(&format!("{path}/_history")).await;
    history.expect(200);
    let entries = history.body["entry"].as_array().unwrap();
    let recorded = entries
        .iter()
        .find(|e| e["event"]["type"] == "ExtensionRecorded")
        .expect("an ExtensionRecorded version");
    assert_eq!(recorded["resource"]["extension"], expected);
    let change = recorded["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "extension")
        .expect("the change names `extension`");
    assert_eq!(change["new"], expected);
    let narrowed = api
        .get(&format!("{path}/_history?_extensions={other}"))
        .await;
    narrowed.expect(200);
    assert!(!narrowed.text.contains("farm_size"), "{}", narrowed.text);
    // One version, as a read answered then.
    let version = recorded["versionId"].as_str().unwrap();
    let vread = api
        .get(&format!("{path}/_history/{version}?_extensions=*"))
        .await;
    vread.expect(200);
    assert_eq!(vread.body["extension"], expected);
    let vread = api.get(&format!("{path}/_history/{version}")).await;
    assert!(vread.body.get("extension").is_none());
    let first = api.get(&format!("{path}/_history/1?_extensions=*")).await;
    assert_eq!(first.body["extension"], json!({}), "nothing recorded yet");

    // A read sent back as it came (short keys, `url` inside) changes nothing.
    let read = api.get(&format!("{path}?_extensions=*")).await;
    let etag = read.header("etag").unwrap().to_owned();
    let written = api.put(&path, as_body(&read.body), Some(&etag)).await;
    written.expect(200);
    assert_eq!(
        written.header("etag"),
        Some(etag.as_str()),
        "no new version"
    );
    assert_eq!(written.body["extension"], expected);
    // A replacement that leaves `extension` out keeps it, and answers without it.
    let mut body = as_body(&plain.body);
    body["name"]["given"] = json!("Luz");
    let kept = api.put(&path, body, None).await;
    kept.expect(200);
    assert!(kept.body.get("extension").is_none());
    let read = api.get(&format!("{path}?_extensions={key}")).await;
    assert_eq!(read.body["extension"], expected);

    // Groups carry theirs the same way.
    let (rooms, rooms_uri) = extension_of(
        "dwelling",
        "Group",
        r#"{"type": "object", "properties": {"rooms": {"type": "integer", "x-openspp-searchable": true}}}"#,
    );
    let group = unique("EXG");
    let created = api
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": "urn:openspp:group", "value": group}],
                   "groupType": "household", "name": "Dwelling",
                   "extension": {rooms.clone(): {"rooms": 3}}}),
        )
        .await;
    created.expect(201);
    let shown = json!({rooms.clone(): {"url": rooms_uri, "rooms": 3}});
    assert_eq!(created.body["extension"], shown);
    let group_path = format!("/api/v2/spp/Group/{}", path_id("urn:openspp:group", &group));
    let read = api.get(&format!("{group_path}?_extensions=*")).await;
    assert_eq!(read.body["extension"], shown);
    assert!(api.get(&group_path).await.body.get("extension").is_none());
    let search = |rooms_value: u32| {
        format!(
            "/api/v2/spp/Group?identifier={}&extension.{rooms}.rooms={rooms_value}&_extensions=*",
            path_id("urn:openspp:group", &group)
        )
    };
    let found = api.get(&search(3)).await;
    found.expect(200);
    assert_eq!(found.body["meta"]["total"], 1);
    assert_eq!(found.body["data"][0]["extension"], shown);
    assert_eq!(api.get(&search(4)).await.body["meta"]["total"], 0);
}

/// Records, as the administrator, a consent of the individual `value` for `organization`
/// showing `fields`; returns the consent as recorded.
async fn consent_showing(admin: &Api, value: &str, organization: &str, fields: Value) -> Value {
    let mut body = consent_body(
        &format!("Individual/{NATIONAL_ID}|{value}"),
        "specific",
        &[organization],
        &[],
    );
    body["scopes"][0]["field_access"] = fields;
    let reply = admin.post("/api/v2/spp/Consent", body).await;
    reply.expect(201);
    reply.body
}

/// `meta.total` of a search.
async fn total(reader: &Api, query: &str) -> Value {
    let reply = reader.get(query).await;
    reply.expect(200);
    reply.body["meta"]["total"].clone()
}

async fn consent_hides() {
    let admin = admin().await;
    let (farmer, farmer_uri) = extension_of("farmer", "Individual", FARMER_SCHEMA);
    let (health, health_uri) = extension_of("health", "Individual", HEALTH_SCHEMA);
    let id = unique("EXC");
    let path = individual_path(&id);
    admin
        .post(
            "/api/v2/spp/Individual",
            with_extension(
                &id,
                json!({farmer.clone(): {"farm_size": 3}, health.clone(): {"condition": "diabetes"}}),
            ),
        )
        .await
        .expect(201);
    let org = unique("Org");
    // Named by its short key; recorded by its URI.
    let consent = consent_showing(
        &admin,
        &id,
        &org,
        json!(["name", format!("extension.{farmer}")]),
    )
    .await;
    assert_eq!(
        consent["scopes"][0]["fields"],
        json!(["name", format!("extension.{farmer_uri}")])
    );
    assert_eq!(consent["scopes"][0]["field_access"], "custom");
    assert_eq!(consent["scopes"][0]["include_extensions"], true);
    let unknown = consent_body(
        &format!("Individual/{NATIONAL_ID}|{id}"),
        "specific",
        &[&org],
        &[],
    );
    let mut unknown = unknown;
    unknown["scopes"][0]["field_access"] = json!(["extension.nosuch"]);
    let refused = admin.post("/api/v2/spp/Consent", unknown).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "scopes[0].field_access");

    let credentials = consent_client(
        &world().database_url,
        &org,
        "ngo",
        &["individual:all", "consent:all", "audit:read"],
    );
    let reader = Api::new(&world().base).login(&credentials).await;
    let farm = |size: i64| json!({farmer.clone(): {"url": farmer_uri, "farm_size": size}});

    // Absent from reads, searches, `_at` and history.
    let read = reader.get(&format!("{path}?_extensions=*")).await;
    read.expect(200);
    assert_eq!(read.body["extension"], farm(3), "{}", read.text);
    let asked = reader.get(&format!("{path}?_extensions={health}")).await;
    assert_eq!(asked.body["extension"], json!({}));
    let found = reader
        .get(&format!("{}&_extensions=*", by_identifier(&id)))
        .await;
    assert_eq!(found.body["data"][0]["extension"], farm(3));
    let instant = query_instant(read.body["meta"]["lastUpdated"].as_str().unwrap());
    let then = reader
        .get(&format!("{path}?_at={instant}&_extensions=*"))
        .await;
    assert_eq!(then.body["extension"], farm(3));
    let history = reader.get(&format!("{path}/_history")).await;
    history.expect(200);
    for answer in [&read, &asked, &found, &then, &history] {
        assert!(!answer.text.contains("diabetes"), "{}", answer.text);
        assert!(!answer.text.contains(&health_uri), "{}", answer.text);
    }

    // Stating it is refused whatever the value; the visible one may be written.
    let mut body = as_body(&read.body);
    for condition in [
        json!({"condition": "diabetes"}),
        json!({"condition": "none"}),
        Value::Null,
    ] {
        body["extension"][&health] = condition;
        let refused = reader.put(&path, body.clone(), None).await;
        refused.expect(403);
        assert_eq!(expression(&refused), format!("extension.{health}"));
    }
    body["extension"] = json!({farmer.clone(): {"farm_size": 4}});
    let written = reader.put(&path, body, None).await;
    written.expect(200);
    assert_eq!(written.body["extension"], farm(4));
    let full = admin.get(&format!("{path}?_extensions=*")).await;
    assert_eq!(full.body["extension"][&health]["condition"], "diabetes");
    assert_eq!(full.body["extension"][&farmer]["farm_size"], 4);

    // A hidden property is never a filter: true and false values count alike (nothing).
    let search = |parameter: String| format!("{}&{parameter}", by_identifier(&id));
    for condition in ["diabetes", "asthma"] {
        let query = search(format!("extension.{health}.condition={condition}"));
        assert_eq!(total(&reader, &query).await, 0, "{condition}");
        assert_eq!(
            total(&admin, &query).await,
            i64::from(condition == "diabetes")
        );
    }
    let shown = search(format!("extension.{farmer}.farm_size=4"));
    assert_eq!(total(&reader, &shown).await, 1);
    assert_eq!(
        total(&reader, &search(format!("extension.{farmer}.farm_size=3"))).await,
        0
    );

    // A consent that shows no extension: no `extension` at all.
    let bare = unique("EXC");
    admin
        .post(
            "/api/v2/spp/Individual",
            with_extension(&bare, json!({farmer.clone(): {"farm_size": 1}})),
        )
        .await
        .expect(201);
    consent_showing(&admin, &bare, &org, json!(["name"])).await;
    let read = reader
        .get(&format!("{}?_extensions=*", individual_path(&bare)))
        .await;
    read.expect(200);
    assert!(read.body.get("extension").is_none(), "{}", read.text);
    let mut body = as_body(&read.body);
    body["extension"] = json!({farmer.clone(): {"farm_size": 2}});
    let refused = reader.put(&individual_path(&bare), body, None).await;
    refused.expect(403);
    assert_eq!(expression(&refused), "extension");
}

async fn client_filter() {
    let admin = admin().await;
    let (farmer, farmer_uri) = extension_of("farmer", "Individual", FARMER_SCHEMA);
    let (health, _) = extension_of("health", "Individual", HEALTH_SCHEMA);
    let id = unique("EXF");
    admin
        .post(
            "/api/v2/spp/Individual",
            with_extension(
                &id,
                json!({farmer.clone(): {"farm_size": 5}, health.clone(): {"condition": "asthma"}}),
            ),
        )
        .await
        .expect(201);
    let filtered = format!("individual:extension.{farmer}");
    let credentials = create_client(
        &world().database_url,
        &[
            "--scope",
            "individual:all",
            "--field",
            "individual:name",
            "--field",
            &filtered,
        ],
    );
    let limited = Api::new(&world().base).login(&credentials).await;
    let read = limited
        .get(&format!("{}?_extensions=*", individual_path(&id)))
        .await;
    read.expect(200);
    assert_eq!(
        read.body["extension"],
        json!({farmer.clone(): {"url": farmer_uri, "farm_size": 5}})
    );
    assert!(!read.text.contains("asthma"));
    // Searching on what the filter hides is refused, naming the parameter.
    let parameter = format!("extension.{health}.condition");
    let refused = limited
        .get(&format!("/api/v2/spp/Individual?{parameter}=asthma"))
        .await;
    refused.expect(403);
    assert_eq!(expression(&refused), parameter);
    limited
        .get(&format!(
            "/api/v2/spp/Individual?extension.{farmer}.farm_size=5"
        ))
        .await
        .expect(200);
    // Registering: what the filter hides cannot be written either.
    let body = |extension: Value| {
        json!({"identifier": [{"system": NATIONAL_ID, "value": unique("EXF")}],
               "name": {"family": "Cruz", "given": "Jose"}, "extension": extension})
    };
    let refused = limited
        .post(
            "/api/v2/spp/Individual",
            body(json!({health.clone(): {"condition": "none"}})),
        )
        .await;
    refused.expect(403);
    assert_eq!(expression(&refused), format!("extension.{health}"));
    let created = limited
        .post(
            "/api/v2/spp/Individual",
            body(json!({farmer.clone(): {"farm_size": 1}})),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["extension"][&farmer]["farm_size"], 1);
    // A filter naming an extension nobody registered is refused by the CLI.
    let error = crate::vocabulary::operator(&[
        "client",
        "update",
        &credentials.client_id,
        "--field",
        "individual:extension.nosuch",
    ])
    .expect_err("refused");
    assert!(error.contains("nosuch"), "{error}");
}
