//! The event store used directly, as `$batch`, `openspp import` and seeding will use it: a
//! batch commits every command or none, and a write whose connection breaks is never
//! reported as failed if it committed.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use openspp::store::{CommandMetadata, EventStore, StoreError};
use openspp_aggregates::consent::{Access, Actor};
use openspp_aggregates::{
    DomainError, Group, GroupCommand, GroupDetails, HumanName, Identifier, Individual,
    IndividualCommand, IndividualDetails, MemberSpec, RegistryServices, SystemClock,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{sql_scalar, unique, world, NATIONAL_ID};

/// A store on `url`, with the server's own services.
pub async fn store_on(url: &str) -> (PgPool, EventStore, RegistryServices) {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(url)
        .unwrap();
    let registry = PgPool::connect(&world().database_url).await.unwrap();
    let catalogs = openspp::catalog_sync::Catalogs::load(&registry)
        .await
        .unwrap();
    registry.close().await;
    let services = RegistryServices {
        vocabulary: catalogs.vocabulary,
        extensions: catalogs.extensions,
        clock: Arc::new(SystemClock),
    };
    (pool.clone(), EventStore::new(pool), services)
}

pub fn metadata() -> CommandMetadata {
    CommandMetadata {
        client_id: "e2e-direct".into(),
        source_system: "urn:test:batch".into(),
        source_reference: None,
        collection_method: "import".into(),
        request_id: unique("req"),
        consent_id: None,
        consent_subject: None,
        consent_recipient: None,
    }
}

pub fn person(national_id: &str, given: &str) -> IndividualDetails {
    IndividualDetails {
        identifiers: vec![Identifier {
            system: NATIONAL_ID.into(),
            value: national_id.into(),
        }],
        active: true,
        name: HumanName {
            family: Some("Batch".into()),
            given: Some(given.into()),
            ..HumanName::default()
        },
        birth_date: NaiveDate::from_ymd_opt(1990, 1, 2),
        birth_date_estimated: false,
        gender: None,
        telecom: Vec::new(),
        address: Vec::new(),
        photo: None,
        extension: None,
    }
}

fn household(value: &str, members: &[&str]) -> GroupDetails {
    GroupDetails {
        identifiers: vec![Identifier {
            system: "urn:openspp:group".into(),
            value: value.into(),
        }],
        active: true,
        group_type: "household".into(),
        name: Some(format!("Household {value}")),
        address: Vec::new(),
        extension: None,
        members: Some(
            members
                .iter()
                .map(|individual| MemberSpec {
                    individual: (*individual).to_owned(),
                    roles: Vec::new(),
                    start_date: None,
                })
                .collect(),
        ),
    }
}

fn legal_basis() -> Access {
    Access {
        actor: Actor {
            organization: "Test Org".into(),
            organization_type: "government".into(),
            legal_basis: Some("public_task".into()),
            field_filter: Vec::new(),
        },
        consents: Vec::new(),
    }
}

fn stream() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn count(sql: &str) -> i64 {
    sql_scalar(&world().database_url, sql).parse().unwrap()
}

/// Two individuals (one registered and renamed in the same batch) and their household: one
/// statement, one transaction id, one recording time, every read model and index written.
/// Then a batch whose last command claims an identifier another registrant holds: it leaves
/// no trace of its other commands in the log, the claims, the indexes or any read model. A
/// command the domain refuses leaves the batch as it was.
pub async fn batch_commits_every_command_or_none() {
    let (_, store, services) = store_on(&world().database_url).await;
    let meta = metadata();
    let (a, b, g) = (stream(), stream(), stream());
    let (id_a, id_b, id_g) = (unique("BA"), unique("BB"), unique("BG"));
    let mut batch = store.batch::<DomainError>();
    let registered = batch
        .decide::<Individual>(
            &a,
            None,
            IndividualCommand::Register(person(&id_a, "Ana")),
            &services,
            &meta,
        )
        .await
        .unwrap();
    assert_eq!(registered, 2, "registered with its identifier");
    let renamed = batch
        .decide::<Individual>(
            &a,
            Some(registered),
            IndividualCommand::Replace {
                details: person(&id_a, "Renamed"),
                stated: vec![
                    "name".into(),
                    "identifier".into(),
                    "birthDate".into(),
                    "active".into(),
                ],
                access: legal_basis(),
            },
            &services,
            &meta,
        )
        .await
        .unwrap();
    assert_eq!(renamed, 3, "the second command saw the first one's events");
    let refused = batch
        .decide::<Individual>(
            &a,
            None,
            IndividualCommand::Register(person(&id_a, "Again")),
            &services,
            &meta,
        )
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::Domain(DomainError::AlreadyExists))
    ));
    batch
        .decide::<Individual>(
            &b,
            None,
            IndividualCommand::Register(person(&id_b, "Ben")),
            &services,
            &meta,
        )
        .await
        .unwrap();
    batch
        .decide::<Group>(
            &g,
            None,
            GroupCommand::Register(household(&id_g, &[&a, &b])),
            &services,
            &meta,
        )
        .await
        .unwrap();
    let mut receipt = batch.commit().await.unwrap();
    let individual = receipt.take::<Individual>(&a).unwrap();
    assert_eq!(individual.version, 3);
    assert_eq!(individual.aggregate.name.given.as_deref(), Some("Renamed"));
    assert_eq!(individual.last_updated, receipt.recorded_at);
    assert_eq!(individual.source.as_deref(), Some("urn:test:batch"));
    assert_eq!(
        receipt.take::<Group>(&g).unwrap().aggregate.members.len(),
        2
    );

    let streams = format!("('{a}', '{b}', '{g}')");
    assert_eq!(
        count(&format!("SELECT count(DISTINCT (tx_id, recorded_at)) FROM events WHERE aggregate_id IN {streams}")),
        1,
        "one transaction, one recording time"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM events e JOIN events p ON p.aggregate_id = e.aggregate_id \
             AND p.sequence = e.sequence - 1 WHERE e.aggregate_id = '{a}' AND e.prev_hash = p.hash"
        )),
        2,
        "the stream's events are chained"
    );
    assert_eq!(
        sql_scalar(
            &world().database_url,
            &format!("SELECT version || ' ' || given_name FROM individual_view WHERE aggregate_id = '{a}'")
        ),
        "3 Renamed"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM individual_view WHERE aggregate_id = '{b}'"
        )),
        1
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM group_view WHERE aggregate_id = '{g}'"
        )),
        1
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM group_members_view WHERE group_id = '{g}'"
        )),
        2
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM group_membership_index WHERE group_id = '{g}'"
        )),
        2
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM identifier_claims WHERE value IN ('{id_a}', '{id_b}', '{id_g}')"
        )),
        3
    );

    // All or nothing.
    let (c, g2, d) = (stream(), stream(), stream());
    let (id_c, id_g2) = (unique("BC"), unique("BG"));
    let mut batch = store.batch::<DomainError>();
    batch
        .decide::<Individual>(
            &c,
            None,
            IndividualCommand::Register(person(&id_c, "Cy")),
            &services,
            &meta,
        )
        .await
        .unwrap();
    batch
        .decide::<Group>(
            &g2,
            None,
            GroupCommand::Register(household(&id_g2, &[&c, &b])),
            &services,
            &meta,
        )
        .await
        .unwrap();
    batch
        .decide::<Individual>(
            &d,
            None,
            IndividualCommand::Register(person(&id_a, "Dup")),
            &services,
            &meta,
        )
        .await
        .unwrap();
    match batch.commit().await {
        Err(StoreError::IdentifierInUse(taken)) => assert_eq!(taken.value, id_a),
        other => panic!(
            "expected the identifier refusal, got {:?}",
            other.map(|r| r.position)
        ),
    }
    let streams = format!("('{c}', '{g2}', '{d}')");
    for sql in [
        format!("SELECT count(*) FROM events WHERE aggregate_id IN {streams}"),
        format!("SELECT count(*) FROM identifier_claims WHERE value IN ('{id_c}', '{id_g2}') OR aggregate_id IN {streams}"),
        format!("SELECT count(*) FROM individual_view WHERE aggregate_id IN {streams}"),
        format!("SELECT count(*) FROM group_view WHERE aggregate_id IN {streams}"),
        format!("SELECT count(*) FROM group_members_view WHERE group_id IN {streams}"),
        format!("SELECT count(*) FROM group_membership_index WHERE group_id IN {streams}"),
    ] {
        assert_eq!(count(&sql), 0, "{sql}");
    }
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM group_membership_index WHERE individual_id = '{b}'"
        )),
        1,
        "b is still in one household only"
    );
}

