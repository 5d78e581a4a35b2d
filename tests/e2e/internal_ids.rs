//! DESIGN invariant 6: no internal id leaves the server. Every kind of answer — writes, reads,
//! searches, histories, past versions, verifications, the access log, consent reads and errors —
//! is collected, bodies and headers, and scanned for every stream id in the event log and for
//! the names of the feed's internal columns.

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::json;

use crate::group::{member, new_group};
use crate::program::{enrol, new_program};
use crate::support::{
    admin, consent_client, individual_body, minted_path, path_id, register_individual, sql_scalar,
    unique, world, Api, Reply, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "internal_ids::no_stream_id_in_any_answer",
        no_stream_id,
    )]
}

/// Everything a client saw: status line, every header, the body.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn keep(&mut self, what: &str, reply: &Reply) {
        let mut text = format!("{}\n", reply.status);
        for (name, value) in &reply.headers {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or_default()));
        }
        text.push_str(&reply.text);
        self.0.push((what.to_owned(), text));
    }

    async fn get(&mut self, api: &Api, path: &str) {
        let reply = api.get(path).await;
        self.keep(path, &reply);
    }
}

async fn no_stream_id() {
    let api = admin().await;
    let mut seen = Seen::default();
    let org = unique("Org");
    let (a, b) = (unique("IDA"), unique("IDB"));
    let a_path = register_individual(&api, &a).await;
    let created = api
        .post("/api/v2/spp/Individual", individual_body(&b))
        .await;
    seen.keep("create", &created);
    let b_path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &b));
    let mut body = individual_body(&a);
    body["name"]["given"] = json!("Renamed");
    let replaced = api.put(&a_path, body, None).await;
    seen.keep("replace", &replaced);
    let stale = api.put(&a_path, individual_body(&a), Some("\"1\"")).await;
    seen.keep("stale replace", &stale);

    let (group_value, group) = new_group(&api, json!([member(&a, "head")])).await;
    let added = api
        .post(&format!("{group}/$add-member"), member(&b, "member"))
        .await;
    seen.keep("add member", &added);
    let (_, program) = new_program(&api, "individual").await;
    let program_path = format!("/api/v2/spp/Program/{program}");
    let enrolled = enrol(&api, &program, &a, "enrolled").await;
    seen.keep("enrol", &enrolled);
    let membership = minted_path(&enrolled);
    let duplicate = enrol(&api, &program, &a, "enrolled").await;
    seen.keep("duplicate enrolment", &duplicate);
    let given = api
        .post(
            "/api/v2/spp/Consent",
            json!({"subject": format!("Individual/{NATIONAL_ID}|{a}"), "recipient_mode": "specific",
                   "recipients": [org], "expiry_date": "2099-01-01",
                   "scopes": [{"resource_type": "all", "field_access": null, "purpose": "audit"}]}),
        )
        .await;
    seen.keep("consent", &given);
    let consent = format!(
        "/api/v2/spp/Consent/{}",
        given.body["consent_id"].as_str().unwrap()
    );

    for path in [&a_path, &b_path, &group, &program_path, &membership] {
        seen.get(&api, path).await;
        seen.get(&api, &format!("{path}/_history")).await;
        seen.get(&api, &format!("{path}/_history/1")).await;
        seen.get(&api, &format!("{path}/_history/$verify")).await;
        seen.get(&api, &format!("{path}?_at=2999-01-01T00:00:00Z"))
            .await;
    }
    for path in [
        format!(
            "/api/v2/spp/Individual?identifier={}",
            path_id(NATIONAL_ID, &a)
        ),
        format!("/api/v2/spp/Group?identifier=urn:openspp:group|{group_value}"),
        "/api/v2/spp/Program?_count=5".to_owned(),
        format!("/api/v2/spp/ProgramMembership?program=Program/{program}"),
        format!(
            "/api/v2/spp/Consent?subject=Individual/{}",
            path_id(NATIONAL_ID, &a)
        ),
        consent.clone(),
        format!("{consent}/_history"),
        format!("{consent}/_history/1"),
        format!("{consent}/_history/$verify"),
        format!("{consent}/$receipt"),
        format!("{consent}/$history"),
        format!("{consent}/$access-summary"),
        format!("/api/v2/spp/AuditEvent?client={}", world().admin.client_id),
        format!(
            "/api/v2/spp/AuditEvent?subject=Individual/{}",
            path_id(NATIONAL_ID, &a)
        ),
        // Errors.
        format!("{a_path}/_history/99"),
        format!("{a_path}?_at=1990-01-01T00:00:00Z"),
        format!("{a_path}?_at=never"),
        format!("{a_path}/_history?_count=0"),
        format!("{membership}/_history/42"),
    ] {
        seen.get(&api, &path).await;
    }
    // What a consent-bound client sees, shown and refused.
    let bound = Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            &org,
            "ngo",
            &["individual:read", "program_membership:read", "audit:read"],
        ))
        .await;
    for path in [&a_path, &b_path, &membership] {
        seen.get(&bound, path).await;
        seen.get(&bound, &format!("{path}/_history")).await;
    }
    let refused = bound
        .send(Method::GET, &format!("{b_path}/_history/1"), None, &[])
        .await;
    seen.keep("refused vread", &refused);

    // Consent ids are the consents' own external identifiers (CONTRACT §5); every other
    // stream id is internal.
    let streams = sql_scalar(
        &world().database_url,
        "SELECT string_agg(DISTINCT aggregate_id, ',') FROM events WHERE aggregate_type <> 'Consent'",
    );
    let streams: Vec<&str> = streams.split(',').collect();
    assert!(streams.len() >= 5, "the scan has streams to look for");
    for (what, text) in &seen.0 {
        for stream in &streams {
            assert!(
                !text.contains(stream),
                "{what} shows stream {stream}:\n{text}"
            );
        }
        for name in [
            "global_position",
            "tx_id",
            "aggregate_id",
            "subject_streams",
        ] {
            assert!(!text.contains(name), "{what} shows `{name}`:\n{text}");
        }
    }
    assert!(seen.0.len() > 50, "the scan covered the surface");
}
