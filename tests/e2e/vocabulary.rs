//! Vocabularies over HTTP as OpenSPP serves them, and changed by the operator's CLI while the
//! server runs: imports (JSON and CSV, idempotent, all-or-nothing with the bad row's line),
//! new identifier systems accepted by the very next request, and the recorded history.

use std::process::Command;

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{admin, create_client, unique, world, Api};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("vocabulary::list_read_and_codes_as_openspp", openspp_shapes),
        trial("vocabulary::scope_and_token_are_required", scopes),
        trial("vocabulary::bad_parameters_are_400", bad_parameters),
        trial(
            "vocabulary::import_hierarchy_deprecation_idempotency_history",
            import_and_history,
        ),
        trial(
            "vocabulary::a_bad_row_is_reported_by_line_and_nothing_is_applied",
            bad_row,
        ),
        trial(
            "vocabulary::add_id_type_reaches_the_running_server_at_once",
            add_id_type,
        ),
    ]
}

/// `openspp ARGS` against the test database: its JSON output, or its error output.
pub fn operator(args: &[&str]) -> Result<Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(args)
        .env("DATABASE_URL", &world().database_url)
        .env("OPENSPP_LOG", "warn")
        .output()
        .expect("cli runs");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    let last = stdout.lines().last().unwrap_or("null");
    Ok(serde_json::from_str(last).expect("a JSON line"))
}

/// A file in the temporary directory holding `content`.
pub fn temp_file(name: &str, content: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, content).expect("temp file written");
    path.to_string_lossy().into_owned()
}

/// `openspp vocabulary add-id-type` with `extra` arguments.
fn run_add_id_type(
    code: &str,
    system: &str,
    display: &str,
    target: &str,
    extra: &[&str],
) -> Result<Value, String> {
    let mut args = vec![
        "vocabulary",
        "add-id-type",
        "--code",
        code,
        "--system",
        system,
        "--display",
        display,
        "--target",
        target,
    ];
    args.extend_from_slice(extra);
    operator(&args)
}

/// A client that may read vocabularies and their history.
async fn reader() -> Api {
    let credentials = create_client(
        &world().database_url,
        &["--scope", "vocabulary:read", "--scope", "audit:read"],
    );
    Api::new(&world().base).login(&credentials).await
}

fn encoded(namespace: &str) -> String {
    namespace.replace(':', "%3A").replace('/', "%2F")
}

