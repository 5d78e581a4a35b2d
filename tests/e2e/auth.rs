//! Authentication as an attacker and an operator would exercise it: token encodings, forged and
//! `alg: none` tokens, scopes, deactivation, secret rotation, rate limits, key rotation.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use libtest_mimic::Trial;
use reqwest::Method;
use serde_json::{json, Value};

use openspp::auth::key_sealing::KeyEncryptionKey;

use crate::support::{
    cli, create_client, individual_body, sql_scalar, unique, world, Api, Server, TEST_KEK,
};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("auth::token_by_form_and_basic", token_encodings),
        trial("auth::bad_credentials_are_invalid_client", bad_credentials),
        trial("auth::bad_grant_and_scope_requests", bad_requests),
        trial("auth::no_or_garbage_token_is_401", no_token),
        trial("auth::alg_none_and_forged_tokens_are_401", forged_tokens),
        trial(
            "auth::expired_and_wrong_audience_tokens_are_401",
            expired_tokens,
        ),
        trial("auth::missing_scope_is_403", missing_scope),
        trial("auth::requested_scope_narrows_the_token", narrowed_scope),
        trial("auth::deactivated_client_fails_at_once", deactivated),
        trial("auth::rotated_secret_replaces_the_old", rotated_secret),
        trial("auth::client_rate_limit_answers_429", client_rate_limit),
        trial(
            "auth::token_endpoint_rate_limit_per_address",
            token_rate_limit,
        ),
        trial("auth::jwks_and_key_rotation", key_rotation),
        trial(
            "auth::client_create_refuses_inconsistent_flags",
            inconsistent_flags,
        ),
        trial("auth::client_list_shows_no_secrets", client_list),
        trial(
            "auth::scopes_that_do_not_exist_are_invalid_scope",
            unknown_scopes,
        ),
        trial(
            "auth::the_database_holds_no_usable_private_key",
            sealed_keys,
        ),
        trial(
            "auth::plaintext_keys_are_sealed_at_start_and_keep_verifying",
            plaintext_keys_sealed,
        ),
        trial(
            "auth::key_encryption_key_generated_checked_and_reencrypted",
            key_encryption_key_lifecycle,
        ),
        trial(
            "auth::cached_requests_make_no_auth_round_trip",
            no_auth_round_trip,
        ),
    ]
}

fn base() -> Api {
    Api::new(&world().base)
}

fn scoped(scopes: &[&str]) -> crate::support::Credentials {
    let mut args = Vec::new();
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    create_client(&world().database_url, &args)
}

async fn token_encodings() {
    let credentials = scoped(&["individual:read"]);
    let api = base();
    let form = api
        .http
        .post(format!("{}/api/v2/spp/oauth/token", api.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 200);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "individual:read");
    assert!(body["expires_in"].as_u64().unwrap() > 0);

    let basic = api
        .http
        .post(format!("{}/api/v2/spp/oauth/token", api.base))
        .header(
            "authorization",
            format!(
                "Basic {}",
                STANDARD.encode(format!(
                    "{}:{}",
                    credentials.client_id, credentials.client_secret
                ))
            ),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);
}

async fn bad_credentials() {
    let credentials = scoped(&["individual:read"]);
    let api = base();
    for (id, secret) in [
        (credentials.client_id.as_str(), "wrong"),
        ("client_unknown", credentials.client_secret.as_str()),
    ] {
        let reply = api
            .post(
                "/api/v2/spp/oauth/token",
                json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret}),
            )
            .await;
        reply.expect(401);
        assert_eq!(reply.body["error"], "invalid_client");
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
        assert!(reply.body["detail"].is_string());
    }
}

async fn bad_requests() {
    let credentials = scoped(&["individual:read"]);
    let api = base();
    let ask = |body: Value| {
        let api = api.clone();
        async move { api.post("/api/v2/spp/oauth/token", body).await }
    };
    let reply = ask(json!({"grant_type": "password", "client_id": credentials.client_id, "client_secret": credentials.client_secret})).await;
    reply.expect(400);
    assert_eq!(reply.body["error"], "unsupported_grant_type");
    let reply = ask(
        json!({"client_id": credentials.client_id, "client_secret": credentials.client_secret}),
    )
    .await;
    reply.expect(400);
    assert_eq!(reply.body["error"], "invalid_request");
    let reply = ask(
        json!({"grant_type": "client_credentials", "client_id": credentials.client_id,
        "client_secret": credentials.client_secret, "scope": "individual:read group:all"}),
    )
    .await;
    reply.expect(400);
    assert_eq!(reply.body["error"], "invalid_scope");
}

