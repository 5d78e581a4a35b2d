//! The access log as an auditor searches it (CONTRACT §6): the outcome each request really had,
//! every access to a subject found whichever identifier was used, consent reads, and paging
//! that keeps the search's filters.

use libtest_mimic::Trial;
use serde_json::Value;

use crate::support::{
    admin, audit_events, create_client, path_id, query_instant, register_individual, unique, world,
    Api, Credentials, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "access_log::next_links_keep_client_subject_and_date",
        next_links_keep_filters,
    )]
}

/// A client acting under a legal basis with `scopes`, logged in.
async fn client(scopes: &[&str]) -> (Credentials, Api) {
    let mut args = Vec::new();
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let credentials = create_client(&world().database_url, &args);
    let api = Api::new(&world().base).login(&credentials).await;
    (credentials, api)
}

/// The subject references an entry names.
fn entities(entry: &Value) -> Vec<String> {
    entry["entity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"]["reference"].as_str().unwrap().to_owned())
        .collect()
}

async fn next_links_keep_filters() {
    let admin = admin().await;
    let (credentials, reader) = client(&["individual:all"]).await;
    let (id, other) = (unique("ALN"), unique("ALO"));
    let path = register_individual(&admin, &id).await;
    let other_path = register_individual(&admin, &other).await;
    reader.get(&path).await.expect(200);
    let since = chrono::Utc::now().to_rfc3339();
    for _ in 0..3 {
        reader.get(&path).await.expect(200);
    }
    reader.get(&other_path).await.expect(200);
    let client = credentials.client_id;
    audit_events(&admin, &format!("client={client}"), 5).await;

    let subject = format!("Individual/{}", path_id(NATIONAL_ID, &id));
    let mut url = Some(format!(
        "/api/v2/spp/AuditEvent?client={client}&subject={subject}&date=ge{}&_count=2",
        query_instant(&since)
    ));
    let mut seen = Vec::new();
    while let Some(current) = url {
        let page = admin.get(&current).await;
        page.expect(200);
        assert_eq!(page.body["meta"]["total"], 3, "{current}");
        for entry in page.body["data"].as_array().unwrap() {
            assert_eq!(
                entry["agent"]["who"],
                format!("urn:openspp:api-client:{client}")
            );
            assert_eq!(entities(entry), [format!("Individual/{NATIONAL_ID}|{id}")]);
            assert!(entry["recorded"].as_str().unwrap() >= since.as_str());
            seen.push(entry["source"]["requestId"].as_str().unwrap().to_owned());
        }
        url = page.body["links"]["next"].as_str().map(str::to_owned);
        assert!(seen.len() <= 3, "pages overlap or do not end");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "every entry once");
}
