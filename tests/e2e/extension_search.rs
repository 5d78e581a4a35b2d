//! Searching by extension data (CONTRACT §8): each property an extension's schema marks
//! `x-openspp-searchable` is a search parameter `extension.<key>.<property>` of the resources
//! it extends, listed in `/metadata`, and served by an index.

use libtest_mimic::Trial;
use openspp_projections::consent::Visibility;
use openspp_projections::extension::ExtensionFilter;
use openspp_projections::individual::{plans, IndividualQuery};
use openspp_projections::search::{Page, SortKey};
use serde_json::{json, Value};

use crate::extension::{expression, register, with_extension};
use crate::extension_fields::{extension_of, FARMER_SCHEMA};
use crate::support::{admin, cli, sql_scalar, unique, world, Api, TestDatabase};
use crate::trial;
use crate::vocabulary::temp_file;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "extension_search::searchable_properties_are_search_parameters",
            parameters,
        ),
        trial(
            "extension_search::an_index_serves_extension_searches_at_a_realistic_size",
            index,
        ),
    ]
}

/// The identifier values of the individuals a search found.
async fn found(api: &Api, query: &str) -> Vec<String> {
    let reply = api.get(&format!("/api/v2/spp/Individual?{query}")).await;
    reply.expect(200);
    let mut values: Vec<String> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["identifier"][0]["value"].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    values
}