async fn no_token() {
    let reply = base().get("/api/v2/spp/Individual").await;
    reply.expect(401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
    let mut api = base();
    api.token = Some("not.a.token".into());
    let reply = api.get("/api/v2/spp/Individual").await;
    reply.expect(401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
}

fn claims(client_id: &str, audience: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "urn:openspp:api", "aud": audience, "sub": client_id, "client_id": client_id,
        "scope": "individual:all", "iat": now, "nbf": now, "exp": now + exp_offset, "jti": "t"
    })
}

fn current_kid() -> String {
    sql_scalar(
        &world().database_url,
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
    )
}

async fn rejected(token: String) {
    let mut api = base();
    api.token = Some(token);
    let reply = api.get("/api/v2/spp/Individual").await;
    reply.expect(401);
}

async fn forged_tokens() {
    let id = world().admin.client_id.clone();
    let kid = current_kid();
    let body = URL_SAFE_NO_PAD.encode(claims(&id, "urn:openspp:api:v2", 600).to_string());
    let none = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string());
    rejected(format!("{none}.{body}.")).await;

    // An Ed25519 key of the attacker's own, presented under our key id.
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&attacker).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let forged = encode(
        &header,
        &claims(&id, "urn:openspp:api:v2", 600),
        &EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    rejected(forged).await;

    // HS256 keyed with the published public key (algorithm confusion).
    let jwks = base().get("/.well-known/jwks.json").await;
    let x = jwks.body["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid);
    let confused = encode(
        &header,
        &claims(&id, "urn:openspp:api:v2", 600),
        &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(x).unwrap()),
    )
    .unwrap();
    rejected(confused).await;
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The server's signing key, opened with the key-encryption key the tests give the servers.
fn server_key(database_url: &str, kid: &str) -> Vec<u8> {
    let sealed = sql_scalar(
        database_url,
        &format!("SELECT encode(private_sealed, 'hex') FROM signing_keys WHERE kid = '{kid}'"),
    );
    KeyEncryptionKey::parse(TEST_KEK, "test")
        .unwrap()
        .open(kid, &unhex(&sealed))
        .expect("the test key-encryption key opens the server's keys")
}

fn sign(kid: &str, der: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &EncodingKey::from_ed_der(der)).unwrap()
}

/// Signs with the server's real key, to show that only the claims are at fault.
fn signed_by_server(claims: &Value) -> String {
    let kid = current_kid();
    sign(&kid, &server_key(&world().database_url, &kid), claims)
}

async fn expired_tokens() {
    let id = world().admin.client_id.clone();
    // The control: a well-formed token signed by the server is accepted.
    let mut api = base();
    api.token = Some(signed_by_server(&claims(&id, "urn:openspp:api:v2", 600)));
    api.get("/api/v2/spp/Individual").await.expect(200);
    rejected(signed_by_server(&claims(&id, "urn:openspp:api:v2", -600))).await;
    rejected(signed_by_server(&claims(&id, "urn:someone:else", 600))).await;
    let mut future = claims(&id, "urn:openspp:api:v2", 1200);
    future["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
    rejected(signed_by_server(&future)).await;
}

async fn missing_scope() {
    // A scope on another resource grants nothing here.
    let credentials = scoped(&["group:read"]);
    let api = base().login(&credentials).await;
    let reply = api.get("/api/v2/spp/Individual").await;
    reply.expect(403);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(challenge.contains("individual:search"), "{challenge}");
    let reply = api.post("/api/v2/spp/Group", json!({})).await;
    reply.expect(403);
    // `x:search` stays the narrower scope: searches only, no single reads.
    let searcher = base().login(&scoped(&["individual:search"])).await;
    searcher.get("/api/v2/spp/Individual").await.expect(200);
    let reply = searcher
        .get("/api/v2/spp/Individual/urn:gov:ph:psa:national-id|nobody")
        .await;
    reply.expect(403);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.contains("individual:read"), "{challenge}");
}

