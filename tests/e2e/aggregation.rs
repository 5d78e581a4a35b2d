//! OpenSPP's aggregation API (`POST /aggregation/compute`, `GET /aggregation/dimensions`, scope
//! `aggregation:read`) over HTTP: the same engine as GraphQL's `statistics`, so the same counts
//! and the same suppressed cells, in OpenSPP's shapes; consent-bound clients count only
//! subjects consented for analytics; what cannot be answered truthfully is refused naming the
//! field.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::consent_body;
use crate::graphql::{counted_population, counting_consent};
use crate::program::{enrol, new_program};
use crate::support::{
    admin, consent_client, create_client, individual_body, path_id, unique, world, Api, NATIONAL_ID,
};
use crate::trial;

const COMPUTE: &str = "/api/v2/spp/aggregation/compute";
const DIMENSIONS: &str = "/api/v2/spp/aggregation/dimensions";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "aggregation::compute_counts_and_suppresses_as_graphql_statistics_do",
            compute,
        ),
        trial(
            "aggregation::compute_refuses_what_it_cannot_answer_naming_the_field",
            refusals,
        ),
        trial(
            "aggregation::dimensions_lists_what_group_by_takes",
            dimensions,
        ),
        trial(
            "aggregation::membership_counts_follow_the_beneficiary_s_facts",
            facts_followed,
        ),
    ]
}

fn expression(reply: &crate::support::Reply) -> String {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn analyst_scopes() -> Vec<&'static str> {
    vec!["--scope", "aggregation:read", "--scope", "statistics:read"]
}

