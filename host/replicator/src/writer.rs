//! The batching writer: applies a channel's row changes to the destination with BatchWriteRow,
//! in order, resending only the rows that failed.
//!
//! BatchWriteRow rejects two changes to one primary key in a request and gives no order among
//! the rows of a request, so a batch is cut into sub-batches of at most `batchWriteCount` rows
//! that never hold a key twice. Sub-batches that share no key are written concurrently (a
//! wave), waves one after another: a busy channel is not held to one request at a time, and
//! every key's changes still land in order.

use std::borrow::{Borrow, Cow};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::try_join_all;
use ots_client::{Client, ClientError};
use ots_protocol::model::{ColumnOp, PrimaryKey, PrimaryKeyValue, RowChange, Value};

use crate::metrics::Metrics;

/// Why a batch could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The whole request failed (after the client's retries).
    #[error("BatchWriteRow to table {table} failed: {error}")]
    Request {
        /// Destination table.
        table: String,
        /// The failure.
        error: ClientError,
    },
    /// Some rows still failed after their retries.
    #[error("{failed} row(s) could not be written to table {table}; first error: {first}")]
    Rows {
        /// Destination table.
        table: String,
        /// How many rows failed.
        failed: usize,
        /// The first row's error.
        first: ClientError,
    },
}

/// The primary keys of a sub-batch or a wave. Every change of every batch is hashed into one, so
/// with foldhash rather than SipHash (the std default, 2.3 % of the copier's CPU in a copy):
/// still randomly seeded, so keys a source holds cannot be chosen to collide.
type KeySet<'a> = HashSet<&'a PrimaryKey, foldhash::fast::RandomState>;

/// Cuts `changes` into consecutive ranges of at most `max` changes, none of which holds two
/// changes to the same primary key, so each range can go in one BatchWriteRow while the
/// ranges, written in order, keep every key's changes in order.
pub fn split_batches(changes: &[impl Borrow<RowChange>], max: usize) -> Vec<Range<usize>> {
    let max = max.max(1);
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut keys = KeySet::default();
    for (i, change) in changes.iter().map(Borrow::borrow).enumerate() {
        if i - start == max || keys.contains(change.primary_key()) {
            ranges.push(start..i);
            start = i;
            keys.clear();
        }
        keys.insert(change.primary_key());
    }
    if start < changes.len() {
        ranges.push(start..changes.len());
    }
    ranges
}

/// Most BatchWriteRow requests of one batch in flight at once.
pub const MAX_CONCURRENT_REQUESTS: usize = 8;

/// Most bytes of row changes (as [`change_bytes`] estimates them) of one batch in flight at
/// once, so that concurrency never holds more than this of encoded requests per channel.
pub const MAX_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// Groups consecutive `ranges` of `changes` (from [`split_batches`]) into waves whose ranges
/// share no primary key, so a wave's ranges can be written concurrently while the waves, written
/// in order, keep every key's changes in order. A wave holds at most `max_requests` ranges and,
/// past its first range, at most `max_bytes` of changes.
pub fn waves(
    changes: &[impl Borrow<RowChange>],
    ranges: Vec<Range<usize>>,
    max_requests: usize,
    max_bytes: usize,
) -> Vec<Vec<Range<usize>>> {
    let mut waves = Vec::new();
    let mut wave: Vec<Range<usize>> = Vec::new();
    let mut keys = KeySet::default();
    let mut bytes = 0;
    for range in ranges {
        let part = || changes[range.clone()].iter().map(Borrow::borrow);
        let size: usize = part().map(change_bytes).sum();
        let conflicts = || part().any(|c| keys.contains(c.primary_key()));
        if !wave.is_empty()
            && (wave.len() >= max_requests.max(1) || bytes + size > max_bytes || conflicts())
        {
            waves.push(std::mem::take(&mut wave));
            keys.clear();
            bytes = 0;
        }
        keys.extend(part().map(RowChange::primary_key));
        bytes += size;
        wave.push(range);
    }
    if !wave.is_empty() {
        waves.push(wave);
    }
    waves
}

