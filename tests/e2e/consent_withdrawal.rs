//! Who may withdraw a consent for whom (issue 8, item 6), over HTTP: a recipient's `$revoke`
//! (or `DELETE`) ends a consent for that recipient only, so one NGO named by a category consent
//! cannot cut off every other; it ends the consent itself only where the caller is the one
//! recipient the consent still names. Withdrawal for everyone is the controller's act (a
//! legal-basis client, for the subject).

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::{consented_person, events_of, write_lapsing_under, READER_SCOPES};
use crate::support::{
    admin, audit_events, consent_client, individual_body, path_id, unique, world, Api, Credentials,
    NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "consent_withdrawal::a_recipient_withdraws_a_category_consent_for_itself_only",
            category_for_itself,
        ),
        trial(
            "consent_withdrawal::a_specific_consent_ends_when_its_last_recipient_withdraws",
            specific_last_recipient,
        ),
        trial(
            "consent_withdrawal::a_write_racing_its_own_withdrawal_is_not_found",
            write_racing_own_withdrawal,
        ),
        trial(
            "consent_withdrawal::a_reading_recipient_may_withdraw",
            reading_recipient_withdraws,
        ),
    ]
}

/// A consent-bound client of a new organisation of type `kind`, with its credentials.
async fn recipient(kind: &str) -> (String, Credentials, Api) {
    let organization = unique("NGO");
    let credentials = consent_client(&world().database_url, &organization, kind, &READER_SCOPES);
    let api = Api::new(&world().base).login(&credentials).await;
    (organization, credentials, api)
}

fn consent_path(consent: &str) -> String {
    format!("/api/v2/spp/Consent/{consent}")
}

/// The `$history` entries of `consent` as `api` sees them, oldest first.
async fn life(api: &Api, consent: &str) -> Vec<Value> {
    let reply = api
        .get(&format!("{}/$history", consent_path(consent)))
        .await;
    reply.expect(200);
    let mut history = reply.body["history"].as_array().unwrap().clone();
    history.reverse();
    history
}

