//! `openspp import FILE` (CONTRACT §10): registrants, groups, programs and memberships from
//! NDJSON or CSV, as ordinary events with `collection_method: migration` and the file as
//! their source reference.
//!
//! Each row runs through the very routes a `$batch` entry reaches (so an imported row is
//! validated exactly as a request is), inside one [`Transaction`] per batch of rows: the
//! batch's events, read models and its line range in `import_batches` are written in ONE
//! statement. A rerun skips the ranges recorded, so every row is loaded exactly once however
//! often the import is interrupted; a refused row is reported by line with the reason its
//! request would have got, and the rest of its batch is loaded. A row refused after it decided
//! part of its writes (a household merge whose second group refuses) is taken out and the
//! batch decided again without it, so no part of a refused row is ever loaded. A row the server
//! could not do just now (database unavailable, a conflict that outlasted its retries: a 5xx or
//! `Retry-After`) is not the row's fault: its batch is decided again after a pause, and if that
//! keeps failing the import stops with nothing of the batch loaded, to be resumed by a rerun.
//!
//! Memory is bounded by the batch: rows are read one at a time, and each batch is decided in a
//! transaction of its own, dropped once committed.
//!
//! A dry run ([`Rehearsal`]) is the import itself, batch by batch, statement by statement, on
//! ONE connection inside ONE database transaction that is rolled back at the end: each batch's
//! statement is applied in a savepoint of it, so a row that refers to what an earlier batch of
//! the file creates is judged against it, and a refusal only the commit finds (an identifier
//! already in use) is found: the refused rows and their reasons are those the import reports.
//! Nothing is committed: no event, read-model row or `import_batches` range (the dry run
//! records none), and the feed's `NOTIFY` is sent inside the transaction, so it is never
//! delivered. Its memory is the import's (one batch); its cost is in the database, for as long
//! as it runs: the file's rows are written (uncommitted) and their locks held until the
//! rollback, so a request claiming an identifier the file claims waits for the dry run to end;
//! the transaction's id holds the feed's horizon, so feed followers (subscriptions, DCI
//! notifications) deliver what others commit meanwhile only once it ends; and past 64 batches
//! its savepoints overflow the backend's subtransaction cache, which makes other sessions'
//! snapshots costlier until then. A dry run of a large file belongs on a copy of the database
//! or off-peak.
//!
//! A file is known by its content (SHA-256): an edited file is a new file, whose rows are all
//! tried again (those whose identifiers are taken are then refused). An import is the
//! operator's act, not an API access: it is recorded in `import_batches` and in every event's
//! provenance, not in the access log.

mod rows;
pub mod seed;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::http::{HeaderMap, HeaderValue};
use indicatif::{ProgressBar, ProgressStyle};
use openspp_aggregates::RegistryServices;
use serde_json::{json, Value};
use sqlx::postgres::{PgPoolOptions, PgTransactionManager};
use sqlx::{Connection, PgPool, TransactionManager};

use crate::access_log::AccessLog;
use crate::api::batch::{BatchEntry, EntryRequest};
use crate::app::{AppState, Shared};
use crate::auth::{AuthState, Principal};
use crate::config::ClashAlerts;
use crate::http::batch::{claims, Dispatch, Placeholders};
use crate::store::{EventStore, ImportProgress, StoreError, Transaction};

pub use rows::Mapping;

/// Types a row names with `type` alone (other resources, and changes, take `request`).
const TYPES: [&str; 4] = ["Individual", "Group", "Program", "ProgramMembership"];

/// Attempts at one batch that lost a race for one of its streams, or that the server could not
/// do just now.
const ATTEMPTS: u32 = 5;

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The file: NDJSON (one resource a line in this API's JSON shape with its `type`, or a
    /// Bundle-style entry `{"request": {"method", "url"}, "resource"}`), or CSV with --mapping.
    pub file: PathBuf,
    /// A JSON mapping naming where each CSV column goes (the file is then read as CSV).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Check every row as the import would, and load nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per batch (one commit each).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Where to write the refused rows, one `{"line", "reason"}` a line (default: standard
    /// error, the first 20).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// A pause after each batch, in milliseconds (lets a test interrupt a run half-way).
    #[arg(long, default_value_t = 0, hide = true)]
    pub pause_ms: u64,
}

