//! Extension fields: registered by the operator's CLI while the server runs, validated against
//! their JSON Schema (422 naming the path), recorded in the registrant's own events, listed in
//! `/metadata`; unregistered extension data is refused, never silently dropped.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{
    admin, individual_body, path_id, sql_scalar, unique, world, Api, NATIONAL_ID,
};
use crate::trial;
use crate::vocabulary::{operator, temp_file};

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "extension::unregistered_extension_data_is_422_not_dropped",
            unregistered,
        ),
        trial(
            "extension::registered_data_is_validated_recorded_and_listed",
            registered,
        ),
        trial("extension::a_bad_registration_is_refused", bad_registration),
        trial("extension::groups_carry_their_extensions", groups),
        trial(
            "extension::extension_data_is_bounded_in_size_depth_and_lists",
            bounded,
        ),
    ]
}

/// `openspp extension add` with `extra` arguments.
pub fn register(
    name: &str,
    uri: &str,
    resource: &str,
    schema: &str,
    extra: &[&str],
) -> Result<Value, String> {
    let mut args = vec![
        "extension",
        "add",
        "--name",
        name,
        "--uri",
        uri,
        "--resource",
        resource,
        "--schema",
        schema,
    ];
    args.extend_from_slice(extra);
    operator(&args)
}

pub fn with_extension(national_id: &str, extension: Value) -> Value {
    let mut body = individual_body(national_id);
    body["extension"] = extension;
    body
}

pub fn expression(reply: &crate::support::Reply) -> String {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn unregistered() {
    let api = admin().await;
    let uri = format!(
        "urn:openspp:extension:nobody-{}",
        uuid::Uuid::new_v4().simple()
    );
    let reply = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&unique("EXT"), json!({uri.clone(): {"farm_size": 3}})),
        )
        .await;
    reply.expect(422);
    assert_eq!(expression(&reply), format!("extension.{uri}"));
    let malformed = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&unique("EXT"), json!(["farm_size"])),
        )
        .await;
    malformed.expect(422);
    assert_eq!(expression(&malformed), "extension");
}

const FARMER_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "farm_size": {"type": "number", "minimum": 0},
    "crops": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["farm_size"],
  "additionalProperties": false
}"#;

