//! The wire error: what a failed call answers with, a service error code and a message.
//! Storage and decoding failures become `OTSInternalServerError` here, at one place.

use ots_protocol::error::ErrorCode;

/// An error answer of the service: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The service error code.
    pub code: ErrorCode,
    /// The message sent to the client.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `OTSParameterInvalid` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ParameterInvalid, message)
    }

    /// `OTSObjectNotExist` for a table, in the service's words (which do not name it).
    pub fn no_table() -> Self {
        Self::new(ErrorCode::ObjectNotExist, "Requested table does not exist.")
    }

    /// `OTSInternalServerError`: the server's own failure (storage, corrupt state).
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InternalServerError, format!("storage: {err}"))
    }
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(err: $t) -> Self {
                Self::internal(err)
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    ots_protocol::plainbuffer::PlainBufferError
);
