//! Deciding several commands, on any streams of any aggregate types, and committing all they
//! decided at once: the events (hash-chained), the identifier claims, the consent and
//! membership indexes and every read model row, in ONE statement, so one durable commit, all
//! or nothing. `EventStore::execute` is a batch of one; `$batch` transaction bundles,
//! `openspp import` and synthetic seeding are batches of many.
//!
//! Two phases:
//! 1. `decide` runs a command against its stream as the batch has it (read from the log the
//!    first time the batch touches it, or, for a command that starts a stream, assumed empty
//!    without reading), and keeps the events. A command on a stream already in the batch sees
//!    the events decided before it. A refused command leaves the batch as it was.
//! 2. `commit` writes it all in one statement, which holds every consent a command relied on
//!    first (as the consents stood before the batch), and every other stream's read-model
//!    status a command was decided on (`Stored::relies_on`), and answers with the state,
//!    version and stamps of every stream (`Receipt`), so a response is rendered without
//!    reading back.
//!
//! When `commit` answers `StoreError::Conflict`, another writer won a race for one of the
//! streams; the batch has forgotten its decisions (and remembers which streams exist), so the
//! caller decides the same commands again and commits again:
//!
//! ```text
//! let mut batch = store.batch();
//! let receipt = loop {
//!     batch.decide::<Individual>(&id, None, command.clone(), &services, &metadata).await?;
//!     match batch.commit().await {
//!         Err(StoreError::Conflict) if batch.attempts() <= 8 => continue,
//!         other => break other?,
//!     }
//! };
//! ```

use std::any::Any;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::DomainEvent;
use openspp_projections::events::{push_append, NewEvent};
use openspp_projections::identifier_claims;
use openspp_projections::inline::Inline;
use openspp_projections::statement::{map, Statement, Unnest};
use openspp_projections::view::ViewRow;
use openspp_projections::{FeedPosition, Fold};
use serde_json::Value;

use super::error::{Fault, StoreError};
use super::executor::EventStore;
use super::hash_chain::Link;
use super::metadata::CommandMetadata;
use super::{HeldStatus, Stored};

