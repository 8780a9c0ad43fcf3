//! The table and row APIs: decode a request, apply it to the store, encode the answer.

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{PrimaryKey, RowExistence};
use ots_protocol::pb::table::*;
use ots_protocol::plainbuffer::{self, RowChangeKind};
use prost::Message;

use crate::error::ApiError;
use crate::rules::ReadSpec;
use crate::state::ServerState;
use crate::store::{KeyRange, WriteOp};

/// Most rows a BatchWriteRow may carry.
pub const MAX_BATCH_WRITE_ROWS: usize = 200;
/// Most rows a BatchGetRow may carry.
pub const MAX_BATCH_GET_ROWS: usize = 100;
/// Most rows one GetRange page returns.
pub const MAX_RANGE_ROWS: usize = 5000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn decode<M: Message + Default>(api: &str, body: &[u8]) -> Result<M, ApiError> {
    M::decode(body)
        .map_err(|e| ApiError::invalid(format!("Failed to parse the {api} request: {e}.")))
}

fn pb_error(err: plainbuffer::PlainBufferError) -> ApiError {
    ApiError::invalid(format!("Invalid PlainBuffer: {err}."))
}

fn primary_key(bytes: &[u8]) -> Result<PrimaryKey, ApiError> {
    plainbuffer::decode_primary_key(bytes).map_err(pb_error)
}

fn existence(condition: &Condition) -> Result<RowExistence, ApiError> {
    if condition.column_condition.is_some() {
        return Err(ApiError::new(
            ErrorCode::UnsupportOperation,
            "Column conditions are not supported by the local server.",
        ));
    }
    match RowExistenceExpectation::try_from(condition.row_existence) {
        Ok(RowExistenceExpectation::Ignore) => Ok(RowExistence::Ignore),
        Ok(RowExistenceExpectation::ExpectExist) => Ok(RowExistence::ExpectExist),
        Ok(RowExistenceExpectation::ExpectNotExist) => Ok(RowExistence::ExpectNotExist),
        Err(_) => Err(ApiError::invalid(format!(
            "Invalid row existence expectation: {}.",
            condition.row_existence
        ))),
    }
}

fn read_spec(
    columns: Vec<String>,
    max_versions: Option<i32>,
    time_range: Option<&TimeRange>,
) -> Result<ReadSpec, ApiError> {
    if time_range.is_some() {
        return Err(ApiError::new(
            ErrorCode::UnsupportOperation,
            "Time range reads are not supported by the local server.",
        ));
    }
    match max_versions {
        Some(v) if v > 0 => Ok(ReadSpec {
            columns,
            max_versions: v as usize,
        }),
        Some(v) => Err(ApiError::invalid(format!("Invalid max_versions: {v}."))),
        None => Err(ApiError::invalid(
            "Neither time range nor max versions is specified.",
        )),
    }
}

fn consumed(read: i32, write: i32) -> ConsumedCapacity {
    ConsumedCapacity {
        capacity_unit: CapacityUnit {
            read: Some(read),
            write: Some(write),
        },
    }
}

fn single_write(state: &ServerState, table: &str, op: WriteOp) -> Result<Vec<u8>, ApiError> {
    state
        .store
        .write_rows(table, vec![op], now_ms())?
        .remove(0)?;
    Ok(WriteRowResponse {
        consumed: consumed(0, 1),
        row: None,
    }
    .encode_to_vec())
}

/// Local-server administration: split a partition of a table with a stream, so that parent
/// and child partitions (and their channels) can be exercised. Signed like every request.
#[derive(Clone, PartialEq, Message)]
pub struct SplitPartitionRequest {
    /// Table to split.
    #[prost(string, tag = "1")]
    pub table_name: String,
    /// The open partition to split.
    #[prost(uint32, tag = "2")]
    pub partition_id: u32,
    /// PlainBuffer primary key where the right child begins.
    #[prost(bytes = "vec", tag = "3")]
    pub split_point: Vec<u8>,
}

