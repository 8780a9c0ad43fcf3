//! Messages of the table and row APIs (`com.aliyun.tablestore.protocol`). Rows travel as
//! PlainBuffer inside `bytes` fields; see [`crate::plainbuffer`].

/// The body of every error answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    /// The `OTS*` error code, see [`crate::error`].
    #[prost(string, required, tag = "1")]
    pub code: String,
    /// Human-readable detail.
    #[prost(string, optional, tag = "2")]
    pub message: Option<String>,
}

/// The type of a primary key column in a schema. The newer `PK_BOOLEAN = 5` is left out: the
/// data model has no boolean keys, so a schema using it does not decode into this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PrimaryKeyType {
    /// 64-bit signed integer.
    Integer = 1,
    /// UTF-8 string.
    String = 2,
    /// Raw bytes.
    Binary = 3,
}

/// The type of a predefined (schema-declared) attribute column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DefinedColumnType {
    /// Integer.
    DctInteger = 1,
    /// Double.
    DctDouble = 2,
    /// Boolean.
    DctBoolean = 3,
    /// String.
    DctString = 4,
    /// Binary.
    DctBlob = 7,
}

/// Extra behaviour of a primary key column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PrimaryKeyOption {
    /// The server assigns increasing values on write.
    AutoIncrement = 1,
}

/// One primary key column of a table schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrimaryKeySchema {
    /// Column name.
    #[prost(string, required, tag = "1")]
    pub name: String,
    /// Column type.
    #[prost(enumeration = "PrimaryKeyType", required, tag = "2")]
    pub r#type: i32,
    /// E.g. auto-increment.
    #[prost(enumeration = "PrimaryKeyOption", optional, tag = "3")]
    pub option: Option<i32>,
}

/// One predefined attribute column of a table schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DefinedColumnSchema {
    /// Column name.
    #[prost(string, required, tag = "1")]
    pub name: String,
    /// Column type.
    #[prost(enumeration = "DefinedColumnType", required, tag = "2")]
    pub r#type: i32,
}

/// Data retention and versioning options of a table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableOptions {
    /// Seconds; -1 keeps data forever.
    #[prost(int32, optional, tag = "1")]
    pub time_to_live: Option<i32>,
    /// Versions kept per column.
    #[prost(int32, optional, tag = "2")]
    pub max_versions: Option<i32>,
    /// A storage hint (`BloomFilterType`: NONE=1, CELL=2, ROW=3), kept and described back.
    #[prost(int32, optional, tag = "3")]
    pub bloom_filter_type: Option<i32>,
    /// A storage hint (block size in bytes), kept and described back.
    #[prost(int32, optional, tag = "4")]
    pub block_size: Option<i32>,
    /// How far (seconds) a written cell timestamp may be from the server clock.
    #[prost(int64, optional, tag = "5")]
    pub deviation_cell_version_in_sec: Option<i64>,
    /// Whether UpdateRow is allowed (false for append-only tables).
    #[prost(bool, optional, tag = "6")]
    pub allow_update: Option<bool>,
    /// Whether an update writes the whole row (sent by the Go and Java SDKs).
    #[prost(bool, optional, tag = "7")]
    pub update_full_row: Option<bool>,
}

/// A table's name and schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableMeta {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// Primary key columns in order.
    #[prost(message, repeated, tag = "2")]
    pub primary_key: Vec<PrimaryKeySchema>,
    /// Predefined attribute columns.
    #[prost(message, repeated, tag = "3")]
    pub defined_column: Vec<DefinedColumnSchema>,
    /// Secondary index definitions (`IndexMeta`, kept serialized: the local server has no
    /// secondary indexes and refuses tables that ask for them).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub index_meta: Vec<Vec<u8>>,
}

impl TableMeta {
    /// The key with every column at `value` (`InfMin` or `InfMax`): a bound of a range over
    /// the whole table.
    pub fn bound(&self, value: crate::model::PrimaryKeyValue) -> crate::model::PrimaryKey {
        crate::model::PrimaryKey(
            self.primary_key
                .iter()
                .map(|k| crate::model::PrimaryKeyColumn {
                    name: k.name.clone(),
                    value: value.clone(),
                })
                .collect(),
        )
    }
}

