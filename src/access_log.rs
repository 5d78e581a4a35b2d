//! The access log (CONTRACT §6): one row per access to registrant data, reads and searches
//! included. Handlers hand entries to a background writer that inserts them in batches, so a
//! read pays a channel send instead of a database round trip; a graceful shutdown drains the
//! queue. A hard crash can lose the entries of the last batch interval (~50 ms), never more.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;

mod copy;

/// What a subject was shown under: the consent relied on and its purpose, and the fields shown
/// (`None`: all of them).
#[derive(Debug, Clone, Default)]
pub struct Disclosure {
    pub consent_id: Option<String>,
    pub purpose: Option<String>,
    pub fields: Option<Vec<String>>,
}

/// One access.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    pub client_id: String,
    pub organization: String,
    pub resource_type: &'static str,
    /// `read`, `search`, `write`, `vread`, `history`, `verify`, `receipt` … (AuditEvent `subtype`).
    pub interaction: &'static str,
    /// FHIR AuditEvent action: `C`, `R`, `U`, `D` or `E`.
    pub action: &'static str,
    /// External references of what was touched or returned (`Individual/{system}|{value}`).
    pub subjects: Vec<String>,
    /// The streams behind `subjects`, kept in a column that is never returned: a search by any
    /// identifier of a subject finds every access to it, whichever identifier that access used.
    pub streams: Vec<String>,
    /// Those of `subjects` the request asked for and did not get: unknown, or not visible to
    /// the caller (one answer for both).
    pub not_found: Vec<String>,
    pub consent_ids: Vec<String>,
    pub purpose: Option<String>,
    /// Fields returned; `None` = all.
    pub fields: Option<Vec<String>>,
    pub outcome: u16,
    pub request_id: String,
}

impl AccessEntry {
    /// An access by the API client `client_id` acting for `organization`.
    pub fn new(
        client_id: &str,
        organization: &str,
        request_id: &str,
        resource_type: &'static str,
        interaction: &'static str,
        action: &'static str,
    ) -> Self {
        Self {
            at: Utc::now(),
            client_id: client_id.to_owned(),
            organization: organization.to_owned(),
            resource_type,
            interaction,
            action,
            subjects: Vec::new(),
            streams: Vec::new(),
            not_found: Vec::new(),
            consent_ids: Vec::new(),
            purpose: None,
            fields: None,
            outcome: 200,
            request_id: request_id.to_owned(),
        }
    }

    /// Records one subject returned (or touched), with its stream when it exists, and what it
    /// was shown under.
    pub fn returned(&mut self, subject: String, stream: Option<&str>, shown: Option<&Disclosure>) {
        if !self.subjects.contains(&subject) {
            self.subjects.push(subject);
        }
        if let Some(stream) = stream {
            if !self.streams.iter().any(|s| s == stream) {
                self.streams.push(stream.to_owned());
            }
        }
        let Some(shown) = shown else {
            return;
        };
        if let Some(consent) = &shown.consent_id {
            if !self.consent_ids.contains(consent) {
                self.consent_ids.push(consent.clone());
            }
        }
        if self.purpose.is_none() {
            self.purpose.clone_from(&shown.purpose);
        }
        if let Some(fields) = &shown.fields {
            let all = self.fields.get_or_insert_with(Vec::new);
            for field in fields {
                if !all.contains(field) {
                    all.push(field.clone());
                }
            }
        }
    }

    /// Records a subject the request asked for and did not get (unknown, or not the caller's to
    /// see), with its stream when it exists.
    pub fn not_found(&mut self, subject: String, stream: Option<&str>) {
        if !self.not_found.contains(&subject) {
            self.not_found.push(subject.clone());
        }
        self.returned(subject, stream, None);
    }

    /// Records subjects that the answer names inside another resource (a group's members, a
    /// membership's beneficiary): `(reference, stream)` pairs.
    pub fn mentioning(&mut self, mentioned: impl IntoIterator<Item = (String, String)>) {
        for (subject, stream) in mentioned {
            self.returned(subject, Some(&stream), None);
        }
    }
}