/// About how many bytes a change takes on the wire: names and values, without framing.
pub fn change_bytes(change: &RowChange) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Binary(b) => b.len(),
            Value::Integer(_) | Value::Double(_) => 8,
            Value::Boolean(_) => 1,
        }
    }
    let key: usize = change
        .primary_key()
        .0
        .iter()
        .map(|c| {
            c.name.len()
                + match &c.value {
                    PrimaryKeyValue::String(s) => s.len(),
                    PrimaryKeyValue::Binary(b) => b.len(),
                    _ => 8,
                }
        })
        .sum();
    key + match change {
        RowChange::Put { cells, .. } => cells
            .iter()
            .map(|c| c.name.len() + value(&c.value) + 8)
            .sum(),
        RowChange::Update { updates, .. } => updates
            .iter()
            .map(|u| {
                u.name.len()
                    + match &u.op {
                        ColumnOp::Put { value: v, .. } => value(v) + 8,
                        _ => 8,
                    }
            })
            .sum(),
        RowChange::Delete { .. } => 0,
    }
}

/// Whether writing `change` twice leaves the same row as writing it once: true when every cell
/// carries an explicit timestamp and no column is incremented.
pub fn is_idempotent(change: &RowChange) -> bool {
    match change {
        RowChange::Put { cells, .. } => cells.iter().all(|c| c.timestamp.is_some()),
        RowChange::Update { updates, .. } => updates.iter().all(|u| match &u.op {
            ColumnOp::Put { timestamp, .. } => timestamp.is_some(),
            ColumnOp::DeleteOneVersion { .. } | ColumnOp::DeleteAllVersions => true,
            ColumnOp::Increment { .. } => false,
        }),
        RowChange::Delete { .. } => true,
    }
}

/// Writes row changes to the destination table, or to the tables a processor routed them to.
#[derive(Debug, Clone)]
pub struct RowWriter {
    client: Client,
    table: String,
    batch_size: usize,
    metrics: Arc<Metrics>,
}

