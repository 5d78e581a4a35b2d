//! What a limited client must not learn indirectly (issue 8, items 2, 4, 7, 10, 12 and 13):
//! through a membership search's totals, a group's member count, a history's event names, an
//! access log entry linked through a second identifier, another recipient's use of a consent,
//! or a clash on a membership identifier of a program it may not see.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::give_consent;
use crate::group::{member, new_group};
use crate::program::{enrol, new_program};
use crate::support::{
    admin, audit_events, consent_client, create_client, individual_body, path_id, query_instant,
    register_individual, unique, world, Api, Reply, NATIONAL_ID,
};
use crate::trial;

const MEMBERSHIPS: &str = "/api/v2/spp/ProgramMembership";
const GROUP_SYSTEM: &str = "urn:openspp:group";
const PASSPORT: &str = "urn:openspp:vocab:id-type#passport";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "disclosure::membership_search_counts_only_memberships_showing_the_field",
            membership_search_consent_fields,
        ),
        trial(
            "disclosure::membership_search_on_a_field_the_client_filter_hides_is_403",
            membership_search_client_filter,
        ),
        trial(
            "disclosure::group_quantity_counts_only_visible_members",
            group_quantity,
        ),
        trial(
            "disclosure::hidden_changes_show_as_a_neutral_version_on_every_route",
            hidden_changes_neutral,
        ),
        trial(
            "disclosure::program_limited_and_consent_bound_clients_cannot_choose_membership_ids",
            membership_identifier_minted,
        ),
        trial(
            "disclosure::program_limited_auditors_see_only_their_own_accesses",
            program_limited_audit,
        ),
        trial(
            "disclosure::access_summary_shows_a_recipient_only_its_own_use",
            access_summary_own_use,
        ),
        trial(
            "disclosure::audit_subject_search_does_not_link_identifiers_of_hidden_people",
            audit_subject_linkage,
        ),
    ]
}

fn total(reply: &Reply) -> i64 {
    reply.expect(200);
    reply.body["meta"]["total"].as_i64().unwrap()
}

/// The field an OperationOutcome names.
fn expression(reply: &Reply) -> &str {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
}

/// A consent-bound NGO client of `organization` with `scopes`.
async fn ngo(organization: &str, scopes: &[&str]) -> Api {
    Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            organization,
            "ngo",
            scopes,
        ))
        .await
}

/// Item 2: a membership's status (or program, or beneficiary) that its consent does not show
/// is never a search criterion: a true and a false status count alike, and a sort on it admits
/// nothing, while a consent showing the field is searched as usual.
async fn membership_search_consent_fields() {
    let admin = admin().await;
    let org = unique("Org");
    let (_, program) = new_program(&admin, "individual").await;
    let hidden = unique("MS-hidden");
    let shown = unique("MS-shown");
    for person in [&hidden, &shown] {
        register_individual(&admin, person).await;
        enrol(&admin, &program, person, "enrolled")
            .await
            .expect(201);
    }
    let subject = |id: &str| format!("Individual/{NATIONAL_ID}|{id}");
    give_consent(
        &admin,
        &subject(&hidden),
        &org,
        "program_membership",
        json!(["program"]),
    )
    .await;
    give_consent(
        &admin,
        &subject(&shown),
        &org,
        "program_membership",
        Value::Null,
    )
    .await;
    let reader = ngo(&org, &["program_membership:all", "program:read"]).await;
    let in_program = format!("{MEMBERSHIPS}?program=Program/{program}");
    // Both memberships show their program.
    assert_eq!(total(&reader.get(&in_program).await), 2);
    let listed = reader.get(&format!("{in_program}&_count=100")).await;
    let statuses: Vec<&Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["status"])
        .collect();
    assert!(
        statuses.contains(&&Value::Null),
        "one status is hidden: {}",
        listed.text
    );
    // Only the membership whose consent shows its status is searched or sorted by it.
    for condition in ["status=enrolled", "_sort=status", "_sort=-status"] {
        let found = reader.get(&format!("{in_program}&{condition}")).await;
        assert_eq!(total(&found), 1, "{condition}");
        assert_eq!(
            found.body["data"][0]["beneficiary"]["reference"],
            subject(&shown),
            "{condition}"
        );
    }
    assert_eq!(
        total(&reader.get(&format!("{in_program}&status=paused")).await),
        0
    );
    // The hidden one answers alike for its true and a false status …
    let beneficiary = |id: &str| {
        format!(
            "{MEMBERSHIPS}?beneficiary=Individual/{}",
            path_id(NATIONAL_ID, id)
        )
    };
    // … and its beneficiary, which the consent does not show, is no criterion either.
    assert_eq!(total(&reader.get(&beneficiary(&hidden)).await), 0);
    assert_eq!(total(&reader.get(&beneficiary(&shown)).await), 1);
    assert_eq!(
        total(
            &reader
                .get(&format!("{}&status=enrolled", beneficiary(&shown)))
                .await
        ),
        1
    );
    // A client acting under a legal basis sees both, as before.
    assert_eq!(
        total(&admin.get(&format!("{in_program}&status=enrolled")).await),
        2
    );
}

