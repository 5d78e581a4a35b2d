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
    for (path, methods) in [
        ("/api/v2/spp/Individual", &["get", "post"][..]),
        ("/api/v2/spp/Individual/{id}", &["get", "put"][..]),
        ("/api/v2/spp/Group", &["get", "post"][..]),
        ("/api/v2/spp/Group/{id}", &["get", "put"][..]),
        ("/api/v2/spp/Group/{id}/$add-member", &["post"][..]),
        ("/api/v2/spp/Group/{id}/$remove-member", &["post"][..]),
        ("/api/v2/spp/oauth/token", &["post"][..]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
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
