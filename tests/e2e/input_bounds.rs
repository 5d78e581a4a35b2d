//! Hostile input (issue 8, items 5, 11 and 15): out-of-range dates, reserved provenance, URIs
//! too long, query strings that are not UTF-8, duplicate keys, malformed `If-Match`, lists
//! without end. Each is a clear 4xx OperationOutcome naming what is wrong — never a 500, and
//! never a write.

use std::io::{Read, Write};

use libtest_mimic::Trial;
use openspp_aggregates::bounds::items;
use reqwest::Method;
use serde_json::{json, Value};

use crate::consent::{consent_body, events_of};
use crate::program::{enrol, new_program};
use crate::support::{
    admin, as_body, create_client, individual_body, minted_path, path_id, query_instant,
    register_individual, unique, world, Api, Reply, NATIONAL_ID,
};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "input_bounds::body_dates_outside_years_1_to_9999_are_422_naming_the_field",
            body_dates,
        ),
        trial(
            "input_bounds::query_dates_outside_years_1_to_9999_are_400_naming_the_parameter",
            query_dates,
        ),
        trial(
            "input_bounds::api_client_uris_are_reserved_as_source_system",
            reserved_source_system,
        ),
        trial(
            "input_bounds::a_too_long_uri_is_a_414_operation_outcome",
            long_uri,
        ),
        trial(
            "input_bounds::query_text_that_is_not_utf8_is_400_naming_the_parameter",
            invalid_utf8_query,
        ),
        trial(
            "input_bounds::put_refuses_duplicate_keys_as_post_does",
            duplicate_keys,
        ),
        trial(
            "input_bounds::a_malformed_if_match_is_400_after_auth_scope_path_and_body",
            if_match,
        ),
        trial(
            "input_bounds::every_body_list_is_bounded_naming_it",
            bounded_lists,
        ),
        trial(
            "input_bounds::the_openapi_document_shows_the_list_bounds",
            documented_bounds,
        ),
    ]
}

/// The field (or parameter, or header) an OperationOutcome names.
fn named(reply: &Reply) -> &str {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
}

#[track_caller]
fn refused(reply: &Reply, status: u16, name: &str) {
    assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.text);
    assert_eq!(reply.body["resourceType"], "OperationOutcome", "{name}");
    assert_eq!(named(reply), name, "{}", reply.text);
}

/// Years the general date type takes and no consumer holds: PostgreSQL's first year, the year
/// before it, year 0 and year 10000.
const OUT_OF_RANGE: [&str; 4] = ["-4713-11-24", "-4714-01-01", "0000-01-01", "+10000-01-01"];

