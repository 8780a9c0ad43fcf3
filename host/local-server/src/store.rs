//! Durable storage of tables and rows on redb, with Tablestore's data model: versioned cells,
//! max versions, TTL, max time deviation, conditional writes and auto-increment keys.
//!
//! Layout: `catalog` maps a table name to its normalized CreateTableRequest (protobuf) and
//! creation time; `rows` maps an order-preserving key ([`crate::keys`]) to the row's cells as
//! PlainBuffer (every stored version, per column newest first); `counters` holds the last
//! auto-increment value per table. Every write is one redb transaction committed with
//! immediate durability, so an acknowledged write survives a crash.

use std::path::Path;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyValue, Row, RowChange, RowExistence, Value,
};
use ots_protocol::pb::table::{CreateTableRequest, PrimaryKeyOption, PrimaryKeyType};
use ots_protocol::plainbuffer;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::keys;
use crate::stream::{self, LoggedRecord, Partition};

const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");

/// Most columns a row may have.
pub const MAX_COLUMNS_PER_ROW: usize = 1024;
/// Longest column name, in bytes.
pub const MAX_COLUMN_NAME_LEN: usize = 255;
/// Largest string or binary value, in bytes.
pub const MAX_VALUE_LEN: usize = 2 * 1024 * 1024;
/// Largest string or binary primary key value, in bytes.
pub const MAX_PK_VALUE_LEN: usize = 1024;

/// An error answer of the service: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The service error code.
    pub code: ErrorCode,
    /// The message sent to the client.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `OTSParameterInvalid` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ParameterInvalid, message)
    }

    fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InternalServerError, format!("storage: {err}"))
    }
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(err: $t) -> Self {
                Self::internal(err)
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A table's stored definition.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// The CreateTableRequest with every option filled in.
    pub definition: CreateTableRequest,
    /// When the table was created (ms since the epoch).
    pub created_at_ms: i64,
}

impl TableInfo {
    fn ttl_ms(&self) -> Option<i64> {
        let ttl = self.options().time_to_live.unwrap_or(-1);
        (ttl > 0).then(|| i64::from(ttl) * 1000)
    }

    fn max_versions(&self) -> usize {
        self.options().max_versions.unwrap_or(1).max(1) as usize
    }

    fn deviation_ms(&self) -> i64 {
        self.options()
            .deviation_cell_version_in_sec
            .unwrap_or(86_400)
            .saturating_mul(1000)
    }

    fn options(&self) -> &ots_protocol::pb::table::TableOptions {
        self.definition
            .table_options
            .as_ref()
            .expect("stored tables have options")
    }

