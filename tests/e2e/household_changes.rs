//! OpenSPP's household restructuring over HTTP, with OpenSPP's own request bodies
//! (`schemas/membership.py`): a member's `PATCH`, `$merge`, `$split`, and the membership history.

use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use crate::group::{member, new_group};
use crate::support::{
    admin, audit_events, consent_client, create_client, register_individual, unique, world, Api,
    Reply, NATIONAL_ID,
};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";
const ROLES: &str = "urn:openspp:vocab:group-membership-type";

pub fn trials() -> Vec<Trial> {
    vec![
        trial("household_changes::member_patch", member_patch),
        trial("household_changes::membership_history", membership_history),
        trial("household_changes::merge", merge),
        trial("household_changes::merge_is_all_or_nothing", merge_refused),
        trial("household_changes::split", split),
        trial("household_changes::split_refusals", split_refused),
    ]
}

fn entity(national_id: &str) -> String {
    format!("Individual/{NATIONAL_ID}|{national_id}")
}

fn group_reference(value: &str) -> String {
    format!("Group/{GROUP_SYSTEM}|{value}")
}

fn role(code: &str) -> Value {
    json!({"coding": [{"system": ROLES, "code": code}]})
}

fn member_path(group_path: &str, national_id: &str) -> String {
    format!(
        "{group_path}/member/{}|{national_id}",
        NATIONAL_ID.replace('#', "%23")
    )
}

async fn patch(api: &Api, path: &str, body: Value, if_match: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = if_match.map(|tag| ("If-Match", tag)).into_iter().collect();
    api.send(Method::PATCH, path, Some(body), &headers).await
}

fn expression(reply: &Reply) -> &str {
    reply.body["issue"][0]["expression"][0]
        .as_str()
        .unwrap_or_default()
}

/// Individuals registered, one per prefix.
async fn people(api: &Api, prefixes: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for prefix in prefixes {
        let id = unique(prefix);
        register_individual(api, &id).await;
        ids.push(id);
    }
    ids
}

/// `PATCH /Group/{id}/member/{individual}` with OpenSPP's `UpdateMemberRequest` (camelCase and
/// snake_case), answered with its `GroupMember`; one head; unknown members 404; stale 412.
async fn member_patch() {
    let api = admin().await;
    let ids = people(&api, &["PH", "PC", "PX"]).await;
    let (head, child, stranger) = (&ids[0], &ids[1], &ids[2]);
    let (value, path) =
        new_group(&api, json!([member(head, "head"), member(child, "child")])).await;
    let reply = patch(
        &api,
        &member_path(&path, child),
        json!({"role": role("spouse"), "startDate": "2024-01-15"}),
        None,
    )
    .await;
    reply.expect(200);
    assert_eq!(reply.body["type"], "GroupMember");
    assert_eq!(reply.body["group"]["reference"], group_reference(&value));
    assert_eq!(reply.body["entity"]["reference"], entity(child));
    assert_eq!(reply.body["role"]["coding"][0]["code"], "spouse");
    assert_eq!(reply.body["startDate"], "2024-01-15");
    assert_eq!(reply.body["status"], "active");
    let version = reply.header("etag").unwrap().to_owned();
    // A second head is refused; the group is as it was.
    let second_head = patch(
        &api,
        &member_path(&path, child),
        json!({"role": role("head")}),
        None,
    )
    .await;
    second_head.expect(409);
    assert_eq!(expression(&second_head), "role");
    // Not a member, and nobody at all: 404.
    patch(
        &api,
        &member_path(&path, stranger),
        json!({"role": role("child")}),
        None,
    )
    .await
    .expect(404);
    patch(
        &api,
        &member_path(&path, "nobody"),
        json!({"role": role("child")}),
        None,
    )
    .await
    .expect(404);
    // A stale version is 412.
    patch(
        &api,
        &member_path(&path, child),
        json!({"endedDate": "2024-06-01"}),
        Some("\"1\""),
    )
    .await
    .expect(412);
    // snake_case ends the membership.
    let ended = patch(
        &api,
        &member_path(&path, child),
        json!({"ended_date": "2024-06-01"}),
        Some(&version),
    )
    .await;
    ended.expect(200);
    assert_eq!(ended.body["status"], "inactive");
    assert_eq!(ended.body["endedDate"], "2024-06-01");
    let group = api.get(&path).await;
    assert_eq!(group.body["quantity"], 1);
    // A date in the future is refused, naming the field.
    let future = patch(
        &api,
        &member_path(&path, head),
        json!({"startDate": "2999-01-01"}),
        None,
    )
    .await;
    future.expect(422);
    assert_eq!(expression(&future), "startDate");
}

