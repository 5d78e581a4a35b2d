//! Provenance for auditors (CONTRACT §6): histories, point-in-time reads, tamper evidence,
//! and rebuilding the read models from the log.

use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::json;

use crate::program::{change_body, enrol, new_program};
use crate::support::{
    admin, audit_events, cli, consent_client, create_client, individual_body, minted_path, path_id,
    query_instant, register_individual, sql_scalar, unique, world, Api, Server, TestDatabase,
    ALL_SCOPES, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("audit::history_tells_who_changed_what", history),
        trial("audit::vread_and_at_show_past_versions", point_in_time),
        trial("audit::tampering_is_reported_by_verify", tampering),
        trial("audit::replay_rebuilds_identical_read_models", replay),
        trial("audit::history_needs_audit_scope", scope),
        trial("audit::every_access_is_logged_and_searchable", access_log),
        trial("audit::access_log_is_append_only", append_only),
    ]
}

async fn history() {
    let api = admin().await;
    let id = unique("HIS");
    let path = register_individual(&api, &id).await;
    let mut body = individual_body(&id);
    body["name"]["family"] = json!("Reyes");
    api.send(
        reqwest::Method::PUT,
        &path,
        Some(body),
        &[
            ("X-Source-System", "urn:org:registry:field-office"),
            ("X-Source-Reference", "form-77"),
        ],
    )
    .await
    .expect(200);
    let bundle = api.get(&format!("{path}/_history")).await;
    bundle.expect(200);
    assert_eq!(bundle.body["resourceType"], "Bundle");
    assert_eq!(bundle.body["type"], "history");
    assert_eq!(bundle.body["total"], 3);
    let newest = &bundle.body["entry"][0];
    assert_eq!(newest["versionId"], "3");
    assert_eq!(newest["event"]["type"], "NameChanged");
    assert_eq!(newest["event"]["description"], "Name changed");
    assert_eq!(newest["changes"][0]["field"], "name");
    assert_eq!(newest["changes"][0]["old"]["family"], "Santos");
    assert_eq!(newest["changes"][0]["new"]["family"], "Reyes");
    let provenance = &newest["provenance"];
    assert_eq!(
        provenance["client"],
        format!("urn:openspp:api-client:{}", world().admin.client_id)
    );
    assert_eq!(provenance["source_system"], "urn:org:registry:field-office");
    assert_eq!(provenance["source_reference"], "form-77");
    assert_eq!(provenance["collection_method"], "api");
    assert!(provenance["request_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(
        bundle.body["entry"][2]["event"]["type"],
        "IndividualRegistered"
    );
    // Paging and _since.
    let page = api.get(&format!("{path}/_history?_count=1")).await;
    assert_eq!(page.body["entry"].as_array().unwrap().len(), 1);
    assert!(page.body["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next"));
    let future = api
        .get(&format!("{path}/_history?_since=2999-01-01T00:00:00Z"))
        .await;
    assert_eq!(future.body["total"], 0);
}

async fn point_in_time() {
    let api = admin().await;
    let id = unique("PIT");
    let path = register_individual(&api, &id).await;
    let first = api.get(&path).await;
    let before_change = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Later");
    api.put(&path, body, None).await.expect(200);
    // vread returns the resource exactly as a read returned it then.
    let version = first.body["meta"]["versionId"].as_str().unwrap();
    let old = api.get(&format!("{path}/_history/{version}")).await;
    old.expect(200);
    assert_eq!(old.body, first.body);
    assert_eq!(old.header("etag"), Some(format!("\"{version}\"").as_str()));
    api.get(&format!("{path}/_history/99")).await.expect(404);
    // _at: as it was at an instant.
    let at = api
        .get(&format!(
            "{path}?_at={}",
            query_instant(&before_change.to_rfc3339())
        ))
        .await;
    at.expect(200);
    assert_eq!(at.body["name"]["given"], "Maria");
    let now = api
        .get(&format!(
            "{path}?_at={}",
            query_instant(&chrono::Utc::now().to_rfc3339())
        ))
        .await;
    assert_eq!(now.body["name"]["given"], "Later");
    api.get(&format!("{path}?_at=1990-01-01T00:00:00Z"))
        .await
        .expect(404);
    api.get(&format!("{path}?_at=yesterday")).await.expect(400);
}

async fn tampering() {
    let api = admin().await;
    let id = unique("TMP");
    let path = register_individual(&api, &id).await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Second");
    api.put(&path, body, None).await.expect(200);
    let verified = api.get(&format!("{path}/_history/$verify")).await;
    verified.expect(200);
    assert_eq!(verified.body["valid"], true);
    assert_eq!(verified.body["versions"], 3);
    // Someone edits a stored event behind the server's back.
    let url = &world().database_url;
    let stream = sql_scalar(
        url,
        &format!("SELECT aggregate_id FROM identifier_claims WHERE value = '{id}'"),
    );
    sql_scalar(
        url,
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, '{{IndividualRegistered,name,family}}', '\"Forged\"') \
             WHERE aggregate_id = '{stream}' AND sequence = 1 RETURNING 1"
        ),
    );
    let broken = api.get(&format!("{path}/_history/$verify")).await;
    broken.expect(200);
    assert_eq!(broken.body["valid"], false);
    assert_eq!(broken.body["first_broken_version"], 1);
    // The CLI finds it too, and says so with its exit status.
    let (passed, report) = verify_all(url);
    assert!(!passed, "verify must fail on a broken chain");
    assert!(report.contains(&stream), "{report}");
    // Repair it, so the shared database verifies again for other tests.
    sql_scalar(
        url,
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, '{{IndividualRegistered,name,family}}', '\"Santos\"') \
             WHERE aggregate_id = '{stream}' AND sequence = 1 RETURNING 1"
        ),
    );
    assert_eq!(
        api.get(&format!("{path}/_history/$verify")).await.body["valid"],
        true
    );
    // The recording time drives `_at`, `_since` and the provenance: moving it in its column
    // (the hash covers the metadata's copy) is a break too, named by its version.
    let recorded = |sequence: u8| {
        sql_scalar(
            url,
            &format!(
                "SELECT recorded_at FROM events WHERE aggregate_id = '{stream}' AND sequence = {sequence}"
            ),
        )
    };
    let original = recorded(2);
    sql_scalar(
        url,
        &format!(
            "UPDATE events SET recorded_at = recorded_at - interval '3 days' \
             WHERE aggregate_id = '{stream}' AND sequence = 2 RETURNING 1"
        ),
    );
    assert_ne!(recorded(2), original);
    let moved = api.get(&format!("{path}/_history/$verify")).await;
    moved.expect(200);
    assert_eq!(moved.body["valid"], false);
    assert_eq!(moved.body["first_broken_version"], 2);
    assert!(
        moved.body["reason"]
            .as_str()
            .unwrap()
            .contains("recorded time"),
        "{}",
        moved.text
    );
    let (passed, report) = verify_all(url);
    assert!(!passed, "verify must fail on a moved time");
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    let named = report["broken"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["stream"] == stream.as_str())
        .expect("the CLI names the stream");
    assert_eq!(named["first_broken_version"], 2);
    sql_scalar(
        url,
        &format!(
            "UPDATE events SET recorded_at = '{original}' \
             WHERE aggregate_id = '{stream}' AND sequence = 2 RETURNING 1"
        ),
    );
    assert_eq!(
        api.get(&format!("{path}/_history/$verify")).await.body["valid"],
        true
    );
}