/// A stream, by aggregate type and id.
pub(crate) type StreamKey = (&'static str, String);

pub struct Batch<E: std::error::Error> {
    /// The store's handles (a pool and the feed signal), owned so that a batch can outlive the
    /// call that opened it (a `$batch` transaction keeps one across its entries).
    store: EventStore,
    streams: Vec<Box<dyn Pending<E>>>,
    by_stream: HashMap<StreamKey, usize>,
    /// The metadata of each command decided, which its events are recorded with.
    commands: Vec<CommandMetadata>,
    /// The read-model statuses the commands that decided events were decided on.
    held: Vec<HeldStatus>,
    /// Streams found to exist although a command assumed they did not: read them next time.
    existing: HashSet<StreamKey>,
    attempts: u32,
    /// The part of an imported file this batch loads, recorded with its events.
    progress: Option<ImportProgress>,
}

/// A batch of an imported file's lines (`openspp import`), recorded in the statement that
/// appends their events (`import_batches`): loaded and recorded, or neither.
#[derive(Debug, Clone)]
pub struct ImportProgress {
    /// The file's SHA-256 (hex).
    pub file_hash: String,
    pub first_line: i64,
    pub last_line: i64,
    pub loaded: i32,
    /// `[{"line", "reason"}]` of the lines refused.
    pub refused: Value,
    /// What the events name as their `source_reference`.
    pub source: String,
}

/// What a committed batch wrote, stream by stream.
pub struct Receipt {
    /// When every event of the batch was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Where the batch's last event sits in the feed; `None` when it appended nothing.
    pub position: Option<FeedPosition>,
    streams: HashMap<StreamKey, Box<dyn Any + Send>>,
}

/// One stream after a command (or a committed batch): everything a response renders, without
/// reading the read models back.
#[derive(Debug, Clone)]
pub struct Committed<A> {
    pub aggregate_id: String,
    /// The aggregate after the command: what the stream now says.
    pub aggregate: A,
    /// The stream's sequence number after the command (the resource's `versionId`).
    pub version: u64,
    /// Where the stream's last event of this batch sits in the global feed; `None` when the
    /// command changed nothing and so appended nothing.
    pub position: Option<FeedPosition>,
    /// When the stream was last written (`meta.lastUpdated`): this batch's time if it appended.
    pub last_updated: DateTime<Utc>,
    /// The source system of the stream's latest event (`meta.source`).
    pub source: Option<String>,
}

impl<A> From<Committed<A>> for ViewRow<A> {
    /// The resource as its read model now holds it (the same row, without reading it back).
    fn from(committed: Committed<A>) -> Self {
        ViewRow {
            aggregate_id: committed.aggregate_id,
            version: committed.version as i64,
            state: committed.aggregate,
            last_updated: committed.last_updated,
            source: committed.source,
        }
    }
}

impl Receipt {
    /// The part of a group's receipt that names `keys` (`group.rs`).
    pub(crate) fn part(&mut self, keys: &[StreamKey]) -> Receipt {
        Receipt {
            recorded_at: self.recorded_at,
            position: self.position,
            streams: keys
                .iter()
                .filter_map(|key| Some((key.clone(), self.streams.remove(key)?)))
                .collect(),
        }
    }

    /// The committed state of stream `aggregate_id` of type `A`, if the batch touched it.
    pub fn take<A: Stored>(&mut self, aggregate_id: &str) -> Option<Committed<A>> {
        self.streams
            .remove(&(A::TYPE, aggregate_id.to_owned()))?
            .downcast::<Committed<A>>()
            .ok()
            .map(|committed| *committed)
    }
}

impl<E: std::error::Error + Send + 'static> Batch<E> {
    pub(crate) fn new(store: EventStore) -> Self {
        Self {
            store,
            streams: Vec::new(),
            by_stream: HashMap::new(),
            commands: Vec::new(),
            held: Vec::new(),
            existing: HashSet::new(),
            attempts: 0,
            progress: None,
        }
    }

    /// Records `progress` with whatever the next commit writes (nothing else, if it writes
    /// no event).
    pub fn record_progress(&mut self, progress: ImportProgress) {
        self.progress = Some(progress);
    }

    pub fn has_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// How many times `commit` has run.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Runs `command` against stream `aggregate_id` as the batch has it; returns the stream's
    /// version after it. With `expected_version` (from `If-Match`), a stream at another version
    /// fails with `PreconditionFailed`, now or, if another writer moves it before the commit,
    /// then.
    pub async fn decide<A>(
        &mut self,
        aggregate_id: &str,
        expected_version: Option<u64>,
        command: A::Command,
        services: &A::Services,
        metadata: &CommandMetadata,
    ) -> Result<u64, StoreError<E>>
    where
        A: Stored<Error = E>,
    {
        let key: StreamKey = (A::TYPE, aggregate_id.to_owned());
        let opened = !self.by_stream.contains_key(&key);
        if opened {
            let assume_new = expected_version.is_none()
                && A::starts_stream(&command)
                && !self.existing.contains(&key);
            let fold = if assume_new {
                Fold::default()
            } else {
                self.store.load::<A>(aggregate_id).await?
            };
            self.by_stream.insert(key.clone(), self.streams.len());
            self.streams
                .push(Box::new(Stream::<A>::new(aggregate_id, fold, assume_new)));
        }
        let index = self.by_stream[&key];
        let relies_on = A::relies_on(&command);
        let mut decided = self
            .stream::<A>(index)
            .decide(expected_version, &command, services)
            .await;
        if opened && self.stream::<A>(index).assumed_new && decided_nothing(&decided) {
            // The empty state refused the command or found nothing to do: the stream may exist
            // after all, so the command is decided on what it holds.
            match self.store.load::<A>(aggregate_id).await {
                Ok(fold) => {
                    *self.stream::<A>(index) = Stream::new(aggregate_id, fold, false);
                    decided = self
                        .stream::<A>(index)
                        .decide(expected_version, &command, services)
                        .await;
                }
                Err(error) => {
                    self.forget_last(&key);
                    return Err(error);
                }
            }
        }
        match decided {
            Ok(events) => {
                if !events.is_empty() {
                    self.held.extend(relies_on);
                }
                let command_index = self.commands.len();
                self.commands.push(metadata.clone());
                let stream = self.stream::<A>(index);
                stream
                    .decided
                    .extend(events.into_iter().map(|event| (event, command_index)));
                Ok(stream.version())
            }
            Err(refusal) => {
                if opened {
                    // Nothing else was decided on it.
                    self.forget_last(&key);
                }
                Err(refusal.into())
            }
        }
    }

    /// The state of stream `aggregate_id` as the batch now has it (read from the log the first
    /// time), for a command whose content depends on another stream's state: a merge moves the
    /// source's members into the target. The stream read must also be written in the batch, so
    /// that a concurrent change to it fails the commit with a conflict instead of being missed.
    pub async fn state<A>(&mut self, aggregate_id: &str) -> Result<A, StoreError<E>>
    where
        A: Stored<Error = E>,
    {
        let key: StreamKey = (A::TYPE, aggregate_id.to_owned());
        if !self.by_stream.contains_key(&key) {
            let fold = self.store.load::<A>(aggregate_id).await?;
            self.by_stream.insert(key.clone(), self.streams.len());
            self.streams
                .push(Box::new(Stream::<A>::new(aggregate_id, fold, false)));
        }
        let index = self.by_stream[&key];
        Ok(self.stream::<A>(index).fold.state.clone())
    }

    /// Reads the streams `aggregate_ids` not yet in the batch, all in one round trip, so that
    /// commands decided on them next (a cycle's entitlements moved with it) read nothing more.
    pub async fn open_many<A>(&mut self, aggregate_ids: &[String]) -> Result<(), StoreError<E>>
    where
        A: Stored<Error = E>,
    {
        let unread: Vec<String> = aggregate_ids
            .iter()
            .filter(|id| !self.by_stream.contains_key(&(A::TYPE, (*id).clone())))
            .cloned()
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        for (aggregate_id, fold) in self.store.load_many::<A>(&unread).await? {
            let key: StreamKey = (A::TYPE, aggregate_id.clone());
            if self.by_stream.contains_key(&key) {
                continue;
            }
            self.by_stream.insert(key, self.streams.len());
            self.streams
                .push(Box::new(Stream::<A>::new(&aggregate_id, fold, false)));
        }
        Ok(())
    }

    /// Holds `held` (a read-model row's status, or what a cycle's entitlements were seen as)
    /// until the next commit, as a command's own `Stored::relies_on` is held: the commit fails
    /// with `StoreError::FactChanged`, writing nothing, if it no longer holds.
    pub fn hold(&mut self, held: HeldStatus) {
        self.held.push(held);
    }

    /// The state and version of stream `aggregate_id` as the batch has it after the commands
    /// decided on it, if any touched it (a transaction answers its operations from it before
    /// the commit).
    pub fn pending<A: Stored<Error = E>>(&mut self, aggregate_id: &str) -> Option<(A, u64)> {
        let index = *self.by_stream.get(&(A::TYPE, aggregate_id.to_owned()))?;
        let stream = self.stream::<A>(index);
        Some((stream.fold.state.clone(), stream.version()))
    }

    /// Drops the stream opened last (a refused command's, on which nothing was decided).
    fn forget_last(&mut self, key: &StreamKey) {
        self.streams.pop();
        self.by_stream.remove(key);
    }

    fn stream<A: Stored<Error = E>>(&mut self, index: usize) -> &mut Stream<A> {
        self.streams[index]
            .as_any()
            .downcast_mut::<Stream<A>>()
            .expect("a stream key names one aggregate type")
    }

    /// Writes everything decided in one statement. On `Conflict` the batch is emptied for the
    /// commands to be decided again (it keeps what it learnt about which streams exist); on
    /// any other outcome it is empty too.
    pub async fn commit(&mut self) -> Result<Receipt, StoreError<E>> {
        let written = self.write().await;
        self.settled(written).await
    }

    /// What an attempt at the statement (`write`) came to, for the commands this batch decided.
    pub(crate) async fn settled(
        &mut self,
        written: Result<Receipt, Failure<E>>,
    ) -> Result<Receipt, StoreError<E>> {
        match written {
            Ok(receipt) => Ok(receipt),
            Err(Failure::Refused(error)) => Err(error),
            Err(Failure::Statement(failed)) => self.failed(failed).await,
        }
    }

    /// Moves everything `other` decided into this batch, to be committed with what this one
    /// decided (a group commit, `group.rs`); `other` is left empty. Answers the streams it
    /// brought, by which the group's receipt is shared out again.
    pub(crate) fn absorb(&mut self, other: &mut Batch<E>) -> Vec<StreamKey> {
        let offset = self.commands.len();
        self.commands.append(&mut other.commands);
        self.held.append(&mut other.held);
        other.by_stream.clear();
        let mut keys = Vec::with_capacity(other.streams.len());
        for mut stream in other.streams.drain(..) {
            stream.renumber(offset);
            let (aggregate_type, aggregate_id) = stream.key();
            let key: StreamKey = (aggregate_type, aggregate_id.to_owned());
            self.by_stream.insert(key.clone(), self.streams.len());
            self.streams.push(stream);
            keys.push(key);
        }
        keys
    }

    /// The streams the batch has decided commands on.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &StreamKey> {
        self.by_stream.keys()
    }

    /// One attempt at the statement `commit` sends. A failure of the statement itself is
    /// answered with what is needed to tell what it means (`failed`).
    pub(crate) async fn write(&mut self) -> Result<Receipt, Failure<E>> {
        self.attempts += 1;
        self.by_stream.clear();
        let mut streams = std::mem::take(&mut self.streams);
        let commands = std::mem::take(&mut self.commands);
        let held = std::mem::take(&mut self.held);
        let recorded_at = Utc::now().trunc_subsecs(6);
        let metadata: Vec<Value> = commands.iter().map(|m| m.to_json(recorded_at)).collect();
        let sources: Vec<&str> = commands.iter().map(|m| m.source_system.as_str()).collect();
        let mut events = Vec::new();
        let mut inline = Inline::default();
        for stream in &mut streams {
            stream.stage(&metadata, &sources, recorded_at, &mut events, &mut inline)?;
        }
        let progress = self.progress.take();
        if events.is_empty() {
            if let Some(progress) = &progress {
                let mut statement = Statement::new();
                push_progress(&mut statement, progress);
                statement
                    .finish("SELECT 1")
                    .build()
                    .execute(&self.store.pool)
                    .await
                    .map_err(StoreError::from)?;
            }
            return Ok(receipt(streams, recorded_at, None));
        }
        if let Some(identifier) = inline.clash() {
            return Err(StoreError::IdentifierInUse(identifier.clone()).into());
        }
        let holds: Vec<Hold> = commands
            .iter()
            .filter_map(|m| {
                Some((
                    m.consent_id.as_deref()?,
                    m.consent_subject.as_deref(),
                    m.consent_recipient.as_deref(),
                ))
            })
            .collect();
        // A status held is read from the committed read model; a stream the batch itself
        // writes is no longer in that status once the batch commits, so a command decided on it
        // cannot stand beside the write (nor can the row be held: it may not exist yet).
        let written: HashSet<(&str, &str)> = events
            .iter()
            .map(|e| (e.aggregate_type, e.aggregate_id.as_str()))
            .collect();
        if held
            .iter()
            .any(|h| written.contains(&(h.aggregate_type, h.aggregate_id.as_str())))
        {
            return Err(StoreError::FactChangedAlongside.into());
        }
        let mut statement = append_statement(
            &holds,
            &held,
            &events,
            &inline,
            recorded_at,
            progress.as_ref(),
        );
        // A connection that cannot be had means nothing was sent; once one is had, a broken
        // connection may have taken a commit with it (`settle`).
        let mut connection = self
            .store
            .lane()
            .acquire()
            .await
            .map_err(StoreError::Unavailable)?;
        let written = append(&mut connection, &mut statement).await;
        if written.is_ok() {
            connection.release();
        } else {
            drop(connection);
        }
        drop(statement);
        match written {
            Ok((tx_id, position)) => {
                self.store.signal.poke();
                let position = FeedPosition { tx_id, position };
                Ok(receipt(streams, recorded_at, Some(position)))
            }
            Err(error) => {
                let first = events.swap_remove(0);
                Err(Failure::Statement(Box::new(Failed {
                    error,
                    streams,
                    inline,
                    first,
                    recorded_at,
                })))
            }
        }
    }

    /// What a failed statement means: a lost race, an identifier taken, a hold that failed, or,
    /// when the connection broke while it was out, whether it committed after all (`settle`).
    pub(crate) async fn failed(
        &mut self,
        failed: Box<Failed<E>>,
    ) -> Result<Receipt, StoreError<E>> {
        let Failed {
            error,
            streams,
            inline,
            first,
            recorded_at,
        } = *failed;
        match Fault::of(&error) {
            Fault::StreamConflict | Fault::Retry => Err(self.conflict(&streams).await),
            Fault::IdentifierTaken => Err(self.identifier_taken(&streams, &inline).await),
            Fault::ConsentLapsed => Err(StoreError::ConsentLapsed),
            Fault::FactChanged => Err(StoreError::FactChanged),
            Fault::Unavailable => Err(StoreError::Unavailable(error)),
            Fault::Lost { server_said } => match self.settle(&first).await {
                Some(Some(position)) => {
                    self.store.signal.poke();
                    Ok(receipt(streams, recorded_at, Some(position)))
                }
                // The server ended the session itself, so no backend is left to commit it.
                Some(None) if server_said => Err(StoreError::Unavailable(error)),
                _ => Err(StoreError::OutcomeUnknown),
            },
            Fault::Other => Err(StoreError::Database(error)),
        }
    }

    /// After a lost race: `PreconditionFailed` if a stream that moved was expected at a
    /// version, else `Conflict`. Streams that moved are read next time, never assumed new.
    async fn conflict(&mut self, streams: &[Box<dyn Pending<E>>]) -> StoreError<E> {
        let keys: Vec<(&'static str, &str, u64, bool)> =
            streams.iter().map(|s| s.conflict_key()).collect();
        let current: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT coalesce((SELECT max(e.sequence) FROM events e \
                              WHERE e.aggregate_type = k.aggregate_type \
                                AND e.aggregate_id = k.aggregate_id), 0) \
             FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(aggregate_type, aggregate_id, n) \
             ORDER BY k.n",
        )
        .bind(map(&keys, |k| k.0))
        .bind(map(&keys, |k| k.1))
        .fetch_all(&self.store.pool)
        .await;
        let current = match current {
            Ok(current) => current,
            Err(error) => return error.into(),
        };
        let mut result = StoreError::Conflict;
        for (&(aggregate_type, aggregate_id, loaded, expected), &now) in keys.iter().zip(&current) {
            if now as u64 == loaded {
                continue;
            }
            if expected && !matches!(result, StoreError::PreconditionFailed { .. }) {
                result = StoreError::PreconditionFailed {
                    current: now as u64,
                };
            }
            self.existing
                .insert((aggregate_type, aggregate_id.to_owned()));
        }
        result
    }

    /// Which claimed identifier another stream holds. If the holder is one of the batch's own
    /// streams, that stream was decided on a stale state: a conflict, to be decided again.
    async fn identifier_taken(
        &mut self,
        streams: &[Box<dyn Pending<E>>],
        inline: &Inline,
    ) -> StoreError<E> {
        let claimed = inline.claimed();
        let holders = match identifier_claims::holders(&self.store.pool, &claimed).await {
            Ok(holders) => holders,
            Err(error) => return error.into(),
        };
        let ours: HashSet<(&str, &str)> = streams.iter().map(|s| s.key()).collect();
        for identifier in claimed {
            if let Some((aggregate_type, aggregate_id)) = holders.get(&identifier.key()) {
                if !ours.contains(&(aggregate_type.as_str(), aggregate_id.as_str())) {
                    return StoreError::IdentifierInUse(identifier.clone());
                }
            }
        }
        // The holder is one of ours, or has let go meanwhile.
        self.conflict(streams).await
    }

    /// After the connection broke mid-statement: whether the batch committed, read from a
    /// fresh connection (its first event, by position and hash): `Some(position)` if it did,
    /// `Some(None)` if it has not (yet), `None` if the database cannot be asked.
    async fn settle(&self, first: &NewEvent) -> Option<Option<FeedPosition>> {
        for pause in [100, 400, 1_600] {
            let found: Result<Option<(i64, i64)>, sqlx::Error> = sqlx::query_as(
                "SELECT e.tx_id::text::bigint, \
                        (SELECT max(o.global_position) FROM events o WHERE o.tx_id = e.tx_id) \
                 FROM events e \
                 WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 AND e.sequence = $3 \
                   AND e.hash = $4",
            )
            .bind(first.aggregate_type)
            .bind(&first.aggregate_id)
            .bind(first.sequence)
            .bind(&first.hash)
            .fetch_optional(&self.store.pool)
            .await;
            match found {
                Ok(found) => {
                    return Some(found.map(|(tx_id, position)| FeedPosition { tx_id, position }))
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(pause)).await,
            }
        }
        None
    }
}