/// What a run did, printed as one JSON line.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: u64,
    pub loaded: u64,
    pub refused: u64,
    /// Rows an earlier run loaded or refused (skipped).
    pub already: u64,
    pub seconds: f64,
}

impl Summary {
    fn json(&self, file: &Path, file_hash: &str, dry_run: bool) -> Value {
        json!({
            "file": file.display().to_string(),
            "sha256": file_hash,
            "dry_run": dry_run,
            "rows": self.rows,
            "loaded": self.loaded,
            "refused": self.refused,
            "already_imported": self.already,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "rows_per_second": if self.seconds > 0.0 {
                ((self.loaded + self.refused) as f64 / self.seconds).round()
            } else {
                0.0
            },
        })
    }
}

pub async fn run(pool: &PgPool, args: ImportArgs) -> anyhow::Result<()> {
    let rehearsal = match args.dry_run {
        true => Some(Rehearsal::open(pool).await?),
        false => None,
    };
    let working = rehearsal.as_ref().map_or(pool, |r| &r.pool);
    let (state, writer) = offline(working.clone(), pool.clone()).await?;
    let outcome = import(&state, &args).await;
    drop(state);
    let _ = writer.await;
    if let Some(rehearsal) = rehearsal {
        rehearsal.roll_back().await?;
    }
    let (summary, file_hash) = outcome?;
    if !args.dry_run && summary.loaded > 0 {
        // The planner's statistics of what was loaded: the log and the claims with the read
        // models (`openspp replay` ends with the read models). One plan made before the claims
        // had statistics hashed every claim to read one person by identifier: about 1,000 reads
        // a second instead of 12,000 on 30,000 people.
        let also = ["events", "identifier_claims"];
        openspp_projections::rows::refresh_statistics(pool, &also).await?;
    }
    println!("{}", summary.json(&args.file, &file_hash, args.dry_run));
    Ok(())
}

/// The state of a process that runs the API's operations without serving them (`openspp
/// import`, `openspp seed`): the catalogs as stored, no signing keys (it issues and checks
/// no token), and an access log nothing is recorded to unless an operation records it. It
/// lives here, with its only user, rather than in `app`, which every subsystem imports.
/// `pool` is what the operations work on; `outside` loads the catalogs (in a read-only
/// transaction of their own) and follows the checkpoint (a listener holds a connection of its
/// own): neither can run on a dry run's one connection, inside its transaction.
async fn offline(
    pool: PgPool,
    outside: PgPool,
) -> anyhow::Result<(AppState, tokio::task::JoinHandle<()>)> {
    let auth = AuthState {
        pool: pool.clone(),
        config: crate::auth::AuthConfig {
            issuer: String::new(),
            audience: String::new(),
            token_lifetime_secs: 0,
            token_rate_per_minute: 0,
        },
        keys: crate::auth::keys::KeyRing::none(),
        caches: Default::default(),
        limiter: Default::default(),
    };
    let catalogs = crate::catalog_sync::Catalogs::load(&outside).await?;
    let (access_log, writer) = AccessLog::start(pool.clone());
    let state = AppState::new(Shared {
        store: EventStore::new(pool.clone()),
        services: RegistryServices {
            vocabulary: catalogs.vocabulary.clone(),
            extensions: catalogs.extensions.clone(),
            clock: Arc::new(openspp_aggregates::SystemClock),
        },
        vocabulary: catalogs.vocabulary,
        extensions: catalogs.extensions,
        auth: Arc::new(auth),
        access_log,
        clash_alerts: ClashAlerts {
            threshold: 0,
            window_secs: 0,
        },
        dci: Arc::new(crate::dci::Dci::new(&crate::dci::DciArgs::default())),
        checkpoints: openspp_projections::CheckpointWatch::start(outside).await?,
        pool,
    });
    Ok((state, writer))
}

/// A dry run's database: a pool of ONE connection, which opens a transaction as it connects;
/// everything the dry run does runs in it, and [`Rehearsal::roll_back`] ends it. Should that
/// connection be lost, the pool may not replace it (a new one would see none of the file's
/// earlier batches, and would commit what it wrote): the dry run then fails, having loaded
/// nothing, and the server rolled the lost one back.
struct Rehearsal {
    pool: PgPool,
}

