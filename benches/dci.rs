//! DCI Social Registry (issue 15), each figure beside PostgreSQL's own in the same run:
//! `cargo bench --bench dci` (options after `--`: `--population 1000000 --seconds 10
//! --concurrency 16`).
//!
//! Over a copy of the cached population (`common/population.rs`), a registered sender signing
//! every envelope with its Ed25519 key, `--concurrency` at a time for `--seconds` (an in-process
//! client, since each request is signed as it is sent):
//! - sync searches (`POST /dci_api/v1/social/registry/sync/search`): by `idtype-value` (a random
//!   person's UIN) and by `expression` (a family name and a month of birth dates, a page of 10),
//!   p50/p99 and requests/s beside pgbench's primary-key select over as many rows;
//! - the outbox: async searches (`/registry/search`) whose results the server POSTs to a
//!   receiver in this process (`OPENSPP_DCI_ALLOW_HTTP_CALLBACKS`, loopback allow-listed),
//!   submitted for `--seconds`, then waited for until every one has arrived: messages delivered
//!   per second end to end, beside pgbench's one-row insert.
//!
//! Numbers only; nothing here asserts a speed.

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "common/drive.rs"]
mod drive;
#[allow(dead_code)]
#[path = "common/pgbench.rs"]
mod pgbench;
#[allow(dead_code)]
#[path = "common/population.rs"]
mod population;
#[path = "common/report.rs"]
mod report;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use drive::{ms, Until};
use ed25519_dalek::SigningKey;
use openspp::dci::signature;
use serde_json::{json, Value};
use support::{cli, create_client, Api, Server, TestDatabase};

const SOCIAL: &str = "/dci_api/v1/social";

struct Options {
    population: usize,
    seconds: u64,
    concurrency: usize,
}