async fn compute() {
    let admin = admin().await;
    let organization = unique("AggOrg");
    let (program, consented) = counted_population(&admin, "AGG").await;
    let analyst = Api::new(&world().base)
        .login(&create_client(&world().database_url, &analyst_scopes()))
        .await;
    let body = json!({"scope": {"target_type": "individual", "program": program},
                      "statistics": ["count"], "group_by": ["gender"]});
    let reply = analyst.post(COMPUTE, body.clone()).await;
    reply.expect(200);
    let answer = &reply.body;
    assert_eq!(answer["total_count"], 21, "{answer}");
    assert_eq!(
        answer["statistics"]["count"],
        json!({"value": 21, "suppressed": false})
    );
    assert_eq!(answer["access_level"], "aggregate");
    assert_eq!(answer["from_cache"], false);
    assert_eq!(answer["min_cell_size"], 5);
    assert!(answer["computed_at"].is_string());
    let hidden = json!({"value": null, "suppressed": true});
    assert_eq!(
        answer["breakdown"],
        json!({
            "1": {"count": null, "suppressed": true, "values": {"gender": "1"}, "statistics": {"count": hidden}},
            "2": {"count": 12, "suppressed": false, "values": {"gender": "2"},
                  "statistics": {"count": {"value": 12, "suppressed": false}}},
            "9": {"count": null, "suppressed": true, "values": {"gender": "9"}, "statistics": {"count": hidden}},
        }),
        "the small cell (3) and its smallest complement (6) are hidden"
    );

    // The same engine as GraphQL's statistics: the same cells.
    let graphql = analyst
        .post(
            "/api/v2/graphql",
            json!({"query": "query($p: String) { statistics(dimensions: [GENDER], filter: {program: $p}) { total cells { key count suppressed } } }",
                   "variables": {"p": program}}),
        )
        .await;
    graphql.expect(200);
    let statistics = &graphql.body["data"]["statistics"];
    assert_eq!(statistics["total"], answer["total_count"]);
    for cell in statistics["cells"].as_array().unwrap() {
        let key = cell["key"][0].as_str().unwrap();
        assert_eq!(answer["breakdown"][key]["count"], cell["count"], "{key}");
    }

    // Without group_by: no breakdown; without statistics: none computed (OpenSPP's default).
    let plain = analyst
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program}}),
        )
        .await;
    plain.expect(200);
    assert_eq!(plain.body["total_count"], 21);
    assert_eq!(plain.body["breakdown"], Value::Null);
    assert_eq!(plain.body["statistics"], json!({}));

    // Two dimensions: every line of the table keeps zero or several suppressed cells.
    let two = analyst
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program},
                   "group_by": ["gender", "membership_status"]}),
        )
        .await;
    two.expect(200);
    assert_eq!(
        two.body["breakdown"]["2|enrolled"]["count"], 12,
        "{}",
        two.body
    );
    assert_eq!(
        two.body["breakdown"]["2|enrolled"]["values"],
        json!({"gender": "2", "membership_status": "enrolled"})
    );

    // A consent-bound client counts only subjects consented for analytics or research.
    for id in &consented {
        let consent = counting_consent(id, &organization, "research", "research");
        admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    }
    // One more, consented for analytics but with her gender hidden: counted, but not by gender.
    let hidden = unique("AGG");
    admin
        .post("/api/v2/spp/Individual", individual_body(&hidden))
        .await
        .expect(201);
    enrol(&admin, &program, &hidden, "enrolled")
        .await
        .expect(201);
    let mut consent = counting_consent(&hidden, &organization, "analytics", "analytics");
    consent["scopes"][0]["field_access"] = json!(["name"]);
    admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    let bound = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["aggregation:read"],
    );
    let bound = Api::new(&world().base).login(&bound).await;
    let reply = bound.post(COMPUTE, body.clone()).await;
    reply.expect(200);
    assert_eq!(reply.body["total_count"], 6, "{}", reply.body);
    assert_eq!(
        reply.body["breakdown"],
        json!({"2": {"count": 6, "suppressed": false, "values": {"gender": "2"},
                     "statistics": {"count": {"value": 6, "suppressed": false}}}})
    );
    let everyone = bound
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program}}),
        )
        .await;
    assert_eq!(everyone.body["total_count"], 7, "{}", everyone.body);
    let by_gender = bound
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program, "gender": "2"}}),
        )
        .await;
    assert_eq!(by_gender.body["total_count"], 6, "{}", by_gender.body);

    // The purpose counts on the scope that covers the registrant: research on her group's
    // record does not make her own record, shared for service delivery, countable.
    let other_purpose = unique("AGG");
    admin
        .post("/api/v2/spp/Individual", individual_body(&other_purpose))
        .await
        .expect(201);
    enrol(&admin, &program, &other_purpose, "enrolled")
        .await
        .expect(201);
    let mut consent = consent_body(
        &format!("Individual/{NATIONAL_ID}|{other_purpose}"),
        "specific",
        &[&organization],
        &[],
    );
    consent["scopes"] = json!([
        {"resource_type": "individual", "field_access": null, "purpose": "service_delivery"},
        {"resource_type": "group", "field_access": null, "purpose": "research"}
    ]);
    admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    let still = bound
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program}}),
        )
        .await;
    assert_eq!(still.body["total_count"], 7, "{}", still.body);

    // A membership counts under the consent to use the membership, for analytics or research,
    // not under the registrant's record: her record shared for research, her membership for
    // service delivery only, her membership is not counted ...
    let record_only = unique("AGG");
    admin
        .post("/api/v2/spp/Individual", individual_body(&record_only))
        .await
        .expect(201);
    enrol(&admin, &program, &record_only, "enrolled")
        .await
        .expect(201);
    let consent = counting_consent(&record_only, &organization, "research", "service_delivery");
    admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    let memberships = json!({"scope": {"target_type": "individual", "program": program}});
    let counted = bound.post(COMPUTE, memberships.clone()).await;
    assert_eq!(
        counted.body["total_count"], 7,
        "a membership is not counted under the record's consent: {}",
        counted.body
    );
    // ... and the other way round, it is; but not by her gender, which her record's consent
    // does not let anyone use for analytics.
    let membership_only = unique("AGG");
    let mut person = individual_body(&membership_only);
    person["gender"]["coding"][0]["code"] = json!("2");
    admin
        .post("/api/v2/spp/Individual", person)
        .await
        .expect(201);
    enrol(&admin, &program, &membership_only, "enrolled")
        .await
        .expect(201);
    let consent = counting_consent(
        &membership_only,
        &organization,
        "service_delivery",
        "research",
    );
    admin.post("/api/v2/spp/Consent", consent).await.expect(201);
    let counted = bound.post(COMPUTE, memberships).await;
    assert_eq!(
        counted.body["total_count"], 8,
        "a membership consented for research is counted: {}",
        counted.body
    );
    let by_gender = bound
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program, "gender": "2"}}),
        )
        .await;
    assert_eq!(by_gender.body["total_count"], 6, "{}", by_gender.body);

    // A client whose own field filter hides gender may not count by it.
    let filtered = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "aggregation:read", "--field", "individual:name"],
        ))
        .await;
    let refused = filtered.post(COMPUTE, body.clone()).await;
    refused.expect(403);
    assert_eq!(expression(&refused), "gender");

    // Groups: a group program's memberships by group type.
    let (_, households) = new_program(&admin, "group").await;
    for _ in 0..5 {
        let group = unique("AGGH");
        admin
            .post(
                "/api/v2/spp/Group",
                json!({"identifier": [{"system": "urn:openspp:group", "value": group}],
                       "groupType": "household", "name": "Counted"}),
            )
            .await
            .expect(201);
        admin
            .post(
                "/api/v2/spp/ProgramMembership",
                json!({"program": {"reference": format!("Program/{households}")},
                       "beneficiary": {"reference": format!("Group/urn:openspp:group|{group}")},
                       "status": "enrolled"}),
            )
            .await
            .expect(201);
    }
    let groups = analyst
        .post(
            COMPUTE,
            json!({"scope": {"program": households}, "group_by": ["group_type"]}),
        )
        .await;
    groups.expect(200);
    assert_eq!(groups.body["total_count"], 5, "{}", groups.body);
    assert_eq!(groups.body["breakdown"]["household"]["count"], 5);

    // Without the scope: 403, no numbers.
    let other = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "statistics:read"],
        ))
        .await;
    let refused = other.post(COMPUTE, body).await;
    refused.expect(403);
    assert!(refused.body.get("total_count").is_none());
    other.get(DIMENSIONS).await.expect(403);
}

