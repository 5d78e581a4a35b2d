//! Consent end to end (CONTRACT §5): recorded as events, checked before writes, enforced on
//! every read, and withdrawn for every request that starts after the withdrawal answers.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{
    admin, consent_client, individual_body, path_id, register_individual, sql_scalar, unique,
    world, Api, HeldTransaction, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "consent::specific_recipient_sees_and_another_org_does_not",
            specific,
        ),
        trial("consent::category_matches_the_type_only", category),
        trial(
            "consent::specific_and_category_do_not_stand_in_for_each_other",
            modes_distinct,
        ),
        trial(
            "consent::withdrawn_and_expired_consents_are_not_found",
            withdrawn_and_expired,
        ),
        trial(
            "consent::group_consent_covers_members",
            group_covers_members,
        ),
        trial(
            "consent::unconsented_groups_stay_hidden_on_members",
            hidden_groups,
        ),
        trial(
            "consent::unknown_and_unconsented_answer_identically",
            indistinguishable,
        ),
        trial(
            "consent::search_counts_only_consented_subjects",
            search_counts,
        ),
        trial(
            "consent::fields_outside_the_consent_are_dropped",
            field_access,
        ),
        trial("consent::writes_need_consent_and_record_it", writes),
        trial(
            "consent::client_field_filter_narrows_further",
            client_field_filter,
        ),
        trial("consent::revoke_is_immediate_for_racing_reads", revoke_race),
        trial("consent::validation_names_the_field", validation),
        trial(
            "consent::receipt_history_and_listing",
            receipt_history_listing,
        ),
        trial(
            "consent::only_the_controller_records_and_renews_consents",
            controller_only,
        ),
        trial(
            "consent::a_consent_bound_client_withdraws_only_consents_naming_it",
            recipient_withdrawal,
        ),
        trial(
            "consent::a_future_consent_is_not_yet_valid_and_can_be_withdrawn",
            future_consent,
        ),
        trial(
            "consent::a_write_whose_consent_lapses_before_commit_is_not_found",
            lapsed_mid_write,
        ),
    ]
}

/// Events in the stream of the registrant holding identifier `value`.
pub fn events_of(value: &str) -> String {
    sql_scalar(
        &world().database_url,
        &format!(
            "SELECT count(*) FROM events WHERE aggregate_id = \
             (SELECT aggregate_id FROM identifier_claims WHERE value = '{value}')"
        ),
    )
}

pub const READER_SCOPES: [&str; 3] = ["individual:all", "group:all", "consent:all"];

/// A logged-in client of `organization` (of type `kind`) that needs the subjects' consent.
pub async fn client(organization: &str, kind: &str) -> Api {
    let credentials = consent_client(&world().database_url, organization, kind, &READER_SCOPES);
    Api::new(&world().base).login(&credentials).await
}

pub fn consent_body(subject: &str, mode: &str, recipients: &[&str], types: &[&str]) -> Value {
    json!({
        "subject": subject,
        "recipient_mode": mode,
        "recipients": recipients,
        "recipient_types": types,
        "scopes": [{"resource_type": "individual", "field_access": null, "purpose": "service_delivery"}],
        "legal_basis": "consent",
        "expiry_date": "2099-12-31",
        "delegation_type": "self"
    })
}

/// Registers a person and records `body`'s consent for them; returns (path, consent id).
pub async fn consented_person(
    admin: &Api,
    mode: &str,
    recipients: &[&str],
    types: &[&str],
) -> (String, String) {
    let id = unique("CS");
    let path = register_individual(admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let reply = admin
        .post(
            "/api/v2/spp/Consent",
            consent_body(&subject, mode, recipients, types),
        )
        .await;
    reply.expect(201);
    assert_eq!(reply.body["status"], "given");
    let consent = reply.body["consent_id"].as_str().unwrap().to_owned();
    (path, consent)
}

async fn specific() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, _) = consented_person(&admin, "specific", &[&org], &[]).await;
    let named = client(&org, "ngo").await;
    let reply = named.get(&path).await;
    reply.expect(200);
    assert_eq!(reply.header("x-consent-status"), Some("active"));
    assert!(reply
        .header("x-consent-scope")
        .unwrap()
        .starts_with("individual"));
    client(&unique("Other"), "ngo")
        .await
        .get(&path)
        .await
        .expect(404);
}

