//! What happens to one batch of a channel's records: cut at the end time, transform through
//! the processor, write durably. The tunnel worker checkpoints only after this returns `Ok`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ots_client::tunnel::TunnelRecord;
use ots_protocol::model::RowChange;

use ots_protocol::error::Retriability;
use ots_tunnel::{ChannelProcessor, Flow, ProcessError, RecordBatch};

use crate::metrics::Metrics;
use crate::writer::{RowWriter, WriteError};

/// Turns a batch of records into the row changes to write (the sandboxed guest in production).
pub trait RecordTransform: Send + Sync {
    /// The row changes for `records`, in the records' order.
    fn transform(&self, records: &[TunnelRecord]) -> Result<Vec<RowChange>, TransformError>;
}

/// The processor failed on a batch.
#[derive(Debug, thiserror::Error)]
#[error("processor {processor} failed: {reason}")]
pub struct TransformError {
    /// Which processor.
    pub processor: String,
    /// What went wrong.
    pub reason: String,
    /// Whether processing the batch again later may succeed.
    pub retriable: bool,
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The processor failed.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The destination write failed.
    #[error(transparent)]
    Write(#[from] WriteError),
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

/// How many leading records of `records` were committed at or before `end_time`. Records
/// without a commit time (the base data) always count.
pub fn records_before(records: &[TunnelRecord], end_time: Option<DateTime<Utc>>) -> usize {
    let Some(end) = end_time else {
        return records.len();
    };
    let end_micros = end.timestamp_micros();
    records
        .iter()
        .position(|r| r.sequence_info.is_some_and(|s| s.timestamp > end_micros))
        .unwrap_or(records.len())
}

/// The channels that met a record committed after the end time, shared by the processors and
/// the monitor of one process.
#[derive(Debug, Default)]
pub struct EndTracker {
    reached: Mutex<BTreeSet<String>>,
}

impl EndTracker {
    /// Notes that `channel` reached the end time.
    pub fn mark(&self, channel: &str) {
        if let Ok(mut reached) = self.reached.lock() {
            reached.insert(channel.to_owned());
        }
    }

    /// Whether `channel` reached the end time in this process.
    pub fn has_reached(&self, channel: &str) -> bool {
        self.reached
            .lock()
            .map(|r| r.contains(channel))
            .unwrap_or(false)
    }
}

/// Applies batches of records to the destination.
pub struct BatchApplier {
    transform: Arc<dyn RecordTransform>,
    writer: RowWriter,
    end_time: Option<DateTime<Utc>>,
    metrics: Arc<Metrics>,
    ends: Arc<EndTracker>,
}

impl BatchApplier {
    /// An applier writing through `writer`.
    pub fn new(
        transform: Arc<dyn RecordTransform>,
        writer: RowWriter,
        end_time: Option<DateTime<Utc>>,
        metrics: Arc<Metrics>,
        ends: Arc<EndTracker>,
    ) -> Self {
        Self {
            transform,
            writer,
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
            let changes = self.transform.transform(records)?;
            self.metrics
                .records_dropped(records.len().saturating_sub(changes.len()));
            self.writer.write(&changes).await?;
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
}

impl ApplyError {
    /// Whether applying the same batch again may succeed: a destination that is busy or
    /// unreachable, or a processor that asks for a retry; not a processor failure or a row the
    /// destination rejects.
    pub fn is_retriable(&self) -> bool {
        let client_error = match self {
            Self::Transform(error) => return error.retriable,
            Self::Write(WriteError::Request { error, .. }) => error,
            Self::Write(WriteError::Rows { first, .. }) => first,
        };
        // Every write carries the source's timestamps, so resending is always safe.
        client_error.retriability() != Retriability::Never
    }
}

/// The tunnel worker hands each channel's batches here; the worker checkpoints only after
/// `Flow::Continue`, which is returned once the rows are durable.
impl ChannelProcessor for BatchApplier {
    async fn process(&self, batch: &RecordBatch) -> Result<Flow, ProcessError> {
        match self.apply(&batch.channel_id, &batch.records).await {
            Ok(BatchOutcome::Applied) => Ok(Flow::Continue),
            Ok(BatchOutcome::ReachedEnd) => Ok(Flow::Hold),
            Err(error) => Err(ProcessError {
                retriable: error.is_retriable(),
                message: error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue};
    use ots_protocol::plainbuffer::SequenceInfo;

    fn record(commit_micros: Option<i64>) -> TunnelRecord {
        TunnelRecord {
            change: RowChange::Delete {
                primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::Integer(1),
                }]),
            },
            sequence_info: commit_micros.map(|timestamp| SequenceInfo {
                epoch: 0,
                timestamp,
                row_index: 0,
            }),
        }
    }

    #[test]
    fn records_after_the_end_time_are_cut_off() {
        let end = DateTime::<Utc>::from_timestamp_micros(2_000_000).unwrap();
        let records = vec![
            record(None),
            record(Some(1_000_000)),
            record(Some(2_000_000)),
            record(Some(2_000_001)),
            record(Some(1_500_000)),
        ];
        assert_eq!(
            records_before(&records, Some(end)),
            3,
            "the record at the end time is kept"
        );
        assert_eq!(records_before(&records, None), 5);
        assert_eq!(records_before(&records[3..], Some(end)), 0);
        assert_eq!(
            records_before(&[record(None)], Some(end)),
            1,
            "base data has no commit time"
        );
    }

    #[test]
    fn the_tracker_remembers_channels() {
        let tracker = EndTracker::default();
        tracker.mark("a");
        assert!(tracker.has_reached("a"));
        assert!(!tracker.has_reached("b"));
    }
}
