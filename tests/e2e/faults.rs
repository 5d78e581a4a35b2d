//! Database faults (issue 8, item 9): a connection the database drops is 503 with
//! `Retry-After`, never 500, and the server recovers by itself; a write whose events committed
//! is never reported as failed, whatever happens to the reads that follow the commit.
//!
//! Faults are made deterministic: a `psql` session locks the table the request will read next,
//! the test waits until the request's backend waits for that lock, and terminates exactly that
//! backend (`pg_terminate_backend`), as a database restart or a network cut would.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::give_consent;
use crate::support::{
    consent_client, create_client, individual_body, register_individual, sql_scalar, unique, Api,
    HeldTransaction, Server, TestDatabase, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "faults::a_dropped_database_connection_is_503_with_retry_after",
            dropped_connection,
        ),
        trial(
            "faults::a_committed_write_is_answered_2xx_when_the_reads_after_it_fail",
            committed_write_survives,
        ),
        trial(
            "faults::a_dropped_connection_in_a_batch_bundle_is_503_not_422",
            bundle_entry_dropped,
        ),
    ]
}

/// A server of its own on a database of its own: locking its tables must not stall the shared
/// server's tests.
async fn isolated() -> (TestDatabase, Server, Api) {
    isolated_with(&["--scope", "individual:all"]).await
}

async fn isolated_with(scopes: &[&str]) -> (TestDatabase, Server, Api) {
    let database = TestDatabase::create("openspp_e2e_faults");
    let server = Server::start(&database.url, &[]);
    let credentials = create_client(&database.url, scopes);
    let api = Api::new(&server.base).login(&credentials).await;
    (database, server, api)
}

/// Terminates the backends that wait for `held`'s lock while running a query that mentions
/// `query_part`; returns how many it terminated.
fn terminate_waiting(url: &str, query_part: &str) -> String {
    sql_scalar(
        url,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND cardinality(pg_blocking_pids(pid)) > 0 AND query LIKE '%{query_part}%'"
        ),
    )
}