impl RowWriter {
    /// A writer of `table` (the destination) sending at most `batch_size` rows per request.
    pub fn new(client: Client, table: String, batch_size: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            table,
            batch_size,
            metrics,
        }
    }

    /// The same writer, writing to `table` instead.
    pub fn to_table(&self, table: String) -> Self {
        Self {
            table,
            ..self.clone()
        }
    }

    /// Applies `changes` to the destination in order; returns once every one is durable, or
    /// at the first failure.
    pub async fn write(&self, changes: &[impl Borrow<RowChange> + Sync]) -> Result<(), WriteError> {
        self.write_to(&self.table, changes).await
    }

    /// Applies `changes` in order, each to its table in `tables` (`None`: the destination).
    /// Tables are written one after another, each table's changes in their order.
    pub async fn write_routed(
        &self,
        changes: Vec<Cow<'_, RowChange>>,
        tables: Vec<Option<Arc<str>>>,
    ) -> Result<(), WriteError> {
        if tables.iter().all(Option::is_none) {
            return self.write(&changes).await;
        }
        // Grouped by the table written, so a guest naming the destination itself still has
        // that table's changes written in their order.
        let mut routed: Vec<(&str, Vec<Cow<'_, RowChange>>)> = Vec::new();
        for (change, table) in changes.into_iter().zip(&tables) {
            let table = table.as_deref().unwrap_or(&self.table);
            match routed.iter_mut().find(|(t, _)| *t == table) {
                Some((_, list)) => list.push(change),
                None => routed.push((table, vec![change])),
            }
        }
        for (table, changes) in routed {
            self.write_to(table, &changes).await?;
        }
        Ok(())
    }

    async fn write_to(
        &self,
        table: &str,
        changes: &[impl Borrow<RowChange> + Sync],
    ) -> Result<(), WriteError> {
        let ranges = split_batches(changes, self.batch_size);
        for wave in waves(
            changes,
            ranges,
            MAX_CONCURRENT_REQUESTS,
            MAX_IN_FLIGHT_BYTES,
        ) {
            // A failure drops the wave's other requests; the batch is applied again whole, and
            // every write of it is idempotent.
            try_join_all(
                wave.into_iter()
                    .map(|range| self.write_batch(table, &changes[range])),
            )
            .await?;
        }
        Ok(())
    }

    async fn write_batch(
        &self,
        table: &str,
        batch: &[impl Borrow<RowChange> + Sync],
    ) -> Result<(), WriteError> {
        let started = Instant::now();
        let request_error = |error| WriteError::Request {
            table: table.to_owned(),
            error,
        };
        let first = self
            .client
            .batch_write_row(table, batch)
            .await
            .map_err(request_error)?;
        let failed: Vec<usize> = first
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.is_err().then_some(i))
            .collect();
        if !failed.is_empty() {
            self.metrics.rows_retried(failed.len());
            let retry: Vec<&RowChange> = failed.iter().map(|&i| batch[i].borrow()).collect();
            let idempotent = retry.iter().all(|c| is_idempotent(c));
            tracing::debug!(
                table,
                rows = retry.len(),
                idempotent,
                "resending failed rows"
            );
            let outcomes = self
                .client
                .write_rows_with_retry(table, &retry, idempotent)
                .await
                .map_err(request_error)?;
            let mut errors = outcomes.into_iter().filter_map(Result::err);
            if let Some(first) = errors.next() {
                return Err(WriteError::Rows {
                    table: table.to_owned(),
                    failed: 1 + errors.count(),
                    first,
                });
            }
        }
        self.metrics.rows_written(batch.len());
        self.metrics.batch_written(started.elapsed());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::{Cell, ColumnUpdate, PrimaryKeyColumn};

    fn put(id: i64) -> RowChange {
        RowChange::Put {
            primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::Integer(id),
            }]),
            cells: vec![Cell {
                name: "c".into(),
                value: Value::Integer(id),
                timestamp: Some(1),
            }],
        }
    }

    #[test]
    fn batches_split_at_the_size_limit_and_at_repeated_keys() {
        let ids = [1, 2, 3, 2, 4, 5, 6, 7, 7, 8];
        let changes: Vec<RowChange> = ids.iter().map(|&i| put(i)).collect();
        assert_eq!(
            split_batches(&changes, 3),
            vec![0..3, 3..6, 6..8, 8..10],
            "a new batch starts at the 4th row (size), at the repeated 2 and at the repeated 7"
        );
        assert_eq!(split_batches(&changes, 200), vec![0..3, 3..8, 8..10]);
        assert!(split_batches(&[] as &[RowChange], 10).is_empty());
        for range in split_batches(&changes, 4) {
            let keys: HashSet<_> = changes[range.clone()]
                .iter()
                .map(|c| c.primary_key())
                .collect();
            assert_eq!(keys.len(), range.len());
        }
    }

    #[test]
    fn waves_share_no_key_and_keep_each_keys_changes_in_order() {
        let ids = [1, 2, 3, 4, 2, 5, 6, 7, 8, 9, 1, 10];
        let changes: Vec<RowChange> = ids.iter().map(|&i| put(i)).collect();
        let ranges = split_batches(&changes, 2);
        assert_eq!(ranges, vec![0..2, 2..4, 4..6, 6..8, 8..10, 10..12]);
        assert_eq!(
            waves(&changes, ranges.clone(), 8, usize::MAX),
            vec![vec![0..2, 2..4], vec![4..6, 6..8, 8..10, 10..12]],
            "the second 2 (index 4) opens a wave; the second 1 (index 10) does not, since the \
             first 1 is in an earlier wave"
        );
        assert_eq!(
            waves(&changes, ranges.clone(), 3, usize::MAX),
            vec![vec![0..2, 2..4], vec![4..6, 6..8, 8..10], vec![10..12]],
            "at most 3 requests in flight"
        );
        let two = change_bytes(&changes[0]) + change_bytes(&changes[1]);
        assert_eq!(
            waves(&changes, ranges.clone(), 8, 2 * two),
            vec![vec![0..2, 2..4], vec![4..6, 6..8], vec![8..10, 10..12]],
            "at most the bytes of two ranges in flight"
        );
        assert_eq!(
            waves(&changes, ranges, 8, 0),
            (0..6)
                .map(|i| std::iter::once(2 * i..2 * i + 2).collect())
                .collect::<Vec<Vec<_>>>(),
            "a range larger than the budget still goes, alone"
        );
    }

    #[test]
    fn a_change_is_about_its_names_and_values() {
        // "id" + 8 (the key), "c" + 8 (the value) + 8 (the timestamp).
        assert_eq!(change_bytes(&put(1)), 2 + 8 + 1 + 8 + 8);
    }

    #[test]
    fn idempotence_needs_explicit_timestamps_and_no_increments() {
        assert!(is_idempotent(&put(1)));
        let RowChange::Put { primary_key, .. } = put(1) else {
            unreachable!()
        };
        let update = |op| RowChange::Update {
            primary_key: primary_key.clone(),
            updates: vec![ColumnUpdate {
                name: "c".into(),
                op,
            }],
        };
        assert!(is_idempotent(&update(ColumnOp::DeleteAllVersions)));
        assert!(!is_idempotent(&update(ColumnOp::Increment { delta: 1 })));
        assert!(!is_idempotent(&update(ColumnOp::Put {
            value: Value::Boolean(true),
            timestamp: None
        })));
        assert!(is_idempotent(&RowChange::Delete { primary_key }));
    }
}
