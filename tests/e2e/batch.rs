//! `POST /$batch` (CONTRACT §10): a household and its members in one atomic request, entries
//! answered as they would be alone, and a transaction that fails leaving no trace.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{
    admin, individual_body, path_id, register_individual, sql_scalar, unique, world, NATIONAL_ID,
};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";
const BATCH: &str = "/api/v2/spp/$batch";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "batch::transaction_household_resolves_placeholders",
            household_in_one_request,
        ),
        trial(
            "batch::transaction_with_a_bad_entry_leaves_no_trace",
            bad_entry_leaves_no_trace,
        ),
        trial(
            "batch::transaction_claiming_one_identifier_twice_applies_nothing",
            identifier_twice,
        ),
        trial(
            "batch::transaction_enrols_and_changes_a_household_created_with_it",
            household_enrolled,
        ),
        trial(
            "batch::transaction_finds_a_membership_at_the_address_an_earlier_entry_gave",
            address_after_rename,
        ),
        trial("batch::batch_answers_each_entry_alone", each_alone),
        trial("batch::limits_and_shape_are_4xx", limits),
        trial("batch::capability_statement_names_batch", capability),
        trial(
            "batch::each_entry_counts_against_the_rate_limit",
            rate_limited,
        ),
        trial(
            "batch::transaction_changes_and_merges_households",
            household_changes,
        ),
        trial(
            "batch::transaction_creates_delivery_resources",
            delivery_resources,
        ),
    ]
}

fn role(code: &str) -> Value {
    json!({"coding": [{"system": "urn:openspp:vocab:group-membership-type", "code": code}]})
}

fn create(full_url: &str, kind: &str, resource: Value) -> Value {
    json!({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": kind}})
}

/// A household of `ids.len()` members (the first the head), as a transaction Bundle whose
/// Group names its members by placeholder.
fn household(group: &str, ids: &[String]) -> Value {
    let mut entries: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            create(
                &format!("urn:uuid:{}", uuid_for(n)),
                "Individual",
                individual_body(id),
            )
        })
        .collect();
    let members: Vec<Value> = (0..ids.len())
        .map(|n| {
            json!({"entity": {"reference": format!("urn:uuid:{}", uuid_for(n))},
                   "role": role(if n == 0 { "head" } else { "member" })})
        })
        .collect();
    entries.push(create(
        "urn:uuid:00000000-0000-4000-8000-0000000000ff",
        "Group",
        json!({"type": "Group", "identifier": [{"system": GROUP_SYSTEM, "value": group}],
               "groupType": "household", "name": format!("{group} Household"), "member": members}),
    ));
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn uuid_for(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Rows anywhere (events, claims, read models) naming `prefix`, and member rows of groups that
/// have no events (what a partial write would leave).
fn traces(prefix: &str) -> Vec<(String, String)> {
    let url = &world().database_url;
    let like = format!("'%{prefix}%'");
    [
        (
            "events",
            format!("SELECT count(*) FROM events WHERE payload::text LIKE {like}"),
        ),
        (
            "identifier_claims",
            format!("SELECT count(*) FROM identifier_claims WHERE value LIKE {like}"),
        ),
        (
            "individual_view",
            format!("SELECT count(*) FROM individual_view WHERE state::text LIKE {like}"),
        ),
        (
            "group_view",
            format!("SELECT count(*) FROM group_view WHERE state::text LIKE {like}"),
        ),
        (
            "group_members_view",
            "SELECT count(*) FROM group_members_view m WHERE NOT EXISTS \
             (SELECT 1 FROM events e WHERE e.aggregate_id = m.group_id)"
                .to_owned(),
        ),
        (
            "group_membership_index",
            "SELECT count(*) FROM group_membership_index m WHERE NOT EXISTS \
             (SELECT 1 FROM events e WHERE e.aggregate_id = m.group_id)"
                .to_owned(),
        ),
    ]
    .into_iter()
    .map(|(table, sql)| (table.to_owned(), sql_scalar(url, &sql)))
    .collect()
}

fn assert_no_trace(prefix: &str) {
    for (table, count) in traces(prefix) {
        assert_eq!(count, "0", "{table} holds a trace of {prefix}");
    }
}

/// A household and its members in one request: every entry 201 with the `Location` and `ETag`
/// it would have had alone, and the group lists the individuals created beside it.
async fn household_in_one_request() {
    let api = admin().await;
    let prefix = unique("TXH");
    let ids: Vec<String> = (0..3).map(|n| format!("{prefix}-{n}")).collect();
    let group = format!("{prefix}-G");
    let reply = api.post(BATCH, household(&group, &ids)).await;
    reply.expect(200);
    assert_eq!(reply.body["type"], "transaction-response");
    let entries = reply.body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for entry in entries {
        assert_eq!(entry["response"]["status"], "201 Created", "{entry}");
        assert!(entry["response"]["etag"].is_string(), "{entry}");
        assert!(entry["response"]["lastModified"].is_string(), "{entry}");
    }
    let individual = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &ids[1]));
    assert_eq!(entries[1]["response"]["location"], individual.as_str());
    let group_path = format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &group));
    assert_eq!(entries[3]["response"]["location"], group_path.as_str());
    let read = api.get(&group_path).await;
    read.expect(200);
    assert_eq!(
        read.header("etag"),
        entries[3]["response"]["etag"].as_str(),
        "the ETag the transaction answered is the committed version"
    );
    let members = read.body["member"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{}", read.text);
    for (member, id) in members.iter().zip(&ids) {
        assert_eq!(
            member["entity"]["reference"],
            format!("Individual/{NATIONAL_ID}|{id}"),
        );
    }
    // The individuals' own read models know their household.
    let person = api.get(&individual).await;
    person.expect(200);
    assert_eq!(
        person.body["groupMembership"][0]["group"]["reference"],
        format!("Group/{GROUP_SYSTEM}|{group}"),
        "{}",
        person.text
    );
    // One database transaction: every event of the Bundle was recorded at one instant.
    let instants = sql_scalar(
        &world().database_url,
        &format!(
            "SELECT count(DISTINCT metadata->>'recorded_at') FROM events \
             WHERE payload::text LIKE '%{prefix}%'"
        ),
    );
    assert_eq!(instants, "1");
}

