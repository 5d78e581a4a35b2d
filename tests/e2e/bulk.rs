//! `POST /$bulk/export` (CONTRACT §10): many registrants by identifier in one call, each with
//! its own status, consent applied per subject, and one access-log entry for the call.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::give_consent;
use crate::support::{
    admin, audit_event_where, consent_client, register_individual, unique, world, Api, NATIONAL_ID,
};
use crate::trial;

const EXPORT: &str = "/api/v2/spp/$bulk/export";

pub fn trials() -> Vec<Trial> {
    vec![
        trial("bulk::export_answers_each_identifier", each_identifier),
        trial("bulk::export_under_consent_one_log_entry", under_consent),
        trial("bulk::export_limits_are_422", limits),
        trial(
            "bulk::export_logs_the_identifiers_it_did_not_find",
            logs_not_found,
        ),
    ]
}

fn key(id: &str) -> String {
    format!("{NATIONAL_ID}|{id}")
}

fn statuses(reply: &Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn each_identifier() {
    let api = admin().await;
    let (a, b) = (unique("BXA"), unique("BXB"));
    register_individual(&api, &a).await;
    register_individual(&api, &b).await;
    let reply = api
        .post(
            EXPORT,
            json!({"type": "Individual", "identifiers": [key(&a), key(&unique("BXN")), "no-pipe", key(&b)],
                   "elements": ["name"]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(
        statuses(&reply.body),
        ["success", "not_found", "error", "success"]
    );
    assert_eq!(reply.body["total"], 4);
    assert_eq!(reply.body["successful"], 2);
    assert_eq!(reply.body["failed"], 2);
    let first = &reply.body["items"][0]["resource"];
    assert_eq!(first["identifier"][0]["value"], a.as_str());
    assert_eq!(first["name"]["family"], "Santos");
    assert!(
        first.get("birthDate").is_none(),
        "_elements applies: {first}"
    );
    assert_eq!(reply.body["items"][3]["identifier"], key(&b).as_str());
    // A Group export of an Individual's identifier finds nothing.
    let reply = api
        .post(EXPORT, json!({"type": "Group", "identifiers": [key(&a)]}))
        .await;
    reply.expect(200);
    assert_eq!(statuses(&reply.body), ["not_found"]);
}

/// A consent-bound client sees only the consented subject, within the consented fields; the
/// unknown and the unconsented get one answer; the call is ONE access-log entry naming what it
/// returned.
async fn under_consent() {
    let api = admin().await;
    let organization = unique("BulkOrg");
    let (seen, hidden) = (unique("BXS"), unique("BXH"));
    register_individual(&api, &seen).await;
    register_individual(&api, &hidden).await;
    give_consent(
        &api,
        &format!("Individual/{}", key(&seen)),
        &organization,
        "individual",
        json!(["name"]),
    )
    .await;
    let credentials = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["individual:read"],
    );
    let ngo = Api::new(&world().base).login(&credentials).await;
    let reply = ngo
        .post(
            EXPORT,
            json!({"type": "Individual", "identifiers": [key(&seen), key(&hidden), key(&unique("BXU"))]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(
        statuses(&reply.body),
        ["success", "access_denied", "access_denied"]
    );
    assert_eq!(reply.body["items"][1], {
        let mut unknown = reply.body["items"][2].clone();
        unknown["identifier"] = json!(key(&hidden));
        unknown
    });
    let resource = &reply.body["items"][0]["resource"];
    assert_eq!(resource["name"]["given"], "Maria");
    assert!(resource.get("birthDate").is_none(), "{resource}");
    let client = &credentials.client_id;
    let entry = audit_event_where(&api, &format!("client={client}"), |e| {
        e["subtype"] == "export"
    })
    .await;
    let named: Vec<&str> = entry["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"]["reference"].as_str())
        .collect();
    assert!(
        named.contains(&format!("Individual/{}", key(&seen)).as_str()),
        "{entry}"
    );
    let all = api
        .get(&format!("/api/v2/spp/AuditEvent?client={client}"))
        .await;
    assert_eq!(all.body["meta"]["total"], 1, "one entry: {}", all.text);
    // Without the scope, nothing is exported.
    ngo.post(
        EXPORT,
        json!({"type": "Group", "identifiers": [key(&seen)]}),
    )
    .await
    .expect(403);
}

async fn limits() {
    let api = admin().await;
    let many: Vec<String> = (0..101).map(|n| key(&format!("x{n}"))).collect();
    let reply = api
        .post(EXPORT, json!({"type": "Individual", "identifiers": many}))
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "identifiers");
    let reply = api
        .post(EXPORT, json!({"type": "Program", "identifiers": ["a|b"]}))
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "type");
}

/// The export's access-log entry names every identifier asked for: those returned, and those
/// not found (unknown, or not the caller's to see), marked so; an auditor asking about any of
/// them finds the export.
async fn logs_not_found() {
    let api = admin().await;
    let organization = unique("BulkAudit");
    let (seen, hidden, unknown) = (unique("BXS"), unique("BXH"), unique("BXU"));
    register_individual(&api, &seen).await;
    register_individual(&api, &hidden).await;
    give_consent(
        &api,
        &format!("Individual/{}", key(&seen)),
        &organization,
        "individual",
        json!(["name"]),
    )
    .await;
    let credentials = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["individual:read"],
    );
    let ngo = Api::new(&world().base).login(&credentials).await;
    ngo.post(
        EXPORT,
        json!({"type": "Individual", "identifiers": [key(&seen), key(&hidden), key(&unknown)]}),
    )
    .await
    .expect(200);
    let client = &credentials.client_id;
    for asked in [&hidden, &unknown] {
        let subject = format!("Individual/{}", key(asked)).replace('#', "%23");
        let entry = audit_event_where(&api, &format!("client={client}&subject={subject}"), |e| {
            e["subtype"] == "export"
        })
        .await;
        let entities = entry["entity"].as_array().unwrap();
        let described = |id: &str| {
            let reference = format!("Individual/{}", key(id));
            entities
                .iter()
                .find(|e| e["what"]["reference"] == reference.as_str())
                .map(|e| e.get("description").cloned())
        };
        assert_eq!(described(&seen), Some(None), "returned: {entry}");
        assert_eq!(
            described(&hidden),
            Some(Some(json!("not found"))),
            "{entry}"
        );
        assert_eq!(
            described(&unknown),
            Some(Some(json!("not found"))),
            "{entry}"
        );
    }
}
