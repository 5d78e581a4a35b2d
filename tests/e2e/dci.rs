//! DCI Social Registry end to end (CONTRACT §9): envelopes checked against the spec both ways,
//! searches under the same consent and access log as REST, signatures, and callbacks delivered
//! from the outbox to a real receiver (an axum server in this test) — across a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::SigningKey;
use libtest_mimic::Trial;
use openspp::dci::schema::violation;
use openspp::dci::signature;
use serde_json::{json, Value};

use crate::consent::consent_body;
use crate::consent_groups::{add_member, household_consent, named_household, person_consent};
use crate::support::{
    admin, audit_event_where, audit_events, cli, consent_client, create_client, individual_body,
    path_id, register_individual, sql_scalar, statements_started, unique, world, Api, Credentials,
    Reply, Server, TestDatabase, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "dci::sync_search_by_id_answers_the_spec_envelope_signed",
            sync_search_by_id,
        ),
        trial(
            "dci::expression_predicate_pagination_and_sort",
            expression_predicate_pagination_sort,
        ),
        trial(
            "dci::consent_bound_sender_finds_only_consented_and_is_logged",
            consent_bound,
        ),
        trial("dci::bad_envelopes_are_dci_errors_never_500", bad_envelopes),
        trial("dci::signatures_are_required_and_checked", signatures),
        trial(
            "dci::async_search_is_acked_then_delivered_to_the_callback",
            async_search,
        ),
        trial(
            "dci::failed_callbacks_are_retried_and_visible_in_txn_status",
            retried,
        ),
        trial("dci::callback_urls_are_checked", callback_urls),
        trial(
            "dci::subscriptions_notify_matching_events_in_order_until_unsubscribed",
            subscriptions,
        ),
        trial(
            "dci::household_member_subscriptions_notify_only_what_the_subscriber_may_see",
            household_member_subscriptions,
        ),
        trial(
            "dci::a_notification_waiting_behind_another_is_not_polled_for",
            waiting_rows_are_not_polled,
        ),
        trial(
            "dci::restart_between_ack_and_delivery_delivers_exactly_once",
            restart_between_ack_and_delivery,
        ),
    ]
}

const SOCIAL: &str = "/dci_api/v1/social";

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// A DCI sender: an API client, a sender id registered to it, and its signing key.
struct Sender {
    api: Api,
    id: String,
    key: SigningKey,
    credentials: Credentials,
}

impl Sender {
    async fn register(credentials: Credentials) -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let id = unique("spmis");
        cli(
            &world().database_url,
            &[
                "dci",
                "sender",
                "add",
                "--sender-id",
                &id,
                "--client-id",
                &credentials.client_id,
                "--key-id",
                "k1",
                "--public-key",
                &STANDARD.encode(key.verifying_key().to_bytes()),
            ],
        );
        Self {
            api: Api::new(&world().base).login(&credentials).await,
            id,
            key,
            credentials,
        }
    }

    /// A sender whose client sees every registrant (legal basis, no consent needed).
    async fn trusted() -> Self {
        let credentials = create_client(
            &world().database_url,
            &["--scope", "individual:all", "--scope", "group:all"],
        );
        Self::register(credentials).await
    }

    fn header(&self, action: &str, total: usize, sender_uri: Option<&str>) -> Value {
        let mut header = json!({
            "version": "1.0.0",
            "message_id": unique("msg"),
            "message_ts": now(),
            "action": action,
            "sender_id": self.id,
            "receiver_id": "openspp",
            "total_count": total,
        });
        if let Some(uri) = sender_uri {
            header["sender_uri"] = json!(uri);
        }
        header
    }

    /// A signed envelope; a valid one is checked against the spec first.
    fn envelope(&self, header: Value, message: Value) -> Value {
        let signature = signature::sign_with(&self.key, &self.id, "k1", &header, &message);
        json!({"signature": signature, "header": header, "message": message})
    }

    fn valid(&self, action: &str, message: Value, sender_uri: Option<&str>) -> Value {
        let total = message["search_request"].as_array().map_or(1, Vec::len);
        let header = self.header(action, total, sender_uri);
        assert_eq!(violation("MsgHeader_V1.0.0", "header", &header), None);
        let schema = if action == "search" {
            "SearchRequest"
        } else {
            "TxnStatusRequest"
        };
        assert_eq!(violation(schema, "message", &message), None);
        self.envelope(header, message)
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.api.post(&format!("{SOCIAL}{path}"), body).await
    }

    async fn sync_search(&self, criteria: Value) -> Reply {
        let body = self.valid("search", search_message(&[criteria]), None);
        self.post("/registry/sync/search", body).await
    }
}

fn search_message(criteria: &[Value]) -> Value {
    let requests: Vec<Value> = criteria
        .iter()
        .map(|c| {
            json!({"reference_id": unique("ref"), "timestamp": now(), "search_criteria": c,
                   "locale": "eng"})
        })
        .collect();
    json!({"transaction_id": unique("txn"), "search_request": requests})
}

fn by_uin(value: &str) -> Value {
    json!({"reg_record_type": "Member", "query_type": "idtype-value",
           "query": {"type": "UIN", "value": value}})
}

