//! Messages of the Tunnel Service. Calls are POSTed to the paths in [`paths`] with the same
//! signing as the table APIs; records travel as PlainBuffer rows inside [`Record`].
#![allow(missing_docs)]

/// The HTTP path of each tunnel call.
pub mod paths {
    pub const CREATE_TUNNEL: &str = "/tunnel/create";
    pub const DELETE_TUNNEL: &str = "/tunnel/delete";
    pub const LIST_TUNNEL: &str = "/tunnel/list";
    pub const DESCRIBE_TUNNEL: &str = "/tunnel/describe";
    pub const CONNECT: &str = "/tunnel/connect";
    pub const HEARTBEAT: &str = "/tunnel/heartbeat";
    pub const SHUTDOWN: &str = "/tunnel/shutdown";
    pub const GET_CHECKPOINT: &str = "/tunnel/getcheckpoint";
    pub const READ_RECORDS: &str = "/tunnel/readrecords";
    pub const CHECKPOINT: &str = "/tunnel/checkpoint";
    pub const GET_RPO: &str = "/tunnel/getrpo";
    pub const GET_RPO_BY_OFFSET: &str = "/tunnel/getrpobyoffset";
    pub const SCHEDULE: &str = "/tunnel/schedule";
}

/// Nanoseconds per millisecond: times in the tunnel API (creation times, consume points,
/// stream offsets) are nanoseconds since the epoch.
pub const NANOS_PER_MILLI: i64 = 1_000_000;

/// The token that marks a channel as fully consumed.
pub const FINISH_TAG: &str = "finished";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TunnelType {
    BaseData = 1,
    Stream = 2,
    BaseAndStream = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ChannelStatus {
    Open = 1,
    Closing = 2,
    Close = 3,
    Terminated = 4,
}

/// Generates `as_str`/`from_name` for the enums that DescribeTunnel and ListTunnel carry as
/// strings rather than numbers.
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name DescribeTunnel and ListTunnel answers use for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),*
                }
            }

            /// Reads a name as DescribeTunnel and ListTunnel answers spell it.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

wire_names!(TunnelType {
    BaseData => "BaseData",
    Stream => "Stream",
    BaseAndStream => "BaseAndStream",
});

wire_names!(ChannelStatus {
    Open => "OPEN",
    Closing => "CLOSING",
    Close => "CLOSE",
    Terminated => "TERMINATED",
});

/// What a channel delivers (`ChannelInfo.channel_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelType {
    /// A shard of the table's rows as they were when the tunnel was created.
    BaseData,
    /// A partition's change log.
    Stream,
}

wire_names!(ChannelType {
    BaseData => "BaseData",
    Stream => "Stream",
});

/// Where a tunnel is in its life (`TunnelInfo.stage`). These are the only three the SDKs know
/// (Java `TunnelStage.java` throws on any other name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelStage {
    /// The tunnel is being set up: base-data shards and stream channels are being prepared.
    InitBaseDataAndStreamShard,
    /// Base-data channels are being consumed (and a BaseData tunnel stays here when done).
    ProcessBaseData,
    /// Stream channels are being consumed.
    ProcessStream,
}

wire_names!(TunnelStage {
    InitBaseDataAndStreamShard => "InitBaseDataAndStreamShard",
    ProcessBaseData => "ProcessBaseData",
    ProcessStream => "ProcessStream",
});

