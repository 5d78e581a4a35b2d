//! `openspp import` and `openspp seed` (CONTRACT §10), run as an operator runs them: rows
//! loaded as ordinary events with `collection_method: migration`, refused rows reported by
//! line, every row loaded exactly once across an interruption, and a deterministic synthetic
//! population.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{
    admin, cli, individual_body, path_id, register_individual, sql_scalar, unique, world,
    HeldTransaction, TestDatabase, NATIONAL_ID, TEST_KEK,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "import::ndjson_reports_refused_lines_and_reruns_load_nothing",
            ndjson,
        ),
        trial(
            "import::an_interrupted_import_resumes_loading_every_row_once",
            interrupted,
        ),
        trial("import::csv_with_a_mapping_and_a_dry_run", csv_mapping),
        trial("import::seed_is_deterministic_for_a_seed", seed),
        trial("import::a_refused_merge_row_leaves_no_trace", refused_merge),
        trial(
            "import::a_transient_failure_is_retried_not_refused",
            transient_failure,
        ),
        trial(
            "import::a_dry_run_judges_rows_across_batches_as_the_import_does",
            dry_run_across_batches,
        ),
        trial(
            "import::a_dry_run_notifies_no_feed_follower",
            dry_run_notifies_no_one,
        ),
        trial(
            "import::the_planner_counts_what_an_import_loaded",
            statistics_after_import,
        ),
    ]
}

/// After an import the planner knows the rows it loaded (`pg_class.reltuples`, which ANALYZE
/// sets and which is -1 on a table never analysed): a fresh registry's plans are not made for
/// empty tables. A dry run loads nothing and analyses nothing.
async fn statistics_after_import() {
    let database = TestDatabase::create("openspp_e2e_import");
    let url = &database.url;
    let file = people_file("counted.ndjson", &unique("IMS"), 3);
    let planned = |table: &str| {
        count_in(
            url,
            &format!("SELECT reltuples::bigint FROM pg_class WHERE oid = '{table}'::regclass"),
        )
    };
    let rehearsed = summary(&cli(url, &["import", file.to_str().unwrap(), "--dry-run"]));
    assert_eq!(rehearsed["loaded"], 3, "{rehearsed}");
    assert_eq!(planned("individual_view"), -1, "a dry run analysed");
    let loaded = summary(&cli(url, &["import", file.to_str().unwrap()]));
    assert_eq!(loaded["loaded"], 3, "{loaded}");
    assert_eq!(planned("individual_view"), 3);
    assert_eq!(planned("identifier_claims"), 3);
    assert_eq!(
        planned("events"),
        count_in(url, "SELECT count(*) FROM events")
    );
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", unique("import")))
}