/// What a conditional write expects about the row's existence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RowExistenceExpectation {
    /// Write regardless.
    Ignore = 0,
    /// Fail unless the row exists.
    ExpectExist = 1,
    /// Fail if the row exists.
    ExpectNotExist = 2,
}

/// The condition of a write: row existence and an optional column filter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Condition {
    /// A [`RowExistenceExpectation`].
    #[prost(enumeration = "RowExistenceExpectation", required, tag = "1")]
    pub row_existence: i32,
    /// A serialized [`super::filter::Filter`] the existing row must pass.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub column_condition: Option<Vec<u8>>,
}

/// Read and write capacity units.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CapacityUnit {
    /// Read units.
    #[prost(int32, optional, tag = "1")]
    pub read: Option<i32>,
    /// Write units.
    #[prost(int32, optional, tag = "2")]
    pub write: Option<i32>,
}

/// A table's reserved throughput and when it last changed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReservedThroughputDetails {
    /// Capacity units.
    #[prost(message, required, tag = "1")]
    pub capacity_unit: CapacityUnit,
    /// When capacity was last raised (seconds since the epoch).
    #[prost(int64, required, tag = "2")]
    pub last_increase_time: i64,
    /// When capacity was last lowered (seconds since the epoch).
    #[prost(int64, optional, tag = "3")]
    pub last_decrease_time: Option<i64>,
}

/// Reserved throughput to set on a table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReservedThroughput {
    /// Capacity units.
    #[prost(message, required, tag = "1")]
    pub capacity_unit: CapacityUnit,
}

impl ReservedThroughput {
    /// No reserved read or write capacity: a pay-per-request table, what every table this
    /// project creates asks for.
    pub fn none() -> Self {
        Self {
            capacity_unit: CapacityUnit {
                read: Some(0),
                write: Some(0),
            },
        }
    }
}

/// Capacity a call consumed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsumedCapacity {
    /// Capacity units.
    #[prost(message, required, tag = "1")]
    pub capacity_unit: CapacityUnit,
}

/// Whether a table keeps a stream of its changes, and for how long.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamSpecification {
    /// Whether the stream is on.
    #[prost(bool, required, tag = "1")]
    pub enable_stream: bool,
    /// Hours the stream keeps records.
    #[prost(int32, optional, tag = "2")]
    pub expiration_time: Option<i32>,
    /// Columns whose values before a change the stream records keep (`origin_record`).
    #[prost(string, repeated, tag = "3")]
    pub columns_to_get: Vec<String>,
}

/// A table's stream settings as described by the service.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamDetails {
    /// Whether the stream is on.
    #[prost(bool, required, tag = "1")]
    pub enable_stream: bool,
    /// The stream's id.
    #[prost(string, optional, tag = "2")]
    pub stream_id: Option<String>,
    /// Hours the stream keeps records.
    #[prost(int32, optional, tag = "3")]
    pub expiration_time: Option<i32>,
    /// When the stream was last enabled, in microseconds since the epoch.
    #[prost(int64, optional, tag = "4")]
    pub last_enable_time: Option<i64>,
    /// Columns whose values before a change the stream records keep.
    #[prost(string, repeated, tag = "5")]
    pub columns_to_get: Vec<String>,
}

/// A partition's key range as PlainBuffer-encoded primary key values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionRange {
    /// Inclusive start key.
    #[prost(bytes = "vec", required, tag = "1")]
    pub begin: Vec<u8>,
    /// Exclusive end key.
    #[prost(bytes = "vec", required, tag = "2")]
    pub end: Vec<u8>,
}

/// Server-side encryption of a new table (only whether it is asked for is read here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SseSpecification {
    /// Whether the table's data is encrypted at rest.
    #[prost(bool, required, tag = "1")]
    pub enable: bool,
}