/// An `on-search` envelope as the spec describes it, signed with a key the server publishes.
async fn assert_on_search(envelope: &Value) {
    assert_eq!(
        violation("MsgCallbackHeader_V1.0.0", "header", &envelope["header"]),
        None,
        "{envelope}"
    );
    assert_eq!(
        violation("SearchResponse", "message", &envelope["message"]),
        None,
        "{envelope}"
    );
    assert_eq!(envelope["header"]["action"], "on-search");
    assert_server_signature(envelope).await;
}

async fn assert_server_signature(envelope: &Value) {
    let text = envelope["signature"]
        .as_str()
        .expect("the envelope is signed");
    let parsed = signature::parse(text).expect("the signature parses");
    assert_eq!(parsed.sender_id, "openspp");
    let jwks = Api::new(&world().base).get("/.well-known/jwks.json").await;
    let key = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == parsed.key_id.as_str())
        .expect("the signing key is published");
    let public = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    signature::verify(&parsed, &public, &envelope["header"], &envelope["message"])
        .expect("the signature verifies with the published key");
    let mut tampered = envelope["message"].clone();
    tampered["transaction_id"] = json!("other");
    assert!(signature::verify(&parsed, &public, &envelope["header"], &tampered).is_err());
}

fn records(envelope: &Value, item: usize) -> &Vec<Value> {
    envelope["message"]["search_response"][item]["data"]["reg_records"]
        .as_array()
        .expect("records")
}

fn uin_of(record: &Value) -> &str {
    record["member_identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["identifier_type"] == "UIN")
        .and_then(|i| i["identifier_value"].as_str())
        .expect("a UIN")
}

async fn sync_search_by_id() {
    let admin = admin().await;
    let id = unique("DCI");
    register_individual(&admin, &id).await;
    let sender = Sender::trusted().await;
    let reply = sender.sync_search(by_uin(&id)).await;
    reply.expect(200);
    assert_on_search(&reply.body).await;
    let body = &reply.body;
    assert_eq!(body["header"]["status"], "succ");
    assert_eq!(body["header"]["receiver_id"], sender.id.as_str());
    let response = &body["message"]["search_response"][0];
    assert_eq!(response["status"], "succ");
    assert_eq!(response["locale"], "eng");
    assert_eq!(response["pagination"]["total_count"], 1);
    let found = records(body, 0);
    assert_eq!(found.len(), 1);
    assert_eq!(uin_of(&found[0]), id);
    let person = &found[0]["demographic_info"];
    assert_eq!(person["name"]["surname"], "Santos");
    assert_eq!(person["sex"], "female");
    assert_eq!(person["birth_date"], "1985-03-15");
    // A system URI is an identifier type too; an unknown type is a rejected request.
    let reply = sender
        .sync_search(json!({"query_type": "idtype-value",
                            "query": {"type": NATIONAL_ID, "value": id}}))
        .await;
    assert_eq!(records(&reply.body, 0).len(), 1);
    let reply = sender
        .sync_search(json!({"query_type": "idtype-value", "query": {"type": "NOPE", "value": id}}))
        .await;
    reply.expect(200);
    assert_on_search(&reply.body).await;
    let rejected = &reply.body["message"]["search_response"][0];
    assert_eq!(rejected["status"], "rjct");
    assert_eq!(
        rejected["status_reason_code"],
        "rjct.search_criteria.invalid"
    );
    assert_eq!(reply.body["header"]["status"], "rjct");
}

async fn expression_predicate_pagination_sort() {
    let admin = admin().await;
    let family = unique("Fam");
    let mut ids = Vec::new();
    for (n, born) in ["1970-01-01", "1980-01-01", "1990-01-01"]
        .iter()
        .enumerate()
    {
        let id = unique(&format!("EX{n}"));
        let mut body = individual_body(&id);
        body["name"]["family"] = json!(family);
        body["birthDate"] = json!(born);
        admin.post("/api/v2/spp/Individual", body).await.expect(201);
        ids.push(id);
    }
    let sender = Sender::trusted().await;
    let expression = json!({"query_type": "expression",
        "query": {"type": "ns:org:QueryType:expression", "value": {"expression": {
            "collection": "Member",
            "query": {"$and": [{"name": {"$eq": family}}, {"birth_date": {"$gte": "1980-01-01"}}]}}}},
        "sort": [{"attribute_name": "birth_date", "sort_order": "desc"}],
        "pagination": {"page_size": 10, "page_number": 1}});
    let reply = sender.sync_search(expression).await;
    reply.expect(200);
    assert_on_search(&reply.body).await;
    let found: Vec<&str> = records(&reply.body, 0).iter().map(uin_of).collect();
    assert_eq!(found, vec![ids[2].as_str(), ids[1].as_str()]);

    let predicate = |page: u32| {
        json!({"query_type": "predicate", "reg_record_type": "Member",
            "query": [{"seq_num": 1,
                "expression1": {"attribute_name": "name", "operator": "eq", "attribute_value": family},
                "condition": "and",
                "expression2": {"attribute_name": "birth_date", "operator": "lt", "attribute_value": "2000-01-01"}}],
            "sort": [{"attribute_name": "birth_date", "sort_order": "asc"}],
            "pagination": {"page_size": 2, "page_number": page}})
    };
    let first = sender.sync_search(predicate(1)).await;
    let second = sender.sync_search(predicate(2)).await;
    assert_on_search(&second.body).await;
    let page = |reply: &Reply| -> Vec<String> {
        records(&reply.body, 0)
            .iter()
            .map(|r| uin_of(r).to_owned())
            .collect()
    };
    assert_eq!(page(&first), vec![ids[0].clone(), ids[1].clone()]);
    assert_eq!(page(&second), vec![ids[2].clone()]);
    let pagination = &second.body["message"]["search_response"][0]["pagination"];
    assert_eq!(pagination["total_count"], 3);
    assert_eq!(pagination["page_number"], 2);
    // Conditions the read model cannot answer are rejected by name, not ignored.
    let reply = sender
        .sync_search(json!({"query_type": "predicate", "query": [{"seq_num": 1,
            "expression1": {"attribute_name": "poverty_score", "operator": "lt", "attribute_value": "2"}}]}))
        .await;
    let rejected = &reply.body["message"]["search_response"][0];
    assert_eq!(rejected["status"], "rjct");
    assert!(rejected["status_reason_message"]
        .as_str()
        .unwrap()
        .contains("poverty_score"));
    for (pagination, code) in [
        (json!({"page_size": 0}), "rjct.pagination.invalid"),
        (json!({"page_size": 1000}), "rjct.pagination.invalid"),
    ] {
        let mut criteria = predicate(1);
        criteria["pagination"] = pagination;
        let reply = sender.sync_search(criteria).await;
        reply.expect(200);
        assert_on_search(&reply.body).await;
        assert_eq!(
            reply.body["message"]["search_response"][0]["status_reason_code"],
            code
        );
    }
}

async fn consent_bound() {
    let admin = admin().await;
    let family = unique("Fam");
    let org = unique("Org");
    let mut consented = String::new();
    let mut others = Vec::new();
    for n in 0..3 {
        let id = unique("DC");
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
            consented = id;
        } else {
            others.push(id);
        }
    }
    // The consent-bound reader of the consent tests, registered as a DCI sender.
    let credentials = consent_client(
        &world().database_url,
        &org,
        "ngo",
        &crate::consent::READER_SCOPES,
    );
    let sender = Sender::register(credentials).await;
    let by_name = json!({"query_type": "expression", "query": {"type": "expression",
        "value": {"expression": {"collection": "Member", "query": {"name": family}}}}});
    let reply = sender.sync_search(by_name).await;
    reply.expect(200);
    assert_on_search(&reply.body).await;
    let found = records(&reply.body, 0);
    assert_eq!(found.len(), 1, "only the consented subject: {}", reply.text);
    assert_eq!(uin_of(&found[0]), consented);
    assert_eq!(
        reply.body["message"]["search_response"][0]["pagination"]["total_count"], 1,
        "no unconsented subject is counted"
    );
    for other in &others {
        let reply = sender.sync_search(by_uin(other)).await;
        assert_eq!(records(&reply.body, 0).len(), 0);
    }
    // Every search is in the access log, naming what it returned.
    let client = &sender.credentials.client_id;
    let logged = audit_events(&admin, &format!("client={client}"), 3).await;
    let text = logged.to_string();
    assert!(text.contains(&consented), "{text}");
    for other in &others {
        assert!(!text.contains(other.as_str()));
    }
}

