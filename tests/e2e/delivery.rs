//! Program delivery (CONTRACT §11, issue 16): cycles and entitlements over HTTP, from a program
//! to a paid cycle, with OpenSPP's shapes, searches and states, the statistics a cycle keeps,
//! and the rules every resource follows (scopes, allowed programs, consent, history, `_at`,
//! `$verify`, the access log).

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use crate::consent::give_consent;
use crate::program::{change_body, enrol, new_program};
use crate::support::{
    admin, assert_answer_is_read, audit_event_where, consent_client, create_client,
    individual_body, logged_client, minted_path, register_individual, sql_scalar, unique, world,
    Api, HeldTransaction, Reply, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("delivery::walk_through_to_a_paid_cycle", walk_through),
        trial("delivery::cycles_follow_one_another", sequence),
        trial("delivery::cycle_search_and_paging", cycle_search),
        trial("delivery::entitlement_search", entitlement_search),
        trial("delivery::refusals_name_the_field", refusals),
        trial("delivery::scopes_and_allowed_programs", scopes),
        trial(
            "delivery::entitlements_need_the_beneficiarys_consent",
            consent,
        ),
        trial("delivery::history_at_and_verify", history),
        trial("delivery::metadata_and_openapi_list_them", discovery),
        trial("delivery::service_points", service_points),
        trial("delivery::products", products),
        trial(
            "delivery::product_categories_and_units",
            categories_and_units,
        ),
        trial(
            "delivery::an_entitlement_holds_its_cycle_and_enrolment",
            held_cycle_and_enrolment,
        ),
        trial(
            "delivery::a_cycles_etag_follows_its_statistics",
            etag_follows_statistics,
        ),
        trial(
            "delivery::a_bundle_cannot_entitle_in_a_cycle_it_moves_on",
            bundle_moving_the_cycle,
        ),
        trial(
            "delivery::cascade_entitlements_follow_their_cycle",
            cascade_follows_the_cycle,
        ),
        trial(
            "delivery::cascade_sees_an_entitlement_written_meanwhile",
            cascade_sees_a_late_entitlement,
        ),
        trial(
            "delivery::entitlement_answer_rendered_from_what_was_found",
            entitlement_answer_from_what_was_found,
        ),
        trial(
            "delivery::cascade_is_all_or_nothing",
            cascade_all_or_nothing,
        ),
        trial(
            "delivery::cascade_if_match_digest_is_the_cycles_only",
            digest_is_the_cycles,
        ),
        trial(
            "delivery::cascade_free_text_unit_still_changes_state",
            free_text_unit,
        ),
        trial(
            "delivery::cascade_moves_a_large_cycle_in_one_commit",
            large_cycle,
        ),
    ]
}

const CYCLE: &str = "/api/v2/spp/Cycle";
const ENTITLEMENT: &str = "/api/v2/spp/Entitlement";

fn cycle_body(program: &str, name: &str, start: &str, end: &str) -> Value {
    json!({"name": name, "program": {"reference": format!("Program/{program}")},
           "period": {"start": start, "end": end}})
}

/// Creates a program's next cycle; returns its name.
async fn new_cycle(api: &Api, program: &str, start: &str, end: &str) -> String {
    let name = unique("Cycle");
    api.post(CYCLE, cycle_body(program, &name, start, end))
        .await
        .expect(201);
    name
}

fn path_of(name: &str) -> String {
    format!("{CYCLE}/{}", urlencoding(name))
}

fn urlencoding(text: &str) -> String {
    text.replace('%', "%25")
        .replace(' ', "%20")
        .replace('#', "%23")
        .replace('|', "%7C")
}

fn person(national_id: &str) -> String {
    format!("Individual/{NATIONAL_ID}|{national_id}")
}

fn cash_body(cycle: &str, national_id: &str, amount: f64) -> Value {
    json!({"entitlementType": "cash", "cycle": {"reference": format!("Cycle/{cycle}")},
           "beneficiary": {"reference": person(national_id)},
           "initialAmount": {"value": amount, "currency": "PHP"}})
}

/// The product goods entitlements deliver and the service point they are collected at
/// (registered once per run).
async fn stocked_collection_point(api: &Api) -> &'static str {
    const NAME: &str = "Delivery Collection Point";
    let reply = api
        .post(
            PRODUCT,
            json!({"name": "Rice 25kg", "defaultCode": "RICE-25KG",
                   "category": {"reference": "ProductCategory/Food"},
                   "unitOfMeasure": {"reference": "UnitOfMeasure/Sack"},
                   "listPrice": 1250, "currency": "PHP"}),
        )
        .await;
    assert!(matches!(reply.status.as_u16(), 201 | 409), "{}", reply.text);
    let reply = api
        .post(
            "/api/v2/spp/ServicePoint",
            json!({"name": NAME, "contractActive": true, "serviceType": ["CASH"]}),
        )
        .await;
    assert!(matches!(reply.status.as_u16(), 201 | 409), "{}", reply.text);
    NAME
}

fn goods_body(cycle: &str, national_id: &str) -> Value {
    json!({"entitlementType": "inkind", "cycle": {"reference": format!("Cycle/{cycle}")},
           "beneficiary": {"reference": person(national_id)},
           "items": [{"product": {"reference": "Product/RICE-25KG"},
                      "quantity": {"value": 2, "unit": "Sack"},
                      "unitPrice": {"value": 500, "currency": "PHP"}}],
           "servicePoint": {"reference": "ServicePoint/Delivery Collection Point"}})
}

/// An individual enrolled in `program`; returns the national id.
async fn member(api: &Api, program: &str) -> String {
    let id = unique("DLV");
    register_individual(api, &id).await;
    enrol(api, program, &id, "enrolled").await.expect(201);
    id
}

/// Creates an entitlement; returns its path.
async fn entitle(api: &Api, body: Value) -> String {
    let reply = api.post(ENTITLEMENT, body).await;
    reply.expect(201);
    reply.header("location").unwrap().to_owned()
}

/// PUTs the resource at `path` back as read, in state `state`.
async fn move_to(api: &Api, path: &str, state: &str) -> Reply {
    let read = api.get(path).await;
    read.expect(200);
    let mut body = read.body.clone();
    body["state"] = json!(state);
    api.put(path, body, None).await
}

fn diagnostics(reply: &Reply) -> String {
    reply.body["detail"].as_str().unwrap_or_default().to_owned()
}

fn expression(reply: &Reply) -> &str {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
}