fn write_lines(path: &PathBuf, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A file of `count` individuals, one a line, identified `{prefix}-0`, `{prefix}-1`, ….
fn people_file(name: &str, prefix: &str, count: usize) -> PathBuf {
    let file = temp(name);
    let lines: Vec<String> = (0..count)
        .map(|n| individual_body(&format!("{prefix}-{n}")).to_string())
        .collect();
    write_lines(&file, &lines);
    file
}

fn summary(printed: &str) -> Value {
    serde_json::from_str(printed.lines().last().expect("a summary line")).expect("JSON summary")
}

fn count(sql: &str) -> i64 {
    sql_scalar(&world().database_url, sql).parse().unwrap()
}

/// Refused rows are reported by their 1-based line with the reason their request would have
/// got; the others load as migration events naming the file; a rerun loads nothing.
async fn ndjson() {
    let prefix = unique("IMP");
    let id = |n: usize| format!("{prefix}-{n}");
    let mut bad = individual_body(&id(9));
    bad["birthDate"] = json!("2999-01-01");
    let lines = vec![
        individual_body(&id(1)).to_string(),
        individual_body(&id(2)).to_string(),
        String::new(),
        bad.to_string(),
        "not json".to_owned(),
        json!({"type": "Group", "identifier": [{"system": "urn:openspp:group", "value": id(0)}],
               "groupType": "household", "name": "Imported Household",
               "member": [{"entity": {"reference": format!("Individual/{NATIONAL_ID}|{}", id(1))}},
                          {"entity": {"reference": format!("Individual/{NATIONAL_ID}|{}", id(2))}}]})
        .to_string(),
        individual_body(&id(1)).to_string(),
        individual_body(&id(3)).to_string(),
        json!({"type": "Nothing"}).to_string(),
    ];
    let file = temp("rows.ndjson");
    write_lines(&file, &lines);
    let report = temp("refused.ndjson");
    let url = &world().database_url;
    let first = summary(&cli(
        url,
        &[
            "import",
            file.to_str().unwrap(),
            "--batch-size",
            "3",
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    assert_eq!(first["rows"], 8, "{first}");
    assert_eq!(first["loaded"], 4, "{first}");
    assert_eq!(first["refused"], 4, "{first}");
    let refused: Vec<Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines_refused: Vec<i64> = refused
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines_refused, [4, 5, 7, 9], "{refused:?}");
    assert!(refused[0]["reason"].as_str().unwrap().contains("birthDate"));
    assert!(refused[2]["reason"]
        .as_str()
        .unwrap()
        .contains("already in use"));
    assert!(refused[3]["reason"].as_str().unwrap().starts_with("type"));
    // Ordinary events, recorded as a migration from this file.
    let hash = first["sha256"].as_str().unwrap();
    let events = count(&format!(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%{prefix}%' \
         AND metadata->>'collection_method' = 'migration' \
         AND metadata->>'source_reference' LIKE '%{hash}'"
    ));
    let all = count(&format!(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%{prefix}%'"
    ));
    assert!(events > 0 && events == all, "{events} of {all}");
    let api = admin().await;
    let group = api
        .get(&format!(
            "/api/v2/spp/Group/{}",
            path_id("urn:openspp:group", &id(0))
        ))
        .await;
    group.expect(200);
    assert_eq!(group.body["member"].as_array().unwrap().len(), 2);
    // The same file again: nothing loaded twice.
    let again = summary(&cli(url, &["import", file.to_str().unwrap()]));
    assert_eq!(again["loaded"], 0, "{again}");
    assert_eq!(again["already_imported"], 8, "{again}");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM events WHERE payload::text LIKE '%{prefix}%'"
        )),
        all
    );
}

/// Killed half-way (SIGKILL between batches), then run again: every row is loaded, once.
async fn interrupted() {
    let prefix = unique("IMK");
    let rows = 24;
    let file = people_file("interrupted.ndjson", &prefix, rows as usize);
    let url = &world().database_url;
    let mut child = Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args([
            "import",
            file.to_str().unwrap(),
            "--batch-size",
            "2",
            "--pause-ms",
            "300",
        ])
        .env("DATABASE_URL", url)
        .env("OPENSPP_KEY_ENCRYPTION_KEY", TEST_KEK)
        .env("OPENSPP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("import starts");
    let registered = || {
        count(&format!(
            "SELECT count(*) FROM events WHERE event_type = 'IdentifierAdded' \
             AND payload::text LIKE '%{prefix}%'"
        ))
    };
    let mut waited = 0;
    while registered() < 4 {
        assert!(waited < 200, "the import never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    child.kill().unwrap();
    let _ = child.wait();
    let before = registered();
    assert!(before < rows, "killed before the end ({before} loaded)");
    let resumed = summary(&cli(url, &["import", file.to_str().unwrap()]));
    assert_eq!(
        resumed["already_imported"].as_i64().unwrap(),
        before,
        "{resumed}"
    );
    assert_eq!(
        resumed["loaded"].as_i64().unwrap(),
        rows - before,
        "{resumed}"
    );
    assert_eq!(registered(), rows, "every row exactly once");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM individual_view WHERE state::text LIKE '%{prefix}%'"
        )),
        rows
    );
}