async fn bad_envelopes() {
    let sender = Sender::trusted().await;
    let good = search_message(&[by_uin("X1")]);
    let err = |reply: &Reply, status: u16, code: &str, mentions: &str| {
        reply.expect(status);
        let message = &reply.body["message"];
        assert_eq!(message["ack_status"], "ERR", "{}", reply.text);
        assert!(message["correlation_id"].is_string());
        assert_eq!(message["error"]["code"], code, "{}", reply.text);
        let text = message["error"]["message"].as_str().unwrap();
        assert!(text.contains(mentions), "{text} should name {mentions}");
    };
    let path = "/registry/sync/search";
    // Not JSON, no header, no message.
    let reply = sender
        .api
        .send_text(
            reqwest::Method::POST,
            &format!("{SOCIAL}{path}"),
            "{not json",
            &[],
        )
        .await;
    err(&reply, 400, "err.request.bad", "JSON");
    let reply = sender.post(path, json!({"message": good})).await;
    err(&reply, 400, "err.request.bad", "header");
    // A timestamp without a zone, in the header and in a request.
    let mut header = sender.header("search", 1, None);
    header["message_ts"] = json!("2025-01-01T10:00:00");
    let reply = sender
        .post(path, sender.envelope(header, good.clone()))
        .await;
    err(&reply, 400, "err.request.bad", "message_ts");
    let mut message = good.clone();
    message["search_request"][0]["timestamp"] = json!("yesterday");
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("search", 1, None), message),
        )
        .await;
    err(&reply, 400, "err.request.bad", "timestamp");
    // locale is three lower-case letters; transaction_id at most 99 characters.
    let mut message = good.clone();
    message["search_request"][0]["locale"] = json!("en");
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("search", 1, None), message),
        )
        .await;
    err(&reply, 400, "err.request.bad", "locale");
    let mut message = good.clone();
    message["transaction_id"] = json!("t".repeat(100));
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("search", 1, None), message),
        )
        .await;
    err(&reply, 400, "err.request.bad", "transaction_id");
    // Required fields, the action, the version, encryption.
    let mut message = good.clone();
    message["search_request"][0]
        .as_object_mut()
        .unwrap()
        .remove("search_criteria");
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("search", 1, None), message),
        )
        .await;
    err(&reply, 400, "err.request.bad", "search_criteria");
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("subscribe", 1, None), good.clone()),
        )
        .await;
    err(&reply, 400, "err.request.bad", "action");
    let mut header = sender.header("search", 1, None);
    header["version"] = json!("9.9.9");
    let reply = sender
        .post(path, sender.envelope(header, good.clone()))
        .await;
    err(&reply, 400, "err.version.not_supported", "version");
    let mut header = sender.header("search", 1, None);
    header["is_msg_encrypted"] = json!(true);
    let reply = sender
        .post(path, sender.envelope(header, good.clone()))
        .await;
    err(&reply, 400, "err.encryption.invalid", "encrypted");
    let mut message = good.clone();
    message["search_request"] = json!([]);
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("search", 0, None), message),
        )
        .await;
    err(&reply, 400, "err.request.bad", "search_request");
    // Two requests with one reference id: the second is rejected, the first answered.
    let mut message = search_message(&[by_uin("X1"), by_uin("X2")]);
    message["search_request"][1]["reference_id"] =
        message["search_request"][0]["reference_id"].clone();
    let reply = sender
        .post(
            path,
            sender.envelope(sender.header("search", 2, None), message),
        )
        .await;
    reply.expect(200);
    assert_eq!(
        reply.body["message"]["search_response"][1]["status_reason_code"],
        "rjct.reference_id.duplicate"
    );
    // No token: the spec's HTTP error body.
    let anonymous = Api::new(&world().base);
    let reply = anonymous
        .post(
            &format!("{SOCIAL}{path}"),
            sender.valid("search", good.clone(), None),
        )
        .await;
    reply.expect(401);
    assert_eq!(reply.body["errors"][0]["code"], "err.request.unauthorized");
    // A client without the scope is refused as a whole.
    let narrow = create_client(&world().database_url, &["--scope", "program:all"]);
    let narrow = Sender::register(narrow).await;
    let reply = narrow.sync_search(by_uin("X1")).await;
    reply.expect(403);
    assert_eq!(reply.body["errors"][0]["code"], "err.request.forbidden");
}

