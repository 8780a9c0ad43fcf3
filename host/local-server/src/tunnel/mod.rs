//! The Tunnel Service: tunnels over a table's rows (base data) and its stream, served to
//! workers through the client/channel protocol (`/tunnel/*`). Tunnel state lives in redb and
//! is written in the transaction of every call that changes it, so channels, owners and
//! checkpoints survive a restart; [`state`] holds the rules, this module the I/O around them.

pub mod state;
mod token;

use std::collections::BTreeMap;
use std::sync::Arc;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue};
use ots_protocol::pb::tunnel::{self as pb, FINISH_TAG, NANOS_PER_MILLI};
use ots_protocol::plainbuffer;
use ots_protocol::record::TunnelRecord;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::ApiError;
use crate::store::{KeyRange, Store};
use crate::stream::{self, Partition};
use state::{Channel, Source, StreamRange, StreamStart, Tunnel, TunnelKind};
use token::{ChannelToken, Position};

/// tunnel id → JSON [`Tunnel`].
const TUNNELS: TableDefinition<&str, &[u8]> = TableDefinition::new("tunnels");

/// Most records one ReadRecords returns.
pub const MAX_RECORDS_PER_READ: usize = 1000;
/// Target size of a base-data shard, in stored bytes.
pub const BASE_SHARD_BYTES: u64 = 4 * 1024 * 1024;
/// Heartbeat timeout when the client asks for none, in seconds.
pub const DEFAULT_CLIENT_TIMEOUT_SECS: i64 = 30;

