//! What the second hostile pass found (issue 8), each pinned by a test: a request could make
//! the access log unstorable — a subject reference of kilobytes of random text (past what
//! PostgreSQL can index) or one with NUL (which PostgreSQL text cannot hold) — and the writer
//! then retried that batch for ever: no access was logged any more, requests stalled once the
//! queue filled, and a stopping server never finished draining, keeping the projector's lead
//! from every other process. Consent text the domain kept as given was unbounded too.

use libtest_mimic::Trial;
use serde_json::json;

use crate::consent::consent_body;
use crate::support::{
    admin, audit_events, create_client, register_individual, unique, world, Api, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "hostile::unstorable_subject_references_do_not_stall_the_access_log",
            access_log_survives,
        ),
        trial(
            "hostile::consent_text_is_bounded_and_free_of_nul",
            consent_text,
        ),
    ]
}

/// Text no compression shrinks: what PostgreSQL's index limit (2,712 bytes) refuses.
fn incompressible(length: usize) -> String {
    let alphabet: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            alphabet[(state % alphabet.len() as u64) as usize]
        })
        .collect()
}

async fn access_log_survives() {
    let credentials = create_client(
        &world().database_url,
        &["--scope", "individual:all", "--scope", "consent:read"],
    );
    let prober = Api::new(&world().base).login(&credentials).await;
    let long = incompressible(6000);
    prober
        .get(&format!("/api/v2/spp/Individual/urn:x|{long}"))
        .await
        .expect(404);
    prober
        .get("/api/v2/spp/Individual/urn:x%7Ca%00b")
        .await
        .expect(400);
    // A consent is named by its id as given: NUL there.
    prober.get("/api/v2/spp/Consent/a%00b").await.expect(404);
    // Every access after them is still logged, the unstorable ones included, as stored.
    let id = unique("AL");
    let path = register_individual(&prober, &id).await;
    prober.get(&path).await.expect(200);
    let admin = admin().await;
    let logged = audit_events(
        &admin,
        &format!("client={}&_count=100", credentials.client_id),
        5,
    )
    .await;
    let text = logged.to_string();
    assert!(text.contains(&id), "{text}");
    assert!(
        text.contains("Individual/urn:x|"),
        "the long reference is kept, cut: {text}"
    );
    assert!(text.contains('…'), "{text}");
    assert!(text.contains('\u{FFFD}'), "NUL is shown as U+FFFD: {text}");
    let long_reference = logged["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["entity"].as_array().unwrap().iter())
        .filter_map(|e| e["what"]["reference"].as_str())
        .find(|r| r.starts_with("Individual/urn:x|") && r.len() > 1000)
        .expect("the long reference");
    assert!(long_reference.len() <= 1024 + '…'.len_utf8());
}

async fn consent_text() {
    let admin = admin().await;
    let id = unique("CT");
    register_individual(&admin, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let refused = |field: &str, value: serde_json::Value| {
        let mut body = consent_body(&subject, "specific", &["Org"], &[]);
        body[field] = value;
        body
    };
    for (body, field) in [
        (
            refused("recipients", json!([incompressible(6000)])),
            "recipients[0]",
        ),
        (refused("recipients", json!(["a\u{0}b"])), "recipients[0]"),
        (
            refused("indicated_by", json!("x".repeat(201))),
            "indicated_by",
        ),
        (refused("indicated_by", json!("\u{0}")), "indicated_by"),
    ] {
        let reply = admin.post("/api/v2/spp/Consent", body).await;
        reply.expect(422);
        assert_eq!(
            reply.body["issue"][0]["expression"][0], field,
            "{}",
            reply.text
        );
    }
    let given = admin
        .post(
            "/api/v2/spp/Consent",
            consent_body(&subject, "specific", &["Org"], &[]),
        )
        .await;
    given.expect(201);
    let consent = given.body["consent_id"].as_str().unwrap().to_owned();
    let revoke = format!("/api/v2/spp/Consent/{consent}/$revoke");
    for reason in ["a\u{0}b".to_owned(), "r".repeat(1001)] {
        let reply = admin.post(&revoke, json!({"reason": reason})).await;
        reply.expect(422);
        assert_eq!(reply.body["issue"][0]["expression"][0], "reason");
    }
    admin
        .post(&revoke, json!({"reason": "asked by the subject"}))
        .await
        .expect(200);
}
