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
