//! Streams: a table's partitions and each partition's durable change log.
//!
//! A table's key space is cut into partitions (one at creation; [`split`] closes a partition
//! and opens two children covering its range). Every acknowledged write to a table with a
//! stream appends one record per changed row to the log of the open partition holding the
//! row, in the write's own transaction ([`Appender`]), so the log is exactly the committed
//! writes in commit order per partition.

use std::collections::HashMap;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::RowChange;
use ots_protocol::pb::tunnel::Record;
use ots_protocol::plainbuffer::SequenceInfo;
use ots_protocol::record::TunnelRecord;
use prost::Message;
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// table name → JSON list of [`Partition`].
const PARTITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("partitions");
/// table name, 0, partition id (u32 BE), sequence number (u64 BE) → protobuf [`Record`].
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stream_log");

/// table name → when its stream was last enabled (µs since the epoch).
const ENABLED_AT: TableDefinition<&str, i64> = TableDefinition::new("stream_enabled_at");

/// Creates the stream's tables if missing.
pub(crate) fn register(txn: &WriteTransaction) -> Result<(), ApiError> {
    txn.open_table(PARTITIONS)?;
    txn.open_table(LOG)?;
    txn.open_table(ENABLED_AT)?;
    Ok(())
}

/// Notes that the stream of `table` was enabled at `at_us`.
pub(crate) fn set_enabled_at(
    txn: &WriteTransaction,
    table: &str,
    at_us: i64,
) -> Result<(), ApiError> {
    txn.open_table(ENABLED_AT)?.insert(table, at_us)?;
    Ok(())
}

/// When the stream of `table` was last enabled (µs), if it was noted.
pub(crate) fn enabled_at(txn: &ReadTransaction, table: &str) -> Result<Option<i64>, ApiError> {
    Ok(txn.open_table(ENABLED_AT)?.get(table)?.map(|v| v.value()))
}

/// Drops a deleted table's partitions and log.
pub(crate) fn delete_table(txn: &WriteTransaction, table: &str) -> Result<(), ApiError> {
    txn.open_table(ENABLED_AT)?.remove(table)?;
    txn.open_table(PARTITIONS)?.remove(table)?;
    let start = crate::keys::table_prefix(table);
    let end = crate::keys::table_end(table);
    txn.open_table(LOG)?
        .retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
    Ok(())
}

/// A table's partitions, closed ones included.
pub(crate) fn partitions(txn: &ReadTransaction, table: &str) -> Result<Vec<Partition>, ApiError> {
    load_partitions(&txn.open_table(PARTITIONS)?, table)
}

/// A table's partitions as a write transaction sees them.
pub(crate) fn partitions_in(
    txn: &WriteTransaction,
    table: &str,
) -> Result<Vec<Partition>, ApiError> {
    load_partitions(&txn.open_table(PARTITIONS)?, table)
}

/// The error of a position whose records were trimmed.
pub(crate) fn trimmed() -> ApiError {
    ApiError::new(
        ErrorCode::TrimmedDataAccess,
        "Requested stream data is already trimmed or does not exist.",
    )
}

/// Up to `max` records of a partition's log after sequence number `after`, and the log's last
/// sequence number; [`trimmed`] when records after `after` were trimmed.
pub(crate) fn read(
    txn: &ReadTransaction,
    table: &str,
    partition: u32,
    after: u64,
    max: usize,
) -> Result<(Vec<LoggedRecord>, u64), ApiError> {
    let log = txn.open_table(LOG)?;
    if after.saturating_add(1) < first_seq(&log, table, partition)? {
        return Err(trimmed());
    }
    let start = log_key(table, partition, after.saturating_add(1));
    let end = log_key(table, partition, u64::MAX);
    let mut records = Vec::new();
    for entry in log.range(start.as_slice()..=end.as_slice())?.take(max) {
        let (k, v) = entry?;
        records.push(decode_entry(k.value(), v.value())?);
    }
    Ok((records, head(&log, table, partition)?))
}

/// The position just before the oldest record a partition's log still holds: where reading
/// from the start (TRIM_HORIZON, a tunnel from EARLIEST) begins.
pub(crate) fn oldest_position(
    txn: &ReadTransaction,
    table: &str,
    partition: u32,
) -> Result<u64, ApiError> {
    Ok(first_seq(&txn.open_table(LOG)?, table, partition)? - 1)
}

/// Trims every partition's log of `table` of the records committed before `cutoff_us`, but for
/// each partition's newest record, which keeps its sequence numbers going; returns how many
/// went.
pub(crate) fn trim(txn: &WriteTransaction, table: &str, cutoff_us: i64) -> Result<usize, ApiError> {
    let partitions = load_partitions(&txn.open_table(PARTITIONS)?, table)?;
    let mut log = txn.open_table(LOG)?;
    let mut trimmed = 0;
    for partition in partitions {
        let head = head(&log, table, partition.id)?;
        let mut old = Vec::new();
        let start = log_key(table, partition.id, 0);
        let end = log_key(table, partition.id, head);
        for entry in log.range(start.as_slice()..end.as_slice())? {
            let (k, v) = entry?;
            let record = decode_entry(k.value(), v.value())?;
            if record.timestamp_us >= cutoff_us {
                break;
            }
            old.push(k.value().to_vec());
        }
        for key in &old {
            log.remove(key.as_slice())?;
        }
        trimmed += old.len();
    }
    Ok(trimmed)
}