/// The tunnel service: its state in its own redb table, next to the store it reads.
pub struct TunnelService {
    db: Arc<Database>,
    instance_name: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn decode<M: Message + Default>(api: &str, body: &[u8]) -> Result<M, ApiError> {
    M::decode(body)
        .map_err(|e| ApiError::invalid(format!("Failed to parse the {api} request: {e}.")))
}

fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl TunnelService {
    /// The service of instance `instance_name` on `db`, registering its table.
    pub fn new(db: Arc<Database>, instance_name: &str) -> Result<Self, ApiError> {
        let txn = db.begin_write()?;
        txn.open_table(TUNNELS)?;
        txn.commit()?;
        Ok(Self {
            db,
            instance_name: instance_name.to_owned(),
        })
    }

    /// Runs one tunnel call; `api` is the path after `/tunnel/`. A call that changes a tunnel
    /// loads, changes and stores it in one write transaction; reads use a read transaction.
    /// The server's own failures answer `OTSTunnelServerUnavailable`, the one code the Go
    /// tunnel worker retries (`tunnel/error.go` `Temporary`).
    pub fn dispatch(&self, store: &Store, api: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.call(store, api, body).map_err(|e| match e.code {
            ErrorCode::InternalServerError => {
                ApiError::new(ErrorCode::TunnelServerUnavailable, e.message)
            }
            _ => e,
        })
    }

    fn call(&self, store: &Store, api: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let now = now_ms();
        Ok(match api {
            "create" => {
                let request: pb::CreateTunnelRequest = decode(api, body)?;
                self.create(store, request.tunnel, now)?.encode_to_vec()
            }
            "list" => {
                let request: pb::ListTunnelRequest = decode(api, body)?;
                let tunnels = self
                    .all()?
                    .into_iter()
                    .filter(|t| request.table_name.as_ref().is_none_or(|n| *n == t.table))
                    .map(|t| self.info(store, &t))
                    .collect::<Result<_, _>>()?;
                pb::ListTunnelResponse { tunnels }.encode_to_vec()
            }
            "describe" => {
                let request: pb::DescribeTunnelRequest = decode(api, body)?;
                let mut tunnel = self.find(&request.table_name, &request.tunnel_name)?;
                sync_partitions(&mut tunnel, |table| store.partitions(table))?;
                self.describe(store, &tunnel, now)?.encode_to_vec()
            }
            "delete" => {
                let request: pb::DeleteTunnelRequest = decode(api, body)?;
                let txn = self.db.begin_write()?;
                {
                    let mut table = txn.open_table(TUNNELS)?;
                    let tunnel = find_in(&table, &request.table_name, &request.tunnel_name)?;
                    table.remove(tunnel.id.as_str())?;
                }
                txn.commit()?;
                pb::DeleteTunnelResponse {}.encode_to_vec()
            }
            "connect" => {
                let request: pb::ConnectRequest = decode(api, body)?;
                let config = request.client_config.unwrap_or_default();
                let timeout = config.timeout.unwrap_or(DEFAULT_CLIENT_TIMEOUT_SECS);
                if timeout <= 0 {
                    return Err(ApiError::invalid(format!(
                        "Invalid client timeout: {timeout}."
                    )));
                }
                let client_id = random_id();
                let id = client_id.clone();
                self.modify(store, &request.tunnel_id, move |tunnel, _| {
                    tunnel.connect(
                        id,
                        config.client_tag.unwrap_or_default(),
                        timeout * 1000,
                        now,
                    );
                    Ok(())
                })?;
                pb::ConnectResponse { client_id }.encode_to_vec()
            }
            "heartbeat" => {
                let request: pb::HeartbeatRequest = decode(api, body)?;
                let channels =
                    self.modify(store, &request.tunnel_id.clone(), move |tunnel, txn| {
                        sync_partitions(tunnel, |table| stream::partitions_in(txn, table))?;
                        // Saved even when the client is gone: expiring others is a change too.
                        Ok(tunnel.heartbeat(&request.client_id, &request.channels, now))
                    })??;
                pb::HeartbeatResponse { channels }.encode_to_vec()
            }
            "shutdown" => {
                let request: pb::ShutdownRequest = decode(api, body)?;
                self.modify(store, &request.tunnel_id.clone(), move |tunnel, _| {
                    tunnel.disconnect(&request.client_id);
                    Ok(())
                })?;
                pb::ShutdownResponse {}.encode_to_vec()
            }
            "getcheckpoint" => {
                let request: pb::GetCheckpointRequest = decode(api, body)?;
                let tunnel = self.load(&request.tunnel_id)?;
                let channel = tunnel.owned(&request.client_id, &request.channel_id)?;
                pb::GetCheckpointResponse {
                    checkpoint: channel.checkpoint.clone(),
                    sequence_number: channel.sequence,
                }
                .encode_to_vec()
            }
            "checkpoint" => {
                let request: pb::CheckpointRequest = decode(api, body)?;
                self.modify(store, &request.tunnel_id.clone(), move |tunnel, _| {
                    let held = tunnel.owned(&request.client_id, &request.channel_id)?;
                    let rows = match ChannelToken::delivered_by(&request.checkpoint)? {
                        Some(rows) => rows,
                        None => held.rows,
                    };
                    tunnel.checkpoint(
                        &request.client_id,
                        &request.channel_id,
                        request.checkpoint,
                        request.sequence_number,
                        rows,
                    )
                })?;
                pb::CheckpointResponse {}.encode_to_vec()
            }
            "getrpo" | "getrpobyoffset" => {
                let request: pb::GetRpoRequest = decode(api, body)?;
                let id = request
                    .tunnel_id
                    .ok_or_else(|| ApiError::invalid("The tunnel id is missing."))?;
                let mut tunnel = self.load(&id)?;
                sync_partitions(&mut tunnel, |table| store.partitions(table))?;
                self.rpo(store, &tunnel, now)?.encode_to_vec()
            }
            "schedule" => {
                let request: pb::ScheduleRequest = decode(api, body)?;
                self.modify(store, &request.tunnel_id.clone(), move |tunnel, txn| {
                    sync_partitions(tunnel, |table| stream::partitions_in(txn, table))?;
                    tunnel.schedule(&request.channels)
                })?;
                pb::ScheduleResponse {}.encode_to_vec()
            }
            "readrecords" => {
                let request: pb::ReadRecordsRequest = decode(api, body)?;
                let tunnel = self.load(&request.tunnel_id)?;
                let channel = tunnel.owned(&request.client_id, &request.channel_id)?;
                read_records(store, &tunnel, channel, &request.token, now)
                    .map_err(|e| match e.code {
                        ErrorCode::TrimmedDataAccess => {
                            tunnel_expired(&tunnel, &request.channel_id)
                        }
                        _ => e,
                    })?
                    .encode_to_vec()
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportOperation,
                    format!("Unsupported operation: 'tunnel/{api}'."),
                ));
            }
        })
    }

    /// Every tunnel.
    fn all(&self) -> Result<Vec<Tunnel>, ApiError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TUNNELS)?;
        let mut tunnels = Vec::new();
        for entry in table.iter()? {
            tunnels.push(parse(entry?.1.value())?);
        }
        Ok(tunnels)
    }

    /// The tunnel with this id.
    fn load(&self, id: &str) -> Result<Tunnel, ApiError> {
        load_in(&self.db.begin_read()?.open_table(TUNNELS)?, id)
    }

    /// The tunnel `name` of `table`.
    fn find(&self, table: &str, name: &str) -> Result<Tunnel, ApiError> {
        find_in(&self.db.begin_read()?.open_table(TUNNELS)?, table, name)
    }

    /// Loads the tunnel `id`, lets `change` edit it and stores it, in one write transaction
    /// (which redb gives to one caller at a time). Stored whatever `change` returns; an `Err`
    /// of `change` discards the edit.
    fn modify<T: Send + 'static>(
        &self,
        store: &Store,
        id: &str,
        change: impl FnOnce(&mut Tunnel, &WriteTransaction) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let id = id.to_owned();
        store.write(move |txn| {
            let mut table = txn.open_table(TUNNELS)?;
            let mut tunnel = load_in(&table, &id)?;
            let result = change(&mut tunnel, txn)?;
            save_in(&mut table, &tunnel)?;
            Ok(result)
        })
    }

    fn create(
        &self,
        store: &Store,
        spec: pb::Tunnel,
        now: i64,
    ) -> Result<pb::CreateTunnelResponse, ApiError> {
        let tunnel = new_tunnel(store, spec, now)?;
        if tunnel.kind != TunnelKind::BaseData {
            // The service turns the stream on for a Stream or BaseAndStream tunnel, keeping
            // records seven days (the Java SDK's "Create a tunnel" guide).
            store.enable_stream(&tunnel.table, now)?;
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TUNNELS)?;
            if find_in(&table, &tunnel.table, &tunnel.name).is_ok() {
                return Err(ApiError::new(
                    ErrorCode::TunnelExist,
                    format!("Tunnel {} already exists.", tunnel.name),
                ));
            }
            save_in(&mut table, &tunnel)?;
        }
        txn.commit()?;
        Ok(pb::CreateTunnelResponse {
            tunnel_id: tunnel.id,
        })
    }
}

