//! The server as a process: killed with SIGKILL under write load, it loses no acknowledged write,
//! and its projector resumes from the checkpoint without gap or double.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;

use crate::support::{
    create_client, individual_body, path_id, sql_scalar, Api, Server, TestDatabase, ALL_SCOPES,
    NATIONAL_ID,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "process::kill_9_under_load_loses_nothing_and_projector_resumes",
            kill_under_load,
        ),
        trial(
            "process::private_cluster_starts_where_no_server_answers",
            private_cluster,
        ),
        trial(
            "process::a_missing_database_is_created_and_migrated",
            missing_database,
        ),
    ]
}

/// The first command on a fresh machine: the database named by the URL does not exist yet;
/// the server creates it and applies every migration (twice is harmless).
async fn missing_database() {
    let name = format!("openspp_e2e_fresh_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    let admin = "postgres://postgres@127.0.0.1:5432/postgres";
    assert_eq!(sql_scalar(admin, &exists), "0");
    for _ in 0..2 {
        crate::support::cli(&url, &["migrate"]);
    }
    assert_eq!(sql_scalar(admin, &exists), "1");
    assert_eq!(
        sql_scalar(&url, "SELECT count(*) FROM _sqlx_migrations WHERE success"),
        openspp::db::MIGRATOR.iter().count().to_string()
    );
    sql_scalar(admin, &format!("DROP DATABASE \"{name}\" WITH (FORCE)"));
}

/// The embedded default: a private PostgreSQL cluster under the data folder, initialised on
/// first use, reused after, and good enough to migrate into.
async fn private_cluster() {
    let dir = std::env::temp_dir().join(format!(
        "openspp-embedded-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // A port nobody uses right now, so a leftover cluster elsewhere cannot interfere.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = openspp::embedded::start(&dir, port).expect("a private cluster starts");
    assert!(url.contains(&format!(":{port}/")));
    // Starting again finds it running.
    assert_eq!(openspp::embedded::start(&dir, port).unwrap(), url);
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("OPENSPP_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert_eq!(
        sql_scalar(&url, "SELECT count(*) > 0 FROM vocabulary_codes"),
        "t"
    );
    openspp::embedded::stop(&dir).expect("the private cluster stops");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn kill_under_load() {
    let database = TestDatabase::create("openspp_e2e_crash");
    let server = Server::start(&database.url, &[]);
    let mut scopes = Vec::new();
    for scope in ALL_SCOPES {
        scopes.extend(["--scope", scope]);
    }
    let credentials = create_client(&database.url, &scopes);
    let api = Api::new(&server.base).login(&credentials).await;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            let acknowledged = acknowledged.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                loop {
                    let id = format!("crash-{}", counter.fetch_add(1, Ordering::Relaxed));
                    let sent = api
                        .http
                        .post(format!("{}/api/v2/spp/Individual", api.base))
                        .bearer_auth(api.token.as_ref().unwrap())
                        .json(&individual_body(&id))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status().as_u16() == 201 => {
                            acknowledged.lock().unwrap().push(id)
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(server); // SIGKILL, mid-flight
    for writer in writers {
        let _ = writer.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 10, "the load produced writes");

    let restarted = Server::start(&database.url, &[]);
    let api = Api::new(&restarted.base).login(&credentials).await;
    // Every acknowledged write is in the log and, after catch-up, in the read model.
    let streams: i64 = sql_scalar(
        &database.url,
        "SELECT count(DISTINCT aggregate_id) FROM events WHERE aggregate_type = 'Individual'",
    )
    .parse()
    .unwrap();
    assert!(streams as usize >= acknowledged.len());
    let mut caught_up = false;
    for _ in 0..100 {
        let checkpoint = sql_scalar(
            &database.url,
            "SELECT events FROM projection_checkpoints WHERE name = 'registry'",
        );
        let total = sql_scalar(&database.url, "SELECT count(*) FROM events");
        if checkpoint == total {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the projector resumed and caught up");
    let projected: i64 = sql_scalar(&database.url, "SELECT count(*) FROM individual_view")
        .parse()
        .unwrap();
    assert_eq!(projected, streams, "every stream is projected once");
    let stale = sql_scalar(
        &database.url,
        "SELECT count(*) FROM individual_view v WHERE v.version <> \
         (SELECT max(sequence) FROM events e WHERE e.aggregate_type = 'Individual' AND e.aggregate_id = v.aggregate_id)",
    );
    assert_eq!(
        stale, "0",
        "every projected row is at its stream's last event"
    );
    // Every acknowledged write is readable, not a sample: 8 readers share the list.
    let readers: Vec<_> = (0..8)
        .map(|n| {
            let api = api.clone();
            let ids: Vec<String> = acknowledged.iter().skip(n).step_by(8).cloned().collect();
            tokio::spawn(async move {
                for id in ids {
                    let reply = api
                        .get(&format!(
                            "/api/v2/spp/Individual/{}",
                            path_id(NATIONAL_ID, &id)
                        ))
                        .await;
                    assert_eq!(reply.status.as_u16(), 200, "acknowledged {id} is readable");
                    assert_eq!(reply.body["identifier"][0]["value"], id.as_str());
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.expect("every acknowledged write is readable");
    }
    drop(restarted);
    drop(database);
}