async fn body_dates() {
    let api = admin().await;
    for date in OUT_OF_RANGE {
        let mut body = individual_body(&unique("D"));
        body["birthDate"] = json!(date);
        let reply = api.post("/api/v2/spp/Individual", body).await;
        refused(&reply, 422, "birthDate");
        assert!(reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("between 0001-01-01 and 9999-12-31"));
    }
    let member = unique("DM");
    register_individual(&api, &member).await;
    let entity = json!({"reference": format!("Individual/{NATIONAL_ID}|{member}")});
    let reply = api
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": GROUP_SYSTEM, "value": unique("DG")}],
                   "member": [{"entity": entity, "period": {"start": "0000-01-01"}}]}),
        )
        .await;
    refused(&reply, 422, "member[0].period.start");
    let group = unique("DG");
    api.post(
        "/api/v2/spp/Group",
        json!({"identifier": [{"system": GROUP_SYSTEM, "value": group}]}),
    )
    .await
    .expect(201);
    let group_path = format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &group));
    for (body, field) in [
        (
            json!({"entity": entity, "start_date": "-4714-01-01"}),
            "start_date",
        ),
        (
            json!({"entity": entity, "period": {"start": "0000-12-31"}}),
            "period.start",
        ),
    ] {
        let reply = api.post(&format!("{group_path}/$add-member"), body).await;
        refused(&reply, 422, field);
    }
    api.post(
        &format!("{group_path}/$add-member"),
        json!({"entity": entity}),
    )
    .await
    .expect(201);
    let reply = api
        .post(
            &format!("{group_path}/$remove-member"),
            json!({"entity": entity, "ended_date": "+10000-01-01"}),
        )
        .await;
    refused(&reply, 422, "ended_date");

    let program = json!({"name": format!("Dated {}", unique("P")), "targetType": "individual",
                         "currency": "PHP", "period": {"start": "-4714-01-01"}});
    refused(
        &api.post("/api/v2/spp/Program", program).await,
        422,
        "period.start",
    );

    let (_, alias) = new_program(&api, "individual").await;
    let person = unique("DE");
    register_individual(&api, &person).await;
    for date in ["0000-01-01", "-4714-01-01"] {
        let reply = api
            .post(
                "/api/v2/spp/ProgramMembership",
                json!({"program": {"reference": format!("Program/{alias}")},
                       "beneficiary": {"reference": format!("Individual/{NATIONAL_ID}|{person}")},
                       "status": "enrolled", "enrollmentDate": date}),
            )
            .await;
        refused(&reply, 422, "enrollmentDate");
    }
    let enrolled = enrol(&api, &alias, &person, "enrolled").await;
    enrolled.expect(201);
    let path = minted_path(&enrolled);
    let mut exit = as_body(&enrolled.body);
    exit["status"] = json!("exited");
    exit["exitDate"] = json!("+10000-01-01");
    exit["exitReason"] = json!({"text": "moved away"});
    refused(&api.put(&path, exit, None).await, 422, "exitDate");

    let subject = format!("Individual/{NATIONAL_ID}|{person}");
    for (field, date) in [
        ("effective_date", "-4713-01-01"),
        ("effective_date", "0000-01-01"),
        ("expiry_date", "+10000-01-01"),
    ] {
        let mut body = consent_body(&subject, "specific", &["Org"], &[]);
        body[field] = json!(date);
        refused(&api.post("/api/v2/spp/Consent", body).await, 422, field);
    }
    let consent = give(&api, &subject).await;
    let reply = api
        .post(
            &format!("/api/v2/spp/Consent/{consent}/$renew"),
            json!({"expiry_date": "+10000-01-01"}),
        )
        .await;
    refused(&reply, 422, "expiry_date");
}

/// Records a consent of `subject` for some organisation; returns its id.
async fn give(api: &Api, subject: &str) -> String {
    let given = api
        .post(
            "/api/v2/spp/Consent",
            consent_body(subject, "specific", &["Org"], &[]),
        )
        .await;
    given.expect(201);
    given.body["consent_id"].as_str().unwrap().to_owned()
}

async fn query_dates() {
    let api = admin().await;
    let id = unique("Q");
    let path = register_individual(&api, &id).await;
    let subject = format!("Individual/{NATIONAL_ID}|{id}");
    let consent = give(&api, &subject).await;
    for date in OUT_OF_RANGE {
        let date = query_instant(date);
        let instant = query_instant("0000-01-01T00:00:00Z");
        let mut surfaces = vec![
            (
                format!("/api/v2/spp/Individual?birthdate={date}"),
                "birthdate",
            ),
            (
                format!("/api/v2/spp/Individual?birthdate=ge{date}"),
                "birthdate",
            ),
            (
                format!("/api/v2/spp/Individual?_lastUpdated=lt{instant}"),
                "_lastUpdated",
            ),
            (format!("/api/v2/spp/AuditEvent?date={date}"), "date"),
            (format!("/api/v2/spp/AuditEvent?date=ge{instant}"), "date"),
            (format!("{path}/_history?_since={date}"), "_since"),
            (format!("{path}/_history?_at={instant}"), "_at"),
            (format!("{path}?_at={instant}"), "_at"),
        ];
        for resource in ["Individual", "Group", "Program", "ProgramMembership"] {
            let url = format!("/api/v2/spp/{resource}?_lastUpdated={date}");
            surfaces.push((url, "_lastUpdated"));
        }
        for parameter in ["date_from", "date_to"] {
            let url = format!("/api/v2/spp/Consent/{consent}/$access-summary?{parameter}={date}");
            surfaces.push((url, parameter));
        }
        for (url, parameter) in surfaces {
            refused(&api.get(&url).await, 400, parameter);
        }
    }
    // The bounds themselves are fine.
    api.get("/api/v2/spp/Individual?birthdate=ge0001-01-01&birthdate=le9999-12-31")
        .await
        .expect(200);
    api.get(&format!(
        "/api/v2/spp/AuditEvent?date=lt{}",
        query_instant("9999-12-31T23:59:59Z")
    ))
    .await
    .expect(200);
}