fn parse(bytes: &[u8]) -> Result<Tunnel, ApiError> {
    let mut tunnel: Tunnel = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalServerError,
            format!("corrupt tunnel state: {e}"),
        )
    })?;
    for channel in tunnel.channels.values_mut() {
        if let Some(upgraded) = token::upgrade_legacy(&channel.checkpoint, &channel.source) {
            channel.checkpoint = upgraded;
        }
    }
    Ok(tunnel)
}

fn load_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Tunnel, ApiError> {
    let entry = table.get(id)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ObjectNotExist,
            format!("Tunnel {id} does not exist."),
        )
    })?;
    parse(entry.value())
}

fn find_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    table_name: &str,
    name: &str,
) -> Result<Tunnel, ApiError> {
    for entry in table.iter()? {
        let tunnel = parse(entry?.1.value())?;
        if tunnel.table == table_name && tunnel.name == name {
            return Ok(tunnel);
        }
    }
    Err(ApiError::new(
        ErrorCode::ObjectNotExist,
        format!("Tunnel {name} of table {table_name} does not exist."),
    ))
}

fn save_in(table: &mut redb::Table<&str, &[u8]>, tunnel: &Tunnel) -> Result<(), ApiError> {
    let json = serde_json::to_vec(tunnel).expect("tunnel state serializes");
    table.insert(tunnel.id.as_str(), json.as_slice())?;
    Ok(())
}