async fn signatures() {
    let sender = Sender::trusted().await;
    let message = search_message(&[by_uin("S1")]);
    let header = sender.header("search", 1, None);
    let path = "/registry/sync/search";
    let refused = |reply: &Reply, status: u16, code: &str| {
        reply.expect(status);
        assert_eq!(reply.body["errors"][0]["code"], code, "{}", reply.text);
    };
    // Unsigned: refused (this server does not allow unsigned requests).
    let reply = sender
        .post(path, json!({"header": header, "message": message}))
        .await;
    refused(&reply, 401, "err.signature.missing");
    // Malformed, in several ways.
    for bad in [
        json!("garbage"),
        json!(format!("kidId=\"{}|k1|ed25519\", algorithm=\"ed25519\", created=\"1\", expires=\"9999999999\", signature=\"AAAA\"", sender.id)),
        json!(42),
    ] {
        let reply = sender
            .post(path, json!({"signature": bad, "header": header, "message": message}))
            .await;
        reply.expect(if bad.is_string() { 401 } else { 400 });
        assert!(reply.text.contains("err.signature.invalid"), "{}", reply.text);
    }
    // Signed over another message, with another key, or naming an unknown key id.
    let mut envelope = sender.envelope(header.clone(), message.clone());
    envelope["message"]["transaction_id"] = json!("tampered");
    refused(
        &sender.post(path, envelope).await,
        401,
        "err.signature.invalid",
    );
    let stranger = SigningKey::generate(&mut rand::rngs::OsRng);
    let forged = signature::sign_with(&stranger, &sender.id, "k1", &header, &message);
    let reply = sender
        .post(
            path,
            json!({"signature": forged, "header": header, "message": message}),
        )
        .await;
    refused(&reply, 401, "err.signature.invalid");
    let unknown = signature::sign_with(&sender.key, &sender.id, "k9", &header, &message);
    let reply = sender
        .post(
            path,
            json!({"signature": unknown, "header": header, "message": message}),
        )
        .await;
    refused(&reply, 401, "err.signature.invalid");
    // Another client may not speak as this sender, even with a valid token of its own.
    let other = create_client(
        &world().database_url,
        &["--scope", "individual:all", "--scope", "group:all"],
    );
    let other = Api::new(&world().base).login(&other).await;
    let reply = other
        .post(
            &format!("{SOCIAL}{path}"),
            sender.envelope(header.clone(), message.clone()),
        )
        .await;
    refused(&reply, 403, "err.sender_id.invalid");
    // The genuine one passes.
    sender
        .post(path, sender.envelope(header, message))
        .await
        .expect(200);
}