/// A CSV file placed by a mapping; a dry run checks every row and loads nothing.
async fn csv_mapping() {
    let prefix = unique("IMC");
    let file = temp("people.csv");
    std::fs::write(
        &file,
        format!(
            "national_id,family,given,dob,sex\n\
             {prefix}-1,Reyes,Ana,1990-02-03,2\n\
             {prefix}-2,Cruz,Jose,1988-11-30,1\n\
             {prefix}-3,Ramos,Luz,not-a-date,2\n"
        ),
    )
    .unwrap();
    let mapping = temp("mapping.json");
    std::fs::write(
        &mapping,
        json!({
            "type": "Individual",
            "columns": {"national_id": "identifier[0].value", "family": "name.family",
                        "given": "name.given", "dob": "birthDate", "sex": "gender.coding[0].code"},
            "constants": {"identifier[0].system": NATIONAL_ID,
                          "gender.coding[0].system": "urn:iso:std:iso:5218"}
        })
        .to_string(),
    )
    .unwrap();
    let url = &world().database_url;
    let args = |dry: bool| {
        let mut args = vec![
            "import".to_owned(),
            file.to_str().unwrap().to_owned(),
            "--mapping".to_owned(),
            mapping.to_str().unwrap().to_owned(),
        ];
        if dry {
            args.push("--dry-run".to_owned());
        }
        args
    };
    let run = |dry: bool| {
        let args = args(dry);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        summary(&cli(url, &args))
    };
    let people = || {
        count(&format!(
            "SELECT count(*) FROM individual_view WHERE state::text LIKE '%{prefix}%'"
        ))
    };
    let dry = run(true);
    assert_eq!(
        (dry["loaded"].as_i64(), dry["refused"].as_i64()),
        (Some(2), Some(1)),
        "{dry}"
    );
    assert_eq!(people(), 0, "a dry run loads nothing");
    let real = run(false);
    assert_eq!(real["loaded"], 2, "{real}");
    assert_eq!(people(), 2);
    let api = admin().await;
    let read = api
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &format!("{prefix}-2"))
        ))
        .await;
    read.expect(200);
    assert_eq!(read.body["name"]["given"], "Jose");
    assert_eq!(read.body["gender"]["coding"][0]["code"], "1");
}

/// The same seed writes the same population, byte for byte; loaded, it is every individual,
/// household and membership status it describes.
async fn seed() {
    let seed = (uuid::Uuid::new_v4().as_u128() % 1_000_000_000).to_string();
    let url = &world().database_url;
    let (a, b) = (temp("seed-a.ndjson"), temp("seed-b.ndjson"));
    let first = summary(&cli(
        url,
        &[
            "seed",
            "--synthetic",
            "60",
            "--seed",
            &seed,
            "--out",
            a.to_str().unwrap(),
        ],
    ));
    summary(&cli(
        url,
        &[
            "seed",
            "--synthetic",
            "60",
            "--seed",
            &seed,
            "--out",
            b.to_str().unwrap(),
            "--dry-run",
        ],
    ));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(first["refused"], 0, "{first}");
    assert!(first["loaded"].as_i64().unwrap() > 60, "{first}");
    let prefix = format!("SYN{seed}-");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM individual_view WHERE primary_identifier LIKE '%{prefix}%'"
        )),
        60
    );
    assert!(
        count(&format!(
            "SELECT count(*) FROM group_view WHERE primary_identifier LIKE '%{prefix}H%'"
        )) > 5
    );
    // Loading the same population again loads nothing.
    let again = summary(&cli(
        url,
        &[
            "seed",
            "--synthetic",
            "60",
            "--seed",
            &seed,
            "--out",
            b.to_str().unwrap(),
        ],
    ));
    assert_eq!(again["loaded"], 0, "{again}");
}

const GROUP_SYSTEM: &str = "urn:openspp:group";

fn household(value: &str, head: &str) -> Value {
    json!({"type": "Group", "identifier": [{"system": GROUP_SYSTEM, "value": value}],
           "groupType": "household", "name": format!("{value} Household"),
           "member": [{"entity": {"reference": format!("Individual/{NATIONAL_ID}|{head}")},
                       "role": {"coding": [{"system": "urn:openspp:vocab:group-membership-type",
                                            "code": "head"}]}}]})
}