impl Rehearsal {
    async fn open(pool: &PgPool) -> anyhow::Result<Self> {
        let connected = Arc::new(AtomicBool::new(false));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                let connected = connected.clone();
                Box::pin(async move {
                    if connected.swap(true, Ordering::SeqCst) {
                        return Err(sqlx::Error::Configuration(
                            "the dry run's database connection was lost (its transaction is \
                             rolled back, nothing was loaded); run the dry run again"
                                .into(),
                        ));
                    }
                    PgTransactionManager::begin(connection, None).await
                })
            })
            .connect_with(pool.connect_options().as_ref().clone())
            .await
            .context("cannot open the dry run's connection")?;
        Ok(Self { pool })
    }

    /// Undoes everything the dry run wrote.
    async fn roll_back(self) -> anyhow::Result<()> {
        let mut connection = self.pool.acquire().await?;
        PgTransactionManager::rollback(&mut *connection).await?;
        drop(connection);
        self.pool.close().await;
        Ok(())
    }
}

/// Runs `sql` (a savepoint's) on a dry run's connection.
async fn rehearse(pool: &PgPool, sql: &str, lines: (i64, i64)) -> anyhow::Result<()> {
    sqlx::query(sql).execute(pool).await.with_context(|| {
        format!(
            "the dry run could not go on at lines {}-{} (nothing was loaded)",
            lines.0, lines.1
        )
    })?;
    Ok(())
}

/// The operator running an import: every scope, under the legal basis of the migration.
fn operator() -> Principal {
    let scopes = [
        "individual",
        "group",
        "program",
        "program_membership",
        "consent",
        "cycle",
        "entitlement",
        "product",
        "service_point",
    ]
    .iter()
    .map(|r| format!("{r}:all"))
    .collect();
    Principal {
        client_id: "openspp-import".to_owned(),
        organization: "operator".to_owned(),
        organization_type: "government".to_owned(),
        scopes,
        require_consent: false,
        legal_basis: Some("legal_obligation".to_owned()),
        allowed_programs: Vec::new(),
        field_filter: Vec::new(),
        limits: crate::auth::rate_limit::Limits::new(0, 0),
    }
}

/// What every event of the import carries: `collection_method: migration`, the file (name and
/// content hash) as source reference.
fn provenance(file: &Path, file_hash: &str) -> anyhow::Result<(HeaderMap, String)> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = name.chars().filter(|c| !c.is_control()).collect();
    while name.len() > 120 {
        name.pop();
    }
    let source = format!("file:{name}#sha256:{file_hash}");
    let mut headers = HeaderMap::new();
    headers.insert("x-collection-method", HeaderValue::from_static("migration"));
    headers.insert(
        "x-source-system",
        HeaderValue::from_static("urn:openspp:operator:import"),
    );
    headers.insert(
        "x-source-reference",
        HeaderValue::from_str(&source).context("the file name cannot be a header")?,
    );
    headers.insert(
        "x-request-id",
        HeaderValue::from_str(&format!("import-{}", &file_hash[..16]))?,
    );
    Ok((headers, source))
}

/// The lines earlier runs recorded, as ranges.
async fn done_ranges(pool: &PgPool, file_hash: &str) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(
        "SELECT first_line, last_line FROM import_batches WHERE file_hash = $1 ORDER BY first_line",
    )
    .bind(file_hash)
    .fetch_all(pool)
    .await
}

