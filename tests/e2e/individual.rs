//! Individuals over HTTP: register, read, replace, search, ETags and read-your-writes.

use libtest_mimic::Trial;
use serde_json::json;

use crate::group::{member, new_group};
use crate::support::{
    admin, assert_answer_is_read, individual_body, logged_client, path_id, register_individual,
    unique, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "individual::create_then_read_returns_what_was_sent",
            create_then_read,
        ),
        trial(
            "individual::replace_records_changes_and_bumps_version",
            replace,
        ),
        trial(
            "individual::stale_if_match_is_412_and_changes_nothing",
            stale_if_match,
        ),
        trial("individual::search_by_each_parameter", search_parameters),
        trial("individual::search_pages_with_links", search_paging),
        trial(
            "individual::future_birth_date_is_422_naming_the_field",
            future_birth_date,
        ),
        trial(
            "individual::unknown_identifier_system_is_422",
            unknown_system,
        ),
        trial("individual::unknown_gender_code_is_422", unknown_gender),
        trial(
            "individual::duplicate_identifier_is_409",
            duplicate_identifier,
        ),
        trial(
            "individual::identifier_moves_after_invalidation",
            identifier_moves,
        ),
        trial("individual::unknown_individual_is_404", unknown_is_404),
        trial("individual::photo_is_stored_and_returned", photo),
        trial(
            "individual::change_answer_rendered_with_the_groups_located",
            change_answer_with_the_groups_located,
        ),
    ]
}

async fn create_then_read() {
    let api = admin().await;
    let id = unique("CR");
    let created = api
        .post("/api/v2/spp/Individual", individual_body(&id))
        .await;
    created.expect(201);
    let location = created.header("location").expect("Location").to_owned();
    assert_eq!(
        location,
        format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &id))
    );
    let etag = created.header("etag").expect("ETag").to_owned();
    let body = &created.body;
    assert_eq!(body["type"], "Individual");
    assert_eq!(body["identifier"][0]["value"], id);
    assert_eq!(
        body["name"]["family"], "Santos",
        "names are stored as given"
    );
    assert_eq!(body["birthDate"], "1985-03-15");
    assert_eq!(body["gender"]["coding"][0]["display"], "Female");
    assert_eq!(body["telecom"][0]["use"], "mobile");
    assert_eq!(body["address"][0]["city"], "Quezon City");
    assert_eq!(
        etag,
        format!("\"{}\"", body["meta"]["versionId"].as_str().unwrap())
    );
    assert!(body["meta"]["source"]
        .as_str()
        .unwrap()
        .starts_with("urn:openspp:api-client:client_"));

    // Read-your-writes: the very next read sees the write, with the same version.
    let read = api.get(&location).await;
    read.expect(200);
    assert_eq!(read.header("etag"), Some(etag.as_str()));
    assert_eq!(read.body, created.body);
}

