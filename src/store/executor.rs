//! The command path: load → decide → append in one transaction → report the feed position.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use openspp_aggregates::{ConsentTerms, Identifier, IndexChange, InlineIndex};
use openspp_projections::FeedPosition;
use rand::Rng;
use serde_json::Value;
use sqlx::{PgPool, Row};

use super::hash_chain::Link;
use super::metadata::CommandMetadata;
use super::EVENTS_CHANNEL;

/// A stream folded into its aggregate, with what the next append must chain onto.
pub struct Loaded<A> {
    pub aggregate: A,
    pub version: u64,
    last_hash: Option<Vec<u8>>,
}

/// The outcome of a successful command.
pub struct Committed<A> {
    /// The aggregate after the command: what the stream now says.
    pub aggregate: A,
    /// The stream's sequence number after the command (the resource's `versionId`).
    pub version: u64,
    /// Where the command's last event sits in the global feed; `None` when the command
    /// changed nothing and so appended nothing.
    pub position: Option<FeedPosition>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError<E: std::error::Error> {
    #[error(transparent)]
    Domain(E),
    /// `If-Match` named a version that is not the stream's current one.
    #[error("the resource has changed: its current version is {current}")]
    PreconditionFailed { current: u64 },
    /// Other writers kept winning the race for the stream's next version.
    #[error("the resource is being changed concurrently; retry")]
    Conflict,
    /// Another registrant holds this identifier.
    #[error("identifier {} is already in use", .0.key())]
    IdentifierInUse(Identifier),
    /// The consent the command relied on was withdrawn (or lapsed) before it could commit.
    #[error("the consent relied on is no longer in force")]
    ConsentLapsed,
    #[error("stored event cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

enum AppendError {
    StreamConflict,
    IdentifierTaken(Identifier),
    ConsentLapsed,
    Database(sqlx::Error),
}

#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    /// Conflicts retried (with a fresh load) when the writer sent no `If-Match`.
    max_retries: u32,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            max_retries: 8,
        }
    }

    /// Folds the stream up to `until` (inclusive; all of it when `None`).
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
        until: Option<u64>,
    ) -> Result<Loaded<A>, StoreError<A::Error>> {
        let rows = sqlx::query(
            "SELECT sequence, payload, hash FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3 \
             ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(until.map_or(i64::MAX, |v| v as i64))
        .fetch_all(&self.pool)
        .await?;
        let mut aggregate = A::default();
        let mut version = 0;
        let mut last_hash = None;
        for row in rows {
            let sequence: i64 = row.try_get("sequence")?;
            let payload: Value = row.try_get("payload")?;
            let event: A::Event = serde_json::from_value(payload)
                .map_err(|e| StoreError::Corrupt(format!("{} event {sequence}: {e}", A::TYPE)))?;
            aggregate.apply(event);
            version = sequence as u64;
            last_hash = Some(row.try_get("hash")?);
        }
        Ok(Loaded {
            aggregate,
            version,
            last_hash,
        })
    }

    /// Runs `command` against the stream and appends what it decides.
    ///
    /// With `expected_version` (from `If-Match`) a stale version fails with
    /// `PreconditionFailed` and nothing is retried: the writer asked for that version only.
    /// Without it, a lost race is retried on a fresh load, because the writer asked for "the
    /// latest", and the aggregate re-checks every invariant on that latest state.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        expected_version: Option<u64>,
        command: A::Command,
        services: &A::Services,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, StoreError<A::Error>>
    where
        A: Aggregate,
        A::Command: Clone,
        A::Event: InlineIndex,
    {
        let mut attempt = 0;
        loop {
            let loaded = self.load::<A>(aggregate_id, None).await?;
            if let Some(expected) = expected_version {
                if expected != loaded.version {
                    return Err(StoreError::PreconditionFailed {
                        current: loaded.version,
                    });
                }
            }
            let mut aggregate = loaded.aggregate;
            let sink = EventSink::default();
            aggregate
                .handle(command.clone(), services, &sink)
                .await
                .map_err(StoreError::Domain)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Committed {
                    aggregate,
                    version: loaded.version,
                    position: None,
                });
            }
            let appended = self
                .append::<A>(
                    aggregate_id,
                    loaded.version,
                    loaded.last_hash,
                    &events,
                    metadata,
                )
                .await;
            match appended {
                Ok(position) => {
                    return Ok(Committed {
                        aggregate,
                        version: loaded.version + events.len() as u64,
                        position: Some(position),
                    })
                }
                Err(AppendError::StreamConflict) => {
                    if let Some(_expected) = expected_version {
                        let current = self.load::<A>(aggregate_id, None).await?.version;
                        return Err(StoreError::PreconditionFailed { current });
                    }
                    if attempt >= self.max_retries {
                        return Err(StoreError::Conflict);
                    }
                    attempt += 1;
                    let backoff = rand::thread_rng().gen_range(1..=5 * attempt as u64);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(AppendError::IdentifierTaken(identifier)) => {
                    return Err(StoreError::IdentifierInUse(identifier))
                }
                Err(AppendError::ConsentLapsed) => return Err(StoreError::ConsentLapsed),
                Err(AppendError::Database(e)) => return Err(StoreError::Database(e)),
            }
        }
    }

    /// One transaction: the events (hash-chained), the identifier claims they make or release,
    /// and the notification that wakes projectors. Commit means durable (synchronous_commit on).
    async fn append<A>(
        &self,
        aggregate_id: &str,
        after_version: u64,
        mut prev_hash: Option<Vec<u8>>,
        events: &[A::Event],
        metadata: &CommandMetadata,
    ) -> Result<FeedPosition, AppendError>
    where
        A: Aggregate,
        A::Event: InlineIndex,
    {
        let recorded_at = Utc::now().trunc_subsecs(6);
        let metadata_json = metadata.to_json(recorded_at);
        let n = events.len();
        let (mut sequences, mut types, mut versions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut payloads, mut prev_hashes, mut hashes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, event) in events.iter().enumerate() {
            let sequence = (after_version + 1 + i as u64) as i64;
            let payload = serde_json::to_value(event)
                .map_err(|e| AppendError::Database(sqlx::Error::Encode(Box::new(e))))?;
            let event_type = event.event_type();
            let event_version = event.event_version();
            let hash = Link {
                aggregate_type: A::TYPE,
                aggregate_id,
                sequence,
                event_type: &event_type,
                event_version: &event_version,
                payload: &payload,
                metadata: &metadata_json,
                prev_hash: prev_hash.as_deref(),
            }
            .hash();
            sequences.push(sequence);
            types.push(event_type);
            versions.push(event_version);
            payloads.push(payload);
            prev_hashes.push(prev_hash.replace(hash.clone()));
            hashes.push(hash);
        }
        let metadatas = vec![metadata_json; n];

        let mut tx = self.pool.begin().await.map_err(AppendError::Database)?;
        if let Some(consent_id) = &metadata.consent_id {
            hold_consent(&mut tx, consent_id, metadata.consent_subject.as_deref()).await?;
        }
        let rows = sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                                 payload, metadata, recorded_at, prev_hash, hash) \
             SELECT $1, $2, s, t, v, p, m, $8, ph, h \
             FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], \
                         $9::bytea[], $10::bytea[]) AS u(s, t, v, p, m, ph, h) \
             RETURNING tx_id::text::bigint AS tx_id, global_position",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(&sequences)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadatas)
        .bind(recorded_at)
        .bind(&prev_hashes)
        .bind(&hashes)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| {
            if is_violation(&e, "events_stream_sequence") {
                AppendError::StreamConflict
            } else {
                AppendError::Database(e)
            }
        })?;
        let mut position = FeedPosition::default();
        for row in rows {
            let candidate = FeedPosition {
                tx_id: row.try_get("tx_id").map_err(AppendError::Database)?,
                position: row
                    .try_get("global_position")
                    .map_err(AppendError::Database)?,
            };
            position = position.max(candidate);
        }

        update_inline_indexes::<A>(&mut tx, aggregate_id, events).await?;

        sqlx::query("SELECT pg_notify($1, '')")
            .bind(EVENTS_CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(AppendError::Database)?;
        tx.commit().await.map_err(AppendError::Database)?;
        Ok(position)
    }
}

