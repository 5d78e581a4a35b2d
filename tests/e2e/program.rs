//! Programs and memberships end to end: the whole transition table, concurrent enrolment,
//! allowed programs, consent, and ETag/If-Match.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{
    admin, assert_answer_is_read, cli, consent_client, create_client, individual_body,
    logged_client, minted_path, path_id, register_individual, sql_scalar, unique, world, Api,
    Reply, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("program::create_read_search_and_name_alias", programs),
        trial("program::rename_end_and_archive", program_changes),
        trial("program::every_membership_transition", transition_table),
        trial(
            "program::enrollment_date_set_once",
            enrollment_date_set_once,
        ),
        trial(
            "program::concurrent_enrolment_one_wins",
            concurrent_enrolment,
        ),
        trial("program::enrolment_rules", enrolment_rules),
        trial("program::program_and_membership_histories", histories),
        trial(
            "program::allowed_programs_isolate_clients",
            allowed_programs,
        ),
        trial(
            "program::membership_consent_and_if_match",
            membership_consent,
        ),
        trial(
            "program::membership_identifiers_stay_in_their_system",
            membership_identifiers,
        ),
        trial(
            "program::allowed_programs_follow_renames",
            allowed_programs_follow_renames,
        ),
        trial("program::put_resolves_references", put_resolves_references),
        trial("program::exit_reasons", exit_reasons),
        trial(
            "program::program_type_and_fixed_target_type",
            program_type_and_target_type,
        ),
        trial(
            "program::malformed_search_values_are_400",
            malformed_search_values,
        ),
        trial("program::alias_ignores_case", alias_ignores_case),
        trial(
            "program::program_fields_not_dropped",
            program_fields_not_dropped,
        ),
        trial(
            "program::membership_fields_not_dropped",
            membership_fields_not_dropped,
        ),
        trial(
            "program::enrolment_needs_consent_for_memberships",
            enrolment_consent,
        ),
        trial("program::last_updated_searches", last_updated_searches),
        trial(
            "program::program_events_carry_source_tracking",
            program_source_tracking,
        ),
        trial(
            "program::enrolment_answer_rendered_from_what_was_found",
            enrolment_answer_from_what_was_found,
        ),
        trial(
            "program::membership_read_and_change_find_their_references_beside_the_row",
            membership_references_beside_the_row,
        ),
        trial(
            "program::membership_at_openspp_address_found_in_one_statement",
            membership_address_in_one_statement,
        ),
    ]
}

fn program_body(name: &str, target: &str) -> Value {
    json!({"name": name, "targetType": target, "currency": "PHP",
           "description": "Conditional cash transfer",
           "programType": {"coding": [{"system": "urn:openspp:vocab:program-type", "code": "cash-transfer"}]}})
}

/// Creates a program and returns its alias path id (`urn:openspp:program|slug`).
pub(crate) async fn new_program(api: &Api, target: &str) -> (String, String) {
    let name = format!("Program {}", unique("P"));
    let reply = api
        .post("/api/v2/spp/Program", program_body(&name, target))
        .await;
    reply.expect(201);
    let slug = name.to_lowercase().replace(' ', "-");
    (name, format!("urn:openspp:program|{slug}"))
}

/// A newly registered person's national id.
async fn new_person(api: &Api, prefix: &str) -> String {
    let national_id = unique(prefix);
    register_individual(api, &national_id).await;
    national_id
}

fn membership_body(program: &str, national_id: &str, status: &str) -> Value {
    json!({"program": {"reference": format!("Program/{program}")},
           "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{national_id}")},
           "status": status})
}

pub(crate) async fn enrol(api: &Api, program: &str, national_id: &str, status: &str) -> Reply {
    api.post(
        "/api/v2/spp/ProgramMembership",
        membership_body(program, national_id, status),
    )
    .await
}

/// The path of the membership a 201 created.
fn created_path(reply: &Reply) -> String {
    reply.expect(201);
    minted_path(reply)
}

/// The field an OperationOutcome names.
fn expression(reply: &Reply) -> &str {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
}

async fn programs() {
    let api = admin().await;
    let (name, alias) = new_program(&api, "individual").await;
    let read = api.get(&format!("/api/v2/spp/Program/{alias}")).await;
    read.expect(200);
    assert_eq!(read.body["type"], "Program");
    assert_eq!(read.body["name"], name);
    assert_eq!(read.body["targetType"], "individual");
    assert_eq!(read.body["active"], true);
    assert_eq!(
        read.body["programType"]["coding"][0]["display"],
        "Cash transfer"
    );
    assert!(read.header("etag").is_some());
    let word = name.rsplit(' ').next().unwrap();
    let found = api
        .get(&format!(
            "/api/v2/spp/Program?name={word}&status=active&targetType=individual"
        ))
        .await;
    found.expect(200);
    assert_eq!(found.body["meta"]["total"], 1);
    // Names are unique: the alias is an identifier.
    api.post("/api/v2/spp/Program", program_body(&name, "group"))
        .await
        .expect(409);
    let bad = api
        .post(
            "/api/v2/spp/Program",
            json!({"name": "X", "targetType": "cats", "currency": "PHP"}),
        )
        .await;
    bad.expect(422);
    assert_eq!(bad.body["issue"][0]["expression"][0], "targetType");
}

async fn program_changes() {
    let api = admin().await;
    let (_, alias) = new_program(&api, "group").await;
    let path = format!("/api/v2/spp/Program/{alias}");
    let renamed = format!("Renamed {}", unique("R"));
    let mut body = program_body(&renamed, "group");
    body["currency"] = json!("USD");
    let reply = api.put(&path, body.clone(), None).await;
    reply.expect(200);
    assert_eq!(reply.body["currency"], "USD");
    // The alias follows the name.
    api.get(&path).await.expect(404);
    let new_alias = format!(
        "urn:openspp:program|{}",
        renamed.to_lowercase().replace(' ', "-")
    );
    let new_path = format!("/api/v2/spp/Program/{new_alias}");
    api.get(&new_path).await.expect(200);
    body["status"] = json!("ended");
    let ended = api.put(&new_path, body.clone(), None).await;
    ended.expect(200);
    assert_eq!(ended.body["status"], "ended");
    assert_eq!(ended.body["active"], false);
    body["status"] = json!("archived");
    assert_eq!(
        api.put(&new_path, body, None).await.body["status"],
        "archived"
    );
    // Operators only: a client without program:create cannot create.
    let reader = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "program:read"],
        ))
        .await;
    reader
        .post("/api/v2/spp/Program", program_body("Nope", "group"))
        .await
        .expect(403);
}