/// CreateTable: a new table with its schema, throughput and options.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTableRequest {
    /// Name and schema.
    #[prost(message, required, tag = "1")]
    pub table_meta: TableMeta,
    /// Reserved read/write capacity.
    #[prost(message, required, tag = "2")]
    pub reserved_throughput: ReservedThroughput,
    /// Retention and versioning options.
    #[prost(message, optional, tag = "3")]
    pub table_options: Option<TableOptions>,
    /// Initial partition boundaries.
    #[prost(message, repeated, tag = "4")]
    pub partitions: Vec<PartitionRange>,
    /// Stream settings.
    #[prost(message, optional, tag = "5")]
    pub stream_spec: Option<StreamSpecification>,
    /// Server-side encryption.
    #[prost(message, optional, tag = "6")]
    pub sse_spec: Option<SseSpecification>,
    /// Secondary indexes to create with the table (`IndexMeta`, kept serialized; refused).
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub index_metas: Vec<Vec<u8>>,
    /// Whether local transactions are enabled (refused when true).
    #[prost(bool, optional, tag = "8")]
    pub enable_local_txn: Option<bool>,
}

/// The answer to CreateTable (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTableResponse {}

/// UpdateTable: changes throughput, options or the stream of a table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTableRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// Reserved read/write capacity.
    #[prost(message, optional, tag = "2")]
    pub reserved_throughput: Option<ReservedThroughput>,
    /// Retention and versioning options.
    #[prost(message, optional, tag = "3")]
    pub table_options: Option<TableOptions>,
    /// Stream settings.
    #[prost(message, optional, tag = "4")]
    pub stream_spec: Option<StreamSpecification>,
}

/// The answer to UpdateTable: the table's settings after the change.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTableResponse {
    /// Reserved capacity and its history.
    #[prost(message, required, tag = "1")]
    pub reserved_throughput_details: ReservedThroughputDetails,
    /// Retention and versioning options.
    #[prost(message, required, tag = "2")]
    pub table_options: TableOptions,
    /// Stream settings.
    #[prost(message, optional, tag = "3")]
    pub stream_details: Option<StreamDetails>,
}

/// DescribeTable: asks for a table's schema and settings.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeTableRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
}

/// A table's state (`DescribeTableResponse.table_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TableStatus {
    /// Serving.
    Active = 1,
    /// Not serving.
    Inactive = 2,
    /// Being loaded.
    Loading = 3,
    /// Being unloaded.
    Unloading = 4,
    /// Being updated.
    Updating = 5,
}

/// The answer to DescribeTable.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeTableResponse {
    /// Name and schema.
    #[prost(message, required, tag = "1")]
    pub table_meta: TableMeta,
    /// Reserved capacity and its history.
    #[prost(message, required, tag = "2")]
    pub reserved_throughput_details: ReservedThroughputDetails,
    /// Retention and versioning options.
    #[prost(message, required, tag = "3")]
    pub table_options: TableOptions,
    /// A [`TableStatus`]; `required` in the Go and Node SDKs' protos, which fail to decode an
    /// answer without it.
    #[prost(enumeration = "TableStatus", required, tag = "4")]
    pub table_status: i32,
    /// Stream settings, if a stream was ever enabled.
    #[prost(message, optional, tag = "5")]
    pub stream_details: Option<StreamDetails>,
    /// PlainBuffer-encoded primary keys where the table's partitions split.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub shard_splits: Vec<Vec<u8>>,
}

/// ListTable: asks for the instance's table names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTableRequest {}

/// The answer to ListTable.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTableResponse {
    /// Every table of the instance.
    #[prost(string, repeated, tag = "1")]
    pub table_names: Vec<String>,
}

/// DeleteTable: drops a table and its data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTableRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
}

/// The answer to DeleteTable (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTableResponse {}

/// Which cell versions a read returns: `[start_time, end_time)` or one exact version (ms).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeRange {
    /// Inclusive lower bound (ms).
    #[prost(int64, optional, tag = "1")]
    pub start_time: Option<i64>,
    /// Exclusive upper bound (ms).
    #[prost(int64, optional, tag = "2")]
    pub end_time: Option<i64>,
    /// One exact version (ms).
    #[prost(int64, optional, tag = "3")]
    pub specific_time: Option<i64>,
}

/// What a write returns besides success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReturnType {
    /// Nothing.
    RtNone = 0,
    /// The primary key (useful with auto-increment columns).
    RtPk = 1,
    /// The named columns after the change.
    RtAfterModify = 2,
}

