//! What analysts get (issue 13), each figure beside PostgreSQL's own in the same run:
//! `cargo bench --bench analysts` (options after `--`: `--population 1000000 --requests 30
//! --seconds 10 --concurrency 16`; `--live-only` skips the statistics).
//!
//! Statistics: over a copy of the cached population (`common/population.rs`) in which every
//! person also has a membership of one of three programs and one in ten has consented to
//! `Bench Analysts` for analytics, of their record and their memberships (added once through
//! the store's batch append path and cached beside the population), counts by gender and by program × gender through `POST
//! /api/v2/spp/aggregation/compute` and GraphQL's `statistics`, for a client under a legal basis
//! and for one bound by consent: p50/p99 of `--requests` sequential requests, and of as many
//! from `--concurrency` workers at once (in-process client). Beside each, pgbench running the
//! same GROUP BY on the same tables (mean latency at one client; tps at `--concurrency`).
//!
//! Live events: 16 GraphQL subscribers over `/api/v2/graphql/ws` (graphql-transport-ws) while
//! `wrk` drives `POST /Individual` at full speed for `--seconds`: the write rate, events
//! delivered per second per subscriber and in total (until every subscriber has every event
//! committed), the largest lag from commit to delivery, beside pgbench's one-row insert.
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
#[allow(dead_code)]
#[path = "common/wrk.rs"]
mod wrk;

use std::time::{Duration, Instant};

use drive::{ms, percentile, Measured};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::{consent_client, create_client, Api, Server, TestDatabase};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Options {
    /// People in the cached population counted.
    population: usize,
    /// Requests per statistics measurement (sequential, and again concurrent).
    requests: usize,
    /// Length of the write phase, and of each pgbench run.
    seconds: u64,
    concurrency: usize,
    subscribers: usize,
}

fn options() -> Options {
    let value = args::number;
    Options {
        population: value("--population", 1_000_000),
        requests: value("--requests", 30),
        seconds: value("--seconds", 10) as u64,
        concurrency: value("--concurrency", 16),
        subscribers: value("--subscribers", 16),
    }
}

/// What `population::add_analytics` adds, and its version (bump it when the rows change).
const LABEL: &str = "analysts_v3";

/// One statistics request: REST or GraphQL, by gender or by program and gender.
struct Ask {
    label: &'static str,
    path: &'static str,
    body: Value,
    /// The bare count in SQL, for pgbench.
    sql: &'static str,
}

const BY_GENDER: &str = "SELECT coalesce(gender_code, 'unknown'), count(*) FROM individual_view \
                         GROUP BY 1;\n";
/// As the server counts memberships by gender: from the membership's copy of the
/// registrant's facts (migration 0225).
const BY_PROGRAM_GENDER: &str = "SELECT m.program_id, coalesce(m.gender_code, 'unknown'), \
    count(*) FROM membership_view m WHERE m.beneficiary_type = 'Individual' GROUP BY 1, 2;\n";

fn asks() -> Vec<Ask> {
    let compute = |group_by: &[&str]| {
        json!({"scope": {"target_type": "individual"}, "statistics": ["count"],
               "group_by": group_by})
    };
    let graphql = |dimensions: &str| {
        json!({"query": format!(
            "{{ statistics(dimensions: [{dimensions}]) {{ total cells {{ key count suppressed }} }} }}"
        )})
    };
    vec![
        Ask {
            label: "`compute` by gender",
            path: "/api/v2/spp/aggregation/compute",
            body: compute(&["gender"]),
            sql: BY_GENDER,
        },
        Ask {
            label: "`compute` by program × gender",
            path: "/api/v2/spp/aggregation/compute",
            body: compute(&["program", "gender"]),
            sql: BY_PROGRAM_GENDER,
        },
        Ask {
            label: "GraphQL `statistics` by gender",
            path: "/api/v2/graphql",
            body: graphql("GENDER"),
            sql: BY_GENDER,
        },
        Ask {
            label: "GraphQL `statistics` by program × gender",
            path: "/api/v2/graphql",
            body: graphql("PROGRAM, GENDER"),
            sql: BY_PROGRAM_GENDER,
        },
    ]
}