/// Drives a fresh membership to `status` along allowed transitions.
async fn reach(api: &Api, program: &str, status: &str) -> String {
    let person = new_person(api, "TT").await;
    let initial = match status {
        "draft" | "duplicated" => "draft",
        "not_eligible" => "not_eligible",
        _ => "enrolled",
    };
    let mut body = membership_body(program, &person, initial);
    if initial == "enrolled" {
        body["enrollmentDate"] = json!("2024-01-15");
    }
    let created = api.post("/api/v2/spp/ProgramMembership", body).await;
    created.expect(201);
    let path = minted_path(&created);
    if status != initial {
        let reply = api
            .put(&path, change_body(api, &path, status).await, None)
            .await;
        reply.expect(200);
    }
    path
}

pub(crate) async fn change_body(api: &Api, path: &str, status: &str) -> Value {
    let current = api.get(path).await;
    let mut body = current.body.clone();
    body.as_object_mut().unwrap().remove("meta");
    body["status"] = json!(status);
    if status == "exited" {
        body["exitDate"] = json!("2024-06-01");
        body["exitReason"] =
            json!({"coding": [{"system": "urn:openspp:vocab:exit-reason", "code": "graduated"}]});
    }
    body
}

async fn transition_table() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let statuses = [
        "draft",
        "enrolled",
        "paused",
        "exited",
        "not_eligible",
        "duplicated",
    ];
    let allowed = |from: &str, to: &str| -> bool {
        matches!(
            (from, to),
            ("draft", "enrolled" | "not_eligible" | "duplicated")
                | (
                    "enrolled",
                    "paused" | "exited" | "not_eligible" | "duplicated"
                )
                | (
                    "paused",
                    "enrolled" | "exited" | "not_eligible" | "duplicated"
                )
                | ("exited", "not_eligible")
                | ("not_eligible", "draft" | "enrolled")
                | ("duplicated", "draft" | "not_eligible")
        )
    };
    for from in statuses {
        for to in statuses {
            if from == to {
                continue;
            }
            let path = reach(&api, &program, from).await;
            let body = change_body(&api, &path, to).await;
            let reply = api.put(&path, body, None).await;
            if allowed(from, to) {
                assert_eq!(reply.status.as_u16(), 200, "{from} → {to}: {}", reply.text);
                assert_eq!(reply.body["status"], to);
            } else {
                assert_eq!(reply.status.as_u16(), 409, "{from} → {to}: {}", reply.text);
                // The refusal names exactly the states the membership may go to.
                let allowed_states: Vec<&str> = statuses
                    .into_iter()
                    .filter(|next| allowed(from, next))
                    .collect();
                assert_eq!(
                    reply.body["detail"],
                    format!(
                        "status: a {from} membership cannot become {to}; allowed: {}",
                        allowed_states.join(", ")
                    )
                );
                assert_eq!(expression(&reply), "status");
                assert_eq!(api.get(&path).await.body["status"], from, "nothing changed");
            }
        }
    }
    // An exit needs its reason and its date.
    let path = reach(&api, &program, "enrolled").await;
    let mut body = change_body(&api, &path, "exited").await;
    body.as_object_mut().unwrap().remove("exitReason");
    assert_eq!(
        expression(api.put(&path, body, None).await.expect(422)),
        "exitReason"
    );
    let mut body = change_body(&api, &path, "exited").await;
    body.as_object_mut().unwrap().remove("exitDate");
    assert_eq!(
        expression(api.put(&path, body, None).await.expect(422)),
        "exitDate"
    );
    assert_eq!(api.get(&path).await.body["status"], "enrolled");
}

/// `enrollmentDate` is set by the first enrolment and kept through every later one.
async fn enrollment_date_set_once() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let path = reach(&api, &program, "enrolled").await;
    assert_eq!(api.get(&path).await.body["enrollmentDate"], "2024-01-15");
    for status in ["paused", "enrolled", "not_eligible", "enrolled"] {
        let body = change_body(&api, &path, status).await;
        let reply = api.put(&path, body, None).await;
        reply.expect(200);
        assert_eq!(reply.body["status"], status);
        assert_eq!(reply.body["enrollmentDate"], "2024-01-15", "after {status}");
    }
    // Sending another date is refused, not ignored.
    let mut body = change_body(&api, &path, "paused").await;
    body["enrollmentDate"] = json!("2025-01-01");
    let moved = api.put(&path, body, None).await;
    moved.expect(422);
    assert_eq!(expression(&moved), "enrollmentDate");
    assert_eq!(api.get(&path).await.body["enrollmentDate"], "2024-01-15");
    // A membership first enrolled by a change takes the date it is given.
    let later = reach(&api, &program, "not_eligible").await;
    let mut body = change_body(&api, &later, "enrolled").await;
    body["enrollmentDate"] = json!("2024-03-01");
    let reply = api.put(&later, body, None).await;
    reply.expect(200);
    assert_eq!(reply.body["enrollmentDate"], "2024-03-01");
}

