//! GraphQL for analysts (CONTRACT §7), over HTTP against the real server: single reads and
//! connections with REST's filters, the links between resources, consent field by field, the
//! access log, scopes, the abuse limits, and batch loading measured in statements.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::{consent_body, give_consent};
use crate::extension::with_extension;
use crate::extension_fields::{extension_of, FARMER_SCHEMA};
use crate::program::{enrol, new_program};
use crate::support::{
    admin, audit_event_where, consent_client, create_client, individual_body, register_individual,
    unique, world, Api, StatementLog, TestDatabase, NATIONAL_ID,
};
use crate::trial;

const PATH: &str = "/api/v2/graphql";
const GROUP_SYSTEM: &str = "urn:openspp:group";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "graphql::an_individual_with_its_groups_members_and_memberships",
            links,
        ),
        trial(
            "graphql::connections_page_by_cursor_with_rest_filters",
            connections,
        ),
        trial(
            "graphql::consent_hides_fields_as_null_and_they_cannot_be_filtered",
            consent_fields,
        ),
        trial(
            "graphql::every_query_is_access_logged_with_the_subjects_it_returned",
            access_logged,
        ),
        trial(
            "graphql::scopes_hold_field_by_field_and_a_token_is_required",
            scopes,
        ),
        trial(
            "graphql::abusive_queries_are_refused_quickly_with_an_error",
            limits,
        ),
        trial(
            "graphql::statistics_suppress_small_cells_and_their_complements",
            statistics,
        ),
        trial(
            "graphql::extension_data_is_shown_as_rest_shows_it_and_hidden_as_consent_hides_it",
            extensions,
        ),
        trial(
            "graphql::get_runs_queries_too",
            get_queries,
        ),
        trial(
            "graphql::a_page_of_100_individuals_with_their_groups_takes_a_fixed_number_of_statements",
            statements,
        ),
    ]
}

/// Runs `query` with `variables`; the whole GraphQL response.
async fn graphql(api: &Api, query: &str, variables: Value) -> Value {
    let reply = api
        .post(PATH, json!({"query": query, "variables": variables}))
        .await;
    reply.expect(200);
    reply.body
}

fn key(national_id: &str) -> String {
    format!("{NATIONAL_ID}|{national_id}")
}

/// Registers a household of `members`; returns its identifier value.
async fn household(api: &Api, members: &[&str]) -> String {
    let value = unique("GQH");
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({"entity": {"reference": format!("Individual/{}", key(m))},
                   "role": {"coding": [{"system": "urn:openspp:vocab:group-membership-type", "code": "member"}]}})
        })
        .collect();
    api.post(
        "/api/v2/spp/Group",
        json!({"identifier": [{"system": GROUP_SYSTEM, "value": value}], "groupType": "household",
               "name": "GraphQL household", "member": members}),
    )
    .await
    .expect(201);
    value
}

const LINKS: &str = r#"query($id: String!) {
  individual(identifier: $id) {
    identifier { system value }
    name { family given }
    birthDate
    gender { coding { system code } }
    meta { versionId }
    groups {
      identifier { value }
      groupType
      members { individual { identifier { value } } role { coding { code } } }
    }
    memberships {
      status
      program { name }
      beneficiary { __typename ... on Individual { identifier { value } } }
    }
  }
}"#;

async fn links() {
    let api = admin().await;
    let (person, partner) = (unique("GQL"), unique("GQL"));
    register_individual(&api, &person).await;
    register_individual(&api, &partner).await;
    let group = household(&api, &[&person, &partner]).await;
    let (program_name, program) = new_program(&api, "individual").await;
    enrol(&api, &program, &person, "enrolled").await.expect(201);

    let body = graphql(&api, LINKS, json!({"id": key(&person)})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let individual = &body["data"]["individual"];
    assert_eq!(individual["identifier"][0]["value"], person.as_str());
    assert_eq!(
        individual["name"],
        json!({"family": "Santos", "given": "Maria"})
    );
    assert_eq!(individual["birthDate"], "1985-03-15");
    assert_eq!(individual["gender"]["coding"][0]["code"], "2");
    let rest = api
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            key(&person).replace('#', "%23")
        ))
        .await;
    assert_eq!(
        individual["meta"]["versionId"],
        rest.body["meta"]["versionId"]
    );
    let groups = individual["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["identifier"][0]["value"], group.as_str());
    let members: Vec<&str> = groups[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["individual"]["identifier"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&person.as_str()) && members.contains(&partner.as_str()));
    assert_eq!(
        groups[0]["members"][0]["role"]["coding"][0]["code"],
        "member"
    );
    let memberships = individual["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0]["status"], "enrolled");
    assert_eq!(memberships[0]["program"]["name"], program_name.as_str());
    assert_eq!(memberships[0]["beneficiary"]["__typename"], "Individual");
    assert_eq!(
        memberships[0]["beneficiary"]["identifier"][0]["value"],
        person.as_str()
    );

    // The program's memberships are a connection; the unknown is null, as REST's 404.
    let body = graphql(
        &api,
        r#"query($p: String!) { program(identifier: $p) { name memberships(first: 5) {
              totalCount edges { node { status beneficiary { ... on Individual { birthDate } } } } } }
            individual(identifier: "urn:openspp:vocab:id-type#national_id|nobody-here") { birthDate } }"#,
        json!({"p": program}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["program"]["memberships"]["totalCount"], 1);
    assert_eq!(
        body["data"]["program"]["memberships"]["edges"][0]["node"]["beneficiary"]["birthDate"],
        "1985-03-15"
    );
    assert_eq!(body["data"]["individual"], Value::Null);
}

