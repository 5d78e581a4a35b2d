//! Identifiers are the data controller's to write (issue 8, items 1 and 3; README "Consent").
//! A client acting under consent can neither register people or groups nor add, remove or
//! replace an identifier, so it can neither hijack a person's identifier nor learn through a
//! clash that an unconsented person holds one; clients acting under a legal basis can, and
//! their repeated clashes raise an alert an auditor finds.

use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::{client, events_of, give_consent};
use crate::support::{
    admin, as_body, audit_events, create_client, individual_body, path_id, register_individual,
    unique, world, Api, Credentials, Server, NATIONAL_ID,
};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";
const PASSPORT: &str = "urn:openspp:vocab:id-type#passport";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "identity::a_consent_bound_client_cannot_register_whatever_the_identifier",
            registration_is_the_controllers,
        ),
        trial(
            "identity::a_consent_bound_client_cannot_add_remove_or_replace_identifiers",
            identifiers_are_the_controllers,
        ),
        trial(
            "identity::a_consent_bound_client_cannot_change_a_groups_identifiers",
            group_identifiers_are_the_controllers,
        ),
        trial(
            "identity::a_controller_still_changes_identifiers_and_sees_clashes",
            controller_changes_identifiers,
        ),
        trial(
            "identity::repeated_clashes_raise_one_alert_an_auditor_finds",
            clash_alert,
        ),
        trial(
            "identity::the_clash_alert_is_logged_without_identifiers_and_configurable",
            clash_alert_log,
        ),
    ]
}

fn group_body(value: &str) -> Value {
    json!({"identifier": [{"system": GROUP_SYSTEM, "value": value}], "groupType": "household",
           "name": "Santos"})
}

/// (a) Registering is the controller's act: a consent-bound client gets the same 403 for an
/// identifier nobody holds and for one an unconsented person holds, and nothing is written.
async fn registration_is_the_controllers() {
    let admin = admin().await;
    let held = unique("HELD");
    register_individual(&admin, &held).await;
    let free = unique("FREE");
    let ngo = client(&unique("Org"), "ngo").await;
    let taken = ngo
        .post("/api/v2/spp/Individual", individual_body(&held))
        .await;
    let unused = ngo
        .post("/api/v2/spp/Individual", individual_body(&free))
        .await;
    taken.expect(403);
    unused.expect(403);
    assert_eq!(
        taken.text, unused.text,
        "the answer tells nothing of the clash"
    );
    assert!(taken.body["detail"]
        .as_str()
        .unwrap()
        .contains("legal basis"));
    // Refused before the body is even looked at: a broken body gets the same 403.
    ngo.post("/api/v2/spp/Individual", json!({"nonsense": true}))
        .await
        .expect(403);
    admin
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &free)
        ))
        .await
        .expect(404);
    for value in [unique("HH"), unique("HH")] {
        ngo.post("/api/v2/spp/Group", group_body(&value))
            .await
            .expect(403);
    }
}

/// A person with a national id and a passport, and a consent for `organization` showing
/// `fields` of them; returns their national id and path.
async fn consented_person(admin: &Api, organization: &str, fields: Value) -> (String, String) {
    let id = unique("IDH");
    let mut body = individual_body(&id);
    body["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({"system": PASSPORT, "value": unique("P")}));
    admin.post("/api/v2/spp/Individual", body).await.expect(201);
    let path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &id));
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    give_consent(admin, &subject, organization, "individual", fields).await;
    (id, path)
}

/// (b) The hijack of issue 8: a client whose consent shows only the name (or everything)
/// PUTs away or replaces the national id, to register an impostor under it. Every change to
/// the identifier list is refused naming `identifier`, nothing is written, and the person
/// keeps the identifier; sending the identifiers as they are (in any order) still works.
async fn identifiers_are_the_controllers() {
    let admin = admin().await;
    for fields in [json!(["name"]), Value::Null] {
        let org = unique("Org");
        let (id, path) = consented_person(&admin, &org, fields).await;
        let ngo = client(&org, "ngo").await;
        let read = ngo.get(&path).await;
        read.expect(200);
        let body = as_body(&read.body);
        let identifiers = body["identifier"].as_array().unwrap().clone();
        let before = events_of(&id);
        let changes = [
            json!([identifiers[1]]), // removed
            json!([{"system": NATIONAL_ID, "value": unique("IMP")}, identifiers[1]]), // replaced
            json!([identifiers[0], identifiers[1],
                   {"system": "urn:openspp:vocab:id-type#tax_id", "value": unique("T")}]), // added
            json!([]),
        ];
        for identifier in changes {
            let mut changed = body.clone();
            changed["identifier"] = identifier;
            let refused = ngo.put(&path, changed, None).await;
            refused.expect(403);
            assert_eq!(refused.body["issue"][0]["expression"][0], "identifier");
        }
        assert_eq!(events_of(&id), before, "nothing was written");
        admin.get(&path).await.expect(200);
        // The same identifiers in another order, with a new name: allowed.
        let mut same = body.clone();
        same["identifier"] = json!([identifiers[1], identifiers[0]]);
        same["name"]["given"] = json!("Ana");
        ngo.put(&path, same, None).await.expect(200);
    }
}