/// What a write returns besides success.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReturnContent {
    /// A [`ReturnType`].
    #[prost(enumeration = "ReturnType", optional, tag = "1")]
    pub return_type: Option<i32>,
    /// Columns to return after the change.
    #[prost(string, repeated, tag = "2")]
    pub return_column_names: Vec<String>,
}

/// GetRow: reads one row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRowRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// The row's PlainBuffer-encoded primary key.
    #[prost(bytes = "vec", required, tag = "2")]
    pub primary_key: Vec<u8>,
    /// Columns to return; empty means all.
    #[prost(string, repeated, tag = "3")]
    pub columns_to_get: Vec<String>,
    /// Versions to return by timestamp.
    #[prost(message, optional, tag = "4")]
    pub time_range: Option<TimeRange>,
    /// Newest versions per column to return.
    #[prost(int32, optional, tag = "5")]
    pub max_versions: Option<i32>,
    /// A serialized [`super::filter::Filter`] rows must pass.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub filter: Option<Vec<u8>>,
    /// First column to return (wide rows), inclusive.
    #[prost(string, optional, tag = "8")]
    pub start_column: Option<String>,
    /// Column to stop before (wide rows).
    #[prost(string, optional, tag = "9")]
    pub end_column: Option<String>,
    /// Continuation token of a wide-row read.
    #[prost(bytes = "vec", optional, tag = "10")]
    pub token: Option<Vec<u8>>,
    /// The local transaction the read belongs to.
    #[prost(string, optional, tag = "11")]
    pub transaction_id: Option<String>,
}

/// The answer to GetRow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRowResponse {
    /// Capacity the call consumed.
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    /// The row in PlainBuffer, empty if it does not exist.
    #[prost(bytes = "vec", required, tag = "2")]
    pub row: Vec<u8>,
    /// Continuation token when a wide row was cut short.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub next_token: Option<Vec<u8>>,
}

/// UpdateRow: applies column operations to one row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateRowRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// The PlainBuffer row: primary key and column operations.
    #[prost(bytes = "vec", required, tag = "2")]
    pub row_change: Vec<u8>,
    /// Row existence expectation and column condition.
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    /// What to return besides success.
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
    /// The local transaction the write belongs to.
    #[prost(string, optional, tag = "5")]
    pub transaction_id: Option<String>,
}

/// The answer to PutRow, UpdateRow and DeleteRow alike.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRowResponse {
    /// Capacity the call consumed.
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    /// The returned row in PlainBuffer, if requested.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub row: Option<Vec<u8>>,
}

/// The answer to PutRow (the proto's `PutRowResponse`, identical on the wire).
pub type PutRowResponse = WriteRowResponse;
/// The answer to UpdateRow (the proto's `UpdateRowResponse`, identical on the wire).
pub type UpdateRowResponse = WriteRowResponse;
/// The answer to DeleteRow (the proto's `DeleteRowResponse`, identical on the wire).
pub type DeleteRowResponse = WriteRowResponse;

/// PutRow: replaces one row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRowRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// The PlainBuffer row: primary key and cells.
    #[prost(bytes = "vec", required, tag = "2")]
    pub row: Vec<u8>,
    /// Row existence expectation and column condition.
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    /// What to return besides success.
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
    /// The local transaction the write belongs to.
    #[prost(string, optional, tag = "5")]
    pub transaction_id: Option<String>,
}

/// DeleteRow: deletes one row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRowRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// A PlainBuffer row: the primary key and the delete marker.
    #[prost(bytes = "vec", required, tag = "2")]
    pub primary_key: Vec<u8>,
    /// Row existence expectation and column condition.
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    /// What to return besides success.
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
    /// The local transaction the write belongs to.
    #[prost(string, optional, tag = "5")]
    pub transaction_id: Option<String>,
}