/// A DCI client's callback endpoint: records what it is sent, answers ACK (or 503 for the
/// first `failures` requests).
struct Receiver {
    base: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, failures)
    }

    fn on(listener: tokio::net::TcpListener, failures: usize) -> Self {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let failures = Arc::new(AtomicUsize::new(failures));
        let store = received.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let store = store.clone();
            let failures = failures.clone();
            async move {
                let path = request.uri().path().to_owned();
                let bytes = axum::body::to_bytes(request.into_body(), 1 << 24)
                    .await
                    .unwrap_or_default();
                if failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                store.lock().unwrap().push((path, body));
                Json(json!({"message": {"ack_status": "ACK", "timestamp": now(),
                                        "correlation_id": unique("c")}}))
                .into_response()
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            received,
            task,
        }
    }

    fn uri(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// The first callback carrying `correlation_id`, waiting up to `within`.
    async fn callback(&self, correlation_id: &str, within: Duration) -> (String, Value) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = self
                .received
                .lock()
                .unwrap()
                .iter()
                .find(|(_, body)| body["message"]["correlation_id"] == correlation_id)
            {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no callback for {correlation_id} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Receiver {
    /// The bodies POSTed to `path` once there are at least `count`, waiting up to `within`.
    async fn at(&self, path: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let found: Vec<Value> = self
                .received
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p == path)
                .map(|(_, body)| body.clone())
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} callbacks to {path} within {within:?}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn acked(reply: &Reply) -> String {
    reply.expect(202);
    let message = &reply.body["message"];
    assert_eq!(message["ack_status"], "ACK", "{}", reply.text);
    assert!(chrono::DateTime::parse_from_rfc3339(message["timestamp"].as_str().unwrap()).is_ok());
    message["correlation_id"].as_str().unwrap().to_owned()
}

fn txn_status_by(attribute_type: &str, value: Value) -> Value {
    json!({"transaction_id": unique("txn"), "txnstatus_request": {
        "reference_id": unique("ref"), "txn_type": "search",
        "attribute_type": attribute_type, "attribute_value": value}})
}

async fn async_search() {
    let admin = admin().await;
    let id = unique("AS");
    register_individual(&admin, &id).await;
    let sender = Sender::trusted().await;
    let receiver = Receiver::start(0).await;
    let message = search_message(&[by_uin(&id)]);
    let transaction_id = message["transaction_id"].as_str().unwrap().to_owned();
    let reference_id = message["search_request"][0]["reference_id"].clone();
    let body = sender.valid(
        "search",
        message,
        Some(&receiver.uri("/registry/on-search")),
    );
    let correlation_id = acked(&sender.post("/registry/search", body).await);
    let (path, envelope) = receiver
        .callback(&correlation_id, Duration::from_secs(20))
        .await;
    assert_eq!(path, "/registry/on-search");
    assert_on_search(&envelope).await;
    assert_eq!(
        envelope["message"]["transaction_id"],
        transaction_id.as_str()
    );
    assert_eq!(envelope["header"]["status"], "succ");
    assert_eq!(
        envelope["message"]["search_response"][0]["reference_id"],
        reference_id
    );
    assert_eq!(uin_of(&records(&envelope, 0)[0]), id);
    // The search ran under the sender's client and is in the access log.
    let client = &sender.credentials.client_id;
    let logged = audit_events(&admin, &format!("client={client}"), 1).await;
    assert!(logged.to_string().contains(&id));
    // Its state through txn status, by each attribute type; only the sender's own.
    for (attribute, value) in [
        ("correlation_id", json!(correlation_id)),
        ("transaction_id", json!(transaction_id)),
        ("reference_id_list", json!([reference_id])),
    ] {
        let reply = sender
            .post(
                "/registry/sync/txn/status",
                sender.valid("txn-status", txn_status_by(attribute, value), None),
            )
            .await;
        reply.expect(200);
        assert_eq!(
            violation("MsgCallbackHeader_V1.0.0", "header", &reply.body["header"]),
            None
        );
        assert_server_signature(&reply.body).await;
        assert_eq!(reply.body["header"]["action"], "txn-on-status");
        assert_eq!(reply.body["header"]["status"], "succ", "{}", reply.text);
        let status = &reply.body["message"]["txnstatus_response"]["txn_status"];
        assert_eq!(status["correlation_id"], correlation_id.as_str());
        assert_eq!(status["search_response"][0]["status"], "succ");
        assert_eq!(violation("SearchResponse", "txn_status", status), None);
    }
    let stranger = Sender::trusted().await;
    let reply = stranger
        .post(
            "/registry/sync/txn/status",
            stranger.valid(
                "txn-status",
                txn_status_by("correlation_id", json!(correlation_id)),
                None,
            ),
        )
        .await;
    assert_eq!(reply.body["header"]["status"], "rjct");
    assert!(reply.body["message"]["txnstatus_response"]["txn_status"].is_null());
    // The asynchronous txn status answers on txn/on-status.
    let body = sender.valid(
        "txn-status",
        txn_status_by("correlation_id", json!(correlation_id)),
        Some(&receiver.uri("/registry/txn/on-status")),
    );
    let status_correlation = acked(&sender.post("/registry/txn/status", body).await);
    let (path, on_status) = receiver
        .callback(&status_correlation, Duration::from_secs(20))
        .await;
    assert_eq!(path, "/registry/txn/on-status");
    assert_eq!(on_status["header"]["action"], "txn-on-status");
    assert_server_signature(&on_status).await;
    assert_eq!(
        on_status["message"]["txnstatus_response"]["txn_status"]["correlation_id"],
        correlation_id.as_str()
    );
}

async fn retried() {
    let admin = admin().await;
    let id = unique("RT");
    register_individual(&admin, &id).await;
    let sender = Sender::trusted().await;
    let receiver = Receiver::start(2).await;
    let body = sender.valid(
        "search",
        search_message(&[by_uin(&id)]),
        Some(&receiver.uri("/registry/on-search")),
    );
    let correlation_id = acked(&sender.post("/registry/search", body).await);
    // After the first refusal the transaction is pending, and says why.
    let started = Instant::now();
    let pending = loop {
        let reply = sender
            .post(
                "/registry/sync/txn/status",
                sender.valid(
                    "txn-status",
                    txn_status_by("correlation_id", json!(correlation_id)),
                    None,
                ),
            )
            .await;
        let reason = reply.body["header"]["status_reason_message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if reason.contains("503") {
            break reply;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = &pending.body["message"]["txnstatus_response"]["txn_status"];
    assert_eq!(status["search_response"][0]["status"], "pdng");
    // Backoff 2 s, then 4 s: delivered on the third attempt.
    let (_, envelope) = receiver
        .callback(&correlation_id, Duration::from_secs(30))
        .await;
    assert_on_search(&envelope).await;
    assert!(started.elapsed() >= Duration::from_secs(4), "backed off");
    let attempts = sql_scalar(
        &world().database_url,
        &format!("SELECT attempts FROM dci_outbox WHERE correlation_id = '{correlation_id}'"),
    );
    assert_eq!(attempts, "3");
}

async fn callback_urls() {
    let sender = Sender::trusted().await;
    for (uri, mentions) in [
        (Some("ftp://example.org/cb"), "scheme"),
        (Some("http://10.1.2.3/cb"), "non-public"),
        (
            Some("http://169.254.169.254/latest/meta-data"),
            "non-public",
        ),
        (Some("http://[::1]:80/cb"), "non-public"),
        (None, "sender_uri"),
    ] {
        let body = sender.valid("search", search_message(&[by_uin("U1")]), uri);
        let reply = sender.post("/registry/search", body).await;
        reply.expect(400);
        assert_eq!(reply.body["message"]["ack_status"], "ERR");
        assert_eq!(
            reply.body["message"]["error"]["code"],
            "err.sender_uri.invalid"
        );
        let text = reply.body["message"]["error"]["message"].as_str().unwrap();
        assert!(text.contains(mentions), "{text} should name {mentions}");
    }
}

/// The callback is due but its receiver is down; the server stops; the receiver comes up; two
/// servers start on the same database: the callback arrives, once.
async fn restart_between_ack_and_delivery() {
    let database = TestDatabase::create("openspp_e2e_dci_restart");
    let env = [
        ("OPENSPP_DCI_ALLOW_UNSIGNED", "true"),
        ("OPENSPP_DCI_ALLOW_HTTP_CALLBACKS", "true"),
        ("OPENSPP_DCI_CALLBACK_ALLOW", "127.0.0.0/8"),
    ];
    let server = Server::start(&database.url, &env);
    let credentials = create_client(&database.url, &["--scope", "individual:all"]);
    let api = Api::new(&server.base).login(&credentials).await;
    let id = unique("RS");
    register_individual(&api, &id).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("http://127.0.0.1:{port}/registry/on-search");
    // Unsigned: this server allows it.
    let body = json!({
        "header": {"message_id": unique("m"), "message_ts": now(), "action": "search",
                   "sender_id": "restart-test", "total_count": 1, "sender_uri": uri},
        "message": search_message(&[by_uin(&id)]),
    });
    let correlation_id = acked(&api.post(&format!("{SOCIAL}/registry/search"), body).await);
    let attempts = || {
        sql_scalar(
            &database.url,
            &format!(
                "SELECT attempts FROM dci_outbox WHERE correlation_id = '{correlation_id}' \
                 AND last_error IS NOT NULL"
            ),
        )
    };
    let started = Instant::now();
    while attempts().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no attempt made"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate();
    let receiver = Receiver::on(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap(),
        0,
    );
    let first = Server::start(&database.url, &env);
    let second = Server::start(&database.url, &env);
    let (_, envelope) = receiver
        .callback(&correlation_id, Duration::from_secs(30))
        .await;
    assert_eq!(uin_of(&records(&envelope, 0)[0]), id);
    assert_eq!(
        violation("SearchResponse", "message", &envelope["message"]),
        None
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.count(), 1, "delivered exactly once");
    let delivered = sql_scalar(
        &database.url,
        &format!("SELECT status FROM dci_transactions WHERE correlation_id = '{correlation_id}'"),
    );
    assert_eq!(delivered, "succ");
    drop(first);
    drop(second);
    drop(database);
}

/// Subscribes `sender` with one request per `criteria`, callbacks going to `receiver`; checks
/// the signed `on-subscribe` against the spec and returns the subscription codes in order.
async fn subscribe(sender: &Sender, receiver: &Receiver, criteria: &[Value]) -> Vec<String> {
    let requests: Vec<Value> = criteria
        .iter()
        .map(|c| {
            json!({"reference_id": unique("ref"), "timestamp": now(), "locale": "eng",
                   "subscribe_criteria": c})
        })
        .collect();
    let message = json!({"transaction_id": unique("txn"), "subscribe_request": requests});
    assert_eq!(violation("SubscribeRequest", "message", &message), None);
    let header = sender.header(
        "subscribe",
        criteria.len(),
        Some(&receiver.uri("/registry/on-subscribe")),
    );
    let correlation_id = acked(
        &sender
            .post("/registry/subscribe", sender.envelope(header, message))
            .await,
    );
    let (path, on_subscribe) = receiver
        .callback(&correlation_id, Duration::from_secs(20))
        .await;
    assert_eq!(path, "/registry/on-subscribe");
    assert_server_signature(&on_subscribe).await;
    assert_eq!(
        violation("SubscribeResponse", "message", &on_subscribe["message"]),
        None,
        "{on_subscribe}"
    );
    on_subscribe["message"]["subscribe_response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|response| {
            response["subscriptions"][0]["code"]
                .as_str()
                .expect("a subscription code")
                .to_owned()
        })
        .collect()
}

/// A subscription filter on `collection` records called `name`.
fn named(event_type: &str, collection: &str, name: &str) -> Value {
    json!({
        "reg_type": "ns:org:RegistryType:Social",
        "reg_event_type": event_type,
        "filter_type": "expression",
        "filter": {"type": "expression", "value": {"expression": {"collection": collection,
            "query": {"name": {"$eq": name}}}}},
        "notify_record_type": collection})
}

/// The record of a `notify`, checked: the spec's shape, signed by this server, from
/// subscription `code`, naming `event_type` (the spec's enum has no `UPDATE`: `None`).
async fn notified<'a>(notification: &'a Value, code: &str, event_type: Option<&str>) -> &'a Value {
    assert_eq!(
        violation("NotifyEventRequest", "message", &notification["message"]),
        None,
        "{notification}"
    );
    assert_server_signature(notification).await;
    assert_eq!(notification["header"]["action"], "notify");
    assert_eq!(notification["header"]["meta"]["subscription_code"], code);
    let event = &notification["message"]["notify_event"][0];
    assert_eq!(
        event["data"].get("reg_event_type"),
        event_type.map(|t| json!(t)).as_ref()
    );
    &event["data"]["reg_records"]
}

async fn subscriptions() {
    let admin = admin().await;
    let sender = Sender::trusted().await;
    let receiver = Receiver::start(0).await;
    let family = unique("Sub");
    let codes = subscribe(
        &sender,
        &receiver,
        &[
            named("REGISTER", "Member", &family),
            named("UPDATE", "Member", &family),
        ],
    )
    .await;
    // Two matching registrations, one that does not match, then an update of the first.
    let mut matching = Vec::new();
    for n in 0..3 {
        let id = unique(&format!("SB{n}"));
        let mut body = individual_body(&id);
        if n != 1 {
            body["name"]["family"] = json!(family);
            matching.push(id.clone());
        }
        admin.post("/api/v2/spp/Individual", body).await.expect(201);
    }
    let mut body = individual_body(&matching[0]);
    body["name"]["family"] = json!(family);
    body["birthDate"] = json!("1986-04-16");
    let path = format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, &matching[0])
    );
    admin.put(&path, body, None).await.expect(200);
    let notified_bodies = receiver
        .at("/registry/notify", 3, Duration::from_secs(20))
        .await;
    let of = |code: &str| -> Vec<&Value> {
        notified_bodies
            .iter()
            .filter(|n| n["header"]["meta"]["subscription_code"] == code)
            .collect()
    };
    let mut seen = Vec::new();
    for notification in of(&codes[0]) {
        let record = notified(notification, &codes[0], Some("REGISTER")).await;
        seen.push(uin_of(record).to_owned());
    }
    assert_eq!(seen, matching, "in commit order, only what matches");
    let updates = of(&codes[1]);
    assert_eq!(updates.len(), 1, "registrations are not updates");
    let record = notified(updates[0], &codes[1], None).await;
    assert_eq!(uin_of(record), matching[0]);
    assert_eq!(record["demographic_info"]["birth_date"], "1986-04-16");
    // Unsubscribed: no more notifications.
    let message = json!({"transaction_id": unique("txn"), "timestamp": now(),
                         "subscription_codes": codes});
    let header = sender.header(
        "unsubscribe",
        2,
        Some(&receiver.uri("/registry/on-unsubscribe")),
    );
    let correlation_id = acked(
        &sender
            .post("/registry/unsubscribe", sender.envelope(header, message))
            .await,
    );
    let (_, on_unsubscribe) = receiver
        .callback(&correlation_id, Duration::from_secs(20))
        .await;
    assert_eq!(
        violation("UnSubscribeResponse", "message", &on_unsubscribe["message"]),
        None
    );
    assert_eq!(
        on_unsubscribe["message"]["subscription_status"][0]["status"],
        "unsubscribe"
    );
    let mut body = individual_body(&unique("SBX"));
    body["name"]["family"] = json!(family);
    admin.post("/api/v2/spp/Individual", body).await.expect(201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver
            .at("/registry/notify", 0, Duration::from_secs(1))
            .await
            .len(),
        3
    );
}

