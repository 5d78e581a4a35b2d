//! The served OpenAPI document describes the API (issue 8, item 16): schemathesis, pinned,
//! generates requests from the document — valid ones, and ones that break it on purpose — and
//! checks every answer against it. Any 5xx, any status, header, content type or body the
//! document does not describe, any request outside the document that the server accepts, or
//! an operation that ignores its token fails this test.
//!
//! The run is bounded (a fixed seed, a few examples per operation: some thousands of cases,
//! well under two minutes) so that it belongs in `cargo test`; longer runs are for hostile
//! passes. One check is left out: `positive_data_acceptance` expects every schema-valid body
//! to be accepted, but the domain's rules (a code from a vocabulary, an identifier system in
//! force, a transition of the membership state machine) are not JSON Schema, so a schema-valid
//! body may rightly be 422.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::support::{create_client, Api, Server, TestDatabase, ALL_SCOPES};
use crate::trial;

/// The schemathesis release this test is written against.
pub const SCHEMATHESIS: &str = "4.32.5";

/// Past this the run is stopped and the test fails. It is a guard against a hang, not a speed
/// bound: alone the run takes under a minute, but on a machine shared with parallel builds it
/// has taken over two and a half.
const LIMIT: Duration = Duration::from_secs(600);

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "schemathesis::the_server_answers_as_its_openapi_document_says",
        conformance,
    )]
}

/// The pinned schemathesis: installed from PyPI with the machine's `pip` when it is missing or
/// another release, so the README's one test command runs it on a fresh machine too; a failure
/// to install fails the test with what to do (never a skip).
fn installed() -> String {
    let version = || {
        Command::new("schemathesis")
            .arg("--version")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .filter(|version| version.contains(SCHEMATHESIS))
    };
    if let Some(found) = version() {
        return found;
    }
    let pinned = format!("schemathesis=={SCHEMATHESIS}");
    let install = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &pinned,
        ])
        .status();
    assert!(
        matches!(install, Ok(status) if status.success()),
        "schemathesis {SCHEMATHESIS} is not installed and `python3 -m pip install '{pinned}'` \
         failed; install it by hand (Python 3.10 or later)"
    );
    version().unwrap_or_else(|| {
        panic!("schemathesis {SCHEMATHESIS} was installed but does not run; is pip's bin on PATH?")
    })
}

async fn conformance() {
    installed();
    // A server of its own: generated data must not land among other tests' data.
    let database = TestDatabase::create("openspp_e2e_schemathesis");
    let server = Server::start(&database.url, &[]);
    let mut args = Vec::new();
    for scope in ALL_SCOPES
        .iter()
        .chain(&["vocabulary:read", "metrics:read"])
    {
        args.extend(["--scope", scope]);
    }
    let credentials = create_client(&database.url, &args);
    let token = Api::new(&server.base).token(&credentials).await;
    let scratch = tempdir();
    let mut child = Command::new("schemathesis")
        .arg("run")
        .arg(format!("{}/api/v2/spp/openapi.json", server.base))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            "5",
            "--seed",
            "20261129",
            "--workers",
            "2",
        ])
        .args(["--request-timeout", "20", "--no-color"])
        // Nothing kept between runs (the seed alone decides the cases), and nothing written
        // into the work tree.
        .args(["--generation-database", "none"])
        .current_dir(&scratch)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("schemathesis starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("schemathesis runs") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = child.wait_with_output().expect("schemathesis output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&scratch);
    drop(server);
    drop(database);
    let status = status.unwrap_or_else(|| panic!("schemathesis ran past {LIMIT:?}:\n{text}"));
    assert!(
        status.success(),
        "schemathesis found the server and its OpenAPI document in disagreement:\n{text}"
    );
    assert!(text.contains("passed"), "no test case ran:\n{text}");
}

/// A fresh directory for schemathesis to run in, outside the work tree.
fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("openspp-st-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.to_string_lossy().into_owned()
}
