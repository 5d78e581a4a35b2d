//! Live events (CONTRACT §7) over a real WebSocket (`graphql-transport-ws`, the token in
//! `connection_init`): committed events in commit order with their changed fields and
//! provenance, only of subjects and fields the client may see; resumable from a cursor with no
//! gap and no duplicate; a consent withdrawal stops a subject's events at once; a slow consumer
//! is disconnected with a reason, by a second server process on the same database (delivery
//! follows the shared feed, so writes through one process reach subscribers of another).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::consent::consent_body;
use crate::consent_groups::{household_consent, named_household};
use crate::support::{
    admin, cli, consent_client, individual_body, path_id, unique, world, Api, Server, NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "subscriptions::events_arrive_in_commit_order_and_resume_without_gap_or_duplicate",
            resume,
        ),
        trial(
            "subscriptions::only_visible_subjects_and_fields_and_withdrawal_stops_at_once",
            visibility,
        ),
        trial(
            "subscriptions::connection_init_needs_a_token_and_a_bad_cursor_is_refused",
            refusals,
        ),
        trial(
            "subscriptions::a_slow_consumer_is_disconnected_with_a_reason",
            slow_consumer,
        ),
        trial(
            "subscriptions::a_deactivated_client_receives_nothing_more",
            deactivation,
        ),
        trial(
            "subscriptions::one_operation_over_the_bound_or_a_query_is_refused_and_the_socket_stays_usable",
            bounded_operations,
        ),
        trial(
            "subscriptions::events_queued_before_a_withdrawal_are_not_sent_after_it",
            || queued_before_change(Change::Revoked),
        ),
        trial(
            "subscriptions::events_queued_before_a_member_leaves_a_consented_household_are_not_sent_after_it",
            || queued_before_change(Change::LeftHousehold),
        ),
        trial(
            "subscriptions::events_queued_before_a_subject_is_relabelled_do_not_carry_its_old_identifier",
            || queued_before_change(Change::Relabelled),
        ),
        trial(
            "subscriptions::the_socket_closes_when_its_token_expires",
            token_expiry,
        ),
    ]
}

const EVENTS: &str = "subscription($after: String) { events(after: $after) { cursor resourceType \
    externalId eventType versionId changedFields provenance { client recorded hash } } }";

/// How long one expected message may take.
const WAIT: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket to `base`'s subscription endpoint, `graphql-transport-ws` negotiated.
async fn open(base: &str) -> Socket {
    let url = format!("{}/api/v2/graphql/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket opened");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message (text), or the close frame as `{"close": code, "reason": …}`.
async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return json!({"close": code, "reason": reason});
            }
            _ => continue,
        }
    }
}

/// A subscription of `token`'s client on `base`, from `after`.
async fn subscribe(base: &str, token: &str, after: Option<&str>) -> Socket {
    let mut socket = open(base).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    send(
        &mut socket,
        json!({"id": "1", "type": "subscribe",
               "payload": {"query": EVENTS, "variables": {"after": after}}}),
    )
    .await;
    socket
}

/// The next event delivered, but those of `SYNC`'s subjects (see `sync`).
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let message = receive(socket).await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        let event = message["payload"]["data"]["events"].clone();
        if !event["externalId"]
            .as_str()
            .is_some_and(|id| id.contains(SYNC))
        {
            return event;
        }
    }
}

/// The prefix of subjects whose renames only mark that a subscription is live.
const SYNC: &str = "LVSYNC";

/// Waits until a subscription started "from now" is live: renames `marker` (a subject the
/// client sees) until the rename is delivered — a subscribe message has no answer of its own,
/// so a write sent right after it could commit before the subscription starts. Events before
/// the marker's (earlier writes the feed follower had not passed yet) are dropped.
async fn sync(socket: &mut Socket, admin: &Api, marker: &str) {
    for attempt in 0..10 {
        rename(admin, marker, &format!("Sync{attempt}")).await;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(deadline - Instant::now(), socket.next()).await
            else {
                continue;
            };
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            let event = &message["payload"]["data"]["events"];
            if event["externalId"] == key(marker) && event["eventType"] == "NameChanged" {
                return;
            }
        }
    }
    panic!("the subscription never delivered the marker's rename");
}