/// Where handlers send entries.
#[derive(Clone)]
pub struct AccessLog {
    sender: mpsc::Sender<AccessEntry>,
}

/// Entries queued before senders wait for the writer (backpressure, never loss).
const QUEUE: usize = 10_000;
/// Entries per insert, at most.
const BATCH: usize = 500;

impl AccessLog {
    /// Starts the writer; it ends once every `AccessLog` clone is dropped and the queue is empty.
    pub fn start(pool: PgPool) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write(pool, receiver));
        (Self { sender }, writer)
    }

    /// Entries waiting for the writer (for `/metrics`).
    pub fn queued(&self) -> usize {
        QUEUE - self.sender.capacity()
    }

    pub async fn record(&self, entry: AccessEntry) {
        if self.sender.send(entry).await.is_err() {
            tracing::error!("access log writer has stopped; an access was not logged");
        }
    }
}

async fn write(pool: PgPool, mut receiver: mpsc::Receiver<AccessEntry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        // A short pause lets concurrent requests join the batch.
        if batch.len() < BATCH {
            tokio::time::sleep(Duration::from_millis(20)).await;
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(entry) => batch.push(entry),
                    Err(_) => break,
                }
            }
        }
        if !store(&pool, &batch).await {
            // One entry the database refuses must not hold back the others, nor every later
            // one (the queue would fill and stall every request): each is stored alone.
            for entry in &batch {
                if !store(&pool, std::slice::from_ref(entry)).await {
                    tracing::error!(
                        request_id = %entry.request_id,
                        "the database refuses an access-log entry; it is lost"
                    );
                }
            }
        }
        batch.clear();
    }
}

