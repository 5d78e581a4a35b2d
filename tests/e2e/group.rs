//! Groups over HTTP: members, roles, the one-head rule, and membership shown on individuals.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::support::{admin, path_id, register_individual, unique, Api, NATIONAL_ID};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "group::create_with_members_and_read_back",
            create_with_members,
        ),
        trial("group::add_and_remove_members", add_and_remove),
        trial("group::second_head_is_409", second_head),
        trial("group::member_twice_is_409", member_twice),
        trial("group::unknown_member_is_422", unknown_member),
        trial("group::search_by_name_and_type", search),
        trial("group::replace_swaps_the_head", swap_head),
        trial("group::unknown_group_type_and_role_are_422", unknown_codes),
        trial(
            "group::a_read_sent_back_keeps_ended_members_ended",
            read_sent_back,
        ),
    ]
}

fn role(code: &str) -> Value {
    json!({"coding": [{"system": "urn:openspp:vocab:group-membership-type", "code": code}]})
}

pub(crate) fn member(national_id: &str, code: &str) -> Value {
    json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{national_id}")}, "role": role(code)})
}

pub(crate) async fn new_group(api: &Api, members: Value) -> (String, String) {
    let value = unique("HH");
    let reply = api
        .post(
            "/api/v2/spp/Group",
            json!({
                "type": "Group",
                "identifier": [{"system": GROUP_SYSTEM, "value": value}],
                "groupType": "household",
                "name": format!("{value} Household"),
                "member": members,
            }),
        )
        .await;
    reply.expect(201);
    (
        value.clone(),
        format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &value)),
    )
}

async fn create_with_members() {
    let api = admin().await;
    let (a, b) = (unique("MA"), unique("MB"));
    let a_path = register_individual(&api, &a).await;
    register_individual(&api, &b).await;
    let (value, path) = new_group(&api, json!([member(&a, "head"), member(&b, "child")])).await;
    let group = api.get(&path).await;
    group.expect(200);
    assert_eq!(group.body["quantity"], 2);
    assert_eq!(group.body["groupType"], "household");
    assert_eq!(
        group.body["member"][0]["entity"]["reference"],
        format!("Individual/{NATIONAL_ID}|{a}")
    );
    assert_eq!(group.body["member"][0]["role"]["coding"][0]["code"], "head");
    assert_eq!(
        group.body["member"][0]["role"]["coding"][0]["display"],
        "Head of Household"
    );
    // The individual shows its membership.
    let individual = api.get(&a_path).await;
    assert_eq!(
        individual.body["groupMembership"][0]["group"]["reference"],
        format!("Group/{GROUP_SYSTEM}|{value}")
    );
}

async fn add_and_remove() {
    let api = admin().await;
    let a = unique("AR");
    let a_path = register_individual(&api, &a).await;
    let (_, path) = new_group(&api, json!([])).await;
    let added = api
        .post(&format!("{path}/$add-member"), member(&a, "member"))
        .await;
    added.expect(201);
    // Member operations answer OpenSPP's `GroupMember` (CONTRACT §4a); the group shows the count.
    assert_eq!(added.body["type"], "GroupMember", "{}", added.text);
    assert_eq!(
        added.body["entity"]["reference"],
        format!("Individual/{NATIONAL_ID}|{a}")
    );
    assert_eq!(added.body["status"], "active");
    assert_eq!(api.get(&path).await.body["quantity"], 1);
    let removed = api
        .post(
            &format!("{path}/$remove-member"),
            json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{a}")}, "reason": "moved"}),
        )
        .await;
    removed.expect(200);
    assert_eq!(removed.body["type"], "GroupMember", "{}", removed.text);
    assert_eq!(removed.body["status"], "inactive");
    assert!(removed.body["endedDate"].is_string(), "{}", removed.text);
    let group = api.get(&path).await;
    assert_eq!(group.body["quantity"], 0);
    assert_eq!(group.body["member"][0]["inactive"], true);
    assert!(group.body["member"][0]["period"]["end"].is_string());
    let individual = api.get(&a_path).await;
    assert!(
        individual.body["groupMembership"].is_null(),
        "ended memberships are not current"
    );
    // Removing again: not a member.
    api.post(
        &format!("{path}/$remove-member"),
        json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{a}")}}),
    )
    .await
    .expect(404);
}

async fn second_head() {
    let api = admin().await;
    let (a, b) = (unique("H1"), unique("H2"));
    register_individual(&api, &a).await;
    register_individual(&api, &b).await;
    let (_, path) = new_group(&api, json!([member(&a, "head")])).await;
    let reply = api
        .post(&format!("{path}/$add-member"), member(&b, "head"))
        .await;
    reply.expect(409);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert_eq!(
        api.get(&path).await.body["quantity"],
        1,
        "nothing was written"
    );
}