async fn group_identifiers_are_the_controllers() {
    let admin = admin().await;
    let org = unique("Org");
    let value = unique("HHI");
    admin
        .post("/api/v2/spp/Group", group_body(&value))
        .await
        .expect(201);
    let path = format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &value));
    give_consent(
        &admin,
        &format!("Group/{GROUP_SYSTEM}|{value}"),
        &org,
        "group",
        Value::Null,
    )
    .await;
    let ngo = client(&org, "ngo").await;
    let read = ngo.get(&path).await;
    read.expect(200);
    let mut body = as_body(&read.body);
    body.as_object_mut().unwrap().remove("quantity");
    for identifier in [
        json!([{"system": GROUP_SYSTEM, "value": unique("HHX")}]),
        json!([]),
    ] {
        let mut changed = body.clone();
        changed["identifier"] = identifier;
        let refused = ngo.put(&path, changed, None).await;
        refused.expect(403);
        assert_eq!(refused.body["issue"][0]["expression"][0], "identifier");
    }
    body["name"] = json!("Reyes");
    ngo.put(&path, body, None).await.expect(200);
}

/// Legal-basis clients keep today's behaviour: they may replace identifiers, and a clash is a
/// 409 (they may see every registrant, so it discloses nothing). An identifier freed by
/// removal is registered again only by such a client.
async fn controller_changes_identifiers() {
    let admin = admin().await;
    let (old, new) = (unique("OLD"), unique("NEW"));
    let path = register_individual(&admin, &old).await;
    let mut body = as_body(&admin.get(&path).await.body);
    body["identifier"] = json!([{"system": NATIONAL_ID, "value": new}]);
    admin.put(&path, body, None).await.expect(200);
    let other = unique("OTHER");
    register_individual(&admin, &other).await;
    let clash = admin
        .post("/api/v2/spp/Individual", individual_body(&new))
        .await;
    clash.expect(409);
    assert_eq!(clash.body["issue"][0]["expression"][0], "identifier");
    // The freed identifier: a consent-bound client cannot take it, the controller can.
    client(&unique("Org"), "ngo")
        .await
        .post("/api/v2/spp/Individual", individual_body(&old))
        .await
        .expect(403);
    admin
        .post("/api/v2/spp/Individual", individual_body(&old))
        .await
        .expect(201);
}

/// A fresh legal-basis client with every core scope.
fn fresh_controller() -> Credentials {
    let mut scopes = Vec::new();
    for scope in crate::support::ALL_SCOPES {
        scopes.extend(["--scope", scope]);
    }
    create_client(&world().database_url, &scopes)
}

async fn clash(api: &Api, value: &str, times: usize) {
    for _ in 0..times {
        api.post("/api/v2/spp/Individual", individual_body(value))
            .await
            .expect(409);
    }
}

/// (c) Past the threshold (5 in an hour by default), one alert: an access-log entry of the
/// client, marking the alert, naming no identifier.
async fn clash_alert() {
    let admin = admin().await;
    let held = unique("CLASH");
    register_individual(&admin, &held).await;
    let credentials = fresh_controller();
    let client_id = credentials.client_id.clone();
    let prober = Api::new(&world().base).login(&credentials).await;
    clash(&prober, &held, 4).await;
    let query = format!("client={client_id}");
    // Four clashes: the refused writes are logged, no alert yet.
    let logged = audit_events(&admin, &query, 4).await;
    assert!(alerts(&logged).is_empty(), "{logged}");
    clash(&prober, &held, 3).await;
    let logged = audit_events(&admin, &query, 8).await;
    let found = alerts(&logged);
    assert_eq!(found.len(), 1, "one alert per window: {logged}");
    let alert = found[0];
    assert_eq!(alert["outcome"], "409");
    assert_eq!(alert["resource"], "Individual");
    assert_eq!(
        alert["agent"]["who"],
        format!("urn:openspp:api-client:{client_id}")
    );
    assert_eq!(alert["entity"], json!([]), "no identifier in the alert");
    assert!(!alert.to_string().contains(&held));
}

fn alerts(logged: &Value) -> Vec<&Value> {
    logged["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subtype"] == "identifier-clash-alert")
        .collect()
}

/// The server's log warns once, naming the client and no identifier; threshold and window are
/// settings (here 2 in a minute, on a second server against the same database).
async fn clash_alert_log() {
    let log_path = std::env::temp_dir().join(format!(
        "openspp-clash-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_logging(
        &world().database_url,
        &[
            ("OPENSPP_IDENTIFIER_CLASH_ALERT_THRESHOLD", "2"),
            ("OPENSPP_IDENTIFIER_CLASH_ALERT_WINDOW_SECS", "60"),
        ],
        log,
    );
    let admin = admin().await;
    let held = unique("LOGCLASH");
    register_individual(&admin, &held).await;
    let credentials = fresh_controller();
    let prober = Api::new(&server.base).login(&credentials).await;
    clash(&prober, &held, 3).await;
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("alert") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    let _ = std::fs::remove_file(&log_path);
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("alert")).collect();
    assert_eq!(warnings.len(), 1, "one warning at the threshold: {text}");
    assert!(warnings[0].contains("WARN"), "{text}");
    assert!(warnings[0].contains(&credentials.client_id), "{text}");
    assert!(!text.contains(&held), "no identifier in the log: {text}");
}