/// Inserts `batch`, retrying while the database is unavailable; `false` if the database
/// refuses it (a value it cannot store or index), which no retry would change.
async fn store(pool: &PgPool, batch: &[AccessEntry]) -> bool {
    let mut attempt = 0;
    loop {
        match insert(pool, batch).await {
            Ok(()) => return true,
            Err(error) if crate::error::is_unavailable(&error) => {
                attempt += 1;
                tracing::error!(%error, attempt, "cannot write the access log; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt.min(25))).await;
            }
            Err(error) => {
                tracing::error!(%error, entries = batch.len(), "the access log refused a write");
                return false;
            }
        }
    }
}

/// Inserts `batch` with `COPY`, its rows in PostgreSQL's text format (`copy::rows`): the
/// database reads each value with its type's own input function. The `INSERT` of a `jsonb`
/// array it replaced had PostgreSQL parse the whole batch as JSON, then convert every value
/// of it back to text to read it: the parse alone was 8.5 % of PostgreSQL's time under reads.
async fn insert(pool: &PgPool, batch: &[AccessEntry]) -> sqlx::Result<()> {
    let rows = copy::rows(batch);
    let mut connection = pool.acquire().await?;
    let mut copy = connection.copy_in_raw(copy::STATEMENT).await?;
    match copy.send(rows.into_bytes()).await {
        Ok(_) => copy.finish().await.map(|_| ()),
        Err(error) => {
            // The connection is still in the copy; a failed send leaves it unusable unless
            // the copy is ended. Ending it may fail too: the send's error is the one to tell.
            let _ = copy
                .abort("the access log writer could not send the batch")
                .await;
            Err(error)
        }
    }
}

/// A search of the access log.
#[derive(Debug, Default)]
pub struct AccessQuery {
    pub client_id: Option<String>,
    pub subject: Option<SubjectQuery>,
    pub consent_id: Option<String>,
    pub at: Vec<(openspp_projections::search::Comparator, DateTime<Utc>)>,
}

/// A subject searched for: its reference as given, and the stream it names today.
#[derive(Debug)]
pub struct SubjectQuery {
    reference: String,
    stream: Option<String>,
}

impl SubjectQuery {
    /// Entries that name `reference` itself, or (when given) any of the subject's identifiers
    /// through its `stream`.
    pub fn new(reference: String, stream: Option<String>) -> Self {
        Self { reference, stream }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct AccessRow {
    pub at: DateTime<Utc>,
    pub client_id: String,
    pub organization: String,
    pub resource_type: String,
    pub interaction: String,
    pub action: String,
    pub subjects: Vec<String>,
    /// Those of `subjects` asked for and not found.
    pub subjects_not_found: Vec<String>,
    pub consent_ids: Vec<String>,
    pub purpose: Option<String>,
    pub fields: Option<Vec<String>>,
    pub outcome: i16,
    pub request_id: String,
}

fn push_filters(qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, query: &AccessQuery) {
    qb.push(" WHERE true");
    if let Some(client) = &query.client_id {
        qb.push(" AND client_id = ").push_bind(client.clone());
    }
    if let Some(subject) = &query.subject {
        qb.push(" AND (subjects @> ARRAY[")
            .push_bind(subject.reference.clone())
            .push("]");
        if let Some(stream) = &subject.stream {
            qb.push(" OR subject_streams @> ARRAY[")
                .push_bind(stream.clone())
                .push("]");
        }
        qb.push(")");
    }
    if let Some(consent) = &query.consent_id {
        // Containment, not `= ANY(consent_ids)`: only `@>` can be answered by the GIN index
        // `access_log_consents`; the other reads the whole log for every consent's summary.
        // The index leaves out entries naming no consent (migration 0280): the cardinality
        // test, which containment implies, is what lets PostgreSQL use it.
        qb.push(" AND cardinality(consent_ids) > 0 AND consent_ids @> ARRAY[")
            .push_bind(consent.clone())
            .push("]");
    }
    for (comparator, instant) in &query.at {
        qb.push(" AND at")
            .push(comparator.sql())
            .push_bind(*instant);
    }
}

/// Matching entries, newest first, and how many matched.
pub async fn search(
    pool: &PgPool,
    query: &AccessQuery,
    page: openspp_projections::search::Page,
) -> sqlx::Result<(i64, Vec<AccessRow>)> {
    let mut count = sqlx::QueryBuilder::new("SELECT count(*) FROM access_log");
    push_filters(&mut count, query);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut select = sqlx::QueryBuilder::new(
        "SELECT at, client_id, organization, resource_type, interaction, action, subjects, \
         subjects_not_found, consent_ids, purpose, fields, outcome, request_id FROM access_log",
    );
    push_filters(&mut select, query);
    select
        .push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(page.count)
        .push(" OFFSET ")
        .push_bind(page.offset);
    let rows = select.build_query_as().fetch_all(pool).await?;
    Ok((total, rows))
}

/// Every entry of a query (for summaries), oldest first.
pub async fn all(pool: &PgPool, query: &AccessQuery) -> sqlx::Result<Vec<AccessRow>> {
    let mut select = sqlx::QueryBuilder::new(
        "SELECT at, client_id, organization, resource_type, interaction, action, subjects, \
         subjects_not_found, consent_ids, purpose, fields, outcome, request_id FROM access_log",
    );
    push_filters(&mut select, query);
    select.push(" ORDER BY at, id");
    select.build_query_as().fetch_all(pool).await
}

/// The plan PostgreSQL chooses for `all`'s statement for `query` (`EXPLAIN`, without costs),
/// planned on `connection` as it is set: so that a test can hold a filter to its index.
pub async fn plan(
    connection: &mut sqlx::PgConnection,
    query: &AccessQuery,
) -> sqlx::Result<String> {
    let mut explain = sqlx::QueryBuilder::new("EXPLAIN (COSTS OFF) SELECT id FROM access_log");
    push_filters(&mut explain, query);
    let lines: Vec<String> = explain.build_query_scalar().fetch_all(connection).await?;
    Ok(lines.join("\n"))
}
