//! Table calls: CreateTable, DescribeTable, ListTable, DeleteTable, UpdateTable,
//! ComputeSplitPointsBySize.

use ots_protocol::pb::table::*;
use ots_protocol::plainbuffer;
use prost::Message;

use super::{consumed, unsupported};
use crate::error::ApiError;
use crate::rules::{self, TableInfo};
use crate::store::Store;

/// Hours a stream keeps records when it is enabled without saying: the most the service
/// allows, and what CreateTunnel gives a table it enables the stream of.
pub const DEFAULT_STREAM_EXPIRATION_HOURS: i32 = 168;

/// Checks a stream specification and fills in the default expiration; refuses before-images.
pub fn normalize_stream(spec: &mut StreamSpecification) -> Result<(), ApiError> {
    if !spec.columns_to_get.is_empty() {
        return Err(unsupported(
            "Stream records with the values before a change (stream columns_to_get) are",
        ));
    }
    match (spec.enable_stream, spec.expiration_time) {
        (false, Some(_)) => Err(ApiError::invalid(
            "Expiration time is invalid when enableStream is false",
        )),
        (false, None) => Ok(()),
        (true, None) => {
            spec.expiration_time = Some(DEFAULT_STREAM_EXPIRATION_HOURS);
            Ok(())
        }
        (true, Some(hours)) if (1..=DEFAULT_STREAM_EXPIRATION_HOURS).contains(&hours) => Ok(()),
        (true, Some(hours)) => Err(ApiError::invalid(format!(
            "Invalid expiration time: {hours}; a stream keeps records 1 to {DEFAULT_STREAM_EXPIRATION_HOURS} hours."
        ))),
    }
}

pub(crate) fn create(store: &Store, mut request: CreateTableRequest) -> Result<Vec<u8>, ApiError> {
    if request.sse_spec.as_ref().is_some_and(|s| s.enable) {
        return Err(unsupported("Server-side encryption is"));
    }
    if !request.index_metas.is_empty() || !request.table_meta.index_meta.is_empty() {
        return Err(unsupported("Secondary indexes are"));
    }
    if request.enable_local_txn == Some(true) {
        return Err(unsupported("Local transactions are"));
    }
    if let Some(stream) = &mut request.stream_spec {
        normalize_stream(stream)?;
    }
    store.create_table(request, super::now_ms())?;
    Ok(CreateTableResponse {}.encode_to_vec())
}

/// The capacity a table reports: what it was created or updated with, read and write always
/// present (the Go SDK dereferences both).
fn throughput_details(info: &TableInfo) -> ReservedThroughputDetails {
    let unit = &info.definition.reserved_throughput.capacity_unit;
    ReservedThroughputDetails {
        capacity_unit: CapacityUnit {
            read: Some(unit.read.unwrap_or(0)),
            write: Some(unit.write.unwrap_or(0)),
        },
        last_increase_time: info.created_at_ms / 1000,
        last_decrease_time: None,
    }
}

/// The stream details DescribeTable and UpdateTable send, always (the Go SDK reads them
/// unconditionally after UpdateTable, and `last_enable_time` whenever the stream is on).
fn stream_details(store: &Store, info: &TableInfo) -> Result<StreamDetails, ApiError> {
    let spec = info.definition.stream_spec.as_ref();
    if !info.stream_enabled() {
        return Ok(StreamDetails {
            enable_stream: false,
            ..Default::default()
        });
    }
    let enabled_at = store.stream_enabled_at(info)?;
    Ok(StreamDetails {
        enable_stream: true,
        stream_id: Some(stream_id(info.name(), enabled_at)),
        expiration_time: spec.and_then(|s| s.expiration_time),
        last_enable_time: Some(enabled_at),
        columns_to_get: Vec::new(),
    })
}

/// The id of a table's stream, which changes when the stream is enabled again.
pub fn stream_id(table: &str, enabled_at_us: i64) -> String {
    format!("{table}_{enabled_at_us}")
}

pub(crate) fn describe(store: &Store, request: DescribeTableRequest) -> Result<Vec<u8>, ApiError> {
    rules::validate_table_name(&request.table_name)?;
    let info = store.table(&request.table_name)?;
    Ok(DescribeTableResponse {
        reserved_throughput_details: throughput_details(&info),
        stream_details: Some(stream_details(store, &info)?),
        table_status: TableStatus::Active as i32,
        table_options: info.options().clone(),
        table_meta: info.definition.table_meta,
        shard_splits: Vec::new(),
    }
    .encode_to_vec())
}

