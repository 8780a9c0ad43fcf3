//! Table and tunnel set-up before replication starts.

use chrono::{DateTime, Utc};
use ots_client::{Client, ClientError};
use ots_protocol::error::ErrorCode;
use ots_protocol::pb::table::{
    CreateTableRequest, DescribeTableResponse, PrimaryKeySchema, PrimaryKeyType,
    ReservedThroughput, TableMeta, TableOptions,
};
use ots_protocol::pb::tunnel::{StartOffsetFlag, StreamTunnelConfig, TunnelInfo, TunnelType};

use crate::config::ReplicatorConfig;

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
    /// A tunnel of the configured name exists but delivers something else.
    #[error(
        "tunnel {tunnel} of table {table} exists as {found}, but the config asks for {wanted}; delete the tunnel or choose another `ots-reader.tunnelName`"
    )]
    TunnelMismatch {
        /// The tunnel name.
        tunnel: String,
        /// The source table.
        table: String,
        /// What the existing tunnel delivers.
        found: String,
        /// What the config asks for.
        wanted: String,
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
        reserved_throughput: ReservedThroughput::none(),
        table_options: Some(TableOptions {
            time_to_live: Some(source.table_options.time_to_live.unwrap_or(-1)),
            max_versions: Some(source.table_options.max_versions.unwrap_or(1)),
            deviation_cell_version_in_sec: Some(DESTINATION_MAX_DEVIATION_SECS),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates a table the tool keeps for itself on the destination instance (dead letters, the
/// tenant backlog) with primary key `key`, no TTL and one version, unless it exists (another
/// process may have created it first). Returns whether this call created it.
pub async fn ensure_own_table(
    client: &Client,
    table: &str,
    key: &[(&str, PrimaryKeyType)],
) -> Result<bool, ClientError> {
    let request = CreateTableRequest {
        table_meta: TableMeta {
            table_name: table.to_owned(),
            primary_key: key
                .iter()
                .map(|(name, kind)| PrimaryKeySchema {
                    name: (*name).to_owned(),
                    r#type: *kind as i32,
                    option: None,
                })
                .collect(),
            ..Default::default()
        },
        reserved_throughput: ReservedThroughput::none(),
        table_options: Some(TableOptions {
            time_to_live: Some(-1),
            max_versions: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    match client.create_table(&request).await {
        Ok(()) => Ok(true),
        Err(e) if e.is(ErrorCode::ObjectAlreadyExist) => Ok(false),
        Err(e) => Err(e),
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

/// The tunnel a config asks for: what it delivers and the part of the change log it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelWanted {
    /// What it delivers.
    pub tunnel_type: TunnelType,
    /// The first commit time it delivers; `None` for changes from its creation on.
    pub start_time: Option<DateTime<Utc>>,
    /// The last commit time it delivers; `None` for no end.
    pub end_time: Option<DateTime<Utc>>,
}

fn offset_ns(micros: i64) -> u64 {
    (micros.max(0) as u64).saturating_mul(1000)
}

fn ns_text(ns: u64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns.min(i64::MAX as u64) as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl TunnelWanted {
    /// The tunnel `config` asks for.
    pub fn of(config: &ReplicatorConfig) -> Self {
        Self {
            tunnel_type: config.tunnel_type,
            start_time: config.start_time,
            end_time: config.end_time,
        }
    }

    /// CreateTunnel's stream configuration, in the SDKs' nanoseconds: the start time as the
    /// start offset, and as the end offset the instant just after the end time's microsecond,
    /// so the records committed at the end time are delivered (the client-side cut keeps
    /// them too). `None` for a BaseData tunnel or one without a range.
    pub fn stream_config(&self) -> Option<StreamTunnelConfig> {
        let start = self.start_time.map(|t| offset_ns(t.timestamp_micros()));
        let end = self
            .end_time
            .map(|t| offset_ns(t.timestamp_micros().saturating_add(1)));
        (self.tunnel_type != TunnelType::BaseData && (start.is_some() || end.is_some())).then(
            || StreamTunnelConfig {
                flag: start.is_none().then_some(StartOffsetFlag::Latest as i32),
                start_offset: start,
                end_offset: end,
            },
        )
    }

    /// Whether the existing tunnel `info` delivers what is wanted: the same type and start,
    /// and an end at or after the wanted one (or none), since the client-side cut stops at
    /// the end time anyway; that is how a continuous replication is given an end time later.
    fn served_by(&self, info: &TunnelInfo) -> Fit {
        let wanted = self.stream_config().unwrap_or_default();
        let found = info.stream_tunnel_config.clone().unwrap_or_default();
        let nonzero = |o: Option<u64>| o.filter(|&o| o != 0);
        if info.tunnel_type != self.tunnel_type.as_str()
            || found.flag == Some(StartOffsetFlag::Earliest as i32)
            || nonzero(found.start_offset) != nonzero(wanted.start_offset)
        {
            return Fit::Different;
        }
        match (nonzero(found.end_offset), nonzero(wanted.end_offset)) {
            (found, wanted) if found == wanted => Fit::Same,
            (None, Some(_)) => Fit::LaterEnd,
            (Some(found), Some(wanted)) if found > wanted => Fit::LaterEnd,
            _ => Fit::Different,
        }
    }
}

/// How an existing tunnel fits what a config wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// The same type and range.
    Same,
    /// The same type and start, ending later or never: the end time is cut client-side.
    LaterEnd,
    /// Another type, start, or an earlier end: reusing it would replicate something else.
    Different,
}

/// Says what a tunnel delivers, in words: its type and range.
fn describe_range(tunnel_type: &str, config: Option<&StreamTunnelConfig>) -> String {
    if tunnel_type == TunnelType::BaseData.as_str() {
        return "a BaseData tunnel".to_owned();
    }
    let config = config.cloned().unwrap_or_default();
    let start = match config.start_offset.filter(|&o| o != 0) {
        Some(ns) => format!("from {}", ns_text(ns)),
        None if config.flag == Some(StartOffsetFlag::Earliest as i32) => {
            "from the oldest record kept".to_owned()
        }
        None => "from its creation".to_owned(),
    };
    let end = match config.end_offset.filter(|&o| o != 0) {
        Some(ns) => format!("until before {}", ns_text(ns)),
        None => "without end".to_owned(),
    };
    format!("a {tunnel_type} tunnel {start} {end}")
}

/// Finds the tunnel named `tunnel_name` on `table`, or creates it as `wanted` says; returns
/// its id. An existing tunnel of another type or start, or one that ends before the end time,
/// is an error: reusing it would replicate something else than the config says.
pub async fn ensure_tunnel(
    client: &Client,
    table: &str,
    tunnel_name: &str,
    wanted: TunnelWanted,
) -> Result<String, SetupError> {
    let tunnels = client
        .list_tunnel(Some(table))
        .await
        .map_err(call_error(format!("listing the tunnels of table {table}")))?;
    if let Some(existing) = tunnels
        .iter()
        .find(|t| t.tunnel_name.as_deref() == Some(tunnel_name))
    {
        let fit = wanted.served_by(existing);
        if fit == Fit::LaterEnd {
            tracing::warn!(
                tunnel = tunnel_name,
                "the tunnel exists without this end time (it ends later or never); the end time is applied by this replicator only"
            );
        }
        if fit == Fit::Different {
            return Err(SetupError::TunnelMismatch {
                tunnel: tunnel_name.to_owned(),
                table: table.to_owned(),
                found: describe_range(
                    &existing.tunnel_type,
                    existing.stream_tunnel_config.as_ref(),
                ),
                wanted: describe_range(
                    wanted.tunnel_type.as_str(),
                    wanted.stream_config().as_ref(),
                ),
            });
        }
        return Ok(existing.tunnel_id.clone());
    }
    match client
        .create_tunnel(
            table,
            tunnel_name,
            wanted.tunnel_type,
            wanted.stream_config(),
        )
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
    fn an_existing_tunnel_serves_the_same_start_and_an_end_no_earlier() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0);
        let wanted = |tunnel_type, start: Option<i64>, end: Option<i64>| TunnelWanted {
            tunnel_type,
            start_time: start.and_then(at),
            end_time: end.and_then(at),
        };
        let info = |w: TunnelWanted| TunnelInfo {
            tunnel_type: w.tunnel_type.as_str().to_owned(),
            stream_tunnel_config: w.stream_config(),
            ..Default::default()
        };
        let continuous = info(wanted(TunnelType::BaseAndStream, None, None));
        assert_eq!(
            wanted(TunnelType::BaseAndStream, None, None).served_by(&continuous),
            Fit::Same
        );
        assert_eq!(
            wanted(TunnelType::BaseAndStream, None, Some(100)).served_by(&continuous),
            Fit::LaterEnd,
            "an end time given later is cut client-side"
        );
        assert_eq!(
            wanted(TunnelType::Stream, None, None).served_by(&continuous),
            Fit::Different
        );
        let window = info(wanted(TunnelType::Stream, Some(10), Some(100)));
        assert_eq!(
            wanted(TunnelType::Stream, Some(10), Some(50)).served_by(&window),
            Fit::LaterEnd
        );
        for other in [
            wanted(TunnelType::Stream, Some(11), Some(100)),
            wanted(TunnelType::Stream, Some(10), Some(101)),
            wanted(TunnelType::Stream, Some(10), None),
            wanted(TunnelType::Stream, None, Some(100)),
        ] {
            assert_eq!(other.served_by(&window), Fit::Different, "{other:?}");
        }
        let config = wanted(TunnelType::Stream, Some(10), Some(100))
            .stream_config()
            .unwrap();
        assert_eq!(config.start_offset, Some(10_000_000_000));
        assert_eq!(
            config.end_offset,
            Some(100_000_001_000),
            "records committed at the end time's microsecond are delivered"
        );
        assert_eq!(
            describe_range("Stream", Some(&config)),
            "a Stream tunnel from 1970-01-01T00:00:10.000000Z until before 1970-01-01T00:01:40.000001Z"
        );
        assert_eq!(
            wanted(TunnelType::BaseData, None, None).stream_config(),
            None
        );
    }

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
