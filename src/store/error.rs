//! How a command can fail in the store, and how a database error is read: a lost or refused
//! connection is told apart from every other fault (the HTTP layer answers it with 503 and
//! `Retry-After`), and a write whose outcome the connection took with it is never reported as
//! failed without first looking whether it committed.

use openspp_aggregates::Identifier;

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
    /// Another stream's read-model status the command was decided on (`Stored::relies_on`)
    /// changed before it could commit; nothing was written. The command is to be decided again
    /// on what now holds (its facts are part of it, so retrying it as it is would not do).
    #[error("what the command was decided on changed meanwhile")]
    FactChanged,
    /// A status the command was decided on belongs to a stream the same batch writes: it was
    /// read as committed, but the batch changes it, so the decision cannot stand (a Bundle that
    /// moves a cycle on and entitles someone in it). Nothing was written.
    #[error("what the command was decided on is changed by the same batch")]
    FactChangedAlongside,
    #[error("stored event cannot be read: {0}")]
    Corrupt(String),
    /// The database could not be reached, or refused the connection (down, restarting, out of
    /// connections, the pool exhausted). Nothing was written: retrying is safe.
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The connection was lost while the write was being committed, and looking afterwards
    /// could not tell whether it had been: it may have been recorded. Not a failure.
    #[error("the connection was lost while committing; the write may have been recorded")]
    OutcomeUnknown,
    #[error(transparent)]
    Database(sqlx::Error),
}

impl<E: std::error::Error> From<sqlx::Error> for StoreError<E> {
    /// For statements that write nothing (loads): a lost connection there loses no write.
    fn from(error: sqlx::Error) -> Self {
        match Fault::of(&error) {
            Fault::Unavailable | Fault::Lost { .. } => Self::Unavailable(error),
            _ => Self::Database(error),
        }
    }
}

/// What a failed statement means for the append that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Another append took one of the stream positions (`events_stream_sequence`).
    StreamConflict,
    /// Another stream holds an identifier the append claims (`identifier_claims_unique`).
    IdentifierTaken,
    /// `hold_consent` found the consent relied on no longer in force (SQLSTATE OS001).
    ConsentLapsed,
    /// `hold_status` found a status the command was decided on changed (SQLSTATE OS002).
    FactChanged,
    /// A deadlock or serialization failure: nothing committed, the command may run again.
    Retry,
    /// The statement never reached a backend (pool exhausted or closed).
    Unavailable,
    /// The connection broke while the statement was out. `server_said` when the server itself
    /// reported it ended the session (it is shutting down or was told to), so the backend is
    /// gone; otherwise the backend may still be running the statement.
    Lost {
        server_said: bool,
    },
    Other,
}

impl Fault {
    pub fn of(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(db) => {
                let code = db.code();
                match (code.as_deref().unwrap_or_default(), db.constraint()) {
                    ("23505", Some("events_stream_sequence")) => Self::StreamConflict,
                    ("23505", Some("identifier_claims_unique")) => Self::IdentifierTaken,
                    ("OS001", _) => Self::ConsentLapsed,
                    ("OS002", _) => Self::FactChanged,
                    ("40P01" | "40001", _) => Self::Retry,
                    // Too many connections, or the server is starting: the session never began.
                    ("53300" | "57P03", _) => Self::Unavailable,
                    (code, _) if code.starts_with("08") || code.starts_with("57P") => {
                        Self::Lost { server_said: true }
                    }
                    _ => Self::Other,
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Self::Unavailable,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Lost { server_said: false },
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_faults_are_told_apart_from_other_faults() {
        assert_eq!(Fault::of(&sqlx::Error::PoolTimedOut), Fault::Unavailable);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Fault::of(&sqlx::Error::Io(refused)),
            Fault::Lost { server_said: false }
        );
        assert_eq!(Fault::of(&sqlx::Error::RowNotFound), Fault::Other);
        let load: StoreError<std::fmt::Error> = sqlx::Error::PoolClosed.into();
        assert!(matches!(load, StoreError::Unavailable(_)));
    }
}