pub(crate) fn list(store: &Store) -> Result<Vec<u8>, ApiError> {
    Ok(ListTableResponse {
        table_names: store.list_tables()?,
    }
    .encode_to_vec())
}

pub(crate) fn delete(store: &Store, request: DeleteTableRequest) -> Result<Vec<u8>, ApiError> {
    rules::validate_table_name(&request.table_name)?;
    store.delete_table(&request.table_name)?;
    Ok(DeleteTableResponse {}.encode_to_vec())
}

pub(crate) fn update(store: &Store, request: UpdateTableRequest) -> Result<Vec<u8>, ApiError> {
    rules::validate_table_name(&request.table_name)?;
    let mut stream = request.stream_spec.clone();
    if let Some(stream) = &mut stream {
        normalize_stream(stream)?;
    }
    let info = store.update_table(&request.table_name, super::now_ms(), |def| {
        if let Some(new) = &request.table_options {
            let options = def.table_options.get_or_insert_default();
            if let Some(ttl) = new.time_to_live {
                rules::check_ttl(ttl)?;
                options.time_to_live = Some(ttl);
            }
            if let Some(v) = new.max_versions {
                if v <= 0 {
                    return Err(ApiError::invalid(format!("Invalid max_versions: {v}.")));
                }
                options.max_versions = Some(v);
            }
            if let Some(d) = new.deviation_cell_version_in_sec {
                if d <= 0 {
                    return Err(ApiError::invalid(format!(
                        "Invalid deviation_cell_version_in_sec: {d}."
                    )));
                }
                options.deviation_cell_version_in_sec = Some(d);
            }
            for (field, value) in [
                (&mut options.allow_update, new.allow_update),
                (&mut options.update_full_row, new.update_full_row),
            ] {
                if value.is_some() {
                    *field = value;
                }
            }
            if new.bloom_filter_type.is_some() {
                options.bloom_filter_type = new.bloom_filter_type;
            }
            if new.block_size.is_some() {
                options.block_size = new.block_size;
            }
        }
        if let Some(stream) = &stream {
            def.stream_spec = Some(stream.clone());
        }
        if let Some(throughput) = &request.reserved_throughput {
            def.reserved_throughput = throughput.clone();
        }
        Ok(())
    })?;
    Ok(UpdateTableResponse {
        reserved_throughput_details: throughput_details(&info),
        table_options: info.options().clone(),
        stream_details: Some(stream_details(store, &info)?),
    }
    .encode_to_vec())
}

/// The smallest split unit the service accepts.
const MIN_SPLIT_UNIT_BYTES: i64 = 1024 * 1024;

pub(crate) fn split_points(
    store: &Store,
    request: ComputeSplitPointsBySizeRequest,
) -> Result<Vec<u8>, ApiError> {
    rules::validate_table_name(&request.table_name)?;
    if request.split_size <= 0 {
        return Err(ApiError::invalid(
            "The split_size should be greater than 0.",
        ));
    }
    let unit = request.split_size_unit_in_byte.unwrap_or(100 * 1024 * 1024);
    if unit < MIN_SPLIT_UNIT_BYTES {
        return Err(ApiError::invalid(format!(
            "The split_size_unit_in_byte should be greater equal than: {MIN_SPLIT_UNIT_BYTES}"
        )));
    }
    let limit = match request.split_point_limit {
        Some(l) if l <= 0 => {
            return Err(ApiError::invalid(format!(
                "The split_point_limit should be greater than 0, got {l}."
            )));
        }
        Some(l) => l as usize,
        None => usize::MAX,
    };
    let size = request.split_size.saturating_mul(unit) as u64;
    let schema = store
        .table(&request.table_name)?
        .definition
        .table_meta
        .primary_key;
    let mut points = store.split_points(&request.table_name, size)?;
    points.truncate(limit);
    Ok(ComputeSplitPointsBySizeResponse {
        consumed: consumed(1, 0),
        schema,
        split_points: points.iter().map(plainbuffer::encode_primary_key).collect(),
        // One server serves every range: the repeats add up to the number of ranges, as the
        // Java SDK checks (`ResponseFactory`: "The location list's length is not correct").
        locations: vec![SplitLocation {
            location: "local".into(),
            repeat: points.len() as i64 + 1,
        }],
    }
    .encode_to_vec())
}