async fn concurrent_enrolment() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = new_person(&api, "CE").await;
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let api = api.clone();
            let program = program.clone();
            let person = person.clone();
            tokio::spawn(async move {
                enrol(&api, &program, &person, "enrolled")
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    // The losers: a duplicate enrolment (422, as OpenSPP), or a concurrent one told to retry
    // (409); never a second membership.
    assert_eq!(
        statuses.iter().filter(|s| **s == 422 || **s == 409).count(),
        15,
        "{statuses:?}"
    );
    let listed = api
        .get(&format!(
            "/api/v2/spp/ProgramMembership?beneficiary=Individual/{}",
            path_id(NATIONAL_ID, &person)
        ))
        .await;
    assert_eq!(listed.body["meta"]["total"], 1);
}

async fn enrolment_rules() {
    let api = admin().await;
    let (_, groups_only) = new_program(&api, "group").await;
    let person = new_person(&api, "ER").await;
    let wrong = enrol(&api, &groups_only, &person, "enrolled").await;
    wrong.expect(422);
    assert_eq!(wrong.body["issue"][0]["expression"][0], "beneficiary");
    let (_, program) = new_program(&api, "individual").await;
    enrol(&api, &program, "nobody-here", "enrolled")
        .await
        .expect(422);
    enrol(
        &api,
        "urn:openspp:program|no-such-program",
        &person,
        "enrolled",
    )
    .await
    .expect(422);
    let created = enrol(&api, &program, &person, "enrolled").await;
    created.expect(201);
    // `Location` is OpenSPP's address: the beneficiary and the program.
    assert_eq!(
        created.header("location").unwrap(),
        format!(
            "/api/v2/spp/ProgramMembership/{}?program=Program/{program}",
            path_id(NATIONAL_ID, &person)
        )
    );
    let location = minted_path(&created);
    assert!(
        location.contains("urn:openspp:program-membership|"),
        "{location}"
    );
    assert_eq!(
        created.body["identifier"][0]["system"],
        "urn:openspp:program-membership"
    );
    assert_eq!(
        created.body["beneficiary"]["reference"],
        format!("Individual/{NATIONAL_ID}|{person}")
    );
    let by_program = api
        .get(&format!(
            "/api/v2/spp/ProgramMembership?program=Program/{program}&status=enrolled"
        ))
        .await;
    assert_eq!(by_program.body["meta"]["total"], 1);
}

async fn allowed_programs() {
    let api = admin().await;
    let (_, mine) = new_program(&api, "individual").await;
    let (_, other) = new_program(&api, "individual").await;
    let person = new_person(&api, "AP").await;
    let in_other = enrol(&api, &other, &person, "enrolled").await;
    in_other.expect(201);
    let other_membership = minted_path(&in_other);
    let limited = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &[
                "--scope",
                "program:all",
                "--scope",
                "program_membership:all",
                "--scope",
                "individual:read",
                "--program",
                &mine,
            ],
        ))
        .await;
    sees_only(&limited, &mine, &other).await;
    limited.get(&other_membership).await.expect(404);
    // Nor can it change a membership of another program.
    let mut moved = api.get(&other_membership).await.body;
    moved.as_object_mut().unwrap().remove("meta");
    moved["status"] = json!("paused");
    limited
        .put(&other_membership, moved, None)
        .await
        .expect(404);
    assert_eq!(api.get(&other_membership).await.body["status"], "enrolled");
    enrol(&limited, &other, &person, "enrolled")
        .await
        .expect(422);
    enrol(&limited, &mine, &person, "enrolled")
        .await
        .expect(201);
    let memberships = limited
        .get(&format!(
            "/api/v2/spp/ProgramMembership?beneficiary=Individual/{}",
            path_id(NATIONAL_ID, &person)
        ))
        .await;
    assert_eq!(
        memberships.body["meta"]["total"], 1,
        "only the allowed program's membership"
    );
}

/// A client limited to the program `mine` reads and finds it, and not `other`.
async fn sees_only(limited: &Api, mine: &str, other: &str) {
    limited
        .get(&format!("/api/v2/spp/Program/{mine}"))
        .await
        .expect(200);
    limited
        .get(&format!("/api/v2/spp/Program/{other}"))
        .await
        .expect(404);
    let listed = limited.get("/api/v2/spp/Program?_count=100").await;
    listed.expect(200);
    assert_eq!(
        program_keys(&listed),
        vec![vec![mine.to_owned()]],
        "only {mine}"
    );
    assert_eq!(listed.body["meta"]["total"], 1);
}

/// The identifiers of each program of a search result, as `system|value`.
fn program_keys(found: &Reply) -> Vec<Vec<String>> {
    found.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    format!(
                        "{}|{}",
                        i["system"].as_str().unwrap(),
                        i["value"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .collect()
}

/// A consent-bound NGO client of `organization` that may enrol and read programs.
async fn consent_bound(organization: &str) -> Api {
    Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            organization,
            "ngo",
            &["program_membership:all", "program:read"],
        ))
        .await
}

/// The person's consent that `organization` uses their `resource_type` until 2099.
async fn consent(api: &Api, national_id: &str, organization: &str, resource_type: &str) -> Reply {
    api.post(
        "/api/v2/spp/Consent",
        json!({"subject": format!("Individual/{NATIONAL_ID}|{national_id}"), "recipient_mode": "specific",
               "recipients": [organization], "expiry_date": "2099-01-01",
               "scopes": [{"resource_type": resource_type, "field_access": null, "purpose": "service_delivery"}]}),
    )
    .await
}

async fn revoke(api: &Api, consent: &Reply) {
    let consent_id = consent.body["consent_id"].as_str().unwrap();
    api.post(
        &format!("/api/v2/spp/Consent/{consent_id}/$revoke"),
        json!({}),
    )
    .await
    .expect(200);
}

async fn membership_consent() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let org = unique("Org");
    let person = new_person(&api, "MC").await;
    let ngo = consent_bound(&org).await;
    // No consent yet: the beneficiary is unknown to this client.
    enrol(&ngo, &program, &person, "enrolled").await.expect(422);
    let consent = consent(&api, &person, &org, "all").await;
    consent.expect(201);
    let created = enrol(&ngo, &program, &person, "enrolled").await;
    created.expect(201);
    let path = minted_path(&created);
    let read = ngo.get(&path).await;
    read.expect(200);
    let etag = read.header("etag").unwrap().to_owned();
    let mut body = read.body.clone();
    body.as_object_mut().unwrap().remove("meta");
    body["status"] = json!("paused");
    ngo.put(&path, body.clone(), Some(&etag)).await.expect(200);
    ngo.put(&path, body.clone(), Some(&etag)).await.expect(412);
    // Withdrawal: the membership disappears for this client.
    revoke(&api, &consent).await;
    ngo.get(&path).await.expect(404);
    body["status"] = json!("enrolled");
    ngo.put(&path, body, None).await.expect(404);
}