async fn narrowed_scope() {
    let credentials = scoped(&["individual:all"]);
    let api = base();
    let reply = api
        .post(
            "/api/v2/spp/oauth/token",
            json!({"grant_type": "client_credentials", "client_id": credentials.client_id,
                   "client_secret": credentials.client_secret, "scope": "individual:read"}),
        )
        .await;
    reply.expect(200);
    let mut narrowed = base();
    narrowed.token = Some(reply.body["access_token"].as_str().unwrap().to_owned());
    // `read` allows searches, as OpenSPP grants it (CONTRACT §4a); writes are outside it.
    narrowed.get("/api/v2/spp/Individual").await.expect(200);
    narrowed
        .post("/api/v2/spp/Individual", individual_body(&unique("NRW")))
        .await
        .expect(403);
}

async fn deactivated() {
    let credentials = scoped(&["individual:all"]);
    let api = base().login(&credentials).await;
    api.get("/api/v2/spp/Individual").await.expect(200);
    cli(
        &world().database_url,
        &["client", "deactivate", &credentials.client_id],
    );
    api.get("/api/v2/spp/Individual").await.expect(401);
    let reply = base()
        .post(
            "/api/v2/spp/oauth/token",
            json!({"grant_type": "client_credentials", "client_id": credentials.client_id,
                   "client_secret": credentials.client_secret}),
        )
        .await;
    reply.expect(401);
}

/// A rotation kills the old secret and, at once, every token issued under it; tokens of the
/// new secret work.
async fn rotated_secret() {
    let old = scoped(&["individual:all"]);
    let before = base().login(&old).await;
    before.get("/api/v2/spp/Individual").await.expect(200);
    let printed = cli(
        &world().database_url,
        &["client", "rotate-secret", &old.client_id],
    );
    let new: Value = serde_json::from_str(printed.trim()).unwrap();
    let attempt = |secret: String| {
        let id = old.client_id.clone();
        async move {
            base()
                .post(
                    "/api/v2/spp/oauth/token",
                    json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret}),
                )
                .await
                .status
                .as_u16()
        }
    };
    let reply = before.get("/api/v2/spp/Individual").await;
    reply.expect(401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(attempt(old.client_secret.clone()).await, 401);
    assert_eq!(
        attempt(new["client_secret"].as_str().unwrap().to_owned()).await,
        200
    );
    let after = base()
        .login(&crate::support::Credentials {
            client_id: old.client_id.clone(),
            client_secret: new["client_secret"].as_str().unwrap().to_owned(),
        })
        .await;
    after.get("/api/v2/spp/Individual").await.expect(200);
}

async fn client_rate_limit() {
    let printed = cli(
        &world().database_url,
        &[
            "client",
            "create",
            "--name",
            "limited",
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
            "2",
        ],
    );
    let value: Value = serde_json::from_str(printed.trim()).unwrap();
    let credentials = crate::support::Credentials {
        client_id: value["client_id"].as_str().unwrap().into(),
        client_secret: value["client_secret"].as_str().unwrap().into(),
    };
    let api = base().login(&credentials).await;
    let mut limited = None;
    // Eight requests cannot all fit in windows of two, however the minutes fall.
    for _ in 0..8 {
        let reply = api.get("/api/v2/spp/Individual").await;
        if reply.status.as_u16() == 429 {
            limited = Some(reply);
            break;
        }
        reply.expect(200);
    }
    let reply = limited.expect("the client was rate limited");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(reply.body["resourceType"], "OperationOutcome");
}