/// The first sequence number still in a partition's log (1 when it is empty: the newest
/// record is never trimmed, so an empty log never had one).
fn first_seq(
    log: &impl ReadableTable<&'static [u8], &'static [u8]>,
    table: &str,
    partition: u32,
) -> Result<u64, ApiError> {
    Ok(seq_bounds(log, table, partition)?.map_or(1, |(first, _)| first))
}

/// The sequence number at the end of a log key.
fn seq_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8 bytes"))
}

/// The first and last sequence numbers of a partition's log; `None` when it is empty.
fn seq_bounds(
    log: &impl ReadableTable<&'static [u8], &'static [u8]>,
    table: &str,
    partition: u32,
) -> Result<Option<(u64, u64)>, ApiError> {
    let start = log_key(table, partition, 0);
    let end = log_key(table, partition, u64::MAX);
    let mut range = log.range(start.as_slice()..=end.as_slice())?;
    let Some(first) = range.next() else {
        return Ok(None);
    };
    let first = seq_of(first?.0.value());
    let last = match range.next_back() {
        Some(entry) => seq_of(entry?.0.value()),
        None => first,
    };
    Ok(Some((first, last)))
}

/// The sequence number just before the first record of a partition's log committed at or after
/// `at_us` (the log's last sequence number when there is none).
pub(crate) fn position_before(
    txn: &ReadTransaction,
    table: &str,
    partition: u32,
    at_us: i64,
) -> Result<u64, ApiError> {
    let log = txn.open_table(LOG)?;
    let start = log_key(table, partition, 1);
    let end = log_key(table, partition, u64::MAX);
    for entry in log.range(start.as_slice()..=end.as_slice())? {
        let (k, v) = entry?;
        let record = decode_entry(k.value(), v.value())?;
        if record.timestamp_us >= at_us {
            return Ok(record.seq - 1);
        }
    }
    head(&log, table, partition)
}

/// Splits the open partition `partition` at `point` (an encoded key suffix strictly inside
/// it): the partition is closed and two children cover its range. Returns the children's ids.
pub(crate) fn split(
    txn: &WriteTransaction,
    table: &str,
    partition: u32,
    point: Vec<u8>,
) -> Result<(u32, u32), ApiError> {
    let mut stored = txn.open_table(PARTITIONS)?;
    let mut partitions = load_partitions(&stored, table)?;
    let next_id = partitions.iter().map(|p| p.id).max().unwrap_or(0) + 1;
    let parent = partitions
        .iter_mut()
        .find(|p| p.id == partition && !p.closed)
        .ok_or_else(|| ApiError::invalid(format!("No open partition {partition}.")))?;
    if point <= parent.begin || (!parent.end.is_empty() && point >= parent.end) {
        return Err(ApiError::invalid(
            "The split point is not strictly inside the partition.",
        ));
    }
    parent.closed = true;
    let (begin, end) = (parent.begin.clone(), parent.end.clone());
    partitions.push(Partition {
        id: next_id,
        begin,
        end: point.clone(),
        parents: vec![partition],
        closed: false,
    });
    partitions.push(Partition {
        id: next_id + 1,
        begin: point,
        end,
        parents: vec![partition],
        closed: false,
    });
    save_partitions(&mut stored, table, &partitions)?;
    Ok((next_id, next_id + 1))
}

/// One partition of a table's key space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Partition id, unique within the table.
    pub id: u32,
    /// Inclusive lower bound as an encoded key suffix; empty means unbounded.
    pub begin: Vec<u8>,
    /// Exclusive upper bound as an encoded key suffix; empty means unbounded.
    pub end: Vec<u8>,
    /// The partitions this one was split from (their logs come first).
    pub parents: Vec<u32>,
    /// A closed partition takes no more records (it was split).
    pub closed: bool,
}

impl Partition {
    fn contains(&self, suffix: &[u8]) -> bool {
        self.begin.as_slice() <= suffix && (self.end.is_empty() || suffix < self.end.as_slice())
    }
}

/// One logged record and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRecord {
    /// Position in the partition's log, from 1.
    pub seq: u64,
    /// The record as ReadRecords returns it.
    pub record: Record,
    /// Commit time in microseconds.
    pub timestamp_us: i64,
}