/// Program and membership histories tell who changed what, like every other resource's.
async fn histories() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = new_person(&api, "PH").await;
    let created = enrol(&api, &program, &person, "enrolled").await;
    created.expect(201);
    let path = minted_path(&created);
    let body = change_body(&api, &path, "paused").await;
    api.put(&path, body, None).await.expect(200);
    let bundle = api.get(&format!("{path}/_history")).await;
    bundle.expect(200);
    assert_eq!(bundle.body["total"], 3);
    assert_eq!(
        bundle.body["entry"][0]["event"]["type"],
        "MembershipStatusChanged"
    );
    assert_eq!(bundle.body["entry"][0]["changes"][0]["field"], "status");
    assert_eq!(bundle.body["entry"][0]["changes"][0]["old"], "enrolled");
    assert_eq!(bundle.body["entry"][0]["changes"][0]["new"], "paused");
    let first = api.get(&format!("{path}/_history/2")).await;
    first.expect(200);
    assert_eq!(first.body["status"], "enrolled");
    let recorded = bundle.body["entry"][1]["provenance"]["recorded"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = api
        .get(&format!(
            "{path}?_at={}",
            recorded.replace('+', "%2B").replace(':', "%3A")
        ))
        .await;
    at.expect(200);
    assert_eq!(
        at.body["status"], "enrolled",
        "as it was when enrolled ({recorded})"
    );
    api.get(&format!("{path}?_at=2000-01-01T00:00:00Z"))
        .await
        .expect(404);
    assert_eq!(
        api.get(&format!("{path}/_history/$verify")).await.body["valid"],
        true
    );
    let program_history = api
        .get(&format!("/api/v2/spp/Program/{program}/_history"))
        .await;
    program_history.expect(200);
    assert_eq!(
        program_history.body["entry"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["event"]["type"],
        "ProgramCreated"
    );
    assert_eq!(
        api.get(&format!("/api/v2/spp/Program/{program}/_history/$verify"))
            .await
            .body["valid"],
        true
    );
}

const PROGRAMS: &str = "/api/v2/spp/Program";
const MEMBERSHIPS: &str = "/api/v2/spp/ProgramMembership";

/// `urn:openspp:program|{name-with-hyphens}`.
fn alias_of(name: &str) -> String {
    format!(
        "urn:openspp:program|{}",
        name.to_lowercase().replace(' ', "-")
    )
}

/// The stream of a program, straight from the database (tests only: the API never shows it).
fn program_stream(alias: &str) -> String {
    let (system, value) = alias.split_once('|').unwrap();
    sql_scalar(
        &world().database_url,
        &format!(
            "SELECT aggregate_id FROM identifier_claims \
             WHERE aggregate_type = 'Program' AND system = '{system}' AND value = '{value}'"
        ),
    )
}

/// How many membership events exist for the program `stream`.
fn membership_events(stream: &str) -> i64 {
    sql_scalar(
        &world().database_url,
        &format!(
            "SELECT count(*) FROM events WHERE aggregate_type = 'ProgramMembership' \
             AND aggregate_id IN (SELECT aggregate_id FROM events \
                 WHERE aggregate_type = 'ProgramMembership' \
                 AND payload -> 'MembershipRecorded' ->> 'program' = '{stream}')"
        ),
    )
    .parse()
    .unwrap()
}

/// A membership's own identifier can never be a registrant's or a program's: such a request
/// is refused the same way whether that identifier exists or not, and takes nothing.
async fn membership_identifiers() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = new_person(&api, "MI").await;
    let with_identifier = |identifier: Value| {
        let mut body = membership_body(&program, &person, "enrolled");
        body["identifier"] = identifier;
        body
    };
    let unborn = unique("MI-unborn");
    let squat = api
        .post(
            MEMBERSHIPS,
            with_identifier(json!([{"system": NATIONAL_ID, "value": unborn}])),
        )
        .await;
    squat.expect(422);
    assert_eq!(expression(&squat), "identifier[0].system");
    let probe = api
        .post(
            MEMBERSHIPS,
            with_identifier(json!([{"system": NATIONAL_ID, "value": person}])),
        )
        .await;
    assert_eq!(probe.status, squat.status);
    assert_eq!(
        probe.body, squat.body,
        "an existing identifier answers alike"
    );
    // The identifier stayed free for the person it belongs to.
    register_individual(&api, &unborn).await;
    let future = format!("Future {}", unique("F"));
    let (_, existing) = new_program(&api, "group").await;
    for alias in [alias_of(&future), existing] {
        let (system, value) = alias.split_once('|').unwrap();
        let refused = api
            .post(
                MEMBERSHIPS,
                with_identifier(json!([{"system": system, "value": value}])),
            )
            .await;
        assert_eq!(refused.status, squat.status, "{alias}: {}", refused.text);
        assert_eq!(refused.body, squat.body, "{alias}");
    }
    api.post(PROGRAMS, program_body(&future, "individual"))
        .await
        .expect(201);
    let chosen = unique("HH");
    for (identifier, field) in [
        (json!([{"system": "", "value": ""}]), "identifier[0].system"),
        (
            json!([{"system": "urn:openspp:program-membership", "value": " "}]),
            "identifier[0].value",
        ),
        (
            json!([{"system": "urn:openspp:program-membership", "value": chosen},
                   {"system": "urn:openspp:program-membership", "value": "second"}]),
            "identifier[1]",
        ),
    ] {
        let refused = api.post(MEMBERSHIPS, with_identifier(identifier)).await;
        refused.expect(422);
        assert_eq!(expression(&refused), field);
    }
    let by_person = format!(
        "{MEMBERSHIPS}?beneficiary=Individual/{}",
        path_id(NATIONAL_ID, &person)
    );
    assert_eq!(
        api.get(&by_person).await.body["meta"]["total"],
        0,
        "no refused request enrolled anyone"
    );
    let created = api
        .post(
            MEMBERSHIPS,
            with_identifier(json!([{"system": "urn:openspp:program-membership", "value": chosen}])),
        )
        .await;
    let path = created_path(&created);
    assert!(
        path.ends_with(&format!("urn:openspp:program-membership|{chosen}")),
        "{path}"
    );
    assert_eq!(created.body["identifier"][0]["value"], chosen);
    // A change cannot give it another identifier either.
    let mut body = change_body(&api, &path, "paused").await;
    body["identifier"][0]["value"] = json!("renamed");
    let renamed = api.put(&path, body, None).await;
    renamed.expect(422);
    assert_eq!(expression(&renamed), "identifier");
    assert_eq!(api.get(&by_person).await.body["meta"]["total"], 1);
}

