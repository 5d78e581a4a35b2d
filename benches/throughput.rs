//! Throughput of the API on this machine, each figure beside PostgreSQL's own on the same
//! machine in the same run: `cargo bench --bench throughput` (options after `--`:
//! `--seconds 10 --concurrency 16 --rows 100000 --population 1000000 --extras`).
//!
//! It prints one table, a row per line of issue 10's: the server's figure (load from `wrk`),
//! pgbench's (a one-row jsonb insert; a primary-key select over `--rows` rows), the ratio and
//! the goal; then search latency over `--population` individuals, legal basis and consent-
//! filtered, and the server's peak resident memory. Writes and reads run against a fresh
//! database holding `--rows` people; searches against a copy of a cached population (built once
//! through the store's batch path, see `common/population.rs`). `--extras` adds the access
//! log's cost and the 404 timing comparison. Numbers only; nothing here asserts a speed.

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

use drive::{drive, drive_any, Measured};
use openspp::access_log::{AccessEntry, AccessLog};
use openspp::store::EventStore;
use support::{cli, create_client, path_id, Api, Server, TestDatabase, NATIONAL_ID};
use wrk::{get_script, post_script, random_get_script, Load};

struct Options {
    concurrency: usize,
    /// Length of each measured phase.
    seconds: u64,
    /// People in the write/read database (and rows in pgbench's primary-key table).
    rows: usize,
    /// People in the cached population searched (0 = skip the searches).
    population: usize,
    /// The access log's cost and the 404 timing comparison too.
    extras: bool,
}