async fn replace() {
    let api = admin().await;
    let id = unique("RP");
    let path = register_individual(&api, &id).await;
    let before = api.get(&path).await;
    let version: u64 = before.body["meta"]["versionId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let mut body = individual_body(&id);
    body["name"]["family"] = json!("Reyes");
    body["birthDate"] = json!("1986-01-02");
    let etag = format!("\"{version}\"");
    let updated = api.put(&path, body.clone(), Some(&etag)).await;
    updated.expect(200);
    assert_eq!(updated.body["name"]["family"], "Reyes");
    assert_eq!(updated.body["birthDate"], "1986-01-02");
    // Two changes, two specific events.
    let new_version: u64 = updated.body["meta"]["versionId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(new_version, version + 2);

    // The same body again changes nothing and writes nothing.
    let again = api.put(&path, body, None).await;
    again.expect(200);
    assert_eq!(
        again.body["meta"]["versionId"],
        updated.body["meta"]["versionId"]
    );

    let search = api
        .get(&format!(
            "/api/v2/spp/Individual?identifier={}",
            path_id(NATIONAL_ID, &id)
        ))
        .await;
    search.expect(200);
    assert_eq!(search.body["data"][0]["name"]["family"], "Reyes");
}

async fn stale_if_match() {
    let api = admin().await;
    let id = unique("IM");
    let path = register_individual(&api, &id).await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Ana");
    api.put(&path, body.clone(), None).await.expect(200);
    // The version the registration answered with is now stale.
    body["name"]["given"] = json!("Bea");
    let stale = api.put(&path, body, Some("\"1\"")).await;
    stale.expect(412);
    assert_eq!(stale.body["resourceType"], "OperationOutcome");
    let read = api.get(&path).await;
    assert_eq!(read.body["name"]["given"], "Ana");
}

async fn search_parameters() {
    let api = admin().await;
    let family = unique("Fam");
    let id = unique("SP");
    let mut body = individual_body(&id);
    body["name"]["family"] = json!(family);
    body["birthDate"] = json!("1970-06-01");
    body["gender"]["coding"][0]["code"] = json!("1");
    body["address"][0]["city"] = json!(format!("{family}ville"));
    api.post("/api/v2/spp/Individual", body).await.expect(201);

    let hits = |query: String| {
        let api = api.clone();
        async move {
            let reply = api.get(&format!("/api/v2/spp/Individual?{query}")).await;
            reply.expect(200);
            reply.body["meta"]["total"].as_i64().unwrap()
        }
    };
    let lower = family.to_lowercase();
    assert_eq!(
        hits(format!("name={lower}")).await,
        1,
        "name is case-insensitive"
    );
    assert_eq!(hits(format!("name={family}&birthdate=1970-06-01")).await, 1);
    assert_eq!(
        hits(format!(
            "name={family}&birthdate=ge1970-06-01&birthdate=le1970-06-01"
        ))
        .await,
        1
    );
    assert_eq!(
        hits(format!("name={family}&birthdate=gt1970-06-01")).await,
        0
    );
    assert_eq!(
        hits(format!("name={family}&birthdate=ne1970-06-01")).await,
        0
    );
    assert_eq!(hits(format!("name={family}&gender=1")).await, 1);
    assert_eq!(hits(format!("name={family}&gender=2")).await, 0);
    assert_eq!(hits(format!("address={lower}ville")).await, 1);
    assert_eq!(
        hits(format!("identifier={}", path_id(NATIONAL_ID, &id))).await,
        1
    );
    assert_eq!(
        hits(format!("name={family}&_lastUpdated=ge2000-01-01")).await,
        1
    );
    assert_eq!(
        hits(format!("name={family}&_lastUpdated=lt2000-01-01")).await,
        0
    );
    assert_eq!(hits(format!("name={family}&active=true")).await, 1);
    let wildcard = api.get("/api/v2/spp/Individual?name=%25%25%25").await;
    wildcard.expect(200);
    assert_eq!(
        wildcard.body["meta"]["total"], 0,
        "LIKE wildcards are matched literally"
    );
}

async fn search_paging() {
    let api = admin().await;
    let family = unique("Page");
    for n in 0..5 {
        let mut body = individual_body(&unique("PG"));
        body["name"]["family"] = json!(family);
        body["name"]["given"] = json!(format!("G{n}"));
        api.post("/api/v2/spp/Individual", body).await.expect(201);
    }
    let first = api
        .get(&format!(
            "/api/v2/spp/Individual?name={family}&_count=2&_sort=given"
        ))
        .await;
    first.expect(200);
    assert_eq!(first.body["meta"]["total"], 5);
    assert_eq!(first.body["meta"]["count"], 2);
    assert_eq!(first.body["data"][0]["name"]["given"], "G0");
    assert!(first.body["links"]["prev"].is_null());
    let next = first.body["links"]["next"]
        .as_str()
        .expect("next link")
        .to_owned();
    let second = api.get(&next).await;
    second.expect(200);
    assert_eq!(second.body["data"][0]["name"]["given"], "G2");
    assert!(second.body["links"]["prev"].is_string());
    let last = api
        .get(&format!(
            "/api/v2/spp/Individual?name={family}&_count=2&_offset=4&_sort=-given"
        ))
        .await;
    assert_eq!(last.body["meta"]["count"], 1);
    assert_eq!(last.body["data"][0]["name"]["given"], "G0");
    assert!(
        last.body["links"]["next"].is_null(),
        "no next on the last page"
    );
}

async fn future_birth_date() {
    let api = admin().await;
    let mut body = individual_body(&unique("FB"));
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(2);
    body["birthDate"] = json!(tomorrow.to_string());
    let reply = api.post("/api/v2/spp/Individual", body).await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "birthDate");
    assert!(reply.body["detail"].as_str().unwrap().contains("birthDate"));
}

async fn unknown_system() {
    let api = admin().await;
    let mut body = individual_body(&unique("US"));
    body["identifier"][0]["system"] = json!("urn:nowhere:unknown");
    let reply = api.post("/api/v2/spp/Individual", body).await;
    reply.expect(422);
    assert_eq!(
        reply.body["issue"][0]["expression"][0],
        "identifier[0].system"
    );
}

async fn unknown_gender() {
    let api = admin().await;
    let mut body = individual_body(&unique("UG"));
    body["gender"]["coding"][0]["code"] = json!("7");
    let reply = api.post("/api/v2/spp/Individual", body).await;
    reply.expect(422);
    assert_eq!(reply.body["issue"][0]["expression"][0], "gender");
}

async fn duplicate_identifier() {
    let api = admin().await;
    let id = unique("DUP");
    register_individual(&api, &id).await;
    let reply = api
        .post("/api/v2/spp/Individual", individual_body(&id))
        .await;
    reply.expect(409);
    assert_eq!(reply.body["issue"][0]["expression"][0], "identifier");
}

async fn identifier_moves() {
    let api = admin().await;
    let old = unique("OLD");
    let new = unique("NEW");
    let path = register_individual(&api, &old).await;
    let mut body = individual_body(&new);
    body["identifier"] = json!([{"system": NATIONAL_ID, "value": new}]);
    api.put(&path, body, None).await.expect(200);
    api.get(&path).await.expect(404);
    let moved = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &new));
    api.get(&moved).await.expect(200);
    // The released identifier is free for another registrant.
    api.post("/api/v2/spp/Individual", individual_body(&old))
        .await
        .expect(201);
}