/// A client limited to a program is bound to the program itself: a rename keeps it, and the
/// next program to take the old name is not its program.
async fn allowed_programs_follow_renames() {
    let api = admin().await;
    let name = format!("Bound {}", unique("B"));
    api.post(PROGRAMS, program_body(&name, "individual"))
        .await
        .expect(201);
    let old_alias = alias_of(&name);
    // Named as the operator typed it: the alias matches whatever the case and spacing.
    let credentials = create_client(
        &world().database_url,
        &[
            "--scope",
            "program:all",
            "--scope",
            "program_membership:all",
            "--program",
            &format!("urn:openspp:program|{name}"),
        ],
    );
    let limited = Api::new(&world().base).login(&credentials).await;
    let stream = program_stream(&old_alias);
    let renamed = format!("Renamed {}", unique("R"));
    api.put(
        &format!("{PROGRAMS}/{old_alias}"),
        program_body(&renamed, "individual"),
        None,
    )
    .await
    .expect(200);
    let new_alias = alias_of(&renamed);
    api.post(PROGRAMS, program_body(&name, "individual"))
        .await
        .expect(201);
    sees_only(&limited, &new_alias, &old_alias).await;
    let person = new_person(&api, "BR").await;
    let newcomer = enrol(&limited, &old_alias, &person, "enrolled").await;
    newcomer.expect(422);
    assert_eq!(expression(&newcomer), "program");
    enrol(&limited, &new_alias, &person, "enrolled")
        .await
        .expect(201);
    // The operator sees the program by its identifiers, never by its stream.
    let listing = cli(&world().database_url, &["client", "list"]);
    assert!(!listing.contains(&stream), "no internal id in {listing}");
    let entry: Value = listing
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|c| c["client_id"] == credentials.client_id.as_str())
        .unwrap();
    assert_eq!(entry["allowed_programs"], json!([[new_alias]]));
    // An unknown program is refused when the client is created.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args([
            "client",
            "create",
            "--name",
            "n",
            "--organization",
            "o",
            "--organization-type",
            "ngo",
            "--scope",
            "program:read",
            "--program",
            "urn:openspp:program|no-such-program-anywhere",
        ])
        .env("DATABASE_URL", &world().database_url)
        .env("OPENSPP_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("urn:openspp:program|no-such-program-anywhere")
            && stderr.contains("no program has this identifier"),
        "{stderr}"
    );
}

/// A change names the membership's program and beneficiary by any of their identifiers.
async fn put_resolves_references() {
    let api = admin().await;
    let name = format!("Operator {}", unique("O"));
    let operator_id = unique("OP");
    let mut body = program_body(&name, "individual");
    body["identifier"] = json!([{"system": "urn:gov:test:program", "value": operator_id}]);
    api.post(PROGRAMS, body).await.expect(201);
    let alias = alias_of(&name);
    let person = new_person(&api, "PR").await;
    let path = created_path(&enrol(&api, &alias, &person, "enrolled").await);
    let read = api.get(&path).await;
    assert_eq!(
        read.body["program"]["reference"],
        format!("Program/urn:gov:test:program|{operator_id}")
    );
    let mut body = change_body(&api, &path, "paused").await;
    // The alias in another case, and `#` percent-encoded, name the same program and person.
    body["program"]["reference"] = json!(format!(
        "Program/urn:openspp:program|{}",
        name.to_uppercase().replace(' ', "-")
    ));
    body["beneficiary"]["reference"] =
        json!(format!("Individual/{}", path_id(NATIONAL_ID, &person)));
    let reply = api.put(&path, body.clone(), None).await;
    reply.expect(200);
    assert_eq!(reply.body["status"], "paused");
    let (_, other_program) = new_program(&api, "individual").await;
    let other_person = new_person(&api, "PR-other").await;
    let cases = [
        ("program", json!(format!("Program/{other_program}"))),
        (
            "program",
            json!("Program/urn:openspp:program|no-such-program"),
        ),
        (
            "beneficiary",
            json!(format!("Individual/{NATIONAL_ID}|{other_person}")),
        ),
        (
            "beneficiary",
            json!(format!("Individual/{NATIONAL_ID}|no-such-person")),
        ),
        (
            "beneficiary",
            json!(format!("Group/{NATIONAL_ID}|{person}")),
        ),
    ];
    for (field, reference) in cases {
        let mut moved = body.clone();
        moved["status"] = json!("enrolled");
        moved[field]["reference"] = reference.clone();
        let refused = api.put(&path, moved, None).await;
        refused.expect(422);
        assert_eq!(expression(&refused), field, "{reference}");
    }
    assert_eq!(api.get(&path).await.body["status"], "paused");
}

/// Exit reasons are codes of `urn:openspp:vocab:exit-reason`, or a text.
async fn exit_reasons() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let exit_with = |reason: Value| {
        let api = api.clone();
        let program = program.clone();
        async move {
            let path = reach(&api, &program, "enrolled").await;
            let mut body = change_body(&api, &path, "exited").await;
            body["exitReason"] = reason;
            (path.clone(), api.put(&path, body, None).await)
        }
    };
    for reason in [
        json!({"coding": [{"system": "urn:openspp:vocab:exit-reason", "code": "bored"}]}),
        json!({"coding": [{"system": "urn:iso:std:iso:5218", "code": "1"}]}),
        json!({"text": "  "}),
        json!({"coding": [{"system": "urn:openspp:vocab:exit-reason", "code": "moved"},
                          {"system": "urn:openspp:vocab:exit-reason", "code": "deceased"}]}),
    ] {
        let (path, refused) = exit_with(reason.clone()).await;
        refused.expect(422);
        assert_eq!(expression(&refused), "exitReason", "{reason}");
        assert_eq!(api.get(&path).await.body["status"], "enrolled");
    }
    let (_, coded) = exit_with(
        json!({"coding": [{"system": "urn:openspp:vocab:exit-reason", "code": "graduated"}]}),
    )
    .await;
    coded.expect(200);
    assert_eq!(
        coded.body["exitReason"]["coding"][0]["display"],
        "Graduated from the program"
    );
    let (path, text) = exit_with(json!({"text": "Moved abroad to work"})).await;
    text.expect(200);
    assert_eq!(
        text.body["exitReason"],
        json!({"coding": [], "text": "Moved abroad to work"})
    );
    assert_eq!(api.get(&path).await.body["exitDate"], "2024-06-01");
}

