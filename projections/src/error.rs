//! What can go wrong building or following read models. Kept apart from the modules that raise
//! them, so that no read model depends on the runner (or the runner on a read model) for its
//! error type.

/// A stored event (or a stored state) that the domain types cannot read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{aggregate_type} event {sequence} cannot be read: {reason}")]
pub struct Undecodable {
    pub aggregate_type: String,
    pub sequence: i64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Undecodable(#[from] Undecodable),
    #[error("another follower moved the checkpoint")]
    CheckpointMoved,
}

/// Why a rebuild could not run.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a running server holds the feed (and writes the read models); stop it first")]
    ProjectorRunning,
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

impl From<sqlx::Error> for RebuildError {
    fn from(error: sqlx::Error) -> Self {
        Self::Projection(error.into())
    }
}

/// Whether `error` says the database could not be used just now (rather than that the request
/// or the server is wrong): the connection was lost, refused or never made, the pool had none
/// to give, or the server answered with a SQLSTATE of the kinds that mean "try again": class
/// 08 (connection exception), 53 (insufficient resources: too many connections, disk full, out
/// of memory), 57P01–57P03 (terminated by an administrator or a crash, not accepting
/// connections yet), 57014 (cancelled, as a statement timeout does), and 40001/40P01 (a
/// serialization failure or deadlock, which a retry resolves).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}
