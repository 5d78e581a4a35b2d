//! The access log as an auditor searches it (CONTRACT §6): the outcome each request really had,
//! every access to a subject found whichever identifier was used, consent reads, and paging
//! that keeps the search's filters.

use std::collections::HashMap;

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use crate::group::{member, new_group};
use crate::program::{enrol, new_program};
use crate::support::{
    admin, audit_events, create_client, individual_body, minted_path, path_id, query_instant,
    register_individual, unique, world, Api, Credentials, NATIONAL_ID,
};
use crate::trial;

const PASSPORT: &str = "urn:openspp:vocab:id-type#passport";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "access_log::next_links_keep_client_subject_and_date",
            next_links_keep_filters,
        ),
        trial("access_log::outcomes_are_the_answered_ones", outcomes),
        trial(
            "access_log::subject_search_finds_accesses_by_any_identifier",
            any_identifier,
        ),
        trial("access_log::consent_reads_are_logged", consent_reads),
        trial("access_log::consent_writes_are_logged", consent_writes),
        trial(
            "access_log::refused_writes_are_logged_with_their_outcome",
            refused_writes,
        ),
        trial(
            "access_log::consent_filter_is_answered_by_its_index",
            consent_filter_indexed,
        ),
        trial(
            "access_log::values_are_stored_as_given_whatever_they_hold",
            values_as_given,
        ),
    ]
}

