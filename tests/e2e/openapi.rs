//! Public documents: the OpenAPI description, the capability statement, health.

use libtest_mimic::Trial;

use openspp_aggregates::bounds::{LONG_TEXT, SEARCH_NAME_BYTES, SHORT_TEXT};
use serde_json::Value;

use crate::support::{world, Api};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("openapi::document_covers_every_endpoint", document),
        trial(
            "openapi::every_operation_documents_its_answers_and_limits",
            answers_and_limits,
        ),
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
    for resource in [
        "Individual",
        "Group",
        "Program",
        "ProgramMembership",
        "Cycle",
        "Entitlement",
        "ServicePoint",
        "Product",
    ] {
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
        "Cycle",
        "Entitlement",
        "ServicePoint",
        "Product",
    ] {
        for tail in ["_history", "_history/$verify", "_history/{versionId}"] {
            expected.push((format!("{base}/{resource}/{{id}}/{tail}"), "get"));
        }
    }
    for (path, method) in [
        ("/Group/{id}/$add-member", "post"),
        ("/Group/{id}/$remove-member", "post"),
        ("/Individual/{id}", "patch"),
        ("/Group/{id}", "patch"),
        ("/Individual/{id}/groups", "get"),
        ("/Group/{id}/member/{individual}", "patch"),
        ("/Group/{id}/membership-history", "get"),
        ("/Group/$merge", "post"),
        ("/Group/{id}/$split", "post"),
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
        ("/aggregation/compute", "post"),
        ("/aggregation/dimensions", "get"),
        ("/oauth/token", "post"),
        ("/metadata", "get"),
        ("/openapi.json", "get"),
        ("/docs", "get"),
        ("/redoc", "get"),
        ("/docs/redoc.standalone.js", "get"),
        ("/Individual/_filters", "get"),
        ("/Group/_filters", "get"),
        ("/Program/_filters", "get"),
        ("/ProgramMembership/_filters", "get"),
        ("/Individual/_search", "post"),
        ("/Group/_search", "post"),
        ("/Program/_search", "post"),
        ("/ProgramMembership/_search", "post"),
        ("/$batch", "post"),
        ("/$bulk/export", "post"),
        ("/ProductCategory", "get"),
        ("/ProductCategory/{id}", "get"),
        ("/UnitOfMeasure", "get"),
        ("/UnitOfMeasure/{id}", "get"),
    ] {
        expected.push((format!("{base}{path}"), method));
    }
    for path in ["/.well-known/jwks.json", "/healthz", "/readyz", "/metrics"] {
        expected.push((path.to_owned(), "get"));
    }
    for (path, method) in [
        ("/api/v2/graphql", "get"),
        ("/api/v2/graphql", "post"),
        ("/api/v2/graphql/ws", "get"),
    ] {
        expected.push((path.to_owned(), method));
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

/// Every operation lists the answers the server's layers give it, each an OperationOutcome;
/// bodies and search parameters carry the limits the server enforces; 2xx bodies are typed.
async fn answers_and_limits() {
    let reply = Api::new(&world().base)
        .get("/api/v2/spp/openapi.json")
        .await;
    reply.expect(200);
    let doc = &reply.body;
    let base = "/api/v2/spp";
    let outcome = "#/components/schemas/OperationOutcome";
    let operation = |path: &str, method: &str| doc["paths"][path][method].clone();
    for (path, method, statuses) in [
        (
            format!("{base}/Individual/{{id}}"),
            "put",
            &[
                "400", "401", "403", "404", "409", "412", "413", "414", "415", "422", "429", "503",
            ][..],
        ),
        (
            format!("{base}/Individual"),
            "get",
            &["400", "401", "403", "414", "429", "503"][..],
        ),
        (
            format!("{base}/Group/{{id}}/$add-member"),
            "post",
            &[
                "400", "401", "403", "404", "409", "412", "413", "415", "422", "429", "503",
            ][..],
        ),
        (
            format!("{base}/oauth/token"),
            "post",
            &["400", "401", "413", "429", "503"][..],
        ),
    ] {
        let responses = &operation(&path, method)["responses"];
        for status in statuses {
            assert_eq!(
                responses[status]["content"]["application/json"]["schema"]["$ref"], outcome,
                "{method} {path} {status}"
            );
        }
    }
    // OpenAPI requires a description on every response.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(
                    !description.trim().is_empty(),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    let put = operation(&format!("{base}/Individual/{{id}}"), "put");
    assert!(put["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert!(put["responses"]["503"]["headers"]["Retry-After"].is_object());
    // Public documents answered from memory document no database fault.
    assert!(operation("/healthz", "get")["responses"]["503"].is_null());
    // Paging as `Params::page` bounds it.
    let parameter = |path: &str, name: &str| -> Value {
        operation(path, "get")["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    let search = format!("{base}/Individual");
    assert_eq!(parameter(&search, "_count")["minimum"], 1);
    assert_eq!(parameter(&search, "_count")["maximum"], 100);
    assert_eq!(parameter(&search, "_offset")["minimum"], 0);
    let codes = format!("{base}/Vocabulary/{{namespace_uri}}/codes");
    assert_eq!(parameter(&codes, "_count")["maximum"], 500);
    // Text limits are the domain's.
    let schemas = &doc["components"]["schemas"];
    for (schema, property, limit) in [
        ("HumanName", "family", SHORT_TEXT),
        ("GroupResource", "name", SHORT_TEXT),
        ("ProgramResource", "description", LONG_TEXT),
        ("ContactPoint", "value", LONG_TEXT),
        ("Identifier", "value", 100),
    ] {
        assert_eq!(
            schemas[schema]["properties"][property]["maxLength"], limit,
            "{schema}.{property}"
        );
    }
    assert_eq!(
        schemas["Address"]["properties"]["line"]["items"]["maxLength"],
        LONG_TEXT
    );
    // And the bound on a name's parts together, which no `maxLength` says.
    let name = schemas["HumanName"]["description"].as_str().unwrap_or("");
    assert!(
        name.contains(&SEARCH_NAME_BYTES.to_string()),
        "HumanName: {name:?}"
    );
    // Every 2xx answer of the API names its body's schema (JSON, or for the documentation
    // pages HTML and JavaScript).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') && path != "/metrics" {
                    let media = if path.starts_with(&format!("{base}/docs"))
                        || path == &format!("{base}/redoc")
                    {
                        if path.ends_with(".js") {
                            "text/javascript"
                        } else {
                            "text/html"
                        }
                    } else {
                        "application/json"
                    };
                    assert!(
                        response["content"][media]["schema"].is_object(),
                        "{method} {path} {status} has no typed body"
                    );
                }
            }
        }
    }
}

async fn metadata() {
    let api = Api::new(&world().base);
    let reply = api
        .send(
            reqwest::Method::GET,
            "/api/v2/spp/metadata",
            None,
            &[("accept", "application/fhir+json")],
        )
        .await;
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
