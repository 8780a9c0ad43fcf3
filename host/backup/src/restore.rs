//! A restore to an instant: the newest snapshot finished by then, and the log's changes from
//! the snapshot's start (less the margin) to the end of the instant's millisecond replayed
//! over it, into a new table.
//!
//! Why the replay gives the table as it was: every stream record sets or removes cells (a
//! put of cells with their versions, a row replaced or deleted, a version or a column
//! deleted), so a cell's value after a run of records depends only on the last record of the
//! run that touches it, or, if none does, on the value before the run. A snapshot row read at
//! some instant reflects the records up to then; the replay starts before any record the row
//! might not reflect and goes on through every later one, so each cell ends as the last
//! record up to the instant left it, or as it was before the replay if no record touched it
//! (and then the snapshot holds it as it was). Records are replayed in the order they were
//! stored: a channel's own order, and a parent partition's before its children's, which the
//! tunnel delivers only after the parent is done. A record stored twice (delivered again
//! after a crash) is replayed once, its first time.
//!
//! One exception, from a column's max versions: a version older than those the column keeps is
//! discarded when written, so a later deletion of a newer version does not bring it back in the
//! source, but a replay over a row that has lost the newer ones may keep it. Writes with current
//! timestamps never do this (docs/backup.md, "Limits").
//!
//! Nothing is created before every object the restore reads is checked; a restore that fails
//! afterwards deletes the table it created, so no partial table is left behind.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use ots_client::{Client, ClientError};
use ots_protocol::error::ErrorCode;
use ots_protocol::model::RowChange;
use ots_protocol::plainbuffer::SequenceInfo;
use ots_replicator::metrics::Metrics;
use ots_replicator::setup::destination_table_request;
use ots_replicator::writer::{RowWriter, WriteError};

use crate::Progress;
use crate::manifest::{PlanError, RestorePlan, SegmentRef};
use crate::segment::SegmentKind;
use crate::store::{BackupStore, StoreError};

/// Snapshot segments loaded at once.
const PARALLEL_SEGMENTS: usize = 4;

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The instant; its millisecond is included whole.
    pub to: DateTime<Utc>,
    /// The table to create.
    pub table: String,
    /// Rows per BatchWriteRow.
    pub batch_write_count: usize,
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup store failed, or an object is missing or damaged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backup cannot restore that instant.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The table exists: a restore only creates tables.
    #[error("table {0} exists; a restore creates a new table, so name one that does not exist")]
    TableExists(String),
    /// A call to the destination failed.
    #[error("{action}: {error}")]
    Destination {
        /// What was being done.
        action: String,
        /// The failure.
        error: ClientError,
    },
    /// Writing rows failed; the partial table was deleted.
    #[error("writing the restored rows failed (the partial table {table} was deleted): {error}")]
    Write {
        /// The table.
        table: String,
        /// The failure.
        error: WriteError,
    },
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The table created.
    pub table: String,
    /// The instant restored, ms.
    pub to_ms: i64,
    /// The snapshot loaded.
    pub snapshot: u64,
    /// Its rows.
    pub snapshot_rows: u64,
    /// Change records replayed over it.
    pub replayed: u64,
    /// Records stored twice and replayed once.
    pub duplicates: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl std::fmt::Display for RestoreSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "restored table {} as of {} in {:.1}s: {} rows of snapshot {}, {} changes replayed ({} duplicates skipped)",
            self.table,
            crate::manifest::ms_text(self.to_ms),
            self.elapsed.as_secs_f64(),
            self.snapshot_rows,
            self.snapshot,
            self.replayed,
            self.duplicates,
        )
    }
}

fn destination_error(action: impl Into<String>) -> impl FnOnce(ClientError) -> RestoreError {
    let action = action.into();
    move |error| RestoreError::Destination { action, error }
}

/// The log segments a plan reads, in stored order: the sealed runs', then the open tail's.
async fn log_segments(
    store: &BackupStore,
    plan: &RestorePlan,
) -> Result<Vec<SegmentRef>, StoreError> {
    let mut segments = Vec::new();
    for index in &plan.indexes {
        segments.extend(
            store
                .read_index(index)
                .await?
                .into_iter()
                .filter(|s| s.first_us <= plan.replay_until_us && s.last_us >= plan.replay_from_us),
        );
    }
    segments.extend(plan.segments.iter().cloned());
    Ok(segments)
}