/// The identifier value of a DCI `Group` record, and those of the members it lists.
fn household_of(record: &Value) -> (String, Vec<String>) {
    let value = |identifiers: &Value| {
        identifiers[0]["identifier_value"]
            .as_str()
            .expect("an identifier")
            .to_owned()
    };
    let members: Vec<String> = record["member_list"]
        .as_array()
        .expect("a member list")
        .iter()
        .map(|m| value(&m["member_identifier"]))
        .collect();
    assert_eq!(record["group_size"], members.len(), "{record}");
    (value(&record["group_identifier"]), members)
}

/// NewHouseHoldMember: a member added to a matching household is notified, in commit order; a
/// consent-bound subscriber hears only of households its consent covers and sees in them only
/// the members it may read, and what it was sent is in its access log.
async fn household_member_subscriptions() {
    let admin = admin().await;
    let org = unique("Org");
    let name = unique("Hh");
    let [hidden, shown, elsewhere, later] =
        [unique("HMD"), unique("HME"), unique("HMF"), unique("HMH")];
    for id in [&hidden, &shown, &elsewhere, &later] {
        register_individual(&admin, id).await;
    }
    for id in [&shown, &later] {
        person_consent(&admin, id, &org).await;
    }
    // The consent-bound sender may read `covered` (not its members) and not `other`.
    let (covered, covered_path) = named_household(&admin, &name, &[&hidden]).await;
    household_consent(&admin, &covered, &org, "group").await;
    let (other, other_path) = named_household(&admin, &name, &[&elsewhere]).await;
    let trusted = Sender::trusted().await;
    let bound = Sender::register(consent_client(
        &world().database_url,
        &org,
        "ngo",
        &crate::consent::READER_SCOPES,
    ))
    .await;
    let criteria = [named("NewHouseHoldMember", "Group", &name)];
    let trusted_receiver = Receiver::start(0).await;
    let bound_receiver = Receiver::start(0).await;
    let trusted_code = subscribe(&trusted, &trusted_receiver, &criteria)
        .await
        .remove(0);
    let bound_code = subscribe(&bound, &bound_receiver, &criteria)
        .await
        .remove(0);
    add_member(&admin, &covered_path, &shown).await;
    add_member(&admin, &other_path, &later).await;
    add_member(&admin, &covered_path, &later).await;
    // The trusted subscriber hears of all three, in order, each listing the new member.
    let mut heard = Vec::new();
    for notification in trusted_receiver
        .at("/registry/notify", 3, Duration::from_secs(20))
        .await
    {
        let record = notified(&notification, &trusted_code, Some("NewHouseHoldMember")).await;
        assert_eq!(record["@type"], "spdci:Group");
        heard.push(household_of(record));
    }
    assert_eq!(heard.len(), 3);
    for ((group, members), (expected, added)) in
        heard
            .iter()
            .zip([(&covered, &shown), (&other, &later), (&covered, &later)])
    {
        assert_eq!(group, expected);
        assert!(members.contains(added), "{members:?} lists {added}");
    }
    assert!(heard[0].1.contains(&hidden));
    // The consent-bound one hears only of `covered`, without the member it may not read; its
    // last notification comes after `other`'s would have (commit order), so none was sent.
    let bound_heard = bound_receiver
        .at("/registry/notify", 2, Duration::from_secs(20))
        .await;
    let mut groups = Vec::new();
    for notification in &bound_heard {
        let record = notified(notification, &bound_code, Some("NewHouseHoldMember")).await;
        let (group, members) = household_of(record);
        assert!(!members.contains(&hidden), "{record}");
        assert!(!members.contains(&elsewhere), "{record}");
        groups.push(group);
    }
    assert_eq!(groups, vec![covered.clone(), covered.clone()]);
    assert!(
        household_of(notified(&bound_heard[1], &bound_code, Some("NewHouseHoldMember")).await)
            .1
            .contains(&later)
    );
    // What the subscription disclosed is in the subscriber's access log.
    let client = &bound.credentials.client_id;
    audit_event_where(&admin, &format!("client={client}"), |entry| {
        entry.to_string().contains(&covered)
    })
    .await;
}

