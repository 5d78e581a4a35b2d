//! OpenSPP clients unchanged (CONTRACT §4a), part A: scopes as OpenSPP grants them, OpenSPP's
//! search parameters, `_elements`, `_filters`, `/metadata` in OpenSPP's shape, and the HTTP
//! conventions (`X-API-Version`, `X-RateLimit-*`, `If-None-Match`), the OpenAPI document's
//! `info` and the offline documentation page. Each request is the one an OpenSPP client sends.

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use crate::consent::give_consent;
use crate::group::{member, new_group};
use crate::support::{
    admin, cli, consent_client, create_client, path_id, register_individual, unique, world, Api,
    Credentials, Server, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("compat::read_scope_allows_searches", read_scope_searches),
        trial("compat::metadata_in_openspp_shape", metadata),
        trial("compat::metadata_fhir_on_request", metadata_fhir),
        trial("compat::x_api_version_on_every_response", api_version),
        trial("compat::rate_limit_headers", rate_limit_headers),
        trial("compat::if_none_match_answers_304", not_modified),
        trial("compat::openapi_info_names_this_api", openapi_info),
        trial("compat::docs_page_served_offline", docs_page),
        trial("compat::individual_by_group_and_role", by_group_and_role),
        trial("compat::group_by_type_and_member", by_type_and_member),
        trial(
            "compat::household_filters_follow_consent",
            household_filters_under_consent,
        ),
        trial("compat::elements_limit_fields", elements),
        trial("compat::program_cursor_type_and_identifier", program_cursor),
        trial("compat::filters_describe_every_search", filters),
        trial("compat::advanced_search_and_or_presets", advanced_search),
        trial(
            "compat::advanced_search_under_consent",
            advanced_search_under_consent,
        ),
    ]
}

const GROUP_SYSTEM: &str = "urn:openspp:group";

fn base() -> Api {
    Api::new(&world().base)
}

fn scoped(scopes: &[&str]) -> Credentials {
    let mut args = Vec::new();
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    create_client(&world().database_url, &args)
}

/// OpenSPP's read-only client: `:read` scopes only, as OpenSPP grants them, searches too.
async fn read_scope_searches() {
    let ro = base()
        .login(&scoped(&[
            "individual:read",
            "group:read",
            "program:read",
            "program_membership:read",
        ]))
        .await;
    for path in [
        "/api/v2/spp/Individual?name=santos",
        "/api/v2/spp/Group?type=household",
        "/api/v2/spp/Program?_count=5",
        "/api/v2/spp/ProgramMembership?status=enrolled",
        "/api/v2/spp/Individual/_filters",
        "/api/v2/spp/ProgramMembership/_filters",
    ] {
        ro.get(path).await.expect(200);
    }
    // Reads still need `:read`, writes their own scope.
    ro.post("/api/v2/spp/Individual", json!({}))
        .await
        .expect(403);
    let searcher = base().login(&scoped(&["group:search"])).await;
    searcher.get("/api/v2/spp/Group").await.expect(200);
    searcher.get("/api/v2/spp/Individual").await.expect(403);
}