/// The total and the number of cells an answer gives (REST or GraphQL), to show it is sane.
fn counted(answer: &Value) -> (i64, usize) {
    if let Some(statistics) = answer["data"]["statistics"].as_object() {
        return (
            statistics["total"].as_i64().unwrap_or(-1),
            statistics["cells"].as_array().map_or(0, Vec::len),
        );
    }
    (
        answer["total_count"].as_i64().unwrap_or(-1),
        answer["breakdown"].as_object().map_or(0, |b| b.len()),
    )
}

/// PostgreSQL running `sql`: its mean latency at one client, and its tps at `concurrency`.
struct Bare {
    mean: Duration,
    tps: f64,
}

fn bare(url: &str, sql: &str, o: &Options) -> Bare {
    let one = pgbench::run(url, 1, o.seconds, sql);
    Bare {
        mean: Duration::from_secs_f64(1.0 / one),
        tps: pgbench::run(url, o.concurrency, o.seconds, sql),
    }
}

async fn statistics(o: &Options, server: &Server, url: &str, rows: &mut Vec<Vec<String>>) {
    let scopes = ["--scope", "aggregation:read", "--scope", "statistics:read"];
    let legal = Api::new(&server.base)
        .login(&create_client(url, &scopes))
        .await;
    let bound = consent_client(
        url,
        population::ANALYSTS,
        "ngo",
        &["aggregation:read", "statistics:read"],
    );
    let bound = Api::new(&server.base).login(&bound).await;
    let gender = bare(url, BY_GENDER, o);
    let program_gender = bare(url, BY_PROGRAM_GENDER, o);
    println!(
        "pgbench, the same GROUP BY: by gender mean {} at 1 client, {:.1} tps at {}; \
         by program × gender mean {}, {:.1} tps",
        ms(gender.mean),
        gender.tps,
        o.concurrency,
        ms(program_gender.mean),
        program_gender.tps
    );
    for (who, api) in [("legal basis", &legal), ("consent-bound", &bound)] {
        for ask in asks() {
            let yardstick = if ask.sql == BY_GENDER {
                &gender
            } else {
                &program_gender
            };
            let first = api.post(ask.path, ask.body.clone()).await;
            first.expect(200);
            assert!(first.body.get("errors").is_none(), "{}", first.text);
            let (total, cells) = counted(&first.body);
            println!(
                "{} for a {who} client over {}: total {total}, {cells} cells",
                ask.label, o.population
            );
            let measure = |concurrency: usize| {
                let api = api.clone();
                let (path, body) = (ask.path, ask.body.clone());
                drive::drive(concurrency, o.requests, move |_| {
                    let (api, body) = (api.clone(), body.clone());
                    async move { api.post(path, body).await.status.as_u16() }
                })
            };
            let (_, p50, p99): Measured = measure(1).await;
            rows.push(vec![
                format!("{} ({who}), {} sequential", ask.label, o.requests),
                format!("p50 {}, p99 {}", ms(p50), ms(p99)),
                format!("same GROUP BY, 1 client: mean {}", ms(yardstick.mean)),
                format!(
                    "{:.2}× (p50 / mean)",
                    p50.as_secs_f64() / yardstick.mean.as_secs_f64()
                ),
            ]);
            let (rps, p50, p99) = measure(o.concurrency).await;
            rows.push(vec![
                format!("{} ({who}), {} concurrent", ask.label, o.concurrency),
                format!("{rps:.1} req/s, p50 {}, p99 {}", ms(p50), ms(p99)),
                format!(
                    "same GROUP BY, {} clients: {:.1} tps",
                    o.concurrency, yardstick.tps
                ),
                pgbench::ratio(rps, yardstick.tps),
            ]);
        }
    }
}