pub async fn import(state: &AppState, args: &ImportArgs) -> anyhow::Result<(Summary, String)> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.dry_run && !state.pool.acquire().await?.is_in_transaction() {
        // Only a `Rehearsal` may run a dry run: on any other pool its batches would commit.
        bail!("a dry run needs the rehearsal's connection, inside the transaction it rolls back");
    }
    let started = Instant::now();
    let (file_hash, lines) = rows::fingerprint(&args.file)?;
    let mapping = args.mapping.as_deref().map(Mapping::load).transpose()?;
    let (headers, source) = provenance(&args.file, &file_hash)?;
    let done = done_ranges(&state.pool, &file_hash).await?;
    let mut loader = Loader {
        dispatch: Dispatch::new(state.clone(), operator(), headers),
        state: state.clone(),
        file_hash: file_hash.clone(),
        source,
        dry_run: args.dry_run,
        summary: Summary::default(),
        report: Report::open(args.report.as_deref())?,
        progress: progress_bar(lines),
    };
    let mut pending: Vec<rows::Row> = Vec::with_capacity(args.batch_size);
    for row in rows::read(&args.file, mapping)? {
        loader.summary.rows += 1;
        if done
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&row.line))
        {
            loader.summary.already += 1;
            loader.progress.inc(1);
            continue;
        }
        pending.push(row);
        if pending.len() == args.batch_size {
            loader.load(std::mem::take(&mut pending)).await?;
            if args.pause_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
            }
        }
    }
    if !pending.is_empty() {
        loader.load(pending).await?;
    }
    loader.progress.finish_and_clear();
    loader.report.finish()?;
    loader.summary.seconds = started.elapsed().as_secs_f64();
    Ok((loader.summary, file_hash))
}

fn progress_bar(lines: u64) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(lines)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows · {per_sec} · eta {eta} · {msg}")
    {
        bar.set_style(style);
    }
    bar
}

struct Loader {
    dispatch: Dispatch,
    state: AppState,
    file_hash: String,
    source: String,
    /// Decide each batch and commit nothing.
    dry_run: bool,
    summary: Summary,
    report: Report,
    progress: ProgressBar,
}

impl Loader {
    /// Loads one batch of rows: every row decided, those refused reported, the rest committed
    /// with the batch's line range. A commit refused for an identifier another stream holds
    /// names the row claiming it, which is then refused, and the batch decided again.
    async fn load(&mut self, batch: Vec<rows::Row>) -> anyhow::Result<()> {
        let first_line = batch.first().map_or(0, |r| r.line);
        let last_line = batch.last().map_or(0, |r| r.line);
        let mut refused: BTreeMap<i64, String> = BTreeMap::new();
        let mut entries: Vec<(i64, BatchEntry)> = Vec::with_capacity(batch.len());
        for row in batch {
            match row.parsed.and_then(entry) {
                Ok(entry) => entries.push((row.line, entry)),
                Err(reason) => {
                    refused.insert(row.line, reason);
                }
            }
        }
        // Failed attempts at the batch: conflicts at the commit, and transient failures.
        let mut failures = 0;
        let lines = (first_line, last_line);
        let loaded = loop {
            let transaction = Transaction::new(&self.state.store);
            let placeholders = Placeholders::default();
            let mut loaded = Vec::new();
            let mut again = None;
            if self.dry_run {
                rehearse(&self.state.pool, "SAVEPOINT dry_run_batch", lines).await?;
            }
            for (line, entry) in &entries {
                if refused.contains_key(line) {
                    continue;
                }
                let decided = transaction.decisions().await;
                let outcome = transaction
                    .run(self.dispatch.send(entry, &placeholders))
                    .await;
                if outcome.status.is_success() {
                    loaded.push((*line, outcome));
                    continue;
                }
                if self.dry_run {
                    // A statement that failed (a lookup the database refused) has aborted the
                    // dry run's transaction: back to the batch's start, which is where it
                    // stands (nothing of a batch is written before its commit).
                    let back = "ROLLBACK TO SAVEPOINT dry_run_batch";
                    rehearse(&self.state.pool, back, lines).await?;
                }
                let why = reason(&outcome.body, outcome.status);
                if outcome.transient {
                    again = Some(Again::Later(*line, why));
                    break;
                }
                refused.insert(*line, why);
                if transaction.decisions().await != decided {
                    // Refused after deciding some of its writes: they are in the batch.
                    again = Some(Again::Without);
                    break;
                }
            }
            if self.dry_run {
                rehearse(&self.state.pool, "RELEASE SAVEPOINT dry_run_batch", lines).await?;
            }
            match again {
                Some(Again::Without) => continue,
                Some(Again::Later(line, why)) => {
                    failures += 1;
                    if failures >= ATTEMPTS {
                        bail!(
                            "line {line} could not be loaded just now ({why}): lines \
                             {first_line}-{last_line} were not loaded; run the import again to \
                             resume"
                        );
                    }
                    pause(failures).await;
                    continue;
                }
                None => {}
            }
            // A dry run commits as the import does, inside its transaction, without the
            // line range (nothing for a rerun to skip).
            if !self.dry_run {
                transaction
                    .record_progress(ImportProgress {
                        file_hash: self.file_hash.clone(),
                        first_line,
                        last_line,
                        loaded: loaded.len() as i32,
                        refused: Value::Array(
                            refused
                                .iter()
                                .map(|(line, reason)| json!({"line": line, "reason": reason}))
                                .collect(),
                        ),
                        source: self.source.clone(),
                    })
                    .await;
            }
            match transaction.commit().await {
                Ok(_) => break loaded.len(),
                Err(
                    StoreError::Conflict | StoreError::FactChanged | StoreError::Unavailable(_),
                ) if failures + 1 < ATTEMPTS => {
                    failures += 1;
                    pause(failures).await;
                }
                Err(StoreError::IdentifierInUse(identifier)) => {
                    let Some((line, _)) = loaded.iter().rev().find(|(_, o)| claims(o, &identifier))
                    else {
                        bail!(
                            "identifier {} is in use, and no row claims it",
                            identifier.key()
                        );
                    };
                    refused.insert(
                        *line,
                        format!(
                            "identifier: identifier {} is already in use",
                            identifier.key()
                        ),
                    );
                }
                Err(error) => {
                    return Err(anyhow::anyhow!("{error}")).with_context(|| {
                        format!(
                            "lines {first_line}-{last_line} not loaded; run the import again \
                             to resume"
                        )
                    })
                }
            }
        };
        self.summary.loaded += loaded as u64;
        self.summary.refused += refused.len() as u64;
        for (line, reason) in &refused {
            self.report.refused(*line, reason)?;
        }
        self.progress.inc((loaded + refused.len()) as u64);
        self.progress.set_message(format!(
            "{} loaded, {} refused",
            self.summary.loaded, self.summary.refused
        ));
        Ok(())
    }
}