/// Item 2: a parameter or sort on a membership field the client's own `--field` filter hides
/// is refused, naming the parameter; one on a field it sees is answered.
async fn membership_search_client_filter() {
    let admin = admin().await;
    let (_, program) = new_program(&admin, "individual").await;
    let person = unique("MF");
    register_individual(&admin, &person).await;
    enrol(&admin, &program, &person, "enrolled")
        .await
        .expect(201);
    let limited = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &[
                "--scope",
                "program_membership:all",
                "--field",
                "program_membership:program",
            ],
        ))
        .await;
    let in_program = format!("{MEMBERSHIPS}?program=Program/{program}");
    let found = limited.get(&in_program).await;
    assert_eq!(total(&found), 1);
    assert!(
        found.body["data"][0].get("status").is_none(),
        "{}",
        found.text
    );
    for (query, parameter) in [
        (format!("{in_program}&status=enrolled"), "status"),
        (format!("{in_program}&_sort=status"), "_sort"),
        (format!("{MEMBERSHIPS}?status=paused"), "status"),
        (
            format!(
                "{MEMBERSHIPS}?beneficiary=Individual/{}",
                path_id(NATIONAL_ID, &person)
            ),
            "beneficiary",
        ),
    ] {
        let refused = limited.get(&query).await;
        refused.expect(403);
        assert_eq!(expression(&refused), parameter, "{query}: {}", refused.text);
    }
}