async fn metadata() {
    let reply = base().get("/api/v2/spp/metadata").await;
    reply.expect(200);
    let body = &reply.body;
    assert_eq!(body["name"], "OpenSPP API");
    assert_eq!(body["version"], "2.0.0");
    assert_eq!(body["docs"], "/api/v2/spp/docs");
    assert_eq!(
        body["authentication"]["token_endpoint"],
        "/api/v2/spp/oauth/token"
    );
    assert_eq!(
        body["authentication"]["grant_types"],
        json!(["client_credentials"])
    );
    assert!(body["extensions"].is_array());
    for resource in [
        "Individual",
        "Group",
        "Program",
        "ProgramMembership",
        "Consent",
        "AuditEvent",
        "Vocabulary",
    ] {
        let entry = &body["resources"][resource];
        assert!(
            entry["operations"]
                .as_array()
                .is_some_and(|o| !o.is_empty()),
            "{resource}: {entry}"
        );
        assert!(entry["search_params"].is_array(), "{resource}");
    }
    let params = |resource: &str| -> Vec<String> {
        body["resources"][resource]["search_params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    };
    let individual = params("Individual");
    for expected in [
        "identifier",
        "name",
        "birthdate",
        "gender",
        "address",
        "group",
        "membership-role",
        "_elements",
        "_extensions",
    ] {
        assert!(individual.iter().any(|p| p == expected), "{expected}");
    }
    let group = params("Group");
    for expected in ["identifier", "name", "type", "member"] {
        assert!(group.iter().any(|p| p == expected), "{expected}");
    }
    let membership = params("ProgramMembership");
    for expected in ["beneficiary", "program", "status"] {
        assert!(membership.iter().any(|p| p == expected), "{expected}");
    }
}

async fn metadata_fhir() {
    let reply = base()
        .send(
            Method::GET,
            "/api/v2/spp/metadata",
            None,
            &[("accept", "application/fhir+json")],
        )
        .await;
    reply.expect(200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+json"));
    assert_eq!(reply.body["resourceType"], "CapabilityStatement");
    let types: Vec<&str> = reply.body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for expected in [
        "Individual",
        "Group",
        "Program",
        "ProgramMembership",
        "Consent",
        "AuditEvent",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
}

async fn api_version() {
    let api = base();
    let bearer = admin().await;
    let replies = [
        api.get("/api/v2/spp/metadata").await,
        api.get("/api/v2/spp/openapi.json").await,
        api.get("/healthz").await,
        api.get("/api/v2/spp/Individual").await,    // 401
        api.get("/api/v2/spp/no-such-thing").await, // 404
        bearer.get("/api/v2/spp/Individual?_count=1").await,
        bearer.get("/api/v2/spp/Individual?nmae=x").await, // 400
    ];
    for reply in &replies {
        assert_eq!(
            reply.header("x-api-version"),
            Some("2.0.0"),
            "{} {}",
            reply.status,
            reply.text
        );
    }
}

async fn rate_limit_headers() {
    let printed = cli(
        &world().database_url,
        &[
            "client",
            "create",
            "--name",
            "rate-limited",
            "--organization",
            "O",
            "--organization-type",
            "government",
            "--scope",
            "individual:read",
            "--no-consent-required",
            "--legal-basis",
            "public_task",
            "--rate-limit-per-minute",
            "3",
        ],
    );
    let value: Value = serde_json::from_str(printed.trim()).unwrap();
    let credentials = Credentials {
        client_id: value["client_id"].as_str().unwrap().into(),
        client_secret: value["client_secret"].as_str().unwrap().into(),
    };
    let api = base().login(&credentials).await;
    let now = chrono::Utc::now().timestamp();
    let mut remaining = Vec::new();
    let mut refused = None;
    // Eight requests cannot all fit in windows of three, however the minutes fall.
    for _ in 0..8 {
        let reply = api.get("/api/v2/spp/Individual?_count=1").await;
        assert_eq!(
            reply.header("x-ratelimit-limit"),
            Some("3"),
            "{}",
            reply.text
        );
        let left: u32 = reply
            .header("x-ratelimit-remaining")
            .unwrap()
            .parse()
            .unwrap();
        let reset: i64 = reply.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            reset > now && reset <= now + 61 + 30,
            "reset {reset} is a Unix time within the minute (now {now})"
        );
        if reply.status == 429 {
            assert_eq!(left, 0);
            assert!(reply.header("retry-after").is_some());
            refused = Some(reply);
            break;
        }
        reply.expect(200);
        remaining.push(left);
    }
    assert!(refused.is_some(), "the limit was enforced");
    assert!(
        !remaining.is_empty() && remaining.len() <= 3,
        "{remaining:?}"
    );
    // Within a window, each admitted request leaves one fewer.
    assert!(
        remaining.windows(2).all(|w| w[1] < w[0] || w[1] == 2),
        "{remaining:?}"
    );
    assert!(remaining.iter().all(|left| *left <= 2), "{remaining:?}");
    // The token endpoint's limit, per address, says where the caller stands too (a server of
    // its own: the shared one runs without that limit).
    let server = Server::start(
        &world().database_url,
        &[("OPENSPP_TOKEN_RATE_PER_MINUTE", "20")],
    );
    let token = Api::new(&server.base)
        .send(
            Method::POST,
            "/api/v2/spp/oauth/token",
            Some(json!({"grant_type": "client_credentials",
                        "client_id": credentials.client_id, "client_secret": "wrong"})),
            &[],
        )
        .await;
    token.expect(401);
    assert_eq!(token.header("x-ratelimit-limit"), Some("20"));
    assert!(token.header("x-ratelimit-remaining").is_some());
}

async fn not_modified() {
    let api = admin().await;
    let path = register_individual(&api, &unique("NM")).await;
    let read = api.get(&path).await;
    read.expect(200);
    let etag = read.header("etag").unwrap().to_owned();
    for held in [etag.clone(), format!("W/{etag}"), format!("\"0\", {etag}")] {
        let reply = api
            .send(Method::GET, &path, None, &[("if-none-match", &held)])
            .await;
        assert_eq!(reply.status, 304, "{held}: {}", reply.text);
        assert!(reply.text.is_empty());
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
        assert_eq!(reply.header("x-api-version"), Some("2.0.0"));
    }
    let stale = api
        .send(Method::GET, &path, None, &[("if-none-match", "\"0\"")])
        .await;
    stale.expect(200);
    assert_eq!(stale.body["identifier"], read.body["identifier"]);
}

async fn openapi_info() {
    let reply = base().get("/api/v2/spp/openapi.json").await;
    reply.expect(200);
    let info = &reply.body["info"];
    assert_eq!(info["title"], "OpenSPP API V2 (event-sourced)");
    assert_eq!(info["version"], "2.0.0");
    assert_eq!(info["license"]["name"], "Apache-2.0");
    assert!(info["description"].as_str().unwrap().contains("OpenSPP"));
    assert!(!info.to_string().contains("utoipa"), "{info}");
    assert!(!info.to_string().contains("Kukkonen"), "{info}");
    for (path, method) in [
        ("/api/v2/spp/docs", "get"),
        ("/api/v2/spp/redoc", "get"),
        ("/api/v2/spp/docs/redoc.standalone.js", "get"),
        ("/api/v2/spp/Individual/_filters", "get"),
        ("/api/v2/spp/Group/_filters", "get"),
        ("/api/v2/spp/Program/_filters", "get"),
        ("/api/v2/spp/ProgramMembership/_filters", "get"),
    ] {
        assert!(
            reply.body["paths"][path][method].is_object(),
            "{method} {path}"
        );
    }
}

async fn docs_page() {
    let api = base();
    for page in ["/api/v2/spp/docs", "/api/v2/spp/redoc"] {
        let reply = api.get(page).await;
        reply.expect(200);
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        assert!(reply
            .text
            .contains("<script src=\"/api/v2/spp/docs/redoc.standalone.js\">"));
        assert!(reply.text.contains("spec-url=\"/api/v2/spp/openapi.json\""));
        assert!(!reply.text.contains("http://") && !reply.text.contains("https://"));
        let policy = reply.header("content-security-policy").unwrap();
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    }
    let script = api.get("/api/v2/spp/docs/redoc.standalone.js").await;
    script.expect(200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text.len() > 500_000 && script.text.contains("Redoc"));
}

fn individual_values(reply: &crate::support::Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["identifier"][0]["value"].as_str().unwrap().to_owned())
        .collect()
}

async fn by_group_and_role() {
    let api = admin().await;
    let (head, child, outsider) = (unique("GH"), unique("GC"), unique("GO"));
    for id in [&head, &child, &outsider] {
        register_individual(&api, id).await;
    }
    let (household, _) = new_group(
        &api,
        json!([member(&head, "head"), member(&child, "child")]),
    )
    .await;
    let reference = format!("Group/{GROUP_SYSTEM}|{household}");
    // OpenSPP's request: `group=Group/{system}|{value}`.
    let reply = api
        .get(&format!("/api/v2/spp/Individual?group={reference}"))
        .await;
    reply.expect(200);
    let mut found = individual_values(&reply);
    found.sort();
    let mut expected = vec![head.clone(), child.clone()];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(reply.body["meta"]["total"], 2);
    // The bare identifier too, with a role.
    let reply = api
        .get(&format!(
            "/api/v2/spp/Individual?group={GROUP_SYSTEM}|{household}&membership-role=head"
        ))
        .await;
    reply.expect(200);
    assert_eq!(individual_values(&reply), vec![head.clone()]);
    let reply = api
        .get(&format!(
            "/api/v2/spp/Individual?group={reference}&membership-role=urn:openspp:vocab:group-membership-type|child"
        ))
        .await;
    assert_eq!(individual_values(&reply), vec![child.clone()]);
    // An unknown group matches nothing; a role of another vocabulary is malformed.
    let reply = api
        .get(&format!(
            "/api/v2/spp/Individual?group=Group/{GROUP_SYSTEM}|{}",
            unique("NONE")
        ))
        .await;
    reply.expect(200);
    assert_eq!(reply.body["meta"]["total"], 0);
    let reply = api
        .get("/api/v2/spp/Individual?membership-role=urn:iso:std:iso:5218|1")
        .await;
    reply.expect(400);
    assert_eq!(reply.body["issue"][0]["expression"][0], "membership-role");
    let reply = api.get("/api/v2/spp/Individual?group=nobar").await;
    reply.expect(400);
}

async fn by_type_and_member() {
    let api = admin().await;
    let person = unique("TM");
    register_individual(&api, &person).await;
    let (household, _) = new_group(&api, json!([member(&person, "head")])).await;
    // OpenSPP's request: `type=household&member=Individual/{system}|{value}`.
    let query = format!(
        "/api/v2/spp/Group?type=household&member=Individual/{}|{person}",
        NATIONAL_ID.replace('#', "%23")
    );
    let reply = api.get(&query).await;
    reply.expect(200);
    assert_eq!(reply.body["meta"]["total"], 1);
    assert_eq!(reply.body["data"][0]["identifier"][0]["value"], household);
    let reply = api
        .get(&format!(
            "/api/v2/spp/Group?type=organization&member=Individual/{}|{person}",
            NATIONAL_ID.replace('#', "%23")
        ))
        .await;
    assert_eq!(reply.body["meta"]["total"], 0);
    api.get("/api/v2/spp/Group?type=household&groupType=household")
        .await
        .expect(400);
}

/// A consent-bound client finds individuals by a household only if it may see that
/// household's members, and households by a member only if it may see that member.
async fn household_filters_under_consent() {
    let api = admin().await;
    let organization = unique("Org");
    let person = unique("CP");
    register_individual(&api, &person).await;
    let (household, _) = new_group(&api, json!([member(&person, "head")])).await;
    let person_ref = format!("Individual/{NATIONAL_ID}|{person}");
    give_consent(&api, &person_ref, &organization, "individual", Value::Null).await;
    let ngo = base()
        .login(&consent_client(
            &world().database_url,
            &organization,
            "ngo",
            &["individual:read", "group:read"],
        ))
        .await;
    let by_group = format!("/api/v2/spp/Individual?group=Group/{GROUP_SYSTEM}|{household}");
    let reply = ngo.get(&by_group).await;
    reply.expect(200);
    assert_eq!(
        reply.body["meta"]["total"], 0,
        "the household is not consented"
    );
    let by_member = format!(
        "/api/v2/spp/Group?member=Individual/{}|{person}",
        NATIONAL_ID.replace('#', "%23")
    );
    assert_eq!(ngo.get(&by_member).await.body["meta"]["total"], 0);
    // Once the household consents (its members too), both searches find them.
    give_consent(
        &api,
        &format!("Group/{GROUP_SYSTEM}|{household}"),
        &organization,
        "group",
        Value::Null,
    )
    .await;
    assert_eq!(ngo.get(&by_group).await.body["meta"]["total"], 1);
    assert_eq!(ngo.get(&by_member).await.body["meta"]["total"], 1);
}

async fn elements() {
    let api = admin().await;
    let id = unique("EL");
    let path = register_individual(&api, &id).await;
    let reply = api.get(&format!("{path}?_elements=name,birthDate")).await;
    reply.expect(200);
    let mut keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["birthDate", "identifier", "meta", "name", "type"]);
    let reply = api
        .get(&format!(
            "/api/v2/spp/Individual?identifier={}&_elements=gender",
            path_id(NATIONAL_ID, &id)
        ))
        .await;
    reply.expect(200);
    let found = &reply.body["data"][0];
    assert!(found["gender"].is_object());
    assert!(found.get("name").is_none() && found.get("birthDate").is_none());
    api.get(&format!("{path}?_elements=,")).await.expect(400);
}

async fn filters() {
    let api = admin().await;
    for (resource, probe) in [
        ("Individual", "name=x"),
        ("Group", "type=household"),
        ("Program", "status=active"),
        ("ProgramMembership", "status=enrolled"),
    ] {
        let reply = api.get(&format!("/api/v2/spp/{resource}/_filters")).await;
        reply.expect(200);
        assert_eq!(reply.body["resource"], resource);
        assert!(reply.body["presets"].is_array());
        let filters = reply.body["filters"].as_array().unwrap();
        assert!(!filters.is_empty());
        for filter in filters {
            assert!(filter["allowed_operators"]
                .as_array()
                .is_some_and(|o| !o.is_empty()));
            assert!(filter["filter_type"].is_string() && filter["label"].is_string());
        }
        // Every filter named is one the search takes (a probe value of each kind is not a
        // 400 "unknown search parameter").
        for filter in filters {
            let name = filter["name"].as_str().unwrap();
            let value = match filter["filter_type"].as_str().unwrap() {
                "range" => "ge2020-01-01".to_owned(),
                "boolean" => "true".to_owned(),
                "reference" => match name {
                    "group" => format!("Group/{GROUP_SYSTEM}|x"),
                    "program" => "Program/urn:openspp:program|x".to_owned(),
                    _ => format!("Individual/{}|x", NATIONAL_ID.replace('#', "%23")),
                },
                _ => match (resource, name) {
                    (_, "identifier") => format!("{}|x", NATIONAL_ID.replace('#', "%23")),
                    ("Program", "status") => "active".to_owned(),
                    ("Program", "targetType") => "individual".to_owned(),
                    ("ProgramMembership", "status") => "enrolled".to_owned(),
                    (_, "type" | "groupType") => "household".to_owned(),
                    (_, "gender") => "2".to_owned(),
                    (_, "membership-role") => "head".to_owned(),
                    _ => "x".to_owned(),
                },
            };
            let reply = api
                .get(&format!("/api/v2/spp/{resource}?{name}={value}"))
                .await;
            assert_eq!(
                reply.status, 200,
                "{resource}?{name}={value}: {}",
                reply.text
            );
        }
        api.get(&format!("/api/v2/spp/{resource}?{probe}"))
            .await
            .expect(200);
    }
    let stranger = base().login(&scoped(&["consent:read"])).await;
    stranger
        .get("/api/v2/spp/Individual/_filters")
        .await
        .expect(403);
}

fn entry_values(reply: &crate::support::Reply) -> Vec<String> {
    let mut values: Vec<String> = reply.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["identifier"][0]["value"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    values.sort();
    values
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

/// OpenSPP's `SearchRequest`, as its clients send it.
async fn advanced_search() {
    let api = admin().await;
    let (a, b, c) = (unique("SA"), unique("SB"), unique("SC"));
    for id in [&a, &b, &c] {
        register_individual(&api, id).await;
    }
    new_group(&api, json!([member(&a, "head"), member(&b, "child")])).await;
    let id = |value: &str| json!({"field": "identifier", "operator": "eq", "value": format!("{NATIONAL_ID}|{value}")});
    // OR.
    let reply = api
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"filters": [{"logic": "OR", "conditions": [id(&a), id(&b)]}]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["resourceType"], "Bundle");
    assert_eq!(reply.body["type"], "searchset");
    assert_eq!(reply.body["total"], 2);
    assert_eq!(entry_values(&reply), sorted(vec![a.clone(), b.clone()]));
    assert_eq!(reply.body["entry"][0]["search"]["mode"], "match");
    // AND: A is a woman (gender 2), not a man.
    let reply = api
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"filter_logic": "AND", "filters": [id(&a), {"field": "gender", "value": "1"}]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["total"], 0);
    // `in`, a date range, sort and paging: two of them, one per page.
    let body = json!({
        "filters": [
            {"field": "identifier", "operator": "in",
             "value": [format!("{NATIONAL_ID}|{a}"), format!("{NATIONAL_ID}|{c}")]},
            {"field": "birthdate", "operator": "gte", "value": "1985-03-15"}],
        "sort": [{"field": "birthdate", "direction": "desc"}],
        "pagination": {"count": 1, "offset": 0}});
    let first = api
        .post("/api/v2/spp/Individual/_search", body.clone())
        .await;
    first.expect(200);
    assert_eq!(first.body["total"], 2);
    assert_eq!(first.body["entry"].as_array().unwrap().len(), 1);
    let next = first.body["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("a next link")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = api.post(&next, body).await;
    second.expect(200);
    let mut both = entry_values(&first);
    both.extend(entry_values(&second));
    assert_eq!(sorted(both), sorted(vec![a.clone(), c.clone()]));
    // A preset ANDed with additional filters: of A and B only A heads a household.
    let reply = api
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"preset": "household-heads",
                   "additional_filters": [{"logic": "OR", "conditions": [id(&a), id(&b)]}]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(entry_values(&reply), vec![a.clone()]);
    // The other resources, with their presets.
    for resource in ["Group", "Program", "ProgramMembership"] {
        let filters = api.get(&format!("/api/v2/spp/{resource}/_filters")).await;
        let preset = filters.body["presets"][0]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        api.post(
            &format!("/api/v2/spp/{resource}/_search"),
            json!({"preset": preset, "pagination": {"count": 5}}),
        )
        .await
        .expect(200);
    }
    // Malformed requests are 400 naming where.
    for (body, at) in [
        (
            json!({"filters": [{"field": "salary", "value": 1}]}),
            "filters[0].field",
        ),
        (
            json!({"filters": [{"field": "gender", "operator": "gt", "value": "1"}]}),
            "filters[0].operator",
        ),
        (json!({"preset": "nope"}), "preset"),
        (json!({"pagination": {"count": 101}}), "pagination"),
        (json!({"sort": [{"field": "salary"}]}), "_sort"),
    ] {
        let reply = api
            .post("/api/v2/spp/Individual/_search", body.clone())
            .await;
        reply.expect(400);
        assert_eq!(reply.body["issue"][0]["expression"][0], at, "{body}");
    }
    let reply = api
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"filters": [], "bogus": 1}),
        )
        .await;
    reply.expect(422);
    assert!(reply.text.contains("bogus"), "{}", reply.text);
    // A list where an object belongs is not taken for the object's fields.
    let reply = api
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"pagination": [10, 0]}),
        )
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "pagination");
    // The scope is checked before the body is read.
    let stranger = base().login(&scoped(&["consent:read"])).await;
    stranger
        .post("/api/v2/spp/Individual/_search", json!([]))
        .await
        .expect(403);
}