async fn dropped_connection() {
    let (database, _server, api) = isolated().await;
    let id = unique("DB");
    let path = register_individual(&api, &id).await;
    api.get(&path).await.expect(200);
    let held = HeldTransaction::begin(
        &database.url,
        "LOCK TABLE individual_view IN ACCESS EXCLUSIVE MODE;",
    )
    .await;
    let reader = api.clone();
    let read = {
        let path = path.clone();
        tokio::spawn(async move { reader.get(&path).await })
    };
    held.wait_until_blocking().await;
    assert_eq!(terminate_waiting(&database.url, "individual_view"), "1");
    let reply = read.await.unwrap();
    reply.expect(503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert_eq!(reply.body["issue"][0]["code"], "transient");
    drop(held);
    // The pool replaces the lost connection: the next request is served.
    api.get(&path).await.expect(200);
}

/// A consent-bound client's change of an individual reads after the commit what its answer
/// shows: the households it may see (a caller under a legal basis reads them before, beside
/// the individual's row, so nothing of its answer can fail after the commit).
async fn committed_write_survives() {
    let (database, server, admin) =
        isolated_with(&["--scope", "individual:all", "--scope", "consent:all"]).await;
    let id = unique("CW");
    let path = register_individual(&admin, &id).await;
    let organization = unique("Org");
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    give_consent(&admin, &subject, &organization, "individual", Value::Null).await;
    let api = Api::new(&server.base)
        .login(&consent_client(
            &database.url,
            &organization,
            "ngo",
            &["individual:all"],
        ))
        .await;
    let before = api.get(&path).await;
    before.expect(200);
    let held = HeldTransaction::begin(
        &database.url,
        "LOCK TABLE group_members_view IN ACCESS EXCLUSIVE MODE;",
    )
    .await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Committed");
    let writer = api.clone();
    let write = {
        let path = path.clone();
        tokio::spawn(async move { writer.put(&path, body, Some("\"2\"")).await })
    };
    held.wait_until_blocking().await;
    assert_eq!(terminate_waiting(&database.url, "group_members_view"), "1");
    let reply = write.await.unwrap();
    // The events committed before the failed read: the answer is 2xx, with the new version.
    reply.expect(200);
    assert_eq!(reply.header("etag"), Some("\"3\""));
    assert_eq!(reply.body["identifier"][0]["value"], id);
    drop(held);
    // The projector waited for the lock too; once released, the read model catches up.
    let mut after = api.get(&path).await;
    for _ in 0..100 {
        if after.header("etag") == Some("\"3\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = api.get(&path).await;
    }
    after.expect(200);
    assert_eq!(after.header("etag"), Some("\"3\""));
    assert_eq!(after.body["name"]["given"], "Committed");
}

/// A `$batch` whose entry's connection the database drops while the entry looks up a
/// household's member: a `transaction` answers 503 with `Retry-After` (the server could not do
/// it just now; nothing the Bundle asks is wrong), not the 422 of an entry that failed, and
/// applies nothing; a `batch` answers that entry 503, as it would be alone. Sent again, both
/// are applied.
async fn bundle_entry_dropped() {
    let (database, _server, api) =
        isolated_with(&["--scope", "individual:all", "--scope", "group:all"]).await;
    let prefix = unique("BF");
    let head = format!("{prefix}-1");
    register_individual(&api, &head).await;
    let single = format!("{prefix}-3");
    register_individual(&api, &single).await;
    let spouse = "urn:uuid:00000000-0000-4000-8000-000000000002";
    let household = |members: &[&str]| {
        let member: Vec<Value> = members
            .iter()
            .map(|reference| json!({"entity": {"reference": reference}}))
            .collect();
        json!({"type": "Group", "identifier": [{"system": "urn:openspp:group",
                                                 "value": format!("{prefix}-G{}", members.len())}],
               "groupType": "household", "name": "Faulty Household", "member": member})
    };
    let head_reference = format!("Individual/{NATIONAL_ID}|{head}");
    let single_reference = format!("Individual/{NATIONAL_ID}|{single}");
    // A transaction: the spouse and the household of both; a batch: a household of another
    // (its one entry waits for the locks once, and is the one dropped).
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": spouse, "resource": individual_body(&format!("{prefix}-2")),
         "request": {"method": "POST", "url": "Individual"}},
        {"resource": household(&[&head_reference, spouse]),
         "request": {"method": "POST", "url": "Group"}},
    ]});
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": household(&[&single_reference]), "request": {"method": "POST", "url": "Group"}},
    ]});
    let traces = || {
        sql_scalar(
            &database.url,
            &format!(
                "SELECT count(*) FROM events WHERE payload::text LIKE '%{prefix}-2%' \
                 OR payload::text LIKE '%{prefix}-G%'"
            ),
        )
    };
    // Sends `body` while the tables a member is looked up in are held locked, and drops the
    // connection of whatever waits for them, as a database restart would.
    let dropped = |body: Value| {
        let api = api.clone();
        let url = database.url.clone();
        async move {
            let held = HeldTransaction::begin(
                &url,
                "LOCK TABLE individual_view, identifier_claims IN ACCESS EXCLUSIVE MODE;",
            )
            .await;
            let sent = tokio::spawn(async move { api.post("/api/v2/spp/$batch", body).await });
            held.wait_until_blocking().await;
            assert_ne!(terminate_waiting(&url, ""), "0");
            let reply = sent.await.unwrap();
            drop(held);
            reply
        }
    };

    let reply = dropped(transaction.clone()).await;
    reply.expect(503);
    assert_eq!(reply.header("retry-after"), Some("1"), "{}", reply.text);
    assert_eq!(
        reply.body["issue"][0]["code"], "transient",
        "{}",
        reply.text
    );
    let diagnostics = reply.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("entry[") && diagnostics.contains("applied nothing"),
        "{diagnostics}"
    );
    assert_eq!(
        traces(),
        "0",
        "a transaction that answered 503 wrote nothing"
    );
    api.post("/api/v2/spp/$batch", transaction)
        .await
        .expect(200);

    let reply = dropped(batch.clone()).await;
    reply.expect(200);
    assert_eq!(reply.body["type"], "batch-response", "{}", reply.text);
    let answered = &reply.body["entry"][0]["response"];
    assert_eq!(
        answered["status"], "503 Service Unavailable",
        "{}",
        reply.text
    );
    assert_eq!(
        answered["outcome"]["issue"][0]["code"], "transient",
        "{}",
        reply.text
    );
    let again = api.post("/api/v2/spp/$batch", batch).await;
    again.expect(200);
    assert_eq!(
        again.body["entry"][0]["response"]["status"], "201 Created",
        "{}",
        again.text
    );
}