async fn token_rate_limit() {
    let server = Server::start(
        &world().database_url,
        &[("OPENSPP_TOKEN_RATE_PER_MINUTE", "2")],
    );
    let api = Api::new(&server.base);
    let credentials = world().admin.clone();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let reply = api
            .send(
                Method::POST,
                "/api/v2/spp/oauth/token",
                Some(
                    json!({"grant_type": "client_credentials", "client_id": credentials.client_id,
                            "client_secret": credentials.client_secret}),
                ),
                &[],
            )
            .await;
        if reply.status.as_u16() == 429 {
            assert!(reply.header("retry-after").is_some());
        }
        statuses.push(reply.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// The key id a token was signed with.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Rotation and retirement, on a server of its own: retiring a key invalidates every token it
/// signed, which the shared server's other tests must not see.
async fn key_rotation() {
    let database = crate::support::TestDatabase::create("openspp_e2e_keys");
    let server = Server::start(&database.url, &[]);
    let client = create_client(&database.url, &["--scope", "individual:all"]);
    let public = Api::new(&server.base);
    let before = public.get("/.well-known/jwks.json").await;
    before.expect(200);
    let key = &before.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert!(key.get("d").is_none(), "no private material is published");
    let first = kids(&before.body);
    assert_eq!(first.len(), 1);
    let old = public.login(&client).await;
    assert_eq!(kid_of(old.token.as_ref().unwrap()), first[0]);

    // The CLI returns once every server has taken the change: no waiting here.
    let rotated: Value = serde_json::from_str(&cli(&database.url, &["key", "rotate"])).unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert!(kids(&public.get("/.well-known/jwks.json").await.body).contains(&new_kid));
    // New logins sign with the new key; tokens of the old one keep working.
    let fresh = public.login(&client).await;
    assert_eq!(kid_of(fresh.token.as_ref().unwrap()), new_kid);
    old.get("/api/v2/spp/Individual").await.expect(200);

    // The signing key cannot be retired; an older one can, and its tokens fail everywhere.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(["key", "retire", &new_kid])
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    cli(&database.url, &["key", "retire", &first[0]]);
    old.get("/api/v2/spp/Individual").await.expect(401);
    fresh.get("/api/v2/spp/Individual").await.expect(200);
    assert_eq!(
        kids(&public.get("/.well-known/jwks.json").await.body),
        vec![new_kid]
    );
    drop(server);
    drop(database);
}

async fn client_list() {
    let listed = cli(&world().database_url, &["client", "list"]);
    assert!(listed.contains(&world().admin.client_id));
    assert!(!listed.contains(&world().admin.client_secret));
    assert!(!listed.contains("argon2"));
}

/// The operator hears about a mistake in the command line as a usage error (exit status 2,
/// raised before any connection), not as a database failure.
async fn inconsistent_flags() {
    for extra in [
        &["--legal-basis", "public_task"][..],
        &["--rate-limit-per-minute", "4294967295"][..],
        &["--rate-limit-per-day", "-1"][..],
    ] {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "Flags",
            "--organization",
            "Org",
            "--organization-type",
            "ngo",
            "--scope",
            "individual:read",
        ];
        args.extend(extra);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
            .args(&args)
            .env("DATABASE_URL", &world().database_url)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{extra:?} is a usage error");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("database"), "{stderr}");
    }
}

/// What `openspp client create` printed.
fn credentials(printed: &str) -> crate::support::Credentials {
    let value: Value = serde_json::from_str(printed.trim()).unwrap();
    crate::support::Credentials {
        client_id: value["client_id"].as_str().unwrap().into(),
        client_secret: value["client_secret"].as_str().unwrap().into(),
    }
}

/// `x:all` covers any `x:…` by its wording, but only scopes that exist are granted.
async fn unknown_scopes() {
    let credentials = scoped(&["individual:all", "dci:search", "aggregation:read"]);
    let ask = |scope: &'static str| {
        let credentials = credentials.clone();
        async move {
            base()
                .post(
                    "/api/v2/spp/oauth/token",
                    json!({"grant_type": "client_credentials", "client_id": credentials.client_id,
                           "client_secret": credentials.client_secret, "scope": scope}),
                )
                .await
        }
    };
    for scope in [
        "individual:bogus",
        "individual:read individual:bogus",
        "bogus",
        "individual:read:all",
        "individual:",
    ] {
        let reply = ask(scope).await;
        reply.expect(400);
        assert_eq!(reply.body["error"], "invalid_scope", "{scope}");
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }
    let granted = ask("individual:read dci:search").await;
    granted.expect(200);
    assert_eq!(granted.body["scope"], "individual:read dci:search");
}

/// What the database holds cannot sign: no plaintext column is filled, the sealed bytes do not
/// contain the private key, and only the key-encryption key opens them.
async fn sealed_keys() {
    let url = &world().database_url;
    assert_eq!(
        sql_scalar(
            url,
            "SELECT count(*) FROM signing_keys WHERE private_der IS NOT NULL"
        ),
        "0"
    );
    let kid = current_kid();
    let der = server_key(url, &kid);
    let private: ed25519_dalek::SigningKey =
        ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_der(&der).unwrap();
    let seed = hex::encode(private.to_bytes());
    let row = sql_scalar(
        url,
        &format!("SELECT lower(t::text) FROM signing_keys t WHERE kid = '{kid}'"),
    );
    assert!(
        !row.contains(&seed),
        "the private key is stored in the clear"
    );
    let sealed = sql_scalar(
        url,
        &format!("SELECT encode(private_sealed, 'hex') FROM signing_keys WHERE kid = '{kid}'"),
    );
    let other =
        KeyEncryptionKey::parse("b3BlbnNwcC1lMmUtb3RoZXIta2V5LWVuY3J5cHRpb24=", "t").unwrap();
    assert!(other.open(&kid, &unhex(&sealed)).is_none());
    // The opened key is the one that signs: a token it signs is accepted.
    let mut api = base();
    api.token = Some(signed_by_server(&claims(
        &world().admin.client_id,
        "urn:openspp:api:v2",
        600,
    )));
    api.get("/api/v2/spp/Individual").await.expect(200);
}