async fn refusals() {
    let analyst = Api::new(&world().base)
        .login(&create_client(&world().database_url, &analyst_scopes()))
        .await;
    for (body, status, field) in [
        (
            json!({"scope": {"target_type": "household"}}),
            422,
            "scope.target_type",
        ),
        (
            json!({"scope": {}, "group_by": ["shoe_size"]}),
            400,
            "group_by[0]",
        ),
        (
            json!({"scope": {"target_type": "individual"},
                   "group_by": ["gender", "age_band", "program", "membership_status"]}),
            400,
            "group_by",
        ),
        (
            json!({"scope": {"target_type": "individual"}, "group_by": ["gender", "gender"]}),
            400,
            "group_by",
        ),
        (
            json!({"scope": {}, "group_by": ["gender"]}),
            400,
            "group_by",
        ),
        (
            json!({"scope": {"cel_expression": "r.age >= 18"}}),
            400,
            "scope.cel_expression",
        ),
        (json!({"scope": {"area_id": 7}}), 400, "scope.area_id"),
        (
            json!({"scope": {}, "statistics": ["count", "median_income"]}),
            400,
            "statistics[1]",
        ),
        (
            json!({"scope": {"membership_status": "happy"}}),
            400,
            "scope.membership_status",
        ),
        (json!({"scope": {}, "sort": "count"}), 422, "sort"),
        (json!({}), 422, "scope"),
    ] {
        let reply = analyst.post(COMPUTE, body.clone()).await;
        reply.expect(status);
        assert_eq!(expression(&reply), field, "{body}: {}", reply.text);
    }
}

async fn dimensions() {
    let analyst = Api::new(&world().base)
        .login(&create_client(&world().database_url, &analyst_scopes()))
        .await;
    let all = analyst.get(DIMENSIONS).await;
    all.expect(200);
    let names = |reply: &crate::support::Reply| -> Vec<String> {
        reply.body["dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&all),
        [
            "gender",
            "age_band",
            "group_type",
            "program",
            "membership_status"
        ]
    );
    let gender = &all.body["dimensions"][0];
    assert_eq!(gender["label"], "Gender");
    assert_eq!(gender["dimension_type"], "field");
    assert_eq!(gender["applies_to"], "individuals");
    assert_eq!(gender["value_labels"]["2"], "Female");
    let groups = analyst
        .get(&format!("{DIMENSIONS}?applies_to=groups"))
        .await;
    groups.expect(200);
    assert_eq!(
        names(&groups),
        ["group_type", "program", "membership_status"]
    );
    let people = analyst
        .get(&format!("{DIMENSIONS}?applies_to=individuals"))
        .await;
    assert_eq!(
        names(&people),
        ["gender", "age_band", "program", "membership_status"]
    );
    let bad = analyst.get(&format!("{DIMENSIONS}?applies_to=pets")).await;
    bad.expect(400);
    assert_eq!(expression(&bad), "applies_to");
    // Every name listed is accepted by compute.
    for name in names(&all) {
        let target = if name == "group_type" {
            "group"
        } else {
            "individual"
        };
        analyst
            .post(
                COMPUTE,
                json!({"scope": {"target_type": target}, "group_by": [name]}),
            )
            .await
            .expect(200);
    }
}

/// The breakdown of `program`'s memberships of registrants of `target` by `group_by` (a
/// legal basis: nothing hidden but small cells), as `{key: count}`.
async fn breakdown(api: &Api, target: &str, program: &str, group_by: &[&str]) -> Value {
    let reply = api
        .post(
            COMPUTE,
            json!({"scope": {"target_type": target, "program": program}, "group_by": group_by}),
        )
        .await;
    reply.expect(200);
    let mut cells = serde_json::Map::new();
    for (key, cell) in reply.body["breakdown"].as_object().unwrap() {
        cells.insert(key.clone(), cell["count"].clone());
    }
    Value::Object(cells)
}

/// A transaction creating `person` (gender `gender`) and enrolling them in `program`: the
/// membership and its beneficiary written by one statement.
fn enrolled_at_once(program: &str, person: &str, gender: &str) -> Value {
    let mut body = individual_body(person);
    body["gender"]["coding"][0]["code"] = json!(gender);
    let placeholder = "urn:uuid:00000000-0000-4000-8000-0000000000a1";
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": placeholder, "resource": body,
         "request": {"method": "POST", "url": "Individual"}},
        {"resource": {"type": "ProgramMembership", "program": {"reference": format!("Program/{program}")},
                      "beneficiary": {"reference": placeholder}, "status": "enrolled"},
         "request": {"method": "POST", "url": "ProgramMembership"}},
    ]})
}