/// `programType` is always shown (OpenSPP's default when none was given); the target type
/// cannot change, since every membership was checked against it.
async fn program_type_and_target_type() {
    let api = admin().await;
    let name = format!("Untyped {}", unique("U"));
    let created = api
        .post(
            PROGRAMS,
            json!({"name": name, "targetType": "individual", "currency": "PHP"}),
        )
        .await;
    created.expect(201);
    assert_eq!(
        created.body["programType"],
        json!({"coding": [{"system": "urn:openspp:vocab:program-type",
                           "code": "social-protection", "display": "Social protection"}]})
    );
    let mut unknown = program_body(&format!("Typed {}", unique("T")), "individual");
    unknown["programType"] =
        json!({"coding": [{"system": "urn:openspp:vocab:program-type", "code": "lottery"}]});
    let refused = api.post(PROGRAMS, unknown).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "programType");
    let path = format!("{PROGRAMS}/{}", alias_of(&name));
    let person = new_person(&api, "TT").await;
    enrol(&api, &alias_of(&name), &person, "enrolled")
        .await
        .expect(201);
    let switched = api.put(&path, program_body(&name, "group"), None).await;
    switched.expect(409);
    assert_eq!(expression(&switched), "targetType");
    let read = api.get(&path).await;
    assert_eq!(read.body["targetType"], "individual");
    assert_eq!(read.body["meta"]["versionId"], "2", "nothing was written");
    api.put(&path, program_body(&name, "individual"), None)
        .await
        .expect(200);
}

/// A malformed search value is a 400 naming the parameter, never an empty result.
async fn malformed_search_values() {
    let api = admin().await;
    for (url, parameter) in [
        (format!("{PROGRAMS}?status=bogus"), "status"),
        (format!("{PROGRAMS}?targetType=cats"), "targetType"),
        (format!("{MEMBERSHIPS}?status=bogus"), "status"),
        (format!("{MEMBERSHIPS}?beneficiary=Foo/x|y"), "beneficiary"),
        (
            format!("{MEMBERSHIPS}?beneficiary=Individual/x"),
            "beneficiary",
        ),
        (format!("{MEMBERSHIPS}?program=Foo/x|y"), "program"),
    ] {
        let reply = api.get(&url).await;
        reply.expect(400);
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
        assert_eq!(expression(&reply), parameter, "{url}");
    }
    for url in [
        format!("{PROGRAMS}?status=archived&targetType=group"),
        format!("{MEMBERSHIPS}?status=not_eligible"),
        format!("{MEMBERSHIPS}?program=urn:openspp:program|no-such-program"),
    ] {
        api.get(&url).await.expect(200);
    }
}

/// OpenSPP matches program names whatever their case: so does the name alias.
async fn alias_ignores_case() {
    let api = admin().await;
    let (name, alias) = new_program(&api, "individual").await;
    let shouted = format!(
        "urn:openspp:program|{}",
        name.to_uppercase().replace(' ', "-")
    );
    let read = api.get(&format!("{PROGRAMS}/{shouted}")).await;
    read.expect(200);
    assert_eq!(read.body["name"], name);
    let person = new_person(&api, "AC").await;
    let path = created_path(&enrol(&api, &shouted, &person, "enrolled").await);
    let found = api
        .get(&format!("{MEMBERSHIPS}?program=Program/{shouted}"))
        .await;
    assert_eq!(found.body["meta"]["total"], 1);
    assert_eq!(
        found.body["data"][0]["program"]["reference"],
        format!("Program/{alias}")
    );
    assert!(path.contains("urn:openspp:program-membership|"));
}

/// Every field of a program sent is honoured or refused with a 422 naming it, never dropped.
async fn program_fields_not_dropped() {
    let api = admin().await;
    let mut active_with_end = program_body(&format!("Ends {}", unique("E")), "individual");
    active_with_end["period"] = json!({"start": "2024-01-01", "end": "2024-06-30"});
    let refused = api.post(PROGRAMS, active_with_end.clone()).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "period.end");
    let mut ended = active_with_end;
    ended["status"] = json!("ended");
    let created = api.post(PROGRAMS, ended.clone()).await;
    created.expect(201);
    assert_eq!(
        created.body["period"],
        json!({"start": "2024-01-01", "end": "2024-06-30"})
    );
    assert_eq!(created.body["status"], "ended");
    let path = format!("{PROGRAMS}/{}", alias_of(ended["name"].as_str().unwrap()));
    let mut moved = ended.clone();
    moved["period"]["end"] = json!("2024-07-01");
    let reply = api.put(&path, moved, None).await;
    reply.expect(422);
    assert_eq!(expression(&reply), "period.end");
    let mut restarted = ended.clone();
    restarted["period"]["start"] = json!("2024-02-01");
    let reply = api.put(&path, restarted, None).await;
    reply.expect(200);
    assert_eq!(reply.body["period"]["start"], "2024-02-01");
    let mut contradiction = program_body(&format!("Contradiction {}", unique("C")), "individual");
    contradiction["active"] = json!(false);
    let reply = api.post(PROGRAMS, contradiction).await;
    reply.expect(422);
    assert_eq!(expression(&reply), "active");
}

