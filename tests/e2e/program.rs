//! Programs and memberships end to end: the whole transition table, concurrent enrolment,
//! allowed programs, consent, and ETag/If-Match.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{
    admin, consent_client, create_client, path_id, register_individual, unique, world, Api,
    NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("program::create_read_search_and_name_alias", programs),
        trial("program::rename_end_and_archive", program_changes),
        trial("program::every_membership_transition", transition_table),
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

pub(crate) async fn enrol(
    api: &Api,
    program: &str,
    national_id: &str,
    status: &str,
) -> crate::support::Reply {
    api.post(
        "/api/v2/spp/ProgramMembership",
        json!({"program": {"reference": format!("Program/{program}")},
               "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{national_id}")},
               "status": status}),
    )
    .await
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
    let person = unique("TT");
    register_individual(api, &person).await;
    let initial = match status {
        "draft" | "duplicated" => "draft",
        "not_eligible" => "not_eligible",
        _ => "enrolled",
    };
    let created = enrol(api, program, &person, initial).await;
    created.expect(201);
    let id = created
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let path = format!("/api/v2/spp/ProgramMembership/{id}");
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
                assert!(
                    reply.body["detail"].as_str().unwrap().contains("allowed"),
                    "{}",
                    reply.text
                );
                assert_eq!(api.get(&path).await.body["status"], from, "nothing changed");
            }
        }
    }
    // enrollmentDate is set the first time and never overwritten.
    let path = reach(&api, &program, "paused").await;
    let first = api.get(&path).await.body["enrollmentDate"].clone();
    assert!(first.is_string());
    let body = change_body(&api, &path, "enrolled").await;
    assert_eq!(
        api.put(&path, body, None).await.body["enrollmentDate"],
        first
    );
    // An exit needs its reason.
    let path = reach(&api, &program, "enrolled").await;
    let mut body = change_body(&api, &path, "exited").await;
    body.as_object_mut().unwrap().remove("exitReason");
    api.put(&path, body, None).await.expect(422);
}

async fn concurrent_enrolment() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = unique("CE");
    register_individual(&api, &person).await;
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
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
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
    let person = unique("ER");
    register_individual(&api, &person).await;
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
    let location = created.header("location").unwrap().to_owned();
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
    let person = unique("AP");
    register_individual(&api, &person).await;
    let in_other = enrol(&api, &other, &person, "enrolled").await;
    in_other.expect(201);
    let other_membership = in_other.header("location").unwrap().to_owned();
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
    limited
        .get(&format!("/api/v2/spp/Program/{mine}"))
        .await
        .expect(200);
    limited
        .get(&format!("/api/v2/spp/Program/{other}"))
        .await
        .expect(404);
    let listed = limited.get("/api/v2/spp/Program?_count=100").await;
    assert!(listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(
            |p| p["identifier"].as_array().unwrap().iter().any(|i| format!(
                "{}|{}",
                i["system"].as_str().unwrap(),
                i["value"].as_str().unwrap()
            ) == mine)
        ));
    limited.get(&other_membership).await.expect(404);
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

async fn membership_consent() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let org = unique("Org");
    let person = unique("MC");
    register_individual(&api, &person).await;
    let ngo = Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            &org,
            "ngo",
            &["program_membership:all", "program:read"],
        ))
        .await;
    // No consent yet: the beneficiary is unknown to this client.
    enrol(&ngo, &program, &person, "enrolled").await.expect(422);
    let consent = api
        .post(
            "/api/v2/spp/Consent",
            json!({"subject": format!("Individual/{NATIONAL_ID}|{person}"), "recipient_mode": "specific",
                   "recipients": [org], "expiry_date": "2099-01-01",
                   "scopes": [{"resource_type": "all", "field_access": null, "purpose": "service_delivery"}]}),
        )
        .await;
    consent.expect(201);
    let created = enrol(&ngo, &program, &person, "enrolled").await;
    created.expect(201);
    let path = created.header("location").unwrap().to_owned();
    let read = ngo.get(&path).await;
    read.expect(200);
    let etag = read.header("etag").unwrap().to_owned();
    let mut body = read.body.clone();
    body.as_object_mut().unwrap().remove("meta");
    body["status"] = json!("paused");
    ngo.put(&path, body.clone(), Some(&etag)).await.expect(200);
    ngo.put(&path, body.clone(), Some(&etag)).await.expect(412);
    // Withdrawal: the membership disappears for this client.
    let consent_id = consent.body["consent_id"].as_str().unwrap();
    api.post(
        &format!("/api/v2/spp/Consent/{consent_id}/$revoke"),
        json!({}),
    )
    .await
    .expect(200);
    ngo.get(&path).await.expect(404);
    body["status"] = json!("enrolled");
    ngo.put(&path, body, None).await.expect(404);
}

/// Program and membership histories tell who changed what, like every other resource's.
async fn histories() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = unique("PH");
    register_individual(&api, &person).await;
    let created = enrol(&api, &program, &person, "enrolled").await;
    created.expect(201);
    let path = created.header("location").unwrap().to_owned();
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
