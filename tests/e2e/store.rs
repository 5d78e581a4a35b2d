//! Concurrency over HTTP: identifier uniqueness under racing creates, no lost updates, If-Match,
//! and the projector ending with exactly what the log holds.

use futures_free::join_all;
use libtest_mimic::Trial;
use serde_json::json;

use crate::support::{
    admin, create_client, individual_body, path_id, register_individual, sql_scalar,
    statements_started, unique, world, Api, Server, TestDatabase, ALL_SCOPES, NATIONAL_ID,
};
use crate::trial;

mod direct;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "store::sixteen_concurrent_creates_one_identifier_one_wins",
            racing_creates,
        ),
        trial(
            "store::concurrent_member_adds_lose_nothing",
            concurrent_adds,
        ),
        trial(
            "store::concurrent_writers_with_one_if_match_one_wins",
            racing_if_match,
        ),
        trial(
            "store::events_carry_source_tracking_and_hash_chain",
            provenance,
        ),
        trial(
            "store::postgres_es_reads_the_same_streams",
            postgres_es_compatible,
        ),
        trial(
            "store::a_batch_commits_every_command_or_none",
            direct::batch_commits_every_command_or_none,
        ),
        trial(
            "store::a_lost_connection_is_settled_before_answering",
            direct::a_lost_connection_is_settled_before_answering,
        ),
        trial(
            "store::an_unreachable_database_is_unavailable",
            direct::an_unreachable_database_is_unavailable,
        ),
        trial(
            "store::another_server_process_reads_a_write_at_once",
            another_process_reads_at_once,
        ),
        trial("store::an_idle_server_does_not_poll", idle_server),
        trial(
            "store::concurrent_creates_are_committed_together_each_with_its_own_answer",
            grouped_creates,
        ),
        trial(
            "store::a_grouped_create_with_a_taken_identifier_alone_is_refused",
            grouped_create_with_a_taken_identifier,
        ),
        trial(
            "store::concurrent_updates_of_one_stream_beside_creates_lose_nothing",
            grouped_updates_of_one_stream,
        ),
    ]
}

/// A tiny join_all over spawned tasks, so the tests need no futures crate.
mod futures_free {
    pub async fn join_all<T: Send + 'static>(
        futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.expect("task finished"));
        }
        out
    }
}

async fn racing_creates() {
    let api = admin().await;
    let id = unique("RACE");
    let attempts = (0..16).map(|_| {
        let api = api.clone();
        let body = individual_body(&id);
        async move {
            api.post("/api/v2/spp/Individual", body)
                .await
                .status
                .as_u16()
        }
    });
    let statuses = join_all(attempts.collect()).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(holders(&api, &id).await, 1);
}

/// How many individuals hold national id `id`, as a search by identifier finds them.
async fn holders(api: &Api, id: &str) -> serde_json::Value {
    api.get(&format!(
        "/api/v2/spp/Individual?identifier={}",
        path_id(NATIONAL_ID, id)
    ))
    .await
    .body["meta"]["total"]
        .clone()
}

/// A new household (its path) and `people` individuals registered apart from it.
async fn household_and_people(api: &Api, people: usize) -> (String, Vec<String>) {
    let group = unique("CG");
    api.post(
        "/api/v2/spp/Group",
        json!({"identifier": [{"system": "urn:openspp:group", "value": group}], "groupType": "household"}),
    )
    .await
    .expect(201);
    let path = format!("/api/v2/spp/Group/{}", path_id("urn:openspp:group", &group));
    let mut registered = Vec::new();
    for _ in 0..people {
        let id = unique("CM");
        register_individual(api, &id).await;
        registered.push(id);
    }
    (path, registered)
}

async fn concurrent_adds() {
    let api = admin().await;
    let (path, people) = household_and_people(&api, 10).await;
    let adds = people.iter().map(|id| {
        let api = api.clone();
        let path = path.clone();
        let body = json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{id}")}});
        async move {
            api.post(&format!("{path}/$add-member"), body)
                .await
                .status
                .as_u16()
        }
    });
    let statuses = join_all(adds.collect()).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let group = api.get(&path).await;
    assert_eq!(group.body["quantity"], 10, "no add was lost");
}

async fn racing_if_match() {
    let api = admin().await;
    let id = unique("IFM");
    let path = register_individual(&api, &id).await;
    let etag = api.get(&path).await.header("etag").unwrap().to_owned();
    let writers = (0..8).map(|n| {
        let api = api.clone();
        let path = path.clone();
        let etag = etag.clone();
        let mut body = individual_body(&id);
        body["name"]["given"] = json!(format!("Writer{n}"));
        async move { api.put(&path, body, Some(&etag)).await.status.as_u16() }
    });
    let statuses = join_all(writers.collect()).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        7,
        "{statuses:?}"
    );
}

