//! Histories, past versions and chain verification for every kind of resource an auditor reads
//! (CONTRACT §6), paging through them, and what a consent-bound auditor may see of them.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{admin, individual_body, query_instant, register_individual, unique, Api};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "history::next_links_keep_since_and_at",
        next_links_keep_filters,
    )]
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
