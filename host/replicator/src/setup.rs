//! Table and tunnel set-up before replication starts.

use ots_client::{Client, ClientError};
use ots_protocol::error::ErrorCode;
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, DescribeTableResponse, ReservedThroughput, TableMeta,
    TableOptions,
};
use ots_protocol::pb::tunnel::TunnelType;

/// The max time deviation (seconds) given to a destination table we create: about 50 years,
/// so cells copied with their original, possibly old, timestamps are accepted.
pub const DESTINATION_MAX_DEVIATION_SECS: i64 = 50 * 365 * 24 * 3600;

/// Why set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A call to the source or destination failed.
    #[error("{action}: {error}")]
    Call {
        /// What was being done, naming the table or tunnel.
        action: String,
        /// The failure.
        error: ClientError,
    },
    /// The source table has no stream, and the config does not let set-up enable it.
    #[error(
        "source table {table} has no stream enabled, so it cannot be replicated incrementally; set `ots-reader.enableStream = true` to let otsrep enable it (UpdateTable, records kept {hours} hours), or enable it yourself"
    )]
    NoStream {
        /// The source table.
        table: String,
        /// How long the stream would keep records.
        hours: i32,
    },
    /// The destination exists with a primary key the source's rows do not fit.
    #[error("destination table {table} has primary key [{found}] but the source has [{expected}]")]
    SchemaMismatch {
        /// Destination table.
        table: String,
        /// The source's key columns.
        expected: String,
        /// The destination's key columns.
        found: String,
    },
}

fn call_error(action: impl Into<String>) -> impl FnOnce(ClientError) -> SetupError {
    let action = action.into();
    move |error| SetupError::Call { action, error }
}

fn is_missing_table(error: &ClientError) -> bool {
    error.is(ErrorCode::ObjectNotExist)
}

fn key_names(meta: &TableMeta) -> String {
    meta.primary_key
        .iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Logs what an existing destination's options will lose: versions beyond its max versions,
/// and cells older than its max time deviation (rejected by the service).
fn warn_about_options(source: &TableOptions, destination: &TableOptions, table: &str) {
    let (source_versions, destination_versions) = (
        source.max_versions.unwrap_or(1),
        destination.max_versions.unwrap_or(1),
    );
    if destination_versions < source_versions {
        tracing::warn!(
            table,
            source_versions,
            destination_versions,
            "the destination keeps fewer versions than the source; older versions are dropped"
        );
    }
    if let Some(deviation) = destination.deviation_cell_version_in_sec
        && deviation < DESTINATION_MAX_DEVIATION_SECS
    {
        tracing::warn!(
            table,
            deviation_secs = deviation,
            "the destination rejects cells whose timestamp is further than this from now; \
             older source cells will fail to replicate"
        );
    }
}

/// Hours a stream that set-up enables keeps records: the most the service allows, so a
/// replicator may stop for up to a week without losing changes.
pub const ENABLED_STREAM_HOURS: i32 = 168;

/// Checks, before anything is created, that the source table has a stream; enables it with
/// UpdateTable when `enable` allows (the Python SDK, for one, cannot enable a stream).
pub async fn ensure_source_stream(
    client: &Client,
    table: &str,
    enable: bool,
) -> Result<(), SetupError> {
    let description = client
        .describe_table(table)
        .await
        .map_err(call_error(format!("describing source table {table}")))?;
    if description
        .stream_details
        .as_ref()
        .is_some_and(|s| s.enable_stream)
    {
        return Ok(());
    }
    if !enable {
        return Err(SetupError::NoStream {
            table: table.to_owned(),
            hours: ENABLED_STREAM_HOURS,
        });
    }
    client
        .enable_stream(table, ENABLED_STREAM_HOURS)
        .await
        .map_err(call_error(format!(
            "enabling the stream of source table {table}"
        )))?;
    tracing::info!(
        table,
        hours = ENABLED_STREAM_HOURS,
        "enabled the source table's stream"
    );
    Ok(())
}

/// What [`ensure_destination_table`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSetup {
    /// The destination existed (with a matching primary key).
    Existed,
    /// The destination was created from the source's description.
    Created,
}

