//! Tablestore's data-model rules as pure functions: what a table definition may be, which keys
//! and changes a table accepts, how a change merges into a stored row (versions, timestamps,
//! increments, conditions), auto-increment values; what a read returns of a row ([`read`]);
//! filters and column conditions ([`filter`]). [`crate::store`] does the I/O around them.

pub mod filter;
pub mod read;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyValue, Row, RowChange, RowExistence, Value,
};
use ots_protocol::pb::table::{CreateTableRequest, PrimaryKeyOption, PrimaryKeyType, TableOptions};

use crate::error::ApiError;
use filter::Condition;

/// Most columns a row may have.
pub const MAX_COLUMNS_PER_ROW: usize = 1024;
/// Longest column name, in bytes.
pub const MAX_COLUMN_NAME_LEN: usize = 255;
/// Largest string or binary value, in bytes.
pub const MAX_VALUE_LEN: usize = 2 * 1024 * 1024;
/// Largest string or binary primary key value, in bytes.
pub const MAX_PK_VALUE_LEN: usize = 1024;
/// Max time deviation of a table that does not set one, in seconds.
pub const DEFAULT_DEVIATION_SECS: i64 = 86_400;

/// A table's definition as stored: the CreateTableRequest with every option filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// The normalized CreateTableRequest ([`normalize_table`]).
    pub definition: CreateTableRequest,
    /// When the table was created (ms since the epoch).
    pub created_at_ms: i64,
}

impl TableInfo {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.definition.table_meta.table_name
    }

    /// How long cells live, in ms; `None` for ever.
    pub fn ttl_ms(&self) -> Option<i64> {
        let ttl = self.options().time_to_live.unwrap_or(-1);
        (ttl > 0).then(|| i64::from(ttl) * 1000)
    }

    /// Versions kept per column.
    pub fn max_versions(&self) -> usize {
        self.options().max_versions.unwrap_or(1).max(1) as usize
    }

    /// How far from now a written timestamp may be, in ms.
    pub fn deviation_ms(&self) -> i64 {
        self.options()
            .deviation_cell_version_in_sec
            .unwrap_or(DEFAULT_DEVIATION_SECS)
            .saturating_mul(1000)
    }

    /// The table's options (always present once normalized).
    pub fn options(&self) -> &TableOptions {
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

    /// Whether `name` is one of the primary key columns.
    pub fn is_key_column(&self, name: &str) -> bool {
        self.definition
            .table_meta
            .primary_key
            .iter()
            .any(|p| p.name == name)
    }
}

/// Validates a CreateTable request and fills in the options it leaves out (TTL −1, one
/// version, one day of max time deviation), as the service stores them.
pub fn normalize_table(request: &mut CreateTableRequest) -> Result<(), ApiError> {
    validate_table_name(&request.table_meta.table_name)?;
    let schema = &request.table_meta.primary_key;
    if schema.is_empty() || schema.len() > 4 {
        return Err(ApiError::invalid(format!(
            "The number of primary key columns must be in range: [1, 4], got {}.",
            schema.len()
        )));
    }
    let mut names = HashSet::new();
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
    let deviation = *options
        .deviation_cell_version_in_sec
        .get_or_insert(DEFAULT_DEVIATION_SECS);
    check_ttl(ttl)?;
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
    Ok(())
}

/// Shortest time to live other than "for ever" (−1), in seconds.
pub const MIN_TTL_SECS: i32 = 86_400;

/// A time to live is −1 (for ever) or at least a day.
pub fn check_ttl(ttl: i32) -> Result<(), ApiError> {
    if ttl != -1 && ttl < MIN_TTL_SECS {
        return Err(ApiError::invalid(format!(
            "Invalid time_to_live: {ttl}; it must be -1 or at least {MIN_TTL_SECS} seconds."
        )));
    }
    Ok(())
}

/// Table names: a letter or `_`, then letters, digits and `_`; at most 255 bytes.
pub fn validate_table_name(name: &str) -> Result<(), ApiError> {
    if !is_identifier(name, 255) {
        return Err(ApiError::invalid(format!("Invalid table name: '{name}'.")));
    }
    Ok(())
}

/// Column names follow the table-name rule, at most [`MAX_COLUMN_NAME_LEN`] bytes.
pub fn validate_column_name(name: &str) -> Result<(), ApiError> {
    if !is_identifier(name, MAX_COLUMN_NAME_LEN) {
        return Err(ApiError::invalid(format!("Invalid column name: '{name}'.")));
    }
    Ok(())
}

fn is_identifier(name: &str, max_len: usize) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= max_len
}

