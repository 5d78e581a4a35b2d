//! Bulk loading (issue 14), each figure beside PostgreSQL's one-row insert measured in the same
//! run: `cargo bench --bench import` (options after `--`: `--rows 1000000 --synthetic 100000
//! --seconds 10 --concurrency 16`).
//!
//! `openspp import FILE` of an NDJSON file of `--rows` individuals (written by the bench) into a
//! fresh database, timed from the outside: rows/s. `openspp seed --synthetic N` (households,
//! programs, memberships through their statuses, consents; 0 skips it) into another fresh
//! database: rows/s, where its rows are the lines of the file it writes. Then, against the
//! imported registry, `wrk` posting transaction Bundles of a household (one Group and its ten
//! Individuals, linked by `urn:uuid:` placeholders) to `POST /$batch` from `--concurrency`
//! connections for `--seconds`: Bundles/s and registrants/s. Numbers only; nothing here asserts a
//! speed.

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "common/pgbench.rs"]
mod pgbench;
#[path = "common/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "common/wrk.rs"]
mod wrk;

use std::io::{BufRead, Write};
use std::time::Instant;

use serde_json::{json, Value};
use support::{cli, create_client, individual_body, Api, Server, TestDatabase};

struct Options {
    rows: usize,
    synthetic: usize,
    seconds: u64,
    concurrency: usize,
}

fn options() -> Options {
    let value = args::number;
    Options {
        rows: value("--rows", 1_000_000),
        synthetic: value("--synthetic", 100_000),
        seconds: value("--seconds", 10) as u64,
        concurrency: value("--concurrency", 16),
    }
}

const FAMILIES: [&str; 8] = [
    "Santos", "Reyes", "Cruz", "Bautista", "Ocampo", "Garcia", "Mendoza", "Torres",
];
const GIVEN: [&str; 8] = [
    "Maria", "Jose", "Juan", "Ana", "Mark", "Angelica", "Rosa", "Ramon",
];

/// Individual `n` of the imported file: the API's own shape, varied in name, birth date and
/// gender.
fn person(n: usize) -> Value {
    let mut body = individual_body(&format!("IMP{n}"));
    body["name"] = json!({"family": FAMILIES[n % FAMILIES.len()],
                          "given": format!("{} {n}", GIVEN[(n / 8) % GIVEN.len()])});
    let day = chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap()
        + chrono::Duration::days(((n * 7919) % 25_000) as i64);
    body["birthDate"] = json!(day.to_string());
    body["gender"]["coding"][0]["code"] = json!((1 + n % 2).to_string());
    body
}

/// The summary line `openspp import` and `openspp seed` print.
fn summary(printed: &str) -> Value {
    serde_json::from_str(printed.lines().last().unwrap_or_default()).expect("a JSON summary")
}

/// A fresh, migrated database.
fn fresh(prefix: &str) -> TestDatabase {
    let database = TestDatabase::create(prefix);
    cli(&database.url, &["migrate"]);
    database
}

