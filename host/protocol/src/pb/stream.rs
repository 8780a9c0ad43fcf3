//! Messages of the Stream API (`/ListStream`, `/DescribeStream`, `/GetShardIterator`,
//! `/GetStreamRecord`), which DataX's otsstreamreader and the Go and Java SDKs' stream clients
//! use. Field numbers follow the Go and Java SDKs' `table_store.proto`; times are microseconds
//! and expirations hours.

use super::table::ConsumedCapacity;
use super::tunnel::ActionType;

/// ListStream: the streams of a table, or of the instance.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListStreamRequest {
    /// Only this table's stream.
    #[prost(string, optional, tag = "1")]
    pub table_name: Option<String>,
}

/// One stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stream {
    /// The stream's id.
    #[prost(string, required, tag = "1")]
    pub stream_id: String,
    /// Its table.
    #[prost(string, required, tag = "2")]
    pub table_name: String,
    /// When it was enabled, µs since the epoch.
    #[prost(int64, required, tag = "3")]
    pub creation_time: i64,
}

/// The answer to ListStream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListStreamResponse {
    /// The streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<Stream>,
}

/// One shard of a stream (a partition of its table).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamShard {
    /// The shard's id.
    #[prost(string, required, tag = "1")]
    pub shard_id: String,
    /// The shard this one was split from, read to its end first.
    #[prost(string, optional, tag = "2")]
    pub parent_id: Option<String>,
    /// The other parent of a shard born from a merge.
    #[prost(string, optional, tag = "3")]
    pub parent_sibling_id: Option<String>,
}

/// A stream's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StreamStatus {
    /// Being enabled.
    StreamEnabling = 1,
    /// Serving.
    StreamActive = 2,
}

/// DescribeStream: a stream's shards, a page at a time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeStreamRequest {
    /// The stream.
    #[prost(string, required, tag = "1")]
    pub stream_id: String,
    /// The first shard of the page.
    #[prost(string, optional, tag = "2")]
    pub inclusive_start_shard_id: Option<String>,
    /// Most shards in the page.
    #[prost(int32, optional, tag = "3")]
    pub shard_limit: Option<i32>,
    /// Sent by the Java SDK; time-series tables are not served here.
    #[prost(bool, optional, tag = "4")]
    pub support_timeseries_data_table: Option<bool>,
}

/// The answer to DescribeStream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeStreamResponse {
    /// The stream.
    #[prost(string, required, tag = "1")]
    pub stream_id: String,
    /// Hours records are kept.
    #[prost(int32, required, tag = "2")]
    pub expiration_time: i32,
    /// Its table.
    #[prost(string, required, tag = "3")]
    pub table_name: String,
    /// When it was enabled, µs since the epoch.
    #[prost(int64, required, tag = "4")]
    pub creation_time: i64,
    /// A [`StreamStatus`].
    #[prost(enumeration = "StreamStatus", required, tag = "5")]
    pub stream_status: i32,
    /// The page's shards.
    #[prost(message, repeated, tag = "6")]
    pub shards: Vec<StreamShard>,
    /// The first shard of the next page, if there is one.
    #[prost(string, optional, tag = "7")]
    pub next_shard_id: Option<String>,
    /// Whether the table is a time-series table (never, here).
    #[prost(bool, optional, tag = "8")]
    pub is_timeseries_data_table: Option<bool>,
}

/// GetShardIterator: where to start reading a shard.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetShardIteratorRequest {
    /// The stream.
    #[prost(string, required, tag = "1")]
    pub stream_id: String,
    /// The shard.
    #[prost(string, required, tag = "2")]
    pub shard_id: String,
    /// Start at the first record committed at or after this time (µs); without it, at the
    /// oldest record kept.
    #[prost(int64, optional, tag = "3")]
    pub timestamp: Option<i64>,
    /// Continuation of a seek by timestamp that did not finish.
    #[prost(string, optional, tag = "4")]
    pub token: Option<String>,
}

/// The answer to GetShardIterator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetShardIteratorResponse {
    /// The iterator to read from.
    #[prost(string, required, tag = "1")]
    pub shard_iterator: String,
    /// Present when a seek by timestamp must be continued.
    #[prost(string, optional, tag = "2")]
    pub next_token: Option<String>,
}

/// GetStreamRecord: the records after an iterator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetStreamRecordRequest {
    /// Where to read from.
    #[prost(string, required, tag = "1")]
    pub shard_iterator: String,
    /// Most records to return.
    #[prost(int32, optional, tag = "2")]
    pub limit: Option<i32>,
    /// The table (sent by some clients).
    #[prost(string, optional, tag = "3")]
    pub table_name: Option<String>,
}

/// One record of a stream: the change, in a PlainBuffer row with its sequence info.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamRecord {
    /// What the change was.
    #[prost(enumeration = "ActionType", required, tag = "1")]
    pub action_type: i32,
    /// The row.
    #[prost(bytes = "vec", required, tag = "2")]
    pub record: Vec<u8>,
    /// The values before the change (streams with origin columns).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub origin_record: Option<Vec<u8>>,
}

/// The answer to GetStreamRecord.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetStreamRecordResponse {
    /// The records, in log order.
    #[prost(message, repeated, tag = "1")]
    pub stream_records: Vec<StreamRecord>,
    /// Where to read next; absent once a closed shard is read to its end.
    #[prost(string, optional, tag = "2")]
    pub next_shard_iterator: Option<String>,
    /// Capacity the call consumed.
    #[prost(message, optional, tag = "3")]
    pub consumed: Option<ConsumedCapacity>,
    /// Whether more records may be read at once.
    #[prost(bool, optional, tag = "4")]
    pub may_more_record: Option<bool>,
}
