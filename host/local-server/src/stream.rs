//! Streams: a table's partitions and each partition's durable change log.
//!
//! A table's key space is cut into partitions (one at creation; [`crate::store::Store::split_partition`]
//! closes a partition and opens two children covering its range). Every acknowledged write to
//! a table with a stream appends one record per changed row to the log of the open partition
//! holding the row, in the write's own transaction, so the log is exactly the committed
//! writes in commit order per partition.

use std::collections::HashMap;

use ots_protocol::model::RowChange;
use ots_protocol::pb::tunnel::{ActionType, Record};
use ots_protocol::plainbuffer::{self, PlainRow, SequenceInfo};
use prost::Message;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::ApiError;

/// table name → JSON list of [`Partition`].
pub(crate) const PARTITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("partitions");
/// table name, 0, partition id (u32 BE), sequence number (u64 BE) → protobuf [`Record`].
pub(crate) const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stream_log");

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

pub(crate) fn log_key(table: &str, partition: u32, seq: u64) -> Vec<u8> {
    let mut key = crate::keys::table_prefix(table);
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn load_partitions(
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

pub(crate) fn save_partitions(
    table: &mut redb::Table<&str, &[u8]>,
    name: &str,
    partitions: &[Partition],
) -> Result<(), ApiError> {
    let json = serde_json::to_vec(partitions).expect("partitions serialize");
    table.insert(name, json.as_slice())?;
    Ok(())
}

/// The last sequence number of a partition's log (0 when empty).
pub(crate) fn head(
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
pub(crate) struct Appender<'a> {
    table: &'a str,
    partitions: Vec<Partition>,
    heads: HashMap<u32, u64>,
    timestamp_us: i64,
    row_index: i32,
}

impl<'a> Appender<'a> {
    pub(crate) fn new(
        partitions: &impl ReadableTable<&'static str, &'static [u8]>,
        table: &'a str,
        now_ms: i64,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            table,
            partitions: load_partitions(partitions, table)?,
            heads: HashMap::new(),
            timestamp_us: now_ms.saturating_mul(1000),
            row_index: 0,
        })
    }

    pub(crate) fn append(
        &mut self,
        log: &mut redb::Table<&[u8], &[u8]>,
        change: &RowChange,
    ) -> Result<(), ApiError> {
        let key = crate::keys::encode(self.table, change.primary_key());
        let suffix = &key[self.table.len() + 1..];
        let partition = self
            .partitions
            .iter()
            .find(|p| !p.closed && p.contains(suffix))
            .ok_or_else(|| ApiError::invalid("no open partition holds the row"))?
            .id;
        let seq = match self.heads.get(&partition) {
            Some(seq) => seq + 1,
            None => head(log, self.table, partition)? + 1,
        };
        self.heads.insert(partition, seq);
        let action = match change {
            RowChange::Put { .. } => ActionType::PutRow,
            RowChange::Update { .. } => ActionType::UpdateRow,
            RowChange::Delete { .. } => ActionType::DeleteRow,
        };
        let mut row = PlainRow::from(change);
        row.sequence_info = Some(SequenceInfo {
            epoch: 0,
            timestamp: self.timestamp_us,
            row_index: self.row_index,
        });
        self.row_index += 1;
        let record = Record {
            action_type: action as i32,
            record: plainbuffer::encode(&[row]),
            origin_record: None,
        };
        log.insert(
            log_key(self.table, partition, seq).as_slice(),
            record.encode_to_vec().as_slice(),
        )?;
        Ok(())
    }
}

/// Decodes a stored log entry.
pub(crate) fn decode_entry(key: &[u8], value: &[u8]) -> Result<LoggedRecord, ApiError> {
    let seq = u64::from_be_bytes(key[key.len() - 8..].try_into().expect("8 bytes"));
    let record = Record::decode(value)
        .map_err(|e| ApiError::invalid(format!("corrupt stream record: {e}")))?;
    let timestamp_us = plainbuffer::decode(&record.record)?
        .first()
        .and_then(|r| r.sequence_info)
        .map_or(0, |s| s.timestamp);
    Ok(LoggedRecord {
        seq,
        record,
        timestamp_us,
    })
}