/// A field a consent hides is never a filter of an advanced search either, and subjects
/// without consent are never counted.
async fn advanced_search_under_consent() {
    let api = admin().await;
    let organization = unique("Org");
    let (shown, hidden, stranger) = (unique("VS"), unique("VH"), unique("VX"));
    for id in [&shown, &hidden, &stranger] {
        register_individual(&api, id).await;
    }
    give_consent(
        &api,
        &format!("Individual/{NATIONAL_ID}|{shown}"),
        &organization,
        "individual",
        json!(["name", "birthDate"]),
    )
    .await;
    give_consent(
        &api,
        &format!("Individual/{NATIONAL_ID}|{hidden}"),
        &organization,
        "individual",
        json!(["name"]),
    )
    .await;
    let ngo = base()
        .login(&consent_client(
            &world().database_url,
            &organization,
            "ngo",
            &["individual:read"],
        ))
        .await;
    let any_of = json!([
        {"field": "identifier", "value": format!("{NATIONAL_ID}|{shown}")},
        {"field": "identifier", "value": format!("{NATIONAL_ID}|{hidden}")},
        {"field": "identifier", "value": format!("{NATIONAL_ID}|{stranger}")}]);
    let reply = ngo
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"filter_logic": "OR", "filters": any_of}),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["total"], 2, "the unconsented one is not counted");
    assert_eq!(
        entry_values(&reply),
        sorted(vec![shown.clone(), hidden.clone()])
    );
    // Filtering on the birth date counts only whom the consent shows it of.
    let reply = ngo
        .post(
            "/api/v2/spp/Individual/_search",
            json!({"filters": [
                {"logic": "OR", "conditions": any_of},
                {"field": "birthDate", "operator": "lte", "value": "2000-01-01"}]}),
        )
        .await;
    reply.expect(200);
    assert_eq!(entry_values(&reply), vec![shown.clone()]);
    assert_eq!(reply.body["total"], 1);
    // Entries show only consented fields.
    let entry = &reply.body["entry"][0]["resource"];
    assert!(entry["name"].is_object() && entry.get("gender").is_none());
}