/// `GET /Group/{id}/membership-history`: additions, role changes and removals, newest first,
/// paged, after `_since`; `group:read` is enough.
async fn membership_history() {
    let api = admin().await;
    let ids = people(&api, &["HA", "HB"]).await;
    let (a, b) = (&ids[0], &ids[1]);
    let (_, path) = new_group(&api, json!([member(a, "head")])).await;
    api.post(
        &format!("{path}/$add-member"),
        json!({"entity": {"reference": entity(b)}, "role": role("child"), "startDate": "2024-01-15"}),
    )
    .await
    .expect(201);
    patch(
        &api,
        &member_path(&path, b),
        json!({"role": role("spouse")}),
        None,
    )
    .await
    .expect(200);
    api.post(
        &format!("{path}/$remove-member"),
        json!({"entity": {"reference": entity(b)}, "endedDate": "2024-06-30", "reason": "Moved to another household"}),
    )
    .await
    .expect(200);
    let reader_client = create_client(&world().database_url, &["--scope", "group:read"]);
    let reader = Api::new(&world().base).login(&reader_client).await;
    let history = reader.get(&format!("{path}/membership-history")).await;
    history.expect(200);
    let data = history.body["data"].as_array().unwrap();
    let actions: Vec<&str> = data.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["removed", "role_changed", "added", "added"],
        "{}",
        history.text
    );
    assert_eq!(history.body["meta"]["total"], 4);
    assert_eq!(data[0]["member"]["reference"], entity(b));
    assert_eq!(data[0]["reason"], "Moved to another household");
    assert_eq!(data[0]["oldRole"]["coding"][0]["code"], "spouse");
    assert_eq!(data[1]["oldRole"]["coding"][0]["code"], "child");
    assert_eq!(data[1]["newRole"]["coding"][0]["code"], "spouse");
    assert_eq!(data[2]["date"], "2024-01-15");
    assert_eq!(data[3]["member"]["reference"], entity(a));
    assert!(data[0]["changedBy"]
        .as_str()
        .unwrap()
        .starts_with("urn:openspp:api-client:"));
    let paged = reader
        .get(&format!("{path}/membership-history?_count=1&_offset=1"))
        .await;
    paged.expect(200);
    assert_eq!(paged.body["data"][0]["action"], "role_changed");
    assert!(paged.body["links"]["next"].is_string());
    let later = reader
        .get(&format!(
            "{path}/membership-history?_since=2999-01-01T00:00:00Z"
        ))
        .await;
    later.expect(200);
    assert_eq!(later.body["meta"]["total"], 0);
    reader
        .get(&format!("{path}/membership-history?_since=yesterday"))
        .await
        .expect(400);
    reader
        .get(&format!("{path}/membership-history?_count=501"))
        .await
        .expect(400);
    // Without the group's read scope: 403; an unknown group: 404.
    let stranger = Api::new(&world().base)
        .login(&create_client(
            &world().database_url,
            &["--scope", "individual:read"],
        ))
        .await;
    stranger
        .get(&format!("{path}/membership-history"))
        .await
        .expect(403);
    reader
        .get("/api/v2/spp/Group/urn:openspp:group|nobody/membership-history")
        .await
        .expect(404);
    // Every one of the reader's six requests is an access in the log, refusals included; the
    // unknown group as a lookup, the others as history reads naming the members shown.
    let logged = audit_events(&api, &format!("client={}", reader_client.client_id), 6).await;
    let entries = logged["data"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{logged}");
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["subtype"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("lookup", "404"),
            ("history", "400"),
            ("history", "400"),
            ("history", "200"),
            ("history", "200"),
            ("history", "200")
        ],
        "{logged}"
    );
    assert_eq!(
        entries[5]["entity"].as_array().unwrap().len(),
        3,
        "{logged}"
    );
}