async fn parameters() {
    let api = admin().await;
    let (key, uri) = extension_of("farmer", "Individual", FARMER_SCHEMA);
    let people = [
        (
            unique("EXS-A"),
            json!({"farm_size": 3, "crops": ["rice", "maize"], "organic": true}),
        ),
        (
            unique("EXS-B"),
            json!({"farm_size": 3.0, "crops": ["maize"], "organic": false}),
        ),
        (
            unique("EXS-C"),
            json!({"farm_size": 7.5, "notes": "hillside"}),
        ),
    ];
    for (id, data) in &people {
        api.post(
            "/api/v2/spp/Individual",
            with_extension(id, json!({key.clone(): data})),
        )
        .await
        .expect(201);
    }
    let [a, b, c] = [&people[0].0, &people[1].0, &people[2].0].map(String::clone);
    let p = |property: &str, value: &str| format!("extension.{key}.{property}={value}");
    assert_eq!(
        found(&api, &p("farm_size", "3")).await,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(found(&api, &p("farm_size", "7.5")).await, vec![c.clone()]);
    assert_eq!(
        found(&api, &p("crops", "maize")).await,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(found(&api, &p("crops", "rice")).await, vec![a.clone()]);
    assert_eq!(found(&api, &p("organic", "false")).await, vec![b.clone()]);
    // Repeated parameters all hold; the URI names the extension too.
    let both = format!("{}&{}", p("farm_size", "3"), p("organic", "true"));
    assert_eq!(found(&api, &both).await, vec![a.clone()]);
    let by_uri = format!("extension.{uri}.farm_size=7.5");
    assert_eq!(found(&api, &by_uri).await, vec![c]);
    // With `_extensions`, the data is in the results.
    let reply = api
        .get(&format!(
            "/api/v2/spp/Individual?{}&_extensions={key}",
            p("crops", "rice")
        ))
        .await;
    assert_eq!(
        reply.body["data"][0]["extension"][&key]["crops"],
        json!(["rice", "maize"])
    );

    // What is not searchable, or not of the property's kind, is a 400 naming the parameter.
    for (parameter, value) in [
        (format!("extension.{key}.notes"), "hillside"),
        (format!("extension.{key}.farm_size"), "big"),
        (format!("extension.{key}.organic"), "yes"),
        (format!("extension.{key}.nosuch"), "1"),
        ("extension.nosuch.farm_size".to_owned(), "1"),
    ] {
        let reply = api
            .get(&format!("/api/v2/spp/Individual?{parameter}={value}"))
            .await;
        reply.expect(400);
        assert_eq!(expression(&reply), parameter);
    }
    // Groups do not take an Individual's extension.
    let reply = api
        .get(&format!("/api/v2/spp/Group?extension.{key}.farm_size=3"))
        .await;
    reply.expect(400);

    // Listed in /metadata: the resource's parameters and the extension's searchable fields.
    let metadata = Api::new(&world().base).get("/api/v2/spp/metadata").await;
    let names: Vec<&str> = metadata.body["resources"]["Individual"]["search_params"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "_extensions",
        &format!("extension.{key}.farm_size"),
        &format!("extension.{key}.crops"),
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(!names.contains(&format!("extension.{key}.notes").as_str()));
    let listed: Vec<Value> = metadata.body["extensions"].as_array().unwrap().clone();
    let entry = listed.iter().find(|e| e["url"] == uri.as_str()).unwrap();
    assert_eq!(
        entry["searchable"],
        json!(["crops", "farm_size", "organic"])
    );

    // A property marked searchable must be matchable by one value.
    let schema = temp_file(
        "bad.json",
        r#"{"type": "object", "properties": {"plots": {"type": "object", "x-openspp-searchable": true}}}"#,
    );
    let bad = format!("urn:openspp:extension:bad{}", uuid::Uuid::new_v4().simple());
    let error = register("bad", &bad, "Individual", &schema, &[]).expect_err("refused");
    assert!(
        error.contains("--schema") && error.contains("plots"),
        "{error}"
    );
}

/// How many synthetic individuals the plan is measured against.
const ROWS: u32 = 40_000;

async fn index() {
    let database = TestDatabase::create("openspp_ext_index");
    cli(&database.url, &["migrate"]);
    // A registry where most people carry farmer data, few of them with one farm size.
    let farmer = "urn:openspp:extension:farmer";
    sql_scalar(
        &database.url,
        &format!(
            "INSERT INTO individual_view (aggregate_id, version, state, name_search, \
                 address_search, active, created_at, last_updated) \
             SELECT 'i' || g, 1, CASE WHEN g % 10 = 0 THEN '{{}}'::jsonb ELSE \
                 jsonb_build_object('extension', jsonb_build_object('{farmer}', \
                     jsonb_build_object('farm_size', g % 400, 'crops', \
                         jsonb_build_array(CASE WHEN g % 2 = 0 THEN 'rice' ELSE 'maize' END)))) END, \
                 'person ' || g, '', true, now(), now() - g * interval '1 minute' \
             FROM generate_series(1, {ROWS}) g; \
             ANALYZE individual_view; SELECT count(*) FROM individual_view"
        ),
    );
    let pool = sqlx::PgPool::connect(&database.url)
        .await
        .expect("connects");
    let query = IndividualQuery {
        identifier: None,
        name: None,
        birth_date: vec![],
        gender: None,
        address: None,
        last_updated: vec![],
        active: None,
        extension: vec![ExtensionFilter {
            parameter: "extension.farmer.farm_size".into(),
            uri: farmer.into(),
            property: "farm_size".into(),
            value: json!(7),
        }],
        household: Default::default(),
        sort: vec![SortKey {
            column: "last_updated",
            descending: true,
        }],
        visibility: Visibility::All,
    };
    let page = Page::new(20, 0);
    // As an administrator searches: through the extension index. As a consent-bound client
    // does (whose consents must also show the extension): never a scan of the registry either
    // (with few consents, from the consents to the rows they admit).
    let consented = IndividualQuery {
        visibility: Visibility::Consented {
            organization: "WFP".into(),
            organization_type: "un".into(),
            today: chrono::Utc::now().date_naive(),
        },
        ..query.clone()
    };
    for (query, indexed) in [(query, true), (consented, false)] {
        for plan in plans(&pool, &query, page).await.expect("explained") {
            assert!(!plan.contains("Seq Scan on individual_view"), "{plan}");
            assert!(
                !indexed || plan.contains("individual_view_extension"),
                "{plan}"
            );
        }
    }
    pool.close().await;
    drop(database);
}
