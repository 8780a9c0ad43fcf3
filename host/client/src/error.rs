use ots_protocol::error::{ErrorCode, Retriability};
use ots_protocol::plainbuffer::PlainBufferError;

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error.
    #[error("{code} (HTTP {http_status}): {message}{}", request_id.as_deref().map(|r| format!(" [request {r}]")).unwrap_or_default())]
    Service {
        /// The `OTS*` error code.
        code: ErrorCode,
        /// The service's message.
        message: String,
        /// The `x-ots-requestid` of the answer, if any.
        request_id: Option<String>,
        /// The HTTP status.
        http_status: u16,
    },
    /// The request did not get an answer (connection refused, reset, timeout).
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was not the protobuf message expected.
    #[error("cannot decode the answer to {path}: {reason}")]
    Decode {
        /// API path.
        path: String,
        /// Decoder message.
        reason: String,
    },
    /// A row in the answer is not valid PlainBuffer.
    #[error("invalid row in the answer: {0}")]
    PlainBuffer(#[from] PlainBufferError),
    /// The answer failed an integrity check.
    #[error("invalid answer: {0}")]
    InvalidResponse(String),
    /// The caller asked for something the protocol cannot express.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// Whether sending the request again could succeed.
    pub fn retriability(&self) -> Retriability {
        match self {
            Self::Service {
                code,
                message,
                http_status,
                ..
            } => code.retriability(message, *http_status),
            Self::Transport(_) => Retriability::IfIdempotent,
            Self::Decode { .. }
            | Self::PlainBuffer(_)
            | Self::InvalidResponse(_)
            | Self::InvalidArgument(_) => Retriability::Never,
        }
    }

    /// The service error code, if the service answered with one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the service answered with `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == Some(&code)
    }
}
