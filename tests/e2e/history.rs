//! Histories, past versions and chain verification for every kind of resource an auditor reads
//! (CONTRACT §6), paging through them, and what a consent-bound auditor may see of them.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::group::{member, new_group};
use crate::support::{
    admin, consent_client, individual_body, path_id, query_instant, register_individual, unique,
    world, Api, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "history::next_links_keep_since_and_at",
            next_links_keep_filters,
        ),
        trial("history::group_history_vread_at_and_verify", group_history),
        trial(
            "history::consent_history_vread_at_and_verify",
            consent_history,
        ),
        trial(
            "history::unconsented_auditor_gets_the_not_found_answer",
            unconsented_auditor,
        ),
        trial(
            "history::field_limited_auditor_sees_only_consented_fields",
            field_limited_auditor,
        ),
    ]
}

/// The entries' `versionId`s, newest first.
fn version_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["versionId"].as_str().unwrap().to_owned())
        .collect()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

/// Follows `next` from `first` to the end; returns every page's version ids, and checks that
/// every page reports the same total.
async fn follow(api: &Api, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut url = Some(first.to_owned());
    let mut total = None;
    while let Some(current) = url {
        let page = api.get(&current).await;
        page.expect(200);
        assert_eq!(
            *total.get_or_insert(page.body["total"].clone()),
            page.body["total"],
            "{current}"
        );
        pages.push(version_ids(&page.body));
        url = next_link(&page.body);
        assert!(pages.len() < 10, "next links do not end");
    }
    pages
}