/// Item 12: a group's `quantity`, now and in every past version, counts only the members the
/// caller may see — the current entries its `member` list shows.
async fn group_quantity() {
    let admin = admin().await;
    let org = unique("Org");
    let (seen, unseen, later) = (unique("GQ-seen"), unique("GQ-unseen"), unique("GQ-later"));
    for person in [&seen, &unseen, &later] {
        register_individual(&admin, person).await;
    }
    let (value, path) = new_group(
        &admin,
        json!([member(&seen, "head"), member(&unseen, "member")]),
    )
    .await;
    give_consent(
        &admin,
        &format!("Group/{GROUP_SYSTEM}|{value}"),
        &org,
        "group",
        Value::Null,
    )
    .await;
    give_consent(
        &admin,
        &format!("Individual/{NATIONAL_ID}|{seen}"),
        &org,
        "individual",
        Value::Null,
    )
    .await;
    admin
        .post(&format!("{path}/$add-member"), member(&later, "member"))
        .await
        .expect(201);
    assert_eq!(admin.get(&path).await.body["quantity"], 3);
    let reader = ngo(
        &org,
        &[
            "group:read",
            "group:search",
            "individual:read",
            "audit:read",
        ],
    )
    .await;
    let read = reader.get(&path).await;
    read.expect(200);
    assert_eq!(
        read.body["member"].as_array().unwrap().len(),
        1,
        "{}",
        read.text
    );
    assert_eq!(read.body["quantity"], 1, "{}", read.text);
    // Searches render groups the same way.
    let found = reader
        .get(&format!(
            "/api/v2/spp/Group?identifier={}",
            path_id(GROUP_SYSTEM, &value)
        ))
        .await;
    assert_eq!(total(&found), 1);
    assert_eq!(found.body["data"][0]["quantity"], 1);
    // Past versions and the history count the same members: registered (1), identified (2),
    // the seen member (3), the unseen one (4), the later one (5).
    let history = reader.get(&format!("{path}/_history")).await;
    history.expect(200);
    let entries = history.body["entry"].as_array().unwrap();
    let quantities: Vec<&Value> = entries.iter().map(|e| &e["resource"]["quantity"]).collect();
    assert_eq!(quantities, [1, 1, 1, 0, 0], "{}", history.text);
    // Members nobody showed this client changed nothing it sees: neutral versions.
    for entry in &entries[..2] {
        assert_eq!(entry["event"]["type"], "Changed", "{entry}");
        assert_eq!(entry["changes"], json!([]), "{entry}");
    }
    assert_eq!(entries[2]["event"]["type"], "MemberAdded");
    let fourth = reader.get(&format!("{path}/_history/4")).await;
    fourth.expect(200);
    assert_eq!(fourth.body["quantity"], 1, "{}", fourth.text);
    // The full view still tells the story.
    let full = admin.get(&format!("{path}/_history")).await;
    assert_eq!(full.body["entry"][0]["event"]["type"], "MemberAdded");
    assert_eq!(full.body["entry"][0]["resource"]["quantity"], 3);
    assert_eq!(
        admin.get(&format!("{path}/_history/4")).await.body["quantity"],
        2
    );
}

/// Item 10: a field-limited client learns that a resource changed and when — every version is
/// listed, with its real `versionId`, `ETag` and `lastUpdated` — never what changed where it
/// may not look; `_history`, `_history/{n}`, `_at` and the read agree.
async fn hidden_changes_neutral() {
    let admin = admin().await;
    let org = unique("Org");
    let id = unique("HC");
    let path = register_individual(&admin, &id).await;
    let mut body = individual_body(&id);
    body["birthDate"] = json!("1986-04-16");
    admin.put(&path, body, None).await.expect(200);
    give_consent(
        &admin,
        &format!("Individual/{NATIONAL_ID}|{id}"),
        &org,
        "individual",
        json!(["name"]),
    )
    .await;
    let reader = ngo(&org, &["individual:read", "audit:read"]).await;
    let read = reader.get(&path).await;
    read.expect(200);
    assert_eq!(read.header("etag"), Some("\"3\""), "the real version");
    assert_eq!(read.body["meta"]["versionId"], "3");
    // Registered (1), identified (2), the birth date changed (3).
    let history = reader.get(&format!("{path}/_history")).await;
    history.expect(200);
    assert_eq!(history.body["total"], 3);
    let hidden = &history.body["entry"][0];
    assert_eq!(hidden["versionId"], "3");
    assert_eq!(
        hidden["event"],
        json!({"type": "Changed", "description": "Changed"})
    );
    assert_eq!(hidden["changes"], json!([]));
    assert!(hidden["resource"].get("birthDate").is_none(), "{hidden}");
    assert_eq!(hidden["resource"]["meta"]["versionId"], "3");
    let recorded = hidden["provenance"]["recorded"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        hidden["resource"]["meta"]["lastUpdated"],
        read.body["meta"]["lastUpdated"]
    );
    // `_history/3` and `_at` serve that version the same way.
    let vread = reader.get(&format!("{path}/_history/3")).await;
    vread.expect(200);
    assert_eq!(vread.header("etag"), Some("\"3\""));
    assert_eq!(vread.body, hidden["resource"]);
    let at = reader
        .get(&format!("{path}?_at={}", query_instant(&recorded)))
        .await;
    at.expect(200);
    assert_eq!(at.body, hidden["resource"]);
    // The registration is shown with the fields this client sees.
    assert_eq!(
        history.body["entry"][2]["event"]["type"],
        "IndividualRegistered"
    );
    // A caller who sees everything reads the event's own name.
    let full = admin.get(&format!("{path}/_history")).await;
    assert_eq!(full.body["entry"][0]["event"]["type"], "BirthDateChanged");
}

