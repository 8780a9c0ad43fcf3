//! Durable storage of tables and rows on redb: the catalog, the rows and the auto-increment
//! counters, with the data-model rules of [`crate::rules`] applied inside each transaction.
//!
//! Layout: `catalog` maps a table name to its normalized CreateTableRequest (protobuf) and
//! creation time; `rows` maps an order-preserving key ([`crate::keys`]) to the row's cells as
//! PlainBuffer (every stored version, per column newest first); `counters` holds the last
//! auto-increment value per table; the stream tables belong to [`crate::stream`]. Row writes go
//! through the group commit ([`crate::commit`]), table definitions and maintenance through
//! transactions of their own (redb orders them with the groups); every commit is durable before
//! the write is acknowledged, so an acknowledged write survives a crash.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{PrimaryKey, Row, RowChange};
use ots_protocol::pb::table::CreateTableRequest;
use ots_protocol::plainbuffer;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::commit::GroupCommit;
use crate::error::ApiError;
use crate::keys;
use crate::rules::read::{self, ReadSpec};
use crate::rules::{self, Expectation, TableInfo};
use crate::stream::{self, LoggedRecord, Partition};

const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");

/// Opens (or creates) the server's database in `dir`. Each module registers its own tables on
/// it ([`Store::new`], [`crate::tunnel::TunnelService::new`]).
pub fn open_database(dir: &Path) -> Result<Arc<Database>, ApiError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    Ok(Arc::new(Database::create(dir.join("tablestore.redb"))?))
}

fn encode_info(info: &TableInfo) -> Vec<u8> {
    let mut out = info.created_at_ms.to_le_bytes().to_vec();
    out.extend(info.definition.encode_to_vec());
    out
}

fn decode_info(bytes: &[u8]) -> Result<TableInfo, ApiError> {
    let (time, def) = bytes
        .split_at_checked(8)
        .ok_or_else(|| ApiError::internal("catalog entry too short"))?;
    Ok(TableInfo {
        created_at_ms: i64::from_le_bytes(time.try_into().expect("8 bytes")),
        definition: CreateTableRequest::decode(def).map_err(ApiError::internal)?,
    })
}

/// The rows a range read covers: `[start, end)` forward, `(end, start]` backward.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    /// Inclusive start.
    pub start: PrimaryKey,
    /// Exclusive end.
    pub end: PrimaryKey,
    /// Read from `start` downwards.
    pub backward: bool,
    /// Most rows to return.
    pub limit: usize,
}

/// A page of a range read.
#[derive(Debug, Clone, PartialEq)]
pub struct RangePage {
    /// Rows in read order.
    pub rows: Vec<Row>,
    /// Where the next page starts, if the range is not exhausted.
    pub next_start: Option<PrimaryKey>,
}

/// One write of a batch: the change and its row existence condition.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOp {
    /// The change.
    pub change: RowChange,
    /// What the change expects of the row before it.
    pub expectation: Expectation,
}

/// Most bytes of rows one range page returns (the service's 4 MB page).
pub const MAX_RANGE_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The durable store of tables and rows.
pub struct Store {
    db: Arc<Database>,
    /// The writer that row writes and tunnel state changes go through.
    writes: GroupCommit,
    /// How long one hour of a stream's expiration lasts (an hour, but for tests).
    stream_hour: Duration,
}

impl Store {
    /// The store on `db`, registering its tables and the stream's; streams keep records
    /// their expiration's number of `stream_hour`s.
    pub fn new(db: Arc<Database>, stream_hour: Duration) -> Result<Self, ApiError> {
        let txn = db.begin_write()?;
        txn.open_table(CATALOG)?;
        txn.open_table(ROWS)?;
        txn.open_table(COUNTERS)?;
        stream::register(&txn)?;
        txn.commit()?;
        Ok(Self {
            writes: GroupCommit::start(db.clone()),
            db,
            stream_hour,
        })
    }

    /// Opens (or creates) a store of its own in `dir`, with real hours.
    pub fn open(dir: &Path) -> Result<Self, ApiError> {
        Self::new(open_database(dir)?, Duration::from_secs(3600))
    }

    /// How long one hour of a stream's expiration lasts.
    pub fn stream_hour(&self) -> Duration {
        self.stream_hour
    }

    /// How long the table's stream keeps records (its expiration in stream hours).
    pub fn stream_retention(&self, info: &TableInfo) -> Duration {
        let hours = info
            .definition
            .stream_spec
            .as_ref()
            .and_then(|s| s.expiration_time)
            .unwrap_or(crate::api::tables::DEFAULT_STREAM_EXPIRATION_HOURS);
        self.stream_hour.saturating_mul(hours.max(1) as u32)
    }