async fn openspp_shapes() {
    let api = reader().await;
    let list = api.get("/api/v2/spp/Vocabulary?_count=100").await;
    list.expect(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(list.body["total"].as_u64().unwrap() as usize, items.len());
    let names: Vec<&str> = items.iter().map(|v| v["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "listed by name");
    for seeded in [
        "urn:iso:std:iso:5218",
        "urn:iso:std:iso:3166-1",
        "urn:iso:std:iso:4217",
        "urn:iso:std:iso:639",
        "urn:openspp:vocab:id-type",
    ] {
        assert!(
            items.iter().any(|v| v["namespace_uri"] == seeded),
            "{seeded} is served"
        );
    }
    let paged = api.get("/api/v2/spp/Vocabulary?_count=2").await;
    assert_eq!(paged.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(paged.body["total"], list.body["total"]);
    let education = api.get("/api/v2/spp/Vocabulary?domain=education").await;
    assert!(education.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["domain"] == "education"));
    assert!(education.body["total"].as_u64().unwrap() >= 1);

    let gender = api.get("/api/v2/spp/Vocabulary/urn:iso:std:iso:5218").await;
    gender.expect(200);
    assert_eq!(
        gender.body,
        json!({"namespace_uri": "urn:iso:std:iso:5218", "name": "Gender (ISO 5218)",
               "version": "2022", "description": gender.body["description"],
               "reference_url": gender.body["reference_url"], "domain": "core",
               "is_hierarchical": false, "code_count": 4})
    );
    let encoded_read = api
        .get(&format!(
            "/api/v2/spp/Vocabulary/{}",
            encoded("urn:iso:std:iso:5218")
        ))
        .await;
    assert_eq!(
        encoded_read.body, gender.body,
        "a URL-encoded URI reads the same"
    );
    let codes = api
        .get("/api/v2/spp/Vocabulary/urn:iso:std:iso:5218/codes")
        .await;
    codes.expect(200);
    assert_eq!(codes.body["vocabulary_name"], "Gender (ISO 5218)");
    assert_eq!(codes.body["total"], 4);
    let listed: Vec<&str> = codes.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["0", "1", "2", "9"]);
    assert_eq!(
        codes.body["items"][2],
        json!({"code": "2", "display": "Female", "definition": null, "deprecated": false,
               "parent_code": null, "level": 0, "target_type": "both",
               "uri": "urn:iso:std:iso:5218#2"})
    );
    let countries = api
        .get("/api/v2/spp/Vocabulary/urn:iso:std:iso:3166-1/codes?_count=500")
        .await;
    assert!(countries.body["total"].as_u64().unwrap() >= 249);
    assert!(countries.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["code"] == "KE" && c["display"] == "Kenya"));

    let unknown = api.get("/api/v2/spp/Vocabulary/urn:nowhere:at:all").await;
    unknown.expect(404);
    assert_eq!(
        unknown.body["detail"],
        "Vocabulary not found: urn:nowhere:at:all"
    );
    api.get("/api/v2/spp/Vocabulary/urn:nowhere:at:all/codes")
        .await
        .expect(404);
}

async fn scopes() {
    let anonymous = Api::new(&world().base);
    let admin = admin().await;
    for path in [
        "/api/v2/spp/Vocabulary",
        "/api/v2/spp/Vocabulary/urn:iso:std:iso:5218",
        "/api/v2/spp/Vocabulary/urn:iso:std:iso:5218/codes",
    ] {
        anonymous.get(path).await.expect(401);
        // Every core scope, but not vocabulary:read.
        admin.get(path).await.expect(403);
    }
    let reader_only = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "vocabulary:read"],
        ))
        .await;
    reader_only
        .get("/api/v2/spp/Vocabulary/urn:iso:std:iso:5218/_history")
        .await
        .expect(403);
}