async fn reserved_source_system() {
    let api = admin().await;
    for claimed in [
        "urn:openspp:api-client:client_someone_else",
        "URN:OpenSPP:API-Client:client_someone_else",
        "urn:openspp:api-client:",
    ] {
        let id = unique("SRC");
        let reply = api
            .send(
                Method::POST,
                "/api/v2/spp/Individual",
                Some(individual_body(&id)),
                &[("X-Source-System", claimed)],
            )
            .await;
        refused(&reply, 400, "X-Source-System");
        api.get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &id)
        ))
        .await
        .expect(404);
    }
    let reply = api
        .send(
            Method::POST,
            "/api/v2/spp/Individual",
            Some(individual_body(&unique("SRC"))),
            &[("X-Source-System", "urn:gov:ph:psa:crvs")],
        )
        .await;
    reply.expect(201);
    assert_eq!(reply.body["meta"]["source"], "urn:gov:ph:psa:crvs");
}

/// An HTTP/1.1 request written by hand: reqwest (like the `http` crate) refuses URIs longer
/// than 64 KiB before they leave, and those are what hyper answers by itself.
///
/// The server answers once its buffer is full and closes, so writing the rest may fail (a
/// broken pipe), and a close with unread data may reset the connection before the answer is
/// read: such an attempt is made again, a few times; the answer itself is never excused.
fn raw_get(target_length: usize) -> (String, Value) {
    let address = world().base.trim_start_matches("http://");
    let target = format!("/api/v2/spp/Individual?name={}", "a".repeat(target_length));
    let mut answer = Vec::new();
    for _ in 0..5 {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        let _ = write!(stream, "GET {target} HTTP/1.1\r\nHost: test\r\n\r\n");
        answer.clear();
        let _ = stream.read_to_end(&mut answer);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (
        head.to_owned(),
        serde_json::from_str(body).unwrap_or_default(),
    )
}

async fn long_uri() {
    let api = admin().await;
    // Past this server's limit (8 KiB), through the router: with a request id.
    let reply = api
        .get(&format!("/api/v2/spp/Individual?name={}", "a".repeat(9000)))
        .await;
    reply.expect(414);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert_eq!(reply.body["issue"][0]["code"], "too-long");
    assert!(reply.header("x-request-id").is_some());
    // At the limit, the request is served.
    let at_limit = 8 * 1024 - "/api/v2/spp/Individual?name=".len();
    api.get(&format!(
        "/api/v2/spp/Individual?name={}",
        "a".repeat(at_limit)
    ))
    .await
    .expect(200);
    // Past hyper's own limit (64 KiB), where no middleware runs, and past its buffer.
    for (length, status) in [(70_000, "414"), (600_000, "431")] {
        let (head, body) = tokio::task::spawn_blocking(move || raw_get(length))
            .await
            .unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{head}");
        assert_eq!(body["issue"][0]["code"], "too-long");
    }
}

async fn invalid_utf8_query() {
    let api = admin().await;
    for (query, parameter) in [
        ("/api/v2/spp/Individual?name=%FF%FE", "name"),
        (
            "/api/v2/spp/Individual?_count=2&address=Cebu%C3%28",
            "address",
        ),
        ("/api/v2/spp/AuditEvent?client=%C0%AF", "client"),
        ("/api/v2/spp/Individual?na%FFme=x", "query"),
    ] {
        refused(&api.get(query).await, 400, parameter);
    }
    // Well-formed UTF-8, percent-encoded or `+` for a space, is searched as sent.
    api.get("/api/v2/spp/Individual?name=Mar%C3%ADa+Santos")
        .await
        .expect(200);
}

async fn duplicate_keys() {
    let api = admin().await;
    let id = unique("DUP");
    let path = register_individual(&api, &id).await;
    let duplicated = format!(
        r#"{{"type": "Individual", "identifier": [{{"system": "{NATIONAL_ID}", "value": "{id}"}}],
            "name": {{"family": "Santos", "given": "Maria"}}, "name": {{"family": "Impostor"}}}}"#
    );
    let post = api
        .send_text(Method::POST, "/api/v2/spp/Individual", &duplicated, &[])
        .await;
    let before = events_of(&id);
    let put = api.send_text(Method::PUT, &path, &duplicated, &[]).await;
    post.expect(422);
    put.expect(422);
    assert!(put.text.contains("duplicate field `name`"), "{}", put.text);
    assert_eq!(put.body["issue"], post.body["issue"]);
    assert_eq!(events_of(&id), before, "nothing was written");
    assert_eq!(api.get(&path).await.body["name"]["family"], "Santos");
    // A replacement body must be an object: which fields it states decides what it changes.
    let reply = api.send_text(Method::PUT, &path, "[]", &[]).await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.text);
}