/// Locks the consent a command relies on until the command commits, and fails if it is no
/// longer in force: a concurrent withdrawal (an UPDATE of that row) waits for us, or we see it.
/// When it is a household's consent relied on for a member (`subject`), the membership is
/// held the same way: a concurrent removal (a DELETE of that row) waits for us, or we see it.
async fn hold_consent(
    tx: &mut sqlx::PgConnection,
    consent_id: &str,
    subject: Option<&str>,
) -> Result<(), AppendError> {
    let consent_subject: Option<String> = sqlx::query_scalar(
        "SELECT subject_id FROM consent_index WHERE consent_id = $1 \
         AND status IN ('given', 'renewed') \
         AND effective_date <= (now() AT TIME ZONE 'UTC')::date \
         AND expiry_date >= (now() AT TIME ZONE 'UTC')::date FOR SHARE",
    )
    .bind(consent_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(AppendError::Database)?;
    let consent_subject = consent_subject.ok_or(AppendError::ConsentLapsed)?;
    let Some(subject) = subject.filter(|s| *s != consent_subject) else {
        return Ok(());
    };
    let member: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM group_membership_index WHERE group_id = $1 AND individual_id = $2 \
         FOR SHARE",
    )
    .bind(&consent_subject)
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await
    .map_err(AppendError::Database)?;
    member.map(|_| ()).ok_or(AppendError::ConsentLapsed)
}