/// Restores the backup in `store` to `options.to` as a new table on `destination`.
pub async fn restore(
    store: &BackupStore,
    destination: &Client,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let manifest = store.load_manifest().await?;
    let to_ms = options.to.timestamp_millis();
    let plan = manifest.plan(to_ms)?;
    let schema = store.schema(&manifest)?;
    let log = log_segments(store, &plan).await?;

    // Check everything before creating anything.
    let objects = plan.snapshot.segments.len() + log.len();
    progress.begin("checking the backup", Some(objects as u64));
    for segment in &plan.snapshot.segments {
        store.read_segment(segment, SegmentKind::Snapshot).await?;
        progress.advance(1);
    }
    for segment in &log {
        store.read_segment(segment, SegmentKind::Log).await?;
        progress.advance(1);
    }
    progress.end();
    match destination.describe_table(&options.table).await {
        Ok(_) => return Err(RestoreError::TableExists(options.table.clone())),
        Err(e) if e.is(ErrorCode::ObjectNotExist) => {}
        Err(e) => {
            return Err(destination_error(format!(
                "checking that table {} does not exist",
                options.table
            ))(e));
        }
    }
    destination
        .create_table(&destination_table_request(&schema, &options.table))
        .await
        .map_err(destination_error(format!(
            "creating table {}",
            options.table
        )))?;
    tracing::info!(table = %options.table, snapshot = plan.snapshot.id, "restoring");

    let writer = RowWriter::new(
        destination.clone(),
        options.table.clone(),
        options.batch_write_count,
        Arc::new(Metrics::default()),
    );
    let result = fill(store, &writer, &plan, &log, progress).await;
    let (replayed, duplicates) = match result {
        Ok(counts) => counts,
        Err(error) => {
            if let Err(delete) = destination.delete_table(&options.table).await {
                tracing::error!(table = %options.table, error = %delete, "deleting the partial table failed; delete it by hand");
            }
            return Err(match error {
                Fill::Store(e) => RestoreError::Store(e),
                Fill::Write(error) => RestoreError::Write {
                    table: options.table.clone(),
                    error,
                },
            });
        }
    };
    Ok(RestoreSummary {
        table: options.table.clone(),
        to_ms,
        snapshot: plan.snapshot.id,
        snapshot_rows: plan.snapshot.rows,
        replayed,
        duplicates,
        elapsed: started.elapsed(),
    })
}

/// Why filling the new table stopped.
enum Fill {
    Store(StoreError),
    Write(WriteError),
}

/// Loads the snapshot, then replays the log; returns the records replayed and the
/// duplicates skipped.
async fn fill(
    store: &BackupStore,
    writer: &RowWriter,
    plan: &RestorePlan,
    log: &[SegmentRef],
    progress: &dyn Progress,
) -> Result<(u64, u64), Fill> {
    progress.begin(
        &format!("loading snapshot {}", plan.snapshot.id),
        Some(plan.snapshot.rows),
    );
    futures::stream::iter(&plan.snapshot.segments)
        .map(|segment| async move {
            let entries = store
                .read_segment(segment, SegmentKind::Snapshot)
                .await
                .map_err(Fill::Store)?;
            let rows: Vec<RowChange> = entries.into_iter().map(|e| e.record.change).collect();
            writer.write(&rows).await.map_err(Fill::Write)?;
            progress.advance(rows.len() as u64);
            Ok::<_, Fill>(())
        })
        .buffer_unordered(PARALLEL_SEGMENTS)
        .try_collect::<Vec<()>>()
        .await?;
    progress.end();

    let total: u64 = log.iter().map(|s| s.entries).sum();
    progress.begin("replaying the change log", Some(total));
    let mut seen: HashSet<(String, SequenceInfo)> = HashSet::new();
    let (mut replayed, mut duplicates) = (0, 0);
    for segment in log {
        let entries = store
            .read_segment(segment, SegmentKind::Log)
            .await
            .map_err(Fill::Store)?;
        let read = entries.len() as u64;
        let mut changes = Vec::new();
        for entry in entries {
            let Some(info) = entry.record.sequence_info else {
                continue;
            };
            if info.timestamp < plan.replay_from_us || info.timestamp > plan.replay_until_us {
                continue;
            }
            if !seen.insert((entry.channel, info)) {
                duplicates += 1;
                continue;
            }
            changes.push(entry.record.change);
        }
        writer.write(&changes).await.map_err(Fill::Write)?;
        replayed += changes.len() as u64;
        progress.advance(read);
    }
    progress.end();
    Ok((replayed, duplicates))
}
