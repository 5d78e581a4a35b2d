//! Replay speed: `cargo bench --bench replay -- --events 1000000`.
//!
//! Fills a fresh database with synthetic registrations (an `IndividualRegistered` and an
//! `IdentifierAdded` per person, in the stored format), then runs `openspp replay`, which drops
//! the read models and rebuilds them from the log, and prints its report (events/s). The
//! database is dropped afterwards.

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use support::{cli, sql_scalar, TestDatabase};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let people = events / 2;
    let database = TestDatabase::create("openspp_bench_replay");
    cli(&database.url, &["migrate"]);
    let started = Instant::now();
    let fill = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata, recorded_at, prev_hash, hash) \
         SELECT 'Individual', 'p' || i, s.sequence, s.event_type, '1.0', \
             CASE s.sequence \
               WHEN 1 THEN jsonb_build_object('IndividualRegistered', jsonb_build_object( \
                 'name', jsonb_build_object('family', 'Family' || (i % 5000), 'given', 'Given' || i), \
                 'birth_date', (date '1940-01-01' + (i % 25000))::text, 'birth_date_estimated', false, \
                 'gender', jsonb_build_object('system', 'urn:iso:std:iso:5218', 'code', (1 + i % 2)::text), \
                 'telecom', '[]'::jsonb, 'address', '[]'::jsonb)) \
               ELSE jsonb_build_object('IdentifierAdded', jsonb_build_object('identifier', \
                 jsonb_build_object('system', 'urn:openspp:vocab:id-type#national_id', 'value', 'N' || i))) \
             END, \
             jsonb_build_object('client_id', 'bench', 'source_system', 'bench', 'collection_method', 'migration', \
                 'request_id', 'bench', 'recorded_at', now()::text), \
             now(), NULL, '\\x00' \
         FROM generate_series(1, {people}) i, \
              (VALUES (1, 'IndividualRegistered'), (2, 'IdentifierAdded')) AS s(sequence, event_type) \
         ORDER BY i, s.sequence"
    );
    let status = Command::new("psql")
        .args([database.url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &fill])
        .status()
        .expect("psql runs");
    assert!(status.success(), "filling the log failed");
    let stored = sql_scalar(&database.url, "SELECT count(*) FROM events");
    println!(
        "filled {stored} events ({people} people) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let report = cli(&database.url, &["replay"]);
    println!("replay: {}", report.trim());
    let projected = sql_scalar(&database.url, "SELECT count(*) FROM individual_view");
    println!("individual_view rows after replay: {projected}");
    drop(database);
}