    /// Trims the streams of every table of the records past their expiration; returns how
    /// many records went.
    pub fn trim_streams(&self, now_ms: i64) -> Result<usize, ApiError> {
        let mut trimmed = 0;
        for name in self.list_tables()? {
            let info = self.table(&name)?;
            if !info.stream_enabled() {
                continue;
            }
            let retention_us = self.stream_retention(&info).as_micros() as i64;
            let cutoff = now_ms.saturating_mul(1000).saturating_sub(retention_us);
            let txn = self.db.begin_write()?;
            trimmed += stream::trim(&txn, &name, cutoff)?;
            txn.commit()?;
        }
        Ok(trimmed)
    }

    /// The log position just before the oldest record a partition still holds.
    pub fn oldest_log_position(&self, table: &str, partition: u32) -> Result<u64, ApiError> {
        stream::oldest_position(&self.db.begin_read()?, table, partition)
    }

    /// Creates a table after validating and normalizing its definition.
    pub fn create_table(
        &self,
        mut request: CreateTableRequest,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        rules::normalize_table(&mut request)?;
        let info = TableInfo {
            definition: request,
            created_at_ms: now_ms,
        };
        let name = info.definition.table_meta.table_name.clone();
        let txn = self.db.begin_write()?;
        {
            let mut catalog = txn.open_table(CATALOG)?;
            if catalog.get(name.as_str())?.is_some() {
                return Err(ApiError::new(
                    ErrorCode::ObjectAlreadyExist,
                    "Requested table already exists.",
                ));
            }
            catalog.insert(name.as_str(), encode_info(&info).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A table's definition.
    pub fn table(&self, name: &str) -> Result<TableInfo, ApiError> {
        let txn = self.db.begin_read()?;
        let catalog = txn.open_table(CATALOG)?;
        let entry = catalog.get(name)?.ok_or_else(ApiError::no_table)?;
        decode_info(entry.value())
    }

    /// The names of every table, sorted.
    pub fn list_tables(&self) -> Result<Vec<String>, ApiError> {
        let txn = self.db.begin_read()?;
        let catalog = txn.open_table(CATALOG)?;
        let mut names = Vec::new();
        for entry in catalog.iter()? {
            names.push(entry?.0.value().to_owned());
        }
        Ok(names)
    }

    /// Deletes a table and every row of it.
    pub fn delete_table(&self, name: &str) -> Result<(), ApiError> {
        let txn = self.db.begin_write()?;
        {
            let mut catalog = txn.open_table(CATALOG)?;
            if catalog.remove(name)?.is_none() {
                return Err(ApiError::no_table());
            }
            let mut rows = txn.open_table(ROWS)?;
            let start = keys::table_prefix(name);
            let end = keys::table_end(name);
            rows.retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
            txn.open_table(COUNTERS)?.remove(name)?;
            stream::delete_table(&txn, name)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces a table's definition (UpdateTable); `update` edits it in place. A stream that
    /// the update turns on is noted as enabled at `now_ms`.
    pub fn update_table(
        &self,
        name: &str,
        now_ms: i64,
        update: impl FnOnce(&mut CreateTableRequest) -> Result<(), ApiError>,
    ) -> Result<TableInfo, ApiError> {
        let txn = self.db.begin_write()?;
        let info = {
            let mut catalog = txn.open_table(CATALOG)?;
            let mut info = {
                let entry = catalog.get(name)?.ok_or_else(ApiError::no_table)?;
                decode_info(entry.value())?
            };
            let was_enabled = info.stream_enabled();
            update(&mut info.definition)?;
            if info.stream_enabled() && !was_enabled {
                stream::set_enabled_at(&txn, name, now_ms.saturating_mul(1000))?;
            }
            catalog.insert(name, encode_info(&info).as_slice())?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Turns the table's stream on if it is off, keeping records the longest the service
    /// allows (what CreateTunnel does for a Stream or BaseAndStream tunnel).
    pub fn enable_stream(&self, table: &str, now_ms: i64) -> Result<(), ApiError> {
        if self.table(table)?.stream_enabled() {
            return Ok(());
        }
        self.update_table(table, now_ms, |def| {
            def.stream_spec = Some(ots_protocol::pb::table::StreamSpecification {
                enable_stream: true,
                expiration_time: Some(crate::api::tables::DEFAULT_STREAM_EXPIRATION_HOURS),
                columns_to_get: Vec::new(),
            });
            Ok(())
        })
        .map(drop)
    }

    /// When the table's stream was last enabled (µs); tables whose stream came with them
    /// count from their creation.
    pub fn stream_enabled_at(&self, info: &TableInfo) -> Result<i64, ApiError> {
        let noted = stream::enabled_at(&self.db.begin_read()?, info.name())?;
        Ok(noted.unwrap_or(info.created_at_ms.saturating_mul(1000)))
    }

    /// Applies row changes to one table in one durable transaction, in order. A change that
    /// fails (condition, schema, limits) is reported in its slot and leaves its row untouched;
    /// the others are applied. Each success is the change as it took effect (server-assigned
    /// timestamps and auto-increment values filled in, increments resolved).
    ///
    /// The commit time comes from `clock` once the write transaction is held: commits then
    /// follow each other in time, so the stream's timestamps, the server-assigned cell
    /// versions and the commit order agree (a point-in-time restore relies on it).
    pub fn write_rows(
        &self,
        table: &str,
        ops: Vec<WriteOp>,
        clock: impl FnOnce() -> i64 + Send + 'static,
    ) -> Result<Vec<Result<RowChange, ApiError>>, ApiError> {
        let table = table.to_owned();
        self.writes.write(move |txn| {
            // Read in the write's own transaction, so a table deleted by an earlier write of
            // the group is gone here too.
            let info = {
                let catalog = txn.open_table(CATALOG)?;
                let entry = catalog
                    .get(table.as_str())?
                    .ok_or_else(ApiError::no_table)?;
                decode_info(entry.value())?
            };
            let now_ms = clock();
            let mut results = Vec::with_capacity(ops.len());
            let mut rows = txn.open_table(ROWS)?;
            let mut counters = txn.open_table(COUNTERS)?;
            let mut log = match info.stream_enabled() {
                true => Some(stream::Appender::new(txn, &table, now_ms)?),
                false => None,
            };
            for op in ops {
                let result = apply(&info, &mut rows, &mut counters, op, now_ms);
                if let (Ok(effective), Some(log)) = (&result, &mut log) {
                    // A change applied but not logged would be lost to the stream: a failure
                    // here is the storage's, and fails the whole group.
                    log.append(effective)?;
                }
                results.push(result);
            }
            Ok(results)
        })
    }

    /// Runs `write` in the transaction of the next group commit ([`GroupCommit`]): the tunnel
    /// service's state changes go through here, beside the row writes.
    pub(crate) fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&redb::WriteTransaction) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.writes.write(write)
    }

    /// Reads one row; `None` if absent (or all its cells expired).
    pub fn get_row(
        &self,
        table: &str,
        pk: &PrimaryKey,
        spec: &ReadSpec,
        now_ms: i64,
    ) -> Result<Option<Row>, ApiError> {
        let info = self.table(table)?;
        rules::check_primary_key(&info, pk, false)?;
        let txn = self.db.begin_read()?;
        let rows = txn.open_table(ROWS)?;
        let Some(stored) = rows.get(keys::encode(table, pk).as_slice())? else {
            return Ok(None);
        };
        let row = decode_stored(stored.value())?;
        Ok(read::project(row, &info, spec, now_ms))
    }

    /// Reads up to `range.limit` rows of the range.
    pub fn get_range(
        &self,
        table: &str,
        range: &KeyRange,
        spec: &ReadSpec,
        now_ms: i64,
    ) -> Result<RangePage, ApiError> {
        let KeyRange {
            start,
            end,
            backward,
            limit,
        } = range;
        let (backward, limit) = (*backward, *limit);
        let info = self.table(table)?;
        rules::check_primary_key(&info, start, true)?;
        rules::check_primary_key(&info, end, true)?;
        let start_key = keys::encode(table, start);
        let end_key = keys::encode(table, end);
        // The service compares whole keys, -inf and +inf included, and refuses an empty or
        // inverted range (Python SDK test_get_range_when_direction_is_wrong_for_1_PK, Java
        // testGetRangeWhenStartPkEqualsEndPk).
        match (backward, start_key.cmp(&end_key)) {
            (false, std::cmp::Ordering::Less) | (true, std::cmp::Ordering::Greater) => {}
            (false, _) => {
                return Err(ApiError::invalid(
                    "Begin key must less than end key in FORWARD",
                ));
            }
            (true, _) => {
                return Err(ApiError::invalid(
                    "Begin key must more than end key in BACKWARD",
                ));
            }
        }
        let txn = self.db.begin_read()?;
        let stored = txn.open_table(ROWS)?;
        let mut rows = Vec::new();
        let mut bytes = 0;
        let mut next_start = None;
        let mut visit = |value: &[u8]| -> Result<bool, ApiError> {
            let row = decode_stored(value)?;
            if rows.len() == limit || bytes >= MAX_RANGE_PAGE_BYTES {
                next_start = Some(row.primary_key);
                return Ok(false);
            }
            if let Some(row) = read::project(row, &info, spec, now_ms) {
                bytes += value.len();
                rows.push(row);
            }
            Ok(true)
        };
        if backward {
            // (end, start]: skip `end` itself, include `start`.
            for entry in stored
                .range(end_key.as_slice()..=start_key.as_slice())?
                .rev()
            {
                let (k, v) = entry?;
                if k.value() == end_key.as_slice() {
                    continue;
                }
                if !visit(v.value())? {
                    break;
                }
            }
        } else {
            for entry in stored.range(start_key.as_slice()..end_key.as_slice())? {
                if !visit(entry?.1.value())? {
                    break;
                }
            }
        }
        Ok(RangePage { rows, next_start })
    }

    /// The table's partitions, closed ones included.
    pub fn partitions(&self, table: &str) -> Result<Vec<Partition>, ApiError> {
        self.table(table)?;
        stream::partitions(&self.db.begin_read()?, table)
    }

    /// Up to `max` records of a partition's log after sequence number `after`, and the log's
    /// last sequence number.
    pub fn read_log(
        &self,
        table: &str,
        partition: u32,
        after: u64,
        max: usize,
    ) -> Result<(Vec<LoggedRecord>, u64), ApiError> {
        stream::read(&self.db.begin_read()?, table, partition, after, max)
    }

    /// The log position just before the first record of a partition committed at or after
    /// `at_us`.
    pub fn log_position_before(
        &self,
        table: &str,
        partition: u32,
        at_us: i64,
    ) -> Result<u64, ApiError> {
        stream::position_before(&self.db.begin_read()?, table, partition, at_us)
    }

    /// Splits an open partition at `at` (which must lie strictly inside it): the partition is
    /// closed and two children cover its range. Returns the children's ids.
    pub fn split_partition(
        &self,
        table: &str,
        partition: u32,
        at: &PrimaryKey,
    ) -> Result<(u32, u32), ApiError> {
        let info = self.table(table)?;
        rules::check_primary_key(&info, at, false)?;
        let key = keys::encode(table, at);
        let txn = self.db.begin_write()?;
        let children = stream::split(&txn, table, partition, key[table.len() + 1..].to_vec())?;
        txn.commit()?;
        Ok(children)
    }

    /// Split points dividing the table into ranges of about `split_size` bytes of stored rows.
    pub fn split_points(&self, table: &str, split_size: u64) -> Result<Vec<PrimaryKey>, ApiError> {
        self.table(table)?;
        let txn = self.db.begin_read()?;
        let stored = txn.open_table(ROWS)?;
        let start = keys::table_prefix(table);
        let end = keys::table_end(table);
        let mut points = Vec::new();
        let mut size = 0u64;
        for entry in stored.range(start.as_slice()..end.as_slice())? {
            let (k, v) = entry?;
            if size >= split_size.max(1) {
                points.push(decode_stored(v.value())?.primary_key);
                size = 0;
            }
            size += (k.value().len() + v.value().len()) as u64;
        }
        Ok(points)
    }
}

fn decode_stored(bytes: &[u8]) -> Result<Row, ApiError> {
    plainbuffer::decode_rows(bytes)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("empty stored row"))
}

/// Applies one change inside a write transaction: auto-increment values, validation, the
/// merge with the stored row, then the row written or removed. Returns the change as it took
/// effect (what the stream records).
fn apply(
    info: &TableInfo,
    rows: &mut redb::Table<&[u8], &[u8]>,
    counters: &mut redb::Table<&str, i64>,
    op: WriteOp,
    now_ms: i64,
) -> Result<RowChange, ApiError> {
    let WriteOp {
        mut change,
        expectation,
    } = op;
    let table = info.name();
    let last = counters.get(table)?.map_or(0, |v| v.value());
    let assigned = rules::assign_auto_increment(info, &mut change, &expectation, last)?;
    rules::check_primary_key(info, change.primary_key(), false)?;
    rules::validate_change(info, &change, now_ms)?;
    let key = keys::encode(table, change.primary_key());
    let existing = match rows.get(key.as_slice())? {
        Some(v) => Some(decode_stored(v.value())?),
        None => None,
    };
    let merged = rules::merge(info, existing, change, &expectation, now_ms)?;
    if assigned != last {
        counters.insert(table, assigned)?;
    }
    match merged.row {
        None => rows.remove(key.as_slice())?,
        Some(row) => rows.insert(key.as_slice(), plainbuffer::encode_rows(&[row]).as_slice())?,
    };
    Ok(merged.effective)
}