async fn if_match() {
    let api = admin().await;
    let id = unique("IFM");
    let path = register_individual(&api, &id).await;
    let read = api.get(&path).await;
    let body = as_body(&read.body);
    let current = read.header("etag").unwrap().to_owned();
    let before = events_of(&id);
    for malformed in ["", "   ", "abc", "\"1\", \"2\"", "-1"] {
        let reply = api.put(&path, body.clone(), Some(malformed)).await;
        refused(&reply, 400, "If-Match");
    }
    assert_eq!(events_of(&id), before, "nothing was written");
    // A well-formed tag that is not the current version is a precondition that fails.
    for stale in ["\"1\"", "\"abc\"", "W/\"1\""] {
        api.put(&path, body.clone(), Some(stale)).await.expect(412);
    }
    // Authentication, scope, path and body come first, whatever If-Match says.
    let anonymous = Api::new(&world().base);
    anonymous
        .put(&path, body.clone(), Some(""))
        .await
        .expect(401);
    let reader = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "individual:read"],
        ))
        .await;
    reader.put(&path, body.clone(), Some("")).await.expect(403);
    let broken = api
        .send_text(Method::PUT, &path, "{\"type\":", &[("If-Match", "")])
        .await;
    assert_eq!(broken.status.as_u16(), 400);
    assert_ne!(named(&broken), "If-Match");
    let mut unknown_field = body.clone();
    unknown_field["nickname"] = json!("Mia");
    refused(
        &api.put(&path, unknown_field.clone(), Some("")).await,
        422,
        "nickname",
    );
    refused(
        &api.put(&path, unknown_field, Some("\"1\"")).await,
        422,
        "nickname",
    );
    let unknown = format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, &unique("NOBODY"))
    );
    api.put(&unknown, body.clone(), Some("\"1\""))
        .await
        .expect(404);
    // And the current version still applies.
    api.put(&path, body, Some(&current)).await.expect(200);
}