fn key(id: &str) -> String {
    format!("{NATIONAL_ID}|{id}")
}

fn path(id: &str) -> String {
    format!("/api/v2/spp/Individual/{}", path_id(NATIONAL_ID, id))
}

/// A cursor's place in the feed, to compare.
fn place(cursor: &Value) -> (i64, i64) {
    let (tx, position) = cursor.as_str().unwrap().split_once('.').unwrap();
    (tx.parse().unwrap(), position.parse().unwrap())
}

/// Registers a person and records a consent naming `organization` (showing `fields`); returns
/// the consent's id.
async fn consented(admin: &Api, id: &str, organization: &str, fields: Value) -> String {
    admin
        .post("/api/v2/spp/Individual", individual_body(id))
        .await
        .expect(201);
    let mut consent = consent_body(
        &format!("Individual/{}", key(id)),
        "specific",
        &[organization],
        &[],
    );
    consent["scopes"][0]["field_access"] = fields;
    let reply = admin.post("/api/v2/spp/Consent", consent).await;
    reply.expect(201);
    reply.body["consent_id"].as_str().unwrap().to_owned()
}

/// Renames `id` (a `NameChanged` event).
async fn rename(admin: &Api, id: &str, given: &str) {
    let mut body = individual_body(id);
    body["name"]["given"] = json!(given);
    admin.put(&path(id), body, None).await.expect(200);
}

/// A consent-bound client of a fresh organisation; its token, and the organisation.
async fn bound_client(scopes: &[&str]) -> (String, String) {
    let organization = unique("LiveOrg");
    let credentials = consent_client(&world().database_url, &organization, "ngo", scopes);
    let client = Api::new(&world().base).login(&credentials).await;
    (client.token.unwrap(), organization)
}

async fn resume() {
    let admin = admin().await;
    let (token, organization) = bound_client(&["individual:read"]).await;
    let (a, b) = (unique("LVA"), unique("LVB"));
    let marker = unique(SYNC);
    consented(&admin, &a, &organization, Value::Null).await;
    consented(&admin, &b, &organization, Value::Null).await;
    consented(&admin, &marker, &organization, Value::Null).await;
    let base = &world().base;

    let mut live = subscribe(base, &token, None).await;
    sync(&mut live, &admin, &marker).await;
    rename(&admin, &a, "Ana").await;
    rename(&admin, &b, "Bea").await;
    let first = next_event(&mut live).await;
    assert_eq!(first["resourceType"], "Individual");
    assert_eq!(first["externalId"], key(&a));
    assert_eq!(first["eventType"], "NameChanged");
    assert_eq!(first["changedFields"], json!(["name"]));
    assert!(first["provenance"]["client"]
        .as_str()
        .unwrap()
        .starts_with("urn:openspp:api-client:"));
    assert_eq!(first["provenance"]["hash"].as_str().unwrap().len(), 64);
    let second = next_event(&mut live).await;
    assert_eq!(second["externalId"], key(&b), "in commit order: {second}");
    assert!(place(&first["cursor"]) < place(&second["cursor"]));
    drop(live);

    // While nobody listens, two more; a subscription from the last cursor seen gets exactly
    // those, in order.
    rename(&admin, &a, "Anna").await;
    rename(&admin, &b, "Beatriz").await;
    let mut resumed = subscribe(base, &token, second["cursor"].as_str()).await;
    let third = next_event(&mut resumed).await;
    let fourth = next_event(&mut resumed).await;
    let version = |event: &Value| -> i64 { event["versionId"].as_str().unwrap().parse().unwrap() };
    assert_eq!(third["externalId"], key(&a), "no gap: {third}");
    assert_eq!(version(&third), version(&first) + 1, "{third}");
    assert_eq!(fourth["externalId"], key(&b), "{fourth}");
    assert_eq!(version(&fourth), version(&second) + 1, "{fourth}");
    drop(resumed);

    // From the first cursor: the second event comes next, not the first again.
    let mut again = subscribe(base, &token, first["cursor"].as_str()).await;
    let next = next_event(&mut again).await;
    assert_eq!(next["cursor"], second["cursor"], "no duplicate");
}