async fn walk_through() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let (first, second) = (member(&api, &program).await, member(&api, &program).await);
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    stocked_collection_point(&api).await;
    let path = path_of(&name);
    let read = api.get(&path).await;
    read.expect(200);
    // Version 1, and a digest of what the statistics and the next cycle show.
    assert!(
        read.header("etag").unwrap().starts_with("\"1."),
        "{:?}",
        read.header("etag")
    );
    let cycle = &read.body;
    assert_eq!(cycle["type"], "Cycle");
    assert_eq!(cycle["identifier"], name.as_str());
    assert_eq!(cycle["sequence"], 1);
    assert_eq!(cycle["state"], "draft");
    assert_eq!(cycle["program"]["reference"], format!("Program/{program}"));
    assert_eq!(
        cycle["period"],
        json!({"start": "2024-01-01", "end": "2024-03-31"})
    );
    assert_eq!(
        cycle["statistics"],
        json!({"membersCount": 0, "entitlementsCount": 0, "paymentsCount": 0, "currency": "PHP"})
    );
    // A cycle is submitted with its entitlements.
    let empty = move_to(&api, &path, "to_approve").await;
    empty.expect(409);

    let cash = entitle(&api, cash_body(&name, &first, 3000.0)).await;
    entitle(&api, cash_body(&name, &second, 1500.5)).await;
    let goods = entitle(&api, goods_body(&name, &first)).await;
    let read = api.get(&cash).await;
    read.expect(200);
    let entitlement = &read.body;
    assert_eq!(entitlement["type"], "Entitlement");
    assert_eq!(entitlement["entitlementType"], "cash");
    assert_eq!(entitlement["state"], "draft");
    assert_eq!(
        entitlement["initialAmount"],
        json!({"value": 3000.0, "currency": "PHP"})
    );
    assert_eq!(entitlement["balance"], entitlement["initialAmount"]);
    assert_eq!(entitlement["beneficiary"]["reference"], person(&first));
    assert_eq!(
        entitlement["program"]["reference"],
        format!("Program/{program}")
    );
    assert_eq!(entitlement["cycle"]["reference"], format!("Cycle/{name}"));
    assert_eq!(
        entitlement["validPeriod"],
        json!({"start": "2024-01-01", "end": "2025-01-01"})
    );
    let code = entitlement["identifier"].as_str().unwrap();
    assert_eq!(code.len(), 21);
    assert_eq!(cash, format!("{ENTITLEMENT}/{code}"));
    let read = api.get(&goods).await;
    assert_eq!(read.body["entitlementType"], "inkind");
    assert_eq!(
        read.body["items"],
        json!([{"product": {"reference": "Product/RICE-25KG"},
                "quantity": {"value": 2.0, "unit": "Sack"},
                "unitPrice": {"value": 500.0, "currency": "PHP"}}])
    );
    assert_eq!(
        read.body["servicePoint"]["reference"],
        "ServicePoint/Delivery Collection Point"
    );
    assert!(read.body.get("initialAmount").is_none());

    // The statistics are kept as the entitlements are written: two members, two cash
    // entitlements and their total (the goods count as a member's, not as cash).
    let read = api.get(&path).await;
    assert_eq!(
        read.body["statistics"],
        json!({"membersCount": 2, "entitlementsCount": 2, "paymentsCount": 0,
               "totalAmount": 4500.5, "currency": "PHP"})
    );

    // Approval: entitlements submitted, the cycle submitted and approved, then entitlements
    // approved (an ern is minted), transferred and paid; the cycle is distributed.
    move_to(&api, &cash, "pending_validation").await.expect(200);
    let early = move_to(&api, &cash, "approved").await;
    early.expect(409);
    assert!(
        diagnostics(&early).contains("of a draft cycle cannot become approved"),
        "{}",
        early.text
    );
    move_to(&api, &path, "to_approve").await.expect(200);
    let approved = move_to(&api, &path, "approved").await;
    approved.expect(200);
    assert_eq!(approved.body["state"], "approved");
    assert_eq!(
        approved.body["approvedBy"],
        world().admin.client_id.as_str()
    );
    assert!(approved.body["approvedDate"].is_string());
    let approved = move_to(&api, &cash, "approved").await;
    approved.expect(200);
    let ern = approved.body["ern"].as_str().unwrap();
    assert!(ern.len() == 10 && ern.chars().all(|c| c.is_ascii_digit()));
    assert!(approved.body["approvedDate"].is_string());
    // An impossible move is a conflict naming the allowed ones.
    let skipped = move_to(&api, &cash, "rdpd2ben").await;
    skipped.expect(409);
    assert_eq!(expression(&skipped), "state");
    assert!(
        diagnostics(&skipped).ends_with("allowed: trans2FSP, expired"),
        "{}",
        skipped.text
    );
    move_to(&api, &cash, "trans2FSP").await.expect(200);
    move_to(&api, &cash, "rdpd2ben").await.expect(200);
    // No new entitlement in a cycle that is no longer draft.
    let late = api.post(ENTITLEMENT, cash_body(&name, &second, 10.0)).await;
    late.expect(409);
    assert_eq!(expression(&late), "cycle");
    let distributed = move_to(&api, &path, "distributed").await;
    distributed.expect(200);
    assert_eq!(distributed.body["state"], "distributed");
    assert_eq!(distributed.body["statistics"]["paymentsCount"], 1);
    assert_eq!(distributed.body["statistics"]["totalAmount"], 4500.5);
    let backwards = move_to(&api, &path, "draft").await;
    backwards.expect(409);
    assert!(
        diagnostics(&backwards).ends_with("allowed: ended"),
        "{}",
        backwards.text
    );
}

async fn sequence() {
    let api = admin().await;
    let (name, program) = new_program(&api, "individual").await;
    let first = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    // OpenSPP's `Program/{name}` names the program too.
    let second = unique("Cycle");
    let created = api
        .post(
            CYCLE,
            cycle_body(&name, &second, "2024-04-01", "2024-06-30"),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["sequence"], 2);
    assert_eq!(
        created.body["previousCycle"]["reference"],
        format!("Cycle/{first}")
    );
    assert_eq!(
        api.get(&path_of(&first)).await.body["nextCycle"]["reference"],
        format!("Cycle/{second}")
    );
    // A cycle starts after the previous one ends; a name names one cycle.
    let overlapping = api
        .post(
            CYCLE,
            cycle_body(&program, &unique("Cycle"), "2024-06-30", "2024-09-30"),
        )
        .await;
    overlapping.expect(422);
    assert_eq!(expression(&overlapping), "period.start");
    let taken = api
        .post(
            CYCLE,
            cycle_body(&program, &first, "2024-07-01", "2024-09-30"),
        )
        .await;
    taken.expect(409);
    let reply = api
        .get(&format!("{CYCLE}/{}", urlencoding(&unique("none"))))
        .await;
    reply.expect(404);
}

async fn cycle_search() {
    let api = admin().await;
    let (name, program) = new_program(&api, "individual").await;
    let mut names = Vec::new();
    for (start, end) in [
        ("2024-01-01", "2024-03-31"),
        ("2024-04-01", "2024-06-30"),
        ("2024-07-01", "2024-09-30"),
    ] {
        names.push(new_cycle(&api, &program, start, end).await);
    }
    let part = &name["Program ".len()..];
    let names_in = |reply: &Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = api
        .get(&format!("{CYCLE}?program={}", part.to_lowercase()))
        .await;
    all.expect(200);
    assert_eq!(all.body["meta"]["total"], 3);
    assert_eq!(names_in(&all), names, "in sequence order");
    let by_reference = api
        .get(&format!(
            "{CYCLE}?program=Program/{}",
            urlencoding(&program)
        ))
        .await;
    assert_eq!(names_in(&by_reference), names);
    let page = api.get(&format!("{CYCLE}?program={part}&_count=2")).await;
    assert_eq!(page.body["meta"]["count"], 2);
    assert!(page.body["links"]["next"]
        .as_str()
        .unwrap()
        .contains("_offset=2"));
    let rest = api
        .get(&format!("{CYCLE}?program={part}&_count=2&_offset=2"))
        .await;
    assert_eq!(names_in(&rest), names[2..]);
    assert!(rest.body["links"]["prev"]
        .as_str()
        .unwrap()
        .contains("_offset=0"));
    let late = api
        .get(&format!("{CYCLE}?program={part}&startDate=2024-04-01"))
        .await;
    assert_eq!(names_in(&late), names[1..]);
    let early = api
        .get(&format!("{CYCLE}?program={part}&endDate=le2024-06-30"))
        .await;
    assert_eq!(names_in(&early), names[..2]);
    let drafts = api
        .get(&format!("{CYCLE}?program={part}&state=approved"))
        .await;
    assert_eq!(drafts.body["meta"]["total"], 0);
    let none = api.get(&format!("{CYCLE}?program=no-such-{part}")).await;
    assert_eq!(none.body["meta"]["total"], 0);
    api.get(&format!("{CYCLE}?state=open")).await.expect(400);
    api.get(&format!("{CYCLE}?_count=100")).await.expect(200);
    api.get(&format!("{CYCLE}?_count=101")).await.expect(400);
    // No internal id in what a cycle shows.
    let text = &all.text;
    for key in ["\"id\"", "program_id", "approved_by", "previous_cycle_id"] {
        assert!(!text.contains(key), "{key} in {text}");
    }
}