const EVENTS: &str = "subscription { events { cursor externalId provenance { recorded } } }";

/// What one subscriber received: how many events, when the last came, and each one's lag from
/// its commit; and whether the server closed the socket (with its reason).
#[derive(Default)]
struct Received {
    events: usize,
    last: Option<Instant>,
    lags: Vec<Duration>,
    closed: Option<String>,
}

/// A subscriber of every event `token`'s client may see, from now on, counting until it has
/// `expected` events (once known) or has heard nothing for `quiet`.
async fn subscriber(
    base: String,
    token: String,
    ready: tokio::sync::mpsc::Sender<()>,
    expected: tokio::sync::watch::Receiver<Option<usize>>,
    quiet: Duration,
) -> Received {
    let url = format!("{}/api/v2/graphql/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket opened");
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}});
    let mut received = Received::default();
    let mut subscribed = false;
    loop {
        if let Some(total) = *expected.borrow() {
            if received.events >= total {
                return received;
            }
        }
        let message = match tokio::time::timeout(quiet, socket.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                received.closed = Some(error.to_string());
                return received;
            }
            Ok(None) => return received,
            // Quiet: done once the writer has finished (the total is known), else wait on.
            Err(_) if expected.borrow().is_some() => return received,
            Err(_) => continue,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                received.closed = Some(frame.map_or(String::new(), |f| f.reason.to_string()));
                return received;
            }
            _ => continue,
        };
        let now = chrono::Utc::now();
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        match message["type"].as_str() {
            Some("connection_ack") if !subscribed => {
                socket
                    .send(Message::Text(subscribe.to_string().into()))
                    .await
                    .unwrap();
                subscribed = true;
                let _ = ready.send(()).await;
            }
            Some("next") => {
                let event = &message["payload"]["data"]["events"];
                assert!(message["payload"].get("errors").is_none(), "{message}");
                received.events += 1;
                received.last = Some(Instant::now());
                if let Some(recorded) = event["provenance"]["recorded"]
                    .as_str()
                    .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok())
                {
                    received
                        .lags
                        .push((now - recorded.to_utc()).to_std().unwrap_or_default());
                }
            }
            Some("ping") => {
                let pong = json!({"type": "pong"});
                socket
                    .send(Message::Text(pong.to_string().into()))
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
}

fn event_count(url: &str) -> usize {
    support::sql_scalar(url, "SELECT count(*) FROM events")
        .parse()
        .unwrap()
}