const PAGE: &str = r#"query($first: Int, $after: String, $filter: IndividualFilter) {
  individuals(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { identifier { value } birthDate } }
  }
}"#;

async fn connections() {
    let api = admin().await;
    let family = unique("Fam");
    let mut ids = Vec::new();
    for (i, birth) in ["1990-01-01", "1995-06-01", "2001-02-03"]
        .iter()
        .enumerate()
    {
        let id = unique(&format!("GQC{i}"));
        let mut body = individual_body(&id);
        body["name"]["family"] = json!(family);
        body["birthDate"] = json!(birth);
        api.post("/api/v2/spp/Individual", body).await.expect(201);
        ids.push(id);
    }
    let filter = json!({"name": family, "_sort": "birthdate"});
    let first = graphql(&api, PAGE, json!({"first": 2, "filter": filter})).await;
    assert!(first.get("errors").is_none(), "{first}");
    let page = &first["data"]["individuals"];
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["edges"].as_array().unwrap().len(), 2);
    assert_eq!(page["edges"][0]["node"]["birthDate"], "1990-01-01");
    let after = page["pageInfo"]["endCursor"].as_str().unwrap();
    let second = graphql(
        &api,
        PAGE,
        json!({"first": 2, "after": after, "filter": filter}),
    )
    .await;
    let page = &second["data"]["individuals"];
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let edges = page["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["identifier"][0]["value"], ids[2].as_str());

    // REST's parameters and values: prefixed dates, ISO 5218 gender.
    let filtered = graphql(
        &api,
        PAGE,
        json!({"filter": {"name": family, "birthdate": ["ge1995-01-01", "lt2001-01-01"], "gender": "2"}}),
    )
    .await;
    assert_eq!(filtered["data"]["individuals"]["totalCount"], 1);
    assert_eq!(
        filtered["data"]["individuals"]["edges"][0]["node"]["identifier"][0]["value"],
        ids[1].as_str()
    );
    // A malformed value is refused naming the parameter, as REST's 400.
    let bad = graphql(&api, PAGE, json!({"filter": {"birthdate": "yesterday"}})).await;
    assert_eq!(
        bad["errors"][0]["extensions"]["field"], "birthdate",
        "{bad}"
    );
    assert_eq!(bad["errors"][0]["extensions"]["status"], 400);
    let bad = graphql(&api, PAGE, json!({"after": "not-a-cursor"})).await;
    assert_eq!(bad["errors"][0]["extensions"]["field"], "after", "{bad}");
}

