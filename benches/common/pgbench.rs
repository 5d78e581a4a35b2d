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