/// A transaction whose last entry is invalid applies nothing: 422 naming that entry and its
/// field with the entry's own diagnostics; no event, claim or read-model row remains.
async fn bad_entry_leaves_no_trace() {
    let api = admin().await;
    let prefix = unique("TXB");
    let ids: Vec<String> = (0..2).map(|n| format!("{prefix}-{n}")).collect();
    let mut bundle = household(&format!("{prefix}-G"), &ids);
    let mut bad = individual_body(&format!("{prefix}-bad"));
    bad["birthDate"] = json!("2999-01-01");
    bundle["entry"].as_array_mut().unwrap().push(json!({
        "fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000bb",
        "resource": bad, "request": {"method": "POST", "url": "Individual"}}));
    let reply = api.post(BATCH, bundle).await;
    reply.expect(422);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert_eq!(
        reply.body["issue"][0]["expression"][0], "entry[3].resource.birthDate",
        "{}",
        reply.text
    );
    let diagnostics = reply.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("urn:uuid:00000000-0000-4000-8000-0000000000bb")
            && diagnostics.contains("future"),
        "{diagnostics}"
    );
    assert_no_trace(&prefix);
    api.get(&format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, &ids[0])
    ))
    .await
    .expect(404);
}

/// Two entries claiming one identifier: refused at the commit, naming the second entry.
async fn identifier_twice() {
    let api = admin().await;
    let prefix = unique("TXD");
    let id = format!("{prefix}-0");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        create("urn:uuid:00000000-0000-4000-8000-000000000001", "Individual", individual_body(&id)),
        create("urn:uuid:00000000-0000-4000-8000-000000000002", "Individual", individual_body(&id)),
    ]});
    let reply = api.post(BATCH, bundle).await;
    reply.expect(422);
    assert_eq!(
        reply.body["issue"][0]["expression"][0], "entry[1].resource.identifier",
        "{}",
        reply.text
    );
    assert_no_trace(&prefix);
}