async fn consent_fields() {
    let admin = admin().await;
    let organization = unique("GQOrg");
    let credentials = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["individual:read", "individual:search", "group:read"],
    );
    let client = Api::new(&world().base).login(&credentials).await;
    let family = unique("Hid");
    let (seen, unseen) = (unique("GQS"), unique("GQU"));
    for id in [&seen, &unseen] {
        let mut body = individual_body(id);
        body["name"]["family"] = json!(family);
        admin.post("/api/v2/spp/Individual", body).await.expect(201);
    }
    give_consent(
        &admin,
        &format!("Individual/{}", key(&seen)),
        &organization,
        "individual",
        json!(["name"]),
    )
    .await;

    let query = r#"query($id: String!, $filter: IndividualFilter) {
      individual(identifier: $id) { identifier { value } name { family } birthDate gender { coding { code } } }
      individuals(filter: $filter) { totalCount edges { node { identifier { value } birthDate } } } }"#;
    let body = graphql(
        &client,
        query,
        json!({"id": key(&seen), "filter": {"name": family}}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    let individual = &body["data"]["individual"];
    assert_eq!(individual["name"]["family"], family.as_str());
    assert_eq!(individual["birthDate"], Value::Null);
    assert_eq!(individual["gender"], Value::Null);
    // Only the consented subject is found, and its hidden field is null there too.
    let page = &body["data"]["individuals"];
    assert_eq!(page["totalCount"], 1);
    assert_eq!(page["edges"][0]["node"]["birthDate"], Value::Null);

    // A hidden field cannot be filtered on: no subject is admitted by it, so nothing can be
    // learnt of it by counting (the admin sees the match).
    let by_birth = json!({"id": key(&seen), "filter": {"name": family, "birthdate": "1985-03-15"}});
    let hidden = graphql(&client, query, by_birth.clone()).await;
    assert_eq!(hidden["data"]["individuals"]["totalCount"], 0, "{hidden}");
    let open = graphql(&admin, query, by_birth).await;
    assert_eq!(open["data"]["individuals"]["totalCount"], 2);

    // The unconsented subject is as unknown as one that does not exist.
    let body = graphql(&client, query, json!({"id": key(&unseen)})).await;
    assert_eq!(body["data"]["individual"], Value::Null);
}

async fn access_logged() {
    let api = admin().await;
    let id = unique("GQA");
    register_individual(&api, &id).await;
    let group = household(&api, &[&id]).await;
    let body = graphql(
        &api,
        r#"query($id: String!) { individual(identifier: $id) { groups { identifier { value } } } }"#,
        json!({"id": key(&id)}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    for subject in [
        format!("Individual/{}", key(&id)),
        format!("Group/{GROUP_SYSTEM}|{group}"),
    ] {
        let query = format!("subject={}", subject.replace('#', "%23"));
        let entry = audit_event_where(&api, &query, |e| e["subtype"] == "graphql").await;
        assert_eq!(entry["outcome"], "200", "{entry}");
    }
}

async fn scopes() {
    let credentials = create_client(&world().database_url, &["--scope", "individual:read"]);
    let reader = Api::new(&world().base).login(&credentials).await;
    let admin = admin().await;
    let id = unique("GQP");
    register_individual(&admin, &id).await;
    household(&admin, &[&id]).await;
    let body = graphql(
        &reader,
        r#"query($id: String!) { individual(identifier: $id) { birthDate groups { name } } programs { totalCount } }"#,
        json!({"id": key(&id)}),
    )
    .await;
    assert_eq!(
        body["data"]["individual"]["birthDate"], "1985-03-15",
        "{body}"
    );
    assert_eq!(body["data"]["individual"]["groups"], Value::Null);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert!(errors.iter().all(|e| e["extensions"]["status"] == 403));

    let anonymous = Api::new(&world().base);
    anonymous
        .post(PATH, json!({"query": "{ programs { totalCount } }"}))
        .await
        .expect(401);
}

async fn limits() {
    let api = admin().await;
    // Deep but cheap (one node per level), and shallow but costly.
    let too_deep = r#"{ programMembership(identifier: "urn:x|y") { beneficiary { ... on Individual {
        memberships { program { memberships(first: 1) { edges { node { program {
        memberships(first: 1) { edges { node { status } } } } } } } } } } } } }"#;
    let too_wide = r#"{ individuals(first: 100) { edges { node { memberships { program {
        memberships(first: 100) { totalCount } } } } } } }"#;
    for (query, words) in [
        (too_deep, "nested too deep"),
        (too_wide, "complex"),
        ("{ individuals(first: 101) { totalCount } }", "first"),
        ("{ individuals(first: 0) { totalCount } }", "first"),
    ] {
        let started = Instant::now();
        let body = graphql(&api, query, json!({})).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{query}: {body}");
    }
    // A body over the limit is refused before it is read, as REST refuses one.
    let padding = " ".repeat(70 * 1024);
    let reply = api
        .post(
            PATH,
            json!({"query": format!("{{ individuals(first: 1) {{ totalCount }} }}{padding}")}),
        )
        .await;
    reply.expect(413);
    assert_eq!(
        reply.body["resourceType"], "OperationOutcome",
        "{}",
        reply.text
    );
}

async fn get_queries() {
    let api = admin().await;
    let reply = api
        .get(&format!(
            "{PATH}?query=%7B%20programs%20%7B%20totalCount%20%7D%20%7D"
        ))
        .await;
    reply.expect(200);
    assert!(
        reply.body["data"]["programs"]["totalCount"]
            .as_i64()
            .is_some(),
        "{}",
        reply.text
    );
}