    /// Whether the table has a stream enabled.
    pub fn stream_enabled(&self) -> bool {
        self.definition
            .stream_spec
            .as_ref()
            .is_some_and(|s| s.enable_stream)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.created_at_ms.to_le_bytes().to_vec();
        out.extend(self.definition.encode_to_vec());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, ApiError> {
        let (time, def) = bytes
            .split_at_checked(8)
            .ok_or_else(|| ApiError::internal("catalog entry too short"))?;
        Ok(Self {
            created_at_ms: i64::from_le_bytes(time.try_into().expect("8 bytes")),
            definition: CreateTableRequest::decode(def).map_err(ApiError::internal)?,
        })
    }
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSpec {
    /// Columns to return; empty means all.
    pub columns: Vec<String>,
    /// Versions per column to return.
    pub max_versions: usize,
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
pub type WriteOp = (RowChange, RowExistence);

/// The durable store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ApiError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        let db = Database::create(dir.join("tablestore.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(CATALOG)?;
        txn.open_table(ROWS)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(stream::PARTITIONS)?;
        txn.open_table(stream::LOG)?;
        txn.open_table(crate::tunnel::TUNNELS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// The database, for the tunnel service's own tables.
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Creates a table after validating and normalizing its definition.
    pub fn create_table(
        &self,
        mut request: CreateTableRequest,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        validate_table_name(&request.table_meta.table_name)?;
        let schema = &request.table_meta.primary_key;
        if schema.is_empty() || schema.len() > 4 {
            return Err(ApiError::invalid(format!(
                "The number of primary key columns must be in range: [1, 4], got {}.",
                schema.len()
            )));
        }
        let mut names = std::collections::HashSet::new();
        for column in schema {
            validate_column_name(&column.name)?;
            if !names.insert(column.name.as_str()) {
                return Err(ApiError::invalid(format!(
                    "Duplicated primary key name: '{}'.",
                    column.name
                )));
            }
            if PrimaryKeyType::try_from(column.r#type).is_err() {
                return Err(ApiError::invalid(format!(
                    "Invalid type of primary key '{}'.",
                    column.name
                )));
            }
            if column.option == Some(PrimaryKeyOption::AutoIncrement as i32)
                && column.r#type != PrimaryKeyType::Integer as i32
            {
                return Err(ApiError::invalid(
                    "Auto-increment primary key must be of type INTEGER.",
                ));
            }
        }
        let options = request.table_options.get_or_insert_default();
        let ttl = *options.time_to_live.get_or_insert(-1);
        let versions = *options.max_versions.get_or_insert(1);
        let deviation = *options.deviation_cell_version_in_sec.get_or_insert(86_400);
        if ttl == 0 || ttl < -1 {
            return Err(ApiError::invalid(format!("Invalid time_to_live: {ttl}.")));
        }
        if versions <= 0 {
            return Err(ApiError::invalid(format!(
                "Invalid max_versions: {versions}."
            )));
        }
        if deviation <= 0 {
            return Err(ApiError::invalid(format!(
                "Invalid deviation_cell_version_in_sec: {deviation}."
            )));
        }
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
                    format!("Requested table already exists: {name}."),
                ));
            }
            catalog.insert(name.as_str(), info.encode().as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A table's definition.
    pub fn table(&self, name: &str) -> Result<TableInfo, ApiError> {
        let txn = self.db.begin_read()?;
        let catalog = txn.open_table(CATALOG)?;
        let entry = catalog.get(name)?.ok_or_else(|| not_exist(name))?;
        TableInfo::decode(entry.value())
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
                return Err(not_exist(name));
            }
            let mut rows = txn.open_table(ROWS)?;
            let start = keys::table_prefix(name);
            let end = keys::table_end(name);
            rows.retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
            txn.open_table(COUNTERS)?.remove(name)?;
            txn.open_table(stream::PARTITIONS)?.remove(name)?;
            txn.open_table(stream::LOG)?
                .retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces a table's definition (UpdateTable); `update` edits it in place.
    pub fn update_table(
        &self,
        name: &str,
        update: impl FnOnce(&mut CreateTableRequest) -> Result<(), ApiError>,
    ) -> Result<TableInfo, ApiError> {
        let txn = self.db.begin_write()?;
        let info = {
            let mut catalog = txn.open_table(CATALOG)?;
            let mut info = {
                let entry = catalog.get(name)?.ok_or_else(|| not_exist(name))?;
                TableInfo::decode(entry.value())?
            };
            update(&mut info.definition)?;
            catalog.insert(name, info.encode().as_slice())?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Applies row changes to one table in one durable transaction. A change that fails
    /// (condition, schema, limits) is reported in its slot and leaves its row untouched; the
    /// others are applied.
    pub fn write_rows(
        &self,
        table: &str,
        ops: Vec<WriteOp>,
        now_ms: i64,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        let info = self.table(table)?;
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(ops.len());
        {
            let mut rows = txn.open_table(ROWS)?;
            let mut counters = txn.open_table(COUNTERS)?;
            let mut log = txn.open_table(stream::LOG)?;
            let mut appender = match info.stream_enabled() {
                true => Some(stream::Appender::new(
                    &txn.open_table(stream::PARTITIONS)?,
                    table,
                    now_ms,
                )?),
                false => None,
            };
            for (change, existence) in ops {
                let result = apply(
                    &info,
                    table,
                    &mut rows,
                    &mut counters,
                    change,
                    existence,
                    now_ms,
                );
                results.push(match (result, &mut appender) {
                    (Ok(effective), Some(appender)) => appender.append(&mut log, &effective),
                    (result, _) => result.map(drop),
                });
            }
        }
        txn.commit()?;
        Ok(results)
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
        check_primary_key(&info, pk, false)?;
        let txn = self.db.begin_read()?;
        let rows = txn.open_table(ROWS)?;
        let Some(stored) = rows.get(keys::encode(table, pk).as_slice())? else {
            return Ok(None);
        };
        let row = decode_stored(stored.value())?;
        Ok(project(row, &info, spec, now_ms))
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
        check_primary_key(&info, start, true)?;
        check_primary_key(&info, end, true)?;
        let start_key = keys::encode(table, start);
        let end_key = keys::encode(table, end);
        let txn = self.db.begin_read()?;
        let stored = txn.open_table(ROWS)?;
        let mut rows = Vec::new();
        let mut next_start = None;
        let mut visit = |value: &[u8]| -> Result<bool, ApiError> {
            let row = decode_stored(value)?;
            if rows.len() == limit {
                next_start = Some(row.primary_key);
                return Ok(false);
            }
            if let Some(row) = project(row, &info, spec, now_ms) {
                rows.push(row);
            }
            Ok(true)
        };
        if backward {
            if end_key < start_key {
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
            }
        } else if start_key < end_key {
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
        let txn = self.db.begin_read()?;
        stream::load_partitions(&txn.open_table(stream::PARTITIONS)?, table)
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
        let txn = self.db.begin_read()?;
        let log = txn.open_table(stream::LOG)?;
        let start = stream::log_key(table, partition, after.saturating_add(1));
        let end = stream::log_key(table, partition, u64::MAX);
        let mut records = Vec::new();
        for entry in log.range(start.as_slice()..=end.as_slice())?.take(max) {
            let (k, v) = entry?;
            records.push(stream::decode_entry(k.value(), v.value())?);
        }
        Ok((records, stream::head(&log, table, partition)?))
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
        check_primary_key(&info, at, false)?;
        let key = keys::encode(table, at);
        let point = key[table.len() + 1..].to_vec();
        let txn = self.db.begin_write()?;
        let children = {
            let mut stored = txn.open_table(stream::PARTITIONS)?;
            let mut partitions = stream::load_partitions(&stored, table)?;
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
            stream::save_partitions(&mut stored, table, &partitions)?;
            (next_id, next_id + 1)
        };
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

fn not_exist(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ObjectNotExist,
        format!("Requested table does not exist: {name}."),
    )
}

fn validate_table_name(name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 255;
    if !valid {
        return Err(ApiError::invalid(format!("Invalid table name: '{name}'.")));
    }
    Ok(())
}

fn validate_column_name(name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_COLUMN_NAME_LEN;
    if !valid {
        return Err(ApiError::invalid(format!("Invalid column name: '{name}'.")));
    }
    Ok(())
}

/// Checks a key against the schema: same columns in order, matching types. `bound` allows
/// -inf/+inf (range bounds).
fn check_primary_key(info: &TableInfo, pk: &PrimaryKey, bound: bool) -> Result<(), ApiError> {
    let schema = &info.definition.table_meta.primary_key;
    if pk.0.len() != schema.len() {
        return Err(ApiError::invalid(format!(
            "The number of primary key columns must be {}, got {}.",
            schema.len(),
            pk.0.len()
        )));
    }
    for (column, def) in pk.0.iter().zip(schema) {
        if column.name != def.name {
            return Err(ApiError::invalid(format!(
                "The name of primary key column mismatch: expected '{}', got '{}'.",
                def.name, column.name
            )));
        }
        let ok = match (&column.value, PrimaryKeyType::try_from(def.r#type)) {
            (PrimaryKeyValue::Integer(_), Ok(PrimaryKeyType::Integer)) => true,
            (PrimaryKeyValue::String(s), Ok(PrimaryKeyType::String)) => s.len() <= MAX_PK_VALUE_LEN,
            (PrimaryKeyValue::Binary(b), Ok(PrimaryKeyType::Binary)) => b.len() <= MAX_PK_VALUE_LEN,
            (PrimaryKeyValue::InfMin | PrimaryKeyValue::InfMax, _) => bound,
            _ => false,
        };
        if !ok {
            return Err(ApiError::invalid(format!(
                "Invalid value of primary key column '{}': {:?}.",
                column.name, column.value
            )));
        }
    }
    Ok(())
}

fn decode_stored(bytes: &[u8]) -> Result<Row, ApiError> {
    plainbuffer::decode_rows(bytes)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("empty stored row"))
}

impl From<plainbuffer::PlainBufferError> for ApiError {
    fn from(err: plainbuffer::PlainBufferError) -> Self {
        Self::internal(err)
    }
}

/// Filters a stored row for a read: drops expired cells, keeps the requested columns and
/// versions. A row left with no cells still exists (it was written with its key only) unless
/// the read asked for specific columns.
fn project(mut row: Row, info: &TableInfo, spec: &ReadSpec, now_ms: i64) -> Option<Row> {
    let had_cells = !row.cells.is_empty();
    if let Some(ttl) = info.ttl_ms() {
        row.cells
            .retain(|c| c.timestamp.unwrap_or(i64::MAX) >= now_ms - ttl);
    }
    if had_cells && row.cells.is_empty() {
        return None;
    }
    if !spec.columns.is_empty() {
        row.cells.retain(|c| spec.columns.contains(&c.name));
        if row.cells.is_empty() {
            return None;
        }
    }
    let mut kept = Vec::with_capacity(row.cells.len());
    let mut current: Option<(String, usize)> = None;
    for cell in row.cells {
        let count = match &mut current {
            Some((name, count)) if *name == cell.name => {
                *count += 1;
                *count
            }
            _ => {
                current = Some((cell.name.clone(), 1));
                1
            }
        };
        if count <= spec.max_versions {
            kept.push(cell);
        }
    }
    row.cells = kept;
    Some(row)
}

/// Applies one change inside a write transaction. Returns the change as it took effect:
/// server-assigned timestamps and auto-increment values filled in, increments resolved to
/// puts of their result (what the stream records).
fn apply(
    info: &TableInfo,
    table: &str,
    rows: &mut redb::Table<&[u8], &[u8]>,
    counters: &mut redb::Table<&str, i64>,
    change: RowChange,
    existence: RowExistence,
    now_ms: i64,
) -> Result<RowChange, ApiError> {
    let mut change = change;
    assign_auto_increment(info, table, counters, &mut change)?;
    check_primary_key(info, change.primary_key(), false)?;
    validate_change(info, &change, now_ms)?;
    let key = keys::encode(table, change.primary_key());
    let existing = match rows.get(key.as_slice())? {
        Some(v) => Some(decode_stored(v.value())?),
        None => None,
    };
    match (existence, existing.is_some()) {
        (RowExistence::ExpectExist, false) | (RowExistence::ExpectNotExist, true) => {
            return Err(ApiError::new(
                ErrorCode::ConditionCheckFail,
                "Condition check failed.",
            ));
        }
        _ => {}
    }
    if matches!(change, RowChange::Update { .. }) && existence == RowExistence::ExpectNotExist {
        return Err(ApiError::invalid(
            "Invalid condition: EXPECT_NOT_EXIST while updating row.",
        ));
    }
    let (new_row, effective) = match change {
        RowChange::Delete { primary_key } => (None, RowChange::Delete { primary_key }),
        RowChange::Put { primary_key, cells } => {
            let cells: Vec<Cell> = cells
                .into_iter()
                .map(|c| Cell {
                    timestamp: Some(c.timestamp.unwrap_or(now_ms)),
                    ..c
                })
                .collect();
            let row = Row {
                primary_key: primary_key.clone(),
                cells: cells.clone(),
            };
            (Some(row), RowChange::Put { primary_key, cells })
        }
        RowChange::Update {
            primary_key,
            updates,
        } => {
            let mut cells = existing.map(|r| r.cells).unwrap_or_default();
            let mut effective = Vec::with_capacity(updates.len());
            for update in updates {
                let op = match update.op {
                    ColumnOp::Put { value, timestamp } => {
                        let ts = timestamp.unwrap_or(now_ms);
                        put_version(&mut cells, &update.name, value.clone(), ts);
                        ColumnOp::Put {
                            value,
                            timestamp: Some(ts),
                        }
                    }
                    ColumnOp::DeleteOneVersion { timestamp } => {
                        cells
                            .retain(|c| !(c.name == update.name && c.timestamp == Some(timestamp)));
                        ColumnOp::DeleteOneVersion { timestamp }
                    }
                    ColumnOp::DeleteAllVersions => {
                        cells.retain(|c| c.name != update.name);
                        ColumnOp::DeleteAllVersions
                    }
                    ColumnOp::Increment { delta } => {
                        let current = cells
                            .iter()
                            .filter(|c| c.name == update.name)
                            .max_by_key(|c| c.timestamp)
                            .map(|c| match c.value {
                                Value::Integer(i) => Ok(i),
                                _ => Err(ApiError::invalid(format!(
                                    "Column '{}' to increment is not an integer.",
                                    update.name
                                ))),
                            })
                            .transpose()?
                            .unwrap_or(0);
                        let value = Value::Integer(current.wrapping_add(delta));
                        put_version(&mut cells, &update.name, value.clone(), now_ms);
                        ColumnOp::Put {
                            value,
                            timestamp: Some(now_ms),
                        }
                    }
                };
                effective.push(ColumnUpdate {
                    name: update.name,
                    op,
                });
            }
            let row = Row {
                primary_key: primary_key.clone(),
                cells,
            };
            let change = RowChange::Update {
                primary_key,
                updates: effective,
            };
            (Some(row), change)
        }
    };
    match new_row {
        None => {
            rows.remove(key.as_slice())?;
        }
        Some(mut row) => {
            normalize(&mut row.cells, info.max_versions());
            let columns = row
                .cells
                .iter()
                .map(|c| &c.name)
                .collect::<std::collections::HashSet<_>>()
                .len();
            if columns > MAX_COLUMNS_PER_ROW {
                return Err(ApiError::new(
                    ErrorCode::OutOfColumnCountLimit,
                    format!("The number of columns exceeds the limit: {MAX_COLUMNS_PER_ROW}."),
                ));
            }
            rows.insert(key.as_slice(), plainbuffer::encode_rows(&[row]).as_slice())?;
        }
    }
    Ok(effective)
}

/// Writes one version of a column, replacing a version with the same timestamp.
fn put_version(cells: &mut Vec<Cell>, name: &str, value: Value, timestamp: i64) {
    cells.retain(|c| !(c.name == name && c.timestamp == Some(timestamp)));
    cells.push(Cell {
        name: name.to_owned(),
        value,
        timestamp: Some(timestamp),
    });
}

/// Sorts cells by name, newest version first, and drops versions beyond `max_versions`.
fn normalize(cells: &mut Vec<Cell>, max_versions: usize) {
    cells.sort_by(|a, b| a.name.cmp(&b.name).then(b.timestamp.cmp(&a.timestamp)));
    cells.dedup_by(|b, a| a.name == b.name && a.timestamp == b.timestamp);
    let mut kept: Vec<Cell> = Vec::with_capacity(cells.len());
    let mut run = 0;
    for cell in cells.drain(..) {
        run = if kept.last().is_some_and(|p| p.name == cell.name) {
            run + 1
        } else {
            1
        };
        if run <= max_versions {
            kept.push(cell);
        }
    }
    *cells = kept;
}

/// Replaces auto-increment placeholders of a PutRow with the table's next counter value.
fn assign_auto_increment(
    info: &TableInfo,
    table: &str,
    counters: &mut redb::Table<&str, i64>,
    change: &mut RowChange,
) -> Result<(), ApiError> {
    let is_put = matches!(change, RowChange::Put { .. });
    let pk = match change {
        RowChange::Put { primary_key, .. }
        | RowChange::Update { primary_key, .. }
        | RowChange::Delete { primary_key } => primary_key,
    };
    for (column, def) in pk.0.iter_mut().zip(&info.definition.table_meta.primary_key) {
        if column.value != PrimaryKeyValue::AutoIncrement {
            continue;
        }
        if !is_put || def.option != Some(PrimaryKeyOption::AutoIncrement as i32) {
            return Err(ApiError::invalid(format!(
                "Primary key column '{}' cannot take an auto-increment value here.",
                column.name
            )));
        }
        let next = counters.get(table)?.map(|v| v.value()).unwrap_or(0) + 1;
        counters.insert(table, next)?;
        column.value = PrimaryKeyValue::Integer(next);
    }
    Ok(())
}

fn validate_change(info: &TableInfo, change: &RowChange, now_ms: i64) -> Result<(), ApiError> {
    let deviation = info.deviation_ms();
    let check_ts = |name: &str, ts: i64| {
        if (ts - now_ms).abs() > deviation {
            return Err(ApiError::invalid(format!(
                "The timestamp {ts} of column '{name}' is out of the table's max time deviation ({} s).",
                deviation / 1000
            )));
        }
        Ok(())
    };
    let check_value = |name: &str, value: &Value| {
        validate_column_name(name)?;
        let len = match value {
            Value::String(s) => s.len(),
            Value::Binary(b) => b.len(),
            _ => 0,
        };
        if len > MAX_VALUE_LEN {
            return Err(ApiError::new(
                ErrorCode::OutOfRowSizeLimit,
                format!("The value of column '{name}' is larger than {MAX_VALUE_LEN} bytes."),
            ));
        }
        Ok(())
    };
    let is_pk = |name: &str| {
        info.definition
            .table_meta
            .primary_key
            .iter()
            .any(|p| p.name == name)
    };
    match change {
        RowChange::Put { cells, .. } => {
            for cell in cells {
                check_value(&cell.name, &cell.value)?;
                if is_pk(&cell.name) {
                    return Err(ApiError::invalid(format!(
                        "Attribute column '{}' has the name of a primary key column.",
                        cell.name
                    )));
                }
                if let Some(ts) = cell.timestamp {
                    check_ts(&cell.name, ts)?;
                }
            }
        }
        RowChange::Update { updates, .. } => {
            if updates.is_empty() {
                return Err(ApiError::invalid("No column to update."));
            }
            for update in updates {
                validate_column_name(&update.name)?;
                if is_pk(&update.name) {
                    return Err(ApiError::invalid(format!(
                        "Attribute column '{}' has the name of a primary key column.",
                        update.name
                    )));
                }
                match &update.op {
                    ColumnOp::Put { value, timestamp } => {
                        check_value(&update.name, value)?;
                        if let Some(ts) = timestamp {
                            check_ts(&update.name, *ts)?;
                        }
                    }
                    ColumnOp::DeleteOneVersion { .. }
                    | ColumnOp::DeleteAllVersions
                    | ColumnOp::Increment { .. } => {}
                }
            }
        }
        RowChange::Delete { .. } => {}
    }
    Ok(())
}