async fn visibility() {
    let admin = admin().await;
    let (token, organization) = bound_client(&["individual:read"]).await;
    let (a, b, hidden) = (unique("LVW"), unique("LVN"), unique("LVH"));
    let marker = unique(SYNC);
    let withdrawn = consented(&admin, &a, &organization, Value::Null).await;
    consented(&admin, &b, &organization, json!(["name"])).await;
    consented(&admin, &marker, &organization, Value::Null).await;
    // Registered, but with no consent for this client.
    admin
        .post("/api/v2/spp/Individual", individual_body(&hidden))
        .await
        .expect(201);
    let mut live = subscribe(&world().base, &token, None).await;
    sync(&mut live, &admin, &marker).await;

    rename(&admin, &hidden, "Unseen").await;
    rename(&admin, &a, "Ana").await;
    let seen = next_event(&mut live).await;
    assert_eq!(
        seen["externalId"],
        key(&a),
        "the unconsented subject is skipped"
    );

    // B's consent shows the name only: an address change says that B changed, not what.
    let mut body = individual_body(&b);
    body["address"][0]["city"] = json!("Manila");
    admin.put(&path(&b), body, None).await.expect(200);
    let neutral = next_event(&mut live).await;
    assert_eq!(neutral["externalId"], key(&b));
    assert_eq!(neutral["eventType"], "Changed");
    assert_eq!(neutral["changedFields"], json!([]));
    let mut body = individual_body(&b);
    body["address"][0]["city"] = json!("Manila");
    body["name"]["given"] = json!("Bea");
    admin.put(&path(&b), body, None).await.expect(200);
    let named = next_event(&mut live).await;
    assert_eq!(named["eventType"], "NameChanged");
    assert_eq!(named["changedFields"], json!(["name"]));

    // A's consent is withdrawn: A's next change is not delivered, B's after it is.
    admin
        .post(
            &format!("/api/v2/spp/Consent/{withdrawn}/$revoke"),
            json!({}),
        )
        .await
        .expect(200);
    rename(&admin, &a, "Anna").await;
    rename(&admin, &b, "Beatriz").await;
    let after = next_event(&mut live).await;
    assert_eq!(
        after["externalId"],
        key(&b),
        "nothing of A after the withdrawal: {after}"
    );
}

async fn refusals() {
    let base = &world().base;
    let mut socket = open(base).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert!(refused["close"].is_u64(), "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("Authorization"),
        "{refused}"
    );

    let mut socket = open(base).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-token"}}),
    )
    .await;
    let refused = receive(&mut socket).await;
    assert!(refused["close"].is_u64(), "{refused}");

    let (token, _) = bound_client(&["individual:read"]).await;
    // An execution error is a `next` with `errors` (the protocol's `error` is for a request
    // that cannot run at all), then `complete`.
    let mut socket = subscribe(base, &token, Some("yesterday")).await;
    let error = receive(&mut socket).await;
    assert_eq!(error["type"], "next", "{error}");
    assert_eq!(
        error["payload"]["errors"][0]["extensions"]["field"], "after",
        "{error}"
    );
    assert_eq!(receive(&mut socket).await["type"], "complete");

    // A client without any read scope of the followed resources.
    let (token, _) = bound_client(&["statistics:read"]).await;
    let mut socket = subscribe(base, &token, None).await;
    let error = receive(&mut socket).await;
    assert_eq!(error["type"], "next", "{error}");
    assert_eq!(
        error["payload"]["errors"][0]["extensions"]["status"], 403,
        "{error}"
    );

    // A plain HTTP GET is not an upgrade.
    let reply = Api::new(base).get("/api/v2/graphql/ws").await;
    assert!(reply.status.is_client_error(), "{}", reply.text);
}