/// OpenSPP's Program search: `type`, `identifier` and `_lastId` cursor paging, whose `next`
/// link names the last program of the page (never an internal id) and which has no `prev`.
async fn program_cursor() {
    let api = admin().await;
    let prefix = unique("Cursor");
    for n in 0..3 {
        api.post(
            "/api/v2/spp/Program",
            json!({"name": format!("{prefix} {n}"), "targetType": "individual", "currency": "PHP"}),
        )
        .await
        .expect(201);
    }
    let all = api
        .get(&format!("/api/v2/spp/Program?name={prefix}&_count=100"))
        .await;
    all.expect(200);
    assert_eq!(all.body["meta"]["total"], 3);
    let key = |program: &Value| {
        format!(
            "{}|{}",
            program["identifier"][0]["system"].as_str().unwrap(),
            program["identifier"][0]["value"].as_str().unwrap()
        )
    };
    let keys: Vec<String> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let encode = |k: &str| k.replace('#', "%23");
    // Each program as a cursor: the totals after each are 0, 1 and 2.
    let mut totals = Vec::new();
    let mut first = None;
    for k in &keys {
        let reply = api
            .get(&format!(
                "/api/v2/spp/Program?name={prefix}&_count=1&_lastId={}",
                encode(k)
            ))
            .await;
        reply.expect(200);
        assert!(reply.body["links"]["prev"].is_null());
        let total = reply.body["meta"]["total"].as_i64().unwrap();
        if total == 2 {
            first = Some(reply);
        }
        totals.push(total);
    }
    totals.sort();
    assert_eq!(totals, [0, 1, 2]);
    // Following `next` from the first program visits the other two, one per page.
    let mut page = first.expect("a cursor with two after it");
    let mut visited = vec![key(&page.body["data"][0])];
    while let Some(next) = page.body["links"]["next"].as_str().map(str::to_owned) {
        assert!(
            next.contains("_lastId=") && !next.contains("_offset"),
            "{next}"
        );
        page = api.get(&next).await;
        page.expect(200);
        visited.push(key(&page.body["data"][0]));
    }
    assert_eq!(visited.len(), 2, "{visited:?}");
    assert!(visited.iter().all(|v| keys.contains(v)));
    assert_ne!(visited[0], visited[1]);
    // Cursor paging is in the server's order, so neither `_sort` nor `_offset` goes with it.
    let cursor = encode(&keys[0]);
    for extra in ["&_sort=name", "&_offset=1"] {
        api.get(&format!("/api/v2/spp/Program?_lastId={cursor}{extra}"))
            .await
            .expect(400);
    }
    let reply = api
        .get("/api/v2/spp/Program?_lastId=urn:openspp:program|no-such-program")
        .await;
    reply.expect(400);
    assert_eq!(reply.body["issue"][0]["expression"][0], "_lastId");
    // `type` (every program here is social protection) and `identifier` (the name alias).
    let typed = api
        .get(&format!(
            "/api/v2/spp/Program?name={prefix}&type=social-protection"
        ))
        .await;
    assert_eq!(typed.body["meta"]["total"], 3);
    let other = api
        .get(&format!(
            "/api/v2/spp/Program?name={prefix}&type=urn:openspp:vocab:program-type|humanitarian"
        ))
        .await;
    other.expect(200);
    assert_eq!(other.body["meta"]["total"], 0);
    let by_identifier = api
        .get(&format!(
            "/api/v2/spp/Program?identifier={}",
            encode(&keys[1])
        ))
        .await;
    assert_eq!(by_identifier.body["meta"]["total"], 1);
    assert_eq!(key(&by_identifier.body["data"][0]), keys[1]);
}