/// Runs a commit's statement on `connection`. A connection of the pool is in no transaction:
/// the statement is its own, at no extra cost. One already inside a transaction is a dry run's
/// (`openspp import --dry-run` applies a whole file in one transaction it rolls back at the
/// end): there the statement runs in a savepoint, so that one refused (an identifier taken, a
/// stream moved) is undone alone and leaves the transaction usable for the lookups that name
/// the refusal and for the batches after it.
async fn append(
    connection: &mut sqlx::PgConnection,
    statement: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Connection;
    if !connection.is_in_transaction() {
        return statement.build_query_as().fetch_one(connection).await;
    }
    // Already inside the dry run's transaction: this opens a savepoint, which sqlx does roll
    // back if abandoned (its guard counts the outer transaction).
    #[allow(clippy::disallowed_methods)]
    let mut savepoint = connection.begin().await?;
    let written = statement.build_query_as().fetch_one(&mut *savepoint).await;
    match written {
        Ok(_) => savepoint.commit().await?,
        Err(_) => savepoint.rollback().await?,
    }
    written
}

/// Why an attempt at the statement wrote nothing, or may not have.
pub(crate) enum Failure<E: std::error::Error> {
    /// Nothing was sent: the batch cannot stand as decided (an identifier claimed twice, a
    /// status decided on that the batch itself changes), or no connection could be had.
    Refused(StoreError<E>),
    /// The statement failed, or its connection broke while it was out.
    Statement(Box<Failed<E>>),
}

