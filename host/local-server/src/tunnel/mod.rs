//! The Tunnel Service: tunnels over a table's rows (base data) and its stream, served to
//! workers through the client/channel protocol (`/tunnel/*`). Tunnel state lives in redb and
//! is written in the transaction of every call that changes it, so channels, owners and
//! checkpoints survive a restart; [`state`] holds the rules, this module the I/O around them.

pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange};
use ots_protocol::pb::tunnel::{self as pb, FINISH_TAG};
use ots_protocol::plainbuffer;
use ots_protocol::record::TunnelRecord;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::ApiError;
use crate::rules::ReadSpec;
use crate::store::{KeyRange, Store};
use state::{Channel, Source, Tunnel, TunnelKind};

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
    /// The service on `db`, registering its table.
    pub fn new(db: Arc<Database>) -> Result<Self, ApiError> {
        let txn = db.begin_write()?;
        txn.open_table(TUNNELS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// Runs one tunnel call; `api` is the path after `/tunnel/`. A call that changes a tunnel
    /// loads, changes and stores it in one write transaction; reads use a read transaction.
    pub fn dispatch(&self, store: &Store, api: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
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
                    .map(|t| info(&t))
                    .collect();
                pb::ListTunnelResponse { tunnels }.encode_to_vec()
            }
            "describe" => {
                let request: pb::DescribeTunnelRequest = decode(api, body)?;
                let mut tunnel = self.find(&request.table_name, &request.tunnel_name)?;
                sync_partitions(store, &mut tunnel)?;
                describe(store, &tunnel, now)?.encode_to_vec()
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
                self.modify(&request.tunnel_id, |tunnel| {
                    tunnel.connect(
                        client_id.clone(),
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
                let channels = self.modify(&request.tunnel_id, |tunnel| {
                    sync_partitions(store, tunnel)?;
                    // Saved even when the client is gone: expiring others is a change too.
                    Ok(tunnel.heartbeat(&request.client_id, &request.channels, now))
                })??;
                pb::HeartbeatResponse { channels }.encode_to_vec()
            }
            "shutdown" => {
                let request: pb::ShutdownRequest = decode(api, body)?;
                self.modify(&request.tunnel_id, |tunnel| {
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
                self.modify(&request.tunnel_id, |tunnel| {
                    tunnel.checkpoint(
                        &request.client_id,
                        &request.channel_id,
                        request.checkpoint,
                        request.sequence_number,
                    )
                })?;
                pb::CheckpointResponse {}.encode_to_vec()
            }
            "readrecords" => {
                let request: pb::ReadRecordsRequest = decode(api, body)?;
                let tunnel = self.load(&request.tunnel_id)?;
                let channel = tunnel.owned(&request.client_id, &request.channel_id)?;
                read_records(store, &tunnel, channel, &request.token)?.encode_to_vec()
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
    fn modify<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Tunnel) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut table = txn.open_table(TUNNELS)?;
            let mut tunnel = load_in(&table, id)?;
            let result = change(&mut tunnel)?;
            save_in(&mut table, &tunnel)?;
            result
        };
        txn.commit()?;
        Ok(result)
    }

    fn create(
        &self,
        store: &Store,
        spec: pb::Tunnel,
        now: i64,
    ) -> Result<pb::CreateTunnelResponse, ApiError> {
        let tunnel = new_tunnel(store, spec, now)?;
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
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalServerError,
            format!("corrupt tunnel state: {e}"),
        )
    })
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
    if kind != TunnelKind::BaseData && !info.stream_enabled() {
        return Err(ApiError::invalid(format!(
            "Table {} has no stream enabled.",
            spec.table_name
        )));
    }
    if spec.tunnel_name.is_empty() {
        return Err(ApiError::invalid("The tunnel name is empty."));
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
            tunnel.channels.insert(
                format!("base-{i}"),
                Channel {
                    source: Source::Base {
                        begin: plainbuffer::encode_primary_key(&pair[0]),
                        end: plainbuffer::encode_primary_key(&pair[1]),
                    },
                    checkpoint: String::new(),
                    sequence: 0,
                    owner: None,
                    version: 0,
                    revoking: false,
                },
            );
        }
    }
    if kind != TunnelKind::BaseData {
        // Stream channels start at each open partition's current end: records from creation on.
        for partition in store
            .partitions(&spec.table_name)?
            .into_iter()
            .filter(|p| !p.closed)
        {
            let (_, head) = store.read_log(&spec.table_name, partition.id, u64::MAX, 0)?;
            tunnel.add_partition(partition.id, Vec::new());
            let channel = tunnel
                .channels
                .get_mut(&format!("stream-{}", partition.id))
                .expect("just added");
            channel.checkpoint = head.to_string();
        }
    }
    Ok(tunnel)
}

/// Adds channels for partitions created by splits since the tunnel last looked.
fn sync_partitions(store: &Store, tunnel: &mut Tunnel) -> Result<(), ApiError> {
    if tunnel.kind == TunnelKind::BaseData {
        return Ok(());
    }
    for partition in store.partitions(&tunnel.table)? {
        let known = tunnel
            .channels
            .contains_key(&format!("stream-{}", partition.id));
        let parents_known = partition
            .parents
            .iter()
            .any(|p| tunnel.channels.contains_key(&format!("stream-{p}")));
        if !known && parents_known {
            tunnel.add_partition(partition.id, partition.parents);
        }
    }
    Ok(())
}

fn info(tunnel: &Tunnel) -> pb::TunnelInfo {
    pb::TunnelInfo {
        tunnel_id: tunnel.id.clone(),
        tunnel_type: tunnel.kind.name().to_owned(),
        table_name: tunnel.table.clone(),
        instance_name: String::new(),
        stream_id: format!("{}_{}", tunnel.table, tunnel.created_ms),
        stage: tunnel.stage().to_owned(),
        expired: Some(false),
        tunnel_name: Some(tunnel.name.clone()),
        public: Some(false),
        stream_tunnel_config: None,
        create_time: Some(tunnel.created_ms),
    }
}

/// The consume point of a stream channel (ms): everything committed up to it is consumed.
/// A channel that read everything is caught up to now; one behind is just before its next
/// unread record.
fn stream_rpo(
    store: &Store,
    table: &str,
    channel: &Channel,
    partition: u32,
    now: i64,
) -> Result<i64, ApiError> {
    if channel.finished() {
        return Ok(now);
    }
    let after: u64 = channel.checkpoint.parse().unwrap_or(0);
    let (next, head) = store.read_log(table, partition, after, 1)?;
    Ok(match next.first() {
        Some(record) if after < head => record.timestamp_us / 1000 - 1,
        _ => now,
    })
}

fn describe(
    store: &Store,
    tunnel: &Tunnel,
    now: i64,
) -> Result<pb::DescribeTunnelResponse, ApiError> {
    let mut channels = Vec::new();
    let mut tunnel_rpo: Option<i64> = None;
    for (id, channel) in &tunnel.channels {
        let rpo = match &channel.source {
            Source::Stream { partition, .. } => {
                let rpo = stream_rpo(store, &tunnel.table, channel, *partition, now)?;
                if tunnel.available(channel) || !channel.finished() {
                    tunnel_rpo = Some(tunnel_rpo.map_or(rpo, |r| r.min(rpo)));
                }
                rpo
            }
            Source::Base { .. } => {
                if channel.finished() {
                    tunnel.created_ms
                } else {
                    0
                }
            }
        };
        let status = if channel.finished() {
            "TERMINATED"
        } else if channel.revoking {
            "CLOSING"
        } else if channel.owner.is_some() {
            "OPEN"
        } else {
            "CLOSE"
        };
        channels.push(pb::ChannelInfo {
            channel_id: id.clone(),
            channel_type: Some(channel.kind_name().to_owned()),
            channel_status: Some(status.to_owned()),
            client_id: channel.owner.clone(),
            channel_rpo: Some(rpo),
            channel_count: Some(channel.sequence),
        });
    }
    let tunnel_rpo = match tunnel.stage() {
        "ProcessBaseData" => 0,
        _ => tunnel_rpo.unwrap_or(now),
    };
    Ok(pb::DescribeTunnelResponse {
        tunnel: info(tunnel),
        channels,
        tunnel_rpo: Some(tunnel_rpo),
    })
}

fn read_records(
    store: &Store,
    tunnel: &Tunnel,
    channel: &Channel,
    token: &str,
) -> Result<pb::ReadRecordsResponse, ApiError> {
    if token == FINISH_TAG {
        return Ok(pb::ReadRecordsResponse {
            records: Vec::new(),
            next_token: FINISH_TAG.into(),
            may_more_record: Some(false),
        });
    }
    match &channel.source {
        Source::Stream { partition, .. } => {
            let after: u64 = token
                .parse()
                .map_err(|_| ApiError::invalid(format!("Invalid token: {token:?}.")))?;
            let (logged, head) =
                store.read_log(&tunnel.table, *partition, after, MAX_RECORDS_PER_READ)?;
            let closed = store
                .partitions(&tunnel.table)?
                .iter()
                .any(|p| p.id == *partition && p.closed);
            let next_token = match logged.last() {
                Some(last) => last.seq.to_string(),
                None if closed && after >= head => FINISH_TAG.to_owned(),
                None => token.to_owned(),
            };
            Ok(pb::ReadRecordsResponse {
                may_more_record: Some(logged.len() == MAX_RECORDS_PER_READ),
                records: logged.into_iter().map(|r| r.record).collect(),
                next_token,
            })
        }
        Source::Base { begin, end } => {
            let start = if token.is_empty() {
                plainbuffer::decode_primary_key(begin)?
            } else {
                let bytes = hex_decode(token)
                    .ok_or_else(|| ApiError::invalid(format!("Invalid token: {token:?}.")))?;
                plainbuffer::decode_primary_key(&bytes)
                    .map_err(|e| ApiError::invalid(format!("Invalid token: {e}.")))?
            };
            let range = KeyRange {
                start,
                end: plainbuffer::decode_primary_key(end)?,
                backward: false,
                limit: MAX_RECORDS_PER_READ,
            };
            let spec = ReadSpec {
                columns: Vec::new(),
                max_versions: usize::MAX,
            };
            let page = store.get_range(&tunnel.table, &range, &spec, now_ms())?;
            let records = page
                .rows
                .into_iter()
                .map(|row| {
                    TunnelRecord {
                        change: RowChange::Put {
                            primary_key: row.primary_key,
                            cells: row.cells,
                        },
                        sequence_info: None,
                    }
                    .encode()
                })
                .collect();
            Ok(pb::ReadRecordsResponse {
                records,
                may_more_record: Some(page.next_start.is_some()),
                next_token: match page.next_start {
                    Some(next) => hex_encode(&plainbuffer::encode_primary_key(&next)),
                    None => FINISH_TAG.to_owned(),
                },
            })
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