/// A household of ten as a transaction Bundle (the head first), every identifier with `{N}`.
fn household_bundle(run: &str) -> Value {
    let placeholder = |n: usize| format!("urn:uuid:00000000-0000-4000-8000-{n:012}");
    let role = |code: &str| json!({"coding": [{"system": "urn:openspp:vocab:group-membership-type", "code": code}]});
    let mut entries: Vec<Value> = (0..10)
        .map(|n| {
            json!({"fullUrl": placeholder(n), "resource": person(n),
                   "request": {"method": "POST", "url": "Individual"}})
        })
        .collect();
    for (n, entry) in entries.iter_mut().enumerate() {
        entry["resource"]["identifier"][0]["value"] = json!(format!("HH{run}-{{N}}-{n}"));
    }
    let members: Vec<Value> = (0..10)
        .map(|n| {
            json!({"entity": {"reference": placeholder(n)},
                   "role": role(if n == 0 { "head" } else { "member" })})
        })
        .collect();
    entries.push(json!({
        "fullUrl": placeholder(99),
        "resource": {"type": "Group",
                     "identifier": [{"system": "urn:openspp:group", "value": format!("HG{run}-{{N}}")}],
                     "groupType": "household", "name": "Bench Household", "member": members},
        "request": {"method": "POST", "url": "Group"},
    }));
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::main]
async fn main() {
    let o = options();
    let (c, s) = (o.concurrency, o.seconds);
    println!(
        "openspp-es import: {} rows imported, a synthetic population of {}, $batch households from \
         {c} connections for {s} s, beside pgbench ({c} clients), one 2-core machine",
        o.rows, o.synthetic
    );
    let mut rows = Vec::new();

    let database = fresh("openspp_bench_import");
    let insert = pgbench::insert(&database.url, c, s);
    println!("pgbench one-row jsonb insert, {c} clients: {insert:.0} tps");
    let insert_column = format!("one-row insert, {c} clients: {insert:.0} tps");

    let file = std::env::temp_dir().join(format!("openspp-bench-import-{}.ndjson", o.rows));
    let mut writer = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for n in 0..o.rows {
        writeln!(writer, "{}", person(n)).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    let started = Instant::now();
    let printed = cli(&database.url, &["import", file.to_str().unwrap()]);
    let took = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    let loaded = summary(&printed);
    assert_eq!(loaded["loaded"], o.rows, "every row loads: {loaded}");
    let rate = o.rows as f64 / took;
    println!(
        "import  {} individuals in {took:.1} s: {rate:.0} rows/s ({loaded})",
        o.rows
    );
    rows.push(vec![
        format!("`openspp import` of {} individuals (NDJSON)", o.rows),
        format!("{rate:.0} rows/s ({took:.1} s)"),
        insert_column.clone(),
        pgbench::ratio(rate, insert),
    ]);

    if o.synthetic > 0 {
        let seeded = fresh("openspp_bench_seed");
        let out = std::env::temp_dir().join(format!("openspp-bench-seed-{}.ndjson", o.synthetic));
        let started = Instant::now();
        let printed = cli(
            &seeded.url,
            &[
                "seed",
                "--synthetic",
                &o.synthetic.to_string(),
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let took = started.elapsed().as_secs_f64();
        let lines = std::io::BufReader::new(std::fs::File::open(&out).unwrap())
            .lines()
            .count();
        let _ = std::fs::remove_file(&out);
        let seed = summary(&printed);
        assert_eq!(seed["refused"], 0, "every row loads: {seed}");
        let rate = lines as f64 / took;
        println!(
            "seed    {} people, {lines} rows in {took:.1} s (writing the file included): \
             {rate:.0} rows/s ({seed})",
            o.synthetic
        );
        rows.push(vec![
            format!(
                "`openspp seed --synthetic {}` ({lines} rows: people, households, memberships, consents)",
                o.synthetic
            ),
            format!("{rate:.0} rows/s ({took:.1} s)"),
            insert_column.clone(),
            pgbench::ratio(rate, insert),
        ]);
    }

    support::sql_scalar(&database.url, "VACUUM ANALYZE");
    let server = Server::start(&database.url, &[("OPENSPP_LOG", "error")]);
    let credentials = create_client(
        &database.url,
        &["--scope", "individual:all", "--scope", "group:all"],
    );
    let token = Api::new(&server.base)
        .login(&credentials)
        .await
        .token
        .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let script = wrk::post_script("/api/v2/spp/$batch", &household_bundle(&run));
    let load = wrk::run(&server.base, &token, s, c, &script);
    println!(
        "$batch  transaction Bundles of 1 Group + 10 Individuals: {}",
        load.summary()
    );
    rows.push(vec![
        format!("`POST /$batch` households (1 Group + 10 Individuals), {c} connections"),
        format!(
            "{:.0} Bundles/s = {:.0} registrants/s, p99 {:.1} ms{}",
            load.rps,
            load.rps * 11.0,
            load.p99.as_secs_f64() * 1e3,
            if load.failed > 0 {
                format!(", {} FAILED", load.failed)
            } else {
                String::new()
            }
        ),
        insert_column,
        format!(
            "{} Bundles, {} registrants",
            pgbench::ratio(load.rps, insert),
            pgbench::ratio(load.rps * 11.0, insert)
        ),
    ]);
    drop(server);
    drop(database);
    report::table(
        &["what", "server", "PostgreSQL (pgbench), same run", "ratio"],
        &rows,
    );
}