async fn unknown_is_404() {
    let api = admin().await;
    let reply = api
        .get(&format!(
            "/api/v2/spp/Individual/{}",
            path_id(NATIONAL_ID, "nobody")
        ))
        .await;
    reply.expect(404);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    assert!(reply.header("x-request-id").is_some());
}

/// OpenSPP's `photo` (CONTRACT §4a): a base64 image, stored and returned as sent, changed by
/// `PUT` or merge patch (null removes it); text that is not base64 is 422 naming `photo`.
async fn photo() {
    let api = admin().await;
    let id = unique("PHOTO");
    let image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let mut body = individual_body(&id);
    body["photo"] = json!(image);
    let created = api.post("/api/v2/spp/Individual", body.clone()).await;
    created.expect(201);
    assert_eq!(created.body["photo"], image);
    let path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, &id));
    assert_eq!(api.get(&path).await.body["photo"], image);
    let patched = api
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"photo": null})),
            &[("Content-Type", "application/merge-patch+json")],
        )
        .await;
    patched.expect(200);
    assert!(patched.body.get("photo").is_none(), "{}", patched.text);
    body["photo"] = json!("not base64!");
    let refused = api.put(&path, body, None).await;
    refused.expect(422);
    assert_eq!(refused.body["issue"][0]["expression"][0], "photo");
}

/// A `PUT` or `PATCH` answers with the individual's groups as a read shows them, rendered with
/// what locating the individual read beside its row (one statement): after the commit nothing
/// is read back, and a patch reads them once for its base and its answer.
async fn change_answer_with_the_groups_located() {
    let scopes = ["individual:all", "group:all"];
    let (_database, logged, api) = logged_client("openspp_change_answer", &scopes).await;
    let id = unique("CA");
    let path = register_individual(&api, &id).await;
    let (group, _) = new_group(&api, json!([member(&id, "head")])).await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Ana");
    let replaced = api.put(&format!("{path}?putprobe"), body, None).await;
    replaced.expect(200);
    assert_eq!(replaced.body["name"]["given"], "Ana", "{}", replaced.text);
    assert_eq!(
        replaced.body["groupMembership"][0]["group"]["reference"],
        format!("Group/urn:openspp:group|{group}"),
        "{}",
        replaced.text
    );
    assert_answer_is_read(&api, &replaced, &path).await;
    let patched = api
        .send(
            reqwest::Method::PATCH,
            &format!("{path}?patchprobe"),
            Some(json!({"birthDate": "1990-01-02"})),
            &[("Content-Type", "application/merge-patch+json")],
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.body["birthDate"], "1990-01-02", "{}", patched.text);
    // A patch's answer shows every extension the caller may see (none here); a read, those
    // it asks for.
    let mut answered = patched.body.clone();
    assert_eq!(answered["extension"].take(), json!({}));
    answered.as_object_mut().unwrap().remove("extension");
    let read = api.get(&path).await;
    assert_eq!(answered, read.body);
    assert_eq!(patched.header("etag"), read.header("etag"));
    logged
        .assert_within("putprobe", CHANGE_STATEMENTS, "one replacement")
        .await;
    logged
        .assert_within("patchprobe", CHANGE_STATEMENTS, "one merge patch")
        .await;
}

/// The statements a replacement or a merge patch of an individual runs in its request's span
/// (its claim, row and groups in one); reading the groups again after the commit (or, for a
/// patch, before it too) fails `change_answer_with_the_groups_located`.
const CHANGE_STATEMENTS: usize = 2;
