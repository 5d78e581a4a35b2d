//! Hostile and malformed requests: every one answers a clear 4xx OperationOutcome, never a 500.

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::json;

use crate::support::{admin, individual_body, unique};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("errors::malformed_json_is_400", malformed_json),
        trial("errors::unknown_field_is_422_naming_it", unknown_field),
        trial("errors::missing_field_is_422_naming_it", missing_field),
        trial("errors::wrong_content_type_is_415", wrong_content_type),
        trial("errors::oversized_body_is_413", oversized_body),
        trial("errors::bad_identifier_syntax_is_400", bad_identifier),
        trial("errors::bad_search_parameter_is_400", bad_search_parameter),
        trial("errors::request_id_is_echoed_or_generated", request_id),
        trial("errors::unknown_route_is_404_outcome", unknown_route),
    ]
}

async fn raw(
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> crate::support::Reply {
    let api = admin().await;
    let response = api
        .http
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(api.token.as_ref().unwrap())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    crate::support::Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or_default(),
        text,
    }
}

async fn malformed_json() {
    let reply = raw(
        Method::POST,
        "/api/v2/spp/Individual",
        "application/json",
        b"{\"identifier\": [".to_vec(),
    )
    .await;
    reply.expect(400);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert!(reply.body["detail"].is_string());
}

async fn unknown_field() {
    let api = admin().await;
    let mut body = individual_body(&unique("UF"));
    body["nickname"] = json!("Mia");
    let reply = api.post("/api/v2/spp/Individual", body).await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "nickname");
    // Nothing was written: the identifier is still free.
    let reply = api
        .post("/api/v2/spp/Individual", individual_body(&unique("UF")))
        .await;
    reply.expect(201);
}

async fn missing_field() {
    let api = admin().await;
    let reply = api
        .post("/api/v2/spp/Individual", json!({"name": {"family": "X"}}))
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "identifier");
}

async fn wrong_content_type() {
    let body = serde_json::to_vec(&individual_body(&unique("CT"))).unwrap();
    let reply = raw(Method::POST, "/api/v2/spp/Individual", "text/plain", body).await;
    reply.expect(415);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
}

async fn oversized_body() {
    let mut body = individual_body(&unique("BIG"));
    body["name"]["text"] = json!("x".repeat(2 * 1024 * 1024));
    let reply = raw(
        Method::POST,
        "/api/v2/spp/Individual",
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    reply.expect(413);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
}

async fn bad_identifier() {
    let api = admin().await;
    let reply = api.get("/api/v2/spp/Individual/no-bar-here").await;
    reply.expect(400);
    assert_eq!(reply.body["issue"][0]["expression"][0], "id");
}

async fn bad_search_parameter() {
    let api = admin().await;
    for query in [
        "_count=0",
        "_count=101",
        "birthdate=yesterday",
        "nmae=x",
        "_sort=password",
    ] {
        let reply = api.get(&format!("/api/v2/spp/Individual?{query}")).await;
        assert_eq!(reply.status.as_u16(), 400, "{query}: {}", reply.text);
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
}

async fn request_id() {
    let api = admin().await;
    let reply = api
        .send(
            Method::GET,
            "/api/v2/spp/Individual",
            None,
            &[("X-Request-Id", "trace-123")],
        )
        .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-123"));
    let reply = api.get("/api/v2/spp/Individual").await;
    assert!(reply.header("x-request-id").is_some_and(|v| !v.is_empty()));
}

async fn unknown_route() {
    let api = admin().await;
    let reply = api.get("/api/v2/spp/Nothing").await;
    reply.expect(404);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
}