/// Keeps the indexes that must never be stale in step with the events, in their transaction.
/// Identifier releases come before claims, so a command swapping an identifier between two of
/// the stream's own slots never trips over itself. A claim that finds the row taken waits for
/// the holder's transaction, then fails: the unique key, not a read, decides (invariant 3).
async fn update_inline_indexes<A>(
    tx: &mut sqlx::PgConnection,
    aggregate_id: &str,
    events: &[A::Event],
) -> Result<(), AppendError>
where
    A: Aggregate,
    A::Event: InlineIndex,
{
    let changes: Vec<IndexChange<'_>> = events.iter().filter_map(|e| e.index_change()).collect();
    for change in &changes {
        match change {
            IndexChange::IdentifierReleased(identifier) => {
                sqlx::query(
                    "DELETE FROM identifier_claims \
                     WHERE system = $1 AND value = $2 AND aggregate_type = $3 AND aggregate_id = $4",
                )
                .bind(&identifier.system)
                .bind(&identifier.value)
                .bind(A::TYPE)
                .bind(aggregate_id)
                .execute(&mut *tx)
                .await
                .map_err(AppendError::Database)?;
            }
            IndexChange::ConsentGiven(terms) => index_consent(tx, aggregate_id, terms).await?,
            IndexChange::ConsentWithdrawn => {
                sqlx::query("UPDATE consent_index SET status = 'withdrawn' WHERE consent_id = $1")
                    .bind(aggregate_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(AppendError::Database)?;
            }
            IndexChange::ConsentRenewed(expiry) => {
                sqlx::query(
                    "UPDATE consent_index SET status = 'renewed', expiry_date = $2, \
                     terms = jsonb_set(terms, '{expiry_date}', to_jsonb($2::text)) \
                     WHERE consent_id = $1",
                )
                .bind(aggregate_id)
                .bind(expiry)
                .execute(&mut *tx)
                .await
                .map_err(AppendError::Database)?;
            }
            IndexChange::MemberJoined(individual) => {
                sqlx::query(
                    "INSERT INTO group_membership_index (group_id, individual_id) \
                     VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(aggregate_id)
                .bind(individual)
                .execute(&mut *tx)
                .await
                .map_err(AppendError::Database)?;
            }
            IndexChange::MemberLeft(individual) => {
                sqlx::query(
                    "DELETE FROM group_membership_index WHERE group_id = $1 AND individual_id = $2",
                )
                .bind(aggregate_id)
                .bind(individual)
                .execute(&mut *tx)
                .await
                .map_err(AppendError::Database)?;
            }
            IndexChange::IdentifierClaimed(_) => {}
        }
    }
    for change in &changes {
        if let IndexChange::IdentifierClaimed(identifier) = change {
            let claimed = sqlx::query(
                "INSERT INTO identifier_claims (system, value, aggregate_type, aggregate_id) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&identifier.system)
            .bind(&identifier.value)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .execute(&mut *tx)
            .await
            .map_err(AppendError::Database)?;
            if claimed.rows_affected() == 0 {
                return Err(AppendError::IdentifierTaken((*identifier).clone()));
            }
        }
    }
    Ok(())
}

async fn index_consent(
    tx: &mut sqlx::PgConnection,
    consent_id: &str,
    terms: &ConsentTerms,
) -> Result<(), AppendError> {
    let mode = match terms.recipient_mode {
        openspp_aggregates::consent::RecipientMode::Specific => "specific",
        openspp_aggregates::consent::RecipientMode::Category => "category",
    };
    let resource_types: Vec<&str> = terms
        .scopes
        .iter()
        .map(|s| s.resource_type.as_str())
        .collect();
    let json = serde_json::to_value(terms)
        .map_err(|e| AppendError::Database(sqlx::Error::Encode(Box::new(e))))?;
    sqlx::query(
        "INSERT INTO consent_index (consent_id, subject_type, subject_id, status, recipient_mode, \
             recipients, recipient_types, resource_types, effective_date, expiry_date, terms) \
         VALUES ($1, $2, $3, 'given', $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(consent_id)
    .bind(&terms.subject_type)
    .bind(&terms.subject)
    .bind(mode)
    .bind(&terms.recipients)
    .bind(&terms.recipient_types)
    .bind(&resource_types)
    .bind(terms.effective_date)
    .bind(terms.expiry_date)
    .bind(json)
    .execute(&mut *tx)
    .await
    .map_err(AppendError::Database)?;
    Ok(())
}

fn is_violation(error: &sqlx::Error, constraint: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}