/// The provenance time of version `version` in a full history.
fn recorded(bundle: &Value, version: &str) -> String {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["versionId"] == version)
        .unwrap()["provenance"]["recorded"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn next_links_keep_filters() {
    let api = admin().await;
    let id = unique("NXT");
    let path = register_individual(&api, &id).await;
    for given in ["Ana", "Bea", "Cleo"] {
        let mut body = individual_body(&id);
        body["name"]["given"] = json!(given);
        api.put(&path, body, None).await.expect(200);
    }
    let full = api.get(&format!("{path}/_history")).await;
    full.expect(200);
    assert_eq!(version_ids(&full.body), ["5", "4", "3", "2", "1"]);
    let since = query_instant(&recorded(&full.body, "3"));
    let at = query_instant(&recorded(&full.body, "4"));
    assert_eq!(
        follow(
            &api,
            &format!("{path}/_history?_since={since}&_at={at}&_count=1")
        )
        .await,
        [vec!["4"], vec!["3"]],
        "both filters hold on every page"
    );
    assert_eq!(
        follow(&api, &format!("{path}/_history?_count=2&_since={since}")).await,
        [vec!["5", "4"], vec!["3"]]
    );
    assert_eq!(
        follow(&api, &format!("{path}/_history?_at={at}&_count=3")).await,
        [vec!["4", "3", "2"], vec!["1"]]
    );
}

async fn group_history() {
    let api = admin().await;
    let (first, second) = (unique("GHA"), unique("GHB"));
    register_individual(&api, &first).await;
    register_individual(&api, &second).await;
    let (_, path) = new_group(&api, json!([member(&first, "head")])).await;
    let created = api.get(&path).await;
    created.expect(200);
    let version = created.body["meta"]["versionId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(&format!("{path}/$add-member"), member(&second, "member"))
        .await
        .expect(201);

    let bundle = api.get(&format!("{path}/_history")).await;
    bundle.expect(200);
    assert_eq!(bundle.body["type"], "history");
    let newest = &bundle.body["entry"][0];
    assert_eq!(newest["event"]["type"], "MemberAdded");
    assert_eq!(newest["event"]["description"], "Member added");
    let fields: Vec<&str> = newest["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["member", "quantity"]);
    assert_eq!(newest["changes"][1]["old"], 1);
    assert_eq!(newest["changes"][1]["new"], 2);
    assert_eq!(
        newest["provenance"]["client"],
        format!("urn:openspp:api-client:{}", world().admin.client_id)
    );
    assert_eq!(
        bundle.body["entry"].as_array().unwrap().last().unwrap()["event"]["type"],
        "GroupRegistered"
    );

    // A version is the group exactly as a read showed it then.
    let old = api.get(&format!("{path}/_history/{version}")).await;
    old.expect(200);
    assert_eq!(old.body, created.body);
    assert_eq!(old.header("etag"), Some(format!("\"{version}\"").as_str()));
    api.get(&format!("{path}/_history/99")).await.expect(404);

    let then = query_instant(&recorded(&bundle.body, &version));
    let at = api.get(&format!("{path}?_at={then}")).await;
    at.expect(200);
    assert_eq!(at.body["quantity"], 1);
    assert_eq!(at.body["meta"]["versionId"], version);
    api.get(&format!("{path}?_at=2000-01-01T00:00:00Z"))
        .await
        .expect(404);
    api.get(&format!("{path}?_at=last-week")).await.expect(400);

    let verified = api.get(&format!("{path}/_history/$verify")).await;
    verified.expect(200);
    assert_eq!(verified.body["valid"], true);
    assert_eq!(verified.body["versions"], bundle.body["total"]);
}

async fn consent_history() {
    let api = admin().await;
    let id = unique("CH");
    register_individual(&api, &id).await;
    let given = api
        .post(
            "/api/v2/spp/Consent",
            json!({"subject": format!("Individual/{NATIONAL_ID}|{id}"), "recipient_mode": "category",
                   "recipient_types": ["ngo"], "expiry_date": "2090-01-01",
                   "scopes": [{"resource_type": "individual", "field_access": null, "purpose": "service_delivery"}]}),
        )
        .await;
    given.expect(201);
    let consent = given.body["consent_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v2/spp/Consent/{consent}");
    let first = api.get(&path).await;
    first.expect(200);
    api.post(
        &format!("{path}/$renew"),
        json!({"expiry_date": "2095-01-01"}),
    )
    .await
    .expect(200);
    api.post(&format!("{path}/$revoke"), json!({"reason": "asked"}))
        .await
        .expect(200);

    let bundle = api.get(&format!("{path}/_history")).await;
    bundle.expect(200);
    assert_eq!(bundle.body["total"], 3);
    assert_eq!(version_ids(&bundle.body), ["3", "2", "1"]);
    let entries = bundle.body["entry"].as_array().unwrap();
    assert_eq!(entries[0]["event"]["type"], "ConsentWithdrawn");
    // A withdrawal changes the status, and with it whether the consent is in force.
    let withdrawal: Vec<(String, Value, Value)> = entries[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_owned(),
                c["old"].clone(),
                c["new"].clone(),
            )
        })
        .collect();
    assert_eq!(
        withdrawal,
        [
            ("is_valid".to_owned(), json!(true), json!(false)),
            ("status".to_owned(), json!("renewed"), json!("withdrawn")),
        ]
    );
    assert_eq!(entries[1]["event"]["type"], "ConsentRenewed");
    assert!(entries[1]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["field"] == "expiry_date" && c["new"] == "2095-01-01"));
    assert_eq!(entries[2]["event"]["type"], "ConsentGiven");
    assert_eq!(
        entries[2]["resource"]["subject"],
        format!("Individual/{NATIONAL_ID}|{id}")
    );
    let paged = follow(&api, &format!("{path}/_history?_count=2")).await;
    assert_eq!(paged, [vec!["3", "2"], vec!["1"]]);

    let old = api.get(&format!("{path}/_history/1")).await;
    old.expect(200);
    assert_eq!(
        old.body, first.body,
        "version 1 is the consent as read then"
    );
    api.get(&format!("{path}/_history/9")).await.expect(404);
    let then = query_instant(&recorded(&bundle.body, "2"));
    let at = api.get(&format!("{path}?_at={then}")).await;
    at.expect(200);
    assert_eq!(at.body["status"], "renewed");
    assert_eq!(at.body["expiry_date"], "2095-01-01");
    api.get(&format!("{path}?_at=2000-01-01T00:00:00Z"))
        .await
        .expect(404);

    let verified = api.get(&format!("{path}/_history/$verify")).await;
    verified.expect(200);
    assert_eq!(verified.body["valid"], true);
    assert_eq!(verified.body["versions"], 3);
}