/// A merge row refused after its first group's change was decided (the target's version is
/// stale) loads nothing of it: the source group is as it was, while the batch's other rows
/// load.
async fn refused_merge() {
    let api = admin().await;
    let prefix = unique("IMM");
    let id = |n: usize| format!("{prefix}-{n}");
    for n in 0..2 {
        register_individual(&api, &id(n)).await;
        api.post("/api/v2/spp/Group", household(&id(10 + n), &id(n)))
            .await
            .expect(201);
    }
    let path = |n: usize| format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &id(n)));
    let mut versions = Vec::new();
    for n in 10..12 {
        versions.push(api.get(&path(n)).await.header("etag").unwrap().to_owned());
    }
    let merge = json!({
        "request": {"method": "POST", "url": "Group/$merge", "ifMatch": "\"99\""},
        "resource": {"sourceGroup": {"reference": format!("Group/{GROUP_SYSTEM}|{}", id(11))},
                     "targetGroup": {"reference": format!("Group/{GROUP_SYSTEM}|{}", id(10))}}});
    let file = temp("merge.ndjson");
    write_lines(
        &file,
        &[
            individual_body(&id(2)).to_string(),
            merge.to_string(),
            individual_body(&id(3)).to_string(),
        ],
    );
    let report = temp("merge-refused.ndjson");
    let done = summary(&cli(
        &world().database_url,
        &[
            "import",
            file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        (done["loaded"].as_i64(), done["refused"].as_i64()),
        (Some(2), Some(1)),
        "{done}"
    );
    let refused: Value =
        serde_json::from_str(std::fs::read_to_string(&report).unwrap().trim()).unwrap();
    assert_eq!(refused["line"], 2, "{refused}");
    for (n, version) in (10..12).zip(&versions) {
        let group = api.get(&path(n)).await;
        group.expect(200);
        assert_eq!(
            group.header("etag"),
            Some(version.as_str()),
            "{}",
            group.text
        );
        assert_eq!(group.body["active"], true, "{}", group.text);
    }
    let merge_events = count(&format!(
        "SELECT count(*) FROM events e JOIN group_view g ON g.aggregate_id = e.aggregate_id \
         WHERE g.state::text LIKE '%{prefix}%' AND e.metadata->>'collection_method' = 'merge'"
    ));
    assert_eq!(merge_events, 0);
}

/// A row the database could not serve just now (its connection dropped) is not refused: the
/// batch is tried again and the row loads.
async fn transient_failure() {
    let database = TestDatabase::create("openspp_e2e_import");
    let url = &database.url;
    let prefix = unique("IMT");
    let person = format!("{prefix}-1");
    let people = temp("people.ndjson");
    write_lines(&people, &[individual_body(&person).to_string()]);
    assert_eq!(
        summary(&cli(url, &["import", people.to_str().unwrap()]))["loaded"],
        1
    );
    let groups = temp("groups.ndjson");
    write_lines(
        &groups,
        &[household(&format!("{prefix}-G"), &person).to_string()],
    );
    // The group's member is looked up in tables held locked; the lookup's connection is
    // then dropped, as a database restart would.
    let held = HeldTransaction::begin(
        url,
        "LOCK TABLE individual_view, identifier_claims IN ACCESS EXCLUSIVE MODE;",
    )
    .await;
    let child = Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(["import", groups.to_str().unwrap()])
        .env("DATABASE_URL", url)
        .env("OPENSPP_KEY_ENCRYPTION_KEY", TEST_KEK)
        .env("OPENSPP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("import starts");
    held.wait_until_blocking().await;
    let terminated = sql_scalar(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND cardinality(pg_blocking_pids(pid)) > 0",
    );
    assert_ne!(terminated, "0");
    drop(held);
    let output = child.wait_with_output().expect("import ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let done = summary(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(
        (done["loaded"].as_i64(), done["refused"].as_i64()),
        (Some(1), Some(0)),
        "{done} {stderr}"
    );
}

/// A dry run judges every row exactly as the import then does, across batches: rows that
/// depend on rows of earlier batches (a household of individuals, a membership in a program,
/// each imported a batch before) pass, and the bad rows (an identifier taken, which only the
/// commit finds; a birth date in the future; a household of that refused individual) are
/// reported with the same lines and reasons. It leaves nothing: no event, claim, read-model
/// row or resume range.
async fn dry_run_across_batches() {
    let prefix = unique("IMD");
    let id = |n: usize| format!("{prefix}-{n}");
    let program = format!("Dry {prefix}");
    let program_reference = format!(
        "Program/urn:openspp:program|{}",
        program.to_lowercase().replace(' ', "-")
    );
    let member = |n: usize, role: &str| {
        json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{}", id(n))},
               "role": {"coding": [{"system": "urn:openspp:vocab:group-membership-type",
                                    "code": role}]}})
    };
    let mut unborn = individual_body(&id(3));
    unborn["birthDate"] = json!("2999-01-01");
    let lines = vec![
        json!({"type": "Program", "name": program, "targetType": "individual",
               "currency": "PHP", "description": "A program of a dry-run test"})
        .to_string(),
        individual_body(&id(1)).to_string(),
        individual_body(&id(2)).to_string(),
        json!({"type": "Group", "identifier": [{"system": GROUP_SYSTEM, "value": id(10)}],
               "groupType": "household", "name": "Dry Household",
               "member": [member(1, "head"), member(2, "member")]})
        .to_string(),
        json!({"type": "ProgramMembership",
               "identifier": [{"system": "urn:openspp:program-membership", "value": id(20)}],
               "program": {"reference": program_reference},
               "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{}", id(1))},
               "status": "draft"})
        .to_string(),
        individual_body(&id(1)).to_string(),
        unborn.to_string(),
        json!({"type": "Group", "identifier": [{"system": GROUP_SYSTEM, "value": id(11)}],
               "groupType": "household", "name": "Unborn Household",
               "member": [member(3, "head")]})
        .to_string(),
    ];
    let file = temp("dry.ndjson");
    write_lines(&file, &lines);
    let url = &world().database_url;
    let run = |dry: bool| {
        let report = temp(if dry {
            "dry-refused.ndjson"
        } else {
            "refused.ndjson"
        });
        let mut args = vec![
            "import",
            file.to_str().unwrap(),
            "--batch-size",
            "1",
            "--report",
            report.to_str().unwrap(),
        ];
        if dry {
            args.push("--dry-run");
        }
        let done = summary(&cli(url, &args));
        let refused: Vec<Value> = std::fs::read_to_string(&report)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (done, refused)
    };
    let traces = |hash: &str| {
        [
            format!("SELECT count(*) FROM events WHERE payload::text ILIKE '%{prefix}%'"),
            format!("SELECT count(*) FROM identifier_claims WHERE value ILIKE '%{prefix}%'"),
            format!("SELECT count(*) FROM individual_view WHERE state::text LIKE '%{prefix}%'"),
            format!("SELECT count(*) FROM group_view WHERE state::text LIKE '%{prefix}%'"),
            format!("SELECT count(*) FROM import_batches WHERE file_hash = '{hash}'"),
        ]
        .map(|sql| count(&sql))
    };
    let (dry, dry_refused) = run(true);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(
        (dry["loaded"].as_i64(), dry["refused"].as_i64()),
        (Some(5), Some(3)),
        "{dry} {dry_refused:?}"
    );
    let refused_lines: Vec<i64> = dry_refused
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(refused_lines, [6, 7, 8], "{dry_refused:?}");
    assert!(
        dry_refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("already in use"),
        "{dry_refused:?}"
    );
    let hash = dry["sha256"].as_str().unwrap().to_owned();
    assert_eq!(traces(&hash), [0; 5], "a dry run leaves nothing");

    let (real, real_refused) = run(false);
    assert_eq!(
        (real["loaded"].as_i64(), real["refused"].as_i64()),
        (Some(5), Some(3)),
        "{real} {real_refused:?}"
    );
    assert_eq!(
        real_refused, dry_refused,
        "the dry run reported what the import did"
    );
    let [events, claims, people, groups, ranges] = traces(&hash);
    assert!(events > 0 && claims > 0, "{events} {claims}");
    assert_eq!((people, groups, ranges), (2, 1, 8));
}