async fn entitlement_search() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let (first, second) = (member(&api, &program).await, member(&api, &program).await);
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    stocked_collection_point(&api).await;
    let cash = entitle(&api, cash_body(&name, &first, 100.0)).await;
    entitle(&api, cash_body(&name, &second, 200.0)).await;
    entitle(&api, goods_body(&name, &first)).await;
    let codes = |reply: &Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["identifier"].as_str().unwrap().to_owned())
            .collect()
    };
    // Cash unless asked otherwise (OpenSPP searches one kind at a time), newest first.
    let in_cycle = api.get(&format!("{ENTITLEMENT}?cycle={name}")).await;
    in_cycle.expect(200);
    assert_eq!(in_cycle.body["meta"]["total"], 2);
    assert_eq!(
        in_cycle.body["data"][0]["initialAmount"]["value"], 200.0,
        "newest first"
    );
    let goods = api
        .get(&format!(
            "{ENTITLEMENT}?cycle={name}&entitlementType=inkind"
        ))
        .await;
    assert_eq!(goods.body["meta"]["total"], 1);
    let mine = api
        .get(&format!(
            "{ENTITLEMENT}?beneficiary={}",
            urlencoding(&format!("{NATIONAL_ID}|{first}"))
        ))
        .await;
    assert_eq!(
        codes(&mine),
        vec![cash.rsplit('/').next().unwrap().to_owned()]
    );
    let unknown = api
        .get(&format!("{ENTITLEMENT}?beneficiary=urn:nowhere|{first}"))
        .await;
    assert_eq!(unknown.body["meta"]["total"], 0);
    move_to(&api, &cash, "pending_validation").await.expect(200);
    let pending = api
        .get(&format!(
            "{ENTITLEMENT}?cycle={}&state=pending_validation",
            name.to_lowercase()
        ))
        .await;
    assert_eq!(pending.body["meta"]["total"], 1);
    let program_part = api
        .get(&format!(
            "{ENTITLEMENT}?program={}&validFrom=2024-01-01&validUntil=2025-01-01",
            &program["urn:openspp:program|program-".len()..]
        ))
        .await;
    assert_eq!(program_part.body["meta"]["total"], 2);
    let paged = api
        .get(&format!("{ENTITLEMENT}?cycle={name}&_count=1"))
        .await;
    assert!(paged.body["links"]["next"]
        .as_str()
        .unwrap()
        .contains("_offset=1"));
    api.get(&format!("{ENTITLEMENT}?entitlementType=money"))
        .await
        .expect(400);
    api.get(&format!("{ENTITLEMENT}?validFrom=soon"))
        .await
        .expect(400);
}

async fn refusals() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let enrolled = member(&api, &program).await;
    let stranger = unique("DLV");
    register_individual(&api, &stranger).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    stocked_collection_point(&api).await;
    let cases = [
        (cash_body(&name, &stranger, 10.0), 422, "beneficiary"),
        (
            cash_body(&name, &unique("nobody"), 10.0),
            422,
            "beneficiary",
        ),
        (cash_body(&unique("none"), &enrolled, 10.0), 422, "cycle"),
        (
            {
                let mut body = goods_body(&name, &enrolled);
                body["servicePoint"]["reference"] = json!("ServicePoint/nowhere");
                body
            },
            422,
            "servicePoint",
        ),
        (
            {
                let mut body = goods_body(&name, &enrolled);
                body["items"][0]["product"]["reference"] = json!("Product/nothing");
                body
            },
            422,
            "items[0].product",
        ),
        (
            {
                let mut body = goods_body(&name, &enrolled);
                body["items"][0]["quantity"]["unit"] = json!("Barrel");
                body
            },
            422,
            "items[0].quantity.unit",
        ),
        (
            {
                let mut body = goods_body(&name, &enrolled);
                body["items"] = json!([body["items"][0], body["items"][0]]);
                body
            },
            422,
            "items",
        ),
        (
            cash_body(&name, &enrolled, 10.005),
            422,
            "initialAmount.value",
        ),
        (cash_body(&name, &enrolled, 0.0), 422, "initialAmount.value"),
        (
            {
                let mut body = cash_body(&name, &enrolled, 10.0);
                body["initialAmount"]["currency"] = json!("USD");
                body
            },
            422,
            "initialAmount.currency",
        ),
        (
            {
                let mut body = cash_body(&name, &enrolled, 10.0);
                body["state"] = json!("approved");
                body
            },
            422,
            "state",
        ),
        (
            {
                let mut body = cash_body(&name, &enrolled, 10.0);
                body["surprise"] = json!(1);
                body
            },
            422,
            "",
        ),
    ];
    for (body, status, field) in cases {
        let reply = api.post(ENTITLEMENT, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        if !field.is_empty() {
            assert_eq!(expression(&reply), field, "{}", reply.text);
        }
    }
    for (body, field) in [
        (
            cycle_body(&program, &unique("C"), "2024-05-01", "2024-04-01"),
            "period.end",
        ),
        (
            cycle_body("urn:nowhere|x", &unique("C"), "2025-01-01", "2025-02-01"),
            "program",
        ),
        (
            json!({"name": unique("C"), "program": {"reference": format!("Program/{program}")},
                   "period": {"start": "2025-01-01"}}),
            "period.end",
        ),
        (
            {
                let mut body = cycle_body(&program, &unique("C"), "2025-01-01", "2025-02-01");
                body["state"] = json!("approved");
                body
            },
            "state",
        ),
    ] {
        let reply = api.post(CYCLE, body).await;
        reply.expect(422);
        assert_eq!(expression(&reply), field, "{}", reply.text);
    }
    // A change restates the resource; a stale If-Match is 412.
    let path = path_of(&name);
    let mut body = api.get(&path).await.body.clone();
    body["period"]["end"] = json!("2024-04-30");
    let moved = api.put(&path, body, None).await;
    moved.expect(422);
    assert_eq!(expression(&moved), "period.end");
    let mut body = api.get(&path).await.body.clone();
    body["state"] = json!("cancelled");
    api.put(&path, body, Some("\"99\"")).await.expect(412);
}

async fn scopes() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let (_, elsewhere) = new_program(&api, "individual").await;
    let person = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let cash = entitle(&api, cash_body(&name, &person, 10.0)).await;
    // Without the scope: 403, reads and searches alike.
    let outsider = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "program:read"],
        ))
        .await;
    outsider.get(&path_of(&name)).await.expect(403);
    outsider.get(CYCLE).await.expect(403);
    outsider.get(&cash).await.expect(403);
    outsider.get(ENTITLEMENT).await.expect(403);
    // `read` allows searches; writes need their own actions.
    let reader = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "cycle:read", "--scope", "entitlement:read"],
        ))
        .await;
    reader.get(&path_of(&name)).await.expect(200);
    reader
        .get(&format!("{CYCLE}?state=draft"))
        .await
        .expect(200);
    reader.get(&cash).await.expect(200);
    move_to(&reader, &path_of(&name), "cancelled")
        .await
        .expect(403);
    reader
        .post(
            CYCLE,
            cycle_body(&program, &unique("C"), "2025-01-01", "2025-02-01"),
        )
        .await
        .expect(403);
    // A client limited to another program sees neither the cycle nor its entitlements.
    let limited = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &[
                "--scope",
                "cycle:all",
                "--scope",
                "entitlement:all",
                "--program",
                &elsewhere,
            ],
        ))
        .await;
    limited.get(&path_of(&name)).await.expect(404);
    limited.get(&cash).await.expect(404);
    let search = limited
        .get(&format!(
            "{CYCLE}?program=Program/{}",
            urlencoding(&program)
        ))
        .await;
    assert_eq!(search.body["meta"]["total"], 0);
    let search = limited.get(&format!("{ENTITLEMENT}?cycle={name}")).await;
    assert_eq!(search.body["meta"]["total"], 0);
    let refused = limited
        .post(
            CYCLE,
            cycle_body(&program, &unique("C"), "2025-01-01", "2025-02-01"),
        )
        .await;
    refused.expect(422);
}

async fn consent() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let (consented, other) = (member(&api, &program).await, member(&api, &program).await);
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    stocked_collection_point(&api).await;
    let seen = entitle(&api, cash_body(&name, &consented, 10.0)).await;
    let unseen = entitle(&api, cash_body(&name, &other, 20.0)).await;
    let organization = unique("Delivery NGO");
    give_consent(
        &api,
        &person(&consented),
        &organization,
        "program_membership",
        Value::Null,
    )
    .await;
    let ngo = Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            &organization,
            "ngo",
            &["entitlement:all", "cycle:read"],
        ))
        .await;
    let read = ngo.get(&seen).await;
    read.expect(200);
    assert_eq!(read.body["initialAmount"]["value"], 10.0);
    assert_eq!(read.header("x-consent-status"), Some("active"));
    let hidden = ngo.get(&unseen).await;
    hidden.expect(404);
    let unknown = ngo
        .get(&format!("{ENTITLEMENT}/{}", unique("nothing")))
        .await;
    assert_eq!(hidden.body, unknown.body, "unconsented answers as unknown");
    let search = ngo.get(&format!("{ENTITLEMENT}?cycle={name}")).await;
    assert_eq!(search.body["meta"]["total"], 1);
    // It may entitle the consented member, not the other.
    ngo.post(ENTITLEMENT, goods_body(&name, &consented))
        .await
        .expect(201);
    let refused = ngo.post(ENTITLEMENT, goods_body(&name, &other)).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "beneficiary");
    move_to(&ngo, &seen, "pending_validation").await.expect(200);
}