async fn category() {
    let admin = admin().await;
    let (path, _) = consented_person(&admin, "category", &[], &["ngo"]).await;
    client(&unique("Any NGO"), "ngo")
        .await
        .get(&path)
        .await
        .expect(200);
    client(&unique("Ministry"), "government")
        .await
        .get(&path)
        .await
        .expect(404);
    client(&unique("Bank"), "private")
        .await
        .get(&path)
        .await
        .expect(404);
    let (both, _) = consented_person(&admin, "category", &[], &["ngo", "government"]).await;
    client(&unique("Ministry"), "government")
        .await
        .get(&both)
        .await
        .expect(200);
    client(&unique("Bank"), "private")
        .await
        .get(&both)
        .await
        .expect(404);
}

async fn modes_distinct() {
    let admin = admin().await;
    // An organisation literally named "ngo" in a specific consent does not admit NGOs …
    let (path, _) = consented_person(&admin, "specific", &["ngo"], &[]).await;
    client(&unique("Some NGO"), "ngo")
        .await
        .get(&path)
        .await
        .expect(404);
    // … and a category consent does not admit an organisation whose name is the category.
    let (path, _) = consented_person(&admin, "category", &[], &["ngo"]).await;
    client("ngo", "government")
        .await
        .get(&path)
        .await
        .expect(404);
}

async fn withdrawn_and_expired() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    let reader = client(&org, "ngo").await;
    reader.get(&path).await.expect(200);
    let revoked = admin
        .post(
            &format!("/api/v2/spp/Consent/{consent}/$revoke"),
            json!({"reason": "asked"}),
        )
        .await;
    revoked.expect(200);
    assert_eq!(revoked.body["status"], "withdrawn");
    reader.get(&path).await.expect(404);
    // Expiry is evaluated at request time: move the expiry into the past behind the server.
    let (path, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    reader.get(&path).await.expect(200);
    sql_scalar(
        &world().database_url,
        &format!(
            "UPDATE consent_index SET expiry_date = current_date - 1, \
             terms = jsonb_set(terms, '{{expiry_date}}', to_jsonb((current_date - 1)::text)) \
             WHERE consent_id = '{consent}' RETURNING 1"
        ),
    );
    reader.get(&path).await.expect(404);
    let read = admin.get(&format!("/api/v2/spp/Consent/{consent}")).await;
    assert_eq!(read.body["status"], "expired");
    // Renewing an expired consent brings the subject back.
    let renewed = admin
        .post(
            &format!("/api/v2/spp/Consent/{consent}/$renew"),
            json!({"expiry_date": "2100-01-01"}),
        )
        .await;
    renewed.expect(200);
    assert_eq!(renewed.body["status"], "renewed");
    reader.get(&path).await.expect(200);
}

async fn group_covers_members() {
    let admin = admin().await;
    let member = unique("GM");
    let member_path = register_individual(&admin, &member).await;
    let group = unique("GC");
    admin
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": "urn:openspp:group", "value": group}], "groupType": "household",
                   "member": [{"entity": {"reference": format!("Individual/{NATIONAL_ID}|{member}")}}]}),
        )
        .await
        .expect(201);
    let mut body = consent_body(
        &format!("Group/urn:openspp:group|{group}"),
        "category",
        &[],
        &["ngo"],
    );
    body["scopes"] =
        json!([{"resource_type": "all", "field_access": null, "purpose": "service_delivery"}]);
    admin.post("/api/v2/spp/Consent", body).await.expect(201);
    let ngo = client(&unique("NGO"), "ngo").await;
    ngo.get(&member_path).await.expect(200);
    ngo.get(&format!(
        "/api/v2/spp/Group/{}",
        path_id("urn:openspp:group", &group)
    ))
    .await
    .expect(200);
}