/// Item 13: a client limited to programs, or acting under consent, gets its membership
/// identifiers minted; naming one is 403 at `identifier`, the same whether another program's
/// membership uses the value or not, and nothing is enrolled.
async fn membership_identifier_minted() {
    let admin = admin().await;
    let (_, mine) = new_program(&admin, "individual").await;
    let (_, other) = new_program(&admin, "individual").await;
    let (person, stranger) = (unique("MM"), unique("MM-other"));
    for id in [&person, &stranger] {
        register_individual(&admin, id).await;
    }
    let taken = unique("taken");
    let mut body = json!({"program": {"reference": format!("Program/{other}")},
        "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{stranger}")},
        "status": "enrolled",
        "identifier": [{"system": "urn:openspp:program-membership", "value": taken}]});
    admin.post(MEMBERSHIPS, body.clone()).await.expect(201);
    let limited = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &[
                "--scope",
                "program_membership:all",
                "--scope",
                "program:read",
                "--program",
                &mine,
            ],
        ))
        .await;
    let org = unique("Org");
    give_consent(
        &admin,
        &format!("Individual/{NATIONAL_ID}|{person}"),
        &org,
        "program_membership",
        Value::Null,
    )
    .await;
    let consent_bound = ngo(&org, &["program_membership:all", "program:read"]).await;
    body["program"]["reference"] = json!(format!("Program/{mine}"));
    body["beneficiary"]["reference"] = json!(format!("Individual/{NATIONAL_ID}|{person}"));
    for client in [&limited, &consent_bound] {
        let clash = client.post(MEMBERSHIPS, body.clone()).await;
        clash.expect(403);
        assert_eq!(expression(&clash), "identifier");
        let mut free = body.clone();
        free["identifier"][0]["value"] = json!(unique("free"));
        let refused = client.post(MEMBERSHIPS, free).await;
        assert_eq!(refused.status, clash.status);
        assert_eq!(refused.body, clash.body, "a clash tells nothing");
    }
    let by_person = format!(
        "{MEMBERSHIPS}?beneficiary=Individual/{}",
        path_id(NATIONAL_ID, &person)
    );
    assert_eq!(total(&admin.get(&by_person).await), 0, "nothing enrolled");
    // Without an identifier, one is minted.
    let mut minted = body.clone();
    minted.as_object_mut().unwrap().remove("identifier");
    let created = limited.post(MEMBERSHIPS, minted).await;
    created.expect(201);
    assert_eq!(
        created.body["identifier"][0]["system"],
        "urn:openspp:program-membership"
    );
    assert_ne!(created.body["identifier"][0]["value"], taken);
}

/// Item 13: a client limited to some programs sees only its own accesses in the access log.
async fn program_limited_audit() {
    let admin = admin().await;
    let (_, mine) = new_program(&admin, "individual").await;
    admin.get("/api/v2/spp/Program").await.expect(200);
    let credentials = create_client(
        &world().database_url,
        &[
            "--scope",
            "audit:read",
            "--scope",
            "program:read",
            "--program",
            &mine,
        ],
    );
    let limited = Api::new(&world().base).login(&credentials).await;
    limited
        .get(&format!("/api/v2/spp/Program/{mine}"))
        .await
        .expect(200);
    let own = audit_events(&limited, "_count=100", 1).await;
    for entry in own["data"].as_array().unwrap() {
        assert_eq!(
            entry["agent"]["who"],
            format!("urn:openspp:api-client:{}", credentials.client_id),
            "{entry}"
        );
    }
    let others = limited
        .get(&format!(
            "/api/v2/spp/AuditEvent?client={}",
            world().admin.client_id
        ))
        .await;
    assert_eq!(total(&others), 0);
}