async fn history() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let person = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let path = path_of(&name);
    let cash = entitle(&api, cash_body(&name, &person, 10.0)).await;
    let before = api.get(&path).await.body["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_owned();
    move_to(&api, &cash, "pending_validation").await.expect(200);
    move_to(&api, &path, "to_approve").await.expect(200);
    let versions = api.get(&format!("{path}/_history")).await;
    versions.expect(200);
    assert_eq!(versions.body["total"], 2, "{}", versions.text);
    let first = api.get(&format!("{path}/_history/1")).await;
    first.expect(200);
    assert_eq!(first.body["state"], "draft");
    let then = api
        .get(&format!(
            "{path}?_at={}",
            crate::support::query_instant(&before)
        ))
        .await;
    then.expect(200);
    assert_eq!(then.body["state"], "draft");
    for resource in [&path, &cash] {
        let verified = api.get(&format!("{resource}/_history/$verify")).await;
        verified.expect(200);
        assert_eq!(verified.body["valid"], true, "{}", verified.text);
    }
    let entitlement_versions = api.get(&format!("{cash}/_history")).await;
    assert_eq!(entitlement_versions.body["total"], 2);
    // Every access is logged: a read of the entitlement names it and its beneficiary.
    let credentials = create_client(&world().database_url, &["--scope", "entitlement:read"]);
    let reader = Api::new(&world().base).login(&credentials).await;
    reader.get(&cash).await.expect(200);
    let code = cash.rsplit('/').next().unwrap();
    let query = format!("client={}", credentials.client_id);
    let event = audit_event_where(&api, &query, |e| e.to_string().contains(code)).await;
    assert!(event.to_string().contains(&person), "{event}");
}

async fn discovery() {
    let api = admin().await;
    let metadata = api.get("/api/v2/spp/metadata").await;
    metadata.expect(200);
    for resource in [
        "Cycle",
        "Entitlement",
        "ServicePoint",
        "Product",
        "ProductCategory",
        "UnitOfMeasure",
    ] {
        let entry = &metadata.body["resources"][resource];
        assert!(
            entry["operations"]
                .as_array()
                .is_some_and(|o| !o.is_empty()),
            "{resource}"
        );
    }
    let params = metadata.body["resources"]["Entitlement"]["search_params"].to_string();
    for param in [
        "beneficiary",
        "cycle",
        "entitlementType",
        "validFrom",
        "validUntil",
    ] {
        assert!(params.contains(param), "{param} in {params}");
    }
    let document = api.get("/api/v2/spp/openapi.json").await;
    for path in [
        "/api/v2/spp/Cycle",
        "/api/v2/spp/Cycle/{id}",
        "/api/v2/spp/Entitlement/{id}/_history",
        "/api/v2/spp/ProductCategory",
        "/api/v2/spp/ProductCategory/{id}",
        "/api/v2/spp/UnitOfMeasure",
        "/api/v2/spp/UnitOfMeasure/{id}",
    ] {
        assert!(document.body["paths"].get(path).is_some(), "{path}");
    }
}

const SERVICE_POINT: &str = "/api/v2/spp/ServicePoint";

fn service_point_body(name: &str, area: &str, country: &str, active: bool) -> Value {
    json!({"name": name, "contractActive": active, "country": country,
           "area": {"reference": format!("Area/{area}")},
           "address": {"text": "12 Rizal Ave", "type": "physical"},
           "telecom": [{"system": "phone", "value": "+63 2 123 4567", "use": "work"}],
           "company": {"reference": "Organization/PayCo"},
           "serviceType": ["CASH"]})
}

async fn service_points() {
    let api = admin().await;
    let tag = unique("SP");
    let manila = format!("{tag} Manila Center");
    let created = api
        .post(
            SERVICE_POINT,
            service_point_body(&manila, "Manila", "PH", true),
        )
        .await;
    created.expect(201);
    let path = created.header("location").unwrap().to_owned();
    assert_eq!(path, format!("{SERVICE_POINT}/{}", urlencoding(&manila)));
    let read = api.get(&path).await;
    read.expect(200);
    assert!(read.header("etag").is_some());
    let point = &read.body;
    assert_eq!(point["resourceType"], "ServicePoint");
    assert_eq!(point["identifier"], manila.as_str());
    assert_eq!(point["area"]["reference"], "Area/Manila");
    assert_eq!(point["company"]["reference"], "Organization/PayCo");
    assert_eq!(point["telecom"][0]["use"], "work");
    assert_eq!(point["serviceType"], json!(["Cash Distribution"]));
    assert_eq!(
        point["address"],
        json!({"text": "12 Rizal Ave", "type": "physical"})
    );
    let cebu = format!("{tag} Cebu Hub");
    api.post(
        SERVICE_POINT,
        service_point_body(&cebu, "Cebu City", "PH", false),
    )
    .await
    .expect(201);
    // OpenSPP's searches answer a Bundle, in name order.
    let all = api.get(&format!("{SERVICE_POINT}?name={tag}")).await;
    all.expect(200);
    assert_eq!(all.body["resourceType"], "Bundle");
    assert_eq!(all.body["type"], "searchset");
    assert_eq!(all.body["total"], 2);
    assert_eq!(all.body["entry"][0]["resource"]["name"], cebu.as_str());
    assert_eq!(all.body["link"][0]["relation"], "self");
    for (query, expected) in [
        ("area=cebu", 1),
        ("country=ph", 2),
        ("contractActive=true", 1),
        ("contractActive=false", 1),
        ("_lastUpdated=ge2020-01-01", 2),
        ("_lastUpdated=le2020-01-01", 0),
    ] {
        let reply = api
            .get(&format!("{SERVICE_POINT}?name={tag}&{query}"))
            .await;
        assert_eq!(reply.body["total"], expected, "{query}: {}", reply.text);
    }
    let paged = api
        .get(&format!("{SERVICE_POINT}?name={tag}&_count=1"))
        .await;
    let relations: Vec<&str> = paged.body["link"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["relation"].as_str().unwrap())
        .collect();
    assert_eq!(relations, ["self", "next"]);
    // Sent back as read (display names and all) with a change; the name never changes.
    let mut body = point.clone();
    body["contractActive"] = json!(false);
    let changed = api.put(&path, body, None).await;
    changed.expect(200);
    assert_eq!(changed.body["contractActive"], false);
    assert_eq!(changed.body["serviceType"], json!(["Cash Distribution"]));
    let mut renamed = changed.body.clone();
    renamed["name"] = json!(format!("{tag} elsewhere"));
    renamed.as_object_mut().unwrap().remove("identifier");
    api.put(&path, renamed, None).await.expect(422);
    api.post(
        SERVICE_POINT,
        service_point_body(&manila, "Manila", "PH", true),
    )
    .await
    .expect(409);
    let unknown_type = {
        let mut body = service_point_body(&format!("{tag} x"), "Manila", "PH", true);
        body["serviceType"] = json!(["TELEPORT"]);
        body
    };
    let refused = api.post(SERVICE_POINT, unknown_type).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "serviceType");
    api.get(&format!("{SERVICE_POINT}/{}", urlencoding(&unique("none"))))
        .await
        .expect(404);
    let versions = api.get(&format!("{path}/_history")).await;
    assert_eq!(versions.body["total"], 2);
    let outsider = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "cycle:read"],
        ))
        .await;
    outsider.get(&path).await.expect(403);
    outsider.get(SERVICE_POINT).await.expect(403);
}

const PRODUCT: &str = "/api/v2/spp/Product";

fn product_body(name: &str, code: Option<&str>, category: &str) -> Value {
    let mut body = json!({"name": name,
           "category": {"reference": format!("ProductCategory/{category}")},
           "unitOfMeasure": {"reference": "UnitOfMeasure/kg"},
           "listPrice": 1250.5, "currency": "PHP"});
    if let Some(code) = code {
        body["defaultCode"] = json!(code);
    }
    body
}