async fn indistinguishable() {
    let admin = admin().await;
    let id = unique("HID");
    register_individual(&admin, &id).await;
    let outsider = client(&unique("Outsider"), "ngo").await;
    let known = outsider
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &id)
        ))
        .await;
    let unknown = outsider
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &unique("NONE"))
        ))
        .await;
    known.expect(404);
    unknown.expect(404);
    assert_eq!(known.text, unknown.text, "same body");
    let header_names = |r: &crate::support::Reply| {
        let mut names: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
        names.retain(|n| n != "date");
        names.sort();
        names
    };
    assert_eq!(header_names(&known), header_names(&unknown), "same headers");
    // Writes too: refused exactly like an unknown subject, and nothing is written.
    let before = events_of(&id);
    let reply = outsider
        .put(
            &format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &id)),
            individual_body(&id),
            None,
        )
        .await;
    reply.expect(404);
    assert_eq!(reply.text, unknown.text);
    assert_eq!(events_of(&id), before, "nothing was written");
}

async fn search_counts() {
    let admin = admin().await;
    let family = unique("Fam");
    let org = unique("Org");
    let mut consented = None;
    for n in 0..3 {
        let id = unique("SC");
        let mut body = individual_body(&id);
        body["name"]["family"] = json!(family);
        admin.post("/api/v2/spp/Individual", body).await.expect(201);
        if n == 1 {
            let subject = format!("Individual/{NATIONAL_ID}|{id}");
            admin
                .post(
                    "/api/v2/spp/Consent",
                    consent_body(&subject, "specific", &[&org], &[]),
                )
                .await
                .expect(201);
            consented = Some(id);
        }
    }
    let reader = client(&org, "ngo").await;
    let reply = reader
        .get(&format!("/api/v2/spp/Individual?name={family}"))
        .await;
    reply.expect(200);
    assert_eq!(
        reply.body["meta"]["total"], 1,
        "no unconsented subject is counted"
    );
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        reply.body["data"][0]["identifier"][0]["value"],
        consented.unwrap()
    );
    let all = admin
        .get(&format!("/api/v2/spp/Individual?name={family}"))
        .await;
    assert_eq!(all.body["meta"]["total"], 3);
}

async fn field_access() {
    let admin = admin().await;
    let org = unique("Org");
    let id = unique("FA");
    let path = register_individual(&admin, &id).await;
    let mut body = consent_body(
        &format!("Individual/{NATIONAL_ID}|{id}"),
        "specific",
        &[&org],
        &[],
    );
    body["scopes"][0]["field_access"] = json!(["name"]);
    admin.post("/api/v2/spp/Consent", body).await.expect(201);
    let reader = client(&org, "ngo").await;
    let reply = reader.get(&path).await;
    reply.expect(200);
    let keys: Vec<&String> = reply.body.as_object().unwrap().keys().collect();
    assert!(reply.body["name"].is_object());
    assert!(
        reply.body["identifier"].is_array(),
        "identifier is always kept"
    );
    assert!(reply.body.get("birthDate").is_none(), "{keys:?}");
    assert!(reply.body.get("telecom").is_none(), "{keys:?}");
    assert!(reply
        .header("x-consent-scope")
        .unwrap()
        .contains("fields=name"));
}

async fn writes() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    let id = path.rsplit('|').next().unwrap().to_owned();
    let writer = client(&org, "ngo").await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Consented");
    writer.put(&path, body.clone(), None).await.expect(200);
    let stream = sql_scalar(
        &world().database_url,
        &format!("SELECT aggregate_id FROM identifier_claims WHERE value = '{id}'"),
    );
    let used = sql_scalar(
        &world().database_url,
        &format!("SELECT metadata->>'consent_id' FROM events WHERE aggregate_id = '{stream}' ORDER BY sequence DESC LIMIT 1"),
    );
    assert_eq!(used, consent, "the event records the consent it relied on");
    admin
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v2/spp/Consent/{consent}"),
            None,
            &[],
        )
        .await
        .expect(200);
    let count_before = sql_scalar(
        &world().database_url,
        &format!("SELECT count(*) FROM events WHERE aggregate_id = '{stream}'"),
    );
    body["name"]["given"] = json!("After withdrawal");
    writer.put(&path, body, None).await.expect(404);
    let count_after = sql_scalar(
        &world().database_url,
        &format!("SELECT count(*) FROM events WHERE aggregate_id = '{stream}'"),
    );
    assert_eq!(count_before, count_after, "no event was written");
}

