//! The batching writer: applies a channel's row changes to the destination with BatchWriteRow,
//! in order, resending only the rows that failed.
//!
//! BatchWriteRow rejects two changes to one primary key in a request and gives no order among
//! the rows of a request, so a batch is cut into sub-batches of at most `batchWriteCount` rows
//! that never hold a key twice; sub-batches are written one after another.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use ots_client::{Client, ClientError};
use ots_protocol::model::{ColumnOp, PrimaryKey, RowChange};

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

/// Cuts `changes` into consecutive ranges of at most `max` changes, none of which holds two
/// changes to the same primary key, so each range can go in one BatchWriteRow while the
/// ranges, written in order, keep every key's changes in order.
pub fn split_batches(changes: &[RowChange], max: usize) -> Vec<Range<usize>> {
    let max = max.max(1);
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut keys: HashSet<&PrimaryKey> = HashSet::new();
    for (i, change) in changes.iter().enumerate() {
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
    pub async fn write(&self, changes: &[RowChange]) -> Result<(), WriteError> {
        self.write_to(&self.table, changes).await
    }

    /// Applies `changes` in order, each to its table in `tables` (`None`: the destination).
    /// Tables are written one after another, each table's changes in their order.
    pub async fn write_routed(
        &self,
        changes: Vec<RowChange>,
        tables: Vec<Option<Arc<str>>>,
    ) -> Result<(), WriteError> {
        if tables.iter().all(Option::is_none) {
            return self.write(&changes).await;
        }
        // Grouped by the table written, so a guest naming the destination itself still has
        // that table's changes written in their order.
        let mut routed: Vec<(&str, Vec<RowChange>)> = Vec::new();
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

    async fn write_to(&self, table: &str, changes: &[RowChange]) -> Result<(), WriteError> {
        for range in split_batches(changes, self.batch_size) {
            self.write_batch(table, &changes[range]).await?;
        }
        Ok(())
    }

    async fn write_batch(&self, table: &str, batch: &[RowChange]) -> Result<(), WriteError> {
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
            let retry: Vec<RowChange> = failed.iter().map(|&i| batch[i].clone()).collect();
            let idempotent = retry.iter().all(is_idempotent);
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
    use ots_protocol::model::{Cell, ColumnUpdate, PrimaryKeyColumn, PrimaryKeyValue, Value};

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
        assert!(split_batches(&[], 10).is_empty());
        for range in split_batches(&changes, 4) {
            let keys: HashSet<_> = changes[range.clone()]
                .iter()
                .map(|c| c.primary_key())
                .collect();
            assert_eq!(keys.len(), range.len());
        }
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