/// The rows BatchGetRow reads from one table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchGetRowRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// PlainBuffer-encoded primary keys to read.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub primary_key: Vec<Vec<u8>>,
    /// Continuation tokens, one per key, of wide-row reads.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub token: Vec<Vec<u8>>,
    /// Columns to return; empty means all.
    #[prost(string, repeated, tag = "4")]
    pub columns_to_get: Vec<String>,
    /// Versions to return by timestamp.
    #[prost(message, optional, tag = "5")]
    pub time_range: Option<TimeRange>,
    /// Newest versions per column to return.
    #[prost(int32, optional, tag = "6")]
    pub max_versions: Option<i32>,
    /// A serialized [`super::filter::Filter`] rows must pass.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub filter: Option<Vec<u8>>,
    /// First column to return (wide rows), inclusive.
    #[prost(string, optional, tag = "9")]
    pub start_column: Option<String>,
    /// Column to stop before (wide rows).
    #[prost(string, optional, tag = "10")]
    pub end_column: Option<String>,
}

/// BatchGetRow: reads many rows from one or more tables.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchGetRowRequest {
    /// One entry per table.
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchGetRowRequest>,
}

/// The outcome of one row of a BatchGetRow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RowInBatchGetRowResponse {
    /// Whether this row succeeded.
    #[prost(bool, required, tag = "1")]
    pub is_ok: bool,
    /// Why this row failed.
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    /// Capacity the call consumed.
    #[prost(message, optional, tag = "3")]
    pub consumed: Option<ConsumedCapacity>,
    /// The row in PlainBuffer, empty if it does not exist.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub row: Option<Vec<u8>>,
    /// Continuation token when a wide row was cut short.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub next_token: Option<Vec<u8>>,
}

/// The outcomes of one table's rows of a BatchGetRow, in request order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchGetRowResponse {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// One entry per row, in request order.
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<RowInBatchGetRowResponse>,
}

/// The answer to BatchGetRow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchGetRowResponse {
    /// One entry per table.
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchGetRowResponse>,
}

/// The kind of one row change in a BatchWriteRow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum OperationType {
    /// PutRow semantics.
    Put = 1,
    /// UpdateRow semantics.
    Update = 2,
    /// DeleteRow semantics.
    Delete = 3,
}

/// One row change of a BatchWriteRow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RowInBatchWriteRowRequest {
    /// An [`OperationType`].
    #[prost(enumeration = "OperationType", required, tag = "1")]
    pub r#type: i32,
    /// The PlainBuffer row change.
    #[prost(bytes = "vec", required, tag = "2")]
    pub row_change: Vec<u8>,
    /// Row existence expectation and column condition.
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    /// What to return besides success.
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
}

/// The row changes BatchWriteRow applies to one table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchWriteRowRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// One entry per row, in request order.
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<RowInBatchWriteRowRequest>,
}

/// BatchWriteRow: applies many row changes; each row succeeds or fails on its own.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchWriteRowRequest {
    /// One entry per table.
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchWriteRowRequest>,
    /// The local transaction the writes belong to.
    #[prost(string, optional, tag = "2")]
    pub transaction_id: Option<String>,
    /// Whether all rows must succeed or none (the Go SDK always sends it).
    #[prost(bool, optional, tag = "3")]
    pub is_atomic: Option<bool>,
}

/// The outcome of one row change of a BatchWriteRow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RowInBatchWriteRowResponse {
    /// Whether this row succeeded.
    #[prost(bool, required, tag = "1")]
    pub is_ok: bool,
    /// Why this row failed.
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    /// Capacity the call consumed.
    #[prost(message, optional, tag = "3")]
    pub consumed: Option<ConsumedCapacity>,
    /// The returned row in PlainBuffer, if requested.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub row: Option<Vec<u8>>,
}

/// The outcomes of one table's row changes, in request order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchWriteRowResponse {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// One entry per row, in request order.
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<RowInBatchWriteRowResponse>,
}

/// The answer to BatchWriteRow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchWriteRowResponse {
    /// One entry per table.
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchWriteRowResponse>,
}

/// The order of a range read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Direction {
    /// Ascending primary keys.
    Forward = 0,
    /// Descending primary keys.
    Backward = 1,
}