async fn revoke_race() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    let reader = client(&org, "ngo").await;
    let started = Instant::now();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let reader = reader.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while started.elapsed() < Duration::from_millis(1500) {
                    let begun = started.elapsed();
                    let status = reader.get(&path).await.status.as_u16();
                    seen.push((begun, status));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    admin
        .post(&format!("/api/v2/spp/Consent/{consent}/$revoke"), json!({}))
        .await
        .expect(200);
    let acknowledged = started.elapsed();
    let mut before = 0;
    for reader in readers {
        for (begun, status) in reader.await.unwrap() {
            if begun > acknowledged {
                assert_eq!(
                    status, 404,
                    "a read started {begun:?} after the revoke ({acknowledged:?}) saw the subject"
                );
            } else if status == 200 {
                before += 1;
            }
        }
    }
    assert!(before > 0, "reads before the revoke were allowed");
}

async fn validation() {
    let admin = admin().await;
    let id = unique("VAL");
    register_individual(&admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let cases = [
        (
            consent_body(&subject, "specific", &[], &["ngo"]),
            "recipients",
        ),
        (
            consent_body(&subject, "category", &["X"], &["ngo"]),
            "recipients",
        ),
        (
            consent_body(&subject, "both", &["X"], &[]),
            "recipient_mode",
        ),
        (
            {
                let mut b = consent_body(&subject, "specific", &["X"], &[]);
                b["effective_date"] = json!("2099-12-31");
                b["expiry_date"] = json!("2099-01-01");
                b
            },
            "expiry_date",
        ),
        (
            {
                let mut b = consent_body(&subject, "specific", &["X"], &[]);
                b["scopes"][0]["resource_type"] = json!("wallet");
                b
            },
            "scopes[0].resource_type",
        ),
        (
            {
                let mut b = consent_body(&subject, "specific", &["X"], &[]);
                b["scopes"][0]["field_access"] = json!(["salary"]);
                b
            },
            "scopes[0].field_access",
        ),
        (
            consent_body(
                &format!("Individual/{NATIONAL_ID}|nobody"),
                "specific",
                &["X"],
                &[],
            ),
            "subject",
        ),
    ];
    for (body, field) in cases {
        let reply = admin.post("/api/v2/spp/Consent", body).await;
        reply.expect(422);
        assert_eq!(
            reply.body["issue"][0]["expression"][0], field,
            "{}",
            reply.text
        );
    }
}

async fn receipt_history_listing() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    let id = path.rsplit('|').next().unwrap().to_owned();
    let receipt = admin
        .get(&format!("/api/v2/spp/Consent/{consent}/$receipt"))
        .await;
    receipt.expect(200);
    assert_eq!(receipt.body["consent_id"], consent);
    assert_eq!(
        receipt.body["data_subject"]["reference"],
        format!("Individual/{NATIONAL_ID}|{id}")
    );
    assert_eq!(receipt.body["purposes"][0]["id"], "service_delivery");
    admin
        .post(
            &format!("/api/v2/spp/Consent/{consent}/$revoke"),
            json!({"reason": "moved away"}),
        )
        .await
        .expect(200);
    let history = admin
        .get(&format!("/api/v2/spp/Consent/{consent}/$history"))
        .await;
    history.expect(200);
    assert_eq!(history.body["current_version"], 2);
    assert_eq!(history.body["history"][0]["action"], "withdraw");
    assert_eq!(history.body["history"][0]["reason"], "moved away");
    assert_eq!(history.body["history"][1]["action"], "give");
    let listed = admin
        .get(&format!(
            "/api/v2/spp/Consent?subject=Individual/{}",
            path_id(NATIONAL_ID, &id)
        ))
        .await;
    listed.expect(200);
    assert_eq!(listed.body["data"][0]["status"], "withdrawn");
    // A client the consent does not name cannot see it.
    client(&unique("Other"), "ngo")
        .await
        .get(&format!("/api/v2/spp/Consent/{consent}"))
        .await
        .expect(404);
}