fn bound(schema_len: usize, value: PrimaryKeyValue, names: &[String]) -> PrimaryKey {
    PrimaryKey(
        (0..schema_len)
            .map(|i| PrimaryKeyColumn {
                name: names[i].clone(),
                value: value.clone(),
            })
            .collect(),
    )
}

/// Widens a (possibly shorter) split point to a full key, padding with -inf.
fn full_key(point: &PrimaryKey, names: &[String]) -> PrimaryKey {
    let mut columns = point.0.clone();
    for name in names.iter().skip(columns.len()) {
        columns.push(PrimaryKeyColumn {
            name: name.clone(),
            value: PrimaryKeyValue::InfMin,
        });
    }
    PrimaryKey(columns)
}

/// A new tunnel over `spec.table_name`: base-data shards cut by stored size, stream channels
/// starting at each open partition's current end.
fn new_tunnel(store: &Store, spec: pb::Tunnel, now: i64) -> Result<Tunnel, ApiError> {
    let info = store.table(&spec.table_name)?;
    let kind = match pb::TunnelType::try_from(spec.tunnel_type) {
        Ok(pb::TunnelType::BaseData) => TunnelKind::BaseData,
        Ok(pb::TunnelType::Stream) => TunnelKind::Stream,
        Ok(pb::TunnelType::BaseAndStream) => TunnelKind::BaseAndStream,
        Err(_) => {
            return Err(ApiError::invalid(format!(
                "Invalid tunnel type: {}.",
                spec.tunnel_type
            )));
        }
    };
    if spec.tunnel_name.is_empty() {
        return Err(ApiError::invalid("The tunnel name is empty."));
    }
    let range = match &spec.stream_tunnel_config {
        None => StreamRange::default(),
        Some(_) if kind == TunnelKind::BaseData => {
            return Err(ApiError::invalid(
                "A BaseData tunnel delivers no stream: it takes no stream configuration.",
            ));
        }
        Some(config) => {
            let retention = store.stream_retention(&info).as_millis() as i64;
            let margin = store.stream_hour().as_millis() as i64 / 12;
            StreamRange::from_wire(config, now, retention, margin)?
        }
    };
    if spec.need_all_time_series_columns == Some(true) {
        return Err(ApiError::new(
            ErrorCode::UnsupportOperation,
            "Time-series tables are not supported by the local server.",
        ));
    }
    let names: Vec<String> = info
        .definition
        .table_meta
        .primary_key
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let mut tunnel = Tunnel {
        id: random_id(),
        name: spec.tunnel_name,
        table: spec.table_name.clone(),
        kind,
        range,
        created_ms: now,
        channels: BTreeMap::new(),
        clients: BTreeMap::new(),
    };
    if kind != TunnelKind::Stream {
        let mut cuts = vec![bound(names.len(), PrimaryKeyValue::InfMin, &names)];
        for point in store.split_points(&spec.table_name, BASE_SHARD_BYTES)? {
            cuts.push(full_key(&point, &names));
        }
        cuts.push(bound(names.len(), PrimaryKeyValue::InfMax, &names));
        for (i, pair) in cuts.windows(2).enumerate() {
            let begin = plainbuffer::encode_primary_key(&pair[0]);
            let start = ChannelToken {
                position: Position::Base {
                    start: begin.clone(),
                },
                delivered: 0,
            };
            tunnel.channels.insert(
                format!("base-{i}"),
                Channel::new(
                    Source::Base {
                        begin,
                        end: plainbuffer::encode_primary_key(&pair[1]),
                    },
                    start.encode(),
                ),
            );
        }
    }
    if kind != TunnelKind::BaseData {
        add_stream_channels(store, &mut tunnel)?;
    }
    Ok(tunnel)
}

