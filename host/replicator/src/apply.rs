//! What happens to one batch of a channel's records: cut at the end time, run through the
//! processor, write durably. The tunnel worker checkpoints only after this returns `Ok`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ots_protocol::error::Retriability;
use ots_protocol::record::TunnelRecord;
use ots_tunnel::{Flow, RecordBatch, RecordSink, SinkError};

use crate::end_time::{EndTracker, records_before};
use crate::metrics::Metrics;
use crate::processor::{Changes, DeadLetterError, DeadLetters, Processor, ProcessorError};
use crate::tenants::{BacklogError, Tenants};
use crate::writer::{RowWriter, WriteError};

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The processor failed.
    #[error("processor {processor}")]
    Processor {
        /// Which processor.
        processor: String,
        /// What went wrong.
        #[source]
        source: ProcessorError,
    },
    /// Records the processor skipped could not be set aside.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// The destination write failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A tenant's backlog could not be read or written.
    #[error(transparent)]
    Backlog(#[from] BacklogError),
}

impl ApplyError {
    /// Whether applying the same batch again may succeed: a destination that is busy or
    /// unreachable, or a processor that asks for a retry; not a processor failure or a row the
    /// destination rejects.
    pub fn is_retriable(&self) -> bool {
        let client_error = match self {
            Self::Processor { source, .. } => return source.is_retriable(),
            // A full disk or a busy destination may clear; the batch is applied again as a whole
            // (every write of it is idempotent).
            Self::DeadLetter(_) => return true,
            Self::Backlog(error) => return error.is_retriable(),
            Self::Write(WriteError::Request { error, .. }) => error,
            Self::Write(WriteError::Rows { first, .. }) => first,
        };
        // Every write carries the source's timestamps, so resending is always safe.
        client_error.retriability() != Retriability::Never
    }
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every record was applied; the batch may be checkpointed.
    Applied,
    /// The records up to the end time were applied; a later one was committed after the end
    /// time, so the channel must stop here without checkpointing past it.
    ReachedEnd,
}

/// Applies batches of records to the destination.
pub struct BatchApplier {
    processor: Arc<dyn Processor>,
    dead_letters: Arc<DeadLetters>,
    writer: RowWriter,
    /// With `[tenants]`: each tenant's records go through its own chain instead.
    tenants: Option<Arc<Tenants>>,
    end_time: Option<DateTime<Utc>>,
    metrics: Arc<Metrics>,
    ends: Arc<EndTracker>,
}

impl BatchApplier {
    /// An applier writing through `writer`, setting skipped records aside in `dead_letters`;
    /// with `tenants`, each tenant's records go through the tenant's chain and destination.
    pub fn new(
        processor: Arc<dyn Processor>,
        dead_letters: Arc<DeadLetters>,
        writer: RowWriter,
        tenants: Option<Arc<Tenants>>,
        end_time: Option<DateTime<Utc>>,
        metrics: Arc<Metrics>,
        ends: Arc<EndTracker>,
    ) -> Self {
        Self {
            processor,
            dead_letters,
            writer,
            tenants,
            end_time,
            metrics,
            ends,
        }
    }

    /// Applies `records` of `channel` in order; returns once the written rows are durable.
    pub async fn apply(
        &self,
        channel: &str,
        records: &[TunnelRecord],
    ) -> Result<BatchOutcome, ApplyError> {
        let keep = records_before(records, self.end_time);
        let reached_end = keep < records.len();
        let records = &records[..keep];
        self.metrics.records_read(records.len());
        if !records.is_empty() {
            match &self.tenants {
                Some(tenants) => tenants.apply(channel, records).await?,
                None => self.process_and_write(channel, records).await?,
            }
            let base = records.iter().filter(|r| r.sequence_info.is_none()).count();
            self.metrics.base_rows_written(base);
            self.metrics.stream_records_applied(records.len() - base);
            if let Some(newest) = records.iter().rev().find_map(|r| r.sequence_info) {
                let lag_micros = Utc::now().timestamp_micros() - newest.timestamp;
                self.metrics.set_channel_lag(channel, lag_micros / 1000);
            }
        }
        if reached_end {
            self.ends.mark(channel);
            tracing::info!(channel, applied = keep, "channel reached the end time");
            Ok(BatchOutcome::ReachedEnd)
        } else {
            Ok(BatchOutcome::Applied)
        }
    }

    /// Runs `records` through the processor and writes what it made of them.
    async fn process_and_write(
        &self,
        channel: &str,
        records: &[TunnelRecord],
    ) -> Result<(), ApplyError> {
        let changes = self.processor.process(records).map_err(|source| {
            self.metrics.processor_failed(source.kind());
            tracing::warn!(
                channel,
                processor = self.processor.name(),
                kind = source.kind(),
                error = %source,
                "the processor failed on a batch"
            );
            ApplyError::Processor {
                processor: self.processor.name().to_owned(),
                source,
            }
        })?;
        self.metrics
            .records_dropped(records.len().saturating_sub(changes.rows.len()));
        let skipped = write_changes(changes, &self.dead_letters, &self.writer).await?;
        if skipped > 0 {
            tracing::warn!(
                channel,
                processor = self.processor.name(),
                skipped,
                "records set aside in the dead-letter sink"
            );
        }
        Ok(())
    }
}

/// Makes what a processor made of a batch durable: the records it skipped set aside in their
/// dead-letter sinks, then its row changes written through `writer`. Returns how many records
/// were set aside.
pub(crate) async fn write_changes(
    changes: Changes<'_>,
    dead_letters: &DeadLetters,
    writer: &RowWriter,
) -> Result<usize, ApplyError> {
    if !changes.skipped.is_empty() {
        dead_letters.set_aside(&changes.skipped).await?;
    }
    writer.write_routed(changes.rows, changes.tables).await?;
    Ok(changes.skipped.len())
}

/// The tunnel worker hands each channel's batches here; it checkpoints only after
/// `Flow::Continue`, which is returned once the rows are durable.
impl RecordSink for BatchApplier {
    async fn take(&self, batch: &RecordBatch) -> Result<Flow, SinkError> {
        match self.apply(&batch.channel_id, &batch.records).await {
            Ok(BatchOutcome::Applied) => Ok(Flow::Continue),
            Ok(BatchOutcome::ReachedEnd) => Ok(Flow::Hold),
            Err(error) => Err(SinkError::new(error.is_retriable(), error)),
        }
    }
}