async fn products() {
    let api = admin().await;
    let tag = unique("PR");
    let code = format!("{tag}-RICE");
    let rice = format!("{tag} Rice 25kg");
    let created = api
        .post(PRODUCT, product_body(&rice, Some(&code), "Food"))
        .await;
    created.expect(201);
    let path = created.header("location").unwrap().to_owned();
    assert_eq!(path, format!("{PRODUCT}/{}", urlencoding(&code)));
    let read = api.get(&path).await;
    read.expect(200);
    assert!(read.header("etag").is_some());
    let product = &read.body;
    assert_eq!(product["resourceType"], "Product");
    assert_eq!(product["identifier"], code.as_str());
    assert_eq!(product["defaultCode"], code.as_str());
    assert_eq!(product["category"]["reference"], "ProductCategory/Food");
    assert_eq!(product["unitOfMeasure"]["reference"], "UnitOfMeasure/kg");
    assert_eq!(product["listPrice"], 1250.5);
    assert_eq!(product["currency"], "PHP");
    assert_eq!(product["active"], true);
    assert_eq!(product["hasImage"], false);
    assert!(product.get("id").is_none());
    // OpenSPP's lookup: the default code, else the exact name (URL-encoded).
    let by_name = api.get(&format!("{PRODUCT}/{}", urlencoding(&rice))).await;
    by_name.expect(200);
    assert_eq!(by_name.body["identifier"], code.as_str());
    // An in-kind entitlement may name it as OpenSPP looks it up; it is recorded by its key.
    let (_, program) = new_program(&api, "individual").await;
    let person = member(&api, &program).await;
    let cycle = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    stocked_collection_point(&api).await;
    let mut goods = goods_body(&cycle, &person);
    goods["items"][0]["product"]["reference"] = json!(format!("Product/{rice}"));
    let entitled = api.post(ENTITLEMENT, goods).await;
    entitled.expect(201);
    assert_eq!(
        entitled.body["items"][0]["product"]["reference"],
        format!("Product/{code}")
    );
    // Without a code, the name is the identifier and there is no defaultCode.
    let soap = format!("{tag} Soap bar");
    let uncoded = api
        .post(PRODUCT, product_body(&soap, None, "Hygiene"))
        .await;
    uncoded.expect(201);
    assert_eq!(uncoded.body["identifier"], soap.as_str());
    assert!(uncoded.body.get("defaultCode").is_none());

    // OpenSPP's searches answer a Bundle, in name order.
    let all = api.get(&format!("{PRODUCT}?name={tag}")).await;
    all.expect(200);
    assert_eq!(all.body["resourceType"], "Bundle");
    assert_eq!(all.body["type"], "searchset");
    assert_eq!(all.body["total"], 2);
    assert_eq!(all.body["entry"][0]["resource"]["name"], rice.as_str());
    assert_eq!(all.body["entry"][0]["search"]["mode"], "match");
    let named = api
        .get(&format!(
            "{PRODUCT}?name={}",
            urlencoding(&format!("{tag} rice"))
        ))
        .await;
    assert_eq!(named.body["total"], 1, "{}", named.text);
    for (query, expected) in [
        ("code=rice", 1),
        (&*format!("code={}", code.to_lowercase()), 1),
        ("category=foo", 1),
        ("category=HYG", 1),
        ("category=nothing", 0),
        ("_lastUpdated=ge2020-01-01", 2),
        ("_lastUpdated=le2020-01-01", 0),
    ] {
        let reply = api.get(&format!("{PRODUCT}?name={tag}&{query}")).await;
        assert_eq!(reply.body["total"], expected, "{query}: {}", reply.text);
    }
    let paged = api.get(&format!("{PRODUCT}?name={tag}&_count=1")).await;
    assert_eq!(paged.body["entry"].as_array().unwrap().len(), 1);
    assert_eq!(paged.body["link"][1]["relation"], "next");

    // Sent back as read with a change; the key never changes, a key is taken once.
    let mut body = product.clone();
    body["name"] = json!(format!("{rice} sack"));
    body["active"] = json!(false);
    let changed = api.put(&path, body, None).await;
    changed.expect(200);
    assert_eq!(changed.body["active"], false);
    let mut recoded = changed.body.clone();
    recoded["defaultCode"] = json!(format!("{tag}-OTHER"));
    recoded.as_object_mut().unwrap().remove("identifier");
    let refused = api.put(&path, recoded, None).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "defaultCode");
    api.post(PRODUCT, product_body("Other", Some(&code), "Food"))
        .await
        .expect(409);
    let unfiled = api
        .post(PRODUCT, product_body(&format!("{tag} x"), None, "Weapons"))
        .await;
    unfiled.expect(422);
    assert_eq!(expression(&unfiled), "category");
    let mut cheap = product_body(&format!("{tag} x"), None, "Food");
    cheap["currency"] = json!("php");
    let refused = api.post(PRODUCT, cheap).await;
    refused.expect(422);
    assert_eq!(expression(&refused), "currency");
    api.get(&format!("{PRODUCT}/{}", urlencoding(&unique("none"))))
        .await
        .expect(404);
    let versions = api.get(&format!("{path}/_history")).await;
    assert_eq!(versions.body["total"], 2);
    let first = api.get(&format!("{path}/_history/1")).await;
    assert_eq!(first.body["name"], rice.as_str());
    let then = api
        .get(&format!(
            "{path}?_at={}",
            crate::support::query_instant(product["meta"]["lastUpdated"].as_str().unwrap())
        ))
        .await;
    then.expect(200);
    assert_eq!(then.body["active"], true);
    let verified = api.get(&format!("{path}/_history/$verify")).await;
    assert_eq!(verified.body["valid"], true, "{}", verified.text);
    // Every access is logged, naming the product.
    let credentials = create_client(&world().database_url, &["--scope", "product:read"]);
    let reader = Api::new(&world().base).login(&credentials).await;
    reader.get(&path).await.expect(200);
    let query = format!("client={}", credentials.client_id);
    audit_event_where(&api, &query, |e| e.to_string().contains(&code)).await;
    let outsider = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "cycle:read"],
        ))
        .await;
    outsider.get(&path).await.expect(403);
    outsider.get(PRODUCT).await.expect(403);
    for other in ["/api/v2/spp/ProductCategory", "/api/v2/spp/UnitOfMeasure"] {
        outsider.get(other).await.expect(403);
        outsider.get(&format!("{other}/All")).await.expect(403);
    }
}

/// Categories and units are OpenSPP's resources, by name, kept as vocabularies.
async fn categories_and_units() {
    let api = admin().await;
    let food = api.get("/api/v2/spp/ProductCategory/Food").await;
    food.expect(200);
    assert_eq!(food.body["resourceType"], "ProductCategory");
    assert_eq!(food.body["identifier"], "Food");
    assert_eq!(food.body["parent"]["reference"], "ProductCategory/All");
    let root = api.get("/api/v2/spp/ProductCategory/All").await;
    root.expect(200);
    assert!(root.body.get("parent").is_none());
    assert!(root.body.get("id").is_none());
    let named = api.get("/api/v2/spp/ProductCategory?name=foo").await;
    named.expect(200);
    assert_eq!(named.body["type"], "searchset");
    assert_eq!(named.body["total"], 2, "{}", named.text);
    assert_eq!(named.body["entry"][0]["resource"]["name"], "Food");
    let paged = api.get("/api/v2/spp/ProductCategory?_count=2").await;
    assert_eq!(paged.body["entry"].as_array().unwrap().len(), 2);
    assert_eq!(paged.body["link"][1]["relation"], "next");
    let none = api.get("/api/v2/spp/ProductCategory?name=zzz").await;
    assert_eq!(none.body["total"], 0);
    assert_eq!(none.body["entry"], json!([]));
    assert_eq!(none.body["link"][0]["relation"], "self");
    let gram = api.get("/api/v2/spp/UnitOfMeasure/g").await;
    gram.expect(200);
    assert_eq!(gram.body["resourceType"], "UnitOfMeasure");
    assert_eq!(gram.body["category"]["reference"], "UnitOfMeasure/kg");
    // OpenSPP's conversion: a gram is a thousandth of its reference unit, rounded to 0.01.
    assert_eq!(gram.body["factor"], 0.001, "{}", gram.text);
    assert_eq!(gram.body["rounding"], 0.01);
    let kilogram = api.get("/api/v2/spp/UnitOfMeasure/kg").await;
    assert_eq!(kilogram.body["factor"], 1.0, "{}", kilogram.text);
    assert!(kilogram.body.get("category").is_none());
    let by_reference = api.get("/api/v2/spp/UnitOfMeasure?category=kg").await;
    assert_eq!(by_reference.body["total"], 1, "{}", by_reference.text);
    assert_eq!(by_reference.body["entry"][0]["resource"]["name"], "g");
    api.get("/api/v2/spp/UnitOfMeasure/furlong")
        .await
        .expect(404);
    api.get("/api/v2/spp/ProductCategory/Weapons")
        .await
        .expect(404);
    api.get("/api/v2/spp/UnitOfMeasure?colour=red")
        .await
        .expect(400);
}

