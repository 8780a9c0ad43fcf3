//! Streams: a table's partitions and each partition's durable change log.
//!
//! A table's key space is cut into partitions (one at creation; [`split`] closes a partition
//! and opens two children covering its range). Every acknowledged write to a table with a
//! stream appends one record per changed row to the log of the open partition holding the
//! row, in the write's own transaction ([`Appender`]), so the log is exactly the committed
//! writes in commit order per partition.

use std::collections::HashMap;

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

/// Creates the stream's tables if missing.
pub(crate) fn register(txn: &WriteTransaction) -> Result<(), ApiError> {
    txn.open_table(PARTITIONS)?;
    txn.open_table(LOG)?;
    Ok(())
}

/// Drops a deleted table's partitions and log.
pub(crate) fn delete_table(txn: &WriteTransaction, table: &str) -> Result<(), ApiError> {
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

/// Up to `max` records of a partition's log after sequence number `after`, and the log's last
/// sequence number.
pub(crate) fn read(
    txn: &ReadTransaction,
    table: &str,
    partition: u32,
    after: u64,
    max: usize,
) -> Result<(Vec<LoggedRecord>, u64), ApiError> {
    let log = txn.open_table(LOG)?;
    let start = log_key(table, partition, after.saturating_add(1));
    let end = log_key(table, partition, u64::MAX);
    let mut records = Vec::new();
    for entry in log.range(start.as_slice()..=end.as_slice())?.take(max) {
        let (k, v) = entry?;
        records.push(decode_entry(k.value(), v.value())?);
    }
    Ok((records, head(&log, table, partition)?))
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
    let start = log_key(table, partition, 0);
    let end = log_key(table, partition, u64::MAX);
    Ok(
        match log.range(start.as_slice()..=end.as_slice())?.next_back() {
            Some(entry) => {
                let key = entry?.0.value().to_vec();
                u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8 bytes"))
            }
            None => 0,
        },
    )
}

/// Appends the records of one committed write, inside its transaction.
pub(crate) struct Appender<'txn> {
    table: String,
    log: redb::Table<'txn, &'static [u8], &'static [u8]>,
    partitions: Vec<Partition>,
    heads: HashMap<u32, u64>,
    timestamp_us: i64,
    row_index: i32,
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
            heads: HashMap::new(),
            timestamp_us: now_ms.saturating_mul(1000),
            row_index: 0,
        })
    }

    /// Appends the record of `change` (as it took effect) to its partition's log.
    pub(crate) fn append(&mut self, change: &RowChange) -> Result<(), ApiError> {
        let key = crate::keys::encode(&self.table, change.primary_key());
        let suffix = &key[self.table.len() + 1..];
        let partition = self
            .partitions
            .iter()
            .find(|p| !p.closed && p.contains(suffix))
            .ok_or_else(|| ApiError::invalid("no open partition holds the row"))?
            .id;
        let seq = match self.heads.get(&partition) {
            Some(seq) => seq + 1,
            None => head(&self.log, &self.table, partition)? + 1,
        };
        self.heads.insert(partition, seq);
        let record = TunnelRecord {
            change: change.clone(),
            sequence_info: Some(SequenceInfo {
                epoch: 0,
                timestamp: self.timestamp_us,
                row_index: self.row_index,
            }),
        };
        self.row_index += 1;
        self.log.insert(
            log_key(&self.table, partition, seq).as_slice(),
            record.encode().encode_to_vec().as_slice(),
        )?;
        Ok(())
    }
}

/// Decodes a stored log entry.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<LoggedRecord, ApiError> {
    let seq = u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8 bytes"));
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
