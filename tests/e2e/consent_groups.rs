//! A household's consent and its members (CONTRACT §5): it covers exactly the current members,
//! as consistently as the consent itself; member lists show only members the client may read;
//! and writes to a group need a consent covering the group.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::consent::{client, consent_body, events_of, give_consent, write_lapsing_under};
use crate::support::{
    admin, consent_client, path_id, register_individual, sql_scalar, unique, world, Api,
    NATIONAL_ID,
};
use crate::trial;

const GROUP_SYSTEM: &str = "urn:openspp:group";

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "consent_groups::member_lists_show_only_members_the_client_may_read",
            member_lists,
        ),
        trial(
            "consent_groups::ended_members_are_no_longer_covered_even_if_the_read_model_lags",
            ended_members,
        ),
        trial(
            "consent_groups::a_member_removed_while_a_write_waits_is_not_written",
            removed_mid_write,
        ),
        trial(
            "consent_groups::group_writes_without_a_group_consent_are_not_found",
            unconsented_group_writes,
        ),
    ]
}

fn reference(national_id: &str) -> String {
    format!("Individual/{NATIONAL_ID}|{national_id}")
}

/// Registers a household with `members`; returns its identifier value and path.
async fn household(admin: &Api, members: &[&str]) -> (String, String) {
    named_household(admin, "Household", members).await
}

/// Registers a household called `name` with `members`; returns its identifier value and path.
pub async fn named_household(admin: &Api, name: &str, members: &[&str]) -> (String, String) {
    let value = unique("HHC");
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({"entity": {"reference": reference(m)}}))
        .collect();
    admin
        .post(
            "/api/v2/spp/Group",
            json!({"identifier": [{"system": GROUP_SYSTEM, "value": value}], "groupType": "household",
                   "name": name, "member": members}),
        )
        .await
        .expect(201);
    let path = format!("/api/v2/spp/Group/{}", path_id(GROUP_SYSTEM, &value));
    (value, path)
}

/// Records the household's consent for `organization`, over `resource_type`.
pub async fn household_consent(admin: &Api, value: &str, organization: &str, resource_type: &str) {
    let subject = format!("Group/{GROUP_SYSTEM}|{value}");
    give_consent(admin, &subject, organization, resource_type, Value::Null).await;
}

/// Records the consent of the person `national_id` for `organization`.
pub async fn person_consent(admin: &Api, national_id: &str, organization: &str) {
    admin
        .post(
            "/api/v2/spp/Consent",
            consent_body(&reference(national_id), "specific", &[organization], &[]),
        )
        .await
        .expect(201);
}

/// Adds the person `national_id` to the group at `group_path`.
pub async fn add_member(admin: &Api, group_path: &str, national_id: &str) {
    admin
        .post(
            &format!("{group_path}/$add-member"),
            json!({"entity": {"reference": reference(national_id)}}),
        )
        .await
        .expect(201);
}

async fn remove(admin: &Api, group_path: &str, national_id: &str) {
    admin
        .post(
            &format!("{group_path}/$remove-member"),
            json!({"entity": {"reference": reference(national_id)}}),
        )
        .await
        .expect(200);
}

/// The member references a rendered group lists.
fn listed(group: &Value) -> Vec<String> {
    let mut refs: Vec<String> = group["member"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| m["entity"]["reference"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    refs.sort();
    refs
}

/// The identifier values a consent-bound client may read as Individuals.
fn sorted(ids: &[&str]) -> Vec<String> {
    let mut refs: Vec<String> = ids.iter().map(|id| reference(id)).collect();
    refs.sort();
    refs
}

async fn member_lists() {
    let admin = admin().await;
    let org = unique("Org");
    let [a, b, c] = [unique("MLA"), unique("MLB"), unique("MLC")];
    for id in [&a, &b, &c] {
        register_individual(&admin, id).await;
    }
    // A household consent over everything covers its current members, not those who left.
    let (value, path) = household(&admin, &[&a, &b]).await;
    household_consent(&admin, &value, &org, "all").await;
    remove(&admin, &path, &b).await;
    add_member(&admin, &path, &c).await;
    assert_eq!(
        listed(&admin.get(&path).await.body),
        sorted(&[&a, &b, &c]),
        "the controller sees the whole household history"
    );
    let credentials = consent_client(
        &world().database_url,
        &org,
        "ngo",
        &["individual:all", "group:all", "audit:read"],
    );
    let reader = Api::new(&world().base).login(&credentials).await;
    let read = reader.get(&path).await;
    read.expect(200);
    assert_eq!(listed(&read.body), sorted(&[&a, &c]), "{}", read.text);
    reader
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, &b)
        ))
        .await
        .expect(404);
    let found = reader
        .get(&format!(
            "/api/v2/spp/Group?identifier={}",
            path_id(GROUP_SYSTEM, &value)
        ))
        .await;
    assert_eq!(listed(&found.body["data"][0]), sorted(&[&a, &c]));
    let history = reader.get(&format!("{path}/_history")).await;
    history.expect(200);
    for entry in history.body["entry"].as_array().unwrap() {
        let shown = listed(&entry["resource"]);
        assert!(
            !shown.contains(&reference(&b)),
            "a past member is not shown in history: {entry}"
        );
    }
    // A consent over the group alone shows only members the client may read otherwise.
    let [d, e] = [unique("MLD"), unique("MLE")];
    register_individual(&admin, &d).await;
    register_individual(&admin, &e).await;
    person_consent(&admin, &e, &org).await;
    let (value, path) = household(&admin, &[&d, &e]).await;
    household_consent(&admin, &value, &org, "group").await;
    assert_eq!(listed(&reader.get(&path).await.body), sorted(&[&e]));
    // The household size counts only the members the client may see (issue 8, item 12): a
    // count of two beside one listed member would disclose the other.
    assert_eq!(reader.get(&path).await.body["quantity"], 1);
}