fn options() -> Options {
    let value = args::number;
    Options {
        population: value("--population", 1_000_000),
        seconds: value("--seconds", 10) as u64,
        concurrency: value("--concurrency", 16),
    }
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A registered DCI sender: its API client and its signing key.
struct Sender {
    api: Api,
    id: String,
    key: SigningKey,
}

impl Sender {
    async fn register(base: &str, url: &str) -> Self {
        let credentials = create_client(url, &["--scope", "individual:all"]);
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let id = fresh("bench-spmis");
        cli(
            url,
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
            api: Api::new(base).login(&credentials).await,
            id,
            key,
        }
    }

    /// A signed search envelope for `criteria`; asynchronous when `sender_uri` is given.
    fn search(&self, criteria: Value, sender_uri: Option<&str>) -> Value {
        let now = chrono::Utc::now().to_rfc3339();
        let mut header = json!({
            "version": "1.0.0", "message_id": fresh("msg"), "message_ts": now,
            "action": "search", "sender_id": self.id, "receiver_id": "openspp", "total_count": 1,
        });
        if let Some(uri) = sender_uri {
            header["sender_uri"] = json!(uri);
        }
        let message = json!({"transaction_id": fresh("txn"), "search_request": [
            {"reference_id": fresh("ref"), "timestamp": now, "search_criteria": criteria,
             "locale": "eng"}]});
        let signature = signature::sign_with(&self.key, &self.id, "k1", &header, &message);
        json!({"signature": signature, "header": header, "message": message})
    }
}

/// The search criteria of request `n` over a population of `size`.
type Criteria = fn(usize, usize) -> Value;

/// Person `n` (of a population of `size`) by UIN.
fn by_uin(n: usize, size: usize) -> Value {
    let n = (n * 7919) % size.max(1);
    json!({"reg_record_type": "Member", "query_type": "idtype-value",
           "query": {"type": "UIN", "value": format!("P{n}")}})
}

/// The population's family names (`population::person`), by how common they are.
const FAMILIES: [&str; 4] = ["Santos", "Reyes", "Cruz", "Bautista"];

/// A family name and a month of birth dates, the youngest first, a page of 10.
fn by_expression(n: usize, _size: usize) -> Value {
    let year = 1940 + n % 60;
    let month = 1 + n % 12;
    let from = format!("{year}-{month:02}-01");
    let to = if month == 12 {
        format!("{}-01-01", year + 1)
    } else {
        format!("{year}-{:02}-01", month + 1)
    };
    json!({"reg_record_type": "Member", "query_type": "expression",
        "query": {"type": "ns:org:QueryType:expression", "value": {"expression": {
            "collection": "Member",
            "query": {"$and": [{"name": {"$eq": FAMILIES[n % FAMILIES.len()]}},
                               {"birth_date": {"$gte": from}}, {"birth_date": {"$lt": to}}]}}}},
        "sort": [{"attribute_name": "birth_date", "sort_order": "desc"}],
        "pagination": {"page_size": 10, "page_number": 1}})
}

/// Records found by a sync search's first answer.
fn found(answer: &Value) -> usize {
    answer["message"]["search_response"][0]["data"]["reg_records"]
        .as_array()
        .map_or(0, Vec::len)
}

/// A callback receiver: counts what arrives, and when the last did.
struct Receiver {
    uri: String,
    delivered: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!(
            "http://{}/registry/on-search",
            listener.local_addr().unwrap()
        );
        let delivered = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(Mutex::new(None));
        let (count, at) = (delivered.clone(), last.clone());
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let (count, at) = (count.clone(), at.clone());
            async move {
                let envelope: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if envelope["header"]["action"] == "on-search" {
                    count.fetch_add(1, Ordering::Relaxed);
                    *at.lock().unwrap() = Some(Instant::now());
                }
                axum::Json(json!({"message": {"ack_status": "ACK",
                    "timestamp": chrono::Utc::now().to_rfc3339(), "correlation_id": fresh("c")}}))
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            uri,
            delivered,
            last,
            task,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sync searches of `criteria(n)` for `seconds`; every answer must succeed.
async fn sync_searches(sender: &Arc<Sender>, o: &Options, criteria: Criteria) -> drive::Measured {
    let sender = sender.clone();
    let size = o.population;
    drive::run(
        o.concurrency,
        Until::Elapsed(Duration::from_secs(o.seconds)),
        move |n| {
            let sender = sender.clone();
            async move {
                let body = sender.search(criteria(n, size), None);
                let reply = sender
                    .api
                    .post(&format!("{SOCIAL}/registry/sync/search"), body)
                    .await;
                match reply.body["header"]["status"].as_str() {
                    Some("succ") => reply.status.as_u16(),
                    _ => panic!("search {n} not answered succ: {}", reply.text),
                }
            }
        },
        200,
    )
    .await
}

#[tokio::main]
async fn main() {
    let o = options();
    let (size, c, s) = (o.population, o.concurrency, o.seconds);
    println!(
        "openspp-es DCI: searches over {size} individuals, {c} senders at once (signed, \
         in-process client) for {s} s a phase, beside pgbench ({c} clients), one 2-core machine"
    );
    let template = population::cached(size).await;
    let name = format!("openspp_bench_run_{}", uuid::Uuid::new_v4().simple());
    let url = population::copy_of(&template, &name);
    let database = TestDatabase { name, url };
    let server = Server::start(
        &database.url,
        &[
            ("OPENSPP_LOG", "error"),
            ("OPENSPP_DCI_ALLOW_HTTP_CALLBACKS", "true"),
            ("OPENSPP_DCI_CALLBACK_ALLOW", "127.0.0.0/8"),
        ],
    );
    let mut rows = Vec::new();
    let select = pgbench::select(&database.url, c, s, size);
    println!("pgbench primary-key select over {size}, {c} clients: {select:.0} tps");
    let sender = Arc::new(Sender::register(&server.base, &database.url).await);

    let searches: [(&str, Criteria); 2] = [
        ("`idtype-value` (UIN of a random person)", by_uin),
        (
            "`expression` (family name and a month of births, page of 10)",
            by_expression,
        ),
    ];
    for (label, criteria) in searches {
        let first = sender
            .api
            .post(
                &format!("{SOCIAL}/registry/sync/search"),
                sender.search(criteria(size / 2, size), None),
            )
            .await;
        first.expect(200);
        println!(
            "sync search {label}: the first found {}",
            found(&first.body)
        );
        let (rps, p50, p99) = sync_searches(&sender, &o, criteria).await;
        println!(
            "sync search {label}: {rps:.0} req/s, p50 {}, p99 {}",
            ms(p50),
            ms(p99)
        );
        rows.push(vec![
            format!("sync search {label} over {size}, {c} senders"),
            format!("p50 {}, p99 {} ({rps:.0} req/s)", ms(p50), ms(p99)),
            format!("primary-key select, {c} clients: {select:.0} tps"),
            pgbench::ratio(rps, select),
        ]);
    }

    let insert = pgbench::insert(&database.url, c, s);
    println!("pgbench one-row jsonb insert, {c} clients: {insert:.0} tps");
    let receiver = Receiver::start().await;
    let started = Instant::now();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let (uri, submitter, counter) = (receiver.uri.clone(), sender.clone(), acknowledged.clone());
    let (acks, _, ack_p99) = drive::run(
        c,
        Until::Elapsed(Duration::from_secs(s)),
        move |n| {
            let (sender, uri, counter) = (submitter.clone(), uri.clone(), counter.clone());
            async move {
                let body = sender.search(by_uin(n, size), Some(&uri));
                let reply = sender
                    .api
                    .post(&format!("{SOCIAL}/registry/search"), body)
                    .await;
                assert_eq!(reply.body["message"]["ack_status"], "ACK", "{}", reply.text);
                counter.fetch_add(1, Ordering::Relaxed);
                reply.status.as_u16()
            }
        },
        202,
    )
    .await;
    let submitted = acknowledged.load(Ordering::Relaxed);
    println!(
        "outbox  {submitted} async searches acknowledged in {s} s ({acks:.0} ACK/s, p99 {})",
        ms(ack_p99)
    );
    // Every message delivered, or nothing more for half a minute.
    let mut seen = (0, Instant::now());
    loop {
        let delivered = receiver.delivered.load(Ordering::Relaxed);
        if delivered >= submitted {
            break;
        }
        if delivered > seen.0 {
            seen = (delivered, Instant::now());
        } else if seen.1.elapsed() > Duration::from_secs(30) {
            println!("outbox  stalled at {delivered} of {submitted} delivered");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = receiver.delivered.load(Ordering::Relaxed);
    let took = receiver
        .last
        .lock()
        .unwrap()
        .map_or(Duration::ZERO, |last| last - started);
    let rate = delivered as f64 / took.as_secs_f64().max(1e-9);
    println!(
        "outbox  {delivered} of {submitted} delivered {:.1} s after the first was submitted: \
         {rate:.0} messages/s end to end",
        took.as_secs_f64()
    );
    rows.push(vec![
        format!("outbox: async search results delivered to a callback, {c} senders submitting for {s} s"),
        format!(
            "{rate:.0} messages/s end to end ({delivered} of {submitted} in {:.1} s; {acks:.0} ACK/s)",
            took.as_secs_f64()
        ),
        format!("one-row insert, {c} clients: {insert:.0} tps"),
        pgbench::ratio(rate, insert),
    ]);
    drop(receiver);
    drop(server);
    drop(database);
    report::table(
        &["what", "server", "PostgreSQL (pgbench), same run", "ratio"],
        &rows,
    );
}
