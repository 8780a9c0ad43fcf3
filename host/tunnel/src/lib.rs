//! The tunnel worker: connects to a tunnel, heartbeats to learn which channels it holds, and
//! runs one pipeline per channel that reads records from the channel's checkpoint, hands
//! each batch to a [`ChannelProcessor`], and checkpoints only after the processor says the
//! batch's effects are durable. The next batch is read while the current one is processed.
//!
//! Several workers (in one process or many) on one tunnel share its channels: the server
//! spreads them evenly and moves a dead worker's channels to the others after its heartbeat
//! timeout; they resume from the checkpoints, so a batch may be delivered twice but never
//! skipped.

mod channel;
mod worker;

pub use worker::{TunnelWorker, WorkerConfig, WorkerError};

use ots_client::tunnel::TunnelRecord;
use std::future::Future;

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

/// What the worker does with a channel after a batch was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Checkpoint the batch and go on.
    Continue,
    /// Do not checkpoint this batch; hold the channel idle until the worker stops (for an end
    /// time: records past it must not be consumed).
    Hold,
}

/// Why a batch could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    /// Whether the same batch may succeed if processed again (the worker backs off and
    /// retries it); otherwise the worker stops with an error.
    pub retriable: bool,
    /// What went wrong, naming the record or table where possible.
    pub message: String,
}

/// Turns a channel's batches into durable effects.
pub trait ChannelProcessor: Send + Sync + 'static {
    /// Processes one batch. Returns only when its effects are durable; the worker then
    /// checkpoints past it. A batch may be delivered again after a crash or a channel move.
    fn process(
        &self,
        batch: &RecordBatch,
    ) -> impl Future<Output = Result<Flow, ProcessError>> + Send;

    /// Called when the worker stops using a channel (moved, finished or shutting down).
    fn channel_closed(&self, _channel_id: &str) -> impl Future<Output = ()> + Send {
        async {}
    }
}