impl<E: std::error::Error> From<StoreError<E>> for Failure<E> {
    fn from(error: StoreError<E>) -> Self {
        Self::Refused(error)
    }
}

/// A failed statement, with what is needed to tell what it means (`Batch::failed`).
pub(crate) struct Failed<E: std::error::Error> {
    pub error: sqlx::Error,
    streams: Vec<Box<dyn Pending<E>>>,
    inline: Inline,
    /// The first event it appended, by which `settle` finds whether it committed.
    first: NewEvent,
    recorded_at: DateTime<Utc>,
}

/// A consent relied on: its id, the subject (stream) and the organisation it is relied on for.
type Hold<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// The one statement of a commit: the holds on the consents relied on and on the read-model
/// statuses decided on (which every write waits for, so each is held as it stood before the
/// batch, whatever the batch writes), the events, and what they change in the indexes and read
/// models. It answers with the batch's place in the feed.
fn append_statement<'a>(
    holds: &'a [Hold<'a>],
    held: &'a [HeldStatus],
    events: &'a [NewEvent],
    inline: &'a Inline,
    recorded_at: DateTime<Utc>,
    progress: Option<&'a ImportProgress>,
) -> sqlx::QueryBuilder<'a, sqlx::Postgres> {
    let mut statement = Statement::new();
    if !holds.is_empty() {
        statement.part("held", |qb, _| {
            qb.push("SELECT hold_consent(consent, subject, recipient) FROM ");
            Unnest::new(qb)
                .column("consent", "text", map(holds, |h| h.0))
                .column("subject", "text", map(holds, |h| h.1))
                .column("recipient", "text", map(holds, |h| h.2))
                .finish("h");
        });
        statement.guard_with("held");
    }
    if !held.is_empty() {
        statement.part("held_statuses", |qb, _| {
            qb.push("SELECT hold_status(aggregate_type, stream, status) FROM ");
            Unnest::new(qb)
                .column("aggregate_type", "text", map(held, |h| h.aggregate_type))
                .column("stream", "text", map(held, |h| h.aggregate_id.as_str()))
                .column("status", "text", map(held, |h| h.status.as_ref()))
                .finish("s");
        });
        statement.guard_with("held_statuses");
    }
    push_append(&mut statement, events, recorded_at);
    inline.push_into(&mut statement);
    if let Some(progress) = progress {
        push_progress(&mut statement, progress);
    }
    statement.finish("SELECT max(tx), max(global_position) FROM appended")
}