/// GetRange: reads the rows of a primary key range, one page per call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRangeRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// A [`Direction`].
    #[prost(enumeration = "Direction", required, tag = "2")]
    pub direction: i32,
    /// Columns to return; empty means all.
    #[prost(string, repeated, tag = "3")]
    pub columns_to_get: Vec<String>,
    /// Versions to return by timestamp.
    #[prost(message, optional, tag = "4")]
    pub time_range: Option<TimeRange>,
    /// Newest versions per column to return.
    #[prost(int32, optional, tag = "5")]
    pub max_versions: Option<i32>,
    /// Most rows to return in this page.
    #[prost(int32, optional, tag = "6")]
    pub limit: Option<i32>,
    /// PlainBuffer-encoded start key (inclusive).
    #[prost(bytes = "vec", required, tag = "7")]
    pub inclusive_start_primary_key: Vec<u8>,
    /// PlainBuffer-encoded end key (exclusive).
    #[prost(bytes = "vec", required, tag = "8")]
    pub exclusive_end_primary_key: Vec<u8>,
    /// A serialized [`super::filter::Filter`] rows must pass.
    #[prost(bytes = "vec", optional, tag = "10")]
    pub filter: Option<Vec<u8>>,
    /// First column to return (wide rows), inclusive.
    #[prost(string, optional, tag = "11")]
    pub start_column: Option<String>,
    /// Column to stop before (wide rows).
    #[prost(string, optional, tag = "12")]
    pub end_column: Option<String>,
    /// Continuation token of a wide-row read.
    #[prost(bytes = "vec", optional, tag = "13")]
    pub token: Option<Vec<u8>>,
    /// The local transaction the read belongs to.
    #[prost(string, optional, tag = "14")]
    pub transaction_id: Option<String>,
    /// The row format the client prefers (`DataBlockType`: PLAIN_BUFFER=0); the answer says
    /// which it got and is PlainBuffer here.
    #[prost(int32, optional, tag = "15")]
    pub data_block_type_hint: Option<i32>,
    /// Whether rows carry every primary key column (default) or only those in
    /// `columns_to_get`.
    #[prost(bool, optional, tag = "16")]
    pub return_entire_primary_keys: Option<bool>,
    /// The compression the client prefers (`CompressType`: NONE=0); answers are uncompressed.
    #[prost(int32, optional, tag = "17")]
    pub compress_type_hint: Option<i32>,
}

/// One page of a GetRange.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRangeResponse {
    /// Capacity the call consumed.
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    /// The page's rows in PlainBuffer.
    #[prost(bytes = "vec", required, tag = "2")]
    pub rows: Vec<u8>,
    /// Where the next page starts; absent when the range is done.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub next_start_primary_key: Option<Vec<u8>>,
    /// Continuation token when a wide row was cut short.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub next_token: Option<Vec<u8>>,
}

/// ComputeSplitPointsBySize: splits a table into ranges of about equal size.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComputeSplitPointsBySizeRequest {
    /// The table.
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// In units of 100 MB unless `split_size_unit_in_byte` says otherwise.
    #[prost(int64, required, tag = "2")]
    pub split_size: i64,
    /// The unit of `split_size` in bytes.
    #[prost(int64, optional, tag = "3")]
    pub split_size_unit_in_byte: Option<i64>,
    /// Most split points to return.
    #[prost(int32, optional, tag = "4")]
    pub split_point_limit: Option<i32>,
}

/// Where consecutive split ranges are served (run-length encoded).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SplitLocation {
    /// The serving location.
    #[prost(string, required, tag = "1")]
    pub location: String,
    /// How many consecutive ranges it serves.
    #[prost(sint64, required, tag = "2")]
    pub repeat: i64,
}

/// The answer to ComputeSplitPointsBySize.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComputeSplitPointsBySizeResponse {
    /// Capacity the call consumed.
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    /// The table's primary key schema.
    #[prost(message, repeated, tag = "2")]
    pub schema: Vec<PrimaryKeySchema>,
    /// PlainBuffer-encoded split points in increasing order (trailing -inf columns omitted).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub split_points: Vec<Vec<u8>>,
    /// Where the ranges are served.
    #[prost(message, repeated, tag = "4")]
    pub locations: Vec<SplitLocation>,
}