/// Posts `body` to /Entitlement while a transaction holds `row` (a read-model row the
/// entitlement is decided on) locked, waits until the entitlement's append waits for it, then
/// runs `change` on it in that transaction and commits; answers the entitlement's reply.
async fn entitle_while_held(api: &Api, body: Value, row: &str, change: &str) -> Reply {
    let url = &world().database_url;
    let held = HeldTransaction::begin(url, &format!("SELECT 1 FROM {row} FOR UPDATE;")).await;
    let posted = tokio::spawn({
        let api = api.clone();
        async move { api.post(ENTITLEMENT, body).await }
    });
    held.wait_until_blocking().await;
    held.commit_with(change);
    posted.await.unwrap()
}

/// An entitlement is decided on its cycle being draft and its beneficiary being enrolled, read
/// from the read models; its append holds both rows until it commits, so a cycle submitted or
/// an enrolment ended meanwhile is seen, and the entitlement is refused exactly as after that
/// change, writing nothing. A change that keeps what it relied on lets it through.
async fn held_cycle_and_enrolment() {
    let api = admin().await;
    let url = &world().database_url;
    let (_, program) = new_program(&api, "individual").await;
    let id = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let cycle = format!("cycle_view WHERE name = '{name}'");
    let set_cycle = |state: &str| {
        format!(
            "UPDATE cycle_view SET status = '{state}', \
             state = jsonb_set(state, '{{state}}', '\"{state}\"') WHERE name = '{name}'"
        )
    };
    let in_cycle = format!(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Entitlement' \
         AND payload->'EntitlementCreated'->>'cycle' = (SELECT aggregate_id FROM {cycle})"
    );
    // Touched, still draft: the entitlement waits for it, then goes through.
    let reply = entitle_while_held(
        &api,
        cash_body(&name, &id, 100.0),
        &cycle,
        &format!("UPDATE cycle_view SET last_updated = now() WHERE name = '{name}';"),
    )
    .await;
    reply.expect(201);
    assert_eq!(sql_scalar(url, &in_cycle), "1");
    // Submitted while the entitlement's append waited: refused as for a submitted cycle.
    let reply = entitle_while_held(
        &api,
        cash_body(&name, &id, 100.0),
        &cycle,
        &format!("{};", set_cycle("to_approve")),
    )
    .await;
    reply.expect(409);
    assert_eq!(expression(&reply), "cycle", "{}", reply.text);
    assert!(
        diagnostics(&reply).contains("this one is to_approve"),
        "{}",
        reply.text
    );
    assert_eq!(sql_scalar(url, &in_cycle), "1", "nothing was written");
    // Decided twice (`commit_afresh`), logged as one access naming each subject once.
    let request = reply.header("x-request-id").unwrap();
    let logged = format!(
        "SELECT count(*) || ' ' || count(DISTINCT s) FROM access_log, unnest(subjects) s \
         WHERE request_id = '{request}'"
    );
    let mut counted = sql_scalar(url, &logged);
    for _ in 0..300 {
        if counted != "0 0" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        counted = sql_scalar(url, &logged);
    }
    let (all, distinct) = counted.split_once(' ').unwrap();
    assert!(all != "0" && all == distinct, "{counted}");
    sql_scalar(url, &format!("{} RETURNING 1", set_cycle("draft")));
    // The enrolment ended while the entitlement's append waited: refused as for a stranger.
    let membership = format!(
        "membership_view WHERE program_id = (SELECT program_id FROM {cycle}) \
         AND beneficiary_id = (SELECT aggregate_id FROM identifier_claims WHERE value = '{id}')"
    );
    let exited = format!(
        "UPDATE membership_view SET status = 'exited', \
         state = jsonb_set(state, '{{status}}', '\"exited\"') \
         WHERE aggregate_id = (SELECT aggregate_id FROM {membership});"
    );
    let reply = entitle_while_held(&api, cash_body(&name, &id, 50.0), &membership, &exited).await;
    reply.expect(422);
    assert_eq!(expression(&reply), "beneficiary", "{}", reply.text);
    assert_eq!(sql_scalar(url, &in_cycle), "1", "nothing was written");
}

/// A cycle's `ETag` changes when its statistics do (they change as its entitlements are
/// written, not its version), so a copy held is not answered 304 once they moved; `If-Match`
/// still checks the cycle's version.
async fn etag_follows_statistics() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let id = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let path = path_of(&name);
    let get = |held: String| {
        let (api, path) = (api.clone(), path.clone());
        async move {
            api.send(
                Method::GET,
                &path,
                None,
                &[("if-none-match", held.as_str())],
            )
            .await
        }
    };
    let read = api.get(&path).await;
    let held = read.header("etag").unwrap().to_owned();
    assert_eq!(get(held.clone()).await.status, 304);
    entitle(&api, cash_body(&name, &id, 100.0)).await;
    let fresh = get(held.clone()).await;
    fresh.expect(200);
    assert_eq!(fresh.body["statistics"]["entitlementsCount"], 1);
    assert_eq!(
        fresh.body["meta"]["versionId"], "1",
        "the cycle itself did not change"
    );
    let current = fresh.header("etag").unwrap().to_owned();
    assert_ne!(current, held);
    assert_eq!(get(current.clone()).await.status, 304);
    // A write is checked against the version the tag names.
    let mut body = fresh.body.clone();
    body["state"] = json!("to_approve");
    api.put(&path, body.clone(), Some("\"0.00\""))
        .await
        .expect(412);
    api.put(&path, body, Some(current.as_str()))
        .await
        .expect(200);
}

/// An entitlement is decided on its cycle as committed (draft); a transaction Bundle that also
/// submits that cycle would commit an entitlement in a cycle under approval. Refused whole
/// (409), nothing written.
async fn bundle_moving_the_cycle() {
    let api = admin().await;
    let url = &world().database_url;
    let (_, program) = new_program(&api, "individual").await;
    let first = member(&api, &program).await;
    let second = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    entitle(&api, cash_body(&name, &first, 100.0)).await;
    let read = api.get(&path_of(&name)).await;
    read.expect(200);
    let mut submitted = read.body.clone();
    submitted["state"] = json!("to_approve");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": submitted,
         "request": {"method": "PUT", "url": format!("Cycle/{}", urlencoding(&name))}},
        {"resource": cash_body(&name, &second, 50.0),
         "request": {"method": "POST", "url": "Entitlement"}},
    ]});
    let reply = api.post("/api/v2/spp/$batch", bundle).await;
    reply.expect(409);
    let of_second = format!(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Entitlement' \
         AND payload->'EntitlementCreated'->>'beneficiary' = \
             (SELECT aggregate_id FROM identifier_claims WHERE value = '{second}')"
    );
    assert_eq!(sql_scalar(url, &of_second), "0", "{}", reply.text);
    let after = api.get(&path_of(&name)).await;
    after.expect(200);
    assert_eq!(
        after.body["state"], "draft",
        "nothing of the Bundle was written"
    );
}

/// The state the resource at `path` is read in.
async fn state_of(api: &Api, path: &str) -> String {
    let read = api.get(path).await;
    read.expect(200);
    read.body["state"].as_str().unwrap_or_default().to_owned()
}

/// The code of the entitlement at `path`.
fn code_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

/// How many events the entitlement at `path` has (its stream's length).
fn events_of(path: &str) -> String {
    sql_scalar(
        &world().database_url,
        &format!(
            "SELECT count(*) FROM events e JOIN entitlement_view v \
             ON v.aggregate_id = e.aggregate_id AND e.aggregate_type = 'Entitlement' \
             WHERE v.code = '{}'",
            code_of(path)
        ),
    )
}