/// Adds a new tunnel's stream channels. From LATEST they start at each open partition's
/// current end; from EARLIEST or an offset every partition takes part, closed ones too (they
/// hold changes since the start), children after their parents.
fn add_stream_channels(store: &Store, tunnel: &mut Tunnel) -> Result<(), ApiError> {
    let table = tunnel.table.clone();
    for partition in store.partitions(&table)? {
        let (after, parents) = match tunnel.range.start {
            StreamStart::Latest if partition.closed => continue,
            StreamStart::Latest => (
                store.read_log(&table, partition.id, u64::MAX, 0)?.1,
                Vec::new(),
            ),
            StreamStart::Earliest => (
                store.oldest_log_position(&table, partition.id)?,
                partition.parents,
            ),
            StreamStart::At(ns) => {
                let at_us = ns.div_ceil(1000).min(i64::MAX as u64) as i64;
                (
                    store.log_position_before(&table, partition.id, at_us)?,
                    partition.parents,
                )
            }
        };
        tunnel.add_partition(partition.id, parents, stream_start(after));
    }
    Ok(())
}

/// The checkpoint of a stream channel that starts after log position `after`.
fn stream_start(after: u64) -> String {
    ChannelToken {
        position: Position::Stream { after },
        delivered: 0,
    }
    .encode()
}

/// Adds channels for partitions created by splits since the tunnel last looked.
fn sync_partitions(
    tunnel: &mut Tunnel,
    partitions: impl FnOnce(&str) -> Result<Vec<Partition>, ApiError>,
) -> Result<(), ApiError> {
    if tunnel.kind == TunnelKind::BaseData {
        return Ok(());
    }
    for partition in partitions(&tunnel.table)? {
        let known = tunnel
            .channels
            .contains_key(&format!("stream-{}", partition.id));
        let parents_known = partition
            .parents
            .iter()
            .any(|p| tunnel.channels.contains_key(&format!("stream-{p}")));
        if !known && parents_known {
            tunnel.add_partition(partition.id, partition.parents, stream_start(0));
        }
    }
    Ok(())
}

impl TunnelService {
    /// A tunnel as ListTunnel and DescribeTunnel report it; times in nanoseconds (the Go SDK's
    /// `time.Unix(0, create_time)`, Java's `create_time / 1e6`).
    fn info(&self, store: &Store, tunnel: &Tunnel) -> Result<pb::TunnelInfo, ApiError> {
        let stream_id = match store.table(&tunnel.table) {
            Ok(info) if info.stream_enabled() => {
                crate::api::tables::stream_id(&tunnel.table, store.stream_enabled_at(&info)?)
            }
            _ => String::new(),
        };
        Ok(pb::TunnelInfo {
            tunnel_id: tunnel.id.clone(),
            tunnel_type: tunnel.kind.wire().as_str().to_owned(),
            table_name: tunnel.table.clone(),
            instance_name: self.instance_name.clone(),
            stream_id,
            stage: tunnel.stage().as_str().to_owned(),
            expired: Some(expired(store, tunnel)?),
            tunnel_name: Some(tunnel.name.clone()),
            public: Some(false),
            stream_tunnel_config: (tunnel.kind != TunnelKind::BaseData)
                .then(|| tunnel.range.wire()),
            create_time: Some(tunnel.created_ms.saturating_mul(NANOS_PER_MILLI)),
        })
    }

    /// DescribeTunnel: the tunnel, each channel's status, owner, consume point (ns) and rows
    /// synchronized, and the tunnel's consume point (its slowest stream channel).
    fn describe(
        &self,
        store: &Store,
        tunnel: &Tunnel,
        now: i64,
    ) -> Result<pb::DescribeTunnelResponse, ApiError> {
        let mut channels = Vec::new();
        for (id, channel) in &tunnel.channels {
            channels.push(pb::ChannelInfo {
                channel_id: id.clone(),
                channel_type: Some(channel.kind().as_str().to_owned()),
                channel_status: Some(channel.described_status().to_owned()),
                client_id: channel.owner.clone(),
                channel_rpo: Some(consume_point(store, tunnel, channel, now)?),
                channel_count: Some(channel.rows),
            });
        }
        Ok(pb::DescribeTunnelResponse {
            tunnel: self.info(store, tunnel)?,
            tunnel_rpo: Some(tunnel_consume_point(store, tunnel, now)?),
            channels,
        })
    }

