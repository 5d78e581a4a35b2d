//! PostgreSQL's own figures on this machine, measured in the same run as the server's: every
//! bench prints its figures beside these and as a ratio to them, so that a number says how the
//! server compares with the database beneath it rather than how fast this machine is today.

use std::process::Command;

use crate::support::sql_scalar;

/// pgbench's transactions per second running `script`, `clients` at a time for `seconds`.
pub fn run(database_url: &str, clients: usize, seconds: u64, script: &str) -> f64 {
    let file = std::env::temp_dir().join(format!(
        "openspp-pgbench-{}-{}.sql",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, script).unwrap();
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2", "-c"])
        .arg(clients.to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-f")
        .arg(&file)
        .arg(database_url)
        .output()
        .expect("pgbench runs");
    let _ = std::fs::remove_file(&file);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench: {}", String::from_utf8_lossy(&output.stderr)))
}

/// pgbench inserting one jsonb row per transaction (a durable commit each, as a write is).
pub fn insert(database_url: &str, clients: usize, seconds: u64) -> f64 {
    sql_scalar(
        database_url,
        "CREATE TABLE bench_rows (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         payload jsonb, metadata jsonb, recorded_at timestamptz)",
    );
    let tps = run(
        database_url,
        clients,
        seconds,
        "INSERT INTO bench_rows (payload, metadata, recorded_at) \
         VALUES ('{\"name\": \"x\"}', '{\"client_id\": \"c\"}', now());\n",
    );
    sql_scalar(database_url, "DROP TABLE bench_rows");
    tps
}

/// pgbench writing, one statement and one commit each, the rows one `POST /Individual` writes:
/// a registered person's events, identifier claim and `individual_view` row, copied under a new
/// stream id, and an access-log entry, through the schema's own indexes and triggers. What the
/// registry's schema allows a server that commits each registration alone; the server groups
/// concurrent commits, so it may do better. Needs a registered person and an access-log entry.
pub fn registration(database_url: &str, clients: usize, seconds: u64) -> f64 {
    let stream = sql_scalar(
        database_url,
        "SELECT aggregate_id FROM individual_view ORDER BY aggregate_id LIMIT 1",
    );
    let entry = sql_scalar(database_url, "SELECT min(id) FROM access_log");
    sql_scalar(database_url, "CREATE SEQUENCE bench_registration");
    let tps = run(
        database_url,
        clients,
        seconds,
        &format!(
            "WITH k AS (SELECT 'R' || nextval('bench_registration') || '-' AS k), \
             e AS (INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata, recorded_at, prev_hash, hash) \
               SELECT aggregate_type, k || aggregate_id, sequence, event_type, event_version, \
               payload, metadata, now(), prev_hash, hash FROM events, k \
               WHERE aggregate_type = 'Individual' AND aggregate_id = '{stream}' \
               RETURNING global_position), \
             c AS (INSERT INTO identifier_claims (system, value, aggregate_type, aggregate_id) \
               SELECT 'bench', k, 'Individual', k || '{stream}' FROM k), \
             v AS (INSERT INTO individual_view (aggregate_id, version, state, \
               primary_identifier, name_search, family_name, given_name, birth_date, \
               gender_code, address_search, active, created_at, last_updated, source) \
               SELECT k || aggregate_id, version, state, k || primary_identifier, name_search, \
               family_name, given_name, birth_date, gender_code, address_search, active, now(), \
               now(), source FROM individual_view, k WHERE aggregate_id = '{stream}'), \
             a AS (INSERT INTO access_log (at, client_id, organization, resource_type, \
               interaction, action, subjects, subject_streams, subjects_not_found, consent_ids, \
               purpose, fields, outcome, request_id) \
               SELECT now(), client_id, organization, resource_type, interaction, action, \
               subjects, subject_streams, subjects_not_found, consent_ids, purpose, fields, \
               outcome, request_id FROM access_log WHERE id = {entry}) \
             SELECT max(global_position) FROM e;\n"
        ),
    );
    sql_scalar(database_url, "DROP SEQUENCE bench_registration");
    tps
}

/// pgbench selecting one row of `rows` by primary key per transaction.
pub fn select(database_url: &str, clients: usize, seconds: u64, rows: usize) -> f64 {
    sql_scalar(
        database_url,
        &format!(
            "CREATE TABLE bench_pk AS SELECT g AS id, jsonb_build_object('name', 'x' || g) AS payload \
             FROM generate_series(1, {rows}) g; ALTER TABLE bench_pk ADD PRIMARY KEY (id)"
        ),
    );
    // On its own: VACUUM cannot run in the transaction that `psql -c` makes of several
    // statements.
    sql_scalar(database_url, "VACUUM ANALYZE bench_pk");
    let tps = run(
        database_url,
        clients,
        seconds,
        &format!("\\set id random(1, {rows})\nSELECT payload FROM bench_pk WHERE id = :id;\n"),
    );
    sql_scalar(database_url, "DROP TABLE bench_pk");
    tps
}

/// `figure` as a ratio to PostgreSQL's `tps`, as the tables print it.
pub fn ratio(figure: f64, tps: f64) -> String {
    format!("{:.3}×", figure / tps)
}