async fn live_events(o: &Options, server: &Server, url: &str, rows: &mut Vec<Vec<String>>) {
    let insert = pgbench::insert(url, o.concurrency, o.seconds);
    println!(
        "pgbench one-row jsonb insert, {} clients: {insert:.0} tps",
        o.concurrency
    );
    let writer = create_client(url, &["--scope", "individual:all"]);
    let writer = Api::new(&server.base).login(&writer).await.token.unwrap();
    let reader = create_client(url, &["--scope", "individual:read"]);
    let reader = Api::new(&server.base).login(&reader).await.token.unwrap();
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(o.subscribers);
    let (total_tx, total) = tokio::sync::watch::channel(None);
    let subscribers: Vec<_> = (0..o.subscribers)
        .map(|_| {
            tokio::spawn(subscriber(
                server.base.clone(),
                reader.clone(),
                ready_tx.clone(),
                total.clone(),
                Duration::from_secs(10),
            ))
        })
        .collect();
    for _ in 0..o.subscribers {
        ready.recv().await.expect("every subscriber subscribes");
    }
    // A subscribe message has no answer of its own: give the subscriptions a moment to start
    // following the feed before the first write commits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = event_count(url);
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let script = wrk::post_script(
        "/api/v2/spp/Individual",
        &support::individual_body(&format!("LIVE{run}-{{N}}")),
    );
    let (base, seconds, concurrency) = (server.base.clone(), o.seconds, o.concurrency);
    let load = tokio::task::spawn_blocking(move || {
        wrk::run(&base, &writer, seconds, concurrency, &script)
    })
    .await
    .unwrap();
    let committed = event_count(url) - before;
    println!(
        "write   POST /Individual while {} subscribe: {} ({committed} events)",
        o.subscribers,
        load.summary()
    );
    total_tx.send(Some(committed)).unwrap();
    let mut delivered = 0;
    let mut slowest = Duration::ZERO;
    let mut lags = Vec::new();
    let mut closed = 0;
    let mut per_subscriber = Vec::new();
    for subscriber in subscribers {
        let received = subscriber.await.unwrap();
        let took = received.last.map_or(Duration::ZERO, |l| l - started);
        slowest = slowest.max(took);
        delivered += received.events;
        per_subscriber.push(received.events as f64 / took.as_secs_f64().max(1e-9));
        if let Some(reason) = &received.closed {
            closed += 1;
            println!("a subscriber was disconnected: {reason}");
        }
        lags.extend(received.lags);
    }
    lags.sort_unstable();
    let total_rate = delivered as f64 / slowest.as_secs_f64().max(1e-9);
    let mean_rate = per_subscriber.iter().sum::<f64>() / per_subscriber.len().max(1) as f64;
    println!(
        "live    {delivered} of {} events delivered ({committed} to each of {}) in {:.1} s: \
         {total_rate:.0} events/s in total, {mean_rate:.0} per subscriber; lag p50 {}, p99 {}, \
         max {}; {closed} disconnected",
        committed * o.subscribers,
        o.subscribers,
        slowest.as_secs_f64(),
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or_default()),
    );
    rows.push(vec![
        format!(
            "`POST /Individual` while {} subscribe (wrk, {} connections)",
            o.subscribers, o.concurrency
        ),
        format!("{:.0} req/s, {committed} events", load.rps),
        format!("one-row insert, {} clients: {insert:.0} tps", o.concurrency),
        pgbench::ratio(load.rps, insert),
    ]);
    rows.push(vec![
        format!("events delivered to {} subscribers", o.subscribers),
        format!(
            "{total_rate:.0} events/s in total, {mean_rate:.0} per subscriber ({delivered} of {})",
            committed * o.subscribers
        ),
        format!("one-row insert: {insert:.0} tps"),
        pgbench::ratio(total_rate, insert),
    ]);
    rows.push(vec![
        "lag from commit to delivery".into(),
        format!(
            "p50 {}, p99 {}, max {}; {closed} disconnected",
            ms(percentile(&lags, 0.5)),
            ms(percentile(&lags, 0.99)),
            ms(lags.last().copied().unwrap_or_default())
        ),
        "—".into(),
        "—".into(),
    ]);
}

#[tokio::main]
async fn main() {
    let o = options();
    let size = o.population;
    println!(
        "openspp-es analysts: statistics over {size} individuals ({} requests a measurement, {} \
         concurrent), live events to {} subscribers while writing for {} s, one 2-core machine",
        o.requests, o.concurrency, o.subscribers, o.seconds
    );
    let template = population::cached_with(size, LABEL, |url| async move {
        population::add_analytics(url, size).await
    })
    .await;
    let started = Instant::now();
    let name = format!("openspp_bench_run_{}", uuid::Uuid::new_v4().simple());
    let url = population::copy_of(&template, &name);
    let database = TestDatabase { name, url };
    println!(
        "copied the cached population of {size} (with memberships and analytics consents) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let server = Server::start(&database.url, &[("OPENSPP_LOG", "error")]);
    let mut rows = Vec::new();
    if !args::flag("--live-only") {
        statistics(&o, &server, &database.url, &mut rows).await;
    }
    live_events(&o, &server, &database.url, &mut rows).await;
    drop(server);
    drop(database);
    report::table(
        &["what", "server", "PostgreSQL (pgbench), same run", "ratio"],
        &rows,
    );
}