/// A count of memberships by gender, age band or group type reads the beneficiary's facts as
/// they are now, however they came to be: changed after the enrolment, written in the same
/// statement as the membership, or a group's.
async fn facts_followed() {
    let admin = admin().await;
    let analyst = Api::new(&world().base)
        .login(&create_client(&world().database_url, &analyst_scopes()))
        .await;
    let (_, program) = new_program(&admin, "individual").await;
    let mut people = Vec::new();
    for _ in 0..10 {
        let person = unique("AGF");
        let mut body = individual_body(&person);
        body["gender"]["coding"][0]["code"] = json!("1");
        admin.post("/api/v2/spp/Individual", body).await.expect(201);
        enrol(&admin, &program, &person, "enrolled")
            .await
            .expect(201);
        people.push(person);
    }
    assert_eq!(
        breakdown(&analyst, "individual", &program, &["gender", "age_band"]).await,
        json!({"1|18-59": 10})
    );
    // Five of them change gender and birth date after their enrolment.
    for person in &people[..5] {
        let path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, person));
        let mut body = individual_body(person);
        body["gender"]["coding"][0]["code"] = json!("2");
        body["birthDate"] = json!("1950-01-01");
        admin.put(&path, body, None).await.expect(200);
    }
    assert_eq!(
        breakdown(&analyst, "individual", &program, &["gender", "age_band"]).await,
        json!({"1|18-59": 5, "2|60+": 5})
    );
    // Five more, each registered and enrolled in one transaction.
    for _ in 0..5 {
        let bundle = enrolled_at_once(&program, &unique("AGF"), "9");
        let reply = admin.post("/api/v2/spp/$batch", bundle).await;
        reply.expect(200);
        assert_eq!(
            reply.body["entry"][1]["response"]["status"], "201 Created",
            "{}",
            reply.text
        );
    }
    assert_eq!(
        breakdown(&analyst, "individual", &program, &["gender"]).await,
        json!({"1": 5, "2": 5, "9": 5})
    );
    // A gender filter reads the same facts.
    let filtered = analyst
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": program, "gender": "2"}}),
        )
        .await;
    assert_eq!(filtered.body["total_count"], 5, "{}", filtered.body);

    // Groups: households created and enrolled in one transaction each, counted by type; the
    // group program's memberships are not counted as individuals'.
    let (_, households) = new_program(&admin, "group").await;
    for _ in 0..5 {
        let placeholder = "urn:uuid:00000000-0000-4000-8000-0000000000b1";
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": placeholder, "resource": {"type": "Group",
                "identifier": [{"system": "urn:openspp:group", "value": unique("AGFH")}],
                "groupType": "household", "name": "Followed"},
             "request": {"method": "POST", "url": "Group"}},
            {"resource": {"type": "ProgramMembership",
                          "program": {"reference": format!("Program/{households}")},
                          "beneficiary": {"reference": placeholder}, "status": "enrolled"},
             "request": {"method": "POST", "url": "ProgramMembership"}},
        ]});
        admin.post("/api/v2/spp/$batch", bundle).await.expect(200);
    }
    assert_eq!(
        breakdown(&analyst, "group", &households, &["group_type"]).await,
        json!({"household": 5})
    );
    let as_individuals = analyst
        .post(
            COMPUTE,
            json!({"scope": {"target_type": "individual", "program": households}}),
        )
        .await;
    assert_eq!(
        as_individuals.body["total_count"], 0,
        "{}",
        as_individuals.body
    );
}
