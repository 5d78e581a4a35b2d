//! Hostile and malformed requests: every one answers a clear 4xx OperationOutcome, never a 500.

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{admin, individual_body, path_id, unique, Api, NATIONAL_ID};
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
        trial(
            "errors::nul_characters_are_refused_at_their_field",
            nul_characters,
        ),
        trial(
            "errors::framework_rejections_are_outcomes",
            framework_rejections,
        ),
        trial(
            "errors::values_no_read_model_can_hold_are_refused",
            unstorable_values,
        ),
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
    crate::support::Reply::of(response).await
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
    // An id too long (or with spaces) to record is replaced, not echoed.
    for unusable in ["x".repeat(6000), "two words".to_owned()] {
        let reply = api
            .send(
                Method::GET,
                "/api/v2/spp/Individual",
                None,
                &[("X-Request-Id", &unusable)],
            )
            .await;
        reply.expect(200);
        let echoed = reply.header("x-request-id").unwrap();
        assert!(!echoed.is_empty() && echoed != unusable && echoed.len() <= 128);
    }
}

async fn unknown_route() {
    let api = admin().await;
    let reply = api.get("/api/v2/spp/Nothing").await;
    reply.expect(404);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
}

/// A body, a query, a path and a token request each carrying NUL: PostgreSQL text cannot hold
/// it, so each is refused at its field instead of failing in the database.
async fn nul_characters() {
    let api = admin().await;
    let mut body = individual_body(&unique("NUL"));
    body["name"]["family"] = json!("a\u{0}b");
    let reply = api.post("/api/v2/spp/Individual", body).await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "name.family");

    let reply = api.get("/api/v2/spp/Individual?name=a%00b").await;
    reply.expect(400);
    assert_eq!(reply.body["issue"][0]["expression"][0], "name");
    let reply = api.get("/api/v2/spp/Group?groupType=a%00b").await;
    reply.expect(400);

    for path in [
        "/api/v2/spp/Individual/urn:x|a%00b",
        "/api/v2/spp/Group/urn:x|a%00b",
    ] {
        let reply = api.get(path).await;
        assert_eq!(reply.status.as_u16(), 400, "{path}: {}", reply.text);
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }

    let anonymous = Api::new(&api.base);
    let reply = anonymous
        .post(
            "/api/v2/spp/oauth/token",
            json!({"grant_type": "client_credentials", "client_id": "a\u{0}b", "client_secret": "x"}),
        )
        .await;
    reply.expect(401);
    assert_eq!(reply.body["error"], "invalid_client");
}

/// Answers the framework gives before any handler runs still speak OperationOutcome.
async fn framework_rejections() {
    let api = admin().await;
    for (method, path) in [
        (Method::DELETE, "/api/v2/spp/Individual".to_owned()),
        // PATCH is served (a merge patch); POST on a single individual is not.
        (
            Method::POST,
            format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, "X")),
        ),
    ] {
        let reply = api.send(method.clone(), &path, None, &[]).await;
        assert_eq!(
            reply.status.as_u16(),
            405,
            "{method} {path}: {}",
            reply.text
        );
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
        assert_eq!(reply.body["issue"][0]["code"], "not-supported");
        assert!(reply.header("x-request-id").is_some());
    }

    let reply = api.get("/api/v2/spp/Individual/%FF%FE").await;
    reply.expect(400);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert!(reply.body["detail"].is_string());

    let response = api
        .http
        .post(format!("{}/api/v2/spp/oauth/token", api.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
}

/// Values the read models could not store (a year PostgreSQL cannot hold, a name longer than a
/// B-tree entry) are refused before an event exists: one such event would stop every read model.
async fn unstorable_values() {
    let api = admin().await;
    let cases = [
        ("birthDate", json!("-5000-01-01"), "birthDate"),
        ("birthDate", json!("+10000-01-01"), "birthDate"),
        ("name", json!({"family": "x".repeat(8000)}), "name.family"),
        ("name", json!({"given": "é".repeat(201)}), "name.given"),
        (
            "address",
            json!([{"line": ["y".repeat(5000)]}]),
            "address[0].line[0]",
        ),
    ];
    for (field, value, expression) in cases {
        let mut body = individual_body(&unique("BOUND"));
        body[field] = value;
        let reply = api.post("/api/v2/spp/Individual", body).await;
        assert_eq!(reply.status.as_u16(), 422, "{expression}: {}", reply.text);
        assert_eq!(reply.body["issue"][0]["expression"][0], expression);
    }
    // The longest name a person may have, in a script of three-byte characters that do not
    // repeat (so PostgreSQL cannot compress them), is stored and found: its search text fits
    // the index that carries it (migration 0250). Four-byte characters would not, and are
    // refused before an event exists.
    let varied = |seed: u32, plane: u32| -> String {
        (0..200u32)
            .map(|i| char::from_u32(plane + (i * 7919 + seed * 104_729) % 20_000).unwrap())
            .collect()
    };
    let mut body = individual_body(&unique("BOUND"));
    body["name"] = json!({
        "family": varied(1, 0x4E00), "given": varied(2, 0x4E00),
        "middle": varied(3, 0x4E00), "text": varied(4, 0x4E00)
    });
    api.post("/api/v2/spp/Individual", body.clone())
        .await
        .expect(201);
    let family = body["name"]["family"].as_str().unwrap();
    let probe: String = family.chars().take(3).collect();
    let found = api
        .get(&format!("/api/v2/spp/Individual?name={probe}&_count=1"))
        .await;
    found.expect(200);
    assert_eq!(found.body["data"][0]["name"]["family"], family);
    let mut body = individual_body(&unique("BOUND"));
    body["name"] = json!({
        "family": varied(1, 0x20000), "given": varied(2, 0x20000),
        "middle": varied(3, 0x20000), "text": varied(4, 0x20000)
    });
    let reply = api.post("/api/v2/spp/Individual", body).await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.text);
    assert_eq!(reply.body["issue"][0]["expression"][0], "name");

    let mut body = individual_body(&unique("BOUND"));
    body["identifier"][0]["value"] = json!(" padded ");
    let reply = api.post("/api/v2/spp/Individual", body).await;
    reply.expect(422);
    assert_eq!(
        reply.body["issue"][0]["expression"][0],
        "identifier[0].value"
    );

    let member_id = unique("BOUNDM");
    crate::support::register_individual(&api, &member_id).await;
    let group = |name: Value, start: &str| {
        json!({
            "type": "Group",
            "identifier": [{"system": "urn:openspp:group", "value": unique("BOUNDG")}],
            "groupType": "household",
            "name": name,
            "member": [{
                "entity": {"reference": format!("Individual/{NATIONAL_ID}|{member_id}")},
                "period": {"start": start}
            }]
        })
    };
    let reply = api
        .post(
            "/api/v2/spp/Group",
            group(json!("n".repeat(5000)), "2020-01-01"),
        )
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "name");
    let reply = api
        .post("/api/v2/spp/Group", group(json!("Bounds"), "-5000-01-01"))
        .await;
    reply.expect(422);
    assert_eq!(
        reply.body["issue"][0]["expression"][0],
        "member[0].period.start"
    );

    // The read models kept following the log: a write now is read back at once.
    let id = unique("BOUNDOK");
    let path = crate::support::register_individual(&api, &id).await;
    api.get(&path).await.expect(200);
}