fn options() -> Options {
    let value = args::number;
    Options {
        concurrency: value("--concurrency", 16),
        seconds: value("--seconds", 10) as u64,
        rows: value("--rows", 100_000),
        population: value("--population", 1_000_000),
        extras: args::flag("--extras"),
    }
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
                        format!("{prefix}{}", (n + round * REQUESTS) % 1000)
                    } else {
                        format!("{prefix}missing-{round}-{n}")
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
                        &format!("{prefix}{}", (n * 7919 + round) % creates)
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
            not_found: Vec::new(),
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

/// Peak resident memory of process `pid` so far, in MB (`VmHWM`).
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One line of the table: what, the server's figure, the yardstick's, the ratio, the goal.
struct Row([String; 5]);

impl Row {
    /// A throughput row: the server's req/s against pgbench's tps.
    fn versus(what: &str, server: &Load, yardstick: &str, tps: f64, goal: f64) -> Self {
        let ratio = server.rps / tps;
        Row([
            what.to_owned(),
            format!(
                "{:.0} req/s, p99 {:.1} ms",
                server.rps,
                server.p99.as_secs_f64() * 1e3
            ),
            format!("{yardstick} {tps:.0} tps"),
            format!("{ratio:.3}×{}", if ratio >= goal { "" } else { " (below)" }),
            format!("≥ {goal:.2}×"),
        ])
    }

    /// PostgreSQL's own rate at one of the server's workloads, against the one-row insert:
    /// the ceiling the schema sets, beside which the server's ratio is read.
    fn yardstick(what: &str, tps: f64, yardstick: &str, yardstick_tps: f64) -> Self {
        Row([
            what.to_owned(),
            format!("{tps:.0} tps"),
            format!("{yardstick} {yardstick_tps:.0} tps"),
            format!("{:.3}×", tps / yardstick_tps),
            "—".to_owned(),
        ])
    }
}

/// The server's req/s and p99 under `script`, after a short warm-up (so that the first
/// requests' cold caches are not what is measured).
fn measured(
    label: &str,
    (base, database_url): (&str, &str),
    token: &str,
    o: &Options,
    script: &str,
) -> Load {
    wrk::warm(base, token, 5, o.concurrency, script);
    settled(database_url);
    let load = wrk::run(
        base,
        token,
        o.seconds.div_ceil(2).max(3),
        o.concurrency,
        script,
    );
    println!("{label:<52} {}", load.summary());
    settled(database_url);
    load
}

/// Waits (up to a minute) until the database runs no statement of the server's: a request `wrk`
/// gave up on at the end of a phase leaves its statement running, which would otherwise be
/// measured as part of the next phase.
fn settled(database_url: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let busy = support::sql_scalar(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             AND query NOT ILIKE 'LISTEN%'",
        );
        if busy == "0" {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Searches over a copy of the cached population: each search for a client under a legal
/// basis and for one filtered by the people's consents; and a read by id at that size.
/// Returns the table's rows and the server's peak resident memory.
async fn searches(o: &Options, table: &mut Vec<Row>) -> f64 {
    let template = population::cached(o.population).await;
    let started = Instant::now();
    let name = format!("openspp_bench_run_{}", uuid::Uuid::new_v4().simple());
    let url = population::copy_of(&template, &name);
    let database = TestDatabase { name, url };
    println!(
        "copied the cached population of {} in {:.1} s",
        o.population,
        started.elapsed().as_secs_f64()
    );
    let server = Server::start(&database.url, &[("OPENSPP_LOG", "error")]);
    let legal = create_client(&database.url, &["--scope", "individual:all"]);
    let legal = Api::new(&server.base).login(&legal).await.token.unwrap();
    let ngo = support::consent_client(&database.url, population::NGO, "ngo", &["individual:all"]);
    let ngo = Api::new(&server.base).login(&ngo).await.token.unwrap();
    let size = o.population;
    let read = measured(
        &format!("read    GET /Individual/{{id}} at {size}"),
        (&server.base, &database.url),
        &legal,
        o,
        &random_get_script(
            &format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, "P")),
            size,
        ),
    );
    table.push(Row([
        format!("`GET /Individual/{{id}}` at {size} individuals"),
        format!(
            "{:.0} req/s, p99 {:.1} ms",
            read.rps,
            read.p99.as_secs_f64() * 1e3
        ),
        "—".into(),
        "—".into(),
        "as above".into(),
    ]));
    let searches = [
        (
            "name=santos",
            get_script("/api/v2/spp/Individual?name=santos&_count=20"),
        ),
        (
            "birthdate, one month",
            get_script(
                "/api/v2/spp/Individual?birthdate=ge1970-03-01&birthdate=lt1970-04-01&_count=20",
            ),
        ),
        (
            "identifier=",
            random_get_script(
                &format!(
                    "/api/v2/spp/Individual?identifier={}",
                    path_id(NATIONAL_ID, "P")
                ),
                size,
            ),
        ),
    ];
    for (label, script) in searches {
        let by_legal = measured(
            &format!("search  {label} legal basis"),
            (&server.base, &database.url),
            &legal,
            o,
            &script,
        );
        let by_consent = measured(
            &format!("search  {label} consent-filtered"),
            (&server.base, &database.url),
            &ngo,
            o,
            &script,
        );
        let p99 = |load: &Load| {
            let ms = load.p99.as_secs_f64() * 1e3;
            format!(
                "p99 {ms:.1} ms{} ({:.0} req/s)",
                if ms < 50.0 { "" } else { " (above)" },
                load.rps
            )
        };
        let slower = by_legal.rps / by_consent.rps;
        table.push(Row([
            format!("search `{label}` over {size}: legal basis / consent-filtered"),
            format!("{} / {}", p99(&by_legal), p99(&by_consent)),
            "—".into(),
            format!(
                "consent {slower:.2}× slower{}",
                if slower <= 2.0 { "" } else { " (above)" }
            ),
            "p99 < 50 ms; filter ≤ 2×".into(),
        ]));
    }
    let peak = peak_rss_mb(server.pid());
    drop(server);
    drop(database);
    peak
}

#[tokio::main]
async fn main() {
    let o = options();
    let c = o.concurrency;
    let s = o.seconds;
    println!(
        "openspp-es throughput: {c} connections (wrk) beside pgbench ({c} clients), {s} s a phase, one 2-core machine"
    );
    let database = TestDatabase::create("openspp_bench");
    cli(&database.url, &["migrate"]);
    {
        let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
        let services = population::services(&pool).await;
        let started = Instant::now();
        population::fill(
            &EventStore::new(pool.clone()),
            &services,
            "B",
            0,
            o.rows,
            None,
        )
        .await;
        println!(
            "loaded {} individuals through the store's batch path in {:.1} s",
            o.rows,
            started.elapsed().as_secs_f64()
        );
        pool.close().await;
        support::sql_scalar(&database.url, "VACUUM ANALYZE");
    }
    let server = Server::start(&database.url, &[("OPENSPP_LOG", "error")]);
    let credentials = create_client(
        &database.url,
        &[
            "--scope",
            "individual:all",
            "--scope",
            "program:all",
            "--scope",
            "program_membership:all",
        ],
    );
    let api = Api::new(&server.base).login(&credentials).await;
    let token = api.token.clone().unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut table = Vec::new();

    let insert = pgbench::insert(&database.url, c, s);
    println!("pgbench one-row jsonb insert                         {insert:>7.0} tps");
    let create = wrk::run(
        &server.base,
        &token,
        s,
        c,
        &post_script(
            "/api/v2/spp/Individual",
            &support::individual_body(&format!("W{run}-{{N}}")),
        ),
    );
    println!("{:<52} {}", "create  POST /Individual", create.summary());
    table.push(Row::versus(
        "`POST /Individual`",
        &create,
        "one-row insert",
        insert,
        0.40,
    ));
    let registration = pgbench::registration(&database.url, c, s);
    println!("pgbench a registration's rows, one statement each     {registration:>7.0} tps");
    table.push(Row::yardstick(
        "pgbench: the rows of one `POST /Individual`, one statement and commit each",
        registration,
        "one-row insert",
        insert,
    ));

    let program = format!("Bench program {run}");
    api.post(
        "/api/v2/spp/Program",
        serde_json::json!({"name": program, "targetType": "individual", "currency": "PHP"}),
    )
    .await
    .expect(201);
    let enrol = wrk::run(
        &server.base,
        &token,
        s,
        c,
        &post_script(
            "/api/v2/spp/ProgramMembership",
            &serde_json::json!({
                "program": {"reference": format!("Program/urn:openspp:program|bench-program-{run}")},
                "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|B{{N}}")},
                "status": "enrolled"
            }),
        ),
    );
    println!(
        "{:<52} {}",
        "enrol   POST /ProgramMembership",
        enrol.summary()
    );
    table.push(Row::versus(
        "`POST /ProgramMembership`",
        &enrol,
        "one-row insert",
        insert,
        0.40,
    ));

    let select = pgbench::select(&database.url, c, s, o.rows);
    println!(
        "pgbench primary-key select over {:<20} {select:>7.0} tps",
        o.rows
    );
    let read = wrk::run(
        &server.base,
        &token,
        s,
        c,
        &random_get_script(
            &format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, "B")),
            o.rows,
        ),
    );
    println!("{:<52} {}", "read    GET /Individual/{id}", read.summary());
    table.push(Row::versus(
        "`GET /Individual/{id}`",
        &read,
        "primary-key select",
        select,
        0.30,
    ));

    if o.extras {
        access_log_overhead(&api, &database.url, "B", o.rows, c, 3000, 3).await;
        not_found_timing(&api, &database.url, "B", c).await;
    }
    let mut peak = peak_rss_mb(server.pid());
    drop(server);
    drop(database);

    if o.population > 0 {
        peak = peak.max(searches(&o, &mut table).await);
    }
    table.push(Row([
        "server peak resident memory".into(),
        format!("{peak:.0} MB"),
        "—".into(),
        "—".into(),
        "< 150 MB".into(),
    ]));

    let pgbench_column = format!("pgbench, {c} clients");
    report::table(
        &["what", "server", &pgbench_column, "ratio", "goal"],
        &table
            .iter()
            .map(|Row(cells)| cells.to_vec())
            .collect::<Vec<_>>(),
    );
}
