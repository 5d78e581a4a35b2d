//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), so it cannot
//! drift from the code. Served at `/api/v2/spp/openapi.json`.
//!
//! What every operation shares is added here once, by rule, rather than repeated (and
//! forgotten) in each annotation: the error answers the server's layers give whatever the
//! handler (a malformed request, a missing token or scope, a rate limit, a body of the wrong
//! type or size, a database that is unavailable), and the limits the domain enforces on text,
//! taken from the same constants (`openspp_aggregates::bounds`) the domain checks them with.
//! A schemathesis run against the served document (tests/e2e/schemathesis.rs) keeps the
//! document and the server in agreement.

use axum::http::StatusCode;
use openspp_aggregates::bounds::{LONG_TEXT, SEARCH_NAME_BYTES, SHORT_TEXT};
use serde_json::{json, Map, Value};
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::Response;
use utoipa::OpenApi;

use crate::api::params::MAX_COUNT;
use crate::api::schema::OperationOutcome;

/// The longest identifier value the domain accepts (`openspp_aggregates::identifiers`).
const IDENTIFIER_VALUE: usize = 100;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenSPP API V2 (event-sourced)",
        version = "2.0.0",
        description = "OpenSPP's API V2 for social-protection registries (Individuals, Groups, \
                       Programs, ProgramMemberships, Consent), served from an event store: every \
                       change is an event with its source, readable as history. External \
                       identifiers only (`system|value`); errors are OperationOutcome with \
                       OpenSPP's `detail`. The server's own version is in `/metadata`.",
        contact(name = "openspp-es maintainers", url = "/api/v2/spp/docs"),
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(OperationOutcome))
)]
struct Base;

pub fn document() -> Document {
    Base::openapi()
}

/// Adds what the annotations cannot say: the security schemes, the document's own path, the
/// answers every operation shares, and the text limits. Returns the document as served.
pub fn finish(mut document: Document, own_path: &str) -> Value {
    // The router that nests the others starts from an empty document, whose `info` would be
    // the OpenAPI library's own (its name, author and version): this API's stands instead.
    document.info = Base::openapi().info;
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        "client_basic",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    let operation = OperationBuilder::new()
        .tag("Metadata")
        .summary(Some("This OpenAPI 3.1 document"))
        .response("200", Response::new("The OpenAPI document"))
        .build();
    document
        .paths
        .add_path_operation(own_path, vec![HttpMethod::Get], operation);
    let mut served = serde_json::to_value(document).unwrap_or_default();
    if let Some(paths) = served["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                shared_answers(path, method, operation);
                paging_bounds(operation);
            }
        }
    }
    text_limits(&mut served["components"]["schemas"]);
    describe_documents(&mut served["paths"], own_path);
    served
}

/// The two public documents whose shapes are standards rather than this API's types: the
/// token-signing keys (RFC 7517) and this document (OpenAPI 3.1).
fn describe_documents(paths: &mut Value, own_path: &str) {
    let documents = [
        (
            "/.well-known/jwks.json",
            json!({"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array",
                "items": {"type": "object", "required": ["kty", "kid"],
                          "properties": {"kty": {"type": "string"}, "kid": {"type": "string"},
                                         "alg": {"type": "string"}, "use": {"type": "string"}}}}}}),
        ),
        (
            own_path,
            json!({"type": "object", "required": ["openapi", "info", "paths"],
                   "properties": {"openapi": {"type": "string"}, "info": {"type": "object"},
                                  "paths": {"type": "object"}}}),
        ),
    ];
    for (path, schema) in documents {
        let ok = paths
            .get_mut(path)
            .and_then(|item| item.pointer_mut("/get/responses/200"));
        if let Some(ok) = ok {
            ok["content"] = json!({"application/json": {"schema": schema}});
        }
    }
}

/// Answers a request can get from the layers around the handler, by what the operation is.
struct Answer {
    status: &'static str,
    description: &'static str,
    /// A header the answer always carries, with its description.
    header: Option<(&'static str, &'static str)>,
}

const fn answer(status: &'static str, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        header: None,
    }
}

const RETRY_AFTER: (&str, &str) = ("Retry-After", "Seconds to wait before retrying");

/// Routes that answer from memory alone: no database fault reaches them.
const IN_MEMORY: [&str; 4] = [
    "/healthz",
    "/.well-known/jwks.json",
    "/api/v2/spp/metadata",
    "/api/v2/spp/openapi.json",
];