/// Checks a key against the schema: the same columns in order, matching types, values within
/// the size limit (`OTSInvalidPK` for a key that does not fit the schema, as the Java SDK's
/// tests against the service show). `bound` allows −inf/+inf (range bounds).
pub fn check_primary_key(info: &TableInfo, pk: &PrimaryKey, bound: bool) -> Result<(), ApiError> {
    let schema = &info.definition.table_meta.primary_key;
    let invalid_pk = |m: String| ApiError::new(ErrorCode::InvalidPk, m);
    if pk.0.len() != schema.len() {
        return Err(invalid_pk(format!(
            "Validate PK size fail. Input: {}, Meta: {}.",
            pk.0.len(),
            schema.len()
        )));
    }
    for (column, def) in pk.0.iter().zip(schema) {
        if column.name != def.name {
            return Err(invalid_pk(format!(
                "Validate PK name fail. Input: {}, Meta: {}.",
                column.name, def.name
            )));
        }
        let expected = PrimaryKeyType::try_from(def.r#type);
        let len = match (&column.value, expected) {
            (PrimaryKeyValue::Integer(_), Ok(PrimaryKeyType::Integer)) => 0,
            (PrimaryKeyValue::String(s), Ok(PrimaryKeyType::String)) => s.len(),
            (PrimaryKeyValue::Binary(b), Ok(PrimaryKeyType::Binary)) => b.len(),
            (PrimaryKeyValue::InfMin | PrimaryKeyValue::InfMax, _) if bound => 0,
            (PrimaryKeyValue::InfMin, _) => {
                return Err(ApiError::invalid(
                    "VT_INF_MIN is an invalid type for the primary key.",
                ));
            }
            (PrimaryKeyValue::InfMax, _) => {
                return Err(ApiError::invalid(
                    "VT_INF_MAX is an invalid type for the primary key.",
                ));
            }
            (PrimaryKeyValue::AutoIncrement, _) => {
                return Err(ApiError::invalid(
                    "PKAutoIncr can't be used for read operations.",
                ));
            }
            (value, _) => {
                return Err(invalid_pk(format!(
                    "Validate PK type fail. Input: {}, Meta: {}.",
                    value_type(value),
                    schema_type(def.r#type)
                )));
            }
        };
        if len > MAX_PK_VALUE_LEN {
            return Err(ApiError::invalid(format!(
                "The length of primary key column: '{}' exceeds the MaxLength:{MAX_PK_VALUE_LEN} with CurrentLength:{len}.",
                column.name
            )));
        }
    }
    Ok(())
}

fn value_type(value: &PrimaryKeyValue) -> &'static str {
    match value {
        PrimaryKeyValue::Integer(_) => "VT_INTEGER",
        PrimaryKeyValue::String(_) => "VT_STRING",
        PrimaryKeyValue::Binary(_) => "VT_BLOB",
        PrimaryKeyValue::InfMin => "VT_INF_MIN",
        PrimaryKeyValue::InfMax => "VT_INF_MAX",
        PrimaryKeyValue::AutoIncrement => "VT_AUTO_INCREMENT",
    }
}

fn schema_type(r#type: i32) -> &'static str {
    match PrimaryKeyType::try_from(r#type) {
        Ok(PrimaryKeyType::Integer) => "VT_INTEGER",
        Ok(PrimaryKeyType::String) => "VT_STRING",
        Ok(PrimaryKeyType::Binary) => "VT_BLOB",
        Err(_) => "VT_UNKNOWN",
    }
}

/// What a write expects of the row before it: its existence and, optionally, a condition on
/// its columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expectation {
    /// Whether the row must exist, must not, or either.
    pub existence: RowExistence,
    /// A condition the row's columns must meet.
    pub condition: Option<Condition>,
}

/// Whether the key asks for an auto-increment value in one of its columns (the value comes
/// from the table's counter when the write is applied).
pub fn has_auto_increment(primary_key: &PrimaryKey) -> bool {
    primary_key
        .0
        .iter()
        .any(|c| c.value == PrimaryKeyValue::AutoIncrement)
}

/// Replaces the auto-increment placeholders of a PutRow or UpdateRow with the values after
/// `last` (the table's last assigned value); returns the new last value. The service allows
/// them in UpdateRow too (Java SDK `testAutoPkWrite`), but not in deletes, and only without
/// conditions.
pub fn assign_auto_increment(
    info: &TableInfo,
    change: &mut RowChange,
    expectation: &Expectation,
    last: i64,
) -> Result<i64, ApiError> {
    let is_delete = matches!(change, RowChange::Delete { .. });
    let pk = match change {
        RowChange::Put { primary_key, .. }
        | RowChange::Update { primary_key, .. }
        | RowChange::Delete { primary_key } => primary_key,
    };
    if !has_auto_increment(pk) {
        return Ok(last);
    }
    if is_delete {
        return Err(ApiError::invalid(
            "Invalid row to delete which with pk auto increment.",
        ));
    }
    if expectation.existence != RowExistence::Ignore {
        return Err(ApiError::invalid(format!(
            "Invalid expect:{} when modify row with pk auto increment.",
            match expectation.existence {
                RowExistence::ExpectExist => "EXPECT_EXIST",
                _ => "EXPECT_NOT_EXIST",
            }
        )));
    }
    if expectation.condition.is_some() {
        return Err(ApiError::invalid(
            "Can't set condition when modify row with pk auto increment.",
        ));
    }
    let mut last = last;
    for (column, def) in pk.0.iter_mut().zip(&info.definition.table_meta.primary_key) {
        if column.value != PrimaryKeyValue::AutoIncrement {
            continue;
        }
        if def.option != Some(PrimaryKeyOption::AutoIncrement as i32) {
            return Err(ApiError::invalid(format!(
                "Primary key column '{}' is not an auto-increment column.",
                column.name
            )));
        }
        last += 1;
        column.value = PrimaryKeyValue::Integer(last);
    }
    Ok(last)
}

