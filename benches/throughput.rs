//! Throughput of the API on this machine, beside PostgreSQL's own raw insert rate.
//!
//! `cargo bench --bench throughput` (options after `--`: `--concurrency 16 --creates 4000
//! --reads 20000 --seconds 10 --overhead-reads 3000 --overhead-rounds 3`). It starts the real
//! server against a fresh database, drives it over loopback HTTP, runs pgbench with a one-row
//! insert script as the yardstick, and drops the database. Numbers only; nothing here asserts a
//! speed.

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openspp::access_log::{AccessEntry, AccessLog};
use support::{create_client, individual_body, path_id, Api, Server, TestDatabase, NATIONAL_ID};

struct Options {
    concurrency: usize,
    creates: usize,
    reads: usize,
    seconds: u64,
    /// Individuals to register before measuring the consent filter's cost on search (0 = skip).
    population: usize,
    /// Reads per side and round of the access log's A/B (0 = skip).
    overhead_reads: usize,
    overhead_rounds: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        concurrency: value("--concurrency", 16),
        creates: value("--creates", 4000),
        reads: value("--reads", 20000),
        seconds: value("--seconds", 10) as u64,
        population: value("--population", 0),
        overhead_reads: value("--overhead-reads", 3000),
        overhead_rounds: value("--overhead-rounds", 3),
    }
}

/// Requests/s, p50 and p99 latency of one run.
type Measured = (f64, Duration, Duration);

/// Runs `total` requests from `concurrency` workers; returns requests/s and latency percentiles.
async fn drive<F, Fut>(concurrency: usize, total: usize, request: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    drive_any(concurrency, total, request, 0).await
}

/// As `drive`, where every answer must be `expected` (0: any 2xx).
async fn drive_any<F, Fut>(concurrency: usize, total: usize, request: F, expected: u16) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let request = request.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return latencies;
                    }
                    let t = Instant::now();
                    let status = request(n).await;
                    if expected == 0 {
                        assert!(status < 300, "request {n} answered {status}");
                    } else {
                        assert_eq!(status, expected, "request {n}");
                    }
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (total as f64 / elapsed.as_secs_f64(), p(0.5), p(0.99))
}

fn pgbench(database_url: &str, clients: usize, seconds: u64) -> String {
    support::sql_scalar(
        database_url,
        "CREATE TABLE IF NOT EXISTS bench_rows (id bigint GENERATED ALWAYS AS IDENTITY, payload jsonb, metadata jsonb, recorded_at timestamptz)",
    );
    let script = std::env::temp_dir().join(format!("openspp-bench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO bench_rows (payload, metadata, recorded_at) VALUES ('{\"name\": \"x\"}', '{\"client_id\": \"c\"}', now());\n",
    )
    .unwrap();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-j",
            "2",
            "-c",
            &clients.to_string(),
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(database_url)
        .output();
    let _ = std::fs::remove_file(&script);
    match output {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("tps") || l.contains("latency average"))
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("pgbench unavailable: {e}"),
    }
}