async fn registered() {
    let api = admin().await;
    let key = format!("farmer{}", uuid::Uuid::new_v4().simple());
    let uri = format!("urn:openspp:extension:{key}");
    let schema = temp_file("farmer.json", FARMER_SCHEMA);
    let added = register(
        &key,
        &uri,
        "Individual",
        &schema,
        &["--actor", "integrator"],
    )
    .expect("registered");
    assert_eq!(added["changed"], true);
    assert_eq!(added["servers"]["confirmed"], added["servers"]["running"]);

    // Validated at once by the running server, the path named.
    let invalid = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&unique("EXT"), json!({uri.clone(): {"farm_size": "big"}})),
        )
        .await;
    invalid.expect(422);
    assert_eq!(expression(&invalid), format!("extension.{uri}.farm_size"));
    let missing = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&unique("EXT"), json!({uri.clone(): {"crops": ["rice", 7]}})),
        )
        .await;
    missing.expect(422);
    let stray = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(
                &unique("EXT"),
                json!({uri.clone(): {"farm_size": 1, "cows": 2}}),
            ),
        )
        .await;
    stray.expect(422);
    assert_eq!(expression(&stray), format!("extension.{uri}.cows"));

    // Valid data is recorded in the individual's own events and state.
    let national_id = unique("EXT");
    api.post(
        "/api/v2/spp/Individual",
        with_extension(
            &national_id,
            json!({uri.clone(): {"url": uri, "farm_size": 2.5, "crops": ["rice"]}}),
        ),
    )
    .await
    .expect(201);
    let stored = sql_scalar(
        &world().database_url,
        &format!(
            "SELECT payload->'ExtensionRecorded'->'value' FROM events \
             WHERE event_type = 'ExtensionRecorded' AND payload->'ExtensionRecorded'->>'url' = '{uri}'"
        ),
    );
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        stored,
        json!({"farm_size": 2.5, "crops": ["rice"]}),
        "`url` is not stored"
    );
    let state = sql_scalar(
        &world().database_url,
        &format!(
            "SELECT state->'extension'->'{uri}'->>'farm_size' FROM individual_view \
             WHERE state->'extension' ? '{uri}'"
        ),
    );
    assert_eq!(state, "2.5");
    let path = format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, &national_id)
    );
    let history = api.get(&format!("{path}/_history")).await;
    history.expect(200);
    assert!(history.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"]["type"] == "ExtensionRecorded"));
    let verified = api.get(&format!("{path}/_history/$verify")).await;
    assert_eq!(verified.body["valid"], true);
    // A replacement that leaves the extension out keeps it; the short key names it too.
    let read = api.get(&path).await;
    let etag = read.header("etag").unwrap().to_owned();
    let mut body = individual_body(&national_id);
    body["name"]["given"] = json!("Maria Luisa");
    api.put(&path, body, Some(&etag)).await.expect(200);
    let kept = sql_scalar(
        &world().database_url,
        &format!("SELECT count(*) FROM individual_view WHERE state->'extension' ? '{uri}'"),
    );
    assert_eq!(kept, "1");
    let mut body = individual_body(&national_id);
    body["extension"] = json!({key.clone(): {"farm_size": 4}});
    api.put(&path, body, None).await.expect(200);
    let changed = sql_scalar(
        &world().database_url,
        &format!(
            "SELECT state->'extension'->'{uri}'->>'farm_size' FROM individual_view \
             WHERE state->'extension' ? '{uri}'"
        ),
    );
    assert_eq!(changed, "4");

    // Registered for individuals only.
    let group = api
        .post(
            "/api/v2/spp/Group",
            json!({"type": "Group", "identifier": [{"system": "urn:openspp:group", "value": unique("G")}],
                   "groupType": "household", "name": "Farm", "extension": {uri.clone(): {"farm_size": 1}}}),
        )
        .await;
    group.expect(422);
    assert_eq!(expression(&group), format!("extension.{uri}"));

    // Listed in /metadata and by the CLI.
    let metadata = Api::new(&world().base).get("/api/v2/spp/metadata").await;
    let listed = metadata.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == uri.as_str())
        .expect("listed in /metadata")
        .clone();
    assert_eq!(listed["applies_to"], json!(["Individual"]));
    assert_eq!(listed["fields"], json!(["crops", "farm_size"]));

    // Registering the same again changes nothing; retiring stops new data at once.
    let again = register(&key, &uri, "Individual", &schema, &[]).expect("idempotent");
    assert_eq!(again["changed"], false);
    operator(&["extension", "retire", "--uri", &uri]).expect("retired");
    let retired = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&unique("EXT"), json!({uri.clone(): {"farm_size": 1}})),
        )
        .await;
    retired.expect(422);
    let metadata = Api::new(&world().base).get("/api/v2/spp/metadata").await;
    assert!(!metadata.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["url"] == uri.as_str()));
    let listed = operator(&["extension", "list"]);
    assert!(listed.is_ok());
}

