//! Why a command was refused. Field names are the API's JSON paths, so the HTTP layer can name
//! them without knowing the rules.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// The content breaks a rule (HTTP 422).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The command conflicts with the current state (HTTP 409).
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// The caller may not state this field (HTTP 403), though it may see the resource.
    #[error("{field}: {message}")]
    Forbidden { field: String, message: String },
    /// The command addresses something that does not exist (HTTP 404).
    #[error("{what} not found")]
    NotFound { what: String },
    /// A registration of a stream that already exists (HTTP 409).
    #[error("already registered")]
    AlreadyExists,
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Forbidden {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }
}