    /// GetRpo and GetRpoByOffset: each channel's consume point, status and rows, and the
    /// tunnel's, as JSON. The Go SDK unmarshals `RpoInfos` into channel id → client id (empty
    /// when no client holds it) → `RpoLatency`, and `TunnelRpoInfos` into tunnel id →
    /// `TunnelRpoLatency`; it converts nothing, so times are given as everywhere in the
    /// tunnel API, in nanoseconds (`AccessTime` is when the answer was made).
    fn rpo(
        &self,
        store: &Store,
        tunnel: &Tunnel,
        now: i64,
    ) -> Result<pb::GetRpoResponse, ApiError> {
        let access = now.saturating_mul(NANOS_PER_MILLI);
        let mut channels = serde_json::Map::new();
        let mut total = 0;
        for (id, channel) in &tunnel.channels {
            total += channel.rows;
            let latency = serde_json::json!({
                "ChannelTyp": channel.kind().as_str(),
                "Status": channel.described_status(),
                "TotalCount": channel.rows,
                "AccessTime": access,
                "RpoTime": consume_point(store, tunnel, channel, now)?,
            });
            let mut by_client = serde_json::Map::new();
            by_client.insert(channel.owner.clone().unwrap_or_default(), latency);
            channels.insert(id.clone(), by_client.into());
        }
        let tunnels = serde_json::json!({
            tunnel.id.as_str(): {
                "Status": tunnel.stage().as_str(),
                "TotalCount": total,
                "AccessTime": access,
                "RpoTime": tunnel_consume_point(store, tunnel, now)?,
            }
        });
        Ok(pb::GetRpoResponse {
            rpo_infos: Some(serde_json::to_vec(&channels).expect("JSON of maps")),
            tunnel_rpo_infos: Some(serde_json::to_vec(&tunnels).expect("JSON of maps")),
            tunnel_id: Some(tunnel.id.clone()),
        })
    }
}

/// A channel's consume point in nanoseconds. A stream channel that read everything is caught
/// up to now, one behind is just before its next unread record; a base-data channel is at the
/// tunnel's creation once done, nowhere (0) before.
fn consume_point(
    store: &Store,
    tunnel: &Tunnel,
    channel: &Channel,
    now: i64,
) -> Result<i64, ApiError> {
    let millis = match &channel.source {
        Source::Stream { .. } if trimmed(store, tunnel, channel)? => 0,
        Source::Stream { partition, .. } if !channel.finished() => {
            let after = stream_position(channel)?;
            let (next, head) = store.read_log(&tunnel.table, *partition, after, 1)?;
            match next.first() {
                Some(record) if after < head => record.timestamp_us / 1000 - 1,
                _ => now,
            }
        }
        Source::Stream { .. } => now,
        Source::Base { .. } if channel.finished() => tunnel.created_ms,
        Source::Base { .. } => 0,
    };
    Ok(millis.saturating_mul(NANOS_PER_MILLI))
}

/// Where an unfinished stream channel's checkpoint stands in its partition's log.
fn stream_position(channel: &Channel) -> Result<u64, ApiError> {
    Ok(match ChannelToken::decode(&channel.checkpoint)?.position {
        Position::Stream { after } => after,
        Position::Base { .. } => 0,
    })
}

/// Whether an unfinished stream channel's next records were trimmed from the stream before it
/// read them: the channel can never be consumed.
fn trimmed(store: &Store, tunnel: &Tunnel, channel: &Channel) -> Result<bool, ApiError> {
    match &channel.source {
        Source::Stream { partition, .. } if !channel.finished() => {
            Ok(stream_position(channel)? < store.oldest_log_position(&tunnel.table, *partition)?)
        }
        _ => Ok(false),
    }
}

