//! Row calls: PutRow, UpdateRow, DeleteRow, GetRow, GetRange, BatchGetRow, BatchWriteRow, with
//! their conditions, return contents, filters and version ranges.

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{ColumnOp, ColumnUpdate, PrimaryKey, Row, RowChange, RowExistence};
use ots_protocol::pb::table::*;
use ots_protocol::plainbuffer::{self, RowChangeKind};
use prost::Message;

use super::{consumed, now_ms, pb_error, primary_key, refuse_transaction, unsupported};
use crate::error::ApiError;
use crate::rules::filter::parse_condition;
use crate::rules::read::{ReadRequest, ReadSpec};
use crate::rules::{Expectation, MAX_COLUMNS_PER_ROW};
use crate::state::ServerState;
use crate::store::{KeyRange, Store, WriteOp};

/// Most rows a BatchWriteRow may carry.
pub const MAX_BATCH_WRITE_ROWS: usize = 200;
/// Most rows a BatchGetRow may carry.
pub const MAX_BATCH_GET_ROWS: usize = 100;
/// Most rows one GetRange page returns.
pub const MAX_RANGE_ROWS: usize = 5000;
/// Most bytes of row data one write request (PutRow, UpdateRow, BatchWriteRow) may carry.
pub const MAX_WRITE_DATA_BYTES: usize = 4 * 1024 * 1024;

/// What a write returns besides success (`ReturnContent`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Returned {
    /// Nothing.
    #[default]
    Nothing,
    /// The primary key, with the values the server assigned.
    PrimaryKey,
    /// The primary key and the new values of these incremented columns.
    AfterModify(Vec<String>),
}

impl Returned {
    /// Reads a `ReturnContent` and checks it against the change: RT_PK names no column, and
    /// RT_AFTER_MODIFY names only columns the change increments (the service refuses the write
    /// otherwise; Java SDK `IncrementTest`).
    fn parse(content: Option<&ReturnContent>, change: &RowChange) -> Result<Self, ApiError> {
        let Some(content) = content else {
            return Ok(Self::Nothing);
        };
        let names = &content.return_column_names;
        match ReturnType::try_from(content.return_type.unwrap_or(0)) {
            Ok(ReturnType::RtNone) if names.is_empty() => Ok(Self::Nothing),
            Ok(ReturnType::RtPk) if names.is_empty() => Ok(Self::PrimaryKey),
            Ok(ReturnType::RtNone | ReturnType::RtPk) => Err(ApiError::invalid(
                "return_column_names can only be given with RT_AFTER_MODIFY.",
            )),
            Ok(ReturnType::RtAfterModify) => {
                let incremented = |name: &String| match change {
                    RowChange::Update { updates, .. } => updates
                        .iter()
                        .any(|u| u.name == *name && matches!(u.op, ColumnOp::Increment { .. })),
                    _ => false,
                };
                if let Some(name) = names.iter().find(|n| !incremented(n)) {
                    return Err(ApiError::invalid(format!(
                        "The column '{name}' to return is not incremented by this change; RT_AFTER_MODIFY returns incremented columns only."
                    )));
                }
                Ok(Self::AfterModify(names.clone()))
            }
            Err(_) => Err(ApiError::invalid(format!(
                "Invalid return type: {}.",
                content.return_type.unwrap_or(0)
            ))),
        }
    }