async fn bad_parameters() {
    let api = reader().await;
    for path in [
        "/api/v2/spp/Vocabulary?domain=core;drop",
        "/api/v2/spp/Vocabulary?_count=101",
        "/api/v2/spp/Vocabulary?colour=red",
        "/api/v2/spp/Vocabulary/urn:iso:std:iso:5218/codes?_count=501",
        "/api/v2/spp/Vocabulary/urn:iso:std:iso:5218/codes?include_deprecated=maybe",
        "/api/v2/spp/Vocabulary/urn:x%2F..%2Fetc",
        "/api/v2/spp/Vocabulary/urn:x%0Ay",
    ] {
        let reply = api.get(path).await;
        assert_eq!(reply.status.as_u16(), 400, "{path}: {}", reply.text);
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
    let long_parent = format!(
        "/api/v2/spp/Vocabulary/urn:iso:std:iso:5218/codes?parent_code={}",
        "x".repeat(65)
    );
    api.get(&long_parent).await.expect(400);
}

fn crops_file(namespace: &str) -> Value {
    json!({
        "namespace_uri": namespace,
        "name": "Crops",
        "version": "1",
        "description": "Crops grown",
        "domain": "agriculture",
        "codes": [
            {"code": "cereal", "display": "Cereal"},
            {"code": "rice", "display": "Rice", "parent_code": "cereal"},
            {"code": "maize", "display": "Maize", "parent_code": "cereal", "deprecated": true},
            {"code": "bean", "display": "Bean", "definition": "A legume"}
        ]
    })
}

async fn import_and_history() {
    let api = reader().await;
    let namespace = format!("urn:test:vocab:crops-{}", uuid::Uuid::new_v4().simple());
    let file = temp_file(
        "crops.json",
        &serde_json::to_string_pretty(&crops_file(&namespace)).unwrap(),
    );
    let first = operator(&["vocabulary", "import", &file, "--actor", "registry-officer"])
        .expect("imported");
    assert_eq!(first["changed"], true);
    assert_eq!(first["rows"], 4);
    assert_eq!(first["servers"]["running"], first["servers"]["confirmed"]);

    let base = format!("/api/v2/spp/Vocabulary/{}", encoded(&namespace));
    let read = api.get(&base).await;
    read.expect(200);
    assert_eq!(read.body["is_hierarchical"], true);
    assert_eq!(read.body["domain"], "agriculture");
    assert_eq!(read.body["code_count"], 4);
    let codes = api.get(&format!("{base}/codes")).await;
    let shown: Vec<&str> = codes.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown,
        ["cereal", "rice", "bean"],
        "deprecated hidden, file order kept"
    );
    let all = api
        .get(&format!("{base}/codes?include_deprecated=true"))
        .await;
    assert_eq!(all.body["total"], 4);
    assert!(all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["code"] == "maize" && c["deprecated"] == true));
    let children = api.get(&format!("{base}/codes?parent_code=cereal")).await;
    assert_eq!(children.body["total"], 1);
    assert_eq!(children.body["items"][0]["code"], "rice");
    assert_eq!(children.body["items"][0]["level"], 1);
    assert_eq!(children.body["items"][0]["parent_code"], "cereal");
    let orphans = api.get(&format!("{base}/codes?parent_code=nothing")).await;
    orphans.expect(200);
    assert_eq!(orphans.body["total"], 0);
    assert_eq!(orphans.body["vocabulary_name"], "Crops");

    // The same file again: nothing changes and nothing is recorded.
    let history = api.get(&format!("{base}/_history")).await;
    history.expect(200);
    let versions = history.body["total"].clone();
    let again = operator(&["vocabulary", "import", &file]).expect("imported again");
    assert_eq!(again["changed"], false);
    assert_eq!(again["version"], first["version"]);
    let history = api.get(&format!("{base}/_history")).await;
    assert_eq!(history.body["total"], versions);

    // A change is recorded with who made it; the newest comes first.
    let csv = temp_file("crops.csv", "code,display\nbean,Common bean\n");
    let changed = operator(&[
        "vocabulary",
        "import",
        &csv,
        "--namespace",
        &namespace,
        "--actor",
        "analyst",
    ])
    .expect("csv imported");
    assert_eq!(changed["changed"], true);
    let history = api.get(&format!("{base}/_history")).await;
    let newest = &history.body["entry"][0];
    assert_eq!(newest["event"]["type"], "CodeChanged");
    assert_eq!(
        newest["provenance"]["actor"],
        "urn:openspp:operator:analyst"
    );
    assert_eq!(newest["changes"][0]["field"], "codes.bean");
    assert_eq!(newest["changes"][0]["old"]["display"], "Bean");
    assert_eq!(newest["changes"][0]["new"]["display"], "Common bean");
    assert_eq!(
        newest["changes"][0]["new"]["definition"], "A legume",
        "left out: kept"
    );
    let oldest = history.body["entry"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(oldest["event"]["type"], "VocabularyDescribed");
    assert_eq!(
        oldest["provenance"]["actor"],
        "urn:openspp:operator:registry-officer"
    );
    assert_eq!(oldest["provenance"]["collection_method"], "import");
    // A shipped vocabulary nobody changed has an empty history.
    let shipped = api
        .get("/api/v2/spp/Vocabulary/urn:wg:disability:severity/_history")
        .await;
    shipped.expect(200);
    assert_eq!(shipped.body["total"], 0);
}