async fn statements() {
    let database = TestDatabase::create("openspp_gql_n1");
    let logged = StatementLog::start(&database.url);
    let server = &logged.server;
    let mut scopes = Vec::new();
    for scope in ["individual:all", "group:all"] {
        scopes.extend(["--scope", scope]);
    }
    let credentials = create_client(&database.url, &scopes);
    let api = Api::new(&server.base).login(&credentials).await;
    let mut people = Vec::new();
    for _ in 0..100 {
        let id = unique("GQN");
        register_individual(&api, &id).await;
        people.push(id);
    }
    for pair in people.chunks(2) {
        let members: Vec<&str> = pair.iter().map(String::as_str).collect();
        household(&api, &members).await;
    }
    let query = r#"query($first: Int) { individuals(first: $first) { totalCount edges { node {
        identifier { value } name { family } groups { identifier { value } name } } } } }"#;
    let mut counts = Vec::new();
    for (first, marker) in [(10, "gqlprobe10"), (100, "gqlprobe100")] {
        let reply = api
            .post(
                &format!("{PATH}?{marker}"),
                json!({"query": query, "variables": {"first": first}}),
            )
            .await;
        reply.expect(200);
        assert!(reply.body.get("errors").is_none(), "{}", reply.text);
        let edges = reply.body["data"]["individuals"]["edges"]
            .as_array()
            .unwrap();
        assert_eq!(edges.len(), first);
        assert!(edges
            .iter()
            .all(|e| e["node"]["groups"].as_array().unwrap().len() == 1));
        counts.push(logged.statements(marker).await);
    }
    assert!(counts[0] > 0, "no statements logged");
    assert_eq!(
        counts[0], counts[1],
        "a page of 100 takes as many statements as a page of 10"
    );
    assert!(counts[1] <= 12, "{} statements for one page", counts[1]);
}

const STATISTICS: &str = r#"query($program: String!) {
  statistics(dimensions: [GENDER], filter: {program: $program}) {
    total minCellSize cells { key count suppressed } } }"#;

/// Enrols 12 women, 6 men and 3 people of gender 9 in a new individual program: a table with
/// one small cell (3) whose smallest complement is 6. Returns the program's identifier and six
/// of the women (to consent for analytics).
pub async fn counted_population(admin: &Api, prefix: &str) -> (String, Vec<String>) {
    let (_, program) = new_program(admin, "individual").await;
    let mut six_women = Vec::new();
    for (gender, how_many) in [("2", 12), ("1", 6), ("9", 3)] {
        for n in 0..how_many {
            let id = unique(prefix);
            let mut body = individual_body(&id);
            body["gender"]["coding"][0]["code"] = json!(gender);
            admin.post("/api/v2/spp/Individual", body).await.expect(201);
            enrol(admin, &program, &id, "enrolled").await.expect(201);
            if gender == "2" && n < 6 {
                six_women.push(id);
            }
        }
    }
    (program, six_women)
}

/// A consent of person `id` for `organization`: their record for `record_purpose`, their
/// program memberships for `membership_purpose` (a count of memberships asks the latter).
pub fn counting_consent(
    id: &str,
    organization: &str,
    record_purpose: &str,
    membership_purpose: &str,
) -> Value {
    let mut consent = consent_body(
        &format!("Individual/{}", key(id)),
        "specific",
        &[organization],
        &[],
    );
    consent["scopes"] = json!([
        {"resource_type": "individual", "field_access": null, "purpose": record_purpose},
        {"resource_type": "program_membership", "field_access": null,
         "purpose": membership_purpose},
    ]);
    consent
}

async fn statistics() {
    let admin = admin().await;
    let organization = unique("GQStat");
    let (program, analysts_may_count) = counted_population(&admin, "GQT").await;
    let credentials = create_client(&world().database_url, &["--scope", "statistics:read"]);
    let analyst = Api::new(&world().base).login(&credentials).await;
    let body = graphql(&analyst, STATISTICS, json!({"program": program})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let statistics = &body["data"]["statistics"];
    assert_eq!(statistics["total"], 21);
    assert_eq!(statistics["minCellSize"], 5);
    assert_eq!(
        statistics["cells"],
        json!([
            {"key": ["1"], "count": null, "suppressed": true},
            {"key": ["2"], "count": 12, "suppressed": false},
            {"key": ["9"], "count": null, "suppressed": true},
        ]),
        "the small cell (3) and its smallest complement (6) are hidden"
    );

    // A consent-bound client counts only subjects consented for analytics or research.
    for id in &analysts_may_count {
        let consent = counting_consent(id, &organization, "analytics", "analytics");
        admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    }
    let bound = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["statistics:read"],
    );
    let bound = Api::new(&world().base).login(&bound).await;
    let body = graphql(&bound, STATISTICS, json!({"program": program})).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["statistics"]["total"], 6);
    assert_eq!(
        body["data"]["statistics"]["cells"],
        json!([{"key": ["2"], "count": 6, "suppressed": false}])
    );

    // Without the scope: an error, no numbers.
    let body = graphql(&admin, STATISTICS, json!({"program": program})).await;
    assert_eq!(body["errors"][0]["extensions"]["status"], 403, "{body}");
}