/// The CreateTable request for a destination shaped like `source`: same primary key and
/// defined columns, same TTL and max versions, a large max time deviation, no stream.
pub fn destination_table_request(
    source: &DescribeTableResponse,
    destination_table: &str,
) -> CreateTableRequest {
    CreateTableRequest {
        table_meta: TableMeta {
            table_name: destination_table.to_owned(),
            primary_key: source
                .table_meta
                .primary_key
                .iter()
                .map(|k| {
                    // Auto-increment keys are copied as plain integers: the values come from
                    // the source and must be kept as they are.
                    let mut k = k.clone();
                    k.option = None;
                    k
                })
                .collect(),
            defined_column: source.table_meta.defined_column.clone(),
            ..Default::default()
        },
        reserved_throughput: ReservedThroughput {
            capacity_unit: CapacityUnit {
                read: Some(0),
                write: Some(0),
            },
        },
        table_options: Some(TableOptions {
            time_to_live: Some(source.table_options.time_to_live.unwrap_or(-1)),
            max_versions: Some(source.table_options.max_versions.unwrap_or(1)),
            deviation_cell_version_in_sec: Some(DESTINATION_MAX_DEVIATION_SECS),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the destination table from the source's description unless it exists; checks that
/// an existing one has the same primary key columns.
pub async fn ensure_destination_table(
    source: &Client,
    source_table: &str,
    destination: &Client,
    destination_table: &str,
) -> Result<TableSetup, SetupError> {
    let source_desc = source
        .describe_table(source_table)
        .await
        .map_err(call_error(format!(
            "describing source table {source_table}"
        )))?;
    match destination.describe_table(destination_table).await {
        Ok(existing) => {
            let expected = key_names(&source_desc.table_meta);
            let found = key_names(&existing.table_meta);
            if expected != found {
                return Err(SetupError::SchemaMismatch {
                    table: destination_table.to_owned(),
                    expected,
                    found,
                });
            }
            warn_about_options(
                &source_desc.table_options,
                &existing.table_options,
                destination_table,
            );
            Ok(TableSetup::Existed)
        }
        Err(e) if is_missing_table(&e) => {
            let request = destination_table_request(&source_desc, destination_table);
            match destination.create_table(&request).await {
                Ok(()) => {}
                // Another replicator process created it first.
                Err(e) if e.is(ErrorCode::ObjectAlreadyExist) => {}
                Err(e) => {
                    return Err(call_error(format!(
                        "creating destination table {destination_table}"
                    ))(e));
                }
            }
            tracing::info!(table = destination_table, "created destination table");
            Ok(TableSetup::Created)
        }
        Err(e) => Err(call_error(format!(
            "describing destination table {destination_table}"
        ))(e)),
    }
}

/// Finds the tunnel named `tunnel_name` on `table`, or creates it as BaseAndStream; returns
/// its id.
pub async fn ensure_tunnel(
    client: &Client,
    table: &str,
    tunnel_name: &str,
) -> Result<String, SetupError> {
    let tunnels = client
        .list_tunnel(Some(table))
        .await
        .map_err(call_error(format!("listing the tunnels of table {table}")))?;
    if let Some(existing) = tunnels
        .iter()
        .find(|t| t.tunnel_name.as_deref() == Some(tunnel_name))
    {
        return Ok(existing.tunnel_id.clone());
    }
    match client
        .create_tunnel(table, tunnel_name, TunnelType::BaseAndStream)
        .await
    {
        Ok(id) => {
            tracing::info!(table, tunnel = tunnel_name, tunnel_id = %id, "created tunnel");
            Ok(id)
        }
        // Another replicator process created it between our list and create.
        Err(e) if e.is(ErrorCode::TunnelExist) || e.is(ErrorCode::ObjectAlreadyExist) => {
            let description = client
                .describe_tunnel(table, tunnel_name)
                .await
                .map_err(call_error(format!("describing tunnel {tunnel_name}")))?;
            Ok(description.tunnel.tunnel_id)
        }
        Err(e) => Err(call_error(format!(
            "creating tunnel {tunnel_name} on table {table}"
        ))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::pb::table::{
        PrimaryKeyOption, PrimaryKeySchema, PrimaryKeyType, ReservedThroughputDetails,
    };

    #[test]
    fn destination_copies_the_schema_with_a_large_deviation() {
        let source = DescribeTableResponse {
            table_meta: TableMeta {
                table_name: "src".into(),
                primary_key: vec![
                    PrimaryKeySchema {
                        name: "a".into(),
                        r#type: PrimaryKeyType::String as i32,
                        option: None,
                    },
                    PrimaryKeySchema {
                        name: "b".into(),
                        r#type: PrimaryKeyType::Integer as i32,
                        option: Some(PrimaryKeyOption::AutoIncrement as i32),
                    },
                ],
                defined_column: vec![],
                ..Default::default()
            },
            reserved_throughput_details: ReservedThroughputDetails::default(),
            table_options: TableOptions {
                time_to_live: Some(86400),
                max_versions: Some(3),
                deviation_cell_version_in_sec: Some(86400),
                allow_update: None,
                ..Default::default()
            },
            stream_details: None,
            shard_splits: vec![],
            ..Default::default()
        };
        let request = destination_table_request(&source, "dst");
        assert_eq!(request.table_meta.table_name, "dst");
        assert_eq!(key_names(&request.table_meta), "a, b");
        assert_eq!(request.table_meta.primary_key[1].option, None);
        let options = request.table_options.unwrap();
        assert_eq!(options.time_to_live, Some(86400));
        assert_eq!(options.max_versions, Some(3));
        assert_eq!(
            options.deviation_cell_version_in_sec,
            Some(DESTINATION_MAX_DEVIATION_SECS)
        );
        assert!(request.stream_spec.is_none());
    }
}
