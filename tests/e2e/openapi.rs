//! Public documents: the OpenAPI description, the capability statement, health.

use libtest_mimic::Trial;

use crate::support::{world, Api};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("openapi::document_covers_every_endpoint", document),
        trial("openapi::metadata_is_public", metadata),
        trial("openapi::health_and_readiness", health),
        trial(
            "openapi::sigterm_stops_the_server_cleanly",
            graceful_shutdown,
        ),
    ]
}

async fn document() {
    let api = Api::new(&world().base);
    let reply = api.get("/api/v2/spp/openapi.json").await;
    reply.expect(200);
    let doc = &reply.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let base = "/api/v2/spp";
    let mut expected: Vec<(String, &str)> = Vec::new();
    for resource in ["Individual", "Group", "Program", "ProgramMembership"] {
        expected.push((format!("{base}/{resource}"), "get"));
        expected.push((format!("{base}/{resource}"), "post"));
        expected.push((format!("{base}/{resource}/{{id}}"), "get"));
        expected.push((format!("{base}/{resource}/{{id}}"), "put"));
    }
    for resource in [
        "Individual",
        "Group",
        "Program",
        "ProgramMembership",
        "Consent",
    ] {
        for tail in ["_history", "_history/$verify", "_history/{versionId}"] {
            expected.push((format!("{base}/{resource}/{{id}}/{tail}"), "get"));
        }
    }
    for (path, method) in [
        ("/Group/{id}/$add-member", "post"),
        ("/Group/{id}/$remove-member", "post"),
        ("/Consent", "get"),
        ("/Consent", "post"),
        ("/Consent/{id}", "get"),
        ("/Consent/{id}", "delete"),
        ("/Consent/{id}/$revoke", "post"),
        ("/Consent/{id}/$renew", "post"),
        ("/Consent/{id}/$receipt", "get"),
        ("/Consent/{id}/$history", "get"),
        ("/Consent/{id}/$access-summary", "get"),
        ("/AuditEvent", "get"),
        ("/Vocabulary", "get"),
        ("/Vocabulary/{namespace_uri}", "get"),
        ("/Vocabulary/{namespace_uri}/codes", "get"),
        ("/Vocabulary/{namespace_uri}/_history", "get"),
        ("/oauth/token", "post"),
        ("/metadata", "get"),
        ("/openapi.json", "get"),
    ] {
        expected.push((format!("{base}{path}"), method));
    }
    for path in ["/.well-known/jwks.json", "/healthz", "/readyz", "/metrics"] {
        expected.push((path.to_owned(), "get"));
    }
    for (path, method) in &expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    // And nothing is documented that the server does not answer.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, expected.len(), "documented operations");
    // The token endpoint takes JSON, a form, or HTTP Basic credentials.
    let token = &doc["paths"][format!("{base}/oauth/token")]["post"];
    for media in ["application/json", "application/x-www-form-urlencoded"] {
        assert!(
            token["requestBody"]["content"][media].is_object(),
            "{media}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["client_basic"].is_object());
    for schema in ["IndividualResource", "GroupResource", "OperationOutcome"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} schema missing"
        );
    }
}

async fn metadata() {
    let api = Api::new(&world().base);
    let reply = api.get("/api/v2/spp/metadata").await;
    reply.expect(200);
    assert_eq!(reply.body["resourceType"], "CapabilityStatement");
    let resources: Vec<&str> = reply.body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(resources.contains(&"Individual") && resources.contains(&"Group"));
}

async fn health() {
    let api = Api::new(&world().base);
    api.get("/healthz").await.expect(200);
    api.get("/readyz").await.expect(200);
}

/// SIGTERM stops the server cleanly (exit status 0) after it has served.
pub async fn graceful_shutdown() {
    let server = crate::support::Server::start(&world().database_url, &[]);
    Api::new(&server.base).get("/healthz").await.expect(200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}