/// A database from before sealing: its plaintext key is sealed by the first server to start,
/// and tokens it signed keep working (no new key is made, no client logs in again).
async fn plaintext_keys_sealed() {
    let database = crate::support::TestDatabase::create("openspp_e2e_legacy_keys");
    cli(&database.url, &["migrate"]);
    let legacy = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&legacy).unwrap();
    let public = legacy.verifying_key().to_bytes();
    sql_scalar(
        &database.url,
        &format!(
            "INSERT INTO signing_keys (kid, algorithm, private_der, public_key) \
             VALUES ('legacy', 'EdDSA', decode('{}', 'hex'), decode('{}', 'hex')) RETURNING 1",
            hex::encode(der.as_bytes()),
            hex::encode(public)
        ),
    );
    let server = Server::start(&database.url, &[]);
    assert_eq!(
        sql_scalar(
            &database.url,
            "SELECT private_der IS NULL AND private_sealed IS NOT NULL AND sealed_with IS NOT NULL \
             FROM signing_keys WHERE kid = 'legacy'"
        ),
        "t"
    );
    assert_eq!(
        sql_scalar(&database.url, "SELECT count(*) FROM signing_keys"),
        "1"
    );
    let row = sql_scalar(&database.url, "SELECT lower(t::text) FROM signing_keys t");
    assert!(!row.contains(&hex::encode([42u8; 32])));
    let client = create_client(&database.url, &["--scope", "individual:all"]);
    let mut api = Api::new(&server.base);
    api.token = Some(sign(
        "legacy",
        der.as_bytes(),
        &claims(&client.client_id, "urn:openspp:api:v2", 600),
    ));
    api.get("/api/v2/spp/Individual").await.expect(200);
    // New tokens are signed with the (now sealed) legacy key.
    let fresh = Api::new(&server.base).login(&client).await;
    assert_eq!(kid_of(fresh.token.as_ref().unwrap()), "legacy");
    drop(server);
    drop(database);
}

/// Runs `openspp serve` with `env` (and no test key-encryption key unless given), waits for it to
/// exit or to listen; returns the server if it listened, and what it wrote on stderr.
fn serve_with(
    database_url: &str,
    env: &[(&str, &str)],
    stderr_file: &std::path::Path,
) -> Option<Server> {
    let mut command = Server::command();
    command
        .env_remove("OPENSPP_KEY_ENCRYPTION_KEY")
        .env("DATABASE_URL", database_url)
        .stderr(std::fs::File::create(stderr_file).unwrap());
    for (key, value) in env {
        command.env(key, value);
    }
    Server::try_spawn(command)
}