/// The row of `import_batches` saying which lines the statement loads.
fn push_progress<'a>(statement: &mut Statement<'a>, progress: &'a ImportProgress) {
    statement.part("progress", |qb, guard| {
        qb.push(
            "INSERT INTO import_batches \
             (file_hash, first_line, last_line, loaded, refused, source) SELECT ",
        )
        .push_bind(&progress.file_hash)
        .push(", ")
        .push_bind(progress.first_line)
        .push(", ")
        .push_bind(progress.last_line)
        .push(", ")
        .push_bind(progress.loaded)
        .push(", ")
        .push_bind(&progress.refused)
        .push(", ")
        .push_bind(&progress.source)
        .push(" WHERE ")
        .push(guard)
        .push(" RETURNING 1");
    });
}

/// Every stream of a committed batch, as it now stands.
fn receipt<E: std::error::Error>(
    streams: Vec<Box<dyn Pending<E>>>,
    recorded_at: DateTime<Utc>,
    position: Option<FeedPosition>,
) -> Receipt {
    Receipt {
        recorded_at,
        position,
        streams: streams
            .into_iter()
            .map(|stream| stream.committed(recorded_at, position))
            .collect(),
    }
}

fn decided_nothing<Ev, R>(decided: &Result<Vec<Ev>, R>) -> bool {
    decided.as_ref().map_or(true, Vec::is_empty)
}