async fn category_for_itself() {
    let admin = admin().await;
    let (path, consent) = consented_person(&admin, "category", &[], &["ngo"]).await;
    let (org_a, credentials_a, a) = recipient("ngo").await;
    let (org_b, _, b) = recipient("ngo").await;
    a.get(&path).await.expect(200);
    b.get(&path).await.expect(200);
    let unknown = a
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &unique("NONE"))
        ))
        .await;
    unknown.expect(404);

    // A withdraws: for itself, and the answer says so.
    let revoked = a
        .post(
            &format!("{}/$revoke", consent_path(&consent)),
            json!({"reason": "we no longer serve this area"}),
        )
        .await;
    revoked.expect(200);
    assert_eq!(revoked.body["status"], "withdrawn");
    assert_eq!(revoked.body["withdrawn_for"], "recipient");
    assert_eq!(revoked.body["recipient"], org_a.as_str());

    // A no longer finds the person, exactly as an unknown one; B still reads it.
    let gone = a.get(&path).await;
    gone.expect(404);
    assert_eq!(gone.text, unknown.text);
    let id = path.rsplit('|').next().unwrap();
    let searched = a
        .get(&format!(
            "/api/v2/spp/Individual?identifier={}",
            path_id(NATIONAL_ID, id)
        ))
        .await;
    searched.expect(200);
    assert_eq!(
        searched.body["meta"]["total"], 0,
        "A's search counts nothing"
    );
    b.get(&path).await.expect(200);

    // The consent itself stays in force. The controller sees who withdrew; A sees itself;
    // B sees the consent as it is for B, and not A's name.
    let by_admin = admin.get(&consent_path(&consent)).await;
    assert_eq!(by_admin.body["status"], "given");
    assert_eq!(by_admin.body["is_valid"], true);
    assert_eq!(by_admin.body["withdrawn_recipients"], json!([org_a]));
    let by_a = a.get(&consent_path(&consent)).await;
    assert_eq!(by_a.body["status"], "withdrawn");
    assert_eq!(by_a.body["is_valid"], false);
    assert_eq!(by_a.body["withdrawn_recipients"], json!([org_a]));
    let by_b = b.get(&consent_path(&consent)).await;
    assert_eq!(by_b.body["status"], "given");
    assert_eq!(by_b.body["is_valid"], true);
    assert!(
        by_b.body.get("withdrawn_recipients").is_none(),
        "{}",
        by_b.text
    );
    assert!(!by_b.text.contains(&org_a), "B is not told who withdrew");
    let receipt = admin
        .get(&format!("{}/$receipt", consent_path(&consent)))
        .await;
    assert_eq!(receipt.body["recipients"]["withdrawn"], json!([org_a]));
    let history = life(&admin, &consent).await;
    assert_eq!(history[1]["action"], "withdraw_recipient");
    assert_eq!(history[1]["recipient"], org_a.as_str());
    assert_eq!(history[1]["reason"], "we no longer serve this area");
    let history = life(&b, &consent).await;
    assert_eq!(history[1]["action"], "withdraw_recipient");
    assert!(history[1]["recipient"].is_null() && history[1]["reason"].is_null());
    assert!(history[1]["changed_by"].is_null());

    // Twice is a conflict; the access log records A's withdrawal.
    a.post(&format!("{}/$revoke", consent_path(&consent)), json!({}))
        .await
        .expect(409);
    let logged = audit_events(
        &admin,
        &format!("client={}&_count=100", credentials_a.client_id),
        4,
    )
    .await;
    let withdrawal =
        logged["data"].as_array().unwrap().iter().find(|e| {
            e["action"] == "U"
                && e["outcome"] == "200"
                && e["entity"].as_array().unwrap().iter().any(|entity| {
                    entity["what"]["reference"] == format!("Consent/{consent}").as_str()
                })
        });
    assert!(withdrawal.is_some(), "A's withdrawal is logged: {logged}");

    // B withdraws by DELETE: for itself too (a category never has a last recipient).
    let deleted = b
        .send(reqwest::Method::DELETE, &consent_path(&consent), None, &[])
        .await;
    deleted.expect(200);
    assert_eq!(deleted.body["withdrawn_for"], "recipient");
    b.get(&path).await.expect(404);
    let by_admin = admin.get(&consent_path(&consent)).await;
    assert_eq!(by_admin.body["status"], "given");
    assert_eq!(by_admin.body["withdrawn_recipients"], json!([org_a, org_b]));
    // Another NGO is still covered, until the controller withdraws for everyone.
    let (_, _, c) = recipient("ngo").await;
    c.get(&path).await.expect(200);
    let ended = admin
        .post(&format!("{}/$revoke", consent_path(&consent)), json!({}))
        .await;
    ended.expect(200);
    assert_eq!(ended.body["withdrawn_for"], "everyone");
    c.get(&path).await.expect(404);
    assert_eq!(
        admin.get(&consent_path(&consent)).await.body["status"],
        "withdrawn"
    );
}

