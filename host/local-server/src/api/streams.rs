//! The Stream API: a table's stream as shards (one per partition of its change log) read with
//! iterators. An iterator is a position in a shard's log, so the same position always gives
//! the same iterator (the Go SDK's stream test stops when an iterator comes back unchanged).

use ots_protocol::error::ErrorCode;
use ots_protocol::pb::stream::*;
use prost::Message;

use super::consumed;
use super::tables::stream_id;
use crate::error::ApiError;
use crate::rules::TableInfo;
use crate::store::Store;

/// Most records one GetStreamRecord returns.
pub const MAX_STREAM_RECORDS: usize = 1000;

/// The enabled streams of the instance, or of one table, with their tables.
fn streams(store: &Store, table: Option<&str>) -> Result<Vec<(TableInfo, String, i64)>, ApiError> {
    let names = match table {
        Some(name) => vec![name.to_owned()],
        None => store.list_tables()?,
    };
    let mut streams = Vec::new();
    for name in names {
        let info = store.table(&name)?;
        if info.stream_enabled() {
            let enabled_at = store.stream_enabled_at(&info)?;
            streams.push((info, stream_id(&name, enabled_at), enabled_at));
        }
    }
    Ok(streams)
}

/// The table of a stream id, or the service's error for an unknown one.
fn stream_of(store: &Store, id: &str) -> Result<(TableInfo, i64), ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorCode::ObjectNotExist,
            format!("Requested stream does not exist: {id}."),
        )
    };
    let (table, _) = id.rsplit_once('_').ok_or_else(unknown)?;
    let info = store.table(table).map_err(|_| unknown())?;
    let enabled_at = store.stream_enabled_at(&info)?;
    if !info.stream_enabled() || stream_id(table, enabled_at) != id {
        return Err(unknown());
    }
    Ok((info, enabled_at))
}

pub(crate) fn list(store: &Store, request: ListStreamRequest) -> Result<Vec<u8>, ApiError> {
    if let Some(table) = &request.table_name {
        crate::rules::validate_table_name(table)?;
    }
    let streams = streams(store, request.table_name.as_deref())?
        .into_iter()
        .map(|(info, stream_id, enabled_at)| Stream {
            stream_id,
            table_name: info.name().to_owned(),
            creation_time: enabled_at,
        })
        .collect();
    Ok(ListStreamResponse { streams }.encode_to_vec())
}

pub(crate) fn describe(store: &Store, request: DescribeStreamRequest) -> Result<Vec<u8>, ApiError> {
    let (info, enabled_at) = stream_of(store, &request.stream_id)?;
    let limit = match request.shard_limit {
        Some(l) if l <= 0 => {
            return Err(ApiError::invalid(format!(
                "The shard_limit must be greater than 0, got {l}."
            )));
        }
        Some(l) => l as usize,
        None => usize::MAX,
    };
    let mut partitions = store.partitions(info.name())?;
    partitions.sort_by_key(|p| p.id);
    let start = match &request.inclusive_start_shard_id {
        Some(id) => partitions
            .iter()
            .position(|p| p.id.to_string() == *id)
            .ok_or_else(|| ApiError::invalid(format!("No shard {id} in the stream.")))?,
        None => 0,
    };
    let page: Vec<_> = partitions.iter().skip(start).take(limit).collect();
    let next_shard_id = partitions.get(start + page.len()).map(|p| p.id.to_string());
    let shards = page
        .into_iter()
        .map(|p| StreamShard {
            shard_id: p.id.to_string(),
            parent_id: p.parents.first().map(u32::to_string),
            parent_sibling_id: p.parents.get(1).map(u32::to_string),
        })
        .collect();
    let expiration = info
        .definition
        .stream_spec
        .as_ref()
        .and_then(|s| s.expiration_time)
        .unwrap_or(super::tables::DEFAULT_STREAM_EXPIRATION_HOURS);
    Ok(DescribeStreamResponse {
        stream_id: request.stream_id,
        expiration_time: expiration,
        table_name: info.name().to_owned(),
        creation_time: enabled_at,
        stream_status: StreamStatus::StreamActive as i32,
        shards,
        next_shard_id,
        is_timeseries_data_table: Some(false),
    }
    .encode_to_vec())
}