/// Why a command decided nothing.
enum Refusal<E> {
    Domain(E),
    PreconditionFailed { current: u64 },
}

impl<E: std::error::Error> From<Refusal<E>> for StoreError<E> {
    fn from(refusal: Refusal<E>) -> Self {
        match refusal {
            Refusal::Domain(error) => StoreError::Domain(error),
            Refusal::PreconditionFailed { current } => StoreError::PreconditionFailed { current },
        }
    }
}

/// One stream in a batch: as loaded, and the events decided on it since.
struct Stream<A: Stored> {
    aggregate_id: String,
    /// The stream as read (or assumed empty), its `state` moved on by each decided event.
    fold: Fold<A>,
    /// Each decided event, with the command (by index) that decided it.
    decided: Vec<(A::Event, usize)>,
    assumed_new: bool,
    /// Whether a command named the version it expected.
    expected: bool,
    loaded_version: u64,
}

impl<A: Stored> Stream<A> {
    fn new(aggregate_id: &str, fold: Fold<A>, assumed_new: bool) -> Self {
        Self {
            aggregate_id: aggregate_id.to_owned(),
            loaded_version: fold.version,
            fold,
            decided: Vec::new(),
            assumed_new,
            expected: false,
        }
    }

    fn version(&self) -> u64 {
        self.fold.version + self.decided.len() as u64
    }