/// Enrols `count` of the registered individuals in one program, `c` at a time.
async fn enrolment(api: &Api, _database_url: &str, prefix: &str, count: usize, c: usize) {
    let program = format!("Bench program {prefix}");
    let reply = api
        .post(
            "/api/v2/spp/Program",
            serde_json::json!({"name": program, "targetType": "individual", "currency": "PHP"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let alias = format!(
        "urn:openspp:program|{}",
        program.to_lowercase().replace(' ', "-")
    );
    let enrol_api = api.clone();
    let enrol_prefix = prefix.to_owned();
    let (rps, p50, p99) = drive(c, count, move |n| {
        let api = enrol_api.clone();
        let body = serde_json::json!({
            "program": {"reference": format!("Program/{alias}")},
            "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{enrol_prefix}-{n}")},
            "status": "enrolled"
        });
        async move {
            api.post("/api/v2/spp/ProgramMembership", body)
                .await
                .status
                .as_u16()
        }
    })
    .await;
    println!(
        "enrol   POST /ProgramMembership {rps:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({count} requests)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

/// For a consent-bound client, reading someone who exists without consent must cost what
/// reading an unknown identifier costs: both latency distributions side by side, measured in
/// alternating rounds (so drift in the machine's load falls on both) and compared by medians.
async fn not_found_timing(api: &Api, database_url: &str, prefix: &str, c: usize) {
    const ROUNDS: usize = 5;
    const REQUESTS: usize = 2000;
    let ngo = support::consent_client(database_url, "Timing NGO", "ngo", &["individual:all"]);
    let ngo_api = Api::new(&api.base).login(&ngo).await;
    let mut sides: [(&str, bool, Vec<Measured>); 2] = [
        ("unconsented", true, Vec::new()),
        ("unknown", false, Vec::new()),
    ];
    for round in 0..ROUNDS {
        for side in [round % 2, 1 - round % 2] {
            let (_, existing, runs) = &mut sides[side];
            let existing = *existing;
            let reader = ngo_api.clone();
            let prefix = prefix.to_owned();
            let measured = drive_any(
                c,
                REQUESTS,
                move |n| {
                    let api = reader.clone();
                    let value = if existing {
                        format!("{prefix}-{}", (n + round * REQUESTS) % 1000)
                    } else {
                        format!("{prefix}-missing-{round}-{n}")
                    };
                    let path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &value));
                    async move { api.get(&path).await.status.as_u16() }
                },
                404,
            )
            .await;
            runs.push(measured);
        }
    }
    for (label, _, runs) in &mut sides {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rps, p50, p99) = runs[runs.len() / 2];
        println!(
            "404     GET {label:<12} (consent-bound client) {rps:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  (median of {ROUNDS} x {REQUESTS})",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}

/// Fills the registry to `population` individuals (birth dates spread over 70 years), gives
/// every tenth of them a consent for one NGO, and compares search latency for a client acting
/// under a legal basis with that NGO's consent-filtered client.
async fn consent_filter_cost(
    api: &Api,
    database_url: &str,
    prefix: &str,
    population: usize,
    c: usize,
) {
    let fill_api = api.clone();
    let fill_prefix = format!("{prefix}-pop");
    let started = Instant::now();
    let (rps, _, _) = drive(c * 2, population, move |n| {
        let api = fill_api.clone();
        let mut body = individual_body(&format!("{fill_prefix}-{n}"));
        let year = 1940 + (n % 70);
        body["birthDate"] =
            serde_json::json!(format!("{year}-{:02}-{:02}", 1 + n % 12, 1 + n % 28));
        async move {
            api.post("/api/v2/spp/Individual", body)
                .await
                .status
                .as_u16()
        }
    })
    .await;
    println!(
        "filled {population} individuals in {:.0} s ({rps:.0} creates/s)",
        started.elapsed().as_secs_f64()
    );
    let consent_api = api.clone();
    let consent_prefix = format!("{prefix}-pop");
    drive(c, population / 10, move |n| {
        let api = consent_api.clone();
        let body = serde_json::json!({
            "subject": format!("Individual/{NATIONAL_ID}|{consent_prefix}-{}", n * 10),
            "recipient_mode": "specific", "recipients": ["Bench NGO"],
            "scopes": [{"resource_type": "individual", "field_access": null, "purpose": "service_delivery"}],
            "expiry_date": "2099-12-31"
        });
        async move { api.post("/api/v2/spp/Consent", body).await.status.as_u16() }
    })
    .await;
    // The steady state, as autovacuum leaves it within a minute of a bulk load: without fresh
    // statistics the planner takes the consent filter for a few rows and probes per consent.
    support::sql_scalar(database_url, "ANALYZE");
    let ngo = support::consent_client(database_url, "Bench NGO", "ngo", &["individual:all"]);
    let ngo_api = Api::new(&api.base).login(&ngo).await;
    for (label, query) in [
        ("name, first page", "name=santos&_count=20"),
        (
            "birthdate range",
            "birthdate=ge1970-01-01&birthdate=lt1971-01-01&_count=20",
        ),
    ] {
        for (who, client) in [("legal basis", api.clone()), ("consent", ngo_api.clone())] {
            let path = format!("/api/v2/spp/Individual?{query}");
            let (rps, p50, p99) = drive(c, 400, move |_| {
                let api = client.clone();
                let path = path.clone();
                async move { api.get(&path).await.status.as_u16() }
            })
            .await;
            println!(
                "search {label:<18} {who:<12} {rps:>7.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({population} individuals)",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
}

/// Rows in the access log.
fn logged_rows(database_url: &str) -> u64 {
    support::sql_scalar(database_url, "SELECT count(*) FROM access_log")
        .parse()
        .unwrap()
}

/// Waits until the server's background writer has stored `rows` access-log rows.
async fn drained(database_url: &str, rows: u64) {
    while logged_rows(database_url) < rows {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the access log costs a read. The server has no switch that turns audit logging off (it
/// would be a compliance hole), so the comparison is made here, in the bench's own throwaway
/// database: the same reads at the same concurrency, once with the log stored as in
/// production, once with a BEFORE INSERT trigger that discards its rows. The "discarded" side
/// still queues each entry and sends the batched INSERT, so the difference is the cost of
/// storing the rows (heap, four GIN/B-tree indexes, WAL, commit); the per-entry queueing cost
/// is measured on its own below. Sides alternate, several rounds, to spread drift.
async fn access_log_overhead(
    api: &Api,
    database_url: &str,
    prefix: &str,
    creates: usize,
    c: usize,
    reads: usize,
    rounds: usize,
) {
    support::sql_scalar(
        database_url,
        "CREATE FUNCTION bench_discard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    );
    let mut sides: [(&str, Vec<Measured>); 2] = [("stored", Vec::new()), ("discarded", Vec::new())];
    for round in 0..rounds {
        for side in [round % 2, 1 - round % 2] {
            let discard = side == 1;
            if discard {
                support::sql_scalar(
                    database_url,
                    "CREATE TRIGGER bench_discard BEFORE INSERT ON access_log \
                     FOR EACH ROW EXECUTE FUNCTION bench_discard()",
                );
            }
            let before = logged_rows(database_url);
            let reader = api.clone();
            let prefix = prefix.to_owned();
            let measured = drive(c, reads, move |n| {
                let api = reader.clone();
                let path = format!(
                    "/api/v2/spp/Individual/{}",
                    path_id(
                        NATIONAL_ID,
                        &format!("{prefix}-{}", (n * 7919 + round) % creates)
                    )
                );
                async move { api.get(&path).await.status.as_u16() }
            })
            .await;
            if discard {
                // Let the writer flush this side's entries into the trigger before removing it.
                tokio::time::sleep(Duration::from_millis(500)).await;
                support::sql_scalar(database_url, "DROP TRIGGER bench_discard ON access_log");
                assert_eq!(
                    logged_rows(database_url),
                    before,
                    "the discarded side stored nothing"
                );
            } else {
                drained(database_url, before + reads as u64).await;
            }
            sides[side].1.push(measured);
        }
    }
    let median = |runs: &mut Vec<Measured>| {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[runs.len() / 2]
    };
    let mut medians = Vec::new();
    for (label, runs) in &mut sides {
        let (rps, p50, p99) = median(runs);
        println!(
            "audit   GET /Individual/{{id}} log {label:<9} {rps:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  (median of {rounds} x {reads}; {:.0}-{:.0} req/s)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            runs[0].0,
            runs[runs.len() - 1].0
        );
        medians.push((rps, p50));
    }
    println!(
        "audit   storing the access log costs {:.1} % of read throughput, {:+.2} ms at p50",
        (1.0 - medians[0].0 / medians[1].0) * 100.0,
        (medians[0].1.as_secs_f64() - medians[1].1.as_secs_f64()) * 1e3
    );
    access_log_entry_cost(database_url, 5000).await;
}

/// The access log by itself, in this process: what handing one entry to the background writer
/// costs the request (a channel send), and how many entries per second the writer stores.
async fn access_log_entry_cost(database_url: &str, entries: usize) {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let before = logged_rows(database_url);
    let (log, writer) = AccessLog::start(pool);
    let started = Instant::now();
    for n in 0..entries {
        log.record(AccessEntry {
            at: chrono::Utc::now(),
            client_id: "bench".into(),
            organization: "Bench".into(),
            resource_type: "Individual",
            interaction: "read",
            action: "R",
            subjects: vec![format!("Individual/{NATIONAL_ID}|bench-{n}")],
            streams: vec![uuid::Uuid::now_v7().to_string()],
            consent_ids: Vec::new(),
            purpose: None,
            fields: None,
            outcome: 200,
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await;
    }
    let queued = started.elapsed();
    drop(log);
    writer.await.unwrap();
    let stored = started.elapsed();
    assert_eq!(logged_rows(database_url), before + entries as u64);
    println!(
        "audit   access-log entry: {:.2} µs to queue (the request's share), {:.0} entries/s stored by the writer ({entries} entries)",
        queued.as_secs_f64() * 1e6 / entries as f64,
        entries as f64 / stored.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let options = options();
    let database = TestDatabase::create("openspp_bench");
    let server = Server::start(&database.url, &[("OPENSPP_LOG", "error")]);
    let credentials = create_client(
        &database.url,
        &[
            "--scope",
            "individual:all",
            "--scope",
            "consent:all",
            "--scope",
            "program:all",
            "--scope",
            "program_membership:all",
        ],
    );
    let api = Api::new(&server.base).login(&credentials).await;
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let c = options.concurrency;
    println!("openspp-es throughput, {c} concurrent clients, loopback, one 2-core machine");

    let create_api = api.clone();
    let create_prefix = prefix.clone();
    let (rps, p50, p99) = drive(c, options.creates, move |n| {
        let api = create_api.clone();
        let body = individual_body(&format!("{create_prefix}-{n}"));
        async move {
            api.post("/api/v2/spp/Individual", body)
                .await
                .status
                .as_u16()
        }
    })
    .await;
    println!("create  POST /Individual      {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)",
        rps, p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3, options.creates);

    let read_api = api.clone();
    let read_prefix = prefix.clone();
    let creates = options.creates;
    let (rps, p50, p99) = drive(c, options.reads, move |n| {
        let api = read_api.clone();
        let path = format!(
            "/api/v2/spp/Individual/{}",
            path_id(
                NATIONAL_ID,
                &format!("{read_prefix}-{}", (n * 7919) % creates)
            )
        );
        async move { api.get(&path).await.status.as_u16() }
    })
    .await;
    println!("read    GET /Individual/{{id}}  {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)",
        rps, p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3, options.reads);

    let search_api = api.clone();
    let (rps, p50, p99) = drive(c, options.reads / 4, move |_| {
        let api = search_api.clone();
        async move {
            api.get("/api/v2/spp/Individual?name=santos&birthdate=ge1980-01-01&_count=20")
                .await
                .status
                .as_u16()
        }
    })
    .await;
    println!("search  GET /Individual?name  {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests over {} rows)",
        rps, p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3, options.reads / 4, options.creates);

    if options.overhead_reads > 0 {
        access_log_overhead(
            &api,
            &database.url,
            &prefix,
            options.creates,
            c,
            options.overhead_reads,
            options.overhead_rounds.max(1),
        )
        .await;
    }

    enrolment(&api, &database.url, &prefix, options.creates.min(2000), c).await;
    not_found_timing(&api, &database.url, &prefix, c).await;

    if options.population > 0 {
        consent_filter_cost(&api, &database.url, &prefix, options.population, c).await;
    }

    println!(
        "pgbench one-row insert, {c} clients: {}",
        pgbench(&database.url, c, options.seconds)
    );
    drop(server);
    drop(database);
}
