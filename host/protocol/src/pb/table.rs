//! Messages of the table and row APIs (`com.aliyun.tablestore.protocol`). Rows travel as
//! PlainBuffer inside `bytes` fields; see [`crate::plainbuffer`].
#![allow(missing_docs)]

/// The body of every error answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(string, required, tag = "1")]
    pub code: String,
    #[prost(string, optional, tag = "2")]
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PrimaryKeyType {
    Integer = 1,
    String = 2,
    Binary = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DefinedColumnType {
    DctInteger = 1,
    DctDouble = 2,
    DctBoolean = 3,
    DctString = 4,
    DctBlob = 7,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PrimaryKeyOption {
    AutoIncrement = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PrimaryKeySchema {
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(enumeration = "PrimaryKeyType", required, tag = "2")]
    pub r#type: i32,
    #[prost(enumeration = "PrimaryKeyOption", optional, tag = "3")]
    pub option: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DefinedColumnSchema {
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(enumeration = "DefinedColumnType", required, tag = "2")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TableOptions {
    /// Seconds; -1 keeps data forever.
    #[prost(int32, optional, tag = "1")]
    pub time_to_live: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub max_versions: Option<i32>,
    /// How far (seconds) a written cell timestamp may be from the server clock.
    #[prost(int64, optional, tag = "5")]
    pub deviation_cell_version_in_sec: Option<i64>,
    #[prost(bool, optional, tag = "6")]
    pub allow_update: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TableMeta {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(message, repeated, tag = "2")]
    pub primary_key: Vec<PrimaryKeySchema>,
    #[prost(message, repeated, tag = "3")]
    pub defined_column: Vec<DefinedColumnSchema>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RowExistenceExpectation {
    Ignore = 0,
    ExpectExist = 1,
    ExpectNotExist = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Condition {
    #[prost(enumeration = "RowExistenceExpectation", required, tag = "1")]
    pub row_existence: i32,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub column_condition: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CapacityUnit {
    #[prost(int32, optional, tag = "1")]
    pub read: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub write: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReservedThroughputDetails {
    #[prost(message, required, tag = "1")]
    pub capacity_unit: CapacityUnit,
    #[prost(int64, required, tag = "2")]
    pub last_increase_time: i64,
    #[prost(int64, optional, tag = "3")]
    pub last_decrease_time: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReservedThroughput {
    #[prost(message, required, tag = "1")]
    pub capacity_unit: CapacityUnit,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsumedCapacity {
    #[prost(message, required, tag = "1")]
    pub capacity_unit: CapacityUnit,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamSpecification {
    #[prost(bool, required, tag = "1")]
    pub enable_stream: bool,
    /// Hours the stream keeps records.
    #[prost(int32, optional, tag = "2")]
    pub expiration_time: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamDetails {
    #[prost(bool, required, tag = "1")]
    pub enable_stream: bool,
    #[prost(string, optional, tag = "2")]
    pub stream_id: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub expiration_time: Option<i32>,
    #[prost(int64, optional, tag = "4")]
    pub last_enable_time: Option<i64>,
}

/// A partition's key range as PlainBuffer-encoded primary key values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionRange {
    #[prost(bytes = "vec", required, tag = "1")]
    pub begin: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub end: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTableRequest {
    #[prost(message, required, tag = "1")]
    pub table_meta: TableMeta,
    #[prost(message, required, tag = "2")]
    pub reserved_throughput: ReservedThroughput,
    #[prost(message, optional, tag = "3")]
    pub table_options: Option<TableOptions>,
    #[prost(message, repeated, tag = "4")]
    pub partitions: Vec<PartitionRange>,
    #[prost(message, optional, tag = "5")]
    pub stream_spec: Option<StreamSpecification>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTableResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTableRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(message, optional, tag = "2")]
    pub reserved_throughput: Option<ReservedThroughput>,
    #[prost(message, optional, tag = "3")]
    pub table_options: Option<TableOptions>,
    #[prost(message, optional, tag = "4")]
    pub stream_spec: Option<StreamSpecification>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTableResponse {
    #[prost(message, required, tag = "1")]
    pub reserved_throughput_details: ReservedThroughputDetails,
    #[prost(message, required, tag = "2")]
    pub table_options: TableOptions,
    #[prost(message, optional, tag = "3")]
    pub stream_details: Option<StreamDetails>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeTableRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeTableResponse {
    #[prost(message, required, tag = "1")]
    pub table_meta: TableMeta,
    #[prost(message, required, tag = "2")]
    pub reserved_throughput_details: ReservedThroughputDetails,
    #[prost(message, required, tag = "3")]
    pub table_options: TableOptions,
    #[prost(message, optional, tag = "5")]
    pub stream_details: Option<StreamDetails>,
    /// PlainBuffer-encoded primary keys where the table's partitions split.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub shard_splits: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTableRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTableResponse {
    #[prost(string, repeated, tag = "1")]
    pub table_names: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTableRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTableResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeRange {
    #[prost(int64, optional, tag = "1")]
    pub start_time: Option<i64>,
    #[prost(int64, optional, tag = "2")]
    pub end_time: Option<i64>,
    #[prost(int64, optional, tag = "3")]
    pub specific_time: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReturnType {
    RtNone = 0,
    RtPk = 1,
    RtAfterModify = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReturnContent {
    #[prost(enumeration = "ReturnType", optional, tag = "1")]
    pub return_type: Option<i32>,
    #[prost(string, repeated, tag = "2")]
    pub return_column_names: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRowRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(bytes = "vec", required, tag = "2")]
    pub primary_key: Vec<u8>,
    #[prost(string, repeated, tag = "3")]
    pub columns_to_get: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub time_range: Option<TimeRange>,
    #[prost(int32, optional, tag = "5")]
    pub max_versions: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub filter: Option<Vec<u8>>,
    #[prost(string, optional, tag = "8")]
    pub start_column: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub end_column: Option<String>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub token: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRowResponse {
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    #[prost(bytes = "vec", required, tag = "2")]
    pub row: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub next_token: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateRowRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(bytes = "vec", required, tag = "2")]
    pub row_change: Vec<u8>,
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
}

/// The answer to PutRow, UpdateRow and DeleteRow alike.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRowResponse {
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub row: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRowRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(bytes = "vec", required, tag = "2")]
    pub row: Vec<u8>,
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRowRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// A PlainBuffer row: the primary key and the delete marker.
    #[prost(bytes = "vec", required, tag = "2")]
    pub primary_key: Vec<u8>,
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchGetRowRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub primary_key: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub token: Vec<Vec<u8>>,
    #[prost(string, repeated, tag = "4")]
    pub columns_to_get: Vec<String>,
    #[prost(message, optional, tag = "5")]
    pub time_range: Option<TimeRange>,
    #[prost(int32, optional, tag = "6")]
    pub max_versions: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub filter: Option<Vec<u8>>,
    #[prost(string, optional, tag = "9")]
    pub start_column: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub end_column: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchGetRowRequest {
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchGetRowRequest>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RowInBatchGetRowResponse {
    #[prost(bool, required, tag = "1")]
    pub is_ok: bool,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub consumed: Option<ConsumedCapacity>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub row: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub next_token: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchGetRowResponse {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<RowInBatchGetRowResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchGetRowResponse {
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchGetRowResponse>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum OperationType {
    Put = 1,
    Update = 2,
    Delete = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RowInBatchWriteRowRequest {
    #[prost(enumeration = "OperationType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bytes = "vec", required, tag = "2")]
    pub row_change: Vec<u8>,
    #[prost(message, required, tag = "3")]
    pub condition: Condition,
    #[prost(message, optional, tag = "4")]
    pub return_content: Option<ReturnContent>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchWriteRowRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<RowInBatchWriteRowRequest>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchWriteRowRequest {
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchWriteRowRequest>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RowInBatchWriteRowResponse {
    #[prost(bool, required, tag = "1")]
    pub is_ok: bool,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub consumed: Option<ConsumedCapacity>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub row: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TableInBatchWriteRowResponse {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<RowInBatchWriteRowResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchWriteRowResponse {
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<TableInBatchWriteRowResponse>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Direction {
    Forward = 0,
    Backward = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRangeRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(enumeration = "Direction", required, tag = "2")]
    pub direction: i32,
    #[prost(string, repeated, tag = "3")]
    pub columns_to_get: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub time_range: Option<TimeRange>,
    #[prost(int32, optional, tag = "5")]
    pub max_versions: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    pub limit: Option<i32>,
    #[prost(bytes = "vec", required, tag = "7")]
    pub inclusive_start_primary_key: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "8")]
    pub exclusive_end_primary_key: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub filter: Option<Vec<u8>>,
    #[prost(string, optional, tag = "11")]
    pub start_column: Option<String>,
    #[prost(string, optional, tag = "12")]
    pub end_column: Option<String>,
    #[prost(bytes = "vec", optional, tag = "13")]
    pub token: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRangeResponse {
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    #[prost(bytes = "vec", required, tag = "2")]
    pub rows: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub next_start_primary_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub next_token: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ComputeSplitPointsBySizeRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    /// In units of 100 MB unless `split_size_unit_in_byte` says otherwise.
    #[prost(int64, required, tag = "2")]
    pub split_size: i64,
    #[prost(int64, optional, tag = "3")]
    pub split_size_unit_in_byte: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SplitLocation {
    #[prost(string, required, tag = "1")]
    pub location: String,
    #[prost(sint64, required, tag = "2")]
    pub repeat: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ComputeSplitPointsBySizeResponse {
    #[prost(message, required, tag = "1")]
    pub consumed: ConsumedCapacity,
    #[prost(message, repeated, tag = "2")]
    pub schema: Vec<PrimaryKeySchema>,
    /// PlainBuffer-encoded split points in increasing order (trailing -inf columns omitted).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub split_points: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "4")]
    pub locations: Vec<SplitLocation>,
}