/// A `batch`: each entry on its own, answered with the status, `Location`, `ETag` or
/// OperationOutcome it would have had alone; a failed entry does not stop the others.
async fn each_alone() {
    let api = admin().await;
    let taken = unique("BTA");
    register_individual(&api, &taken).await;
    let fresh = unique("BTB");
    let path = register_individual(&api, &unique("BTC")).await;
    let current = api.get(&path).await;
    let etag = current.header("etag").unwrap().to_owned();
    let mut changed = crate::support::as_body(&current.body);
    changed["name"]["given"] = json!("Rosa");
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": individual_body(&taken), "request": {"method": "POST", "url": "Individual"}},
        {"resource": individual_body(&fresh), "request": {"method": "POST", "url": "Individual"}},
        {"resource": changed, "request": {"method": "PUT", "url": path.trim_start_matches("/api/v2/spp/"), "ifMatch": etag}},
        {"resource": changed, "request": {"method": "PUT", "url": path.trim_start_matches("/api/v2/spp/"), "ifMatch": "\"1\""}},
        {"request": {"method": "GET", "url": path.trim_start_matches("/api/v2/spp/")}},
        {"request": {"method": "GET", "url": "Nothing/here"}},
    ]});
    let reply = api.post(BATCH, bundle).await;
    reply.expect(200);
    assert_eq!(reply.body["type"], "batch-response");
    let entries = reply.body["entry"].as_array().unwrap();
    let status = |n: usize| {
        entries[n]["response"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(0), "409 Conflict");
    assert_eq!(
        entries[0]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(status(1), "201 Created");
    assert_eq!(
        entries[1]["response"]["location"],
        format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &fresh))
    );
    assert_eq!(
        entries[1]["resource"]["identifier"][0]["value"],
        fresh.as_str()
    );
    assert_eq!(status(2), "200 OK");
    assert_eq!(status(3), "412 Precondition Failed");
    assert_eq!(status(4), "200 OK");
    assert_eq!(entries[4]["resource"]["name"]["given"], "Rosa");
    assert_eq!(
        entries[4]["response"]["etag"],
        entries[2]["response"]["etag"]
    );
    assert_eq!(status(5), "404 Not Found");
    api.get(&format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, &fresh)
    ))
    .await
    .expect(200);
}

async fn limits() {
    let api = admin().await;
    let entry = json!({"request": {"method": "GET", "url": "Individual"}});
    let too_many = json!({"resourceType": "Bundle", "type": "batch",
                          "entry": vec![entry.clone(); 1001]});
    let reply = api.post(BATCH, too_many).await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "entry");
    let reply = api
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "history", "entry": []}),
        )
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "type");
    let reply = api
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "batch", "entry": [
                {"request": {"method": "TRACE", "url": "Individual"}}]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(
        reply.body["entry"][0]["response"]["status"],
        "422 Unprocessable Entity"
    );
    // Without a token, nothing runs.
    let anonymous = crate::support::Api::new(&world().base);
    anonymous
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "batch", "entry": [entry]}),
        )
        .await
        .expect(401);
}

/// The FHIR capability statement names the system interactions and the bulk export.
async fn capability() {
    let api = crate::support::Api::new(&world().base);
    let reply = api
        .send(
            reqwest::Method::GET,
            "/api/v2/spp/metadata",
            None,
            &[("Accept", "application/fhir+json")],
        )
        .await;
    reply.expect(200);
    let rest = &reply.body["rest"][0];
    assert_eq!(
        rest["interaction"],
        json!([{"code": "transaction"}, {"code": "batch"}])
    );
    assert_eq!(rest["operation"], json!([{"name": "bulk-export"}]));
}

/// A household created, enrolled and its membership changed in one transaction: the program
/// and membership found before the commit, a placeholder in a later entry's URL.
async fn household_enrolled() {
    let api = admin().await;
    let (_, program) = crate::program::new_program(&api, "group").await;
    let prefix = unique("TXM");
    let ids: Vec<String> = (0..2).map(|n| format!("{prefix}-{n}")).collect();
    let group = format!("{prefix}-G");
    let mut bundle = household(&group, &ids);
    let membership = |status: &str| {
        json!({"type": "ProgramMembership", "program": {"reference": format!("Program/{program}")},
               "beneficiary": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000ff"},
               "status": status})
    };
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.push(create(
        "urn:uuid:00000000-0000-4000-8000-0000000000ee",
        "ProgramMembership",
        membership("enrolled"),
    ));
    entries.push(json!({"resource": membership("paused"), "request": {
        "method": "PUT", "url": "ProgramMembership/urn:uuid:00000000-0000-4000-8000-0000000000ee"}}));
    let reply = api.post(BATCH, bundle).await;
    reply.expect(200);
    let answered = reply.body["entry"].as_array().unwrap();
    assert_eq!(
        answered[3]["response"]["status"], "201 Created",
        "{}",
        reply.text
    );
    assert_eq!(
        answered[4]["response"]["status"], "200 OK",
        "{}",
        reply.text
    );
    let location = answered[3]["response"]["location"].as_str().unwrap();
    let read = api.get(location).await;
    read.expect(200);
    assert_eq!(read.body["status"], "paused", "{}", read.text);
    assert_eq!(
        read.header("etag"),
        answered[4]["response"]["etag"].as_str()
    );
}