    /// Decides `command` on the current state; on a refusal the state is as it was.
    async fn decide(
        &mut self,
        expected_version: Option<u64>,
        command: &A::Command,
        services: &A::Services,
    ) -> Result<Vec<A::Event>, Refusal<A::Error>> {
        if let Some(expected) = expected_version {
            if expected != self.version() {
                return Err(Refusal::PreconditionFailed {
                    current: self.version(),
                });
            }
            self.expected = true;
        }
        // A stream with decisions already keeps a copy to return to; a stream fresh in the
        // batch is dropped whole on a refusal.
        let before = (!self.decided.is_empty()).then(|| self.fold.state.clone());
        let sink = EventSink::default();
        match self
            .fold
            .state
            .handle(command.clone(), services, &sink)
            .await
        {
            Ok(()) => Ok(sink.collect().await),
            Err(error) => {
                if let Some(before) = before {
                    self.fold.state = before;
                }
                Err(Refusal::Domain(error))
            }
        }
    }
}

/// A stream in a batch, whatever its aggregate type.
trait Pending<E: std::error::Error>: Send + Sync {
    fn key(&self) -> (&'static str, &str);
    /// Type, id, version as loaded, and whether a command expected a version.
    fn conflict_key(&self) -> (&'static str, &str, u64, bool);
    /// Moves the command indices of its decided events on by `offset` (`Batch::absorb`).
    fn renumber(&mut self, offset: usize);
    /// Adds the stream's decided events (chained onto its last hash) to `events`, what they
    /// change in the indexes and the stream's rows after them to `inline`.
    fn stage(
        &mut self,
        metadata: &[Value],
        sources: &[&str],
        recorded_at: DateTime<Utc>,
        events: &mut Vec<NewEvent>,
        inline: &mut Inline,
    ) -> Result<(), StoreError<E>>;
    fn committed(
        self: Box<Self>,
        recorded_at: DateTime<Utc>,
        position: Option<FeedPosition>,
    ) -> (StreamKey, Box<dyn Any + Send>);
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<A, E> Pending<E> for Stream<A>
where
    A: Stored<Error = E>,
    E: std::error::Error,
{
    fn key(&self) -> (&'static str, &str) {
        (A::TYPE, &self.aggregate_id)
    }

    fn conflict_key(&self) -> (&'static str, &str, u64, bool) {
        (
            A::TYPE,
            &self.aggregate_id,
            self.loaded_version,
            self.expected,
        )
    }

    fn renumber(&mut self, offset: usize) {
        for (_, command) in &mut self.decided {
            *command += offset;
        }
    }

    fn stage(
        &mut self,
        metadata: &[Value],
        sources: &[&str],
        recorded_at: DateTime<Utc>,
        events: &mut Vec<NewEvent>,
        inline: &mut Inline,
    ) -> Result<(), StoreError<E>> {
        let Some(&(_, last_command)) = self.decided.last() else {
            return Ok(());
        };
        let mut prev_hash = self.fold.last_hash.clone();
        for (i, (event, command)) in self.decided.iter().enumerate() {
            let sequence = (self.fold.version + 1 + i as u64) as i64;
            let payload = serde_json::to_value(event)
                .map_err(|e| StoreError::Corrupt(format!("{} event: {e}", A::TYPE)))?;
            let event_type = event.event_type();
            let event_version = event.event_version();
            let hash = Link {
                aggregate_type: A::TYPE,
                aggregate_id: &self.aggregate_id,
                sequence,
                event_type: &event_type,
                event_version: &event_version,
                payload: &payload,
                metadata: &metadata[*command],
                prev_hash: prev_hash.as_deref(),
            }
            .hash();
            inline.index(A::TYPE, &self.aggregate_id, event);
            events.push(NewEvent {
                aggregate_type: A::TYPE,
                aggregate_id: self.aggregate_id.clone(),
                sequence,
                event_type,
                event_version,
                payload,
                metadata: metadata[*command].clone(),
                prev_hash: prev_hash.replace(hash.clone()),
                hash,
            });
        }
        let appended = self.decided.len() as u64;
        let last_hash = prev_hash.unwrap_or_default();
        self.fold
            .appended(appended, recorded_at, sources[last_command], last_hash);
        self.decided.clear();
        inline
            .project(&self.aggregate_id, &self.fold)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(())
    }

    fn committed(
        self: Box<Self>,
        recorded_at: DateTime<Utc>,
        position: Option<FeedPosition>,
    ) -> (StreamKey, Box<dyn Any + Send>) {
        let appended = self.fold.version > self.loaded_version;
        let committed = Committed {
            aggregate_id: self.aggregate_id.clone(),
            version: self.fold.version,
            position: position.filter(|_| appended),
            last_updated: self.fold.last_updated.unwrap_or(recorded_at),
            source: self.fold.source.clone(),
            aggregate: self.fold.state,
        };
        ((A::TYPE, self.aggregate_id), Box::new(committed))
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}