/// The children of a split partition.
#[derive(Clone, PartialEq, Message)]
pub struct SplitPartitionResponse {
    /// Partition id of `[begin, split point)`.
    #[prost(uint32, tag = "1")]
    pub left: u32,
    /// Partition id of `[split point, end)`.
    #[prost(uint32, tag = "2")]
    pub right: u32,
}

/// Runs one API call; `path` is the request path (`/PutRow`, ...).
pub fn dispatch(state: &ServerState, path: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let store = &state.store;
    let api = path.trim_start_matches('/');
    if let Some(call) = api.strip_prefix("tunnel/") {
        return state.tunnels.dispatch(store, call, body);
    }
    Ok(match api {
        "CreateTable" => {
            let request: CreateTableRequest = decode(api, body)?;
            store.create_table(request, now_ms())?;
            CreateTableResponse {}.encode_to_vec()
        }
        "DescribeTable" => {
            let request: DescribeTableRequest = decode(api, body)?;
            let info = store.table(&request.table_name)?;
            let def = info.definition;
            DescribeTableResponse {
                table_meta: def.table_meta,
                reserved_throughput_details: ReservedThroughputDetails {
                    capacity_unit: def.reserved_throughput.capacity_unit,
                    last_increase_time: info.created_at_ms / 1000,
                    last_decrease_time: None,
                },
                table_options: def.table_options.unwrap_or_default(),
                stream_details: Some(StreamDetails {
                    enable_stream: def.stream_spec.as_ref().is_some_and(|s| s.enable_stream),
                    stream_id: def
                        .stream_spec
                        .as_ref()
                        .filter(|s| s.enable_stream)
                        .map(|_| format!("{}_{}", request.table_name, info.created_at_ms)),
                    expiration_time: def.stream_spec.as_ref().and_then(|s| s.expiration_time),
                    last_enable_time: None,
                }),
                shard_splits: Vec::new(),
            }
            .encode_to_vec()
        }
        "ListTable" => ListTableResponse {
            table_names: store.list_tables()?,
        }
        .encode_to_vec(),
        "DeleteTable" => {
            let request: DeleteTableRequest = decode(api, body)?;
            store.delete_table(&request.table_name)?;
            DeleteTableResponse {}.encode_to_vec()
        }
        "UpdateTable" => {
            let request: UpdateTableRequest = decode(api, body)?;
            let info = store.update_table(&request.table_name, |def| {
                if let Some(new) = &request.table_options {
                    let options = def.table_options.get_or_insert_default();
                    if let Some(ttl) = new.time_to_live {
                        options.time_to_live = Some(ttl);
                    }
                    if let Some(v) = new.max_versions {
                        options.max_versions = Some(v);
                    }
                    if let Some(d) = new.deviation_cell_version_in_sec {
                        options.deviation_cell_version_in_sec = Some(d);
                    }
                }
                if let Some(stream) = &request.stream_spec {
                    def.stream_spec = Some(stream.clone());
                }
                if let Some(throughput) = &request.reserved_throughput {
                    def.reserved_throughput = throughput.clone();
                }
                Ok(())
            })?;
            UpdateTableResponse {
                reserved_throughput_details: ReservedThroughputDetails {
                    capacity_unit: info.definition.reserved_throughput.capacity_unit.clone(),
                    last_increase_time: info.created_at_ms / 1000,
                    last_decrease_time: None,
                },
                table_options: info.definition.table_options.clone().unwrap_or_default(),
                stream_details: None,
            }
            .encode_to_vec()
        }
        "PutRow" => {
            let request: PutRowRequest = decode(api, body)?;
            let change = plainbuffer::decode_row_change(&request.row, RowChangeKind::Put)
                .map_err(pb_error)?;
            single_write(
                state,
                &request.table_name,
                (change, existence(&request.condition)?),
            )?
        }
        "UpdateRow" => {
            let request: UpdateRowRequest = decode(api, body)?;
            let change = plainbuffer::decode_row_change(&request.row_change, RowChangeKind::Update)
                .map_err(pb_error)?;
            single_write(
                state,
                &request.table_name,
                (change, existence(&request.condition)?),
            )?
        }
        "DeleteRow" => {
            let request: DeleteRowRequest = decode(api, body)?;
            let change =
                plainbuffer::decode_row_change(&request.primary_key, RowChangeKind::Delete)
                    .map_err(pb_error)?;
            single_write(
                state,
                &request.table_name,
                (change, existence(&request.condition)?),
            )?
        }
        "GetRow" => {
            let request: GetRowRequest = decode(api, body)?;
            let spec = read_spec(
                request.columns_to_get,
                request.max_versions,
                request.time_range.as_ref(),
            )?;
            let pk = primary_key(&request.primary_key)?;
            let row = store.get_row(&request.table_name, &pk, &spec, now_ms())?;
            GetRowResponse {
                consumed: consumed(1, 0),
                row: row
                    .map(|r| plainbuffer::encode_rows(&[r]))
                    .unwrap_or_default(),
                next_token: None,
            }
            .encode_to_vec()
        }
        "GetRange" => {
            let request: GetRangeRequest = decode(api, body)?;
            let spec = read_spec(
                request.columns_to_get,
                request.max_versions,
                request.time_range.as_ref(),
            )?;
            let limit = match request.limit {
                Some(l) if l <= 0 => {
                    return Err(ApiError::invalid(format!("Invalid limit: {l}.")));
                }
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
            let start = primary_key(&request.inclusive_start_primary_key)?;
            let end = primary_key(&request.exclusive_end_primary_key)?;
            let range = KeyRange {
                start,
                end,
                backward,
                limit,
            };
            let page = store.get_range(&request.table_name, &range, &spec, now_ms())?;
            GetRangeResponse {
                consumed: consumed(page.rows.len().max(1) as i32, 0),
                rows: plainbuffer::encode_rows(&page.rows),
                next_start_primary_key: page
                    .next_start
                    .map(|k| plainbuffer::encode_primary_key(&k)),
                next_token: None,
            }
            .encode_to_vec()
        }
        "BatchGetRow" => {
            let request: BatchGetRowRequest = decode(api, body)?;
            let total: usize = request.tables.iter().map(|t| t.primary_key.len()).sum();
            if total > MAX_BATCH_GET_ROWS {
                return Err(ApiError::invalid(format!(
                    "Rows count exceeds the upper limit: {MAX_BATCH_GET_ROWS}."
                )));
            }
            let now = now_ms();
            let mut tables = Vec::new();
            for table in request.tables {
                let spec = read_spec(
                    table.columns_to_get,
                    table.max_versions,
                    table.time_range.as_ref(),
                )?;
                let rows = table
                    .primary_key
                    .iter()
                    .map(|bytes| {
                        let result = primary_key(bytes)
                            .and_then(|pk| store.get_row(&table.table_name, &pk, &spec, now));
                        match result {
                            Ok(row) => RowInBatchGetRowResponse {
                                is_ok: true,
                                consumed: Some(consumed(1, 0)),
                                row: Some(
                                    row.map(|r| plainbuffer::encode_rows(&[r]))
                                        .unwrap_or_default(),
                                ),
                                ..Default::default()
                            },
                            Err(e) => row_failure(e),
                        }
                    })
                    .collect();
                tables.push(TableInBatchGetRowResponse {
                    table_name: table.table_name,
                    rows,
                });
            }
            BatchGetRowResponse { tables }.encode_to_vec()
        }
        "BatchWriteRow" => batch_write_row(state, decode(api, body)?)?,
        "admin/SplitPartition" => {
            let request: SplitPartitionRequest = decode(api, body)?;
            let at = primary_key(&request.split_point)?;
            let (left, right) =
                store.split_partition(&request.table_name, request.partition_id, &at)?;
            SplitPartitionResponse { left, right }.encode_to_vec()
        }
        "ComputeSplitPointsBySize" => {
            let request: ComputeSplitPointsBySizeRequest = decode(api, body)?;
            if request.split_size <= 0 {
                return Err(ApiError::invalid(format!(
                    "Invalid split size: {}.",
                    request.split_size
                )));
            }
            let unit = request.split_size_unit_in_byte.unwrap_or(100 * 1024 * 1024);
            let size = request.split_size.saturating_mul(unit.max(1)) as u64;
            let schema = store
                .table(&request.table_name)?
                .definition
                .table_meta
                .primary_key;
            let points = store.split_points(&request.table_name, size)?;
            ComputeSplitPointsBySizeResponse {
                consumed: consumed(1, 0),
                schema,
                split_points: points.iter().map(plainbuffer::encode_primary_key).collect(),
                locations: Vec::new(),
            }
            .encode_to_vec()
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportOperation,
                format!("Unsupported operation: '{api}'."),
            ));
        }
    })
}