impl TunnelStage {
    /// Whether the full copy (base data) still runs in this stage.
    pub fn copies_base_data(self) -> bool {
        matches!(
            self,
            Self::InitBaseDataAndStreamShard | Self::ProcessBaseData
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ActionType {
    PutRow = 1,
    UpdateRow = 2,
    DeleteRow = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StartOffsetFlag {
    Latest = 0,
    Earliest = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(string, required, tag = "1")]
    pub code: String,
    #[prost(string, optional, tag = "2")]
    pub message: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub tunnel_id: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamTunnelConfig {
    #[prost(enumeration = "StartOffsetFlag", optional, tag = "1")]
    pub flag: Option<i32>,
    #[prost(uint64, optional, tag = "2")]
    pub start_offset: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub end_offset: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Tunnel {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(string, required, tag = "3")]
    pub tunnel_name: String,
    #[prost(enumeration = "TunnelType", required, tag = "4")]
    pub tunnel_type: i32,
    #[prost(message, optional, tag = "5")]
    pub stream_tunnel_config: Option<StreamTunnelConfig>,
    /// Time-series tables only (the Go SDK always sends it, false by default).
    #[prost(bool, optional, tag = "6")]
    pub need_all_time_series_columns: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTunnelRequest {
    #[prost(message, required, tag = "1")]
    pub tunnel: Tunnel,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTunnelResponse {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTunnelRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(string, required, tag = "2")]
    pub tunnel_name: String,
    #[prost(string, optional, tag = "3")]
    pub tunnel_id: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTunnelResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTunnelRequest {
    #[prost(string, optional, tag = "1")]
    pub table_name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TunnelInfo {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    /// "BaseData", "Stream" or "BaseAndStream".
    #[prost(string, required, tag = "2")]
    pub tunnel_type: String,
    #[prost(string, required, tag = "3")]
    pub table_name: String,
    #[prost(string, required, tag = "4")]
    pub instance_name: String,
    #[prost(string, required, tag = "5")]
    pub stream_id: String,
    /// e.g. "InitBaseDataAndStreamShard", "ProcessBaseData", "ProcessStream".
    #[prost(string, required, tag = "6")]
    pub stage: String,
    #[prost(bool, optional, tag = "7")]
    pub expired: Option<bool>,
    #[prost(string, optional, tag = "8")]
    pub tunnel_name: Option<String>,
    #[prost(bool, optional, tag = "9")]
    pub public: Option<bool>,
    #[prost(message, optional, tag = "10")]
    pub stream_tunnel_config: Option<StreamTunnelConfig>,
    /// Creation time in nanoseconds since the epoch (the Go SDK reads it with
    /// `time.Unix(0, create_time)`).
    #[prost(int64, optional, tag = "11")]
    pub create_time: Option<i64>,
}

impl TunnelInfo {
    /// The stage, if the service named one this crate knows.
    pub fn stage(&self) -> Option<TunnelStage> {
        TunnelStage::from_name(&self.stage)
    }

    /// The tunnel's type, if the service named one this crate knows.
    pub fn kind(&self) -> Option<TunnelType> {
        TunnelType::from_name(&self.tunnel_type)
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListTunnelResponse {
    #[prost(message, repeated, tag = "1")]
    pub tunnels: Vec<TunnelInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeTunnelRequest {
    #[prost(string, required, tag = "1")]
    pub table_name: String,
    #[prost(string, required, tag = "2")]
    pub tunnel_name: String,
    #[prost(string, optional, tag = "3")]
    pub tunnel_id: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelInfo {
    #[prost(string, required, tag = "1")]
    pub channel_id: String,
    /// "BaseData" or "Stream".
    #[prost(string, optional, tag = "2")]
    pub channel_type: Option<String>,
    /// "OPEN", "CLOSING", "CLOSE" or "TERMINATED".
    #[prost(string, optional, tag = "3")]
    pub channel_status: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub client_id: Option<String>,
    /// Consume point of the channel, in nanoseconds since the epoch: everything committed up
    /// to it is consumed (Java derives the channel's lag as now minus this).
    #[prost(int64, optional, tag = "5")]
    pub channel_rpo: Option<i64>,
    /// Rows the channel has synchronized (checkpointed).
    #[prost(int64, optional, tag = "6")]
    pub channel_count: Option<i64>,
}

impl ChannelInfo {
    /// The channel's status, if the service named one this crate knows.
    pub fn status(&self) -> Option<ChannelStatus> {
        self.channel_status
            .as_deref()
            .and_then(ChannelStatus::from_name)
    }

    /// What the channel delivers, if the service named a type this crate knows.
    pub fn kind(&self) -> Option<ChannelType> {
        self.channel_type
            .as_deref()
            .and_then(ChannelType::from_name)
    }

    /// The channel's consume point in milliseconds since the epoch, if reported.
    pub fn consume_point_millis(&self) -> Option<i64> {
        self.channel_rpo.map(|nanos| nanos / NANOS_PER_MILLI)
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescribeTunnelResponse {
    #[prost(message, required, tag = "1")]
    pub tunnel: TunnelInfo,
    #[prost(message, repeated, tag = "2")]
    pub channels: Vec<ChannelInfo>,
    /// Consume point of the tunnel (ns): the oldest consume point of its stream channels.
    #[prost(int64, optional, tag = "3")]
    pub tunnel_rpo: Option<i64>,
}

impl DescribeTunnelResponse {
    /// The tunnel's consume point in milliseconds since the epoch; `None` before it has one
    /// (while the base data is copied).
    pub fn consume_point_millis(&self) -> Option<i64> {
        self.tunnel_rpo
            .filter(|&nanos| nanos > 0)
            .map(|nanos| nanos / NANOS_PER_MILLI)
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientConfig {
    /// Heartbeat timeout in seconds.
    #[prost(int64, optional, tag = "1")]
    pub timeout: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub client_tag: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(message, optional, tag = "2")]
    pub client_config: Option<ClientConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResponse {
    #[prost(string, required, tag = "1")]
    pub client_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Channel {
    #[prost(string, required, tag = "1")]
    pub channel_id: String,
    #[prost(int64, required, tag = "2")]
    pub version: i64,
    #[prost(enumeration = "ChannelStatus", required, tag = "3")]
    pub status: i32,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub detail: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(string, required, tag = "2")]
    pub client_id: String,
    #[prost(message, repeated, tag = "3")]
    pub channels: Vec<Channel>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatResponse {
    #[prost(message, repeated, tag = "1")]
    pub channels: Vec<Channel>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShutdownRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(string, required, tag = "2")]
    pub client_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShutdownResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetCheckpointRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(string, required, tag = "2")]
    pub client_id: String,
    #[prost(string, required, tag = "3")]
    pub channel_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetCheckpointResponse {
    #[prost(string, required, tag = "1")]
    pub checkpoint: String,
    #[prost(int64, required, tag = "2")]
    pub sequence_number: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckpointRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(string, required, tag = "2")]
    pub client_id: String,
    #[prost(string, required, tag = "3")]
    pub channel_id: String,
    #[prost(string, required, tag = "4")]
    pub checkpoint: String,
    #[prost(int64, required, tag = "5")]
    pub sequence_number: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckpointResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRecordsRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(string, required, tag = "2")]
    pub client_id: String,
    #[prost(string, required, tag = "3")]
    pub channel_id: String,
    #[prost(string, required, tag = "4")]
    pub token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    #[prost(enumeration = "ActionType", required, tag = "1")]
    pub action_type: i32,
    /// One PlainBuffer row, with sequence info in its extension for stream records.
    #[prost(bytes = "vec", required, tag = "2")]
    pub record: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub origin_record: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRecordsResponse {
    #[prost(message, repeated, tag = "1")]
    pub records: Vec<Record>,
    /// The token to read from next; [`FINISH_TAG`] once the channel is exhausted.
    #[prost(string, required, tag = "2")]
    pub next_token: String,
    #[prost(bool, optional, tag = "3")]
    pub may_more_record: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRpoRequest {
    #[prost(string, optional, tag = "1")]
    pub tunnel_id: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub limit: Option<i32>,
}

/// The RPO answers carry JSON the Go SDK unmarshals into `map[string]map[string]*RpoLatency`
/// and `map[string]*TunnelRpoLatency` (`tunnel/api.go`, `tunnel/model.go`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRpoResponse {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub rpo_infos: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub tunnel_rpo_infos: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub tunnel_id: Option<String>,
}

/// Asks the tunnel to suspend (CLOSING), resume (OPEN) or terminate (TERMINATED) channels; the
/// versions are not used (the Go SDK sends 0).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScheduleRequest {
    #[prost(string, required, tag = "1")]
    pub tunnel_id: String,
    #[prost(message, repeated, tag = "3")]
    pub channels: Vec<Channel>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScheduleResponse {}

/// A channel token as the SDKs decode it: `base64(Token)` (Go `tunnel/util.go` `streamToken`,
/// Java `Utils.isStreamToken`); a stream channel's token has a non-empty iterator.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Token {
    #[prost(int64, required, tag = "1")]
    pub version: i64,
    #[prost(bytes = "vec", required, tag = "2")]
    pub content: Vec<u8>,
}

/// The content of a version 2 [`Token`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct TokenContentV2 {
    /// Where a base-data channel goes on: a PlainBuffer primary key.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub primary_key: Option<Vec<u8>>,
    /// Where a stream channel goes on.
    #[prost(string, optional, tag = "2")]
    pub iterator: Option<String>,
    #[prost(int64, optional, tag = "3")]
    pub timestamp: Option<i64>,
    /// Records delivered on the channel up to this token.
    #[prost(int64, optional, tag = "4")]
    pub total_count: Option<i64>,
}