/// The same for the dates and the reason of a membership.
async fn membership_fields_not_dropped() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = new_person(&api, "ND").await;
    for (field, value, status) in [
        ("exitDate", json!("2024-06-01"), "enrolled"),
        (
            "exitReason",
            json!({"coding": [{"system": "urn:openspp:vocab:exit-reason", "code": "moved"}]}),
            "enrolled",
        ),
        ("enrollmentDate", json!("2024-06-01"), "draft"),
    ] {
        let mut body = membership_body(&program, &person, status);
        body[field] = value;
        let reply = api.post(MEMBERSHIPS, body).await;
        reply.expect(422);
        assert_eq!(expression(&reply), field);
    }
    // An exit cannot come before the enrolment.
    let path = reach(&api, &program, "enrolled").await;
    let mut body = change_body(&api, &path, "exited").await;
    body["exitDate"] = json!("2024-01-14");
    let early = api.put(&path, body, None).await;
    early.expect(422);
    assert_eq!(expression(&early), "exitDate");
    assert_eq!(api.get(&path).await.body["status"], "enrolled");
}

/// Enrolling and changing a membership need a consent covering `program_membership` — and
/// nothing else; without it the beneficiary is unknown and nothing is written.
async fn enrolment_consent() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let stream = program_stream(&program);
    let org = unique("Org");
    let person = unique("EC");
    let record_only = unique("EC-record");
    let stranger = unique("EC-stranger");
    for national_id in [&person, &record_only, &stranger] {
        register_individual(&api, national_id).await;
    }
    let ngo = consent_bound(&org).await;
    // A consent for the person's record is not one for their memberships.
    consent(&api, &record_only, &org, "individual")
        .await
        .expect(201);
    let unknown = enrol(&ngo, &program, &unique("nobody"), "enrolled").await;
    unknown.expect(422);
    let refused = enrol(&ngo, &program, &record_only, "enrolled").await;
    assert_eq!(refused.status, unknown.status);
    assert_eq!(
        refused.body, unknown.body,
        "answered as an unknown beneficiary"
    );
    assert_eq!(membership_events(&stream), 0, "nothing written");
    // A consent for memberships alone is enough.
    let consent = consent(&api, &person, &org, "program_membership").await;
    consent.expect(201);
    let path = created_path(&enrol(&ngo, &program, &person, "enrolled").await);
    let mut body = ngo.get(&path).await.body;
    body.as_object_mut().unwrap().remove("meta");
    body["status"] = json!("paused");
    ngo.put(&path, body.clone(), None).await.expect(200);
    assert_eq!(membership_events(&stream), 3);
    // Searches go through the consent filter too.
    enrol(&api, &program, &stranger, "enrolled")
        .await
        .expect(201);
    let search = format!("{MEMBERSHIPS}?program=Program/{program}");
    let seen = ngo.get(&search).await;
    assert_eq!(seen.body["meta"]["total"], 1);
    assert_eq!(
        seen.body["data"][0]["beneficiary"]["reference"],
        format!("Individual/{NATIONAL_ID}|{person}")
    );
    assert_eq!(api.get(&search).await.body["meta"]["total"], 2);
    let events = membership_events(&stream);
    revoke(&api, &consent).await;
    body["status"] = json!("enrolled");
    ngo.put(&path, body, None).await.expect(404);
    ngo.get(&path).await.expect(404);
    assert_eq!(membership_events(&stream), events, "nothing written");
    assert_eq!(ngo.get(&search).await.body["meta"]["total"], 0);
}

/// `_lastUpdated` narrows program and membership searches.
async fn last_updated_searches() {
    let api = admin().await;
    let (name, program) = new_program(&api, "individual").await;
    let word = name.rsplit(' ').next().unwrap();
    let person = new_person(&api, "LU").await;
    let membership = enrol(&api, &program, &person, "enrolled").await;
    membership.expect(201);
    let encode = |instant: &Value| {
        instant
            .as_str()
            .unwrap()
            .replace(':', "%3A")
            .replace('+', "%2B")
    };
    let program_updated =
        encode(&api.get(&format!("{PROGRAMS}/{program}")).await.body["meta"]["lastUpdated"]);
    let membership_updated = encode(&membership.body["meta"]["lastUpdated"]);
    for (search, expected) in [
        (
            format!("{PROGRAMS}?name={word}&_lastUpdated=ge{program_updated}"),
            1,
        ),
        (
            format!("{PROGRAMS}?name={word}&_lastUpdated=gt{program_updated}"),
            0,
        ),
        (
            format!("{PROGRAMS}?name={word}&_lastUpdated=lt2000-01-01"),
            0,
        ),
        (
            format!("{MEMBERSHIPS}?program={program}&_lastUpdated=ge{membership_updated}"),
            1,
        ),
        (
            format!("{MEMBERSHIPS}?program={program}&_lastUpdated=gt{membership_updated}"),
            0,
        ),
        (
            format!("{MEMBERSHIPS}?program={program}&_lastUpdated=le{membership_updated}"),
            1,
        ),
    ] {
        let found = api.get(&search).await;
        found.expect(200);
        assert_eq!(found.body["meta"]["total"], expected, "{search}");
    }
    api.get(&format!("{PROGRAMS}?_lastUpdated=yesterday"))
        .await
        .expect(400);
}

/// Program events carry the source tracking of the request that caused them.
async fn program_source_tracking() {
    let api = admin().await;
    let name = format!("Tracked {}", unique("S"));
    api.send(
        reqwest::Method::POST,
        PROGRAMS,
        Some(program_body(&name, "individual")),
        &[
            ("X-Source-System", "urn:org:dswd:program-office"),
            ("X-Source-Reference", "memo-12"),
        ],
    )
    .await
    .expect(201);
    let path = format!("{PROGRAMS}/{}", alias_of(&name));
    let mut body = program_body(&name, "individual");
    body["currency"] = json!("USD");
    api.send(
        reqwest::Method::PUT,
        &path,
        Some(body),
        &[("X-Source-Reference", "memo-13")],
    )
    .await
    .expect(200);
    let bundle = api.get(&format!("{path}/_history")).await;
    bundle.expect(200);
    let entries = bundle.body["entry"].as_array().unwrap();
    let created = entries.last().unwrap();
    assert_eq!(created["event"]["type"], "ProgramCreated");
    assert_eq!(
        created["provenance"]["source_system"],
        "urn:org:dswd:program-office"
    );
    assert_eq!(created["provenance"]["source_reference"], "memo-12");
    assert_eq!(
        created["provenance"]["client"],
        format!("urn:openspp:api-client:{}", world().admin.client_id)
    );
    let changed = &entries[0];
    assert_eq!(changed["event"]["type"], "CurrencyChanged");
    assert_eq!(changed["provenance"]["source_reference"], "memo-13");
    assert_eq!(
        changed["provenance"]["source_system"],
        format!("urn:openspp:api-client:{}", world().admin.client_id),
        "without X-Source-System, the client is the source"
    );
}

