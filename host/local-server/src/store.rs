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

/// A page of [`Store::get_range_encoded`].
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPage {
    /// Rows in read order, each PlainBuffer-encoded on its own.
    pub rows: Vec<Vec<u8>>,
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
    ///
    /// The work that does not need the stored rows (checks, keys, the rows of blind puts) is
    /// done here, on the caller's thread, against the table as it is now ([`prepare`]): the
    /// writer thread is the one every write waits on. If the table's definition changed before
    /// the transaction, the writer does all of it again against the new one.
    pub fn write_rows(
        &self,
        table: &str,
        ops: Vec<WriteOp>,
        clock: impl Fn() -> i64 + Send + 'static,
    ) -> Result<Vec<Result<RowChange, ApiError>>, ApiError> {
        let prepared = self.prepare_rows(table, ops, clock())?;
        self.commit_rows(prepared, clock)
    }

    /// The first half of [`Store::write_rows`]: every op prepared against the table as it is.
    fn prepare_rows(
        &self,
        table: &str,
        ops: Vec<WriteOp>,
        now_ms: i64,
    ) -> Result<PreparedRows, ApiError> {
        let txn = self.db.begin_read()?;
        let catalog = txn.open_table(CATALOG)?;
        let entry = catalog.get(table)?.ok_or_else(ApiError::no_table)?;
        let info = decode_info(entry.value())?;
        let ops = ops
            .into_iter()
            .map(|op| prepare(&info, op, now_ms))
            .collect();
        Ok(PreparedRows {
            definition: entry.value().to_vec(),
            info,
            ops,
        })
    }

    /// The second half of [`Store::write_rows`], in the next group commit.
    fn commit_rows(
        &self,
        prepared: PreparedRows,
        clock: impl Fn() -> i64 + Send + 'static,
    ) -> Result<Vec<Result<RowChange, ApiError>>, ApiError> {
        self.writes.write(move |txn| {
            let PreparedRows {
                definition,
                info,
                ops,
            } = prepared;
            let table = info.name();
            // Read in the write's own transaction, so a table deleted or altered by an earlier
            // write of the group is seen here too.
            let altered = {
                let catalog = txn.open_table(CATALOG)?;
                let entry = catalog.get(table)?.ok_or_else(ApiError::no_table)?;
                match entry.value() == definition.as_slice() {
                    true => None,
                    false => Some(decode_info(entry.value())?),
                }
            };
            let current = altered.as_ref().unwrap_or(&info);
            let now_ms = clock();
            let mut results = Vec::with_capacity(ops.len());
            let mut rows = txn.open_table(ROWS)?;
            let mut counters = txn.open_table(COUNTERS)?;
            let mut log = match current.stream_enabled() {
                true => Some(stream::Appender::new(txn, table, now_ms)?),
                false => None,
            };
            for op in ops {
                let result = match altered {
                    None => apply_prepared(current, &mut rows, &mut counters, op, now_ms),
                    Some(_) => apply(current, &mut rows, &mut counters, op.into_op(), now_ms),
                };
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
        let info = self.table(table)?;
        let (rows, next_start) = self.page(&info, range, |value| {
            Ok(read::project(decode_stored(value)?, &info, spec, now_ms))
        })?;
        Ok(RangePage { rows, next_start })
    }

    /// [`Store::get_range`] of every version of every column ([`ReadSpec::everything`]), each
    /// row PlainBuffer-encoded on its own ([`plainbuffer::encode_row`]): a tunnel's base data.
    /// Where the table expires nothing, that is how the rows are stored, so they are handed out
    /// as stored, not decoded and encoded again.
    pub fn get_range_encoded(
        &self,
        table: &str,
        range: &KeyRange,
        now_ms: i64,
    ) -> Result<EncodedPage, ApiError> {
        let info = self.table(table)?;
        let spec = ReadSpec::everything();
        let as_stored = info.ttl_ms().is_none();
        let (rows, next_start) = self.page(&info, range, |value| {
            Ok(match as_stored {
                true => Some(value.to_vec()),
                false => read::project(decode_stored(value)?, &info, &spec, now_ms)
                    .map(|row| plainbuffer::encode_row(&row.primary_key, &row.cells)),
            })
        })?;
        Ok(EncodedPage { rows, next_start })
    }

    /// One page of the stored rows of `range`, in read order: `row` makes each stored row
    /// into what the page holds of it (`None`: nothing), until the page holds `range.limit`
    /// rows or [`MAX_RANGE_PAGE_BYTES`] of stored rows. Returns the page and the key of the row
    /// it stopped at (where the next page starts).
    fn page<T>(
        &self,
        info: &TableInfo,
        range: &KeyRange,
        mut row: impl FnMut(&[u8]) -> Result<Option<T>, ApiError>,
    ) -> Result<(Vec<T>, Option<PrimaryKey>), ApiError> {
        let KeyRange {
            start,
            end,
            backward,
            ..
        } = range;
        let table = info.name();
        rules::check_primary_key(info, start, true)?;
        rules::check_primary_key(info, end, true)?;
        let start_key = keys::encode(table, start);
        let end_key = keys::encode(table, end);
        // The service compares whole keys, -inf and +inf included, and refuses an empty or
        // inverted range (Python SDK test_get_range_when_direction_is_wrong_for_1_PK, Java
        // testGetRangeWhenStartPkEqualsEndPk).
        match (*backward, start_key.cmp(&end_key)) {
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
        // Takes a stored row into the page; false when the page is full without it.
        let mut take = |value: &[u8]| -> Result<bool, ApiError> {
            if rows.len() == range.limit || bytes >= MAX_RANGE_PAGE_BYTES {
                return Ok(false);
            }
            if let Some(kept) = row(value)? {
                bytes += value.len();
                rows.push(kept);
            }
            Ok(true)
        };
        let mut next_start = None;
        if *backward {
            // (end, start]: skip `end` itself, include `start`.
            for entry in stored
                .range(end_key.as_slice()..=start_key.as_slice())?
                .rev()
            {
                let (k, v) = entry?;
                if k.value() == end_key.as_slice() {
                    continue;
                }
                if !take(v.value())? {
                    next_start = Some(decode_stored(v.value())?.primary_key);
                    break;
                }
            }
        } else {
            for entry in stored.range(start_key.as_slice()..end_key.as_slice())? {
                let value = entry?.1;
                if !take(value.value())? {
                    next_start = Some(decode_stored(value.value())?.primary_key);
                    break;
                }
            }
        }
        Ok((rows, next_start))
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

/// A write's ops prepared against one definition of their table.
struct PreparedRows {
    /// The table's catalog entry they were prepared against.
    definition: Vec<u8>,
    info: TableInfo,
    ops: Vec<Prepared>,
}

/// A row write as [`prepare`] leaves it for the writer thread, holding the write itself so the
/// writer can start over if the table changed in between ([`Prepared::into_op`]).
enum Prepared {
    /// A blind put ([`rules::blind_put`]), keyed and encoded: only the insert is left.
    Put {
        key: Vec<u8>,
        stored: Vec<u8>,
        op: WriteOp,
    },
    /// Checked and keyed; the merge with the stored row is left.
    Merge { key: Vec<u8>, op: WriteOp },
    /// Refused by the checks.
    Refused { op: WriteOp, error: ApiError },
    /// A key with an auto-increment column: the value comes from the counter, in the writer.
    Whole(WriteOp),
}

impl Prepared {
    fn into_op(self) -> WriteOp {
        match self {
            Prepared::Put { op, .. }
            | Prepared::Merge { op, .. }
            | Prepared::Refused { op, .. }
            | Prepared::Whole(op) => op,
        }
    }
}

/// Does the part of a write that needs no stored row, against `info`.
fn prepare(info: &TableInfo, op: WriteOp, now_ms: i64) -> Prepared {
    let primary_key = op.change.primary_key();
    if rules::has_auto_increment(primary_key) {
        return Prepared::Whole(op);
    }
    let checked = rules::check_primary_key(info, primary_key, false)
        .and_then(|()| rules::validate_change(info, &op.change, now_ms));
    if let Err(error) = checked {
        return Prepared::Refused { op, error };
    }
    let key = keys::encode(info.name(), primary_key);
    let stored = match rules::blind_put(info, &op.change, &op.expectation) {
        None => return Prepared::Merge { key, op },
        Some(Ok(cells)) => plainbuffer::encode_row(primary_key, &cells),
        Some(Err(error)) => return Prepared::Refused { op, error },
    };
    Prepared::Put { key, stored, op }
}

/// Finishes a prepared write inside the write transaction; see [`apply`].
fn apply_prepared(
    info: &TableInfo,
    rows: &mut redb::Table<&[u8], &[u8]>,
    counters: &mut redb::Table<&str, i64>,
    prepared: Prepared,
    now_ms: i64,
) -> Result<RowChange, ApiError> {
    match prepared {
        // A blind put takes effect as it was sent: every timestamp is its own.
        Prepared::Put { key, stored, op } => {
            rows.insert(key.as_slice(), stored.as_slice())?;
            Ok(op.change)
        }
        Prepared::Merge { key, op } => merge_into(info, rows, &key, op, now_ms),
        Prepared::Refused { error, .. } => Err(error),
        Prepared::Whole(op) => apply(info, rows, counters, op, now_ms),
    }
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
    let effective = merge_into(
        info,
        rows,
        &key,
        WriteOp {
            change,
            expectation,
        },
        now_ms,
    )?;
    if assigned != last {
        counters.insert(table, assigned)?;
    }
    Ok(effective)
}

/// Merges a checked change with the row stored under `key` and writes (or removes) the result.
fn merge_into(
    info: &TableInfo,
    rows: &mut redb::Table<&[u8], &[u8]>,
    key: &[u8],
    op: WriteOp,
    now_ms: i64,
) -> Result<RowChange, ApiError> {
    let existing = match rows.get(key)? {
        Some(v) => Some(decode_stored(v.value())?),
        None => None,
    };
    let merged = rules::merge(info, existing, op.change, &op.expectation, now_ms)?;
    match merged.row {
        None => rows.remove(key)?,
        Some(row) => rows.insert(
            key,
            plainbuffer::encode_row(&row.primary_key, &row.cells).as_slice(),
        )?,
    };
    Ok(merged.effective)
}

#[cfg(test)]
mod tests {
    use ots_protocol::model::{Cell, PrimaryKeyColumn, PrimaryKeyValue, RowExistence};

    use super::*;
    use crate::rules::read::Versions;
    use crate::rules::tests::{cell, table};

    const NOW: i64 = 1_700_000_000_000;

    fn key() -> PrimaryKey {
        PrimaryKey(vec![PrimaryKeyColumn {
            name: "id".into(),
            value: PrimaryKeyValue::Integer(1),
        }])
    }

    fn blind_put(cells: Vec<Cell>) -> WriteOp {
        WriteOp {
            change: RowChange::Put {
                primary_key: key(),
                cells,
            },
            expectation: Expectation {
                existence: RowExistence::Ignore,
                condition: None,
            },
        }
    }

    fn stored_cells(store: &Store) -> Vec<Cell> {
        let spec = ReadSpec {
            columns: vec![],
            versions: Versions::Newest(10),
            start_column: None,
            end_column: None,
            condition: None,
            pagination: None,
        };
        let row = store.get_row("t", &key(), &spec, NOW).unwrap();
        row.map(|r| r.cells).unwrap_or_default()
    }

    fn set_options(store: &Store, set: impl FnOnce(&mut ots_protocol::pb::table::TableOptions)) {
        store
            .update_table("t", NOW, |def| {
                set(def.table_options.as_mut().expect("normalized options"));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_blind_put_prepared_before_the_table_changed_is_stored_as_the_new_definition_says() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_table(table(2, -1).definition, NOW).unwrap();
        let cells = vec![cell("a", 1, NOW - 2), cell("a", 2, NOW - 1)];
        let prepared = store
            .prepare_rows("t", vec![blind_put(cells)], NOW)
            .unwrap();
        assert!(matches!(prepared.ops[0], Prepared::Put { .. }));

        set_options(&store, |options| options.max_versions = Some(1));
        let results = store.commit_rows(prepared, || NOW).unwrap();

        assert!(results[0].is_ok(), "{results:?}");
        assert_eq!(stored_cells(&store), vec![cell("a", 2, NOW - 1)]);
    }

    #[test]
    fn a_put_refused_against_the_old_definition_is_checked_again_against_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_table(table(1, -1).definition, NOW).unwrap();
        // Two days old: outside the default one-day max time deviation.
        let old = NOW - 2 * 86_400_000;
        let prepared = store
            .prepare_rows("t", vec![blind_put(vec![cell("a", 1, old)])], NOW)
            .unwrap();
        assert!(matches!(prepared.ops[0], Prepared::Refused { .. }));

        set_options(&store, |options| {
            options.deviation_cell_version_in_sec = Some(10 * 86_400)
        });
        let results = store.commit_rows(prepared, || NOW).unwrap();

        assert!(results[0].is_ok(), "{results:?}");
        assert_eq!(stored_cells(&store), vec![cell("a", 1, old)]);
    }

    #[test]
    fn a_prepared_write_to_a_table_deleted_before_it_commits_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_table(table(1, -1).definition, NOW).unwrap();
        let prepared = store
            .prepare_rows("t", vec![blind_put(vec![cell("a", 1, NOW)])], NOW)
            .unwrap();
        store.delete_table("t").unwrap();

        let error = store.commit_rows(prepared, || NOW).unwrap_err();

        assert_eq!(error, ApiError::no_table());
    }
}