/// OpenSPP's cascades (`spp.cycle`): a submitted cycle's draft entitlements await approval; a
/// rejected cycle's pending cash entitlements are cancelled; a cycle reset to draft resets its
/// pending and cancelled cash entitlements (in-kind ones stay: OpenSPP's reject and reset touch
/// the cycle's cash entitlements only). Each move is an event on the entitlement's own stream,
/// committed with the cycle's in one transaction, with the request's provenance, and shown in
/// its history; the statistics stay right. A membership exit moves nothing.
async fn cascade_follows_the_cycle() {
    let api = admin().await;
    let url = &world().database_url;
    let (_, program) = new_program(&api, "individual").await;
    stocked_collection_point(&api).await;
    let first = member(&api, &program).await;
    let second = member(&api, &program).await;
    let third = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let path = path_of(&name);
    let cash = entitle(&api, cash_body(&name, &first, 100.0)).await;
    let other = entitle(&api, cash_body(&name, &second, 50.0)).await;
    let goods = entitle(&api, goods_body(&name, &first)).await;
    let dropped = entitle(&api, cash_body(&name, &third, 25.0)).await;
    move_to(&api, &dropped, "cancelled").await.expect(200);
    let statistics = api.get(&path).await.body["statistics"].clone();
    assert_eq!(statistics["entitlementsCount"], 3, "{statistics}");

    let states = |paths: [&String; 4]| {
        let api = api.clone();
        let paths: Vec<String> = paths.iter().map(|p| (*p).clone()).collect();
        async move {
            let mut states = Vec::new();
            for path in &paths {
                states.push(state_of(&api, path).await);
            }
            states
        }
    };
    let all = [&cash, &other, &goods, &dropped];

    // Submitted: every draft entitlement awaits approval, in the cycle's own commit.
    let submitted = move_to(&api, &path, "to_approve").await;
    submitted.expect(200);
    assert_eq!(
        submitted.body["statistics"], statistics,
        "{}",
        submitted.text
    );
    assert_eq!(
        states(all).await,
        [
            "pending_validation",
            "pending_validation",
            "pending_validation",
            "cancelled"
        ]
    );
    let request = submitted.header("x-request-id").unwrap().to_owned();
    let written = format!(
        "SELECT count(*) || ' ' || count(DISTINCT tx_id) || ' ' || \
                count(*) FILTER (WHERE aggregate_type = 'Entitlement' \
                  AND payload->'EntitlementStateChanged'->>'with_cycle' = 'to_approve' \
                  AND metadata->>'client_id' = '{}') \
         FROM events WHERE metadata->>'request_id' = '{request}'",
        world().admin.client_id
    );
    assert_eq!(
        sql_scalar(url, &written),
        "4 1 3",
        "the cycle's event and three entitlements', in one transaction, as the request's"
    );
    let history = api.get(&format!("{cash}/_history")).await;
    history.expect(200);
    assert_eq!(history.body["total"], 2, "{}", history.text);
    assert!(
        history.text.contains("pending_validation"),
        "{}",
        history.text
    );
    let verified = api.get(&format!("{cash}/_history/$verify")).await;
    assert_eq!(verified.body["valid"], true, "{}", verified.text);

    // Rejected: its pending cash entitlements are cancelled; the goods stay pending.
    let rejected = move_to(&api, &path, "cancelled").await;
    rejected.expect(200);
    assert_eq!(rejected.body["statistics"], statistics);
    assert_eq!(
        states(all).await,
        ["cancelled", "cancelled", "pending_validation", "cancelled"]
    );

    // Reset: its pending and cancelled cash entitlements are draft again (the one cancelled on
    // its own too, as OpenSPP resets every cancelled one of the cycle); the goods stay.
    let reset = move_to(&api, &path, "draft").await;
    reset.expect(200);
    assert_eq!(reset.body["statistics"], statistics);
    assert_eq!(
        states(all).await,
        ["draft", "draft", "pending_validation", "draft"]
    );
    let moves = format!(
        "SELECT string_agg(payload->'EntitlementStateChanged'->>'to', ',' ORDER BY sequence) \
         FROM events e JOIN entitlement_view v ON v.aggregate_id = e.aggregate_id \
         WHERE e.aggregate_type = 'Entitlement' AND v.code = '{}'",
        code_of(&cash)
    );
    assert_eq!(
        sql_scalar(url, &moves),
        "pending_validation,cancelled,draft"
    );

    // A membership exit has no cascade.
    let fourth = unique("DLV");
    register_individual(&api, &fourth).await;
    let enrolled = enrol(&api, &program, &fourth, "enrolled").await;
    enrolled.expect(201);
    let membership = minted_path(&enrolled);
    let mine = entitle(&api, cash_body(&name, &fourth, 10.0)).await;
    let mut body = change_body(&api, &membership, "exited").await;
    body["exitDate"] = json!(chrono::Utc::now().date_naive().to_string());
    api.put(&membership, body, None).await.expect(200);
    assert_eq!(state_of(&api, &mine).await, "draft");
    assert_eq!(events_of(&mine), "1");
}

/// Moves the entitlement at `moved` to `state` and submits cycle `name` at the same time, the
/// entitlement's write first: it is held (its read-model row locked) after it took its cycle's
/// row, the cycle's change is sent and waits for it, then both go on. Answers both replies.
async fn submit_while_entitlement_moves(
    api: &Api,
    name: &str,
    moved: &str,
    state: &str,
) -> (Reply, Reply) {
    let url = &world().database_url;
    let held = HeldTransaction::begin(
        url,
        &format!(
            "SELECT 1 FROM entitlement_view WHERE code = '{}' FOR UPDATE;",
            code_of(moved)
        ),
    )
    .await;
    let entitlement = tokio::spawn({
        let (api, moved, state) = (api.clone(), moved.to_owned(), state.to_owned());
        async move { move_to(&api, &moved, &state).await }
    });
    held.wait_until_blocking().await;
    let cycle = tokio::spawn({
        let (api, path) = (api.clone(), path_of(name));
        async move { move_to(&api, &path, "to_approve").await }
    });
    held.wait_until_blocking_behind().await;
    held.commit_with("");
    (entitlement.await.unwrap(), cycle.await.unwrap())
}

/// An entitlement that becomes draft while its cycle is being submitted (a reset of a cancelled
/// one, committed after the cycle's change read its entitlements and before it committed) is not
/// left behind as a draft in a cycle under approval: the change sees it and moves it too.
async fn cascade_sees_a_late_entitlement() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let (first, second) = (member(&api, &program).await, member(&api, &program).await);
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let early = entitle(&api, cash_body(&name, &first, 100.0)).await;
    let late = entitle(&api, cash_body(&name, &second, 50.0)).await;
    move_to(&api, &late, "cancelled").await.expect(200);
    let (reset, submitted) = submit_while_entitlement_moves(&api, &name, &late, "draft").await;
    reset.expect(200);
    submitted.expect(200);
    assert_eq!(state_of(&api, &path_of(&name)).await, "to_approve");
    assert_eq!(state_of(&api, &early).await, "pending_validation");
    assert_eq!(state_of(&api, &late).await, "pending_validation");
    // created, cancelled, reset (by its own writer), submitted with the cycle
    assert_eq!(events_of(&late), "4");
    assert_eq!(events_of(&early), "2");
}

/// A cycle's change and its entitlements' moves are written together or not at all: when
/// another writer moves one of those entitlements first, the change's commit writes nothing and
/// it is decided again on what now holds (that writer's change is not lost); and in a
/// transaction Bundle whose other entry is refused, nothing of the cascade is written.
async fn cascade_all_or_nothing() {
    let api = admin().await;
    let url = &world().database_url;
    let (_, program) = new_program(&api, "individual").await;
    let (first, second) = (member(&api, &program).await, member(&api, &program).await);
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let kept = entitle(&api, cash_body(&name, &first, 100.0)).await;
    let raced = entitle(&api, cash_body(&name, &second, 50.0)).await;
    let (cancelled, submitted) =
        submit_while_entitlement_moves(&api, &name, &raced, "cancelled").await;
    cancelled.expect(200);
    submitted.expect(200);
    assert_eq!(state_of(&api, &raced).await, "cancelled", "not lost");
    assert_eq!(events_of(&raced), "2", "created, cancelled: nothing else");
    assert_eq!(state_of(&api, &kept).await, "pending_validation");
    assert_eq!(
        events_of(&kept),
        "2",
        "moved once: the refused commit wrote nothing"
    );
    let cycle_events = format!(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Cycle' \
         AND aggregate_id = (SELECT aggregate_id FROM cycle_view WHERE name = '{name}')"
    );
    assert_eq!(sql_scalar(url, &cycle_events), "2");

    // A Bundle that submits a cycle (moving its entitlement) and makes an impossible move
    // elsewhere: refused whole.
    let third = member(&api, &program).await;
    let other_program = new_program(&api, "individual").await.1;
    let fourth = member(&api, &other_program).await;
    let next = new_cycle(&api, &program, "2024-04-01", "2024-06-30").await;
    let elsewhere = new_cycle(&api, &other_program, "2024-01-01", "2024-03-31").await;
    let waiting = entitle(&api, cash_body(&next, &third, 10.0)).await;
    let stranger = entitle(&api, cash_body(&elsewhere, &fourth, 10.0)).await;
    let mut submitted = api.get(&path_of(&next)).await.body.clone();
    submitted["state"] = json!("to_approve");
    let mut impossible = api.get(&stranger).await.body.clone();
    impossible["state"] = json!("rdpd2ben");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": submitted,
         "request": {"method": "PUT", "url": format!("Cycle/{}", urlencoding(&next))}},
        {"resource": impossible,
         "request": {"method": "PUT", "url": format!("Entitlement/{}", code_of(&stranger))}},
    ]});
    let reply = api.post("/api/v2/spp/$batch", bundle).await;
    reply.expect(422);
    assert!(
        diagnostics(&reply).ends_with("the transaction applied nothing"),
        "{}",
        reply.text
    );
    assert_eq!(
        state_of(&api, &path_of(&next)).await,
        "draft",
        "{}",
        reply.text
    );
    assert_eq!(state_of(&api, &waiting).await, "draft");
    assert_eq!(events_of(&waiting), "1");
    // The same Bundle without the refusal commits the cycle and its entitlement together.
    let mut submitted = api.get(&path_of(&next)).await.body.clone();
    submitted["state"] = json!("to_approve");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": submitted,
         "request": {"method": "PUT", "url": format!("Cycle/{}", urlencoding(&next))}},
    ]});
    api.post("/api/v2/spp/$batch", bundle).await.expect(200);
    assert_eq!(state_of(&api, &waiting).await, "pending_validation");
}

