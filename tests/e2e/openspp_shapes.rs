//! OpenSPP's addresses and shapes, sent as an OpenSPP client sends them: a membership by its
//! beneficiary and program, a duplicate enrolment, and consents with `grantee`, `field_access`
//! levels, the receipt's fields and `changed_fields`.

use libtest_mimic::Trial;
use serde_json::json;

use crate::consent::consent_body;
use crate::program::{change_body, enrol, new_program};
use crate::support::{
    admin, consent_client, minted_path, path_id, register_individual, unique, world, Api,
    NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "openspp_shapes::membership_by_beneficiary_and_program",
            membership_address,
        ),
        trial(
            "openspp_shapes::membership_address_under_consent",
            membership_address_consent,
        ),
        trial("openspp_shapes::consent_field_access_levels", field_access),
        trial("openspp_shapes::consent_receipt_and_history", receipt),
    ]
}

/// OpenSPP's address reads and changes the membership; with two programs and no `program` it
/// is ambiguous (409); the minted identifier keeps working; a second enrolment is a 422.
async fn membership_address() {
    let api = admin().await;
    let (_, first) = new_program(&api, "individual").await;
    let (_, second) = new_program(&api, "individual").await;
    let person = unique("MP");
    register_individual(&api, &person).await;
    let enrolled = enrol(&api, &first, &person, "enrolled").await;
    enrolled.expect(201);
    let location = enrolled.header("location").unwrap().to_owned();
    let by_beneficiary = format!(
        "/api/v2/spp/ProgramMembership/{}",
        path_id(NATIONAL_ID, &person)
    );
    assert_eq!(
        location,
        format!("{by_beneficiary}?program=Program/{first}")
    );
    // One membership: the beneficiary alone names it.
    let only = api.get(&by_beneficiary).await;
    only.expect(200);
    assert_eq!(
        only.body["program"]["reference"],
        format!("Program/{first}")
    );
    // Duplicate enrolment: as OpenSPP, 422.
    let duplicate = enrol(&api, &first, &person, "enrolled").await;
    duplicate.expect(422);
    enrol(&api, &second, &person, "draft").await.expect(201);
    let ambiguous = api.get(&by_beneficiary).await;
    ambiguous.expect(409);
    let read = api.get(&location).await;
    read.expect(200);
    assert_eq!(
        read.body["program"]["reference"],
        format!("Program/{first}")
    );
    let version = read.header("etag").unwrap().to_owned();
    let in_second = api
        .get(&format!("{by_beneficiary}?program=Program/{second}"))
        .await;
    in_second.expect(200);
    assert_eq!(in_second.body["status"], "draft");
    // PUT at OpenSPP's address; the state machine and If-Match still hold.
    let body = change_body(&api, &location, "paused").await;
    api.put(&location, body.clone(), Some(&version))
        .await
        .expect(200);
    api.put(&location, body.clone(), Some(&version))
        .await
        .expect(412);
    api.put(&by_beneficiary, body, None).await.expect(409);
    let draft = change_body(&api, &location, "draft").await;
    api.put(&location, draft, None).await.expect(409);
    // The minted identifier names the same membership.
    let minted = api.get(&minted_path(&enrolled)).await;
    minted.expect(200);
    assert_eq!(minted.body["status"], "paused");
    // Unknown program: 404; malformed: 400 naming it.
    api.get(&format!(
        "{by_beneficiary}?program=Program/urn:openspp:program|nope"
    ))
    .await
    .expect(404);
    let malformed = api.get(&format!("{by_beneficiary}?program=nope")).await;
    malformed.expect(400);
    assert_eq!(malformed.body["issue"][0]["expression"][0], "program");
}

/// A consent-bound client sees a membership at OpenSPP's address only under a consent for
/// memberships; otherwise it is as unknown as one that does not exist.
async fn membership_address_consent() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = unique("MC");
    register_individual(&api, &person).await;
    let enrolled = enrol(&api, &program, &person, "enrolled").await;
    enrolled.expect(201);
    let location = enrolled.header("location").unwrap().to_owned();
    let org = unique("Org");
    let credentials = consent_client(
        &world().database_url,
        &org,
        "ngo",
        &["program_membership:read"],
    );
    let ngo = Api::new(&world().base).login(&credentials).await;
    ngo.get(&location).await.expect(404);
    let mut body = consent_body(
        &format!("Individual/{NATIONAL_ID}|{person}"),
        "specific",
        &[&org],
        &[],
    );
    body["scopes"][0]["resource_type"] = json!("program_membership");
    api.post("/api/v2/spp/Consent", body).await.expect(201);
    ngo.get(&location).await.expect(200);
}

