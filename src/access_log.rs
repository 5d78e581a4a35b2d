//! The access log (CONTRACT §6): one row per access to registrant data, reads and searches
//! included. Handlers hand entries to a background writer that inserts them in batches, so a
//! read pays a channel send instead of a database round trip; a graceful shutdown drains the
//! queue. A hard crash can lose the entries of the last batch interval (~50 ms), never more.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::access::Grant;
use crate::http::reference::{parse_identifier, resolve};

/// One access.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    pub client_id: String,
    pub organization: String,
    pub resource_type: &'static str,
    /// `read`, `search`, `create`, `update`, `vread`, `history`, `lookup` …
    pub interaction: &'static str,
    /// External references of what was touched or returned (`Individual/{system}|{value}`).
    pub subjects: Vec<String>,
    /// The streams behind `subjects`, kept in a column that is never returned: a search by any
    /// identifier of a subject finds every access to it, whichever identifier that access used.
    pub streams: Vec<String>,
    pub consent_ids: Vec<String>,
    pub purpose: Option<String>,
    /// Fields returned; `None` = all.
    pub fields: Option<Vec<String>>,
    pub outcome: u16,
    pub request_id: String,
}

impl AccessEntry {
    pub fn new(
        principal: &Principal,
        request_id: &str,
        resource_type: &'static str,
        interaction: &'static str,
    ) -> Self {
        Self {
            at: Utc::now(),
            client_id: principal.client_id.clone(),
            organization: principal.organization.clone(),
            resource_type,
            interaction,
            subjects: Vec::new(),
            streams: Vec::new(),
            consent_ids: Vec::new(),
            purpose: None,
            fields: None,
            outcome: 200,
            request_id: request_id.to_owned(),
        }
    }

    /// Records one subject returned under `grant`, with its stream when it exists.
    pub fn returned(
        mut self,
        subject: String,
        stream: Option<&str>,
        grant: Option<&Grant>,
    ) -> Self {
        self.subjects.push(subject);
        self.streams.extend(stream.map(str::to_owned));
        if let Some(grant) = grant {
            if let Some(consent) = grant.consent_id() {
                if !self.consent_ids.contains(&consent) {
                    self.consent_ids.push(consent);
                }
            }
            if self.purpose.is_none() {
                self.purpose = grant.purpose();
            }
            if let Some(fields) = &grant.fields {
                let all = self.fields.get_or_insert_with(Vec::new);
                for field in fields {
                    if !all.contains(field) {
                        all.push(field.clone());
                    }
                }
            }
        }
        self
    }

    /// Records subjects that the answer names inside another resource (a group's members, a
    /// membership's beneficiary): `(reference, stream)` pairs.
    pub fn mentioning(mut self, mentioned: impl IntoIterator<Item = (String, String)>) -> Self {
        for (subject, stream) in mentioned {
            self.subjects.push(subject);
            self.streams.push(stream);
        }
        self
    }

    pub fn outcome(mut self, status: u16) -> Self {
        self.outcome = status;
        self
    }

    /// The status the request really answers with.
    pub fn outcome_of<T>(self, result: &Result<T, ApiError>) -> Self {
        let status = match result {
            Ok(_) => 200,
            Err(error) => error.status.as_u16(),
        };
        self.outcome(status)
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

    /// Logs one subject, `(key, stream)`, returned to the caller.
    pub async fn one(
        &self,
        principal: &Principal,
        request_id: &str,
        resource: &'static str,
        interaction: &'static str,
        subject: Option<(String, &str)>,
        grant: Option<&Grant>,
    ) {
        let mut entry = AccessEntry::new(principal, request_id, resource, interaction);
        if let Some((key, stream)) = subject {
            entry = entry.returned(format!("{resource}/{key}"), Some(stream), grant);
        }
        self.record(entry).await;
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
        let mut attempt = 0;
        while let Err(error) = insert(&pool, &batch).await {
            attempt += 1;
            tracing::error!(%error, attempt, "cannot write the access log; retrying");
            tokio::time::sleep(Duration::from_millis(200 * attempt.min(25))).await;
        }
        batch.clear();
    }
}

async fn insert(pool: &PgPool, batch: &[AccessEntry]) -> sqlx::Result<()> {
    let mut qb = sqlx::QueryBuilder::new(
        "INSERT INTO access_log (at, client_id, organization, resource_type, interaction, \
         subjects, subject_streams, consent_ids, purpose, fields, outcome, request_id) ",
    );
    qb.push_values(batch, |mut row, e| {
        row.push_bind(e.at)
            .push_bind(&e.client_id)
            .push_bind(&e.organization)
            .push_bind(e.resource_type)
            .push_bind(e.interaction)
            .push_bind(&e.subjects)
            .push_bind(&e.streams)
            .push_bind(&e.consent_ids)
            .push_bind(&e.purpose)
            .push_bind(&e.fields)
            .push_bind(e.outcome as i16)
            .push_bind(&e.request_id);
    });
    qb.build().execute(pool).await.map(|_| ())
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
    /// Resolves `Individual/{system}|{value}` (or `Group/…`, `ProgramMembership/…`) through the
    /// live identifiers to its stream, so that accesses made through any of the subject's
    /// identifiers match. Entries that name the reference itself match too (refused lookups of
    /// unknown identifiers, and identifiers no longer live).
    pub async fn resolve(pool: &PgPool, reference: String) -> Result<Self, ApiError> {
        let (kind, key) = reference.split_once('/').ok_or_else(|| {
            ApiError::bad_request(Some("subject"), "must be {Resource}/{system}|{value}")
        })?;
        let identifier = parse_identifier(key, "subject")?;
        let stream = resolve(pool, kind, &identifier).await?;
        Ok(Self { reference, stream })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct AccessRow {
    pub at: DateTime<Utc>,
    pub client_id: String,
    pub organization: String,
    pub resource_type: String,
    pub interaction: String,
    pub subjects: Vec<String>,
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
        qb.push(" AND ")
            .push_bind(consent.clone())
            .push(" = ANY(consent_ids)");
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
        "SELECT at, client_id, organization, resource_type, interaction, subjects, consent_ids, \
         purpose, fields, outcome, request_id FROM access_log",
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
        "SELECT at, client_id, organization, resource_type, interaction, subjects, consent_ids, \
         purpose, fields, outcome, request_id FROM access_log",
    );
    push_filters(&mut select, query);
    select.push(" ORDER BY at, id");
    select.build_query_as().fetch_all(pool).await
}