/// Checks a change's attribute columns: valid names that are not key columns, values within
/// the size limit, timestamps within the table's max time deviation of `now_ms`.
pub fn validate_change(info: &TableInfo, change: &RowChange, now_ms: i64) -> Result<(), ApiError> {
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
    let check_name = |name: &str| {
        validate_column_name(name)?;
        if info.is_key_column(name) {
            return Err(ApiError::invalid(format!(
                "Attribute column '{name}' has the name of a primary key column."
            )));
        }
        Ok(())
    };
    let check_value = |name: &str, value: &Value| {
        let len = match value {
            Value::String(s) => s.len(),
            Value::Binary(b) => b.len(),
            _ => 0,
        };
        if len > MAX_VALUE_LEN {
            return Err(ApiError::invalid(format!(
                "The length of attribute column: '{name}' exceeds the MaxLength:{MAX_VALUE_LEN} with CurrentLength:{len}."
            )));
        }
        Ok(())
    };
    match change {
        RowChange::Put { cells, .. } => {
            for cell in cells {
                check_name(&cell.name)?;
                check_value(&cell.name, &cell.value)?;
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
                check_name(&update.name)?;
                if let ColumnOp::Put { value, timestamp } = &update.op {
                    check_value(&update.name, value)?;
                    if let Some(ts) = timestamp {
                        check_ts(&update.name, *ts)?;
                    }
                }
            }
        }
        RowChange::Delete { .. } => {}
    }
    Ok(())
}

/// A change merged into a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The row to store, or `None` when the row is deleted.
    pub row: Option<Row>,
    /// The change as it took effect, for the stream: server-assigned timestamps filled in,
    /// increments resolved to puts of their result.
    pub effective: RowChange,
}

/// Merges `change` into the stored row `existing` (cells sorted by name, newest first), after
/// checking what the write expects of the row: its existence first, then the column condition
/// on its live cells (the service checks them in that order). Cells without a timestamp get
/// `now_ms`; a PutRow replaces the whole row, an UpdateRow edits versions column by column;
/// the result keeps at most the table's max versions and columns.
pub fn merge(
    info: &TableInfo,
    existing: Option<Row>,
    change: RowChange,
    expectation: &Expectation,
    now_ms: i64,
) -> Result<Merged, ApiError> {
    let existence = expectation.existence;
    if matches!(change, RowChange::Update { .. }) && existence == RowExistence::ExpectNotExist {
        return Err(ApiError::invalid(
            "Invalid condition: EXPECT_NOT_EXIST while updating row.",
        ));
    }
    let live = existing.map(|mut row| {
        if let Some(ttl) = info.ttl_ms() {
            row.cells
                .retain(|c| c.timestamp.unwrap_or(i64::MAX) >= now_ms - ttl);
        }
        row
    });
    let failed = || ApiError::new(ErrorCode::ConditionCheckFail, "Condition check failed.");
    match (existence, live.is_some()) {
        (RowExistence::ExpectExist, false) | (RowExistence::ExpectNotExist, true) => {
            return Err(failed());
        }
        _ => {}
    }
    if let Some(condition) = &expectation.condition {
        let cells = live.as_ref().map_or(&[][..], |r| r.cells.as_slice());
        if !condition.matches(change.primary_key(), cells) {
            return Err(failed());
        }
    }
    let existing = live;
    let (row, effective): (Option<Row>, RowChange) = match change {
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
            let existed = existing.is_some();
            let mut cells = existing.map(|r| r.cells).unwrap_or_default();
            let mut effective = Vec::with_capacity(updates.len());
            for update in updates {
                let op = apply_update(&mut cells, &update.name, update.op, now_ms)?;
                effective.push(ColumnUpdate {
                    name: update.name,
                    op,
                });
            }
            // An update of a missing row that leaves it without cells (it only deleted) creates
            // no row (Python SDK test_one_delete_in_update).
            let row = (existed || !cells.is_empty()).then(|| Row {
                primary_key: primary_key.clone(),
                cells,
            });
            let change = RowChange::Update {
                primary_key,
                updates: effective,
            };
            (row, change)
        }
    };
    let row = row.map(|row| finish_row(info, row)).transpose()?;
    Ok(Merged { row, effective })
}