fn row_failure(err: ApiError) -> RowInBatchGetRowResponse {
    RowInBatchGetRowResponse {
        is_ok: false,
        error: Some(Error {
            code: err.code.as_str().to_owned(),
            message: Some(err.message),
        }),
        ..Default::default()
    }
}

fn batch_write_row(
    state: &ServerState,
    request: BatchWriteRowRequest,
) -> Result<Vec<u8>, ApiError> {
    let total: usize = request.tables.iter().map(|t| t.rows.len()).sum();
    if total == 0 {
        return Err(ApiError::invalid("No row in the request."));
    }
    if total > MAX_BATCH_WRITE_ROWS {
        return Err(ApiError::invalid(format!(
            "Rows count exceeds the upper limit: {MAX_BATCH_WRITE_ROWS}."
        )));
    }
    let mut tables = Vec::new();
    for table in request.tables {
        let mut ops = Vec::with_capacity(table.rows.len());
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
            let change = plainbuffer::decode_row_change(&row.row_change, kind).map_err(pb_error)?;
            ops.push((change, existence(&row.condition)?));
        }
        let mut seen = std::collections::HashSet::new();
        if !ops
            .iter()
            .all(|(c, _)| seen.insert(c.primary_key().clone()))
        {
            return Err(ApiError::invalid(
                "The input parameter is invalid: duplicated primary key in one request.",
            ));
        }
        // Injected row failures are decided up front; those rows are not applied.
        let failed: Vec<bool> = ops
            .iter()
            .map(|_| {
                state.faults.row_failure_rate > 0.0
                    && rand::random::<f64>() < state.faults.row_failure_rate
            })
            .collect();
        let applied: Vec<WriteOp> = ops
            .into_iter()
            .zip(&failed)
            .filter(|(_, f)| !**f)
            .map(|(op, _)| op)
            .collect();
        let mut results = if applied.is_empty() {
            Vec::new()
        } else {
            state
                .store
                .write_rows(&table.table_name, applied, now_ms())?
        }
        .into_iter();
        let rows = failed
            .iter()
            .map(|&f| {
                let result = if f {
                    Err(ApiError::new(
                        ErrorCode::ServerBusy,
                        "Server is busy (injected row fault).",
                    ))
                } else {
                    results.next().expect("one result per applied row")
                };
                match result {
                    Ok(()) => RowInBatchWriteRowResponse {
                        is_ok: true,
                        consumed: Some(consumed(0, 1)),
                        ..Default::default()
                    },
                    Err(e) => RowInBatchWriteRowResponse {
                        is_ok: false,
                        error: Some(Error {
                            code: e.code.as_str().to_owned(),
                            message: Some(e.message),
                        }),
                        ..Default::default()
                    },
                }
            })
            .collect();
        tables.push(TableInBatchWriteRowResponse {
            table_name: table.table_name,
            rows,
        });
    }
    Ok(BatchWriteRowResponse { tables }.encode_to_vec())
}