async fn slow_consumer() {
    // A second process on the same database, with a small window and a short grace.
    let window = 4;
    let server = Server::start(
        &world().database_url,
        &[
            ("OPENSPP_SUBSCRIPTION_WINDOW", "4"),
            ("OPENSPP_SUBSCRIPTION_ACK_TIMEOUT_MS", "1000"),
        ],
    );
    let admin = admin().await;
    let (token, organization) = bound_client(&["individual:read"]).await;
    let people: Vec<String> = (0..3 * window).map(|_| unique("LVS")).collect();
    for id in &people {
        consented(&admin, id, &organization, Value::Null).await;
    }
    // From the start of the feed, through the other process: every registration and consent
    // of this client's subjects is a backlog far over two windows.
    let mut socket = subscribe(&server.base, &token, Some("0.0")).await;
    // Not reading: the pings go unanswered.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let started = Instant::now();
    let mut delivered = 0;
    let closed = loop {
        let message = receive(&mut socket).await;
        if message["type"] == "next" {
            delivered += 1;
            continue;
        }
        break message;
    };
    assert_eq!(closed["close"], u16::from(CloseCode::Policy), "{closed}");
    assert!(
        closed["reason"].as_str().unwrap().contains("slow consumer"),
        "{closed}"
    );
    assert!(
        delivered <= 2 * window + 1,
        "no more than two windows were sent unread: {delivered}"
    );
    assert!(started.elapsed() < WAIT);
}

async fn deactivation() {
    let admin = admin().await;
    let organization = unique("LiveOrg");
    let credentials = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["individual:read"],
    );
    let token = Api::new(&world().base)
        .login(&credentials)
        .await
        .token
        .unwrap();
    let marker = unique(SYNC);
    consented(&admin, &marker, &organization, Value::Null).await;
    let mut live = subscribe(&world().base, &token, None).await;
    sync(&mut live, &admin, &marker).await;
    cli(
        &world().database_url,
        &["client", "deactivate", &credentials.client_id],
    );
    rename(&admin, &marker, "After").await;
    let ended = receive(&mut live).await;
    assert_eq!(ended["type"], "next", "{ended}");
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["status"], 401,
        "{ended}"
    );
    assert_eq!(receive(&mut live).await["type"], "complete");
}

/// Sends `subscribe` with `id` for `query`.
async fn start(socket: &mut Socket, id: &str, query: &str) {
    send(
        socket,
        json!({"id": id, "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
}

async fn bounded_operations() {
    // A client that sees no one: its subscriptions stay silent.
    let (token, _) = bound_client(&["individual:read"]).await;
    let mut socket = open(&world().base).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    let events = "subscription { events { cursor } }";
    for n in 0..16 {
        start(&mut socket, &n.to_string(), events).await;
    }
    start(&mut socket, "over", events).await;
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "over", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["status"], 429,
        "{refused}"
    );
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("16"),
        "{refused}"
    );

    // Still usable: one completed frees its place. Queries and mutations belong to
    // POST /api/v2/graphql (their resolvers need a request's call, which a socket has not):
    // refused with the reason, taking no place, and the socket carries on.
    send(&mut socket, json!({"id": "0", "type": "complete"})).await;
    let completed = receive(&mut socket).await;
    assert_eq!(completed, json!({"type": "complete", "id": "0"}));
    for (id, query) in [
        ("query", "{ __typename }"),
        ("data", "{ individuals(first: 1) { totalCount } }"),
        ("mutation", "mutation { __typename }"),
    ] {
        start(&mut socket, id, query).await;
        let refused = receive(&mut socket).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["id"], id, "{refused}");
        assert_eq!(
            refused["payload"][0]["extensions"]["status"], 400,
            "{refused}"
        );
        assert!(
            refused["payload"][0]["message"]
                .as_str()
                .unwrap()
                .contains("POST /api/v2/graphql"),
            "{refused}"
        );
    }
    start(&mut socket, "sixteenth", events).await;
    start(&mut socket, "seventeenth", events).await;
    let refused = receive(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["id"], "seventeenth",
        "the sixteenth was taken: {refused}"
    );
}

/// What befalls a subject while its events wait to be sent, making what was decided about
/// them stale.
#[derive(Clone, Copy)]
enum Change {
    /// Its own consent is revoked.
    Revoked,
    /// It leaves the household whose consent covered it.
    LeftHousehold,
    /// It is named by another identifier: no event may carry the one it had.
    Relabelled,
}