/// `openspp verify --all`: whether it passed, and its report.
fn verify_all(url: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(["verify", "--all"])
        .env("DATABASE_URL", url)
        .env("OPENSPP_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Every table and view of the database but the projector's checkpoint (whose `updated_at`
/// tells when it last moved), each as `name md5` over its rows in a canonical order: read
/// models added later are compared without anyone having to list them here.
fn snapshot(url: &str) -> String {
    sql_scalar(
        url,
        "SELECT string_agg(table_name || ' ' || md5(query_to_xml(\
           format('SELECT t.* FROM %I t ORDER BY t::text', table_name), true, false, '')::text), \
           E'\\n' ORDER BY table_name) \
         FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> 'projection_checkpoints'",
    )
}

fn rows(url: &str, table: &str) -> u64 {
    sql_scalar(url, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

async fn replay() {
    let database = TestDatabase::create("openspp_e2e_replay");
    let server = Server::start(&database.url, &[]);
    let mut scopes = Vec::new();
    for scope in ALL_SCOPES {
        scopes.extend(["--scope", scope]);
    }
    let credentials = create_client(&database.url, &scopes);
    let api = Api::new(&server.base).login(&credentials).await;
    let mut members = Vec::new();
    let mut people = Vec::new();
    for n in 0..12 {
        let id = unique("RPL");
        let path = register_individual(&api, &id).await;
        if n % 3 == 0 {
            let mut body = individual_body(&id);
            body["name"]["given"] = json!(format!("Changed{n}"));
            api.put(&path, body, None).await.expect(200);
        }
        members.push(json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{id}")}}));
        people.push(id);
    }
    let group = |value: &str| format!("Group/urn:openspp:group|{value}");
    let (kept, merged) = (unique("RG"), unique("RG"));
    for (value, members) in [(&kept, &members[..4]), (&merged, &members[4..6])] {
        api.post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": "urn:openspp:group", "value": value}],
                   "groupType": "household", "member": members}),
        )
        .await
        .expect(201);
    }
    // Household changes on two streams at once: a merge, then a split of the merged group.
    api.post(
        "/api/v2/spp/Group/$merge",
        json!({"sourceGroup": {"reference": group(&merged)}, "targetGroup": {"reference": group(&kept)}}),
    )
    .await
    .expect(200);
    api.post(
        &format!(
            "/api/v2/spp/Group/{}/$split",
            crate::support::path_id("urn:openspp:group", &kept)
        ),
        json!({"newGroupIdentifier": [{"system": "urn:openspp:group", "value": unique("RG")}],
               "membersToMove": [members[5]["entity"]]}),
    )
    .await
    .expect(201);
    // A recipient of the category consents below, which withdraws from one for itself.
    let ngo = Api::new(&server.base)
        .login(&consent_client(
            &database.url,
            "Replay NGO",
            "ngo",
            &["consent:all"],
        ))
        .await;
    // Programs, memberships along the state machine, and consents given, renewed, withdrawn
    // (for everyone, and by one recipient for itself).
    let (_, first) = new_program(&api, "individual").await;
    let (_, second) = new_program(&api, "individual").await;
    for (n, person) in people.iter().enumerate().take(8) {
        let program = if n % 2 == 0 { &first } else { &second };
        let status = if n % 3 == 0 { "draft" } else { "enrolled" };
        let enrolled = enrol(&api, program, person, status).await;
        enrolled.expect(201);
        if n % 4 == 1 {
            let path = minted_path(&enrolled);
            let body = change_body(&api, &path, "paused").await;
            api.put(&path, body, None).await.expect(200);
        }
    }
    // Facts the memberships copy from their beneficiaries (migration 0225): a person's gender
    // and birth date changed after their enrolment, and a household enrolled in a group
    // program.
    let mut changed = individual_body(&people[1]);
    changed["gender"]["coding"][0]["code"] = json!("1");
    changed["birthDate"] = json!("1950-01-01");
    api.put(
        &format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &people[1])
        ),
        changed,
        None,
    )
    .await
    .expect(200);
    let (_, households) = new_program(&api, "group").await;
    api.post(
        "/api/v2/spp/ProgramMembership",
        json!({"program": {"reference": format!("Program/{households}")},
               "beneficiary": {"reference": group(&kept)}, "status": "enrolled"}),
    )
    .await
    .expect(201);
    // A cycle and entitlements of enrolled members (people 2 and 4, in the first program), one
    // of them changed: the cycle's statistics are rebuilt from the entitlements' events.
    let cycle = format!("Replay cycle {}", unique("C"));
    api.post(
        "/api/v2/spp/Cycle",
        json!({"name": cycle, "program": {"reference": format!("Program/{first}")},
               "period": {"start": "2024-01-01", "end": "2024-03-31"}}),
    )
    .await
    .expect(201);
    for (n, person) in [&people[2], &people[4]].into_iter().enumerate() {
        let created = api
            .post(
                "/api/v2/spp/Entitlement",
                json!({"entitlementType": "cash", "cycle": {"reference": format!("Cycle/{cycle}")},
                       "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{person}")},
                       "initialAmount": {"value": 100 + n, "currency": "PHP"}}),
            )
            .await;
        created.expect(201);
        if n == 0 {
            let path = created.header("location").unwrap().to_owned();
            let mut body = created.body.clone();
            body["state"] = json!("pending_validation");
            api.put(&path, body, None).await.expect(200);
        }
    }
    // Submitted: the draft entitlement follows the cycle (an event on its own stream).
    let path = format!("/api/v2/spp/Cycle/{}", cycle.replace(' ', "%20"));
    let mut body = api.get(&path).await.body.clone();
    body["state"] = json!("to_approve");
    api.put(&path, body, None).await.expect(200);
    let point = format!("Replay point {}", unique("SP"));
    let registered = api
        .post(
            "/api/v2/spp/ServicePoint",
            json!({"name": point, "contractActive": true, "country": "PH", "serviceType": ["CASH"]}),
        )
        .await;
    registered.expect(201);
    let mut body = registered.body.clone();
    body["contractActive"] = json!(false);
    let path = registered.header("location").unwrap().to_owned();
    api.put(&path, body, None).await.expect(200);
    let product = api
        .post(
            "/api/v2/spp/Product",
            json!({"name": format!("Replay product {}", unique("PR")), "currency": "PHP"}),
        )
        .await;
    product.expect(201);
    let mut body = product.body.clone();
    body["active"] = json!(false);
    let path = product.header("location").unwrap().to_owned();
    api.put(&path, body, None).await.expect(200);
    for (n, person) in people.iter().enumerate().take(3) {
        let given = api
            .post(
                "/api/v2/spp/Consent",
                json!({"subject": format!("Individual/{NATIONAL_ID}|{person}"), "recipient_mode": "category",
                       "recipient_types": ["ngo"], "expiry_date": "2090-01-01",
                       "scopes": [{"resource_type": "all", "field_access": null, "purpose": "research"}]}),
            )
            .await;
        given.expect(201);
        let consent = format!(
            "/api/v2/spp/Consent/{}",
            given.body["consent_id"].as_str().unwrap()
        );
        let (action, body) = match n {
            0 => ("$renew", json!({"expiry_date": "2095-01-01"})),
            1 => ("$revoke", json!({})),
            _ => {
                let released = ngo.post(&format!("{consent}/$revoke"), json!({})).await;
                released.expect(200);
                assert_eq!(released.body["withdrawn_for"], "recipient");
                continue;
            }
        };
        api.post(&format!("{consent}/{action}"), body)
            .await
            .expect(200);
    }
    // Replay refuses while a server is projecting …
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .arg("replay")
        .env("DATABASE_URL", &database.url)
        .env("OPENSPP_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    // A graceful stop drains the access log, so nothing moves after the live snapshot.
    assert!(server.terminate().success());
    for table in [
        "individual_view",
        "group_view",
        "group_members_view",
        "program_view",
        "membership_view",
        "membership_counts",
        "consent_index",
        "cycle_view",
        "entitlement_view",
        "cycle_beneficiaries",
        "cycle_statistics",
        "service_point_view",
        "product_view",
    ] {
        assert!(
            rows(&database.url, table) > 0,
            "{table} has rows to compare"
        );
    }
    assert_eq!(
        sql_scalar(
            &database.url,
            "SELECT string_agg(array_to_string(released_recipients, ','), ';') \
             FROM consent_index WHERE released_recipients <> '{}'"
        ),
        "Replay NGO",
        "the index records the recipient that withdrew for itself"
    );
    assert_eq!(
        sql_scalar(
            &database.url,
            "SELECT count(*) FILTER (WHERE gender_code = '1' AND birth_date = '1950-01-01') \
                 || ',' || count(*) FILTER (WHERE group_type = 'household') \
                 || ',' || count(*) FILTER (WHERE gender_code IS NULL AND group_type IS NULL) \
             FROM membership_view"
        ),
        "1,1,0",
        "every membership holds its beneficiary's facts as they are now"
    );
    let live = snapshot(&database.url);
    assert!(live.contains("membership_counts "), "{live}");
    // … and rebuilds the very same rows once it is stopped.
    let printed = cli(&database.url, &["replay"]);
    let report: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    let total: u64 = sql_scalar(&database.url, "SELECT count(*) FROM events")
        .parse()
        .unwrap();
    assert_eq!(report["events"], total);
    assert_eq!(
        snapshot(&database.url),
        live,
        "replay is byte-identical to the live projection"
    );
    drop(database);
}