async fn provenance() {
    let api = admin().await;
    let id = unique("PROV");
    let reply = api
        .send(
            reqwest::Method::POST,
            "/api/v2/spp/Individual",
            Some(individual_body(&id)),
            &[
                ("X-Source-System", "urn:org:kobo:survey-7"),
                ("X-Source-Reference", "submission-42"),
                ("X-Collection-Method", "mobile"),
                ("X-Request-Id", "req-prov-1"),
            ],
        )
        .await;
    reply.expect(201);
    assert_eq!(reply.body["meta"]["source"], "urn:org:kobo:survey-7");
    let url = &world().database_url;
    let stream = sql_scalar(
        url,
        &format!("SELECT aggregate_id FROM identifier_claims WHERE value = '{id}'"),
    );
    let metadata = sql_scalar(
        url,
        &format!("SELECT metadata::text FROM events WHERE aggregate_id = '{stream}' ORDER BY sequence LIMIT 1"),
    );
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["client_id"], world().admin.client_id);
    assert_eq!(metadata["source_system"], "urn:org:kobo:survey-7");
    assert_eq!(metadata["source_reference"], "submission-42");
    assert_eq!(metadata["collection_method"], "mobile");
    assert_eq!(metadata["request_id"], "req-prov-1");
    assert!(metadata["recorded_at"].is_string());
    // Each event links to the previous one's hash.
    let broken = sql_scalar(
        url,
        &format!(
            "SELECT count(*) FROM events e JOIN events p ON p.aggregate_id = e.aggregate_id \
             AND p.aggregate_type = e.aggregate_type AND p.sequence = e.sequence - 1 \
             WHERE e.aggregate_id = '{stream}' AND e.prev_hash IS DISTINCT FROM p.hash"
        ),
    );
    assert_eq!(broken, "0");
    let first_prev = sql_scalar(
        url,
        &format!(
            "SELECT prev_hash IS NULL FROM events WHERE aggregate_id = '{stream}' AND sequence = 1"
        ),
    );
    assert_eq!(first_prev, "t");
    // A bad collection method is refused before anything is written.
    let bad = api
        .send(
            reqwest::Method::POST,
            "/api/v2/spp/Individual",
            Some(individual_body(&unique("PROV"))),
            &[("X-Collection-Method", "telepathy")],
        )
        .await;
    bad.expect(400);
}

/// The event table keeps postgres-es's shape: its repository, driven by cqrs-es's persisted
/// event store, folds a stream to the same state the server answers with.
async fn postgres_es_compatible() {
    use cqrs_es::persist::PersistedEventStore;
    use cqrs_es::EventStore;
    let api = admin().await;
    let id = unique("PGES");
    let path = register_individual(&api, &id).await;
    let mut body = individual_body(&id);
    body["name"]["given"] = json!("Compatible");
    api.put(&path, body, None).await.expect(200);
    let read = api.get(&path).await;
    let url = &world().database_url;
    let stream = sql_scalar(
        url,
        &format!("SELECT aggregate_id FROM identifier_claims WHERE value = '{id}'"),
    );
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let store = PersistedEventStore::<_, openspp_aggregates::Individual>::new_event_store(
        postgres_es::PostgresEventRepository::new(pool.clone()),
    );
    let context = store
        .load_aggregate(&stream)
        .await
        .expect("postgres-es loads the stream");
    let individual = context.aggregate;
    assert_eq!(individual.name.given.as_deref(), Some("Compatible"));
    assert_eq!(
        individual.version.to_string(),
        read.body["meta"]["versionId"].as_str().unwrap()
    );
    assert_eq!(context.current_sequence as u64, individual.version);
    pool.close().await;
}

/// The read models are written in the append itself, so a second server process on the same
/// database reads a write the moment it is acknowledged, both ways.
async fn another_process_reads_at_once() {
    let second = Server::start(&world().database_url, &[]);
    let here = admin().await;
    let there = Api::new(&second.base).login(&world().admin).await;
    for n in 0..5 {
        let id = unique("XPROC");
        let path = register_individual(&here, &id).await;
        there.get(&path).await.expect(200);
        let mut body = individual_body(&id);
        body["name"]["given"] = json!(format!("Changed{n}"));
        there.put(&path, body, None).await.expect(200);
        let read = here.get(&path).await;
        assert_eq!(read.body["name"]["given"], format!("Changed{n}"));
        assert_eq!(read.body["meta"]["versionId"], "3");
    }
}

/// An idle server sends PostgreSQL at most about one query a second: whatever follows the
/// feed sleeps on a notification (it used to poll three queries every 50 ms).
async fn idle_server() {
    let database = TestDatabase::create("openspp_e2e_idle");
    let server = Server::start(&database.url, &[]);
    let mut scopes = Vec::new();
    for scope in ALL_SCOPES {
        scopes.extend(["--scope", scope]);
    }
    let credentials = create_client(&database.url, &scopes);
    let api = Api::new(&server.base).login(&credentials).await;
    register_individual(&api, &unique("IDLE")).await;
    // Let the feed follower take the write in and settle.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let window = std::time::Duration::from_secs(4);
    let queries = statements_started(&database.url, window).await;
    let started = queries.len();
    assert!(
        started <= 4,
        "an idle server started {started} queries in {window:?}: {queries:?}"
    );
    drop(server);
    drop(database);
}