/// Item 7: two NGOs use one category consent; each sees only its own use of it in
/// `$access-summary`, while the controller sees both.
async fn access_summary_own_use() {
    let admin = admin().await;
    let id = unique("AS");
    let path = register_individual(&admin, &id).await;
    let consent = admin
        .post(
            "/api/v2/spp/Consent",
            json!({"subject": format!("Individual/{NATIONAL_ID}|{id}"), "recipient_mode": "category",
                   "recipient_types": ["ngo"], "expiry_date": "2099-01-01",
                   "scopes": [{"resource_type": "individual", "field_access": null, "purpose": "service_delivery"}]}),
        )
        .await;
    consent.expect(201);
    let consent_id = consent.body["consent_id"].as_str().unwrap().to_owned();
    let scopes = ["individual:read", "consent:read", "audit:read"];
    let first = consent_client(&world().database_url, &unique("NGO A"), "ngo", &scopes);
    let second = consent_client(&world().database_url, &unique("NGO B"), "ngo", &scopes);
    let a = Api::new(&world().base).login(&first).await;
    let b = Api::new(&world().base).login(&second).await;
    a.get(&path).await.expect(200);
    for _ in 0..3 {
        b.get(&path).await.expect(200);
    }
    // The log is written in batches: wait until the controller sees all four reads.
    audit_events(&admin, &format!("client={}", second.client_id), 3).await;
    audit_events(&admin, &format!("client={}", first.client_id), 1).await;
    let summary = format!("/api/v2/spp/Consent/{consent_id}/$access-summary");
    let full = admin.get(&summary).await;
    full.expect(200);
    assert_eq!(
        full.body["clients"].as_array().unwrap().len(),
        2,
        "{}",
        full.text
    );
    let mine = a.get(&summary).await;
    mine.expect(200);
    let clients = mine.body["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{}", mine.text);
    assert_eq!(
        clients[0]["client"],
        format!("urn:openspp:api-client:{}", first.client_id)
    );
    assert!(!mine.text.contains(&second.client_id), "{}", mine.text);
    assert!(
        mine.body["total_accesses"].as_i64().unwrap()
            < full.body["total_accesses"].as_i64().unwrap()
    );
}

/// Item 4: a consent-bound auditor's `AuditEvent?subject=` resolves only people it may see now,
/// so a second identifier of someone it may not see does not find its lookup under the first.
async fn audit_subject_linkage() {
    let admin = admin().await;
    let (id, passport) = (unique("AL"), unique("AL-pp"));
    let path = register_individual(&admin, &id).await;
    let mut body = individual_body(&id);
    body["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({"system": PASSPORT, "value": passport}));
    admin.put(&path, body, None).await.expect(200);
    let org = unique("Org");
    let credentials = consent_client(
        &world().database_url,
        &org,
        "ngo",
        &["individual:read", "audit:read"],
    );
    let auditor = Api::new(&world().base).login(&credentials).await;
    auditor.get(&path).await.expect(404);
    let by = |system: &str, value: &str| format!("subject=Individual/{}", path_id(system, value));
    // Its own refused lookup is found by the reference it used …
    audit_events(&auditor, &by(NATIONAL_ID, &id), 1).await;
    // … but not through the other identifier of a person it may not see.
    let linked = auditor
        .get(&format!(
            "/api/v2/spp/AuditEvent?{}",
            by(PASSPORT, &passport)
        ))
        .await;
    assert_eq!(total(&linked), 0, "{}", linked.text);
    // Once it may see the person, both identifiers name them.
    give_consent(
        &admin,
        &format!("Individual/{NATIONAL_ID}|{id}"),
        &org,
        "individual",
        Value::Null,
    )
    .await;
    let now = audit_events(&auditor, &by(PASSPORT, &passport), 1).await;
    assert!(now.to_string().contains(&id), "{now}");
    // The controller's search links them whatever.
    let controller = audit_events(&admin, &by(PASSPORT, &passport), 1).await;
    assert!(controller["meta"]["total"].as_i64().unwrap() >= 1);
}