const EXTENSIONS: &str = r#"query($id: String!, $group: String!, $only: [String!]) {
  individual(identifier: $id) { name { family } extension narrowed: extension(only: $only) }
  group(identifier: $group) { extension }
}"#;

/// Extension data (CONTRACT §8) through GraphQL: every registered extension of a registrant,
/// keyed and shaped as REST's `_extensions=*`; an extension a consent hides is absent, as on
/// REST, and all of them hidden is `null`.
async fn extensions() {
    let admin = admin().await;
    let (farmer, farmer_uri) = extension_of("farmer", "Individual", FARMER_SCHEMA);
    let (health, health_uri) = extension_of(
        "health",
        "Individual",
        r#"{"type": "object", "properties": {"condition": {"type": "string"}}}"#,
    );
    let (rooms, rooms_uri) = extension_of(
        "dwelling",
        "Group",
        r#"{"type": "object", "properties": {"rooms": {"type": "integer"}}}"#,
    );
    let id = unique("GQX");
    admin
        .post(
            "/api/v2/spp/Individual",
            with_extension(
                &id,
                json!({farmer.clone(): {"farm_size": 3}, health.clone(): {"condition": "diabetes"}}),
            ),
        )
        .await
        .expect(201);
    let group = unique("GQXG");
    admin
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": GROUP_SYSTEM, "value": group}], "groupType": "household",
                   "name": "Dwelling", "extension": {rooms.clone(): {"rooms": 4}}}),
        )
        .await
        .expect(201);
    let farm = json!({farmer.clone(): {"url": farmer_uri, "farm_size": 3}});
    let variables = |only: &[&str]| json!({"id": key(&id), "group": format!("{GROUP_SYSTEM}|{group}"), "only": only});

    let body = graphql(&admin, EXTENSIONS, variables(&[&health_uri])).await;
    assert!(body.get("errors").is_none(), "{body}");
    let shown = &body["data"]["individual"];
    assert_eq!(shown["extension"][&farmer], farm[&farmer]);
    assert_eq!(
        shown["extension"][&health],
        json!({"url": health_uri, "condition": "diabetes"})
    );
    assert_eq!(
        shown["narrowed"],
        json!({health.clone(): {"url": health_uri, "condition": "diabetes"}}),
        "`only` takes a URI as `_extensions` does"
    );
    assert_eq!(
        body["data"]["group"]["extension"],
        json!({rooms.clone(): {"url": rooms_uri, "rooms": 4}})
    );
    let unknown = graphql(&admin, EXTENSIONS, variables(&["nosuch"])).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["field"], "only",
        "{unknown}"
    );

    // A consent that shows the name and the farmer's extension only.
    let organization = unique("GQXOrg");
    give_consent(
        &admin,
        &format!("Individual/{}", key(&id)),
        &organization,
        "individual",
        json!(["name", format!("extension.{farmer}")]),
    )
    .await;
    let credentials = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["individual:read", "group:read"],
    );
    let client = Api::new(&world().base).login(&credentials).await;
    let body = graphql(&client, EXTENSIONS, variables(&[&farmer])).await;
    let seen = &body["data"]["individual"];
    assert_eq!(seen["extension"], farm, "{body}");
    assert_eq!(seen["narrowed"], farm);
    assert!(!body.to_string().contains("diabetes"), "{body}");
    assert!(!body.to_string().contains(&health_uri), "{body}");

    // A consent that shows no extension: `extension` is null.
    let other = unique("GQXOrg");
    give_consent(
        &admin,
        &format!("Individual/{}", key(&id)),
        &other,
        "individual",
        json!(["name"]),
    )
    .await;
    let credentials = consent_client(&world().database_url, &other, "ngo", &["individual:read"]);
    let client = Api::new(&world().base).login(&credentials).await;
    let body = graphql(
        &client,
        r#"query($id: String!) { individual(identifier: $id) { name { family } extension } }"#,
        json!({"id": key(&id)}),
    )
    .await;
    assert!(
        body["data"]["individual"]["name"]["family"].is_string(),
        "{body}"
    );
    assert_eq!(
        body["data"]["individual"]["extension"],
        Value::Null,
        "{body}"
    );
}