/// An enrolment's answer is what a read of the membership shows (its program by its alias,
/// its beneficiary by its primary identifier, however the body named them), rendered from
/// what finding them read: after the commit nothing is read back. Counted in the statements
/// the server logs in the request's span: the program, and the beneficiary's claim with its
/// key (the append runs on the store's writer, outside that span).
async fn enrolment_answer_from_what_was_found() {
    let scopes = ["individual:all", "program:all", "program_membership:all"];
    let (_database, logged, api) = logged_client("openspp_enrol_answer", &scopes).await;
    let (name, alias) = new_program(&api, "individual").await;
    let shouted = format!(
        "urn:openspp:program|{}",
        name.to_uppercase().replace(' ', "-")
    );
    let national_id = unique("EA");
    let passport = unique("EAP");
    let mut person = individual_body(&national_id);
    person["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({"system": "urn:openspp:vocab:id-type#passport", "value": passport}));
    api.post("/api/v2/spp/Individual", person).await.expect(201);
    let created = api
        .post(
            &format!("{MEMBERSHIPS}?enrolprobe"),
            json!({"program": {"reference": format!("Program/{shouted}")},
                   "beneficiary": {"reference":
                       format!("Individual/urn:openspp:vocab:id-type#passport|{passport}")},
                   "status": "enrolled"}),
        )
        .await;
    created.expect(201);
    assert_eq!(
        created.body["program"]["reference"],
        format!("Program/{alias}"),
        "{}",
        created.text
    );
    assert_eq!(
        created.body["beneficiary"]["reference"],
        format!("Individual/{NATIONAL_ID}|{national_id}"),
        "{}",
        created.text
    );
    assert_answer_is_read(&api, &created, &minted_path(&created)).await;
    logged
        .assert_within("enrolprobe", ENROL_STATEMENTS, "one enrolment")
        .await;
}

/// The statements an enrolment runs in its request's span with the answer rendered from what
/// was found; one more (the references read back) fails
/// `enrolment_answer_from_what_was_found`.
const ENROL_STATEMENTS: usize = 2;

/// A membership read by its identifier is found with its program's and beneficiary's
/// identifiers in one statement (claim, row and references), and a status change answers with
/// those it located: after the commit nothing is read back. Both answers are what a read
/// shows.
async fn membership_references_beside_the_row() {
    let scopes = ["individual:all", "program:all", "program_membership:all"];
    let (_database, logged, api) = logged_client("openspp_membership_beside", &scopes).await;
    let (_, alias) = new_program(&api, "individual").await;
    let national_id = unique("MB");
    register_individual(&api, &national_id).await;
    let path = minted_path(&enrol(&api, &alias, &national_id, "enrolled").await);
    let read = api.get(&path).await;
    read.expect(200);
    // The first request whose URI names the membership.
    let minted = path.rsplit('|').next().unwrap().to_owned();
    logged
        .assert_within(&minted, READ_STATEMENTS, "one membership read")
        .await;
    assert_eq!(
        read.body["program"]["reference"],
        format!("Program/{alias}")
    );
    assert_eq!(
        read.body["beneficiary"]["reference"],
        format!("Individual/{NATIONAL_ID}|{national_id}"),
        "{}",
        read.text
    );
    let body = change_body(&api, &path, "paused").await;
    let changed = api.put(&format!("{path}?changeprobe"), body, None).await;
    changed.expect(200);
    assert_eq!(changed.body["status"], "paused", "{}", changed.text);
    assert_answer_is_read(&api, &changed, &path).await;
    logged
        .assert_within("changeprobe", CHANGE_STATEMENTS, "one status change")
        .await;
}

/// The statements a membership read by its identifier runs in its request's span.
const READ_STATEMENTS: usize = 2;

/// OpenSPP's address of a membership (its beneficiary's identifier and `?program=`, the
/// program's name alias in any case) is found in one statement, the beneficiary and program
/// resolved inside it, and the membership then read as by its own identifier: two in all,
/// where resolving each kind of registrant and searching its memberships took eight. The
/// answer is the read by the membership's own identifier.
async fn membership_address_in_one_statement() {
    let scopes = ["individual:all", "program:all", "program_membership:all"];
    let (_database, logged, api) = logged_client("openspp_membership_address", &scopes).await;
    let (_, alias) = new_program(&api, "individual").await;
    let national_id = unique("MA");
    register_individual(&api, &national_id).await;
    let enrolled = enrol(&api, &alias, &national_id, "enrolled").await;
    enrolled.expect(201);
    let location = enrolled.header("location").unwrap().to_owned();
    let (system, value) = alias.split_once('|').unwrap();
    let shouted = location.replace(&alias, &format!("{system}|{}", value.to_uppercase()));
    assert_ne!(shouted, location);
    let read = api.get(&shouted).await;
    read.expect(200);
    // The first request whose URI names the beneficiary.
    logged
        .assert_within(
            &national_id,
            READ_STATEMENTS,
            "a membership read at its address",
        )
        .await;
    let own = api.get(&minted_path(&enrolled)).await;
    own.expect(200);
    assert_eq!(read.body, own.body);
    assert_eq!(read.header("etag"), own.header("etag"));
}

/// The statements a status change runs in its request's span: the OpenSPP-address check, the
/// membership with its references, the stream's events. The body's program and beneficiary,
/// restated as the membership renders them, are its own and are not looked up again.
const CHANGE_STATEMENTS: usize = 3;