async fn bad_row() {
    let api = reader().await;
    let namespace = format!("urn:test:vocab:bad-{}", uuid::Uuid::new_v4().simple());
    let base = format!("/api/v2/spp/Vocabulary/{}", encoded(&namespace));
    let csv = temp_file(
        "bad.csv",
        "code,display,parent_code\ngood,Good,\norphan,Orphan,nowhere\n",
    );
    let error = operator(&[
        "vocabulary",
        "import",
        &csv,
        "--namespace",
        &namespace,
        "--name",
        "Bad",
    ])
    .expect_err("refused");
    assert!(error.contains("line 3"), "{error}");
    assert!(error.contains("parent_code"), "{error}");
    api.get(&base).await.expect(404);

    // An existing vocabulary: a file with one good change and one malformed row changes nothing.
    let good = temp_file("good.csv", "code,display\ngood,Good\n");
    operator(&[
        "vocabulary",
        "import",
        &good,
        "--namespace",
        &namespace,
        "--name",
        "Bad",
    ])
    .expect("imported");
    let mixed = temp_file(
        "mixed.json",
        &format!(
            "{{\"namespace_uri\": \"{namespace}\",\n \"codes\": [\n  {{\"code\": \"good\", \"display\": \"Better\"}},\n  {{\"code\": \"x\", \"display\": \"X\", \"target_type\": \"everyone\"}}\n ]\n}}"
        ),
    );
    let error = operator(&["vocabulary", "import", &mixed]).expect_err("refused");
    assert!(error.contains("line 4"), "{error}");
    let codes = api.get(&format!("{base}/codes")).await;
    assert_eq!(codes.body["total"], 1);
    assert_eq!(codes.body["items"][0]["display"], "Good");
}

async fn add_id_type() {
    let api = admin().await;
    let system = format!(
        "urn:gov:xx:id:national-id-{}",
        uuid::Uuid::new_v4().simple()
    );
    let person = |value: &str| {
        json!({
            "type": "Individual",
            "identifier": [{"system": system, "value": value}],
            "name": {"family": "Otieno", "given": "Akinyi"},
            "birthDate": "1990-01-01"
        })
    };
    let before = api
        .post("/api/v2/spp/Individual", person(&unique("XX")))
        .await;
    before.expect(422);
    assert_eq!(
        before.body["issue"][0]["expression"][0],
        "identifier[0].system"
    );

    let code = format!("xx_{}", uuid::Uuid::new_v4().simple());
    let added = run_add_id_type(
        &code,
        &system,
        "Country XX national ID",
        "individual",
        &["--actor", "registrar"],
    )
    .expect("added");
    assert_eq!(added["changed"], true);
    assert!(added["servers"]["running"].as_u64().unwrap() >= 1);
    assert_eq!(added["servers"]["confirmed"], added["servers"]["running"]);
    // The very next request, with no wait: the running server has it.
    api.post("/api/v2/spp/Individual", person(&unique("XX")))
        .await
        .expect(201);
    // For individuals only.
    let group = api
        .post(
            "/api/v2/spp/Group",
            json!({"type": "Group", "identifier": [{"system": system, "value": unique("G")}],
                   "groupType": "household", "name": "Otieno household"}),
        )
        .await;
    group.expect(422);
    // The same again changes nothing; another system under that code is a conflict.
    let again = run_add_id_type(&code, &system, "Country XX national ID", "individual", &[])
        .expect("idempotent");
    assert_eq!(again["changed"], false);
    let conflict = run_add_id_type(&code, "urn:gov:xx:id:other", "Other", "individual", &[])
        .expect_err("a different system under that code");
    assert!(conflict.contains("already exists"), "{conflict}");
    let bad = run_add_id_type("yy", "not a urn", "Y", "both", &[]).expect_err("not a URN");
    assert!(bad.contains("--system"), "{bad}");
    // Integrators find it among the identifier types.
    let reader = reader().await;
    let types = reader
        .get("/api/v2/spp/Vocabulary/urn:openspp:vocab:id-type/codes?_count=500")
        .await;
    assert!(types.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["code"] == code.as_str()
            && c["uri"] == system.as_str()
            && c["target_type"] == "individual"));
}
