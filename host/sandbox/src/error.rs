//! Sandbox failures: each names the guest and, where one is to blame, the record.

use std::fmt;

/// A guest failed, misbehaved or could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("guest `{guest}`: {kind}{}", at_record(.record))]
pub struct SandboxError {
    /// The guest's name.
    pub guest: String,
    /// What happened.
    pub kind: SandboxErrorKind,
    /// The record concerned: its position in the batch and its primary key, or the batch's
    /// key range when no single record is to blame.
    pub record: Option<String>,
}

fn at_record(record: &Option<String>) -> String {
    record
        .as_ref()
        .map(|r| format!(" (at {r})"))
        .unwrap_or_default()
}

impl SandboxError {
    /// Whether processing the batch again later may succeed (the guest asked for a retry).
    pub fn is_retriable(&self) -> bool {
        matches!(self.kind, SandboxErrorKind::Failed { retry: true, .. })
    }
}

/// The kinds of sandbox failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxErrorKind {
    /// The guest file could not be read or is not a valid component of the WIT world.
    Load(String),
    /// The guest's `init` rejected its options.
    Init(String),
    /// The guest trapped (a panic, an invalid memory access, ...).
    Trap(String),
    /// A call ran past its deadline.
    Timeout {
        /// The deadline in milliseconds.
        millis: u128,
    },
    /// The guest tried to grow its memory past the limit.
    MemoryLimit {
        /// The limit in bytes.
        bytes: usize,
    },
    /// The guest returned something that is not a valid row change.
    InvalidOutput(String),
    /// The guest reported a failure.
    Failed {
        /// Its message.
        message: String,
        /// Whether it asked for a retry (otherwise it asked to stop).
        retry: bool,
    },
}

impl SandboxErrorKind {
    /// A short, stable name of the kind, for metric labels and log fields.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Load(_) => "load",
            Self::Init(_) => "init",
            Self::Trap(_) => "trap",
            Self::Timeout { .. } => "deadline",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::InvalidOutput(_) => "invalid_output",
            Self::Failed { retry: true, .. } => "guest_retry",
            Self::Failed { retry: false, .. } => "guest_stop",
        }
    }
}

impl fmt::Display for SandboxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(m) => write!(f, "cannot load: {m}"),
            Self::Init(m) => write!(f, "rejected its options: {m}"),
            Self::Trap(m) => write!(f, "trapped: {m}"),
            Self::Timeout { millis } => write!(f, "ran past its {millis} ms deadline"),
            Self::MemoryLimit { bytes } => {
                write!(
                    f,
                    "tried to use more than its {} MiB memory limit",
                    bytes >> 20
                )
            }
            Self::InvalidOutput(m) => write!(f, "returned an invalid row change: {m}"),
            Self::Failed { message, retry } => write!(
                f,
                "failed ({}): {message}",
                if *retry {
                    "asks for a retry"
                } else {
                    "asks to stop"
                }
            ),
        }
    }
}