/// What the proxy does to the next append statement it sees.
const PASS: u8 = 0;
/// Forwards the append, lets the server commit it, and loses the answer.
const LOSE_ANSWER: u8 = 1;
/// Loses the append itself: the server never sees it.
const LOSE_STATEMENT: u8 = 2;

/// A TCP proxy to PostgreSQL that breaks the connection of the next append, once.
async fn proxy(mode: Arc<AtomicU8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let mode = mode.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect("127.0.0.1:5432").await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                // Set once this connection carries the append: its answer is lost.
                let cut = Arc::new(AtomicU8::new(0));
                let cut_up = cut.clone();
                let upstream = tokio::spawn(async move {
                    let mut buffer = vec![0u8; 1 << 16];
                    loop {
                        let n = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let chunk = &buffer[..n];
                        let append = chunk.windows(18).any(|w| w == b"INSERT INTO events");
                        if append {
                            match mode.swap(PASS, Ordering::SeqCst) {
                                LOSE_STATEMENT => return,
                                LOSE_ANSWER => cut_up.store(1, Ordering::SeqCst),
                                _ => {}
                            }
                        }
                        if server_write.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                });
                let mut buffer = vec![0u8; 1 << 16];
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    // The answer to the append's prepare is let through; the answer to its
                    // execution (a command tag) is not.
                    if cut.load(Ordering::SeqCst) == 1
                        && buffer[..n].windows(9).any(|w| w == b"SELECT 1\0")
                    {
                        break;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                drop(client_write);
                // The server has the append's Sync already: give it time to commit.
                tokio::time::sleep(Duration::from_millis(300)).await;
                upstream.abort();
            });
        }
    });
    port
}

