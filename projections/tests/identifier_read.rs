//! A read by identifier keeps one plan, whatever type it reads: PostgreSQL plans a prepared
//! statement with its values for its first five runs, then keeps a plan without them (the
//! generic plan) unless planning with the values keeps looking cheaper. A statement planned on
//! every run pays its planning every run: for the program an enrolment names, more than
//! the read itself.

mod support;

use openspp_projections::view::IdentifierRead;
use support::TestDb;

/// Claims of people, as a registry holds them beside a few programs.
const PEOPLE: usize = 20_000;

/// Runs of the prepared statement before its plan is looked at (PostgreSQL decides on the
/// sixth whether to keep a plan).
const RUNS: usize = 10;

/// With statistics that know no programs (a registry of people, analysed), the reads by
/// identifier of a program and of a person, alone and together, are planned without their
/// values from the sixth run on, and find the claim by its primary key.
#[tokio::test]
async fn a_read_by_identifier_keeps_its_plan_for_a_rare_type() {
    let db = TestDb::create().await;
    sqlx::query(
        "INSERT INTO identifier_claims (system, value, aggregate_type, aggregate_id) \
         SELECT 'urn:test:id', 'person-' || n, 'Individual', 'individual-' || n \
         FROM generate_series(1, $1) n",
    )
    .bind(PEOPLE as i64)
    .execute(&db.pool)
    .await
    .unwrap();
    // Analysed before the program is created, as a registry loaded in bulk is: its statistics
    // know no type but people (so would a sample of millions holding a few programs).
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
    sqlx::query(
        "INSERT INTO identifier_claims (system, value, aggregate_type, aggregate_id) \
         VALUES ('urn:openspp:program', 'cash', 'Program', 'program-1')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let kinds = [
        (
            IdentifierRead::new("program_view", "Program"),
            "urn:openspp:program",
            "cash",
        ),
        (
            IdentifierRead::new("individual_view", "Individual"),
            "urn:test:id",
            "person-7",
        ),
    ];
    for (read, system, value) in kinds {
        for together in [false, true] {
            keeps_its_plan(&mut conn, read, together, system, value).await;
        }
    }
    drop(conn);
    db.drop().await;
}

/// Prepares `read` (`together`, or alone) on `conn`, runs it `RUNS` times for `system|value`,
/// and asserts that PostgreSQL kept a plan made without the values, one that finds the claim
/// by its primary key.
async fn keeps_its_plan(
    conn: &mut sqlx::PgConnection,
    read: IdentifierRead,
    together: bool,
    system: &str,
    value: &str,
) {
    let (types, args) = if together {
        (
            "text, text[], text[]",
            format!("'{{{system}}}', '{{{value}}}'"),
        )
    } else {
        ("text, text, text", format!("'{system}', '{value}'"))
    };
    let execute = format!("EXECUTE read('{}', {args})", read.aggregate_type);
    sqlx::query(&format!(
        "PREPARE read({types}) AS {}",
        read.statement(together)
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    for _ in 0..RUNS {
        let rows = sqlx::query(&execute).fetch_all(&mut *conn).await.unwrap();
        assert_eq!(rows.len(), 1, "{read:?} together {together}: the claim");
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'read'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(
        generic >= (RUNS - 5) as i64 && custom <= 5,
        "{read:?} together {together}: planned anew on every run \
         ({generic} generic, {custom} custom plans)"
    );
    let explained: serde_json::Value =
        sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {execute}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let plan = explained.to_string();
    assert!(
        plan.contains("identifier_claims_unique") && !plan.contains("identifier_claims_by_stream"),
        "{read:?} together {together}: the claim by its primary key: {plan}"
    );
    sqlx::query("DEALLOCATE read")
        .execute(&mut *conn)
        .await
        .unwrap();
}