async fn client_field_filter() {
    let admin = admin().await;
    let id = unique("CFF");
    let path = register_individual(&admin, &id).await;
    // A legal-basis client limited to names and birth dates.
    let credentials = crate::support::create_client(
        &world().database_url,
        &[
            "--scope",
            "individual:all",
            "--field",
            "individual:name",
            "--field",
            "individual:birthDate",
        ],
    );
    let limited = Api::new(&world().base).login(&credentials).await;
    let reply = limited.get(&path).await;
    reply.expect(200);
    assert!(reply.body["name"].is_object());
    assert!(reply.body["birthDate"].is_string());
    assert!(reply.body.get("gender").is_none());
    assert!(reply.body.get("telecom").is_none());
    assert!(reply.body["identifier"].is_array());
    // With a consent listing only `name`, a consent-bound client limited to birth dates sees neither.
    let org = unique("Org");
    let mut body = consent_body(
        &format!("Individual/{NATIONAL_ID}|{id}"),
        "specific",
        &[&org],
        &[],
    );
    body["scopes"][0]["field_access"] = json!(["name", "gender"]);
    admin.post("/api/v2/spp/Consent", body).await.expect(201);
    let printed = crate::support::cli(
        &world().database_url,
        &[
            "client",
            "create",
            "--name",
            "narrow",
            "--organization",
            &org,
            "--organization-type",
            "ngo",
            "--scope",
            "individual:all",
            "--field",
            "individual:gender",
            "--rate-limit-per-minute",
            "0",
            "--rate-limit-per-day",
            "0",
        ],
    );
    let value: Value = serde_json::from_str(printed.trim()).unwrap();
    let narrow = crate::support::Credentials {
        client_id: value["client_id"].as_str().unwrap().to_owned(),
        client_secret: value["client_secret"].as_str().unwrap().to_owned(),
    };
    let narrow = Api::new(&world().base).login(&narrow).await;
    let reply = narrow.get(&path).await;
    reply.expect(200);
    assert!(reply.body["gender"].is_object(), "{}", reply.text);
    assert!(reply.body.get("name").is_none(), "{}", reply.text);
}

async fn hidden_groups() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, _) = consented_person(&admin, "specific", &[&org], &[]).await;
    let id = path.rsplit('|').next().unwrap().to_owned();
    let group = unique("HG");
    admin
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": "urn:openspp:group", "value": group}], "groupType": "household",
                   "member": [{"entity": {"reference": format!("Individual/{NATIONAL_ID}|{id}")}}]}),
        )
        .await
        .expect(201);
    assert!(admin.get(&path).await.body["groupMembership"].is_array());
    let reader = client(&org, "ngo").await;
    let reply = reader.get(&path).await;
    reply.expect(200);
    assert!(
        reply.body.get("groupMembership").is_none(),
        "the household was not consented: {}",
        reply.text
    );
    let mut body = consent_body(
        &format!("Group/urn:openspp:group|{group}"),
        "specific",
        &[&org],
        &[],
    );
    body["scopes"][0]["resource_type"] = json!("group");
    admin.post("/api/v2/spp/Consent", body).await.expect(201);
    let reply = reader.get(&path).await;
    assert_eq!(
        reply.body["groupMembership"][0]["group"]["reference"],
        format!("Group/urn:openspp:group|{group}")
    );
}

