//! The test world: one fresh database and one real server process per run, API clients made
//! with the real CLI, and an HTTP client that speaks to the server as an integrator would.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The key-encryption key every test server and CLI run is given (base64 of 32 bytes), so that
/// tests can open the sealed signing keys and no key file is generated in the work tree.
pub const TEST_KEK: &str = "b3BlbnNwcC1lMmUtdGVzdC1rZXktZW5jcnlwdGlvbiE=";
pub const NATIONAL_ID: &str = "urn:openspp:vocab:id-type#national_id";

/// A database created for this run and dropped when the run ends.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create(prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        psql(&format!("CREATE DATABASE \"{name}\""));
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

fn psql(sql: &str) {
    let status = Command::new("psql")
        .args([ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql failed: {sql}");
}

/// Runs SQL against the test database and returns the first column of the first row.
pub fn sql_scalar(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql failed: {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A server that logs, as JSON to a file of its own, every statement it runs with the span
/// of the request it runs for (sqlx logs each statement; the request's span names the URI):
/// `statements` counts those of the requests whose URI holds a marker. Statements run off
/// the request's task (the store's writer) are not counted.
pub struct StatementLog {
    pub server: Server,
    log: std::path::PathBuf,
}

impl StatementLog {
    pub fn start(database_url: &str) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("statements")));
        let server = Server::start_logging(
            database_url,
            &[
                ("OPENSPP_LOG", "warn,sqlx::query=debug,tower_http=debug"),
                ("OPENSPP_LOG_FORMAT", "json"),
            ],
            std::fs::File::create(&log).expect("statement log"),
        );
        Self { server, log }
    }

    /// The statements logged so far for requests whose URI contains `marker`; the line of a
    /// request's last statement may be a moment behind its response, so it waits that moment.
    pub async fn statements(&self, marker: &str) -> usize {
        self.statements_run(marker).await.len()
    }

    /// The summaries of the statements `statements` counts, in the order they ran.
    async fn statements_run(&self, marker: &str) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let file = std::fs::File::open(&self.log).expect("server log");
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .filter(|entry| entry["target"] == "sqlx::query")
            .filter(|entry| entry["spans"].to_string().contains(marker))
            .map(|entry| {
                entry["fields"]["summary"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    /// Asserts that the requests marked `marker` ran at least one and at most `bound`
    /// statements (`what` names them in the failure, which lists them).
    pub async fn assert_within(&self, marker: &str, bound: usize, what: &str) {
        let statements = self.statements_run(marker).await;
        assert!(
            (1..=bound).contains(&statements.len()),
            "{} statements for {what}, at most {bound} expected: {statements:#?}",
            statements.len()
        );
    }
}

/// Asserts that `answer` (to a write) is what a read of `path` now shows: body and ETag.
pub async fn assert_answer_is_read(api: &Api, answer: &Reply, path: &str) {
    let read = api.get(path).await;
    read.expect(200);
    assert_eq!(answer.body, read.body, "{}", read.text);
    assert_eq!(answer.header("etag"), read.header("etag"));
}

/// A database of its own, a server logging its statements (`StatementLog`) and a client with
/// `scopes` (names, as `individual:all`) logged in to it. Bind the three apart: the server
/// stops before its database is dropped.
pub async fn logged_client(database: &str, scopes: &[&str]) -> (TestDatabase, StatementLog, Api) {
    let database = TestDatabase::create(database);
    let logged = StatementLog::start(&database.url);
    let scopes: Vec<&str> = scopes.iter().flat_map(|scope| ["--scope", scope]).collect();
    let api = Api::new(&logged.server.base)
        .login(&create_client(&database.url, &scopes))
        .await;
    (database, logged, api)
}

impl Drop for StatementLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The statements the other sessions of the database at `url` start within `window` (their
/// beginnings, from `pg_stat_activity` sampled every 10 ms): how busy a server is when it
/// should be idle. One connection watches, so every other session is the server's.
pub async fn statements_started(url: &str, window: Duration) -> Vec<String> {
    let mut watcher = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let begin = std::time::Instant::now();
    let mut first = true;
    let mut queries = Vec::new();
    while begin.elapsed() < window {
        let rows: Vec<(i32, chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
            "SELECT pid, query_start, left(query, 60) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND query_start IS NOT NULL",
        )
        .fetch_all(&mut watcher)
        .await
        .unwrap();
        for (pid, start, query) in rows {
            if seen.insert((pid, start)) && !first {
                queries.push(query);
            }
        }
        first = false;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    queries
}

/// A transaction held open in a `psql` session, to order a request against it
/// deterministically: take a row lock, fire the request, wait until it waits for that lock,
/// then change the row and commit.
pub struct HeldTransaction {
    url: String,
    name: String,
    child: Child,
}

impl HeldTransaction {
    /// Opens a transaction on `url`, runs `sql` in it, and returns once it holds what `sql` took.
    pub async fn begin(url: &str, sql: &str) -> Self {
        let name = format!("held_{}", uuid::Uuid::new_v4().simple());
        let mut child = Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-q"])
            .env("PGAPPNAME", &name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("psql runs");
        let stdin = child.stdin.as_mut().expect("psql stdin");
        writeln!(stdin, "BEGIN; {sql}").expect("psql takes input");
        stdin.flush().expect("psql takes input");
        let held = Self {
            url: url.to_owned(),
            name,
            child,
        };
        held.wait_until(&format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = '{}' AND state = 'idle in transaction'",
            held.name
        ))
        .await;
        held
    }

    /// Returns once another session waits for a lock this transaction holds.
    pub async fn wait_until_blocking(&self) {
        self.wait_until(&format!(
            "SELECT count(*) FROM pg_stat_activity waiting, pg_stat_activity holder \
             WHERE holder.application_name = '{}' \
             AND holder.pid = ANY(pg_blocking_pids(waiting.pid))",
            self.name
        ))
        .await;
    }

    /// Returns once another session waits for a session that waits for this transaction (a
    /// write queued behind one this transaction holds).
    pub async fn wait_until_blocking_behind(&self) {
        self.wait_until(&format!(
            "SELECT count(*) FROM pg_stat_activity waiting, pg_stat_activity middle, \
                 pg_stat_activity holder \
             WHERE holder.application_name = '{}' \
             AND holder.pid = ANY(pg_blocking_pids(middle.pid)) \
             AND middle.pid = ANY(pg_blocking_pids(waiting.pid))",
            self.name
        ))
        .await;
    }

    /// Runs `sql` in the transaction and commits it.
    pub fn commit_with(mut self, sql: &str) {
        let mut stdin = self.child.stdin.take().expect("psql stdin");
        writeln!(stdin, "{sql} COMMIT;").expect("psql takes input");
        drop(stdin);
        let status = self.child.wait().expect("psql exits");
        assert!(status.success(), "psql failed: {sql}");
    }

    /// Polls `count_sql` until it counts something (a guard, not a timing: it only bounds a
    /// hang).
    async fn wait_until(&self, count_sql: &str) {
        for _ in 0..3000 {
            if sql_scalar(&self.url, count_sql) != "0" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened: {count_sql}");
    }
}

impl Drop for HeldTransaction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `openspp serve`.
pub struct Server {
    pub base: String,
    /// The private metrics address, when the server was given one.
    pub metrics: Option<String>,
    child: Child,
}

impl Server {
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_logging(database_url, env, Stdio::inherit())
    }

    /// As `start`, with the server's log (stderr) sent to `log`.
    pub fn start_logging(database_url: &str, env: &[(&str, &str)], log: impl Into<Stdio>) -> Self {
        let mut command = Self::command();
        command.env("DATABASE_URL", database_url).stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn(command)
    }

    /// `openspp serve` on a free port, with the test settings; the caller adds the database.
    pub fn command() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_openspp"));
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("OPENSPP_KEY_ENCRYPTION_KEY", TEST_KEK)
            .env("OPENSPP_TOKEN_RATE_PER_MINUTE", "0")
            .env("OPENSPP_LOG", "warn");
        command
    }

    /// Starts `command` and waits for the address it prints.
    pub fn spawn(command: Command) -> Self {
        Self::try_spawn(command).expect("server printed its address")
    }

    /// Starts `command`; `None` if it exits without listening (then it has been waited for).
    pub fn try_spawn(mut command: Command) -> Option<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics = None;
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                return None;
            };
            if let Some(address) = line.strip_prefix("openspp metrics on ") {
                metrics = Some(address.to_owned());
            }
            if let Some(address) = line.strip_prefix("openspp listening on ") {
                break address.to_owned();
            }
        };
        Some(Self {
            base,
            metrics,
            child,
        })
    }

    /// The server's process id (the throughput bench reads its peak memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("server exits");
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `openspp <args>` against `database_url` and returns its stdout.
pub fn cli(database_url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_openspp"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("OPENSPP_KEY_ENCRYPTION_KEY", TEST_KEK)
        .env("OPENSPP_LOG", "warn")
        .output()
        .expect("cli runs");
    assert!(
        output.status.success(),
        "openspp {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// What `openspp client create` printed.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

pub fn create_client(database_url: &str, extra: &[&str]) -> Credentials {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "test client",
        "--organization",
        "Test Org",
        "--organization-type",
        "government",
        "--no-consent-required",
        "--legal-basis",
        "public_task",
        "--rate-limit-per-minute",
        "0",
        "--rate-limit-per-day",
        "0",
    ];
    args.extend_from_slice(extra);
    let printed = cli(database_url, &args);
    let value: Value = serde_json::from_str(printed.trim()).expect("one JSON line");
    Credentials {
        client_id: value["client_id"].as_str().unwrap().to_owned(),
        client_secret: value["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// Every scope of the registry core, and of program delivery (cycles, entitlements).
pub const ALL_SCOPES: [&str; 10] = [
    "individual:all",
    "group:all",
    "program:all",
    "program_membership:all",
    "consent:all",
    "audit:read",
    "cycle:all",
    "entitlement:all",
    "service_point:all",
    "product:all",
];

/// A client that needs the data subject's consent (the default for `client create`).
pub fn consent_client(
    database_url: &str,
    organization: &str,
    organization_type: &str,
    scopes: &[&str],
) -> Credentials {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "consent-bound client",
        "--organization",
        organization,
        "--organization-type",
        organization_type,
        "--rate-limit-per-minute",
        "0",
        "--rate-limit-per-day",
        "0",
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let printed = cli(database_url, &args);
    let value: Value = serde_json::from_str(printed.trim()).expect("one JSON line");
    Credentials {
        client_id: value["client_id"].as_str().unwrap().to_owned(),
        client_secret: value["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// An HTTP client bound to one server and (once logged in) one token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// A response, read whole.
    pub async fn of(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fails with the body when the status is not the expected one.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            token: None,
        }
    }

    pub async fn token(&self, credentials: &Credentials) -> String {
        let reply = self
            .send(
                Method::POST,
                "/api/v2/spp/oauth/token",
                Some(json!({
                    "grant_type": "client_credentials",
                    "client_id": credentials.client_id,
                    "client_secret": credentials.client_secret,
                })),
                &[],
            )
            .await;
        reply.expect(200);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn login(&self, credentials: &Credentials) -> Self {
        let token = self.token(credentials).await;
        Self {
            token: Some(token),
            ..self.clone()
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::of(request.send().await.expect("request sent")).await
    }

    /// Sends `body` exactly as given (JSON a `Value` cannot hold, such as duplicate keys).
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::of(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: Value, if_match: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> =
            if_match.map(|tag| ("If-Match", tag)).into_iter().collect();
        self.send(Method::PUT, path, Some(body), &headers).await
    }
}

/// The shared server of this run, and an administrator client with every core scope.
pub struct World {
    pub base: String,
    pub database_url: String,
    pub admin: Credentials,
}

static WORLD: OnceLock<World> = OnceLock::new();

pub fn init_world(world: World) {
    let _ = WORLD.set(world);
}

pub fn world() -> &'static World {
    WORLD.get().expect("world initialised by main")
}

/// A logged-in client with every core scope.
pub async fn admin() -> Api {
    let world = world();
    Api::new(&world.base).login(&world.admin).await
}

/// A fresh unique identifier value, so tests never collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `GET /AuditEvent?{query}` until at least `expected` entries match (the access log is
/// written in batches, a few milliseconds after the request).
pub async fn audit_events(api: &Api, query: &str, expected: usize) -> Value {
    for _ in 0..50 {
        let reply = api.get(&format!("/api/v2/spp/AuditEvent?{query}")).await;
        reply.expect(200);
        if reply.body["meta"]["total"].as_u64().unwrap() as usize >= expected {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {expected} audit events for {query}");
}

/// Polls `GET /AuditEvent?{query}` until an entry satisfies `wanted`: the access log is written
/// behind the answer (a channel and a batching writer), so a read is logged shortly after it is
/// answered. Panics with the last page if none appears within five seconds.
pub async fn audit_event_where(api: &Api, query: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..50 {
        let reply = api.get(&format!("/api/v2/spp/AuditEvent?{query}")).await;
        reply.expect(200);
        if let Some(entry) = reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| wanted(e))
        {
            return entry.clone();
        }
        last = reply.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no audit event as wanted for {query}: {last}");
}

/// An RFC 3339 instant escaped for a query string (`+` and `:`).
pub fn query_instant(instant: &str) -> String {
    instant.replace('+', "%2B").replace(':', "%3A")
}

/// `system|value` escaped for a path segment.
pub fn path_id(system: &str, value: &str) -> String {
    format!("{}|{}", system.replace('#', "%23"), value)
}

pub fn individual_body(national_id: &str) -> Value {
    json!({
        "type": "Individual",
        "identifier": [{"system": NATIONAL_ID, "value": national_id}],
        "name": {"family": "Santos", "given": "Maria", "middle": "Dela Cruz"},
        "birthDate": "1985-03-15",
        "gender": {"coding": [{"system": "urn:iso:std:iso:5218", "code": "2"}]},
        "telecom": [{"system": "phone", "value": "+639171234567", "use": "mobile", "rank": 1}],
        "address": [{"type": "physical", "line": ["12 Mabini St"], "city": "Quezon City", "country": "PH"}]
    })
}

/// What a read answered, as a body to send back (without its read-only `meta`).
pub fn as_body(read: &Value) -> Value {
    let mut body = read.clone();
    body.as_object_mut().unwrap().remove("meta");
    body
}

/// Registers an individual and returns its path (`/api/v2/spp/Individual/...`).
pub async fn register_individual(api: &Api, national_id: &str) -> String {
    api.post("/api/v2/spp/Individual", individual_body(national_id))
        .await
        .expect(201);
    format!(
        "/api/v2/spp/Individual/{}",
        path_id(NATIONAL_ID, national_id)
    )
}

/// The path of a membership by its own (minted) identifier, from the body of its enrolment
/// (`Location` names it as OpenSPP does, by beneficiary and program).
pub fn minted_path(enrolled: &Reply) -> String {
    let identifier = &enrolled.body["identifier"][0];
    format!(
        "/api/v2/spp/ProgramMembership/{}",
        path_id(
            identifier["system"].as_str().expect("a minted identifier"),
            identifier["value"].as_str().expect("a minted identifier"),
        )
    )
}