async fn bad_registration() {
    let uri = format!(
        "urn:openspp:extension:bad-{}",
        uuid::Uuid::new_v4().simple()
    );
    for (schema, complaint) in [
        (r#"{"type": "string"}"#, "--schema"),
        (
            r#"{"type": "object", "properties": {"a": {"type": 5}}}"#,
            "--schema",
        ),
        (r#"{"type": "object""#, "line"),
    ] {
        let file = temp_file("schema.json", schema);
        let error = register("bad", &uri, "Individual", &file, &[]).expect_err("refused");
        assert!(error.contains(complaint), "{schema}: {error}");
    }
    let file = temp_file("schema.json", r#"{"type": "object"}"#);
    let error = register("bad", &uri, "Program", &file, &[]).expect_err("refused");
    assert!(error.contains("--resource"), "{error}");
    let error = operator(&["extension", "retire", "--uri", &uri]).expect_err("unknown");
    assert!(error.contains("not found"), "{error}");
}

async fn groups() {
    let api = admin().await;
    let uri = format!(
        "urn:openspp:extension:dwelling-{}",
        uuid::Uuid::new_v4().simple()
    );
    let schema = temp_file(
        "dwelling.json",
        r#"{"type": "object", "properties": {"rooms": {"type": "integer", "minimum": 1}}}"#,
    );
    register("dwelling", &uri, "Group", &schema, &[]).expect("registered");
    let group = |rooms: Value| {
        json!({"type": "Group", "identifier": [{"system": "urn:openspp:group", "value": unique("G")}],
               "groupType": "household", "name": "Dwelling", "extension": {uri.clone(): {"rooms": rooms}}})
    };
    let refused = api.post("/api/v2/spp/Group", group(json!(0))).await;
    refused.expect(422);
    assert_eq!(expression(&refused), format!("extension.{uri}.rooms"));
    api.post("/api/v2/spp/Group", group(json!(3)))
        .await
        .expect(201);
    let state = sql_scalar(
        &world().database_url,
        &format!(
            "SELECT state->'extension'->'{uri}'->>'rooms' FROM group_view \
             WHERE state->'extension' ? '{uri}'"
        ),
    );
    assert_eq!(state, "3");
    // Registered for groups only.
    let person = api
        .post(
            "/api/v2/spp/Individual",
            with_extension(&unique("EXT"), json!({uri.clone(): {"rooms": 2}})),
        )
        .await;
    person.expect(422);
}

async fn bounded() {
    let api = admin().await;
    let key = format!("survey{}", uuid::Uuid::new_v4().simple());
    let uri = format!("urn:openspp:extension:{key}");
    let schema = temp_file(
        "survey.json",
        r#"{"type": "object", "properties": {"plots": {"type": "array", "maxItems": 3}}}"#,
    );
    register(&key, &uri, "Individual", &schema, &[]).expect("registered");
    let refused = |data: Value| {
        let api = api.clone();
        let key = key.clone();
        async move {
            let reply = api
                .post(
                    "/api/v2/spp/Individual",
                    with_extension(&unique("EXB"), json!({key: data})),
                )
                .await;
            reply.expect(422);
            expression(&reply)
        }
    };
    // A list is bounded by its schema's `maxItems`, else by the server's default (100).
    assert_eq!(
        refused(json!({"plots": [1, 2, 3, 4]})).await,
        format!("extension.{uri}.plots")
    );
    let many: Vec<u32> = (0..101).collect();
    assert_eq!(
        refused(json!({"tags": many})).await,
        format!("extension.{uri}.tags")
    );
    // Nesting deeper than 8 levels, and more than 16 KiB.
    let deep = (0..8).fold(json!("leaf"), |inner, _| json!({"a": inner}));
    assert_eq!(
        refused(json!({"deep": deep})).await,
        format!("extension.{uri}.deep{}", ".a".repeat(7))
    );
    assert_eq!(
        refused(json!({"note": "x".repeat(16 * 1024)})).await,
        format!("extension.{uri}")
    );
    // Within the bounds, accepted.
    let fine = (0..6).fold(json!("leaf"), |inner, _| json!({"a": inner}));
    let enough: Vec<u32> = (0..100).collect();
    api.post(
        "/api/v2/spp/Individual",
        with_extension(
            &unique("EXB"),
            json!({key.clone(): {"plots": [1, 2, 3], "tags": enough, "deep": fine}}),
        ),
    )
    .await
    .expect(201);
}