/// No key supplied: one is generated in the data folder, with a warning, and used again on the
/// next start. A wrong key fails the start clearly, with nothing changed. `key reencrypt` moves
/// the keys under a new key-encryption key, and tokens issued before keep working.
async fn key_encryption_key_lifecycle() {
    let database = crate::support::TestDatabase::create("openspp_e2e_kek");
    let dir = std::env::temp_dir().join(format!("openspp-kek-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let data = dir.display().to_string();
    let env = [("OPENSPP_DATA_DIR", data.as_str()), ("OPENSPP_LOG", "warn")];

    let server = serve_with(&database.url, &env, &log).expect("starts with a generated key");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("no key-encryption key was supplied"),
        "{stderr}"
    );
    let file = dir.join("key-encryption.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let generated = std::fs::read_to_string(&file).unwrap();
    let client = create_client(&database.url, &["--scope", "individual:all"]);
    let api = Api::new(&server.base).login(&client).await;
    assert!(server.terminate().success());

    // The same folder: the same key, no warning, the keys open.
    let server = serve_with(&database.url, &env, &log).expect("starts again");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("generated"));
    let api = Api {
        base: server.base.clone(),
        ..api
    };
    api.get("/api/v2/spp/Individual").await.expect(200);
    assert!(server.terminate().success());

    // A wrong key: a clear refusal at start, no panic, no new key.
    let keys_before = sql_scalar(&database.url, "SELECT count(*) FROM signing_keys");
    let wrong = [
        ("OPENSPP_DATA_DIR", data.as_str()),
        (
            "OPENSPP_KEY_ENCRYPTION_KEY",
            "b3BlbnNwcC1lMmUtb3RoZXIta2V5LWVuY3J5cHRpb24=",
        ),
    ];
    assert!(
        serve_with(&database.url, &wrong, &log).is_none(),
        "a wrong key must not start"
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("sealed with key-encryption key"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        sql_scalar(&database.url, "SELECT count(*) FROM signing_keys"),
        keys_before
    );
    // Nor can the CLI mint a key under it.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(["key", "rotate"])
        .env("DATABASE_URL", &database.url)
        .env("OPENSPP_DATA_DIR", &data)
        .env("OPENSPP_KEY_ENCRYPTION_KEY", wrong[1].1)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // Re-seal under a new key (made by the command), then serve with it.
    let new_file = dir.join("new.key");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(["key", "reencrypt", "--new-key-file"])
        .arg(&new_file)
        .env("DATABASE_URL", &database.url)
        .env("OPENSPP_DATA_DIR", &data)
        .env_remove("OPENSPP_KEY_ENCRYPTION_KEY")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["created"], true);
    assert_eq!(printed["resealed"], 1);
    assert_ne!(std::fs::read_to_string(&new_file).unwrap(), generated);
    // The old key no longer opens them; the new one does, and old tokens still verify.
    assert!(serve_with(&database.url, &env, &log).is_none());
    let new_env = [
        ("OPENSPP_DATA_DIR", data.as_str()),
        (
            "OPENSPP_KEY_ENCRYPTION_KEY_FILE",
            new_file.to_str().unwrap(),
        ),
    ];
    let server = serve_with(&database.url, &new_env, &log).expect("starts with the new key");
    let api = Api {
        base: server.base.clone(),
        ..api
    };
    api.get("/api/v2/spp/Individual").await.expect(200);
    drop(server);
    drop(database);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With the client, its key and its budget in memory, a request does not touch the tables
/// behind them: with all three locked by another transaction, requests are still answered.
/// And a limited client's requests lease budget in slices rather than writing per request.
async fn no_auth_round_trip() {
    let database = crate::support::TestDatabase::create("openspp_e2e_auth_cache");
    let server = Server::start(&database.url, &[]);
    let unlimited = create_client(&database.url, &["--scope", "individual:all"]);
    let limited = credentials(&cli(
        &database.url,
        &[
            "client",
            "create",
            "--name",
            "limited",
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
            "10000",
            "--rate-limit-per-day",
            "1000000",
        ],
    ));
    // The limited client leases one slice per rate window; a minute window that turns while the
    // tables are locked needs a new lease, which must wait. Start early in a minute so the whole
    // exchange fits in one (it takes seconds; the margin is for a loaded machine).
    let into_minute = chrono::Utc::now().timestamp().rem_euclid(60);
    if into_minute > 20 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - into_minute) as u64)).await;
    }
    let mut apis = Vec::new();
    for credentials in [&unlimited, &limited] {
        let api = Api::new(&server.base).login(credentials).await;
        api.get("/api/v2/spp/Individual").await.expect(200);
        apis.push(api);
    }
    let held = crate::support::HeldTransaction::begin(
        &database.url,
        "LOCK TABLE api_clients, signing_keys, rate_counters IN ACCESS EXCLUSIVE MODE;",
    )
    .await;
    for api in &apis {
        for _ in 0..25 {
            let reply = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                api.get("/api/v2/spp/Individual"),
            )
            .await
            .expect("answered without waiting for the auth tables");
            reply.expect(200);
        }
    }
    drop(held);
    // 26 requests: one slice (1 % of the limit) per window, not a row bump per request.
    let leased = sql_scalar(
        &database.url,
        &format!(
            "SELECT string_agg(used::text, ',' ORDER BY key) FROM rate_counters \
             WHERE key IN ('m:{0}', 'd:{0}')",
            limited.client_id
        ),
    );
    assert!(
        ["10000,100", "10000,200"].contains(&leased.as_str()),
        "day,minute leases: {leased}"
    );
    assert_eq!(
        sql_scalar(
            &database.url,
            &format!(
                "SELECT count(*) FROM rate_counters WHERE key LIKE '%{}'",
                unlimited.client_id
            )
        ),
        "0",
        "an unlimited client costs nothing"
    );
    drop(server);
    drop(database);
}