/// Whether the tunnel expired: one of its stream channels fell behind its stream's
/// expiration, so records it has not delivered were trimmed.
fn expired(store: &Store, tunnel: &Tunnel) -> Result<bool, ApiError> {
    for channel in tunnel.channels.values() {
        if trimmed(store, tunnel, channel)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The error of reading from a position whose records were trimmed: the service's
/// `OTSTunnelExpired`, on which the Go tunnel worker stops for good (`tunnel/error.go`).
fn tunnel_expired(tunnel: &Tunnel, channel_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TunnelExpired,
        format!(
            "Tunnel {} expired: records of channel {channel_id} were trimmed from the stream of table {} before they were read.",
            tunnel.id, tunnel.table
        ),
    )
}

/// The tunnel's consume point (ns): its slowest unfinished stream channel, now when all are
/// caught up, and 0 while the base data is copied.
fn tunnel_consume_point(store: &Store, tunnel: &Tunnel, now: i64) -> Result<i64, ApiError> {
    if tunnel.stage() == pb::TunnelStage::ProcessBaseData {
        return Ok(0);
    }
    let mut slowest = now.saturating_mul(NANOS_PER_MILLI);
    for channel in tunnel.channels.values() {
        if matches!(channel.source, Source::Stream { .. }) && !channel.finished() {
            slowest = slowest.min(consume_point(store, tunnel, channel, now)?);
        }
    }
    Ok(slowest)
}

/// ReadRecords: the next records of a channel after `token`. A stream channel finishes once
/// its partition is closed and drained, or once it reaches the tunnel's end offset (a record
/// at or after it, or the end passed on the clock with the log drained).
fn read_records(
    store: &Store,
    tunnel: &Tunnel,
    channel: &Channel,
    token: &str,
    now: i64,
) -> Result<pb::ReadRecordsResponse, ApiError> {
    let finished = || pb::ReadRecordsResponse {
        records: Vec::new(),
        next_token: FINISH_TAG.into(),
        may_more_record: Some(false),
    };
    if token == FINISH_TAG {
        return Ok(finished());
    }
    let ChannelToken {
        position,
        delivered,
    } = ChannelToken::decode(token)?;
    let next = |position, records: usize| {
        ChannelToken {
            position,
            delivered: delivered + records as i64,
        }
        .encode()
    };
    match (&channel.source, position) {
        (Source::Stream { partition, .. }, Position::Stream { after }) => {
            let (mut logged, head) =
                store.read_log(&tunnel.table, *partition, after, MAX_RECORDS_PER_READ)?;
            let closed = store
                .partitions(&tunnel.table)?
                .iter()
                .any(|p| p.id == *partition && p.closed);
            let read = logged.len();
            let before_end = logged
                .iter()
                .take_while(|r| tunnel.range.before_end(r.timestamp_us))
                .count();
            logged.truncate(before_end);
            // As for a base-data shard, the records before the end come with a token after
            // them (so the checkpoint counts them) and reading on from there finishes.
            let past_end = before_end < read;
            let drained = read == 0 && after >= head;
            if logged.is_empty() && (past_end || (drained && (closed || tunnel.range.ended(now)))) {
                return Ok(finished());
            }
            let next_token = match logged.last() {
                Some(last) => next(Position::Stream { after: last.seq }, logged.len()),
                None => token.to_owned(),
            };
            Ok(pb::ReadRecordsResponse {
                may_more_record: Some(read == MAX_RECORDS_PER_READ),
                records: logged.into_iter().map(|r| r.record).collect(),
                next_token,
            })
        }
        (Source::Base { end, .. }, Position::Base { start }) => {
            // The page that reaches the shard's end returns a token at the end, and reading
            // from there finishes the channel: the rows of the last page are counted in a
            // checkpoint before `finished`, which carries no count.
            if start == *end {
                return Ok(finished());
            }
            let range = KeyRange {
                start: plainbuffer::decode_primary_key(&start)
                    .map_err(|e| ApiError::invalid(format!("Invalid token: {e}.")))?,
                end: plainbuffer::decode_primary_key(end)?,
                backward: false,
                limit: MAX_RECORDS_PER_READ,
            };
            let page = store.get_range_encoded(&tunnel.table, &range, now_ms())?;
            let count = page.rows.len();
            let records = page
                .rows
                .into_iter()
                .map(TunnelRecord::encode_base_row)
                .collect();
            let next_start = match &page.next_start {
                Some(key) => plainbuffer::encode_primary_key(key),
                None => end.clone(),
            };
            Ok(pb::ReadRecordsResponse {
                records,
                may_more_record: Some(page.next_start.is_some()),
                next_token: next(Position::Base { start: next_start }, count),
            })
        }
        _ => Err(ApiError::invalid(format!(
            "The token {token:?} is not one of this channel's."
        ))),
    }
}