async fn controller_only() {
    let admin = admin().await;
    let org = unique("Org");
    let id = unique("CTL");
    let path = register_individual(&admin, &id).await;
    let (_, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    let recipient = client(&org, "ngo").await;
    // Recording: refused before any lookup, so an unknown and an existing subject look alike.
    let existing = recipient
        .post(
            "/api/v2/spp/Consent",
            consent_body(
                &format!("Individual/{NATIONAL_ID}|{id}"),
                "specific",
                &[&org],
                &[],
            ),
        )
        .await;
    existing.expect(403);
    assert_eq!(existing.body["resourceType"], "OperationOutcome");
    assert_eq!(existing.body["issue"][0]["code"], "forbidden");
    let unknown = recipient
        .post(
            "/api/v2/spp/Consent",
            consent_body(
                &format!("Individual/{NATIONAL_ID}|{}", unique("NONE")),
                "specific",
                &[&org],
                &[],
            ),
        )
        .await;
    assert_eq!(unknown.status, existing.status);
    assert_eq!(unknown.text, existing.text);
    // Renewing the consent that names it: refused too.
    recipient
        .post(
            &format!("/api/v2/spp/Consent/{consent}/$renew"),
            json!({"expiry_date": "2100-01-01"}),
        )
        .await
        .expect(403);
    let recorded = |sql: String| sql_scalar(&world().database_url, &sql);
    assert_eq!(
        recorded(format!(
            "SELECT count(*) FROM events WHERE aggregate_type = 'Consent' \
             AND payload -> 'ConsentGiven' -> 'terms' ->> 'subject' = \
             (SELECT aggregate_id FROM identifier_claims WHERE value = '{id}')"
        )),
        "0",
        "no consent was recorded for the subject"
    );
    assert_eq!(
        recorded(format!(
            "SELECT count(*) FROM events WHERE aggregate_id = '{consent}'"
        )),
        "1",
        "the consent was not renewed"
    );
    recipient.get(&path).await.expect(404);
    // The controller (a legal-basis client) still records and renews.
    admin
        .post(
            &format!("/api/v2/spp/Consent/{consent}/$renew"),
            json!({"expiry_date": "2100-01-01"}),
        )
        .await
        .expect(200);
}

async fn recipient_withdrawal() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, mine) = consented_person(&admin, "specific", &[&org], &[]).await;
    let (_, others) = consented_person(&admin, "specific", &[&unique("Other")], &[]).await;
    let recipient = client(&org, "ngo").await;
    // A consent that does not name the client is as unknown to it as a consent that does not
    // exist, for withdrawal too, and stays in force.
    for method in [reqwest::Method::DELETE, reqwest::Method::POST] {
        let suffix = if method == reqwest::Method::POST {
            "/$revoke"
        } else {
            ""
        };
        let body = (method == reqwest::Method::POST).then(|| json!({}));
        let refused = recipient
            .send(
                method.clone(),
                &format!("/api/v2/spp/Consent/{others}{suffix}"),
                body.clone(),
                &[],
            )
            .await;
        refused.expect(404);
        let unknown = recipient
            .send(
                method,
                &format!("/api/v2/spp/Consent/{}{suffix}", uuid::Uuid::new_v4()),
                body,
                &[],
            )
            .await;
        assert_eq!(refused.text, unknown.text);
    }
    let still = admin.get(&format!("/api/v2/spp/Consent/{others}")).await;
    assert_eq!(still.body["status"], "given");
    // The consent that names it: the client may give up its own access.
    recipient
        .post(&format!("/api/v2/spp/Consent/{mine}/$revoke"), json!({}))
        .await
        .expect(200);
    recipient.get(&path).await.expect(404);
}