    /// The returned row, in PlainBuffer, for a change as it took effect.
    fn row(&self, effective: &RowChange) -> Option<Vec<u8>> {
        let primary_key = effective.primary_key().clone();
        let cells = match self {
            Self::Nothing => return None,
            Self::PrimaryKey => Vec::new(),
            Self::AfterModify(names) => match effective {
                // Increments took effect as puts of their result.
                RowChange::Update { updates, .. } => updates
                    .iter()
                    .filter_map(|ColumnUpdate { name, op }| match op {
                        ColumnOp::Put { value, timestamp } if names.contains(name) => {
                            Some(ots_protocol::model::Cell {
                                name: name.clone(),
                                value: value.clone(),
                                timestamp: *timestamp,
                            })
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
        };
        Some(plainbuffer::encode_rows(&[Row { primary_key, cells }]))
    }
}

/// What a write expects of its row, from the request's `Condition`.
fn expectation(condition: &Condition) -> Result<Expectation, ApiError> {
    let existence = match RowExistenceExpectation::try_from(condition.row_existence) {
        Ok(RowExistenceExpectation::Ignore) => RowExistence::Ignore,
        Ok(RowExistenceExpectation::ExpectExist) => RowExistence::ExpectExist,
        Ok(RowExistenceExpectation::ExpectNotExist) => RowExistence::ExpectNotExist,
        Err(_) => {
            return Err(ApiError::invalid(format!(
                "Invalid row existence expectation: {}.",
                condition.row_existence
            )));
        }
    };
    Ok(Expectation {
        existence,
        condition: condition
            .column_condition
            .as_deref()
            .map(parse_condition)
            .transpose()?,
    })
}

/// Checks the size of one write's row data.
fn check_data_size(size: usize) -> Result<(), ApiError> {
    if size > MAX_WRITE_DATA_BYTES {
        return Err(ApiError::invalid(format!(
            "The total data size of the request exceeds the limit, limit size: {MAX_WRITE_DATA_BYTES}, data size: {size}."
        )));
    }
    Ok(())
}

/// Checks how many attribute columns one change writes.
fn check_column_count(change: &RowChange) -> Result<(), ApiError> {
    let count = match change {
        RowChange::Put { cells, .. } => cells.len(),
        RowChange::Update { updates, .. } => updates.len(),
        RowChange::Delete { .. } => 0,
    };
    if count > MAX_COLUMNS_PER_ROW {
        return Err(ApiError::invalid(format!(
            "The number of attribute columns exceeds the limit, limit count: {MAX_COLUMNS_PER_ROW}, column count: {count}."
        )));
    }
    Ok(())
}

/// A decoded write of one row and what it returns.
struct RowWrite {
    op: WriteOp,
    returned: Returned,
}

fn row_write(
    bytes: &[u8],
    kind: RowChangeKind,
    condition: &Condition,
    content: Option<&ReturnContent>,
) -> Result<RowWrite, ApiError> {
    let change = plainbuffer::decode_row_change(bytes, kind).map_err(pb_error)?;
    check_column_count(&change)?;
    let returned = Returned::parse(content, &change)?;
    Ok(RowWrite {
        op: WriteOp {
            change,
            expectation: expectation(condition)?,
        },
        returned,
    })
}

/// Runs one single-row write and encodes its answer.
fn single_write(store: &Store, table: &str, write: RowWrite) -> Result<Vec<u8>, ApiError> {
    let read = u32::from(write.op.expectation.condition.is_some());
    let effective = store.write_rows(table, vec![write.op], now_ms)?.remove(0)?;
    Ok(WriteRowResponse {
        consumed: consumed(read as i32, 1),
        row: write.returned.row(&effective),
    }
    .encode_to_vec())
}

/// PutRow, UpdateRow and DeleteRow: one row's change of the given kind.
fn write_one(
    store: &Store,
    table: &str,
    transaction_id: &Option<String>,
    row: &[u8],
    kind: RowChangeKind,
    condition: &Condition,
    content: Option<&ReturnContent>,
) -> Result<Vec<u8>, ApiError> {
    refuse_transaction(transaction_id)?;
    check_data_size(row.len())?;
    let write = row_write(row, kind, condition, content)?;
    single_write(store, table, write)
}

pub(crate) fn put_row(store: &Store, r: PutRowRequest) -> Result<Vec<u8>, ApiError> {
    let content = r.return_content.as_ref();
    write_one(
        store,
        &r.table_name,
        &r.transaction_id,
        &r.row,
        RowChangeKind::Put,
        &r.condition,
        content,
    )
}

pub(crate) fn update_row(store: &Store, r: UpdateRowRequest) -> Result<Vec<u8>, ApiError> {
    let content = r.return_content.as_ref();
    let kind = RowChangeKind::Update;
    write_one(
        store,
        &r.table_name,
        &r.transaction_id,
        &r.row_change,
        kind,
        &r.condition,
        content,
    )
}

pub(crate) fn delete_row(store: &Store, r: DeleteRowRequest) -> Result<Vec<u8>, ApiError> {
    let content = r.return_content.as_ref();
    let kind = RowChangeKind::Delete;
    write_one(
        store,
        &r.table_name,
        &r.transaction_id,
        &r.primary_key,
        kind,
        &r.condition,
        content,
    )
}

/// Wide-row continuation tokens: the service documents them as not available, and rows here
/// are always returned whole.
fn refuse_token(token: &Option<Vec<u8>>) -> Result<(), ApiError> {
    match token {
        Some(t) if !t.is_empty() => Err(unsupported("Wide-row continuation tokens are")),
        _ => Ok(()),
    }
}

/// A read's row in PlainBuffer: empty bytes for a missing row, never a header alone (the
/// Java SDK refuses a buffer without a row).
fn encoded_row(row: Option<Row>) -> Vec<u8> {
    row.map(|r| plainbuffer::encode_rows(&[r]))
        .unwrap_or_default()
}

pub(crate) fn get_row(store: &Store, request: GetRowRequest) -> Result<Vec<u8>, ApiError> {
    refuse_transaction(&request.transaction_id)?;
    refuse_token(&request.token)?;
    let spec = ReadSpec::parse(
        ReadRequest {
            columns: &request.columns_to_get,
            max_versions: request.max_versions,
            time_range: request.time_range.as_ref(),
            start_column: request.start_column.as_deref(),
            end_column: request.end_column.as_deref(),
            filter: request.filter.as_deref(),
        },
        "",
    )?;
    let pk = primary_key(&request.primary_key)?;
    let row = store.get_row(&request.table_name, &pk, &spec, now_ms())?;
    Ok(GetRowResponse {
        consumed: consumed(1, 0),
        row: encoded_row(row),
        next_token: None,
    }
    .encode_to_vec())
}

pub(crate) fn get_range(store: &Store, request: GetRangeRequest) -> Result<Vec<u8>, ApiError> {
    refuse_transaction(&request.transaction_id)?;
    refuse_token(&request.token)?;
    let spec = ReadSpec::parse(
        ReadRequest {
            columns: &request.columns_to_get,
            max_versions: request.max_versions,
            time_range: request.time_range.as_ref(),
            start_column: request.start_column.as_deref(),
            end_column: request.end_column.as_deref(),
            filter: request.filter.as_deref(),
        },
        "",
    )?;
    let limit = match request.limit {
        Some(l) if l <= 0 => return Err(ApiError::invalid("The limit must be greater than 0.")),
        Some(l) => (l as usize).min(MAX_RANGE_ROWS),
        None => MAX_RANGE_ROWS,
    };
    let backward = match Direction::try_from(request.direction) {
        Ok(d) => d == Direction::Backward,
        Err(_) => {
            return Err(ApiError::invalid(format!(
                "Invalid direction: {}.",
                request.direction
            )));
        }
    };
    let range = KeyRange {
        start: primary_key(&request.inclusive_start_primary_key)?,
        end: primary_key(&request.exclusive_end_primary_key)?,
        backward,
        limit,
    };
    let mut page = store.get_range(&request.table_name, &range, &spec, now_ms())?;
    if request.return_entire_primary_keys == Some(false) {
        // Only the key columns the read names (the Go SDK's `ReturnSpecifiedPkOnly`).
        for row in &mut page.rows {
            row.primary_key
                .0
                .retain(|c| request.columns_to_get.contains(&c.name));
        }
    }
    Ok(GetRangeResponse {
        consumed: consumed(page.rows.len().max(1) as i32, 0),
        rows: plainbuffer::encode_rows(&page.rows),
        next_start_primary_key: page.next_start.map(|k| plainbuffer::encode_primary_key(&k)),
        next_token: None,
    }
    .encode_to_vec())
}

/// A failed row of a batch, with the service's code and message (the Go SDK reads both).
fn row_error(err: ApiError) -> Error {
    Error {
        code: err.code.as_str().to_owned(),
        message: Some(err.message),
    }
}

pub(crate) fn batch_get_row(
    store: &Store,
    request: BatchGetRowRequest,
) -> Result<Vec<u8>, ApiError> {
    let total: usize = request.tables.iter().map(|t| t.primary_key.len()).sum();
    if total == 0 {
        return Err(ApiError::invalid(
            "No row specified in the request of BatchGetRow.",
        ));
    }
    if total > MAX_BATCH_GET_ROWS {
        return Err(ApiError::invalid(format!(
            "Rows count exceeds the upper limit: {MAX_BATCH_GET_ROWS}."
        )));
    }
    let now = now_ms();
    let mut tables = Vec::with_capacity(request.tables.len());
    for table in request.tables {
        crate::rules::validate_table_name(&table.table_name)?;
        if table.token.iter().any(|t| !t.is_empty()) {
            return Err(unsupported("Wide-row continuation tokens are"));
        }
        let spec = ReadSpec::parse(
            ReadRequest {
                columns: &table.columns_to_get,
                max_versions: table.max_versions,
                time_range: table.time_range.as_ref(),
                start_column: table.start_column.as_deref(),
                end_column: table.end_column.as_deref(),
                filter: table.filter.as_deref(),
            },
            " while querying row",
        )?;
        let keys: Vec<PrimaryKey> = table
            .primary_key
            .iter()
            .map(|bytes| primary_key(bytes))
            .collect::<Result<_, _>>()?;
        let rows = keys
            .iter()
            .map(
                |pk| match store.get_row(&table.table_name, pk, &spec, now) {
                    Ok(row) => RowInBatchGetRowResponse {
                        is_ok: true,
                        consumed: Some(consumed(1, 0)),
                        row: Some(encoded_row(row)),
                        ..Default::default()
                    },
                    Err(e) => RowInBatchGetRowResponse {
                        is_ok: false,
                        error: Some(row_error(e)),
                        ..Default::default()
                    },
                },
            )
            .collect();
        tables.push(TableInBatchGetRowResponse {
            table_name: table.table_name,
            rows,
        });
    }
    Ok(BatchGetRowResponse { tables }.encode_to_vec())
}

pub(crate) fn batch_write_row(
    state: &ServerState,
    request: BatchWriteRowRequest,
) -> Result<Vec<u8>, ApiError> {
    refuse_transaction(&request.transaction_id)?;
    if request.is_atomic == Some(true) {
        return Err(unsupported("Atomic BatchWriteRow (all rows or none) is"));
    }
    let total: usize = request.tables.iter().map(|t| t.rows.len()).sum();
    if total == 0 {
        return Err(ApiError::invalid("No row is specified in BatchWriteRow."));
    }
    if total > MAX_BATCH_WRITE_ROWS {
        return Err(ApiError::invalid(format!(
            "Rows count exceeds the upper limit: {MAX_BATCH_WRITE_ROWS}."
        )));
    }
    let size: usize = request
        .tables
        .iter()
        .flat_map(|t| &t.rows)
        .map(|r| r.row_change.len())
        .sum();
    if size > MAX_WRITE_DATA_BYTES {
        return Err(ApiError::invalid(format!(
            "The total data size of BatchWriteRow request exceeds the limit, limit size: {MAX_WRITE_DATA_BYTES}, data size: {size}."
        )));
    }
    let mut decoded = Vec::with_capacity(request.tables.len());
    for table in &request.tables {
        crate::rules::validate_table_name(&table.table_name)?;
        if table.rows.is_empty() {
            return Err(ApiError::invalid(format!(
                "No operation is specified for table: '{}'.",
                table.table_name
            )));
        }
        let mut writes = Vec::with_capacity(table.rows.len());
        for row in &table.rows {
            let kind = match OperationType::try_from(row.r#type) {
                Ok(OperationType::Put) => RowChangeKind::Put,
                Ok(OperationType::Update) => RowChangeKind::Update,
                Ok(OperationType::Delete) => RowChangeKind::Delete,
                Err(_) => {
                    return Err(ApiError::invalid(format!(
                        "Invalid operation type: {}.",
                        row.r#type
                    )));
                }
            };
            writes.push(row_write(
                &row.row_change,
                kind,
                &row.condition,
                row.return_content.as_ref(),
            )?);
        }
        refuse_conditions_on_repeated_rows(&writes)?;
        decoded.push((table.table_name.clone(), writes));
    }
    let mut tables = Vec::with_capacity(decoded.len());
    for (table_name, writes) in decoded {
        let rows = write_batch_table(state, &table_name, writes)?;
        tables.push(TableInBatchWriteRowResponse { table_name, rows });
    }
    Ok(BatchWriteRowResponse { tables }.encode_to_vec())
}

/// A row written twice in one batch is applied in order, but not with conditions (the
/// service's "Repeated rows do not support row exist expectation check in BatchModify.").
fn refuse_conditions_on_repeated_rows(writes: &[RowWrite]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashMap::<&PrimaryKey, usize>::new();
    for write in writes {
        *seen.entry(write.op.change.primary_key()).or_default() += 1;
    }
    for write in writes {
        if seen[write.op.change.primary_key()] < 2 {
            continue;
        }
        if write.op.expectation.existence != RowExistence::Ignore {
            return Err(ApiError::invalid(
                "Repeated rows do not support row exist expectation check in BatchModify.",
            ));
        }
        if write.op.expectation.condition.is_some() {
            return Err(ApiError::invalid(
                "Repeated rows do not support row condition check in BatchModify.",
            ));
        }
    }
    Ok(())
}

/// Writes one table's rows of a batch; each row gets its own outcome, in request order.
fn write_batch_table(
    state: &ServerState,
    table: &str,
    writes: Vec<RowWrite>,
) -> Result<Vec<RowInBatchWriteRowResponse>, ApiError> {
    // Injected row failures are decided up front; those rows are not applied.
    let failed: Vec<bool> = writes
        .iter()
        .map(|_| {
            state.faults.row_failure_rate > 0.0
                && rand::random::<f64>() < state.faults.row_failure_rate
        })
        .collect();
    let (applied, returned): (Vec<WriteOp>, Vec<(Returned, u32)>) = writes
        .into_iter()
        .zip(&failed)
        .filter(|(_, f)| !**f)
        .map(|(w, _)| {
            let read = u32::from(w.op.expectation.condition.is_some());
            (w.op, (w.returned, read))
        })
        .unzip();
    let mut results = if applied.is_empty() {
        Vec::new()
    } else {
        state.store.write_rows(table, applied, now_ms)?
    }
    .into_iter()
    .zip(returned);
    Ok(failed
        .iter()
        .map(|&f| {
            if f {
                return RowInBatchWriteRowResponse {
                    is_ok: false,
                    error: Some(row_error(ApiError::new(
                        ErrorCode::ServerBusy,
                        "Server is busy (injected row fault).",
                    ))),
                    ..Default::default()
                };
            }
            let (result, (returned, read)) = results.next().expect("one result per applied row");
            match result {
                Ok(effective) => RowInBatchWriteRowResponse {
                    is_ok: true,
                    consumed: Some(consumed(read as i32, 1)),
                    row: returned.row(&effective),
                    ..Default::default()
                },
                Err(e) => RowInBatchWriteRowResponse {
                    is_ok: false,
                    error: Some(row_error(e)),
                    consumed: Some(consumed(0, 0)),
                    ..Default::default()
                },
            }
        })
        .collect())
}