async fn scope() {
    let credentials = create_client(&world().database_url, &["--scope", "individual:all"]);
    let api = Api::new(&world().base).login(&credentials).await;
    let id = unique("SCP");
    let path = register_individual(&api, &id).await;
    api.get(&format!("{path}/_history")).await.expect(403);
    api.get(&format!("{path}/_history/$verify"))
        .await
        .expect(403);
}

async fn access_log() {
    let admin = admin().await;
    let org = unique("Org");
    let id = unique("LOG");
    let path = register_individual(&admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let mut body = json!({
        "subject": subject, "recipient_mode": "specific", "recipients": [org],
        "scopes": [{"resource_type": "individual", "field_access": ["name"], "purpose": "eligibility_verification"}],
        "expiry_date": "2099-01-01"
    });
    let consent = admin.post("/api/v2/spp/Consent", body.take()).await;
    consent.expect(201);
    let consent_id = consent.body["consent_id"].as_str().unwrap().to_owned();
    let credentials = consent_client(&world().database_url, &org, "ngo", &["individual:all"]);
    let reader = Api::new(&world().base).login(&credentials).await;
    reader.get(&path).await.expect(200);
    reader
        .get(&format!("/api/v2/spp/Individual?identifier={NATIONAL_ID}|{id}").replace('#', "%23"))
        .await
        .expect(200);
    let stranger = unique("NOBODY");
    reader
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            crate::support::path_id(NATIONAL_ID, &stranger)
        ))
        .await
        .expect(404);

    let query = format!("client={}", credentials.client_id);
    let events = audit_events(&admin, &query, 3).await;
    let entries = events["data"].as_array().unwrap();
    let read = entries
        .iter()
        .find(|e| e["subtype"] == "read")
        .expect("the read is logged");
    assert_eq!(read["entity"][0]["what"]["reference"], subject);
    assert_eq!(read["consent"][0], consent_id);
    assert_eq!(read["purposeOfUse"], "eligibility_verification");
    assert_eq!(read["fieldsReturned"][0], "name");
    assert_eq!(read["outcome"], "200");
    assert!(
        entries.iter().any(|e| e["subtype"] == "search"),
        "searches are logged"
    );
    let refused = entries
        .iter()
        .find(|e| e["outcome"] == "404")
        .expect("refusals are logged");
    assert!(refused["entity"][0]["what"]["reference"]
        .as_str()
        .unwrap()
        .contains(&stranger));
    // By subject.
    let by_subject = audit_events(
        &admin,
        &format!("subject={}", subject.replace('#', "%23")),
        2,
    )
    .await;
    assert!(by_subject["meta"]["total"].as_i64().unwrap() >= 2);
    // The consent's own summary.
    let summary = admin
        .get(&format!("/api/v2/spp/Consent/{consent_id}/$access-summary"))
        .await;
    summary.expect(200);
    assert!(summary.body["total_accesses"].as_i64().unwrap() >= 2);
    let client = format!("urn:openspp:api-client:{}", credentials.client_id);
    assert_eq!(summary.body["clients"][0]["client"], client);
    // OpenSPP's counts: by action, by resource type, by client, and the span counted.
    let total = summary.body["total_accesses"].as_i64().unwrap();
    assert_eq!(summary.body["by_client"][&client].as_i64(), Some(total));
    assert!(summary.body["by_action"]["read"].as_i64().unwrap() >= 1);
    assert!(summary.body["by_action"]["search"].as_i64().unwrap() >= 1);
    let by_type: i64 = summary.body["by_resource_type"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(by_type, total, "{}", summary.text);
    assert!(
        summary.body["date_range"]["from"].as_str().unwrap()
            <= summary.body["date_range"]["to"].as_str().unwrap()
    );
    assert_eq!(summary.body["fields_returned"][0], "name");
    // A consent-bound client sees only its own accesses.
    let own = reader_with_audit(&org).await;
    let mine = own
        .get(&format!(
            "/api/v2/spp/AuditEvent?client={}",
            world().admin.client_id
        ))
        .await;
    mine.expect(200);
    assert_eq!(mine.body["meta"]["total"], 0);
}

async fn reader_with_audit(org: &str) -> Api {
    let credentials = consent_client(&world().database_url, org, "ngo", &["audit:read"]);
    Api::new(&world().base).login(&credentials).await
}

async fn append_only() {
    let output = std::process::Command::new("psql")
        .args([
            world().database_url.as_str(),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            "UPDATE access_log SET outcome = 200",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("append-only"));
    let output = std::process::Command::new("psql")
        .args([
            world().database_url.as_str(),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            "DELETE FROM access_log",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
}
