//! The table, row and stream APIs: decode a request, check it as the service does, run it on
//! the store, encode the answer. [`tables`], [`rows`] and [`streams`] hold the calls; tunnel
//! calls go to [`crate::tunnel`].

pub mod rows;
pub mod streams;
pub mod tables;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::PrimaryKey;
use ots_protocol::pb::table::{CapacityUnit, ConsumedCapacity};
use ots_protocol::plainbuffer;
use prost::Message;

use crate::error::ApiError;
use crate::state::ServerState;

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
    let api = path.trim_start_matches('/');
    if let Some(call) = api.strip_prefix("tunnel/") {
        return state.tunnels.dispatch(&state.store, call, body);
    }
    let store = &state.store;
    match api {
        "CreateTable" => tables::create(store, decode(api, body)?),
        "DescribeTable" => tables::describe(store, decode(api, body)?),
        "ListTable" => tables::list(store),
        "DeleteTable" => tables::delete(store, decode(api, body)?),
        "UpdateTable" => tables::update(store, decode(api, body)?),
        "ComputeSplitPointsBySize" => tables::split_points(store, decode(api, body)?),
        "PutRow" => rows::put_row(store, decode(api, body)?),
        "UpdateRow" => rows::update_row(store, decode(api, body)?),
        "DeleteRow" => rows::delete_row(store, decode(api, body)?),
        "GetRow" => rows::get_row(store, decode(api, body)?),
        "GetRange" => rows::get_range(store, decode(api, body)?),
        "BatchGetRow" => rows::batch_get_row(store, decode(api, body)?),
        "BatchWriteRow" => rows::batch_write_row(state, decode(api, body)?),
        "ListStream" => streams::list(store, decode(api, body)?),
        "DescribeStream" => streams::describe(store, decode(api, body)?),
        "GetShardIterator" => streams::shard_iterator(store, decode(api, body)?),
        "GetStreamRecord" => streams::records(store, decode(api, body)?),
        "admin/SplitPartition" => {
            let request: SplitPartitionRequest = decode(api, body)?;
            let at = primary_key(&request.split_point)?;
            let (left, right) =
                store.split_partition(&request.table_name, request.partition_id, &at)?;
            Ok(SplitPartitionResponse { left, right }.encode_to_vec())
        }
        _ => Err(ApiError::new(
            ErrorCode::UnsupportOperation,
            format!("Unsupported operation: '{api}'."),
        )),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn decode<M: Message + Default>(api: &str, body: &[u8]) -> Result<M, ApiError> {
    M::decode(body)
        .map_err(|e| ApiError::invalid(format!("Failed to parse the {api} request: {e}.")))
}

pub(crate) fn pb_error(err: plainbuffer::PlainBufferError) -> ApiError {
    ApiError::invalid(format!("Invalid PlainBuffer: {err}."))
}

pub(crate) fn primary_key(bytes: &[u8]) -> Result<PrimaryKey, ApiError> {
    plainbuffer::decode_primary_key(bytes).map_err(pb_error)
}

/// Capacity units a call reports; the SDKs read both.
pub(crate) fn consumed(read: i32, write: i32) -> ConsumedCapacity {
    ConsumedCapacity {
        capacity_unit: CapacityUnit {
            read: Some(read),
            write: Some(write),
        },
    }
}

/// Refuses a feature the local server does not have, naming it.
pub(crate) fn unsupported(feature: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportOperation,
        format!("{feature} not supported by the local server."),
    )
}

/// Refuses requests that belong to a local transaction (not implemented).
pub(crate) fn refuse_transaction(transaction_id: &Option<String>) -> Result<(), ApiError> {
    match transaction_id {
        Some(_) => Err(unsupported("Local transactions are")),
        None => Ok(()),
    }
}