/// The cells a PutRow stores when it expects nothing of the stored row and carries every
/// cell's timestamp: then neither the stored row nor the clock changes the outcome, and the row
/// can be built (and the write refused) before the write's transaction, away from the one
/// writer. Borrowed when the put's cells are already in stored order (a replicated row is).
/// `None` when the put is not of that kind; [`merge`] gives the same row for it.
pub fn blind_put<'a>(
    info: &TableInfo,
    change: &'a RowChange,
    expectation: &Expectation,
) -> Option<Result<Cow<'a, [Cell]>, ApiError>> {
    let RowChange::Put { cells, .. } = change else {
        return None;
    };
    let blind = expectation.existence == RowExistence::Ignore
        && expectation.condition.is_none()
        && cells.iter().all(|c| c.timestamp.is_some());
    blind.then(|| {
        let cells = match is_normalized(cells, info.max_versions()) {
            true => Cow::Borrowed(cells.as_slice()),
            false => {
                let mut cells = cells.clone();
                normalize(&mut cells, info.max_versions());
                Cow::Owned(cells)
            }
        };
        check_column_count(&cells)?;
        Ok(cells)
    })
}

/// A merged row as it is stored: its versions normalized ([`normalize`]) within the column
/// limit.
fn finish_row(info: &TableInfo, mut row: Row) -> Result<Row, ApiError> {
    normalize(&mut row.cells, info.max_versions());
    check_column_count(&row.cells)?;
    Ok(row)
}

/// Refuses normalized cells of more columns than a row may have.
fn check_column_count(cells: &[Cell]) -> Result<(), ApiError> {
    // Sorted by name, so each column starts where the name changes.
    let columns = 1 + cells
        .windows(2)
        .filter(|pair| pair[0].name != pair[1].name)
        .count();
    if !cells.is_empty() && columns > MAX_COLUMNS_PER_ROW {
        return Err(ApiError::new(
            ErrorCode::OutOfColumnCountLimit,
            format!("The number of columns exceeds the limit: {MAX_COLUMNS_PER_ROW}."),
        ));
    }
    Ok(())
}

/// Applies one column operation to a row's cells; returns the operation as it took effect.
fn apply_update(
    cells: &mut Vec<Cell>,
    name: &str,
    op: ColumnOp,
    now_ms: i64,
) -> Result<ColumnOp, ApiError> {
    Ok(match op {
        ColumnOp::Put { value, timestamp } => {
            let ts = timestamp.unwrap_or(now_ms);
            put_version(cells, name, value.clone(), ts);
            ColumnOp::Put {
                value,
                timestamp: Some(ts),
            }
        }
        ColumnOp::DeleteOneVersion { timestamp } => {
            cells.retain(|c| !(c.name == name && c.timestamp == Some(timestamp)));
            ColumnOp::DeleteOneVersion { timestamp }
        }
        ColumnOp::DeleteAllVersions => {
            cells.retain(|c| c.name != name);
            ColumnOp::DeleteAllVersions
        }
        ColumnOp::Increment { delta } => {
            let current = cells
                .iter()
                .filter(|c| c.name == name)
                .max_by_key(|c| c.timestamp)
                .map(|c| match c.value {
                    Value::Integer(i) => Ok(i),
                    _ => Err(ApiError::invalid(format!(
                        "Column '{name}' to increment is not an integer."
                    ))),
                })
                .transpose()?
                .unwrap_or(0);
            let value = Value::Integer(current.wrapping_add(delta));
            put_version(cells, name, value.clone(), now_ms);
            ColumnOp::Put {
                value,
                timestamp: Some(now_ms),
            }
        }
    })
}

/// Writes one version of a column, replacing a version with the same timestamp.
pub fn put_version(cells: &mut Vec<Cell>, name: &str, value: Value, timestamp: i64) {
    cells.retain(|c| !(c.name == name && c.timestamp == Some(timestamp)));
    cells.push(Cell {
        name: name.to_owned(),
        value,
        timestamp: Some(timestamp),
    });
}