/// Sends `bodies` as concurrent `POST /Individual`s; answers each status and body, in order.
async fn create_together(
    api: &Api,
    bodies: Vec<serde_json::Value>,
) -> Vec<(u16, serde_json::Value)> {
    let posts = bodies.into_iter().map(|body| {
        let api = api.clone();
        async move {
            let reply = api.post("/api/v2/spp/Individual", body).await;
            (reply.status.as_u16(), reply.body)
        }
    });
    join_all(posts.collect()).await
}

/// How many transactions the events of the streams holding `identifiers` were appended in.
fn transactions_of(identifiers: &[String]) -> usize {
    let values = identifiers
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    sql_scalar(
        &world().database_url,
        &format!(
            "SELECT count(DISTINCT e.tx_id) FROM events e JOIN identifier_claims c \
             ON c.aggregate_id = e.aggregate_id WHERE c.value IN ({values})"
        ),
    )
    .parse()
    .unwrap()
}

/// Concurrent creates are appended several to a statement (group commit), yet each lands in a
/// stream of its own, with its own identifier, answered with its own resource, its provenance
/// its own.
async fn grouped_creates() {
    let api = admin().await;
    let ids: Vec<String> = (0..48).map(|_| unique("GRP")).collect();
    let answers = create_together(&api, ids.iter().map(|id| individual_body(id)).collect()).await;
    for (id, (status, body)) in ids.iter().zip(&answers) {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["identifier"][0]["value"], id.as_str(), "{body}");
        let path = format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, id));
        let read = api.get(&path).await;
        read.expect(200);
        assert_eq!(&read.body, body, "answered as it is read");
    }
    let url = &world().database_url;
    let values = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    // Each in a stream of its own, its events recorded with its own request id.
    let events = sql_scalar(
        url,
        &format!(
            "SELECT count(DISTINCT e.aggregate_id) || '/' || \
                    count(DISTINCT e.metadata->>'request_id') || '/' || \
                    count(DISTINCT (e.aggregate_id, e.metadata->>'request_id')) \
             FROM events e JOIN identifier_claims c ON c.aggregate_id = e.aggregate_id \
             WHERE c.value IN ({values})"
        ),
    );
    assert_eq!(events, "48/48/48");
    // Writes that waited for each other's commit were appended together.
    let transactions = transactions_of(&ids);
    assert!(
        transactions < ids.len(),
        "48 concurrent creates took {transactions} transactions"
    );
}

/// A create whose identifier is already held fails its group's statement: the others are then
/// committed one by one, each answered as it would have been alone, and only it is refused.
/// Two creates racing for one new identifier in the same group: one wins.
async fn grouped_create_with_a_taken_identifier() {
    let api = admin().await;
    let taken = unique("GTAKEN");
    register_individual(&api, &taken).await;
    let raced = unique("GRACE");
    let mut ids: Vec<String> = (0..30).map(|_| unique("GOK")).collect();
    ids.insert(11, taken.clone());
    ids.insert(17, raced.clone());
    ids.insert(23, raced.clone());
    let answers = create_together(&api, ids.iter().map(|id| individual_body(id)).collect()).await;
    let mut raced_won = 0;
    for (id, (status, body)) in ids.iter().zip(&answers) {
        if *id == taken {
            assert_eq!(*status, 409, "{body}");
            assert!(body.to_string().contains("identifier"), "{body}");
        } else if *id == raced {
            assert!(*status == 201 || *status == 409, "{status} {body}");
            raced_won += usize::from(*status == 201);
        } else {
            assert_eq!(*status, 201, "{body}");
            assert_eq!(body["identifier"][0]["value"], id.as_str(), "{body}");
        }
    }
    assert_eq!(raced_won, 1, "{answers:?}");
    assert_eq!(holders(&api, &taken).await, 1);
}

/// Concurrent changes of one stream, sent among creates that are committed together: none is
/// lost (two writes to one stream never share a statement; a lost race is decided again).
async fn grouped_updates_of_one_stream() {
    let api = admin().await;
    let (path, people) = household_and_people(&api, 12).await;
    let mut writes = Vec::new();
    for id in &people {
        let adder = api.clone();
        let creator = api.clone();
        let path = path.clone();
        let body = json!({"entity": {"reference": format!("Individual/{NATIONAL_ID}|{id}")}});
        writes.push(tokio::spawn(async move {
            adder
                .post(&format!("{path}/$add-member"), body)
                .await
                .status
                .as_u16()
        }));
        writes.push(tokio::spawn(async move {
            creator
                .post("/api/v2/spp/Individual", individual_body(&unique("GGC")))
                .await
                .status
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for write in writes {
        statuses.push(write.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let read = api.get(&path).await;
    assert_eq!(read.body["quantity"], 12, "no add was lost");
}
