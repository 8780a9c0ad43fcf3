//! The tunnel worker: connects to a tunnel, heartbeats to learn which channels it holds, and
//! runs one pipeline per channel that reads records from the channel's checkpoint, hands
//! each batch to a [`RecordSink`], and checkpoints only after the sink says the batch's
//! effects are durable. The next batch is read while the current one is taken, within a byte
//! budget all the worker's channels share.
//!
//! Several workers (in one process or many) on one tunnel share its channels: the server
//! spreads them evenly and moves a dead worker's channels to the others after its heartbeat
//! timeout; they resume from the checkpoints, so a batch may be delivered twice but never
//! skipped.

mod budget;
mod channel;
pub mod session;
mod worker;

pub use session::Session;
pub use worker::{TunnelWorker, WorkerConfig, WorkerError};

use std::future::Future;
use std::sync::Arc;

use ots_protocol::record::TunnelRecord;

/// Records read from one channel, in channel order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordBatch {
    /// The channel they come from.
    pub channel_id: String,
    /// The records (may be empty when the batch only ends the channel).
    pub records: Vec<TunnelRecord>,
    /// Whether this batch is the channel's last.
    pub ends_channel: bool,
}

/// What the worker does with a channel after a batch was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Checkpoint the batch and go on.
    Continue,
    /// Do not checkpoint this batch; hold the channel idle until the worker stops (for an end
    /// time: records past it must not be consumed).
    Hold,
}

/// Why a sink could not take a batch. It keeps the sink's own error as its source, so the
/// worker's error and logs carry it whole (its kind and its cause), formatted once.
#[derive(Debug, Clone)]
pub struct SinkError {
    /// Whether the same batch may succeed if taken again (the worker backs off and retries
    /// it); otherwise the worker stops with an error.
    pub retriable: bool,
    /// What went wrong.
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

impl SinkError {
    /// A failure of the sink, retriable or not.
    pub fn new(retriable: bool, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            retriable,
            source: Arc::new(source),
        }
    }
}

/// Shows the sink's error itself: a `SinkError` only adds whether to retry.
impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// Where a channel's batches go: turns them into durable effects.
pub trait RecordSink: Send + Sync + 'static {
    /// Takes one batch. Returns only when its effects are durable; the worker then
    /// checkpoints past it. A batch may be delivered again after a crash or a channel move.
    fn take(&self, batch: &RecordBatch) -> impl Future<Output = Result<Flow, SinkError>> + Send;

    /// Called when the worker stops using a channel (moved, finished or shutting down).
    fn channel_closed(&self, _channel_id: &str) -> impl Future<Output = ()> + Send {
        async {}
    }
}