/// A write whose connection breaks after the server committed it is reported as done (the
/// store looks for it before answering); one whose statement never reached the server is
/// reported as of unknown outcome, never as done, and nothing is written.
pub async fn a_lost_connection_is_settled_before_answering() {
    let mode = Arc::new(AtomicU8::new(PASS));
    let port = proxy(mode.clone()).await;
    let database = world().database_url.rsplit('/').next().unwrap().to_owned();
    // In clear, so the proxy can see which statement is the append.
    let url = format!("postgres://postgres@127.0.0.1:{port}/{database}?sslmode=disable");
    let (_, store, services) = store_on(&url).await;

    let (stream_a, id_a) = (stream(), unique("LOST"));
    mode.store(LOSE_ANSWER, Ordering::SeqCst);
    let committed = store
        .execute::<Individual>(
            &stream_a,
            None,
            IndividualCommand::Register(person(&id_a, "Kept")),
            &services,
            &metadata(),
        )
        .await;
    let committed = committed.unwrap_or_else(|e| panic!("a committed write was reported as {e}"));
    assert_eq!(committed.version, 2);
    assert!(committed.position.is_some());
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM events WHERE aggregate_id = '{stream_a}'"
        )),
        2
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM individual_view WHERE aggregate_id = '{stream_a}'"
        )),
        1
    );

    let (stream_b, id_b) = (stream(), unique("LOST"));
    mode.store(LOSE_STATEMENT, Ordering::SeqCst);
    let lost = store
        .execute::<Individual>(
            &stream_b,
            None,
            IndividualCommand::Register(person(&id_b, "Gone")),
            &services,
            &metadata(),
        )
        .await;
    assert!(
        matches!(lost, Err(StoreError::OutcomeUnknown)),
        "{:?}",
        lost.map(|c| c.version)
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM events WHERE aggregate_id = '{stream_b}'"
        )),
        0
    );
}

/// A database that cannot be reached is `Unavailable` (nothing was written), told apart from
/// every other fault, so the API answers 503 with `Retry-After`.
pub async fn an_unreachable_database_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_, store, services) =
        store_on(&format!("postgres://postgres@127.0.0.1:{port}/nowhere")).await;
    let result = store
        .execute::<Individual>(
            &stream(),
            None,
            IndividualCommand::Register(person(&unique("U"), "U")),
            &services,
            &metadata(),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{:?}",
        result.map(|c| c.version)
    );
}