async fn bounded_lists() {
    let api = admin().await;
    let phone = json!({"system": "phone", "value": "+639171234567"});
    let id = |i: usize| json!({"system": format!("urn:x:{i}"), "value": "1"});
    let coding = json!({"system": "urn:iso:std:iso:5218", "code": "2"});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "telecom",
            json!(vec![phone.clone(); items::TELECOM + 1]),
            "telecom",
        ),
        (
            "identifier",
            json!((0..=items::IDENTIFIERS).map(id).collect::<Vec<_>>()),
            "identifier",
        ),
        (
            "address",
            json!(vec![json!({"city": "Cebu"}); items::ADDRESSES + 1]),
            "address",
        ),
        (
            "address",
            json!([{"line": vec!["1 Rizal St"; items::ADDRESS_LINES + 1]}]),
            "address[0].line",
        ),
        (
            "gender",
            json!({"coding": vec![coding; items::CODINGS + 1]}),
            "gender.coding",
        ),
    ];
    for (field, value, name) in cases {
        let mut body = individual_body(&unique("LIST"));
        body[field] = value;
        refused(&api.post("/api/v2/spp/Individual", body).await, 422, name);
    }
    // The 15,000 phone numbers of the hostile test.
    let mut body = individual_body(&unique("LIST"));
    body["telecom"] = json!(vec![phone.clone(); 15_000]);
    refused(
        &api.post("/api/v2/spp/Individual", body).await,
        422,
        "telecom",
    );
    // At the bound, accepted.
    let mut body = individual_body(&unique("LIST"));
    body["telecom"] = json!(vec![phone; items::TELECOM]);
    api.post("/api/v2/spp/Individual", body).await.expect(201);

    // Members are refused while parsing, before any of them is looked up.
    let member = json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|nobody")}});
    let reply = api
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": GROUP_SYSTEM, "value": unique("LG")}],
                   "member": vec![member; items::MEMBERS + 1]}),
        )
        .await;
    refused(&reply, 422, "member");
    let reply = api
        .post(
            "/api/v2/spp/Program",
            json!({"name": format!("Listed {}", unique("P")), "targetType": "individual",
                   "currency": "PHP",
                   "identifier": (0..=items::IDENTIFIERS).map(id).collect::<Vec<_>>()}),
        )
        .await;
    refused(&reply, 422, "identifier");

    let person = unique("LC");
    register_individual(&api, &person).await;
    let subject = format!("Individual/{NATIONAL_ID}|{person}");
    let orgs: Vec<String> = (0..=items::RECIPIENTS)
        .map(|i| format!("Org {i}"))
        .collect();
    let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let scope = json!({"resource_type": "individual", "purpose": "service_delivery"});
    let consents: Vec<(Value, &str)> = vec![
        (consent_body(&subject, "specific", &orgs, &[]), "recipients"),
        (
            consent_body(
                &subject,
                "category",
                &[],
                &["ngo"; items::RECIPIENT_TYPES + 1],
            ),
            "recipient_types",
        ),
        (
            {
                let mut body = consent_body(&subject, "specific", &["Org"], &[]);
                body["scopes"] = json!(vec![scope; items::SCOPES + 1]);
                body
            },
            "scopes",
        ),
        (
            {
                let mut body = consent_body(&subject, "specific", &["Org"], &[]);
                body["scopes"][0]["field_access"] = json!(vec!["name"; items::FIELDS + 1]);
                body
            },
            "scopes[0].field_access",
        ),
    ];
    for (body, name) in consents {
        refused(&api.post("/api/v2/spp/Consent", body).await, 422, name);
    }
}

async fn documented_bounds() {
    let reply = Api::new(&world().base)
        .get("/api/v2/spp/openapi.json")
        .await;
    reply.expect(200);
    let schemas = &reply.body["components"]["schemas"];
    for (schema, property, bound) in [
        ("IndividualResource", "telecom", items::TELECOM),
        ("IndividualResource", "identifier", items::IDENTIFIERS),
        ("GroupResource", "member", items::MEMBERS),
        ("Address", "line", items::ADDRESS_LINES),
        ("ConsentBody", "recipients", items::RECIPIENTS),
        ("ScopeBody", "field_access", items::FIELDS),
    ] {
        // A list property, or the list form of one that also takes other forms (`oneOf`).
        let documented = &schemas[schema]["properties"][property];
        let list = documented["oneOf"]
            .as_array()
            .and_then(|forms| forms.iter().find(|f| f["type"] == "array"))
            .unwrap_or(documented);
        assert_eq!(list["maxItems"], bound, "{schema}.{property}");
    }
}