/// `POST /Group/$merge` with OpenSPP's `MergeGroupRequest`: the source's members join the target
/// (its head as `member`, the target keeping its own), the source ends empty and inactive, and
/// both streams record the merge as `collection_method: merge`.
async fn merge() {
    let api = admin().await;
    let ids = people(&api, &["SA", "SB", "TC"]).await;
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let (source, source_path) =
        new_group(&api, json!([member(a, "head"), member(b, "child")])).await;
    let (target, target_path) = new_group(&api, json!([member(c, "head")])).await;
    let reply = api
        .post(
            "/api/v2/spp/Group/$merge",
            json!({
                "sourceGroup": {"reference": group_reference(&source), "display": "Santos Household"},
                "targetGroup": {"reference": group_reference(&target), "display": "Reyes Household"},
            }),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["type"], "Group");
    assert_eq!(reply.body["quantity"], 3, "{}", reply.text);
    let roles: Vec<(String, String)> = reply.body["member"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["entity"]["reference"].as_str().unwrap().to_owned(),
                m["role"]["coding"][0]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(roles.contains(&(entity(c), "head".into())), "{roles:?}");
    assert!(roles.contains(&(entity(a), "member".into())), "{roles:?}");
    assert!(roles.contains(&(entity(b), "child".into())), "{roles:?}");
    let emptied = api.get(&source_path).await;
    assert_eq!(emptied.body["active"], false);
    assert_eq!(emptied.body["quantity"], 0);
    // The individual now belongs to the target only.
    let groups = api
        .get(&format!(
            "/api/v2/spp/Individual/{}|{a}/groups",
            NATIONAL_ID.replace('#', "%23")
        ))
        .await;
    assert_eq!(groups.body["total"], 1);
    assert_eq!(
        groups.body["entry"][0]["resource"]["group"]["reference"],
        group_reference(&target)
    );
    for group_path in [&source_path, &target_path] {
        let history = api.get(&format!("{group_path}/_history")).await;
        history.expect(200);
        let latest = &history.body["entry"][0];
        assert_eq!(
            latest["provenance"]["collection_method"], "merge",
            "{}",
            history.text
        );
    }
    let timeline = api.get(&format!("{source_path}/membership-history")).await;
    assert_eq!(timeline.body["data"][0]["action"], "removed");
    assert_eq!(timeline.body["data"][0]["reason"], "merged");
    // Merging an inactive source again is 409.
    let again = api
        .post(
            "/api/v2/spp/Group/$merge",
            json!({"source_group": {"reference": group_reference(&source)},
                   "target_group": {"reference": group_reference(&target)}}),
        )
        .await;
    again.expect(409);
}

/// A merge refused for any reason writes nothing: same group, unknown group, stale versions
/// (the target's by `If-Match`, the source's by a versioned reference), a role mapping to no
/// role, a client under consent.
async fn merge_refused() {
    let api = admin().await;
    let ids = people(&api, &["RA", "RB"]).await;
    let (source, source_path) = new_group(&api, json!([member(&ids[0], "head")])).await;
    let (target, target_path) = new_group(&api, json!([member(&ids[1], "head")])).await;
    let body = |source: &str, target: &str| json!({"sourceGroup": {"reference": source}, "targetGroup": {"reference": target}});
    let same = api
        .post(
            "/api/v2/spp/Group/$merge",
            body(&group_reference(&source), &group_reference(&source)),
        )
        .await;
    same.expect(400);
    let unknown = api
        .post(
            "/api/v2/spp/Group/$merge",
            body(&group_reference("nobody"), &group_reference(&target)),
        )
        .await;
    unknown.expect(404);
    assert_eq!(expression(&unknown), "sourceGroup");
    let stale_target = api
        .send(
            Method::POST,
            "/api/v2/spp/Group/$merge",
            Some(body(&group_reference(&source), &group_reference(&target))),
            &[("If-Match", "\"1\"")],
        )
        .await;
    stale_target.expect(412);
    let stale_source = api
        .post(
            "/api/v2/spp/Group/$merge",
            body(
                &format!("{}/_history/1", group_reference(&source)),
                &group_reference(&target),
            ),
        )
        .await;
    stale_source.expect(412);
    let mapping = api
        .post(
            "/api/v2/spp/Group/$merge",
            json!({"sourceGroup": {"reference": group_reference(&source)},
                   "targetGroup": {"reference": group_reference(&target)},
                   "roleMapping": {"head": "cousin"}}),
        )
        .await;
    mapping.expect(422);
    assert_eq!(expression(&mapping), "roleMapping");
    // A client under consent may not merge: the source's people would join a household its
    // consent covers without consents of their own.
    let ngo = Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            "Merging Hands",
            "ngo",
            &["group:all"],
        ))
        .await;
    let refused = ngo
        .post(
            "/api/v2/spp/Group/$merge",
            body(&group_reference(&source), &group_reference(&target)),
        )
        .await;
    refused.expect(403);
    // Nothing changed on either side.
    let source_now = api.get(&source_path).await;
    assert_eq!(source_now.body["active"], true);
    assert_eq!(source_now.body["quantity"], 1);
    assert_eq!(api.get(&target_path).await.body["quantity"], 1);
    // With the current versions the merge goes through.
    let source_version = source_now
        .header("etag")
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let target_version = api
        .get(&target_path)
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    api.send(
        Method::POST,
        "/api/v2/spp/Group/$merge",
        Some(body(
            &format!("{}/_history/{source_version}", group_reference(&source)),
            &group_reference(&target),
        )),
        &[("If-Match", &target_version)],
    )
    .await
    .expect(200);
}

