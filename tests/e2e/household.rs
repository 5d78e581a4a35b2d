//! OpenSPP's household operations, sent as an OpenSPP client sends them: `PATCH` (JSON Merge
//! Patch) on Individual and Group, and the member operations with OpenSPP's field names and
//! answers.

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use crate::consent::give_consent;
use crate::group::{member, new_group};
use crate::support::{
    admin, consent_client, register_individual, unique, world, Api, Reply, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("household::patch_individual_merges", patch_individual),
        trial(
            "household::patch_names_hidden_field_403",
            patch_hidden_field,
        ),
        trial("household::patch_group_keeps_members", patch_group),
        trial(
            "household::member_operations_openspp_shape",
            member_operations,
        ),
        trial("household::individual_groups_list", individual_groups),
    ]
}

const MERGE_PATCH: &str = "application/merge-patch+json";

async fn patch(api: &Api, path: &str, body: Value, if_match: Option<&str>) -> Reply {
    let mut headers = vec![("Content-Type", MERGE_PATCH)];
    if let Some(tag) = if_match {
        headers.push(("If-Match", tag));
    }
    api.send_text(Method::PATCH, path, &body.to_string(), &headers)
        .await
}

fn expression(reply: &Reply) -> &str {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
}

/// OpenSPP's example: change a name part and drop the birth date; the rest stays, only what
/// changed is recorded, as specific events; a stale `If-Match` is 412.
async fn patch_individual() {
    let api = admin().await;
    let id = unique("PI");
    let path = register_individual(&api, &id).await;
    let before = api.get(&path).await;
    let version = before.header("etag").unwrap().to_owned();
    let reply = patch(
        &api,
        &path,
        json!({"name": {"given": "Ana"}, "birthDate": null}),
        Some(&version),
    )
    .await;
    reply.expect(200);
    assert_eq!(reply.body["name"]["given"], "Ana");
    assert_eq!(
        reply.body["name"]["family"], "Santos",
        "merged, not replaced"
    );
    assert!(
        reply.body["birthDate"].is_null(),
        "null removes: {}",
        reply.text
    );
    assert_eq!(reply.body["telecom"][0]["value"], "+639171234567");
    let read = api.get(&path).await;
    assert_eq!(read.body["name"]["given"], "Ana");
    assert!(read.body["birthDate"].is_null());
    assert_eq!(read.header("etag"), reply.header("etag"));
    // The history tells what the patch changed, event by event.
    let history = api.get(&format!("{path}/_history")).await;
    history.expect(200);
    let text = history.text.clone();
    assert!(text.contains("NameChanged"), "{text}");
    assert!(text.contains("BirthDateChanged"), "{text}");
    assert!(
        !text.contains("TelecomChanged"),
        "untouched fields record nothing"
    );
    // Based on the version before, now stale.
    patch(
        &api,
        &path,
        json!({"name": {"given": "Bea"}}),
        Some(&version),
    )
    .await
    .expect(412);
    // Without If-Match: the current version.
    let plain = patch(&api, &path, json!({"name": {"given": "Bea"}}), None).await;
    plain.expect(200);
    assert_eq!(plain.body["name"]["given"], "Bea");
    // Not an object, or a patched body that is not valid: 422 naming the field.
    patch(&api, &path, json!([1]), None).await.expect(422);
    let bad = patch(&api, &path, json!({"birthDate": "yesterday"}), None).await;
    bad.expect(422);
    assert_eq!(expression(&bad), "birthDate");
    let unknown = patch(&api, &path, json!({"nickname": "x"}), None).await;
    unknown.expect(422);
    assert_eq!(expression(&unknown), "nickname");
    // An unknown individual.
    patch(
        &api,
        &format!(
            "/api/v2/spp/Individual/{}|nobody",
            NATIONAL_ID.replace('#', "%23")
        ),
        json!({"active": false}),
        None,
    )
    .await
    .expect(404);
}

/// A consent that shows only `name`: a patch of the name goes through, one naming a hidden
/// field is a 403 naming it, and the hidden field is left as it was.
async fn patch_hidden_field() {
    let admin = admin().await;
    let org = unique("Org");
    let id = unique("PH");
    let path = register_individual(&admin, &id).await;
    give_consent(
        &admin,
        &format!("Individual/{NATIONAL_ID}|{id}"),
        &org,
        "individual",
        json!(["name"]),
    )
    .await;
    let credentials = consent_client(
        &world().database_url,
        &org,
        "ngo",
        &["individual:read", "individual:update"],
    );
    let ngo = Api::new(&world().base).login(&credentials).await;
    let refused = patch(&ngo, &path, json!({"birthDate": "2000-01-01"}), None).await;
    refused.expect(403);
    assert_eq!(expression(&refused), "birthDate");
    let allowed = patch(&ngo, &path, json!({"name": {"given": "Rosa"}}), None).await;
    allowed.expect(200);
    assert!(allowed.body["birthDate"].is_null(), "hidden, not shown");
    let read = admin.get(&path).await;
    assert_eq!(read.body["name"]["given"], "Rosa");
    assert_eq!(read.body["birthDate"], "1985-03-15", "hidden field kept");
    assert_eq!(read.body["telecom"][0]["value"], "+639171234567");
}