/// Inside a transaction, an entry that renames a program gives it a new name alias, which is
/// the transaction's until the commit makes it a claim: a later entry addressing a membership
/// the OpenSPP way (its beneficiary and `?program=` the new alias) finds it, and its body
/// restating the new alias names the membership's own program.
async fn address_after_rename() {
    let api = admin().await;
    let (name, alias) = crate::program::new_program(&api, "individual").await;
    let person = unique("TXA");
    register_individual(&api, &person).await;
    crate::program::enrol(&api, &alias, &person, "enrolled")
        .await
        .expect(201);
    let program_path = format!("Program/{alias}");
    let mut renamed = api.get(&format!("/api/v2/spp/{program_path}")).await.body;
    renamed.as_object_mut().unwrap().remove("meta");
    renamed["name"] = json!(format!("{name} Renamed"));
    let new_alias = format!(
        "urn:openspp:program|{}",
        format!("{name} Renamed").to_lowercase().replace(' ', "-")
    );
    let beneficiary = path_id(NATIONAL_ID, &person);
    let change = json!({"type": "ProgramMembership",
        "program": {"reference": format!("Program/{new_alias}")},
        "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{person}")},
        "status": "paused"});
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": renamed, "request": {"method": "PUT", "url": program_path}},
        {"resource": change, "request": {"method": "PUT",
            "url": format!("ProgramMembership/{beneficiary}?program=Program/{new_alias}")}},
    ]});
    let reply = api.post(BATCH, bundle).await;
    reply.expect(200);
    let answered = reply.body["entry"].as_array().unwrap();
    assert_eq!(
        answered[1]["response"]["status"], "200 OK",
        "{}",
        reply.text
    );
    let read = api
        .get(&format!(
            "/api/v2/spp/ProgramMembership/{beneficiary}?program=Program/{new_alias}"
        ))
        .await;
    read.expect(200);
    assert_eq!(read.body["status"], "paused", "{}", read.text);
}

/// Each entry of a Bundle is one request against the client's rate limit: a transaction whose
/// entries exceed what is left is refused (429) having applied none; a batch runs the entries
/// that fit and answers the rest 429.
async fn rate_limited() {
    let url = &world().database_url;
    let printed = crate::support::cli(
        url,
        &[
            "client",
            "create",
            "--name",
            "bundles",
            "--organization",
            "Test Org",
            "--organization-type",
            "government",
            "--scope",
            "individual:all",
            "--no-consent-required",
            "--legal-basis",
            "public_task",
            "--rate-limit-per-minute",
            "0",
            "--rate-limit-per-day",
            "10",
        ],
    );
    let created: Value = serde_json::from_str(printed.trim()).unwrap();
    let credentials = crate::support::Credentials {
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        client_secret: created["client_secret"].as_str().unwrap().to_owned(),
    };
    let api = crate::support::Api::new(&world().base)
        .login(&credentials)
        .await;
    let prefix = unique("BRL");
    let creates = |from: usize, n: usize| -> Vec<Value> {
        (from..from + n)
            .map(|i| {
                json!({"resource": individual_body(&format!("{prefix}-{i}")),
                       "request": {"method": "POST", "url": "Individual"}})
            })
            .collect()
    };
    // Twelve entries are more than the day's ten: nothing runs.
    let reply = api
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "transaction", "entry": creates(0, 12)}),
        )
        .await;
    reply.expect(429);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert!(reply.header("retry-after").is_some());
    let diagnostics = reply.body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("12 entries") && diagnostics.contains("none was applied"),
        "{diagnostics}"
    );
    assert_no_trace(&prefix);
    // Three fit (the refused Bundle spent one): seven are left of ten.
    let reply = api
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "transaction", "entry": creates(20, 3)}),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("6"));
    // A batch of eight: six run, the last two are refused and not run.
    let reply = api
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "batch", "entry": creates(30, 8)}),
        )
        .await;
    reply.expect(200);
    let statuses: Vec<&str> = reply.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [vec!["201 Created"; 6], vec!["429 Too Many Requests"; 2]].concat(),
        "{}",
        reply.text
    );
    assert_eq!(
        reply.body["entry"][7]["response"]["outcome"]["issue"][0]["code"],
        "throttled"
    );
    let registered = sql_scalar(
        url,
        &format!("SELECT count(*) FROM individual_view WHERE state::text LIKE '%{prefix}-3%'"),
    );
    assert_eq!(registered, "6", "entries 30-35 only");
    api.get("/api/v2/spp/Individual").await.expect(429);
}