async fn future_consent() {
    let admin = admin().await;
    let org = unique("Org");
    let id = unique("FUT");
    let path = register_individual(&admin, &id).await;
    let mut body = consent_body(
        &format!("Individual/{NATIONAL_ID}|{id}"),
        "specific",
        &[&org],
        &[],
    );
    body["effective_date"] = json!("2099-01-01");
    let mut given = Vec::new();
    for _ in 0..2 {
        let reply = admin.post("/api/v2/spp/Consent", body.clone()).await;
        reply.expect(201);
        assert_eq!(reply.body["status"], "given");
        assert_eq!(reply.body["is_valid"], false);
        given.push(reply.body["consent_id"].as_str().unwrap().to_owned());
    }
    let receipt = admin
        .get(&format!("/api/v2/spp/Consent/{}/$receipt", given[0]))
        .await;
    assert_eq!(receipt.body["status"], "given");
    assert_eq!(receipt.body["is_valid"], false);
    client(&org, "ngo").await.get(&path).await.expect(404);
    // The subject can take it back before it ever takes effect, by either route.
    let revoked = admin
        .post(
            &format!("/api/v2/spp/Consent/{}/$revoke", given[0]),
            json!({"reason": "changed my mind"}),
        )
        .await;
    revoked.expect(200);
    assert_eq!(revoked.body["status"], "withdrawn");
    admin
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v2/spp/Consent/{}", given[1]),
            None,
            &[],
        )
        .await
        .expect(200);
    let read = admin
        .get(&format!("/api/v2/spp/Consent/{}", given[1]))
        .await;
    assert_eq!(read.body["status"], "withdrawn");
    assert_eq!(read.body["is_valid"], false);
    // Twice is still a conflict.
    admin
        .post(
            &format!("/api/v2/spp/Consent/{}/$revoke", given[0]),
            json!({}),
        )
        .await
        .expect(409);
    // A consent in force says so.
    let (_, current) = consented_person(&admin, "specific", &[&org], &[]).await;
    let read = admin.get(&format!("/api/v2/spp/Consent/{current}")).await;
    assert_eq!(read.body["is_valid"], true);
}

async fn lapsed_mid_write() {
    let admin = admin().await;
    let org = unique("Org");
    let (path, consent) = consented_person(&admin, "specific", &[&org], &[]).await;
    let id = path.rsplit('|').next().unwrap().to_owned();
    // The withdrawal's transaction holds the consent's row while the write reaches its append.
    write_lapsing_under(
        &client(&org, "ngo").await,
        &id,
        &format!("SELECT 1 FROM consent_index WHERE consent_id = '{consent}' FOR UPDATE;"),
        &format!("UPDATE consent_index SET status = 'withdrawn' WHERE consent_id = '{consent}';"),
    )
    .await;
}

/// Fires a PUT of the person `id` by `writer` while a transaction holds `lock` (a row lock the
/// write's append needs), waits until the write waits for it, then runs `change` in that
/// transaction and commits: the write must answer exactly as for an unknown subject, and write
/// nothing.
pub async fn write_lapsing_under(writer: &Api, id: &str, lock: &str, change: &str) {
    let unknown = writer
        .put(
            &format!(
                "/api/v2/spp/Individual/{}",
                path_id(NATIONAL_ID, &unique("NONE"))
            ),
            individual_body(id),
            None,
        )
        .await;
    unknown.expect(404);
    let before = events_of(id);
    let held = HeldTransaction::begin(&world().database_url, lock).await;
    let mut body = individual_body(id);
    body["name"]["given"] = json!("Raced");
    let write = tokio::spawn({
        let writer = writer.clone();
        let path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, id));
        async move { writer.put(&path, body, None).await }
    });
    held.wait_until_blocking().await;
    held.commit_with(change);
    let reply = write.await.unwrap();
    reply.expect(404);
    assert_eq!(
        reply.text, unknown.text,
        "the answer for an unknown subject"
    );
    assert_eq!(events_of(id), before, "no event was written");
}

/// Records a consent of `subject` (`Individual/…` or `Group/…`) for `organization` over
/// `resource_type`, showing `fields` (null: every field).
pub async fn give_consent(
    admin: &Api,
    subject: &str,
    organization: &str,
    resource_type: &str,
    fields: Value,
) {
    let mut body = consent_body(subject, "specific", &[organization], &[]);
    body["scopes"][0]["resource_type"] = json!(resource_type);
    body["scopes"][0]["field_access"] = fields;
    admin.post("/api/v2/spp/Consent", body).await.expect(201);
}