async fn member_twice() {
    let api = admin().await;
    let a = unique("TW");
    register_individual(&api, &a).await;
    let (_, path) = new_group(&api, json!([member(&a, "member")])).await;
    api.post(&format!("{path}/$add-member"), member(&a, "child"))
        .await
        .expect(409);
}

async fn unknown_member() {
    let api = admin().await;
    let (_, path) = new_group(&api, json!([])).await;
    let reply = api
        .post(
            &format!("{path}/$add-member"),
            member("nobody-at-all", "member"),
        )
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "entity");
}

async fn search() {
    let api = admin().await;
    let (value, _) = new_group(&api, json!([])).await;
    let reply = api
        .get(&format!(
            "/api/v2/spp/Group?name={value}&groupType=household"
        ))
        .await;
    reply.expect(200);
    assert_eq!(reply.body["meta"]["total"], 1);
    assert_eq!(reply.body["data"][0]["identifier"][0]["value"], value);
    let none = api
        .get(&format!("/api/v2/spp/Group?name={value}&groupType=family"))
        .await;
    assert_eq!(none.body["meta"]["total"], 0);
}

async fn swap_head() {
    let api = admin().await;
    let (a, b) = (unique("SA"), unique("SB"));
    register_individual(&api, &a).await;
    register_individual(&api, &b).await;
    let (value, path) = new_group(&api, json!([member(&a, "head"), member(&b, "spouse")])).await;
    let reply = api
        .put(
            &path,
            json!({
                "identifier": [{"system": GROUP_SYSTEM, "value": value}],
                "groupType": "household",
                "name": "Renamed",
                "member": [member(&a, "spouse"), member(&b, "head")],
            }),
            None,
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["name"], "Renamed");
    assert_eq!(reply.body["member"][1]["role"]["coding"][0]["code"], "head");
    assert_eq!(reply.body["quantity"], 2);
}

/// GET then PUT of the same body changes nothing: the ended memberships a read lists (inactive,
/// with an end) are history, not members to bring back, and the one who left and came back is
/// not "listed twice".
async fn read_sent_back() {
    let api = admin().await;
    let (a, b) = (unique("RB"), unique("RB"));
    register_individual(&api, &a).await;
    let b_path = register_individual(&api, &b).await;
    let (_, path) = new_group(&api, json!([member(&a, "head"), member(&b, "child")])).await;
    let leave = json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{b}")}});
    api.post(&format!("{path}/$remove-member"), leave.clone())
        .await
        .expect(200);
    let read = api.get(&path).await;
    read.expect(200);
    let etag = read.header("etag").unwrap().to_owned();
    let replaced = api.put(&path, read.body.clone(), Some(&etag)).await;
    replaced.expect(200);
    assert_eq!(
        replaced.header("etag"),
        Some(etag.as_str()),
        "nothing changed"
    );
    assert_eq!(replaced.body["quantity"], 1);
    assert!(api.get(&b_path).await.body["groupMembership"].is_null());

    // Back again, then a read sent back lists b twice (ended, current): still one member b.
    api.post(&format!("{path}/$add-member"), member(&b, "child"))
        .await
        .expect(201);
    let read = api.get(&path).await;
    let etag = read.header("etag").unwrap().to_owned();
    let replaced = api.put(&path, read.body.clone(), Some(&etag)).await;
    replaced.expect(200);
    assert_eq!(replaced.header("etag"), Some(etag.as_str()));
    assert_eq!(replaced.body["quantity"], 2);
}

/// Group types and member roles come from the seeded vocabularies, not from the domain's guess.
async fn unknown_codes() {
    let api = admin().await;
    let a = unique("UC");
    register_individual(&api, &a).await;
    let body = |group_type: &str, member: Value| {
        json!({
            "type": "Group",
            "identifier": [{"system": GROUP_SYSTEM, "value": unique("UCG")}],
            "groupType": group_type,
            "name": "Codes",
            "member": [member],
        })
    };
    let reply = api
        .post("/api/v2/spp/Group", body("tribe", member(&a, "member")))
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "groupType");
    let reply = api
        .post("/api/v2/spp/Group", body("household", member(&a, "chief")))
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "member[0].role");
    let (_, path) = new_group(&api, json!([])).await;
    let reply = api
        .post(&format!("{path}/$add-member"), member(&a, "landlord"))
        .await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "role");
}