/// `POST /Group/{id}/$split` with OpenSPP's `SplitGroupRequest`: 201 with `Location` of the new
/// group, which holds the moved members (the new head as head); the source keeps the rest.
async fn split() {
    let api = admin().await;
    let ids = people(&api, &["XA", "XB", "XC"]).await;
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let (_, path) = new_group(
        &api,
        json!([member(a, "head"), member(b, "spouse"), member(c, "child")]),
    )
    .await;
    let new_value = unique("HH-SPLIT");
    let reply = api
        .post(
            &format!("{path}/$split"),
            json!({
                "newGroupIdentifier": [{"system": GROUP_SYSTEM, "value": new_value}],
                "membersToMove": [
                    {"reference": entity(b), "display": "Juan dela Cruz"},
                    {"reference": entity(c), "display": "Ana dela Cruz"}
                ],
                "newHead": {"reference": entity(b), "display": "Juan dela Cruz"}
            }),
        )
        .await;
    reply.expect(201);
    let location = reply.header("location").unwrap().to_owned();
    assert!(location.ends_with(&new_value), "{location}");
    assert_eq!(reply.body["identifier"][0]["value"], new_value);
    assert_eq!(reply.body["quantity"], 2);
    assert_eq!(reply.body["groupType"], "household");
    let created = api.get(&location).await;
    created.expect(200);
    let members = created.body["member"].as_array().unwrap();
    let role_of = |who: &str| {
        members
            .iter()
            .find(|m| m["entity"]["reference"] == entity(who))
            .map(|m| m["role"]["coding"][0]["code"].clone())
    };
    assert_eq!(role_of(b), Some(json!("head")));
    assert_eq!(role_of(c), Some(json!("child")));
    let source = api.get(&path).await;
    assert_eq!(source.body["quantity"], 1);
    let timeline = api.get(&format!("{path}/membership-history")).await;
    assert_eq!(timeline.body["data"][0]["reason"], "split");
}

/// Split refusals, each writing nothing: the head moved, nobody left, a new head not moved,
/// someone not a member, an identifier in use, and a consent-bound client (registering a
/// group is the data controller's act).
async fn split_refused() {
    let api = admin().await;
    let ids = people(&api, &["YA", "YB", "YC"]).await;
    let (a, b, stranger) = (&ids[0], &ids[1], &ids[2]);
    let (taken, path) = new_group(&api, json!([member(a, "head"), member(b, "child")])).await;
    let split = |moving: &[&str], head: Option<&str>, value: &str| {
        let mut body = json!({
            "newGroupIdentifier": [{"system": GROUP_SYSTEM, "value": value}],
            "membersToMove": moving.iter().map(|m| json!({"reference": entity(m)})).collect::<Vec<_>>(),
        });
        if let Some(head) = head {
            body["newHead"] = json!({"reference": entity(head)});
        }
        body
    };
    let fresh = unique("HH-NEW");
    let cases = [
        (split(&[a], None, &fresh), 409),
        (split(&[b], Some(a), &fresh), 400),
        (split(&[stranger], None, &fresh), 404),
        (split(&[b], None, &taken), 409),
        (
            json!({"newGroupIdentifier": [], "membersToMove": [{"reference": entity(b)}]}),
            422,
        ),
    ];
    for (body, status) in cases {
        let reply = api.post(&format!("{path}/$split"), body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body} → {}", reply.text);
    }
    let pair = new_group(&api, json!([member(stranger, "child")])).await.1;
    api.post(&format!("{pair}/$split"), split(&[stranger], None, &fresh))
        .await
        .expect(409);
    let ngo = Api::new(&world().base)
        .login(&consent_client(
            &world().database_url,
            "Helping Hands",
            "ngo",
            &["group:all"],
        ))
        .await;
    ngo.post(&format!("{path}/$split"), split(&[b], None, &fresh))
        .await
        .expect(403);
    let source = api.get(&path).await;
    assert_eq!(source.body["quantity"], 2);
    let nothing = api
        .get(&format!("/api/v2/spp/Group/{GROUP_SYSTEM}|{fresh}"))
        .await;
    nothing.expect(404);
}