async fn ended_members() {
    let admin = admin().await;
    let org = unique("Org");
    let [m, n] = [unique("EMM"), unique("EMN")];
    let m_path = register_individual(&admin, &m).await;
    let n_path = register_individual(&admin, &n).await;
    let (value, path) = household(&admin, &[&m]).await;
    household_consent(&admin, &value, &org, "all").await;
    let reader = client(&org, "ngo").await;
    reader.get(&m_path).await.expect(200);
    remove(&admin, &path, &m).await;
    reader.get(&m_path).await.expect(404);
    let search = reader
        .get(&format!(
            "/api/v2/spp/Individual?identifier={}",
            path_id(NATIONAL_ID, &m)
        ))
        .await;
    assert_eq!(search.body["meta"]["total"], 0);
    // Coverage does not wait for the projector: make the member read model lag behind the
    // log, as a slow projector would, and the answers stay those of the log.
    let stream = |id: &str| {
        sql_scalar(
            &world().database_url,
            &format!("SELECT aggregate_id FROM identifier_claims WHERE value = '{id}'"),
        )
    };
    let group = stream(&value);
    sql_scalar(
        &world().database_url,
        &format!(
            "UPDATE group_members_view SET ended_date = NULL \
             WHERE group_id = '{group}' AND individual_id = '{}' RETURNING 1",
            stream(&m)
        ),
    );
    reader.get(&m_path).await.expect(404);
    add_member(&admin, &path, &n).await;
    sql_scalar(
        &world().database_url,
        &format!(
            "DELETE FROM group_members_view \
             WHERE group_id = '{group}' AND individual_id = '{}' RETURNING 1",
            stream(&n)
        ),
    );
    reader.get(&n_path).await.expect(200);
}

async fn removed_mid_write() {
    let admin = admin().await;
    let org = unique("Org");
    let m = unique("RMW");
    register_individual(&admin, &m).await;
    let (value, _) = household(&admin, &[&m]).await;
    household_consent(&admin, &value, &org, "all").await;
    let membership = format!(
        "group_id = (SELECT aggregate_id FROM identifier_claims WHERE value = '{value}') \
         AND individual_id = (SELECT aggregate_id FROM identifier_claims WHERE value = '{m}')"
    );
    // The removal's transaction holds the membership while the write reaches its append.
    write_lapsing_under(
        &client(&org, "ngo").await,
        &m,
        &format!("SELECT 1 FROM group_membership_index WHERE {membership} FOR UPDATE;"),
        &format!("DELETE FROM group_membership_index WHERE {membership};"),
    )
    .await;
}

async fn unconsented_group_writes() {
    let admin = admin().await;
    let org = unique("Org");
    let [a, b] = [unique("UGA"), unique("UGB")];
    for id in [&a, &b] {
        register_individual(&admin, id).await;
        person_consent(&admin, id, &org).await;
    }
    let (value, path) = household(&admin, &[&a]).await;
    // The household's consent covers its members as individuals, not the group itself.
    household_consent(&admin, &value, &org, "individual").await;
    let writer = client(&org, "ngo").await;
    let unknown_path = format!(
        "/api/v2/spp/Group/{}",
        path_id(GROUP_SYSTEM, &unique("NONE"))
    );
    let body = json!({"identifier": [{"system": GROUP_SYSTEM, "value": value}], "name": "Renamed"});
    let add = json!({"entity": {"reference": reference(&b)}});
    let remove = json!({"entity": {"reference": reference(&a)}});
    let before = events_of(&value);
    for (suffix, body, put) in [
        ("", body, true),
        ("/$add-member", add, false),
        ("/$remove-member", remove, false),
    ] {
        let send = |target: String, body: Value| {
            let writer = writer.clone();
            async move {
                if put {
                    writer.put(&target, body, None).await
                } else {
                    writer.post(&target, body).await
                }
            }
        };
        let refused = send(format!("{path}{suffix}"), body.clone()).await;
        refused.expect(404);
        let unknown = send(format!("{unknown_path}{suffix}"), body).await;
        assert_eq!(refused.text, unknown.text, "{suffix}");
    }
    assert_eq!(events_of(&value), before, "nothing was written");
    let group = admin.get(&path).await.body;
    assert_eq!(group["name"], "Household");
    assert_eq!(listed(&group), sorted(&[&a]));
}