/// A consent-bound auditor (the default client kind) with the scopes to read histories.
async fn consent_bound_auditor(organization: &str) -> Api {
    let credentials = consent_client(
        &world().database_url,
        organization,
        "ngo",
        &["individual:read", "audit:read"],
    );
    Api::new(&world().base).login(&credentials).await
}

async fn unconsented_auditor() {
    let api = admin().await;
    let id = unique("UA");
    let path = register_individual(&api, &id).await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Changed");
    api.put(&path, body, None).await.expect(200);
    let auditor = consent_bound_auditor(&unique("Org")).await;
    let unknown = format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, &unique("NOBODY"))
    );
    for suffix in [
        "/_history",
        "/_history/1",
        "/_history/$verify",
        "?_at=2999-01-01T00:00:00Z",
    ] {
        let existing = auditor.get(&format!("{path}{suffix}")).await;
        existing.expect(404);
        let missing = auditor.get(&format!("{unknown}{suffix}")).await;
        missing.expect(404);
        assert_eq!(existing.body, missing.body, "{suffix}");
    }
}

async fn field_limited_auditor() {
    let api = admin().await;
    let org = unique("Org");
    let id = unique("FL");
    let path = register_individual(&api, &id).await;
    let mut body = individual_body(&id);
    body["birthDate"] = json!("1986-04-16");
    api.put(&path, body.clone(), None).await.expect(200);
    body["name"]["given"] = json!("Later");
    api.put(&path, body, None).await.expect(200);
    api.post(
        "/api/v2/spp/Consent",
        json!({"subject": format!("Individual/{NATIONAL_ID}|{id}"), "recipient_mode": "specific",
               "recipients": [org], "expiry_date": "2099-01-01",
               "scopes": [{"resource_type": "individual", "field_access": ["name"], "purpose": "audit"}]}),
    )
    .await
    .expect(201);
    let full = api.get(&format!("{path}/_history")).await;
    assert_eq!(version_ids(&full.body), ["4", "3", "2", "1"]);
    assert_eq!(full.body["entry"][1]["event"]["type"], "BirthDateChanged");

    let auditor = consent_bound_auditor(&org).await;
    let bundle = auditor.get(&format!("{path}/_history")).await;
    bundle.expect(200);
    // Every version is listed (that it changed, and when, are not hidden), but the birth-date
    // change is a neutral one: its name alone would tell what is hidden (issue 8, item 10).
    assert_eq!(version_ids(&bundle.body), ["4", "3", "2", "1"]);
    assert_eq!(bundle.body["total"], 4);
    let neutral = &bundle.body["entry"][1];
    assert_eq!(
        neutral["event"],
        json!({"type": "Changed", "description": "Changed"})
    );
    assert_eq!(neutral["changes"], json!([]));
    for entry in bundle.body["entry"].as_array().unwrap() {
        assert_ne!(entry["event"]["type"], "BirthDateChanged");
        for hidden in ["birthDate", "gender", "telecom", "address"] {
            assert!(entry["resource"].get(hidden).is_none(), "{entry}");
            assert!(
                entry["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["field"] != hidden),
                "{entry}"
            );
        }
    }
    let newest = &bundle.body["entry"][0];
    assert_eq!(newest["event"]["type"], "NameChanged");
    assert_eq!(newest["changes"][0]["new"]["given"], "Later");
    assert_eq!(
        follow(&auditor, &format!("{path}/_history?_count=2")).await,
        [vec!["4", "3"], vec!["2", "1"]]
    );

    let old = auditor.get(&format!("{path}/_history/3")).await;
    old.expect(200);
    assert!(old.body.get("birthDate").is_none(), "{}", old.text);
    assert_eq!(old.body["name"]["given"], "Maria");
    let now = auditor
        .get(&format!("{path}?_at=2999-01-01T00:00:00Z"))
        .await;
    now.expect(200);
    assert!(now.body.get("birthDate").is_none(), "{}", now.text);
    assert_eq!(now.body["name"]["given"], "Later");
    let verified = auditor.get(&format!("{path}/_history/$verify")).await;
    verified.expect(200);
    assert_eq!(verified.body["valid"], true);
}