/// Adds to `operation` every answer the server's shared layers give it that its annotation
/// does not list, each with the OperationOutcome body; an error answer listed without a body
/// gets that body too (the OAuth errors of the token endpoint are OperationOutcomes as well).
fn shared_answers(path: &str, method: &str, operation: &mut Value) {
    let secured = operation["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    let has_body = operation.get("requestBody").is_some();
    let if_match = operation["parameters"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "If-Match"));
    let command = matches!(method, "post" | "put" | "patch" | "delete")
        && path.starts_with(crate::api::BASE)
        && !path.ends_with("/oauth/token");
    let mut answers = vec![
        answer(
            "400",
            "Malformed request: a query string or path that is not UTF-8, an unknown or \
             malformed parameter, malformed JSON",
        ),
        answer("414", "The request URI is longer than 8 KiB"),
    ];
    if path.contains('{') {
        answers.push(answer(
            "404",
            "Unknown, or not visible to this client (the two are indistinguishable)",
        ));
    }
    if secured {
        answers.push(Answer {
            header: Some(("WWW-Authenticate", "The Bearer challenge")),
            ..answer("401", "No token, or an invalid, expired or revoked one")
        });
        answers.push(answer(
            "403",
            "The token lacks the scope, or the client may not do this here",
        ));
        answers.push(Answer {
            header: Some(RETRY_AFTER),
            ..answer("429", "The client's rate limit is spent")
        });
    }
    if has_body {
        answers.push(answer("413", "The body is larger than this server accepts"));
    }
    if has_body && command {
        answers.push(answer("415", "The body is not `application/json`"));
        answers.push(answer(
            "422",
            "Well-formed but invalid content; `expression` names the field",
        ));
    }
    if command {
        answers.push(Answer {
            header: Some(RETRY_AFTER),
            ..answer(
                "409",
                "A conflicting state, or the resource is being changed concurrently",
            )
        });
    }
    if if_match {
        answers.push(answer("412", "`If-Match` names a stale version"));
    }
    if !IN_MEMORY.contains(&path) {
        answers.push(Answer {
            header: Some(RETRY_AFTER),
            ..answer("503", "The database is unavailable for a moment; retry")
        });
    }
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation documents responses");
    for answer in answers {
        let entry = responses
            .entry(answer.status)
            .or_insert_with(|| json!({"description": answer.description}));
        // An annotation that lists the status bare leaves utoipa's empty description.
        if !described(entry) {
            entry["description"] = json!(answer.description);
        }
        if let Some((name, description)) = answer.header {
            entry["headers"][name] =
                json!({"description": description, "schema": {"type": "string"}});
        }
    }
    for (status, response) in responses.iter_mut() {
        if (status.starts_with('4') || status.starts_with('5')) && response.get("content").is_none()
        {
            response["content"] = outcome_content();
        }
        // OpenAPI requires every response to be described; one whose annotation gave no
        // words is described by its status' own name.
        if !described(response) {
            let reason = StatusCode::from_bytes(status.as_bytes())
                .ok()
                .and_then(|code| code.canonical_reason())
                .unwrap_or("The answer");
            response["description"] = json!(reason);
        }
    }
}

fn described(response: &Value) -> bool {
    response["description"]
        .as_str()
        .is_some_and(|d| !d.trim().is_empty())
}

fn outcome_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}})
}

/// `_count` and `_offset` as the server bounds them (`Params::page`), where an operation does
/// not state its own bound.
fn paging_bounds(operation: &mut Value) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters {
        let name = parameter["name"].as_str().map(str::to_owned);
        let schema = &mut parameter["schema"];
        match name.as_deref() {
            Some("_count") if schema.get("maximum").is_none() => {
                schema["minimum"] = json!(1);
                schema["maximum"] = json!(MAX_COUNT);
            }
            Some("_offset") => schema["minimum"] = json!(0),
            _ => {}
        }
    }
}

/// The longest text each body property may hold, as the domain checks it
/// (`openspp_aggregates::bounds`): `(schema, property, characters)`.
const TEXT_LIMITS: [(&str, &str, usize); 28] = [
    ("HumanName", "family", SHORT_TEXT),
    ("HumanName", "given", SHORT_TEXT),
    ("HumanName", "middle", SHORT_TEXT),
    ("HumanName", "prefix", SHORT_TEXT),
    ("HumanName", "suffix", SHORT_TEXT),
    ("HumanName", "text", SHORT_TEXT),
    ("Identifier", "value", IDENTIFIER_VALUE),
    ("ContactPoint", "value", LONG_TEXT),
    ("Address", "text", LONG_TEXT),
    ("Address", "city", LONG_TEXT),
    ("Address", "district", LONG_TEXT),
    ("Address", "state", LONG_TEXT),
    ("Address", "postalCode", LONG_TEXT),
    ("Address", "country", LONG_TEXT),
    ("GroupResource", "name", SHORT_TEXT),
    ("ProgramResource", "name", SHORT_TEXT),
    ("ProgramResource", "description", LONG_TEXT),
    ("RemoveMember", "reason", LONG_TEXT),
    ("CycleResource", "name", SHORT_TEXT),
    ("Quantity", "unit", SHORT_TEXT),
    ("ServicePointResource", "name", SHORT_TEXT),
    ("PlainAddress", "text", LONG_TEXT),
    ("Phone", "value", SHORT_TEXT),
    ("ServicePointResource", "country", 2),
    ("MoneyValue", "currency", 3),
    ("ProductResource", "name", SHORT_TEXT),
    ("ProductResource", "defaultCode", SHORT_TEXT),
    ("ProductResource", "currency", 3),
];

/// Lines of an address are text like its other parts.
const LINE_LIMIT: usize = LONG_TEXT;

fn text_limits(schemas: &mut Value) {
    for (schema, property, limit) in TEXT_LIMITS {
        if let Some(property) = schemas.pointer_mut(&format!("/{schema}/properties/{property}")) {
            property["maxLength"] = json!(limit);
        }
    }
    // A bound on the parts together, which no `maxLength` can say (`bounds::search_name`).
    if let Some(name) = schemas.pointer_mut("/HumanName") {
        name["description"] = json!(format!(
            "family, given, middle and text together, lowercased and joined by spaces, may hold \
             at most {SEARCH_NAME_BYTES} bytes of UTF-8 (any name of 200-character parts in a \
             script of the Basic Multilingual Plane fits); a longer name is refused with 422 \
             naming `name`"
        ));
    }
    if let Some(recipients) = schemas
        .pointer_mut("/ConsentBody/properties/recipients")
        .and_then(Value::as_object_mut)
    {
        let items = recipients
            .entry("items")
            .or_insert_with(|| Value::Object(Map::new()));
        items["maxLength"] = json!(SHORT_TEXT);
    }
    if let Some(line) = schemas
        .pointer_mut("/Address/properties/line")
        .and_then(Value::as_object_mut)
    {
        let items = line
            .entry("items")
            .or_insert_with(|| Value::Object(Map::new()));
        items["maxLength"] = json!(LINE_LIMIT);
    }
}