/// The feed's notification a dry run's commits send is sent inside its transaction, which is
/// rolled back: no follower hears it. The import of the same file is heard (so the listener
/// would have heard the dry run's).
async fn dry_run_notifies_no_one() {
    let database = TestDatabase::create("openspp_e2e_import");
    let url = &database.url;
    let file = people_file("heard.ndjson", &unique("IMN"), 4);
    // A batch a row, with a pause after each: the process lives on after its commits, long
    // enough for their notification to be sent (one that exits at once may never send it).
    let args = |dry: bool| {
        let mut args = vec![file.to_str().unwrap().to_owned()];
        args.extend(["--batch-size", "1", "--pause-ms", "100"].map(str::to_owned));
        if dry {
            args.push("--dry-run".to_owned());
        }
        args
    };
    let run = |dry: bool| {
        let args = args(dry);
        let mut all = vec!["import"];
        all.extend(args.iter().map(String::as_str));
        summary(&cli(url, &all))
    };
    let mut listener = sqlx::postgres::PgListener::connect(url).await.unwrap();
    listener.listen("openspp_events").await.unwrap();
    let dry = run(true);
    assert_eq!(dry["loaded"], 4, "{dry}");
    assert!(!heard(&mut listener).await, "a dry run was heard");
    assert_eq!(
        count_in(url, "SELECT count(*) FROM events"),
        0,
        "a dry run committed nothing"
    );
    let real = run(false);
    assert_eq!(real["loaded"], 4, "{real}");
    assert!(heard(&mut listener).await, "the import was not heard");
}

/// Whether `listener` hears a notification within two seconds.
async fn heard(listener: &mut sqlx::postgres::PgListener) -> bool {
    tokio::time::timeout(Duration::from_secs(2), listener.recv())
        .await
        .is_ok()
}

fn count_in(url: &str, sql: &str) -> i64 {
    sql_scalar(url, sql).parse().unwrap()
}