/// Household changes are entries like any other: a member's role changed and two households
/// created in the same transaction merged, committed together.
async fn household_changes() {
    let api = admin().await;
    let prefix = unique("TXC");
    let id = |n: usize| format!("{prefix}-{n}");
    let person = |n: usize| format!("urn:uuid:{}", uuid_for(n));
    let group = |n: usize, members: Value| {
        create(
            &format!("urn:uuid:00000000-0000-4000-8000-0000000000f{n}"),
            "Group",
            json!({"type": "Group", "identifier": [{"system": GROUP_SYSTEM, "value": id(10 + n)}],
                   "groupType": "household", "name": format!("{prefix} Household {n}"),
                   "member": members}),
        )
    };
    let member =
        |n: usize, code: &str| json!({"entity": {"reference": person(n)}, "role": role(code)});
    let mut entries: Vec<Value> = (0..3)
        .map(|n| create(&person(n), "Individual", individual_body(&id(n))))
        .collect();
    entries.push(group(1, json!([member(0, "head"), member(1, "member")])));
    entries.push(group(2, json!([member(2, "head")])));
    entries.push(json!({"resource": {"role": role("spouse")}, "request": {
        "method": "PATCH",
        "url": format!("Group/urn:uuid:00000000-0000-4000-8000-0000000000f1/member/{}", person(1))}}));
    entries.push(json!({"resource": {
            "sourceGroup": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000f2"},
            "targetGroup": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000f1"}},
        "request": {"method": "POST", "url": "Group/$merge"}}));
    let reply = api
        .post(
            BATCH,
            json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
        )
        .await;
    reply.expect(200);
    let statuses: Vec<&str> = reply.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [vec!["201 Created"; 5], vec!["200 OK"; 2]].concat(),
        "{}",
        reply.text
    );
    let target = api
        .get(&format!(
            "/api/v2/spp/Group/{}",
            path_id(GROUP_SYSTEM, &id(11))
        ))
        .await;
    target.expect(200);
    let roles: Vec<(String, String)> = target.body["member"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["entity"]["reference"].as_str().unwrap().to_owned(),
                m["role"]["coding"][0]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let entity = |n: usize| format!("Individual/{NATIONAL_ID}|{}", id(n));
    for expected in [(0, "head"), (1, "spouse"), (2, "member")] {
        assert!(
            roles.contains(&(entity(expected.0), expected.1.to_owned())),
            "{roles:?}"
        );
    }
    let source = api
        .get(&format!(
            "/api/v2/spp/Group/{}",
            path_id(GROUP_SYSTEM, &id(12))
        ))
        .await;
    assert_eq!(source.body["active"], false, "{}", source.text);
}

/// Delivery resources are entries too: a service point and a program's cycle created in one
/// transaction.
async fn delivery_resources() {
    let api = admin().await;
    let (_, program) = crate::program::new_program(&api, "individual").await;
    let name = unique("TXCycle");
    let point = unique("TXPoint");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"name": point, "contractActive": true, "country": "PH",
                      "area": {"reference": "Area/Manila"},
                      "address": {"text": "12 Rizal Ave", "type": "physical"},
                      "telecom": [{"system": "phone", "value": "+63 2 123 4567", "use": "work"}],
                      "company": {"reference": "Organization/PayCo"}, "serviceType": ["CASH"]},
         "request": {"method": "POST", "url": "ServicePoint"}},
        {"resource": {"name": name, "program": {"reference": format!("Program/{program}")},
                      "period": {"start": "2024-01-01", "end": "2024-03-31"}},
         "request": {"method": "POST", "url": "Cycle"}},
    ]});
    let reply = api.post(BATCH, bundle).await;
    reply.expect(200);
    for entry in reply.body["entry"].as_array().unwrap() {
        assert_eq!(entry["response"]["status"], "201 Created", "{}", reply.text);
        let location = entry["response"]["location"].as_str().unwrap();
        api.get(location).await.expect(200);
    }
}
