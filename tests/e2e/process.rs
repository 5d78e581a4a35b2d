//! The server as a process: killed with SIGKILL under write load, it loses no acknowledged write,
//! and its projector resumes from the checkpoint without gap or double.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Trial;

use crate::support::{
    cli, create_client, individual_body, path_id, sql_scalar, world, Api, Server, TestDatabase,
    ALL_SCOPES, NATIONAL_ID,
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
        trial(
            "process::serve_stops_the_cluster_it_started_and_only_that",
            embedded_stops_with_the_server,
        ),
        trial(
            "process::client_changes_reach_every_process_on_the_next_request",
            client_changes_reach_every_process,
        ),
        trial(
            "process::a_lost_listener_never_serves_a_revoked_client",
            lost_listener_fails_safe,
        ),
        trial(
            "process::rate_limits_are_shared_by_every_process",
            shared_rate_limits,
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
    let cluster = openspp::embedded::start(&dir, port).expect("a private cluster starts");
    assert!(cluster.started_here());
    let url = cluster.url.clone();
    assert!(url.contains(&format!(":{port}/")));
    // Starting again finds it running, and leaves it running when done with it.
    let again = openspp::embedded::start(&dir, port).unwrap();
    assert_eq!(again.url, url);
    assert!(!again.started_here());
    drop(again);
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
    drop(cluster); // stops what this test started
    assert!(!answers(port), "the private cluster stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// `serve` with no DATABASE_URL and nothing on the local PostgreSQL port (PGPORT points at a
/// free one): it starts the private cluster and stops it on SIGTERM. Started with the cluster
/// already running, it leaves it running.
async fn embedded_stops_with_the_server() {
    let dir = std::env::temp_dir().join(format!(
        "openspp-embedded-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let serve = || {
        let mut command = Server::command();
        command
            .env_remove("DATABASE_URL")
            .env("PGPORT", free_port().to_string())
            .env("OPENSPP_DATA_DIR", &dir)
            .env("OPENSPP_EMBEDDED_PORT", port.to_string());
        Server::spawn(command)
    };
    let server = serve();
    assert!(answers(port), "the server started the private cluster");
    Api::new(&server.base).get("/readyz").await.expect(200);
    assert!(server.terminate().success());
    assert!(!answers(port), "the cluster it started stopped with it");
    assert!(!dir.join("pg/postmaster.pid").exists());

    let running = openspp::embedded::start(&dir, port).unwrap();
    assert!(running.started_here());
    let server = serve();
    Api::new(&server.base).get("/readyz").await.expect(200);
    assert!(server.terminate().success());
    assert!(answers(port), "a cluster that was running is left running");
    drop(running);
    assert!(!answers(port));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two server processes on one database, both with the client cached: every change the CLI
/// makes — fields, scopes, secret, deactivation — holds on both from the very next request.
async fn client_changes_reach_every_process() {
    let url = &world().database_url;
    let other = Server::start(url, &[]);
    let admin = crate::support::admin().await;
    let id = crate::support::unique("two-processes");
    let path = crate::support::register_individual(&admin, &id).await;
    let credentials = create_client(url, &["--scope", "individual:all"]);
    let token = Api::new(&world().base).token(&credentials).await;
    let on = |base: &str| Api {
        token: Some(token.clone()),
        ..Api::new(base)
    };
    let servers = [on(&world().base), on(&other.base)];
    for api in &servers {
        let reply = api.get(&path).await;
        reply.expect(200);
        assert!(reply.body["birthDate"].is_string());
    }
    let client = credentials.client_id.as_str();

    cli(
        url,
        &["client", "update", client, "--field", "individual:name"],
    );
    for api in &servers {
        let reply = api.get(&path).await;
        reply.expect(200);
        assert!(
            reply.body["birthDate"].is_null(),
            "the field limit holds at once"
        );
        assert!(reply.body["name"].is_object());
    }
    cli(
        url,
        &["client", "update", client, "--scope", "individual:search"],
    );
    for api in &servers {
        api.get(&path).await.expect(403);
    }
    cli(
        url,
        &[
            "client",
            "update",
            client,
            "--scope",
            "individual:all",
            "--all-fields",
        ],
    );
    for api in &servers {
        let reply = api.get(&path).await;
        reply.expect(200);
        assert!(reply.body["birthDate"].is_string());
    }

    let rotated: serde_json::Value =
        serde_json::from_str(&cli(url, &["client", "rotate-secret", client])).unwrap();
    for api in &servers {
        api.get(&path).await.expect(401);
    }
    let renewed = crate::support::Credentials {
        client_id: credentials.client_id.clone(),
        client_secret: rotated["client_secret"].as_str().unwrap().to_owned(),
    };
    let token = Api::new(&other.base).token(&renewed).await;
    let servers = servers.map(|api| Api {
        token: Some(token.clone()),
        ..api
    });
    for api in &servers {
        api.get(&path).await.expect(200);
    }

    cli(url, &["client", "deactivate", client]);
    for api in &servers {
        api.get(&path).await.expect(401);
    }
    drop(other);
}

/// A change whose announcement this server never heard (the trigger is switched off for it, as
/// if the notification were lost with the connection): once the listening connection is lost,
/// the server stops trusting its cache and reads the client again, so the revoked client fails.
async fn lost_listener_fails_safe() {
    let database = TestDatabase::create("openspp_e2e_listener");
    let server = Server::start(&database.url, &[]);
    let credentials = create_client(&database.url, &["--scope", "individual:all"]);
    let api = Api::new(&server.base).login(&credentials).await;
    api.get("/api/v2/spp/Individual").await.expect(200);
    sql_scalar(
        &database.url,
        &format!(
            "BEGIN; ALTER TABLE api_clients DISABLE TRIGGER api_clients_announce;              UPDATE api_clients SET active = false WHERE client_id = '{}';              ALTER TABLE api_clients ENABLE TRIGGER api_clients_announce; COMMIT; SELECT 1",
            credentials.client_id
        ),
    );
    // Unannounced, the change is not seen: the client is served from memory.
    api.get("/api/v2/spp/Individual").await.expect(200);
    sql_scalar(
        &database.url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity          WHERE datname = current_database() AND application_name LIKE 'openspp-cache:%'",
    );
    let mut refused = false;
    for _ in 0..100 {
        match api.get("/api/v2/spp/Individual").await.status.as_u16() {
            401 => {
                refused = true;
                break;
            }
            200 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        refused,
        "the revoked client is refused once the listener is lost"
    );
    // And it stays refused after the listener is back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.get("/api/v2/spp/Individual").await.expect(401);
    drop(server);
    drop(database);
}

/// A limit of three a minute, spread over two processes: three requests in a minute in all,
/// not three per process.
async fn shared_rate_limits() {
    let url = &world().database_url;
    let other = Server::start(url, &[]);
    for _attempt in 0..3 {
        let printed = cli(
            url,
            &[
                "client",
                "create",
                "--name",
                "shared limit",
                "--organization",
                "O",
                "--organization-type",
                "ngo",
                "--scope",
                "individual:all",
                "--no-consent-required",
                "--legal-basis",
                "public_task",
                "--rate-limit-per-minute",
                "3",
            ],
        );
        let value: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
        let credentials = crate::support::Credentials {
            client_id: value["client_id"].as_str().unwrap().into(),
            client_secret: value["client_secret"].as_str().unwrap().into(),
        };
        let token = Api::new(&world().base).token(&credentials).await;
        let minute = "SELECT date_trunc('minute', now())";
        let started = sql_scalar(url, minute);
        let mut admitted = 0;
        for n in 0..10 {
            let base = if n % 2 == 0 {
                &world().base
            } else {
                &other.base
            };
            let api = Api {
                token: Some(token.clone()),
                ..Api::new(base)
            };
            match api.get("/api/v2/spp/Individual").await.status.as_u16() {
                200 => admitted += 1,
                429 => {}
                other => panic!("unexpected status {other}"),
            }
        }
        if sql_scalar(url, minute) == started {
            assert_eq!(admitted, 3, "three in the minute, across both processes");
            drop(other);
            return;
        }
        // The minute turned during the run; try again within one.
    }
    panic!("never ran within one minute");
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