/// A due notification waiting behind an earlier one of its subscription (which backs off) is
/// not polled for: the outbox sleeps until the earlier one's next attempt or an announcement.
async fn waiting_rows_are_not_polled() {
    let database = TestDatabase::create("openspp_e2e_dci_waiting");
    let server = Server::start(&database.url, &[]);
    sql_scalar(
        &database.url,
        "INSERT INTO dci_outbox (client_id, uri, action, ordering_key, envelope, attempts, \
            next_attempt_at) VALUES \
         ('c', 'https://waiting.example/notify', 'notify', 'k', '{}', 3, \
          now() + interval '1 hour'), \
         ('c', 'https://waiting.example/notify', 'notify', 'k', '{}', 0, now()); \
         SELECT pg_notify('openspp_dci_outbox', '')",
    );
    // Let the worker take the announcement in and settle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let window = Duration::from_secs(4);
    let queries = statements_started(&database.url, window).await;
    assert!(
        queries.len() <= 4,
        "the outbox started {} queries in {window:?}: {queries:?}",
        queries.len()
    );
    let attempts = sql_scalar(
        &database.url,
        "SELECT string_agg(attempts::text, ',' ORDER BY id) FROM dci_outbox",
    );
    assert_eq!(attempts, "3,0", "the waiting row was not attempted");
    drop(server);
    drop(database);
}
