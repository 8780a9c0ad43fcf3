//! Tunnel Service calls: tunnel management, the client/channel protocol, and record reads
//! decoded into [`TunnelRecord`]s.

use ots_protocol::pb::tunnel::*;
use ots_protocol::record::TunnelRecord;

use crate::{Client, ClientError};

/// A page of records from [`Client::read_records`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    /// Records in log order.
    pub records: Vec<TunnelRecord>,
    /// The token to read from next; [`FINISH_TAG`] once the channel is exhausted.
    pub next_token: String,
    /// Whether the server suggests reading again at once.
    pub may_more_record: bool,
    /// The records' size on the wire (their PlainBuffer bytes), what a read budget counts.
    pub bytes: usize,
}

impl RecordPage {
    /// Whether the channel has no more records ever.
    pub fn is_finished(&self) -> bool {
        self.next_token == FINISH_TAG
    }
}

impl Client {
    /// Creates a tunnel, its stream channels over the part of the change log `stream` gives
    /// (from creation on, without end, when `None`); returns its id.
    pub async fn create_tunnel(
        &self,
        table: &str,
        tunnel_name: &str,
        tunnel_type: TunnelType,
        stream: Option<StreamTunnelConfig>,
    ) -> Result<String, ClientError> {
        let request = CreateTunnelRequest {
            tunnel: Tunnel {
                table_name: table.to_owned(),
                tunnel_name: tunnel_name.to_owned(),
                tunnel_type: tunnel_type as i32,
                stream_tunnel_config: stream,
                need_all_time_series_columns: None,
            },
        };
        let response: CreateTunnelResponse =
            self.call(paths::CREATE_TUNNEL, &request, false).await?;
        Ok(response.tunnel_id)
    }

    /// Lists the tunnels of a table (or of the instance).
    pub async fn list_tunnel(&self, table: Option<&str>) -> Result<Vec<TunnelInfo>, ClientError> {
        let request = ListTunnelRequest {
            table_name: table.map(str::to_owned),
        };
        let response: ListTunnelResponse = self.call(paths::LIST_TUNNEL, &request, true).await?;
        Ok(response.tunnels)
    }

    /// Describes a tunnel: stage, channels and consume points.
    pub async fn describe_tunnel(
        &self,
        table: &str,
        tunnel_name: &str,
    ) -> Result<DescribeTunnelResponse, ClientError> {
        let request = DescribeTunnelRequest {
            table_name: table.to_owned(),
            tunnel_name: tunnel_name.to_owned(),
            tunnel_id: None,
        };
        self.call(paths::DESCRIBE_TUNNEL, &request, true).await
    }

    /// Deletes a tunnel.
    pub async fn delete_tunnel(&self, table: &str, tunnel_name: &str) -> Result<(), ClientError> {
        let request = DeleteTunnelRequest {
            table_name: table.to_owned(),
            tunnel_name: tunnel_name.to_owned(),
            tunnel_id: None,
        };
        self.call::<_, DeleteTunnelResponse>(paths::DELETE_TUNNEL, &request, false)
            .await
            .map(drop)
    }

    /// Registers a worker with a tunnel; returns its client id.
    pub async fn connect_tunnel(
        &self,
        tunnel_id: &str,
        heartbeat_timeout_secs: i64,
        client_tag: &str,
    ) -> Result<String, ClientError> {
        let request = ConnectRequest {
            tunnel_id: tunnel_id.to_owned(),
            client_config: Some(ClientConfig {
                timeout: Some(heartbeat_timeout_secs),
                client_tag: Some(client_tag.to_owned()),
            }),
        };
        let response: ConnectResponse = self.call(paths::CONNECT, &request, false).await?;
        Ok(response.client_id)
    }

    /// Reports the worker's channel states; returns the channels the server assigns.
    pub async fn heartbeat(
        &self,
        tunnel_id: &str,
        client_id: &str,
        channels: Vec<Channel>,
    ) -> Result<Vec<Channel>, ClientError> {
        let request = HeartbeatRequest {
            tunnel_id: tunnel_id.to_owned(),
            client_id: client_id.to_owned(),
            channels,
        };
        let response: HeartbeatResponse = self.call(paths::HEARTBEAT, &request, false).await?;
        Ok(response.channels)
    }

    /// Unregisters a worker, releasing its channels.
    pub async fn shutdown_tunnel_client(
        &self,
        tunnel_id: &str,
        client_id: &str,
    ) -> Result<(), ClientError> {
        let request = ShutdownRequest {
            tunnel_id: tunnel_id.to_owned(),
            client_id: client_id.to_owned(),
        };
        self.call::<_, ShutdownResponse>(paths::SHUTDOWN, &request, false)
            .await
            .map(drop)
    }

    /// The stored checkpoint (token and sequence number) of a channel.
    pub async fn get_checkpoint(
        &self,
        tunnel_id: &str,
        client_id: &str,
        channel_id: &str,
    ) -> Result<GetCheckpointResponse, ClientError> {
        let request = GetCheckpointRequest {
            tunnel_id: tunnel_id.to_owned(),
            client_id: client_id.to_owned(),
            channel_id: channel_id.to_owned(),
        };
        self.call(paths::GET_CHECKPOINT, &request, true).await
    }

    /// Stores a channel's checkpoint.
    pub async fn checkpoint(
        &self,
        tunnel_id: &str,
        client_id: &str,
        channel_id: &str,
        token: &str,
        sequence_number: i64,
    ) -> Result<(), ClientError> {
        let request = CheckpointRequest {
            tunnel_id: tunnel_id.to_owned(),
            client_id: client_id.to_owned(),
            channel_id: channel_id.to_owned(),
            checkpoint: token.to_owned(),
            sequence_number,
        };
        self.call::<_, CheckpointResponse>(paths::CHECKPOINT, &request, false)
            .await
            .map(drop)
    }

    /// Reads the records of a channel from a token.
    pub async fn read_records(
        &self,
        tunnel_id: &str,
        client_id: &str,
        channel_id: &str,
        token: &str,
    ) -> Result<RecordPage, ClientError> {
        let request = ReadRecordsRequest {
            tunnel_id: tunnel_id.to_owned(),
            client_id: client_id.to_owned(),
            channel_id: channel_id.to_owned(),
            token: token.to_owned(),
        };
        let response: ReadRecordsResponse = self.call(paths::READ_RECORDS, &request, true).await?;
        let bytes = response
            .records
            .iter()
            .map(|r| r.record.len() + r.origin_record.as_ref().map_or(0, Vec::len))
            .sum();
        Ok(RecordPage {
            records: response
                .records
                .iter()
                .map(TunnelRecord::decode)
                .collect::<Result<_, _>>()?,
            next_token: response.next_token,
            may_more_record: response.may_more_record.unwrap_or(false),
            bytes,
        })
    }
}
