//! The change log's sink: the tunnel worker hands each channel's batches here, and a batch is
//! acknowledged (and so checkpointed) only once a segment holding it and the manifest listing
//! that segment are stored. Batches that arrive while a segment is being written go together
//! into the next one (group commit), so a busy table makes few large segments and a quiet one
//! small ones without waiting.

use std::sync::{Arc, Mutex};

use ots_tunnel::{Flow, RecordBatch, RecordSink, SinkError};
use tokio::sync::{Notify, oneshot};

use crate::journal::Journal;
use crate::segment::Entry;
use crate::store::StoreError;

/// A batch waiting for its segment.
struct Pending {
    entries: Vec<Entry>,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// Collects batches for the writer task.
#[derive(Default)]
pub(crate) struct LogSink {
    pending: Mutex<Vec<Pending>>,
    wake: Notify,
}

/// The writer task stopped before the batch was stored.
#[derive(Debug, thiserror::Error)]
#[error("the backup's log writer stopped before the batch was stored")]
struct WriterGone;

impl RecordSink for LogSink {
    async fn take(&self, batch: &RecordBatch) -> Result<Flow, SinkError> {
        if batch.records.is_empty() {
            return Ok(Flow::Continue);
        }
        let (done, stored) = oneshot::channel();
        let entries = batch
            .records
            .iter()
            .map(|record| Entry {
                channel: batch.channel_id.clone(),
                record: record.clone(),
            })
            .collect();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending { entries, done });
        self.wake.notify_one();
        match stored.await {
            Ok(Ok(())) => Ok(Flow::Continue),
            // The store may come back: the worker retries the batch.
            Ok(Err(error)) => Err(SinkError::new(true, error)),
            Err(_) => Err(SinkError::new(true, WriterGone)),
        }
    }
}

impl LogSink {
    /// Writes the waiting batches, one segment per round, until dropped.
    pub(crate) async fn write_loop(&self, journal: &Journal) {
        loop {
            self.wake.notified().await;
            loop {
                let batches =
                    std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
                if batches.is_empty() {
                    break;
                }
                let entries: Vec<Entry> = batches
                    .iter()
                    .flat_map(|p| p.entries.iter().cloned())
                    .collect();
                let result = journal.append_log(&entries).await.map_err(Arc::new);
                if let Err(error) = &result {
                    tracing::warn!(%error, records = entries.len(), "writing a log segment failed; the batches will be retried");
                }
                for batch in batches {
                    let _ = batch.done.send(result.clone());
                }
            }
        }
    }
}