async fn specific_last_recipient() {
    let admin = admin().await;
    // Naming only A: A's revoke ends it for all.
    let (org_a, _, a) = recipient("ngo").await;
    let (path, only_a) = consented_person(&admin, "specific", &[&org_a], &[]).await;
    a.get(&path).await.expect(200);
    let revoked = a
        .post(&format!("{}/$revoke", consent_path(&only_a)), json!({}))
        .await;
    revoked.expect(200);
    assert_eq!(revoked.body["withdrawn_for"], "everyone");
    assert!(revoked.body.get("recipient").is_none());
    let read = admin.get(&consent_path(&only_a)).await;
    assert_eq!(read.body["status"], "withdrawn");
    assert_eq!(read.body["is_valid"], false);
    a.get(&path).await.expect(404);

    // Naming A and B: A's revoke is A's; B's, then, is the last one's and ends it.
    let (org_b, _, b) = recipient("un").await;
    let (path, both) = consented_person(&admin, "specific", &[&org_a, &org_b], &[]).await;
    let revoked = a
        .post(&format!("{}/$revoke", consent_path(&both)), json!({}))
        .await;
    assert_eq!(revoked.body["withdrawn_for"], "recipient");
    a.get(&path).await.expect(404);
    b.get(&path).await.expect(200);
    assert_eq!(
        admin.get(&consent_path(&both)).await.body["status"],
        "given"
    );
    let revoked = b
        .post(&format!("{}/$revoke", consent_path(&both)), json!({}))
        .await;
    revoked.expect(200);
    assert_eq!(revoked.body["withdrawn_for"], "everyone");
    b.get(&path).await.expect(404);
    let read = admin.get(&consent_path(&both)).await;
    assert_eq!(read.body["status"], "withdrawn");
    assert_eq!(read.body["withdrawn_recipients"], json!([org_a]));
}

async fn write_racing_own_withdrawal() {
    let admin = admin().await;
    let (path, consent) = consented_person(&admin, "category", &[], &["ngo"]).await;
    let id = path.rsplit('|').next().unwrap().to_owned();
    let (org_a, _, a) = recipient("ngo").await;
    let (_, _, b) = recipient("ngo").await;
    // A's withdrawal (as its append writes the index row) holds the consent's row while A's
    // write reaches its append: the write waits, sees A released, and is refused as unknown.
    write_lapsing_under(
        &a,
        &id,
        &format!("SELECT 1 FROM consent_index WHERE consent_id = '{consent}' FOR UPDATE;"),
        &format!(
            "UPDATE consent_index SET released_recipients = ARRAY['{org_a}'] \
             WHERE consent_id = '{consent}';"
        ),
    )
    .await;
    // The consent stays in force for B, whose write under it commits.
    let before = events_of(&id);
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Written by B");
    b.put(&path, body, None).await.expect(200);
    assert_ne!(events_of(&id), before, "B's write committed");
}

/// As in OpenSPP, any recipient may withdraw (`$revoke`, or `DELETE` with `?reason=`) a consent
/// that names it holding only `consent:read`; a client the consent does not name gets 404, and
/// a client without `consent:read` 403.
async fn reading_recipient_withdraws() {
    let admin = admin().await;
    let reader = |kind: &str, scopes: &[&str]| {
        let credentials = consent_client(&world().database_url, &unique("NGO"), kind, scopes);
        async move { Api::new(&world().base).login(&credentials).await }
    };
    let (_, consent) = consented_person(&admin, "category", &[], &["ngo"]).await;
    let scopeless = reader("ngo", &["individual:read"]).await;
    scopeless
        .post(&format!("{}/$revoke", consent_path(&consent)), json!({}))
        .await
        .expect(403);
    let outsider = reader("private", &["consent:read"]).await;
    outsider
        .post(&format!("{}/$revoke", consent_path(&consent)), json!({}))
        .await
        .expect(404);
    let named = reader("ngo", &["consent:read"]).await;
    let revoked = named
        .post(
            &format!("{}/$revoke", consent_path(&consent)),
            json!({"reason": "service ended"}),
        )
        .await;
    revoked.expect(200);
    assert_eq!(revoked.body["status"], "withdrawn");
    // The DELETE form, with OpenSPP's `?reason=`, on another consent.
    let (_, other) = consented_person(&admin, "category", &[], &["ngo"]).await;
    let deleted = named
        .send(
            reqwest::Method::DELETE,
            &format!("{}?reason=moved%20away", consent_path(&other)),
            None,
            &[],
        )
        .await;
    deleted.expect(200);
    let history = life(&admin, &other).await;
    assert_eq!(
        history.last().unwrap()["reason"],
        "moved away",
        "{history:?}"
    );
    named
        .send(
            reqwest::Method::DELETE,
            &format!("{}?bogus=1", consent_path(&other)),
            None,
            &[],
        )
        .await
        .expect(400);
}