/// Patching a group's name keeps its members; `null` on a field clears it.
async fn patch_group() {
    let api = admin().await;
    let a = unique("GA");
    register_individual(&api, &a).await;
    let (_, path) = new_group(&api, json!([member(&a, "head")])).await;
    let reply = patch(&api, &path, json!({"name": "Renamed Household"}), None).await;
    reply.expect(200);
    assert_eq!(reply.body["name"], "Renamed Household");
    assert_eq!(reply.body["quantity"], 1);
    assert_eq!(
        reply.body["member"][0]["entity"]["reference"],
        format!("Individual/{NATIONAL_ID}|{a}")
    );
    patch(&api, &path, json!({"name": "Again"}), Some("\"1\""))
        .await
        .expect(412);
}

/// `$add-member` with `startDate` and `$remove-member` with `endedDate` (OpenSPP's names),
/// both answered with OpenSPP's `GroupMember`.
async fn member_operations() {
    let api = admin().await;
    let a = unique("MA");
    register_individual(&api, &a).await;
    let (value, path) = new_group(&api, json!([])).await;
    let entity = format!("Individual/{NATIONAL_ID}|{a}");
    let added = api
        .post(
            &format!("{path}/$add-member"),
            json!({"entity": {"reference": entity},
                   "role": {"coding": [{"system": "urn:openspp:vocab:group-membership-type", "code": "head"}]},
                   "startDate": "2024-01-15"}),
        )
        .await;
    added.expect(201);
    assert_eq!(added.body["type"], "GroupMember");
    assert_eq!(added.body["entity"]["reference"], entity);
    assert_eq!(
        added.body["group"]["reference"],
        format!("Group/urn:openspp:group|{value}")
    );
    assert_eq!(added.body["startDate"], "2024-01-15");
    assert_eq!(added.body["status"], "active");
    assert_eq!(added.body["role"]["coding"][0]["code"], "head");
    let removed = api
        .post(
            &format!("{path}/$remove-member"),
            json!({"entity": {"reference": entity}, "endedDate": "2024-06-30", "reason": "moved"}),
        )
        .await;
    removed.expect(200);
    assert_eq!(removed.body["type"], "GroupMember");
    assert_eq!(removed.body["endedDate"], "2024-06-30");
    assert_eq!(removed.body["status"], "inactive");
    // snake_case still works; both spellings at once is a duplicate field.
    let b = unique("MB");
    register_individual(&api, &b).await;
    let other = format!("Individual/{NATIONAL_ID}|{b}");
    api.post(
        &format!("{path}/$add-member"),
        json!({"entity": {"reference": other}, "start_date": "2024-02-01"}),
    )
    .await
    .expect(201);
    let group = api.get(&path).await;
    assert_eq!(group.body["quantity"], 1);
}

/// `GET /Individual/{id}/groups`: OpenSPP's `GroupMembershipList` of current memberships.
async fn individual_groups() {
    let api = admin().await;
    let a = unique("IG");
    let path = register_individual(&api, &a).await;
    let empty = api.get(&format!("{path}/groups")).await;
    empty.expect(200);
    assert_eq!(empty.body["type"], "GroupMembershipList");
    assert_eq!(empty.body["total"], 0);
    let (value, _) = new_group(&api, json!([member(&a, "head")])).await;
    let listed = api.get(&format!("{path}/groups")).await;
    listed.expect(200);
    assert_eq!(listed.body["total"], 1);
    let resource = &listed.body["entry"][0]["resource"];
    assert_eq!(resource["type"], "GroupMember");
    assert_eq!(
        resource["group"]["reference"],
        format!("Group/urn:openspp:group|{value}")
    );
    assert_eq!(
        resource["entity"]["reference"],
        format!("Individual/{NATIONAL_ID}|{a}")
    );
    assert_eq!(resource["role"]["coding"][0]["code"], "head");
    assert_eq!(resource["status"], "active");
    api.get(&format!(
        "/api/v2/spp/Individual/{}|nobody/groups",
        NATIONAL_ID.replace('#', "%23")
    ))
    .await
    .expect(404);
}