/// A position in a shard: the stream, the partition, and the last log sequence number read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Iterator {
    stream_id: String,
    partition: u32,
    after: u64,
}

impl Iterator {
    fn encode(&self) -> String {
        format!("{}|{}|{}", self.stream_id, self.partition, self.after)
    }

    fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::invalid(format!("Invalid shard iterator: {text:?}."));
        let mut parts = text.rsplitn(3, '|');
        let after = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)?;
        let partition = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)?;
        let stream_id = parts.next().ok_or_else(invalid)?.to_owned();
        Ok(Self {
            stream_id,
            partition,
            after,
        })
    }
}

fn partition_of(store: &Store, info: &TableInfo, shard: &str) -> Result<u32, ApiError> {
    let missing = || ApiError::invalid(format!("No shard {shard} in the stream."));
    let id: u32 = shard.parse().map_err(|_| missing())?;
    store
        .partitions(info.name())?
        .iter()
        .any(|p| p.id == id)
        .then_some(id)
        .ok_or_else(missing)
}

pub(crate) fn shard_iterator(
    store: &Store,
    request: GetShardIteratorRequest,
) -> Result<Vec<u8>, ApiError> {
    let (info, _) = stream_of(store, &request.stream_id)?;
    let partition = partition_of(store, &info, &request.shard_id)?;
    if request.token.is_some() {
        return Err(ApiError::invalid(
            "Invalid token: this server answers a seek by timestamp at once, without tokens.",
        ));
    }
    let after = match request.timestamp {
        // TRIM_HORIZON: the oldest record the stream still keeps.
        None => store.oldest_log_position(info.name(), partition)?,
        Some(at) => store.log_position_before(info.name(), partition, at)?,
    };
    let iterator = Iterator {
        stream_id: request.stream_id,
        partition,
        after,
    };
    Ok(GetShardIteratorResponse {
        shard_iterator: iterator.encode(),
        next_token: None,
    }
    .encode_to_vec())
}

pub(crate) fn records(store: &Store, request: GetStreamRecordRequest) -> Result<Vec<u8>, ApiError> {
    let iterator = Iterator::decode(&request.shard_iterator)?;
    let (info, _) = stream_of(store, &iterator.stream_id)?;
    let limit = match request.limit {
        Some(l) if l <= 0 => {
            return Err(ApiError::invalid(format!(
                "The limit must be greater than 0, got {l}."
            )));
        }
        Some(l) => (l as usize).min(MAX_STREAM_RECORDS),
        None => MAX_STREAM_RECORDS,
    };
    let table = info.name();
    let (logged, head) = store.read_log(table, iterator.partition, iterator.after, limit)?;
    let closed = store
        .partitions(table)?
        .iter()
        .any(|p| p.id == iterator.partition && p.closed);
    let after = logged.last().map_or(iterator.after, |r| r.seq);
    let next_shard_iterator = (!closed || after < head).then(|| {
        Iterator {
            after,
            ..iterator.clone()
        }
        .encode()
    });
    Ok(GetStreamRecordResponse {
        may_more_record: Some(logged.len() == limit && after < head),
        stream_records: logged
            .into_iter()
            .map(|r| StreamRecord {
                action_type: r.record.action_type,
                record: r.record.record,
                origin_record: r.record.origin_record,
            })
            .collect(),
        next_shard_iterator,
        consumed: Some(consumed(1, 0)),
    }
    .encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_name_a_position_and_read_back() {
        let iterator = Iterator {
            stream_id: "my_table_1700000000000000".into(),
            partition: 3,
            after: 42,
        };
        let text = iterator.encode();
        assert_eq!(Iterator::decode(&text).unwrap(), iterator);
        assert_eq!(text, iterator.clone().encode(), "deterministic");
        assert!(Iterator::decode("nonsense").is_err());
    }
}