/// Sorts cells by name, newest version first, and drops versions beyond `max_versions`.
pub fn normalize(cells: &mut Vec<Cell>, max_versions: usize) {
    if is_normalized(cells, max_versions) {
        return;
    }
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

/// Whether `cells` are as [`normalize`] leaves them: by name, newest first, no version twice,
/// at most `max_versions` per column.
fn is_normalized(cells: &[Cell], max_versions: usize) -> bool {
    let mut run = 1;
    for pair in cells.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        match a.name.cmp(&b.name) {
            Ordering::Less => run = 1,
            Ordering::Equal if b.timestamp < a.timestamp => {
                run += 1;
                if run > max_versions {
                    return false;
                }
            }
            _ => return false,
        }
    }
    cells.is_empty() || max_versions >= 1
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ots_protocol::model::PrimaryKeyColumn;
    use ots_protocol::pb::table::{CapacityUnit, PrimaryKeySchema, ReservedThroughput, TableMeta};

    pub(crate) const NOW: i64 = 1_700_000_000_000;

    fn request(keys: &[(&str, PrimaryKeyType, bool)]) -> CreateTableRequest {
        CreateTableRequest {
            table_meta: TableMeta {
                table_name: "t".into(),
                primary_key: keys
                    .iter()
                    .map(|(name, kind, auto)| PrimaryKeySchema {
                        name: (*name).into(),
                        r#type: *kind as i32,
                        option: auto.then_some(PrimaryKeyOption::AutoIncrement as i32),
                    })
                    .collect(),
                defined_column: vec![],
                index_meta: vec![],
            },
            reserved_throughput: ReservedThroughput {
                capacity_unit: CapacityUnit::default(),
            },
            table_options: None,
            ..Default::default()
        }
    }

    /// A table keyed by integer `id`, keeping `versions` versions, with `ttl_secs` (−1: none).
    pub(crate) fn table(versions: i32, ttl_secs: i32) -> TableInfo {
        let mut definition = request(&[("id", PrimaryKeyType::Integer, false)]);
        definition.table_options = Some(TableOptions {
            time_to_live: Some(ttl_secs),
            max_versions: Some(versions),
            ..Default::default()
        });
        // Short TTLs make the projection tests readable; the service's minimum is checked
        // by `table_definitions_are_checked`.
        let _ = normalize_table(&mut definition);
        TableInfo {
            definition,
            created_at_ms: 0,
        }
    }

    fn key(id: i64) -> PrimaryKey {
        PrimaryKey(vec![PrimaryKeyColumn {
            name: "id".into(),
            value: PrimaryKeyValue::Integer(id),
        }])
    }

    pub(crate) fn cell(name: &str, value: i64, ts: i64) -> Cell {
        Cell {
            name: name.into(),
            value: Value::Integer(value),
            timestamp: Some(ts),
        }
    }

    pub(crate) fn row(cells: Vec<Cell>) -> Row {
        Row {
            primary_key: key(1),
            cells,
        }
    }

    fn update(ops: Vec<(&str, ColumnOp)>) -> RowChange {
        RowChange::Update {
            primary_key: key(1),
            updates: ops
                .into_iter()
                .map(|(name, op)| ColumnUpdate {
                    name: name.into(),
                    op,
                })
                .collect(),
        }
    }

    fn merged_cells(info: &TableInfo, existing: Option<Row>, change: RowChange) -> Vec<Cell> {
        merge(info, existing, change, &Expectation::default(), NOW)
            .unwrap()
            .row
            .unwrap()
            .cells
    }

    #[test]
    fn a_new_table_gets_the_service_defaults() {
        let mut definition = request(&[("id", PrimaryKeyType::Integer, false)]);
        normalize_table(&mut definition).unwrap();
        let options = definition.table_options.unwrap();
        assert_eq!(options.time_to_live, Some(-1));
        assert_eq!(options.max_versions, Some(1));
        assert_eq!(
            options.deviation_cell_version_in_sec,
            Some(DEFAULT_DEVIATION_SECS)
        );
    }

    #[test]
    fn table_definitions_are_checked() {
        let invalid = |mut r: CreateTableRequest| normalize_table(&mut r).unwrap_err().message;
        assert!(invalid(request(&[])).contains("must be in range: [1, 4], got 0"));
        let five = [("a", PrimaryKeyType::Integer, false); 5];
        assert!(invalid(request(&five)).contains("got 5"));
        let twice = [
            ("a", PrimaryKeyType::Integer, false),
            ("a", PrimaryKeyType::String, false),
        ];
        assert!(invalid(request(&twice)).contains("Duplicated primary key name: 'a'"));
        let auto_string = [("a", PrimaryKeyType::String, true)];
        assert!(invalid(request(&auto_string)).contains("must be of type INTEGER"));
        let mut bad_name = request(&[("a", PrimaryKeyType::Integer, false)]);
        bad_name.table_meta.table_name = "1t".into();
        assert_eq!(invalid(bad_name), "Invalid table name: '1t'.");
        for (ttl, versions, deviation, message) in [
            (
                0,
                1,
                1,
                "Invalid time_to_live: 0; it must be -1 or at least 86400 seconds.",
            ),
            (
                -2,
                1,
                1,
                "Invalid time_to_live: -2; it must be -1 or at least 86400 seconds.",
            ),
            (
                3600,
                1,
                1,
                "Invalid time_to_live: 3600; it must be -1 or at least 86400 seconds.",
            ),
            (-1, 0, 1, "Invalid max_versions: 0."),
            (-1, 1, 0, "Invalid deviation_cell_version_in_sec: 0."),
        ] {
            let mut r = request(&[("a", PrimaryKeyType::Integer, false)]);
            r.table_options = Some(TableOptions {
                time_to_live: Some(ttl),
                max_versions: Some(versions),
                deviation_cell_version_in_sec: Some(deviation),
                allow_update: None,
                ..Default::default()
            });
            assert_eq!(invalid(r), message);
        }
    }

    #[test]
    fn keys_must_match_the_schema() {
        // The messages and codes of the service, from the Java SDK's tests against it
        // (checkBatchWriteRow, RestrictedItemTest).
        let info = table(1, -1);
        assert!(check_primary_key(&info, &key(1), false).is_ok());
        let named = |name: &str, value| {
            PrimaryKey(vec![PrimaryKeyColumn {
                name: name.into(),
                value,
            }])
        };
        let err =
            check_primary_key(&info, &named("x", PrimaryKeyValue::Integer(1)), false).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPk);
        assert_eq!(err.message, "Validate PK name fail. Input: x, Meta: id.");
        let err = check_primary_key(
            &info,
            &named("id", PrimaryKeyValue::String("a".into())),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Validate PK type fail. Input: VT_STRING, Meta: VT_INTEGER."
        );
        let inf = named("id", PrimaryKeyValue::InfMax);
        let err = check_primary_key(&info, &inf, false).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                ErrorCode::ParameterInvalid,
                "VT_INF_MAX is an invalid type for the primary key."
            ),
            "inf only in bounds"
        );
        assert!(check_primary_key(&info, &inf, true).is_ok());
        let err = check_primary_key(&info, &PrimaryKey(vec![]), false).unwrap_err();
        assert_eq!(err.message, "Validate PK size fail. Input: 0, Meta: 1.");
    }

    #[test]
    fn auto_increment_fills_placeholders_of_unconditional_puts_and_updates() {
        let mut definition = request(&[
            ("p", PrimaryKeyType::String, false),
            ("seq", PrimaryKeyType::Integer, true),
        ]);
        normalize_table(&mut definition).unwrap();
        let info = TableInfo {
            definition,
            created_at_ms: 0,
        };
        let pk = PrimaryKey(vec![
            PrimaryKeyColumn {
                name: "p".into(),
                value: PrimaryKeyValue::String("a".into()),
            },
            PrimaryKeyColumn {
                name: "seq".into(),
                value: PrimaryKeyValue::AutoIncrement,
            },
        ]);
        let mut put = RowChange::Put {
            primary_key: pk.clone(),
            cells: vec![],
        };
        let ignore = Expectation::default();
        assert_eq!(
            assign_auto_increment(&info, &mut put, &ignore, 41).unwrap(),
            42
        );
        assert_eq!(put.primary_key().0[1].value, PrimaryKeyValue::Integer(42));
        let mut update = RowChange::Update {
            primary_key: pk.clone(),
            updates: vec![],
        };
        assert_eq!(
            assign_auto_increment(&info, &mut update, &ignore, 42).unwrap(),
            43,
            "UpdateRow may create a row with a new value (Java SDK testAutoPkWrite)"
        );
        let mut conditional = RowChange::Put {
            primary_key: pk.clone(),
            cells: vec![],
        };
        let expect_exist = Expectation {
            existence: RowExistence::ExpectExist,
            condition: None,
        };
        let err = assign_auto_increment(&info, &mut conditional, &expect_exist, 43).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid expect:EXPECT_EXIST when modify row with pk auto increment."
        );
        let mut delete = RowChange::Delete { primary_key: pk };
        let err = assign_auto_increment(&info, &mut delete, &ignore, 43).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid row to delete which with pk auto increment."
        );
        let mut plain = RowChange::Delete {
            primary_key: put.primary_key().clone(),
        };
        assert_eq!(
            assign_auto_increment(&info, &mut plain, &ignore, 42).unwrap(),
            42,
            "no placeholder, no value used"
        );
    }

    #[test]
    fn changes_are_validated_against_the_table() {
        let info = table(1, -1);
        let put = |name: &str, value: Value, ts: Option<i64>| RowChange::Put {
            primary_key: key(1),
            cells: vec![Cell {
                name: name.into(),
                value,
                timestamp: ts,
            }],
        };
        assert!(validate_change(&info, &put("c", Value::Integer(1), Some(NOW)), NOW).is_ok());
        let old = validate_change(
            &info,
            &put("c", Value::Integer(1), Some(NOW - 86_401_000)),
            NOW,
        );
        assert!(
            old.unwrap_err()
                .message
                .contains("out of the table's max time deviation (86400 s)")
        );
        let key_name = validate_change(&info, &put("id", Value::Integer(1), None), NOW);
        assert!(
            key_name
                .unwrap_err()
                .message
                .contains("has the name of a primary key column")
        );
        let big = Value::Binary(vec![0; MAX_VALUE_LEN + 1]);
        let err = validate_change(&info, &put("c", big, None), NOW).unwrap_err();
        assert_eq!(
            err.message,
            "The length of attribute column: 'c' exceeds the MaxLength:2097152 with CurrentLength:2097153."
        );
        let err = validate_change(&info, &update(vec![]), NOW).unwrap_err();
        assert_eq!(err.message, "No column to update.");
        let bad_name = update(vec![("9x", ColumnOp::DeleteAllVersions)]);
        assert!(validate_change(&info, &bad_name, NOW).is_err());
    }

    #[test]
    fn a_put_replaces_the_row_and_stamps_cells_without_a_timestamp() {
        let info = table(3, -1);
        let existing = row(vec![cell("old", 1, 5)]);
        let change = RowChange::Put {
            primary_key: key(1),
            cells: vec![Cell {
                name: "new".into(),
                value: Value::Integer(2),
                timestamp: None,
            }],
        };
        let merged = merge(&info, Some(existing), change, &Expectation::default(), NOW).unwrap();
        assert_eq!(merged.row.unwrap().cells, vec![cell("new", 2, NOW)]);
        assert_eq!(
            merged.effective,
            RowChange::Put {
                primary_key: key(1),
                cells: vec![cell("new", 2, NOW)]
            },
            "the stream records the timestamp the server chose"
        );
    }

    #[test]
    fn an_update_edits_versions_column_by_column() {
        let info = table(3, -1);
        let existing = row(vec![cell("a", 1, 10), cell("a", 2, 20), cell("b", 3, 10)]);
        let change = update(vec![
            (
                "a",
                ColumnOp::Put {
                    value: Value::Integer(9),
                    timestamp: Some(20),
                },
            ),
            ("b", ColumnOp::DeleteAllVersions),
            ("a", ColumnOp::DeleteOneVersion { timestamp: 10 }),
        ]);
        assert_eq!(
            merged_cells(&info, Some(existing), change),
            vec![cell("a", 9, 20)],
            "the put replaced version 20, version 10 was deleted, b is gone"
        );
    }

    #[test]
    fn an_update_of_a_missing_row_creates_it() {
        let info = table(1, -1);
        let change = update(vec![(
            "a",
            ColumnOp::Put {
                value: Value::Integer(1),
                timestamp: Some(7),
            },
        )]);
        assert_eq!(merged_cells(&info, None, change), vec![cell("a", 1, 7)]);
        let only_deletes = update(vec![("a", ColumnOp::DeleteAllVersions)]);
        let merged = merge(&info, None, only_deletes, &Expectation::default(), NOW).unwrap();
        assert_eq!(
            merged.row, None,
            "deleting columns of a missing row creates no row (Python SDK test_one_delete_in_update)"
        );
        let key_only = Some(row(vec![]));
        let still = merge(
            &info,
            key_only,
            update(vec![("a", ColumnOp::DeleteAllVersions)]),
            &Expectation::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(still.row, Some(row(vec![])), "an existing row stays");
    }

    #[test]
    fn an_increment_adds_to_the_newest_version_and_is_recorded_as_a_put() {
        let info = table(2, -1);
        let existing = row(vec![cell("n", 10, 2), cell("n", 1, 1)]);
        let merged = merge(
            &info,
            Some(existing),
            update(vec![("n", ColumnOp::Increment { delta: 5 })]),
            &Expectation::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            merged.row.unwrap().cells,
            vec![cell("n", 15, NOW), cell("n", 10, 2)],
            "newest first, the oldest dropped at two versions"
        );
        assert_eq!(
            merged.effective,
            update(vec![(
                "n",
                ColumnOp::Put {
                    value: Value::Integer(15),
                    timestamp: Some(NOW)
                }
            )])
        );
        let text = row(vec![Cell {
            name: "n".into(),
            value: Value::String("x".into()),
            timestamp: Some(1),
        }]);
        let err = merge(
            &info,
            Some(text),
            update(vec![("n", ColumnOp::Increment { delta: 1 })]),
            &Expectation::default(),
            NOW,
        )
        .unwrap_err();
        assert!(err.message.contains("is not an integer"));
    }

    #[test]
    fn a_delete_removes_the_row() {
        let info = table(1, -1);
        let merged = merge(
            &info,
            Some(row(vec![cell("a", 1, 1)])),
            RowChange::Delete {
                primary_key: key(1),
            },
            &Expectation::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(merged.row, None);
    }

    #[test]
    fn row_existence_conditions_are_checked_first() {
        let info = table(1, -1);
        let put = RowChange::Put {
            primary_key: key(1),
            cells: vec![],
        };
        let existing = Some(row(vec![]));
        let check = |existing: Option<Row>, change: RowChange, existence| {
            let expectation = Expectation {
                existence,
                condition: None,
            };
            merge(&info, existing, change, &expectation, NOW).map(|_| ())
        };
        let failed = check(existing.clone(), put.clone(), RowExistence::ExpectNotExist);
        assert_eq!(failed.unwrap_err().code, ErrorCode::ConditionCheckFail);
        let failed = check(None, put.clone(), RowExistence::ExpectExist);
        assert_eq!(failed.unwrap_err().code, ErrorCode::ConditionCheckFail);
        assert!(check(existing.clone(), put.clone(), RowExistence::ExpectExist).is_ok());
        assert!(check(None, put, RowExistence::ExpectNotExist).is_ok());
        let invalid = check(
            None,
            update(vec![("a", ColumnOp::DeleteAllVersions)]),
            RowExistence::ExpectNotExist,
        );
        assert!(
            invalid
                .unwrap_err()
                .message
                .contains("EXPECT_NOT_EXIST while updating row")
        );
    }

    #[test]
    fn a_row_keeps_at_most_the_column_limit() {
        let info = table(1, -1);
        let cells = (0..=MAX_COLUMNS_PER_ROW as i64)
            .map(|i| cell(&format!("c{i}"), i, 1))
            .collect();
        let change = RowChange::Put {
            primary_key: key(1),
            cells,
        };
        let err = merge(&info, None, change, &Expectation::default(), NOW).unwrap_err();
        assert_eq!(err.code, ErrorCode::OutOfColumnCountLimit);
        // Versions of one column count once.
        let cells = (0..MAX_COLUMNS_PER_ROW as i64)
            .flat_map(|i| [cell(&format!("c{i}"), i, 1), cell(&format!("c{i}"), i, 2)])
            .collect();
        let change = RowChange::Put {
            primary_key: key(1),
            cells,
        };
        let merged = merge(&table(2, -1), None, change, &Expectation::default(), NOW).unwrap();
        assert_eq!(merged.row.unwrap().cells.len(), 2 * MAX_COLUMNS_PER_ROW);
    }

    #[test]
    fn a_blind_put_stores_what_the_merge_would_and_only_blind_puts_are_blind() {
        let info = table(2, -1);
        let put = |cells: Vec<Cell>| RowChange::Put {
            primary_key: key(1),
            cells,
        };
        let blind = Expectation::default();
        let change = put(vec![
            cell("b", 1, 5),
            cell("a", 1, 1),
            cell("a", 3, 3),
            cell("a", 2, 2),
        ]);
        let merged = merge(
            &info,
            Some(row(vec![cell("z", 9, 9)])),
            change.clone(),
            &blind,
            NOW,
        );
        let cells = blind_put(&info, &change, &blind).expect("blind").unwrap();
        assert_eq!(cells.as_ref(), merged.unwrap().row.unwrap().cells);
        assert_eq!(
            cells.as_ref(),
            [cell("a", 3, 3), cell("a", 2, 2), cell("b", 1, 5)]
        );
        assert!(matches!(cells, Cow::Owned(_)), "sorted and trimmed");
        let stored_order = put(cells.to_vec());
        let again = blind_put(&info, &stored_order, &blind).unwrap().unwrap();
        assert!(matches!(again, Cow::Borrowed(_)), "already in stored order");
        assert_eq!(again.as_ref(), cells.as_ref());

        let wide = put((0..=MAX_COLUMNS_PER_ROW as i64)
            .map(|i| cell(&format!("c{i}"), i, 1))
            .collect());
        let refused = blind_put(&info, &wide, &blind).expect("blind").unwrap_err();
        assert_eq!(refused.code, ErrorCode::OutOfColumnCountLimit);

        let unstamped = put(vec![Cell {
            timestamp: None,
            ..cell("a", 1, 1)
        }]);
        assert_eq!(blind_put(&info, &unstamped, &blind), None);
        let expect_exist = Expectation {
            existence: RowExistence::ExpectExist,
            condition: None,
        };
        assert_eq!(blind_put(&info, &change, &expect_exist), None);
        let update = update(vec![("a", ColumnOp::DeleteAllVersions)]);
        assert_eq!(blind_put(&info, &update, &blind), None);
    }

    #[test]
    fn normalize_sorts_by_name_then_newest_and_keeps_max_versions() {
        let mut cells = vec![
            cell("b", 1, 1),
            cell("a", 1, 1),
            cell("a", 3, 3),
            cell("a", 2, 2),
        ];
        normalize(&mut cells, 2);
        assert_eq!(
            cells,
            vec![cell("a", 3, 3), cell("a", 2, 2), cell("b", 1, 1)]
        );
    }
}