async fn queued_before_change(change: Change) {
    // A second process whose subscribers may leave two windows of 4 unread for a minute: what
    // it decided to send waits in its queue meanwhile.
    let window = 4;
    let server = Server::start(
        &world().database_url,
        &[
            ("OPENSPP_SUBSCRIPTION_WINDOW", "4"),
            ("OPENSPP_SUBSCRIPTION_ACK_TIMEOUT_MS", "60000"),
        ],
    );
    let admin = admin().await;
    let (token, organization) = bound_client(&["individual:read"]).await;
    let (a, b) = (unique("LVQ"), unique("LVE"));
    let marker = unique(SYNC);
    let withdraw = match change {
        Change::Relabelled => {
            consented(&admin, &a, &organization, Value::Null).await;
            path(&a)
        }
        Change::Revoked => {
            let consent = consented(&admin, &a, &organization, Value::Null).await;
            format!("/api/v2/spp/Consent/{consent}/$revoke")
        }
        Change::LeftHousehold => {
            admin
                .post("/api/v2/spp/Individual", individual_body(&a))
                .await
                .expect(201);
            let (household, group) = named_household(&admin, "Household", &[&a]).await;
            household_consent(&admin, &household, &organization, "all").await;
            format!("{group}/$remove-member")
        }
    };
    consented(&admin, &b, &organization, Value::Null).await;
    consented(&admin, &marker, &organization, Value::Null).await;
    for n in 0..12 {
        rename(&admin, &a, &format!("Ana{n}")).await;
    }
    rename(&admin, &b, "Bea").await;
    // Once the other process has delivered a rename after those, it has them all.
    let mut live = subscribe(&server.base, &token, None).await;
    sync(&mut live, &admin, &marker).await;
    drop(live);

    // The backlog is decided a page at a time. Once A's first rename has arrived (its
    // decision is made, and A was visible), the client reads no more: the server sends what
    // the window lets it (at most two windows more, the client having answered every ping it
    // read) and then waits, the rest of that decision queued.
    let mut socket = subscribe(&server.base, &token, Some("0.0")).await;
    let renamed_a =
        |event: &Value| event["externalId"] == key(&a) && event["eventType"] == "NameChanged";
    while !renamed_a(&next_event(&mut socket).await) {}
    let mut renames_of_a = 1;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = match change {
        Change::Revoked => admin.post(&withdraw, json!({})).await,
        Change::LeftHousehold => {
            let member = json!({"entity": {"reference": format!("Individual/{}", key(&a))}});
            admin.post(&withdraw, member).await
        }
        Change::Relabelled => {
            let mut body = individual_body(&a);
            body["identifier"] = json!([{"system": NATIONAL_ID, "value": unique("LVR")}]);
            admin.put(&withdraw, body, None).await
        }
    };
    done.expect(200);
    loop {
        let event = next_event(&mut socket).await;
        if event["externalId"] == key(&b) && event["eventType"] == "NameChanged" {
            break;
        }
        if renamed_a(&event) {
            renames_of_a += 1;
        }
    }
    assert!(
        renames_of_a <= 1 + 2 * window,
        "only what was sent before the withdrawal: {renames_of_a} of 12"
    );
}

async fn token_expiry() {
    // A process issuing tokens that live one second (and the five seconds' leeway every
    // token has).
    let server = Server::start(
        &world().database_url,
        &[("OPENSPP_TOKEN_LIFETIME_SECS", "1")],
    );
    let organization = unique("LiveOrg");
    let credentials = consent_client(
        &world().database_url,
        &organization,
        "ngo",
        &["individual:read"],
    );
    let token = Api::new(&server.base)
        .login(&credentials)
        .await
        .token
        .unwrap();
    let started = Instant::now();
    let mut live = subscribe(&server.base, &token, None).await;
    let closed = receive(&mut live).await;
    assert_eq!(closed["close"], 4403, "{closed}");
    assert!(
        closed["reason"].as_str().unwrap().contains("expired"),
        "{closed}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // And the token is as dead for a request.
    let reply = Api {
        token: Some(token),
        ..Api::new(&server.base)
    }
    .get("/api/v2/spp/Individual?_count=1")
    .await;
    reply.expect(401);
}