fn log_key(table: &str, partition: u32, seq: u64) -> Vec<u8> {
    let mut key = crate::keys::table_prefix(table);
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn load_partitions(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Vec<Partition>, ApiError> {
    match table.get(name)? {
        Some(v) => serde_json::from_slice(v.value())
            .map_err(|e| ApiError::invalid(format!("corrupt partition list of {name}: {e}"))),
        None => Ok(vec![Partition {
            id: 0,
            begin: Vec::new(),
            end: Vec::new(),
            parents: Vec::new(),
            closed: false,
        }]),
    }
}

fn save_partitions(
    table: &mut redb::Table<&str, &[u8]>,
    name: &str,
    partitions: &[Partition],
) -> Result<(), ApiError> {
    let json = serde_json::to_vec(partitions).expect("partitions serialize");
    table.insert(name, json.as_slice())?;
    Ok(())
}

/// The last sequence number of a partition's log (0 when empty).
fn head(
    log: &impl ReadableTable<&'static [u8], &'static [u8]>,
    table: &str,
    partition: u32,
) -> Result<u64, ApiError> {
    Ok(seq_bounds(log, table, partition)?.map_or(0, |(_, last)| last))
}

/// Appends the records of one committed write, inside its transaction.
///
/// Each partition's sequence infos strictly increase, as `row_index` is "the row index of
/// stream log with the same log timestamp" (Go SDK `tunnel/model.go`): a record takes the
/// commit time, or its partition's last timestamp if the clock has not moved past it, and the
/// next row index within that timestamp, across commits.
pub(crate) struct Appender<'txn> {
    table: String,
    log: redb::Table<'txn, &'static [u8], &'static [u8]>,
    partitions: Vec<Partition>,
    /// Per partition touched: its last sequence number and sequence info.
    last: HashMap<u32, (u64, SequenceInfo)>,
    timestamp_us: i64,
}

/// The sequence info after `last` for a record committed at `commit_us`.
pub(crate) fn next_sequence(last: Option<SequenceInfo>, commit_us: i64) -> SequenceInfo {
    match last {
        Some(last) if commit_us <= last.timestamp => SequenceInfo {
            row_index: last.row_index + 1,
            ..last
        },
        _ => SequenceInfo {
            epoch: 0,
            timestamp: commit_us,
            row_index: 0,
        },
    }
}

impl<'txn> Appender<'txn> {
    /// An appender for a write to `table` committed at `now_ms`.
    pub(crate) fn new(
        txn: &'txn WriteTransaction,
        table: &str,
        now_ms: i64,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            table: table.to_owned(),
            partitions: load_partitions(&txn.open_table(PARTITIONS)?, table)?,
            log: txn.open_table(LOG)?,
            last: HashMap::new(),
            timestamp_us: now_ms.saturating_mul(1000),
        })
    }

    /// The last sequence number and sequence info of a partition's log.
    fn last_of(&self, partition: u32) -> Result<(u64, Option<SequenceInfo>), ApiError> {
        let start = log_key(&self.table, partition, 0);
        let end = log_key(&self.table, partition, u64::MAX);
        match self
            .log
            .range(start.as_slice()..=end.as_slice())?
            .next_back()
        {
            Some(entry) => {
                let (k, v) = entry?;
                let record = decode_entry(k.value(), v.value())?;
                let info = TunnelRecord::decode(&record.record)?.sequence_info;
                Ok((record.seq, info))
            }
            None => Ok((0, None)),
        }
    }

    /// Appends the record of `change` (as it took effect) to its partition's log.
    pub(crate) fn append(&mut self, change: &RowChange) -> Result<(), ApiError> {
        let key = crate::keys::encode(&self.table, change.primary_key());
        let suffix = &key[self.table.len() + 1..];
        let partition = self
            .partitions
            .iter()
            .find(|p| !p.closed && p.contains(suffix))
            .ok_or_else(|| {
                ApiError::internal("corrupt partitions: no open partition holds the row")
            })?
            .id;
        let (seq, info) = match self.last.get(&partition) {
            Some(&(seq, info)) => (seq, Some(info)),
            None => self.last_of(partition)?,
        };
        let (seq, info) = (seq + 1, next_sequence(info, self.timestamp_us));
        self.last.insert(partition, (seq, info));
        let record = TunnelRecord::encode_parts(change, Some(info));
        self.log.insert(
            log_key(&self.table, partition, seq).as_slice(),
            record.encode_to_vec().as_slice(),
        )?;
        Ok(())
    }
}

/// Decodes a stored log entry.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<LoggedRecord, ApiError> {
    let seq = seq_of(key);
    let record = Record::decode(value)
        .map_err(|e| ApiError::invalid(format!("corrupt stream record: {e}")))?;
    let timestamp_us = TunnelRecord::decode(&record)?
        .sequence_info
        .map_or(0, |s| s.timestamp);
    Ok(LoggedRecord {
        seq,
        record,
        timestamp_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_infos_increase_within_a_millisecond_and_across_commits() {
        let first = next_sequence(None, 5_000);
        assert_eq!((first.timestamp, first.row_index), (5_000, 0));
        let same_ms = next_sequence(Some(first), 5_000);
        assert_eq!((same_ms.timestamp, same_ms.row_index), (5_000, 1));
        let clock_back = next_sequence(Some(same_ms), 4_000);
        assert_eq!(
            (clock_back.timestamp, clock_back.row_index),
            (5_000, 2),
            "a clock that went back does not reorder the log"
        );
        let later = next_sequence(Some(clock_back), 6_000);
        assert_eq!((later.timestamp, later.row_index), (6_000, 0));
        assert!(first < same_ms && same_ms < clock_back && clock_back < later);
    }
}