/// Only a cycle's `ETag` has the `"<version>.<digest>"` form: sent to another resource, such a
/// tag was never issued for it and its precondition fails (412) whatever version it starts with.
async fn digest_is_the_cycles() {
    let api = admin().await;
    let (_, program) = new_program(&api, "individual").await;
    let id = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let cash = entitle(&api, cash_body(&name, &id, 100.0)).await;
    let read = api.get(&cash).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    let mut body = read.body.clone();
    body["state"] = json!("pending_validation");
    for tag in ["\"1.00ab9f\"", "W/\"1.00ab9f\""] {
        let refused = api.put(&cash, body.clone(), Some(tag)).await;
        refused.expect(412);
    }
    assert_eq!(state_of(&api, &cash).await, "draft");
    api.put(&cash, body, Some("\"1\"")).await.expect(200);
    // The cycle's own tag names its version.
    let read = api.get(&path_of(&name)).await;
    let tag = read.header("etag").unwrap().to_owned();
    assert!(tag.starts_with("\"1."), "{tag}");
    let mut body = read.body.clone();
    body["state"] = json!("to_approve");
    api.put(&path_of(&name), body, Some(tag.as_str()))
        .await
        .expect(200);
}

/// Goods recorded with a unit the catalogue does not know (free text, stored before units were
/// checked) still change state when the body restates them as stored; a change of the goods is
/// refused as ever (they never change), naming them.
async fn free_text_unit() {
    let api = admin().await;
    let url = &world().database_url;
    let (_, program) = new_program(&api, "individual").await;
    stocked_collection_point(&api).await;
    let id = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let goods = entitle(&api, goods_body(&name, &id)).await;
    // As written before units were checked against the catalogue.
    let code = code_of(&goods);
    sql_scalar(
        url,
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, \
                 '{{EntitlementCreated,benefit,inkind,unit}}', '\"bag of 25 kg\"') \
             WHERE aggregate_type = 'Entitlement' AND sequence = 1 AND aggregate_id = \
                 (SELECT aggregate_id FROM entitlement_view WHERE code = '{code}'); \
             UPDATE entitlement_view SET state = jsonb_set(state, \
                 '{{benefit,inkind,unit}}', '\"bag of 25 kg\"') WHERE code = '{code}'"
        ),
    );
    let read = api.get(&goods).await;
    read.expect(200);
    assert_eq!(
        read.body["items"][0]["quantity"]["unit"], "bag of 25 kg",
        "{}",
        read.text
    );
    let mut body = read.body.clone();
    body["items"][0]["quantity"]["value"] = json!(3);
    body["state"] = json!("pending_validation");
    let changed = api.put(&goods, body, None).await;
    changed.expect(422);
    assert!(
        expression(&changed).starts_with("items"),
        "{}",
        changed.text
    );
    let mut body = read.body.clone();
    body["state"] = json!("pending_validation");
    let moved = api.put(&goods, body, None).await;
    moved.expect(200);
    assert_eq!(moved.body["state"], "pending_validation");
    assert_eq!(moved.body["items"][0]["quantity"]["unit"], "bag of 25 kg");
}

/// Posts `entries` (resource, url) as a batch Bundle; every entry must be created.
async fn created_in_batch(api: &Api, entries: Vec<(Value, &str)>) {
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|(resource, url)| json!({"resource": resource, "request": {"method": "POST", "url": url}}))
        .collect();
    let reply = api
        .post(
            "/api/v2/spp/$batch",
            json!({"resourceType": "Bundle", "type": "batch", "entry": entry}),
        )
        .await;
    reply.expect(200);
    for entry in reply.body["entry"].as_array().unwrap() {
        assert_eq!(entry["response"]["status"], "201 Created", "{entry}");
    }
}

/// A cycle of 200 entitlements moves with them in one commit (two reads, whatever their
/// number: the read model, then their streams at once), with its statistics unchanged.
async fn large_cycle() {
    const SIZE: usize = 200;
    let api = admin().await;
    let url = &world().database_url;
    let (_, program) = new_program(&api, "individual").await;
    let ids: Vec<String> = (0..SIZE).map(|_| unique("BIG")).collect();
    created_in_batch(
        &api,
        ids.iter()
            .map(|id| (individual_body(id), "Individual"))
            .collect(),
    )
    .await;
    created_in_batch(
        &api,
        ids.iter()
            .map(|id| {
                let membership = json!({"program": {"reference": format!("Program/{program}")},
                                        "beneficiary": {"reference": person(id)},
                                        "status": "enrolled"});
                (membership, "ProgramMembership")
            })
            .collect(),
    )
    .await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    created_in_batch(
        &api,
        ids.iter()
            .map(|id| (cash_body(&name, id, 10.0), "Entitlement"))
            .collect(),
    )
    .await;
    let path = path_of(&name);
    let statistics = api.get(&path).await.body["statistics"].clone();
    assert_eq!(statistics["entitlementsCount"], SIZE, "{statistics}");
    let started = std::time::Instant::now();
    let submitted = move_to(&api, &path, "to_approve").await;
    let took = started.elapsed();
    submitted.expect(200);
    eprintln!("a cycle of {SIZE} entitlements submitted in {took:?} (GET + PUT, debug build)");
    assert_eq!(submitted.body["statistics"], statistics);
    let request = submitted.header("x-request-id").unwrap();
    assert_eq!(
        sql_scalar(
            url,
            &format!(
                "SELECT count(*) || ' ' || count(DISTINCT tx_id) FROM events \
                 WHERE metadata->>'request_id' = '{request}'"
            )
        ),
        format!("{} 1", SIZE + 1)
    );
    let pending = format!(
        "SELECT count(*) FROM entitlement_view WHERE status = 'pending_validation' \
         AND cycle_id = (SELECT aggregate_id FROM cycle_view WHERE name = '{name}')"
    );
    assert_eq!(sql_scalar(url, &pending), SIZE.to_string());
}

/// An entitlement's answer is what a read of it shows (its program, beneficiary and cycle by
/// their names), rendered from what creating it found: after the commit nothing is read back.
/// Counted in the statements the server logs in the request's span (the append runs on the
/// store's writer, outside it).
async fn entitlement_answer_from_what_was_found() {
    let scopes = [
        "individual:all",
        "program:all",
        "program_membership:all",
        "cycle:all",
        "entitlement:all",
    ];
    let (_database, logged, api) = logged_client("openspp_entitle_answer", &scopes).await;
    let (_, program) = new_program(&api, "individual").await;
    let national_id = member(&api, &program).await;
    let name = new_cycle(&api, &program, "2024-01-01", "2024-03-31").await;
    let created = api
        .post(
            &format!("{ENTITLEMENT}?entitleprobe"),
            cash_body(&name, &national_id, 3000.0),
        )
        .await;
    created.expect(201);
    assert_eq!(
        created.body["program"]["reference"],
        format!("Program/{program}")
    );
    assert_eq!(
        created.body["beneficiary"]["reference"],
        person(&national_id)
    );
    assert_eq!(created.body["cycle"]["reference"], format!("Cycle/{name}"));
    assert_answer_is_read(&api, &created, created.header("location").unwrap()).await;
    logged
        .assert_within("entitleprobe", ENTITLE_STATEMENTS, "one entitlement")
        .await;
}

/// The statements a cash entitlement's creation runs in its request's span with the answer
/// rendered from what was found (the cycle, its program, the beneficiary's claim with its key,
/// the enrolment); reading the cycle's name and the references back after the commit fails
/// `entitlement_answer_from_what_was_found`.
const ENTITLE_STATEMENTS: usize = 5;