/// OpenSPP's `field_access` levels are accepted and shown, and decide what a reader sees.
async fn field_access() {
    let api = admin().await;
    let org = unique("Org");
    let person = unique("FA");
    let path = register_individual(&api, &person).await;
    let subject = format!("Individual/{NATIONAL_ID}|{person}");
    let mut body = consent_body(&subject, "specific", &[&org], &[]);
    body["scopes"] = json!([{"resource_type": "individual", "field_access": "basic",
                             "purpose": "service_delivery", "include_extensions": false}]);
    let given = api.post("/api/v2/spp/Consent", body).await;
    given.expect(201);
    assert_eq!(given.body["grantee"], org.as_str());
    assert_eq!(given.body["scopes"][0]["field_access"], "basic");
    assert_eq!(given.body["scopes"][0]["fields"], json!(["name", "active"]));
    let consent = given.body["consent_id"].as_str().unwrap().to_owned();
    let shown = api.get(&format!("/api/v2/spp/Consent/{consent}")).await;
    shown.expect(200);
    assert_eq!(shown.body["grantee"], org.as_str());
    assert_eq!(shown.body["scopes"][0]["field_access"], "basic");
    let credentials = consent_client(&world().database_url, &org, "ngo", &["individual:read"]);
    let ngo = Api::new(&world().base).login(&credentials).await;
    let read = ngo.get(&path).await;
    read.expect(200);
    assert_eq!(read.body["name"]["family"], "Santos");
    assert!(read.body["birthDate"].is_null(), "basic hides birthDate");
    // custom, with OpenSPP's comma-separated list (identifier is shown to every reader).
    let mut custom = consent_body(&subject, "specific", &[&unique("Org")], &[]);
    custom["scopes"] = json!([{"resource_type": "individual", "field_access": "custom",
                               "custom_fields": "name, gender", "purpose": "research"}]);
    let custom = api.post("/api/v2/spp/Consent", custom).await;
    custom.expect(201);
    assert_eq!(custom.body["scopes"][0]["field_access"], "custom");
    assert_eq!(
        custom.body["scopes"][0]["custom_fields"],
        json!(["name", "gender"])
    );
    // all, as OpenSPP writes it.
    let mut all = consent_body(&subject, "category", &[], &["ngo"]);
    all["scopes"][0]["field_access"] = json!("all");
    let all = api.post("/api/v2/spp/Consent", all).await;
    all.expect(201);
    assert_eq!(all.body["scopes"][0]["field_access"], "all");
    assert!(all.body["scopes"][0]["fields"].is_null());
    assert_eq!(all.body["grantee"], "ngo");
    // Anything else is a 422 naming the field.
    let mut bad = consent_body(&subject, "specific", &[&org], &[]);
    bad["scopes"][0]["field_access"] = json!("everything");
    let bad = api.post("/api/v2/spp/Consent", bad).await;
    bad.expect(422);
    assert_eq!(
        bad.body["issue"][0]["expression"][0],
        "scopes[0].field_access"
    );
    let mut missing = consent_body(&subject, "specific", &[&org], &[]);
    missing["scopes"][0]["field_access"] = json!("custom");
    let missing = api.post("/api/v2/spp/Consent", missing).await;
    missing.expect(422);
    assert_eq!(
        missing.body["issue"][0]["expression"][0],
        "scopes[0].custom_fields"
    );
}

/// The receipt carries OpenSPP's fields beside this server's; every `$history` entry names
/// the fields it changed.
async fn receipt() {
    let api = admin().await;
    let org = unique("Org");
    let person = unique("RC");
    register_individual(&api, &person).await;
    let subject = format!("Individual/{NATIONAL_ID}|{person}");
    let given = api
        .post(
            "/api/v2/spp/Consent",
            consent_body(&subject, "specific", &[&org], &[]),
        )
        .await;
    given.expect(201);
    let consent = given.body["consent_id"].as_str().unwrap().to_owned();
    let receipt = api
        .get(&format!("/api/v2/spp/Consent/{consent}/$receipt"))
        .await;
    receipt.expect(200);
    let body = &receipt.body;
    assert_eq!(
        body["data_subject"]["identifier"],
        format!("{NATIONAL_ID}|{person}")
    );
    assert_eq!(body["data_subject"]["reference"], subject);
    assert!(body["data_controller"]["name"].is_string(), "{body}");
    assert!(body["data_controller"]["contact"].is_string(), "{body}");
    assert_eq!(body["purposes"][0]["id"], "service_delivery");
    assert!(body["purposes"][0]["description"].is_string());
    assert!(body["data_subject_rights"].as_array().unwrap().len() >= 5);
    api.post(
        &format!("/api/v2/spp/Consent/{consent}/$renew"),
        json!({"expiry_date": "2100-01-01"}),
    )
    .await
    .expect(200);
    let history = api
        .get(&format!("/api/v2/spp/Consent/{consent}/$history"))
        .await;
    history.expect(200);
    let entries = history.body["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "renew");
    assert_eq!(
        entries[0]["changed_fields"],
        json!(["expiry_date", "status"])
    );
    assert!(entries[1]["changed_fields"]
        .as_array()
        .unwrap()
        .contains(&json!("scopes")));
}
