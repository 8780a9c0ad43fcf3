//! The Tunnel Service: tunnels over a table's rows (base data) and its stream, served to
//! workers through the client/channel protocol (`/tunnel/*`). Tunnel state lives in redb and
//! is written on every call that changes it, so channels, owners and checkpoints survive a
//! restart.

pub mod state;

use std::collections::BTreeMap;
use std::sync::Mutex;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange};
use ots_protocol::pb::tunnel::{self as pb, FINISH_TAG};
use ots_protocol::plainbuffer;
use prost::Message;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::{ApiError, KeyRange, ReadSpec, Store};
use state::{Channel, Source, Tunnel, TunnelKind};

/// tunnel id → JSON [`Tunnel`].
pub(crate) const TUNNELS: TableDefinition<&str, &[u8]> = TableDefinition::new("tunnels");

/// Most records one ReadRecords returns.
pub const MAX_RECORDS_PER_READ: usize = 1000;
/// Target size of a base-data shard, in stored bytes.
pub const BASE_SHARD_BYTES: u64 = 4 * 1024 * 1024;
/// Heartbeat timeout when the client asks for none, in seconds.
pub const DEFAULT_CLIENT_TIMEOUT_SECS: i64 = 30;

/// The tunnel service over a store.
#[derive(Default)]
pub struct TunnelService {
    /// Serializes read-modify-write of tunnel state.
    lock: Mutex<()>,
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
    /// Runs one tunnel call; `api` is the path after `/tunnel/`.
    pub fn dispatch(&self, store: &Store, api: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        Ok(match api {
            "create" => {
                let request: pb::CreateTunnelRequest = decode(api, body)?;
                create(store, request.tunnel, now)?.encode_to_vec()
            }
            "list" => {
                let request: pb::ListTunnelRequest = decode(api, body)?;
                let tunnels = all(store)?
                    .into_iter()
                    .filter(|t| request.table_name.as_ref().is_none_or(|n| *n == t.table))
                    .map(|t| info(&t))
                    .collect();
                pb::ListTunnelResponse { tunnels }.encode_to_vec()
            }
            "describe" => {
                let request: pb::DescribeTunnelRequest = decode(api, body)?;
                let mut tunnel = find(store, &request.table_name, &request.tunnel_name)?;
                sync_partitions(store, &mut tunnel)?;
                describe(store, &tunnel, now)?.encode_to_vec()
            }
            "delete" => {
                let request: pb::DeleteTunnelRequest = decode(api, body)?;
                let tunnel = find(store, &request.table_name, &request.tunnel_name)?;
                let txn = store.database().begin_write()?;
                txn.open_table(TUNNELS)?.remove(tunnel.id.as_str())?;
                txn.commit()?;
                pb::DeleteTunnelResponse {}.encode_to_vec()
            }
            "connect" => {
                let request: pb::ConnectRequest = decode(api, body)?;
                let mut tunnel = load(store, &request.tunnel_id)?;
                let config = request.client_config.unwrap_or_default();
                let timeout = config.timeout.unwrap_or(DEFAULT_CLIENT_TIMEOUT_SECS);
                if timeout <= 0 {
                    return Err(ApiError::invalid(format!(
                        "Invalid client timeout: {timeout}."
                    )));
                }
                let client_id = random_id();
                tunnel.connect(
                    client_id.clone(),
                    config.client_tag.unwrap_or_default(),
                    timeout * 1000,
                    now,
                );
                save(store, &tunnel)?;
                pb::ConnectResponse { client_id }.encode_to_vec()
            }
            "heartbeat" => {
                let request: pb::HeartbeatRequest = decode(api, body)?;
                let mut tunnel = load(store, &request.tunnel_id)?;
                sync_partitions(store, &mut tunnel)?;
                let result = tunnel.heartbeat(&request.client_id, &request.channels, now);
                save(store, &tunnel)?;
                pb::HeartbeatResponse { channels: result? }.encode_to_vec()
            }
            "shutdown" => {
                let request: pb::ShutdownRequest = decode(api, body)?;
                let mut tunnel = load(store, &request.tunnel_id)?;
                tunnel.disconnect(&request.client_id);
                save(store, &tunnel)?;
                pb::ShutdownResponse {}.encode_to_vec()
            }
            "getcheckpoint" => {
                let request: pb::GetCheckpointRequest = decode(api, body)?;
                let tunnel = load(store, &request.tunnel_id)?;
                let channel = tunnel.owned(&request.client_id, &request.channel_id)?;
                pb::GetCheckpointResponse {
                    checkpoint: channel.checkpoint.clone(),
                    sequence_number: channel.sequence,
                }
                .encode_to_vec()
            }
            "checkpoint" => {
                let request: pb::CheckpointRequest = decode(api, body)?;
                let mut tunnel = load(store, &request.tunnel_id)?;
                tunnel.checkpoint(
                    &request.client_id,
                    &request.channel_id,
                    request.checkpoint,
                    request.sequence_number,
                )?;
                save(store, &tunnel)?;
                pb::CheckpointResponse {}.encode_to_vec()
            }
            "readrecords" => {
                let request: pb::ReadRecordsRequest = decode(api, body)?;
                let tunnel = load(store, &request.tunnel_id)?;
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
}

fn all(store: &Store) -> Result<Vec<Tunnel>, ApiError> {
    let txn = store.database().begin_read()?;
    let table = txn.open_table(TUNNELS)?;
    let mut tunnels = Vec::new();
    for entry in table.iter()? {
        tunnels.push(parse(entry?.1.value())?);
    }
    Ok(tunnels)
}

fn parse(bytes: &[u8]) -> Result<Tunnel, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalServerError,
            format!("corrupt tunnel state: {e}"),
        )
    })
}

fn load(store: &Store, id: &str) -> Result<Tunnel, ApiError> {
    let txn = store.database().begin_read()?;
    let table = txn.open_table(TUNNELS)?;
    let entry = table.get(id)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ObjectNotExist,
            format!("Tunnel {id} does not exist."),
        )
    })?;
    parse(entry.value())
}

fn find(store: &Store, table: &str, name: &str) -> Result<Tunnel, ApiError> {
    all(store)?
        .into_iter()
        .find(|t| t.table == table && t.name == name)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ObjectNotExist,
                format!("Tunnel {name} of table {table} does not exist."),
            )
        })
}

fn save(store: &Store, tunnel: &Tunnel) -> Result<(), ApiError> {
    let json = serde_json::to_vec(tunnel).expect("tunnel state serializes");
    let txn = store.database().begin_write()?;
    txn.open_table(TUNNELS)?
        .insert(tunnel.id.as_str(), json.as_slice())?;
    txn.commit()?;
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

fn create(store: &Store, spec: pb::Tunnel, now: i64) -> Result<pb::CreateTunnelResponse, ApiError> {
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
    if find(store, &spec.table_name, &spec.tunnel_name).is_ok() {
        return Err(ApiError::new(
            ErrorCode::TunnelExist,
            format!("Tunnel {} already exists.", spec.tunnel_name),
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
    save(store, &tunnel)?;
    Ok(pb::CreateTunnelResponse {
        tunnel_id: tunnel.id,
    })
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
                .map(|row| pb::Record {
                    action_type: pb::ActionType::PutRow as i32,
                    record: plainbuffer::encode_row_change(&RowChange::Put {
                        primary_key: row.primary_key,
                        cells: row.cells,
                    }),
                    origin_record: None,
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