/// The writer stores every value of an entry as it was given: separators, quotes,
/// backslashes, braces, line ends, the word NULL and empty strings included (it sends rows in
/// `COPY`'s text format, where each of these means something unless escaped).
async fn values_as_given() {
    use openspp::access_log::{all, AccessEntry, AccessLog, AccessQuery};
    let pool = sqlx::PgPool::connect(&world().database_url).await.unwrap();
    let client = unique("client\t\\x\"{,}");
    let hostile = |tag: &str| format!("{tag}:a,\"b\"}}{{\\c\td\ne\rf NULL");
    let mut entry = AccessEntry::new(
        &client,
        &hostile("organization"),
        &hostile("request"),
        "Individual",
        "read",
        "R",
    );
    entry.at = "2026-12-02T01:16:57.073234Z".parse().unwrap();
    entry.subjects = vec![
        hostile("subject"),
        "NULL".into(),
        String::new(),
        "\\N".into(),
    ];
    entry.streams = vec![hostile("stream")];
    entry.not_found = vec![hostile("missing")];
    entry.consent_ids = vec![hostile("consent"), "c2".into()];
    entry.purpose = Some(hostile("purpose"));
    entry.fields = Some(vec!["name".into(), hostile("field")]);
    entry.outcome = 404;
    let (log, writer) = AccessLog::start(pool.clone());
    log.record(entry.clone()).await;
    drop(log);
    writer.await.expect("the writer drains its queue and ends");
    let rows = all(
        &pool,
        &AccessQuery {
            client_id: Some(client.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "one entry for {client:?}");
    let row = &rows[0];
    assert_eq!(row.at, entry.at);
    assert_eq!(row.client_id, client);
    assert_eq!(row.organization, entry.organization);
    assert_eq!(row.request_id, entry.request_id);
    assert_eq!(
        (
            row.resource_type.as_str(),
            row.interaction.as_str(),
            row.action.as_str()
        ),
        ("Individual", "read", "R")
    );
    assert_eq!(row.subjects, entry.subjects);
    assert_eq!(row.subjects_not_found, entry.not_found);
    assert_eq!(row.consent_ids, entry.consent_ids);
    assert_eq!(row.purpose, entry.purpose);
    assert_eq!(row.fields, entry.fields);
    assert_eq!(row.outcome, 404);
    let streams: Vec<String> =
        sqlx::query_scalar("SELECT subject_streams FROM access_log WHERE client_id = $1")
            .bind(&client)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(streams, entry.streams);
    // Found by a consent it names, through the same filter a consent's summary uses.
    let by_consent = all(
        &pool,
        &AccessQuery {
            consent_id: Some(hostile("consent")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(by_consent.iter().any(|r| r.client_id == client));
    pool.close().await;
}

/// A consent's `$access-summary` reads the entries naming it through the GIN index
/// `access_log_consents`, not a scan of the whole log, which at national scale holds every
/// read ever made. With sequential scans priced out, a filter the index cannot answer (such
/// as `$1 = ANY(consent_ids)`) still plans as a scan: this tells the two apart.
async fn consent_filter_indexed() {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&world().database_url)
        .await
        .unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut connection)
        .await
        .unwrap();
    let query = openspp::access_log::AccessQuery {
        consent_id: Some(unique("consent")),
        ..Default::default()
    };
    let plan = openspp::access_log::plan(&mut connection, &query)
        .await
        .unwrap();
    assert!(plan.contains("access_log_consents"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
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

/// A GET sent with our own request id, so its access-log entry can be told apart.
async fn get_as(api: &Api, path: &str, request_id: &str) -> u16 {
    api.send(Method::GET, path, None, &[("X-Request-Id", request_id)])
        .await
        .status
        .as_u16()
}

/// Sends each `(path, status, interaction)` as `client`, each with its own request id, and
/// returns their access-log entries in order, having checked each was logged with the status
/// the request answered and the interaction it was.
async fn logged_requests(
    admin: &Api,
    (credentials, api): &(Credentials, Api),
    requests: &[(String, u16, &str)],
) -> Vec<Value> {
    let mut ids = Vec::new();
    for (path, status, _) in requests {
        let request_id = unique("req");
        assert_eq!(get_as(api, path, &request_id).await, *status, "{path}");
        ids.push(request_id);
    }
    let mut logged = by_request(admin, credentials, requests.len()).await;
    requests
        .iter()
        .zip(&ids)
        .map(|((path, status, interaction), request_id)| {
            let entry = logged
                .remove(request_id)
                .unwrap_or_else(|| panic!("{path} is logged"));
            assert_eq!(entry["outcome"], status.to_string(), "{path}");
            assert_eq!(entry["subtype"], *interaction, "{path}");
            entry
        })
        .collect()
}

/// Every logged access of `client`, by request id.
async fn by_request(admin: &Api, client: &Credentials, expected: usize) -> HashMap<String, Value> {
    let query = format!("client={}&_count=100", client.client_id);
    let events = audit_events(admin, &query, expected).await;
    events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"]["requestId"].as_str().unwrap().to_owned(),
                e.clone(),
            )
        })
        .collect()
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

async fn outcomes() {
    let admin = admin().await;
    let auditor = client(&["individual:read", "program_membership:read", "audit:read"]).await;
    let id = unique("OUT");
    let path = register_individual(&admin, &id).await;
    let (_, program) = new_program(&admin, "individual").await;
    let enrolled = enrol(&admin, &program, &id, "enrolled").await;
    enrolled.expect(201);
    let membership = minted_path(&enrolled);

    let requests = [
        (format!("{path}/_history/99"), 404, "vread"),
        (format!("{path}/_history/1"), 200, "vread"),
        (format!("{path}?_at=2000-01-01T00:00:00Z"), 404, "read"),
        (format!("{path}?_at=yesterday"), 400, "read"),
        (format!("{path}?_at=2999-01-01T00:00:00Z"), 200, "read"),
        (format!("{path}/_history?_count=0"), 400, "history"),
        (format!("{path}/_history/$verify"), 200, "verify"),
        (format!("{membership}/_history/1"), 200, "vread"),
        (format!("{membership}/_history/99"), 404, "vread"),
        (format!("{membership}/_history/$verify"), 200, "verify"),
        (
            format!("{membership}?_at=2000-01-01T00:00:00Z"),
            404,
            "read",
        ),
        (format!("{membership}/_history?_since=soon"), 400, "history"),
    ];
    logged_requests(&admin, &auditor, &requests).await;
}

async fn any_identifier() {
    let admin = admin().await;
    let (credentials, reader) = client(&[
        "individual:read",
        "individual:search",
        "group:read",
        "program_membership:read",
    ])
    .await;
    let (id, passport) = (unique("ANY"), unique("PP"));
    let mut body = individual_body(&id);
    body["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({"system": PASSPORT, "value": passport}));
    admin.post("/api/v2/spp/Individual", body).await.expect(201);
    let (household, group) = new_group(&admin, json!([member(&id, "head")])).await;
    let (_, program) = new_program(&admin, "individual").await;
    let enrolled = enrol(&admin, &program, &id, "enrolled").await;
    enrolled.expect(201);
    let membership = minted_path(&enrolled);

    let by_passport = format!("/api/v2/spp/Individual/{}", path_id(PASSPORT, &passport));
    let accesses = [
        ("read by passport", by_passport),
        (
            "search by passport",
            format!(
                "/api/v2/spp/Individual?identifier={}",
                path_id(PASSPORT, &passport)
            ),
        ),
        ("group read naming the member", group),
        ("membership read naming the beneficiary", membership),
    ];
    let mut ids = Vec::new();
    for (what, path) in &accesses {
        let request_id = unique("req");
        assert_eq!(get_as(&reader, path, &request_id).await, 200, "{what}");
        ids.push(request_id);
    }
    // The auditor asks by the national id, which none of these requests used.
    let subject = format!("Individual/{}", path_id(NATIONAL_ID, &id));
    let query = format!(
        "client={}&subject={subject}&_count=100",
        credentials.client_id
    );
    let found = audit_events(&admin, &query, accesses.len()).await;
    let found: Vec<&str> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"]["requestId"].as_str().unwrap())
        .collect();
    for ((what, _), request_id) in accesses.iter().zip(&ids) {
        assert!(found.contains(&request_id.as_str()), "{what} is found");
    }
    // The entries name what the answers showed, in external identifiers.
    let logged = by_request(&admin, &credentials, accesses.len()).await;
    assert_eq!(
        entities(&logged[&ids[0]]),
        [
            format!("Individual/{PASSPORT}|{passport}"),
            format!("Group/urn:openspp:group|{household}"),
        ],
        "the read names the household it shows in groupMembership"
    );
    let member_reference = format!("Individual/{NATIONAL_ID}|{id}");
    assert!(entities(&logged[&ids[2]]).contains(&member_reference));
    assert!(entities(&logged[&ids[3]]).contains(&member_reference));
}

async fn consent_reads() {
    let admin = admin().await;
    let reader = client(&["consent:read", "consent:search", "audit:read"]).await;
    let id = unique("CRL");
    register_individual(&admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let given = admin
        .post(
            "/api/v2/spp/Consent",
            json!({"subject": subject, "recipient_mode": "category", "recipient_types": ["ngo"],
                   "expiry_date": "2099-01-01",
                   "scopes": [{"resource_type": "individual", "field_access": null, "purpose": "research"}]}),
        )
        .await;
    given.expect(201);
    let consent = given.body["consent_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v2/spp/Consent/{consent}");
    let requests = [
        (path.clone(), 200, "read"),
        (format!("{path}?_at=2000-01-01T00:00:00Z"), 404, "read"),
        (
            format!(
                "/api/v2/spp/Consent?subject=Individual/{}",
                path_id(NATIONAL_ID, &id)
            ),
            200,
            "search",
        ),
        (format!("{path}/$receipt"), 200, "receipt"),
        (format!("{path}/$history"), 200, "history"),
        (format!("{path}/_history"), 200, "history"),
        (format!("{path}/_history/1"), 200, "vread"),
        (format!("{path}/_history/7"), 404, "vread"),
        (format!("{path}/_history/$verify"), 200, "verify"),
    ];
    let entries = logged_requests(&admin, &reader, &requests).await;
    for ((path, _, _), entry) in requests.iter().zip(&entries) {
        assert_eq!(entry["resource"], "Consent", "{path}");
        let named = entities(entry);
        assert!(named.contains(&format!("Consent/{consent}")), "{path}");
        assert!(named.contains(&subject), "{path}: the subject is named");
    }
    // An auditor asking about the person finds who read their consent.
    let about = audit_events(
        &admin,
        &format!(
            "client={}&subject=Individual/{}&_count=100",
            reader.0.client_id,
            path_id(NATIONAL_ID, &id)
        ),
        requests.len(),
    )
    .await;
    assert_eq!(about["meta"]["total"], requests.len());
}

/// Consent writes are accesses too (CONTRACT §6): giving, renewing, revoking and withdrawing
/// by `DELETE` are each logged as a write with its AuditEvent action code and the status it
/// answered, naming the consent and its data subject.
async fn consent_writes() {
    let admin = admin().await;
    let (credentials, api) = &client(&["consent:all"]).await;
    let id = unique("CWL");
    register_individual(&admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let body = json!({"subject": subject, "recipient_mode": "category", "recipient_types": ["ngo"],
                      "expiry_date": "2090-01-01",
                      "scopes": [{"resource_type": "individual", "field_access": null, "purpose": "research"}]});
    let mut sent: Vec<(String, String, u16, &str)> = Vec::new();
    let mut consents = Vec::new();
    for _ in 0..2 {
        let request_id = unique("req");
        let given = api
            .send(
                Method::POST,
                "/api/v2/spp/Consent",
                Some(body.clone()),
                &[("X-Request-Id", &request_id)],
            )
            .await;
        assert_eq!(given.status.as_u16(), 201, "{}", given.text);
        let consent = given.body["consent_id"].as_str().unwrap().to_owned();
        sent.push((request_id, consent.clone(), 201, "C"));
        consents.push(format!("/api/v2/spp/Consent/{consent}"));
    }
    let changes = [
        (
            Method::POST,
            format!("{}/$renew", consents[0]),
            Some(json!({"expiry_date": "2095-01-01"})),
            "U",
        ),
        (
            Method::POST,
            format!("{}/$revoke", consents[0]),
            Some(json!({})),
            "U",
        ),
        (Method::DELETE, consents[1].clone(), None, "D"),
    ];
    for (n, (method, path, body, action)) in changes.into_iter().enumerate() {
        let request_id = unique("req");
        let reply = api
            .send(method, &path, body, &[("X-Request-Id", &request_id)])
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{path}: {}", reply.text);
        let consent = sent[n / 2].1.clone();
        sent.push((request_id, consent, 200, action));
    }
    let mut logged = by_request(&admin, credentials, sent.len()).await;
    for (request_id, consent, status, action) in &sent {
        let entry = logged
            .remove(request_id)
            .unwrap_or_else(|| panic!("{action} of {consent} is logged"));
        assert_eq!(entry["resource"], "Consent");
        assert_eq!(entry["subtype"], "write", "{action} of {consent}");
        assert_eq!(entry["action"], *action, "{consent}");
        assert_eq!(
            entry["outcome"],
            status.to_string(),
            "{action} of {consent}"
        );
        let named = entities(&entry);
        assert!(
            named.contains(&format!("Consent/{consent}")),
            "{action}: {named:?}"
        );
        assert!(
            named.contains(&subject),
            "{action}: the subject is named in {named:?}"
        );
    }
}

/// Writes that fail still touched a subject (a stale version, a taken identifier, an
/// impossible transition): each is logged as a write with the status it answered.
async fn refused_writes() {
    let admin = admin().await;
    let writer = client(&["individual:all", "program:read", "program_membership:all"]).await;
    let (credentials, api) = &writer;
    let id = unique("REF");
    let path = register_individual(&admin, &id).await;
    let (_, program) = new_program(&admin, "individual").await;
    let enrolled = enrol(&admin, &program, &id, "enrolled").await;
    enrolled.expect(201);
    let membership = minted_path(&enrolled);
    let mut membership_body = admin.get(&membership).await.body;
    membership_body["status"] = json!("draft");

    let attempts = [
        (
            Method::PUT,
            path.clone(),
            individual_body(&id),
            "\"1\"",
            412,
        ),
        (
            Method::POST,
            "/api/v2/spp/Individual".to_owned(),
            individual_body(&id),
            "",
            409,
        ),
        (Method::PUT, membership.clone(), membership_body, "", 409),
    ];
    let mut ids = Vec::new();
    for (method, target, body, if_match, status) in attempts.iter().cloned() {
        let request_id = unique("req");
        let mut headers = vec![("X-Request-Id", request_id.as_str())];
        if !if_match.is_empty() {
            headers.push(("If-Match", if_match));
        }
        let reply = api.send(method, &target, Some(body), &headers).await;
        assert_eq!(reply.status.as_u16(), status, "{target}: {}", reply.text);
        ids.push(request_id);
    }
    let mut logged = by_request(&admin, credentials, attempts.len()).await;
    let subjects = [
        format!("Individual/{NATIONAL_ID}|{id}"),
        format!("Individual/{NATIONAL_ID}|{id}"),
        format!(
            "ProgramMembership/{}",
            membership.rsplit('/').next().unwrap()
        ),
    ];
    for ((attempt, request_id), subject) in attempts.iter().zip(&ids).zip(subjects) {
        let entry = logged
            .remove(request_id)
            .unwrap_or_else(|| panic!("{} {} is logged", attempt.0, attempt.1));
        assert_eq!(entry["outcome"], attempt.4.to_string());
        assert_eq!(entry["subtype"], "write");
        let named = entities(&entry);
        let decoded = subject.replace("%23", "#").replace("%7C", "|");
        assert!(named.contains(&decoded), "{named:?} names {decoded}");
    }
}