/// Why a batch is decided again before its commit.
enum Again {
    /// A refused row had decided part of its writes: decide the batch without it.
    Without,
    /// The server could not do a row just now (line, why): after a pause.
    Later(i64, String),
}

/// The pause before the `failures`-th attempt again.
async fn pause(failures: u32) {
    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
}

/// The request a row stands for: a resource with its `type` is created (`POST /{type}`); a
/// Bundle-style entry (`request`, `resource`) is sent as it says.
fn entry(row: Value) -> Result<BatchEntry, String> {
    if row.get("request").is_some() {
        return serde_json::from_value(row).map_err(|e| format!("is not a Bundle entry: {e}"));
    }
    let kind = row
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| TYPES.contains(t))
        .ok_or_else(|| {
            format!(
                "type: must be one of {} (or give `request`)",
                TYPES.join(", ")
            )
        })?
        .to_owned();
    Ok(BatchEntry {
        full_url: None,
        resource: Some(row),
        request: EntryRequest {
            method: "POST".to_owned(),
            url: kind,
            if_match: None,
        },
    })
}

/// Why a row was refused: the answer its request got.
fn reason(body: &Option<Value>, status: axum::http::StatusCode) -> String {
    body.as_ref()
        .and_then(|b| b.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| status.to_string())
}

/// The refused rows: to a file (all), or to standard error (the first few).
struct Report {
    file: Option<std::io::BufWriter<std::fs::File>>,
    printed: usize,
}

const PRINTED: usize = 20;

impl Report {
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = path
            .map(|p| {
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write the report {}", p.display()))
            })
            .transpose()?
            .map(std::io::BufWriter::new);
        Ok(Self { file, printed: 0 })
    }

    fn refused(&mut self, line: i64, reason: &str) -> anyhow::Result<()> {
        match &mut self.file {
            Some(file) => writeln!(file, "{}", json!({"line": line, "reason": reason}))?,
            None if self.printed < PRINTED => {
                self.printed += 1;
                eprintln!("line {line}: {reason}");
            }
            None => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(file) = &mut self.file {
            file.flush()?;
        }
        Ok(())
    }
}
