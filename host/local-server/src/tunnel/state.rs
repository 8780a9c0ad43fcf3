//! A tunnel's durable state and the rules that change it: channel availability, assignment
//! and rebalancing across clients, heartbeat expiry and checkpoint validation. Pure logic;
//! [`super::TunnelService`] loads and stores it around every call.

use std::collections::BTreeMap;

use ots_protocol::error::ErrorCode;
use ots_protocol::pb::tunnel::{self as pb, FINISH_TAG};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// What a tunnel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TunnelKind {
    /// The table's rows at creation, then nothing.
    BaseData,
    /// Changes from creation on.
    Stream,
    /// The rows, then the changes from creation on.
    BaseAndStream,
}

impl TunnelKind {
    /// The name DescribeTunnel reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::BaseData => "BaseData",
            Self::Stream => "Stream",
            Self::BaseAndStream => "BaseAndStream",
        }
    }
}

/// Where a channel's records come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// A shard of the table's rows: PlainBuffer primary keys, `[begin, end)`.
    Base {
        /// Inclusive start key.
        begin: Vec<u8>,
        /// Exclusive end key.
        end: Vec<u8>,
    },
    /// A partition's change log.
    Stream {
        /// Partition id.
        partition: u32,
        /// Parent partitions whose channels must finish first.
        parents: Vec<u32>,
    },
}

/// Who holds a channel and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Where its records come from.
    pub source: Source,
    /// Stored checkpoint token (`FINISH_TAG` once done).
    pub checkpoint: String,
    /// Sequence number of the stored checkpoint.
    pub sequence: i64,
    /// The client holding it.
    pub owner: Option<String>,
    /// Bumped at every change of owner.
    pub version: i64,
    /// Being taken from its owner: the owner is asked to close it.
    pub revoking: bool,
}

impl Channel {
    /// Whether every record was consumed and checkpointed.
    pub fn finished(&self) -> bool {
        self.checkpoint == FINISH_TAG
    }

    /// `"BaseData"` or `"Stream"`.
    pub fn kind_name(&self) -> &'static str {
        match self.source {
            Source::Base { .. } => "BaseData",
            Source::Stream { .. } => "Stream",
        }
    }
}

/// A connected worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The worker's tag.
    pub tag: String,
    /// Heartbeat timeout in ms.
    pub timeout_ms: i64,
    /// Time of its last heartbeat (or connect), ms.
    pub last_seen_ms: i64,
}

/// One tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    /// Tunnel id.
    pub id: String,
    /// Tunnel name, unique per table.
    pub name: String,
    /// Source table.
    pub table: String,
    /// What it delivers.
    pub kind: TunnelKind,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Channels by id.
    pub channels: BTreeMap<String, Channel>,
    /// Connected clients by id.
    pub clients: BTreeMap<String, Client>,
}

fn gone(what: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ResourceGone, what)
}

impl Tunnel {
    /// The processing stage DescribeTunnel reports.
    pub fn stage(&self) -> &'static str {
        match self.kind {
            TunnelKind::Stream => "ProcessStream",
            TunnelKind::BaseData if self.base_finished() => "Finished",
            TunnelKind::BaseData => "ProcessBaseData",
            TunnelKind::BaseAndStream if self.base_finished() => "ProcessStream",
            TunnelKind::BaseAndStream => "ProcessBaseData",
        }
    }

    fn base_finished(&self) -> bool {
        self.channels
            .values()
            .filter(|c| matches!(c.source, Source::Base { .. }))
            .all(Channel::finished)
    }

    fn stream_channel_of(&self, partition: u32) -> Option<&Channel> {
        self.channels
            .values()
            .find(|c| matches!(&c.source, Source::Stream { partition: p, .. } if *p == partition))
    }

    /// Whether a channel may be handed out now: not finished, and its predecessors (base data
    /// before stream, parents before children) are finished.
    pub fn available(&self, channel: &Channel) -> bool {
        if channel.finished() {
            return false;
        }
        match &channel.source {
            Source::Base { .. } => true,
            Source::Stream { parents, .. } => {
                (self.kind != TunnelKind::BaseAndStream || self.base_finished())
                    && parents
                        .iter()
                        .filter_map(|p| self.stream_channel_of(*p))
                        .all(Channel::finished)
            }
        }
    }

    /// Adds a channel for a partition the tunnel does not know yet (born from a split).
    pub fn add_partition(&mut self, partition: u32, parents: Vec<u32>) {
        if self.kind == TunnelKind::BaseData || self.stream_channel_of(partition).is_some() {
            return;
        }
        self.channels.insert(
            format!("stream-{partition}"),
            Channel {
                source: Source::Stream { partition, parents },
                checkpoint: "0".into(),
                sequence: 0,
                owner: None,
                version: 0,
                revoking: false,
            },
        );
    }

    /// Registers a client.
    pub fn connect(&mut self, client_id: String, tag: String, timeout_ms: i64, now_ms: i64) {
        self.clients.insert(
            client_id,
            Client {
                tag,
                timeout_ms,
                last_seen_ms: now_ms,
            },
        );
    }

    /// Removes a client and frees its channels.
    pub fn disconnect(&mut self, client_id: &str) {
        self.clients.remove(client_id);
        for channel in self.channels.values_mut() {
            if channel.owner.as_deref() == Some(client_id) {
                channel.owner = None;
                channel.revoking = false;
            }
        }
    }

    /// Drops clients whose heartbeat timed out, freeing their channels for others.
    pub fn expire(&mut self, now_ms: i64) {
        let dead: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, c)| now_ms - c.last_seen_ms > c.timeout_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            tracing::info!(tunnel = %self.id, client = %id, "tunnel client timed out");
            self.disconnect(&id);
        }
    }

    /// Checks that `client_id` is connected and holds `channel_id`.
    pub fn owned(&self, client_id: &str, channel_id: &str) -> Result<&Channel, ApiError> {
        if !self.clients.contains_key(client_id) {
            return Err(gone(format!("Client {client_id} is not connected.")));
        }
        let channel = self
            .channels
            .get(channel_id)
            .ok_or_else(|| ApiError::invalid(format!("No channel {channel_id}.")))?;
        if channel.owner.as_deref() != Some(client_id) {
            return Err(gone(format!(
                "Channel {channel_id} is not held by client {client_id}."
            )));
        }
        Ok(channel)
    }

    /// Stores a checkpoint after checking the owner and that the sequence number moves on.
    pub fn checkpoint(
        &mut self,
        client_id: &str,
        channel_id: &str,
        token: String,
        sequence: i64,
    ) -> Result<(), ApiError> {
        let stored = self.owned(client_id, channel_id)?.sequence;
        if sequence <= stored {
            return Err(ApiError::new(
                ErrorCode::SequenceNumberNotMatch,
                format!(
                    "Checkpoint sequence number {sequence} of channel {channel_id} is not after the stored {stored}."
                ),
            ));
        }
        let channel = self.channels.get_mut(channel_id).expect("checked above");
        channel.checkpoint = token;
        channel.sequence = sequence;
        Ok(())
    }

    /// A heartbeat: records the client's view, frees channels it closed, rebalances, and
    /// returns the channels the client should hold with their status.
    pub fn heartbeat(
        &mut self,
        client_id: &str,
        reported: &[pb::Channel],
        now_ms: i64,
    ) -> Result<Vec<pb::Channel>, ApiError> {
        self.expire(now_ms);
        let client = self
            .clients
            .get_mut(client_id)
            .ok_or_else(|| gone(format!("Client {client_id} is not connected.")))?;
        client.last_seen_ms = now_ms;
        for report in reported {
            let closed = matches!(
                pb::ChannelStatus::try_from(report.status),
                Ok(pb::ChannelStatus::Close | pb::ChannelStatus::Terminated)
            );
            if let Some(channel) = self.channels.get_mut(&report.channel_id)
                && closed
                && channel.owner.as_deref() == Some(client_id)
                && channel.version == report.version
            {
                channel.owner = None;
                channel.revoking = false;
            }
        }
        self.rebalance();
        let mut answer = Vec::new();
        for (id, channel) in &self.channels {
            let status = if channel.owner.as_deref() == Some(client_id) {
                if channel.revoking {
                    pb::ChannelStatus::Closing
                } else {
                    pb::ChannelStatus::Open
                }
            } else if channel.finished() && reported.iter().any(|r| r.channel_id == *id) {
                pb::ChannelStatus::Terminated
            } else {
                continue;
            };
            answer.push(pb::Channel {
                channel_id: id.clone(),
                version: channel.version,
                status: status as i32,
                detail: None,
            });
        }
        Ok(answer)
    }

    /// Spreads the available channels evenly over the connected clients: a client above its
    /// share is asked to close some; free channels go to the clients with the fewest.
    fn rebalance(&mut self) {
        for channel in self.channels.values_mut() {
            if channel.finished() && channel.owner.is_some() && !channel.revoking {
                // A finished channel stays with its owner until it reports it closed.
                channel.revoking = true;
            }
        }
        if self.clients.is_empty() {
            return;
        }
        let available: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| self.available(c))
            .map(|(id, _)| id.clone())
            .collect();
        let share = available.len().div_ceil(self.clients.len());
        let mut load: BTreeMap<String, usize> =
            self.clients.keys().map(|id| (id.clone(), 0)).collect();
        for id in &available {
            let channel = self.channels.get_mut(id).expect("listed");
            if let Some(owner) = &channel.owner
                && !channel.revoking
            {
                let count = load.get_mut(owner).expect("owners are connected");
                if *count >= share {
                    channel.revoking = true;
                } else {
                    *count += 1;
                }
            }
        }
        for id in &available {
            let channel = self.channels.get_mut(id).expect("listed");
            if channel.owner.is_some() {
                continue;
            }
            let (client, count) = load
                .iter_mut()
                .min_by_key(|(_, count)| **count)
                .expect("clients exist");
            *count += 1;
            channel.owner = Some(client.clone());
            channel.version += 1;
            channel.revoking = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(kind: TunnelKind) -> Tunnel {
        let mut t = Tunnel {
            id: "t".into(),
            name: "n".into(),
            table: "src".into(),
            kind,
            created_ms: 0,
            channels: BTreeMap::new(),
            clients: BTreeMap::new(),
        };
        let shards = if kind == TunnelKind::Stream { 0 } else { 2 };
        for i in 0..shards {
            t.channels.insert(
                format!("base-{i}"),
                Channel {
                    source: Source::Base {
                        begin: vec![],
                        end: vec![],
                    },
                    checkpoint: String::new(),
                    sequence: 0,
                    owner: None,
                    version: 0,
                    revoking: false,
                },
            );
        }
        for p in 0..4 {
            t.add_partition(p, vec![]);
        }
        t
    }

    fn held(answer: &[pb::Channel], status: pb::ChannelStatus) -> Vec<String> {
        answer
            .iter()
            .filter(|c| c.status == status as i32)
            .map(|c| c.channel_id.clone())
            .collect()
    }

    #[test]
    fn base_data_comes_before_stream_and_parents_before_children() {
        let mut t = tunnel(TunnelKind::BaseAndStream);
        t.connect("a".into(), "a".into(), 1000, 0);
        let answer = t.heartbeat("a", &[], 0).unwrap();
        assert_eq!(
            held(&answer, pb::ChannelStatus::Open),
            vec!["base-0", "base-1"]
        );
        for id in ["base-0", "base-1"] {
            t.checkpoint("a", id, FINISH_TAG.into(), 1).unwrap();
        }
        let answer = t.heartbeat("a", &[], 1).unwrap();
        assert_eq!(
            held(&answer, pb::ChannelStatus::Closing),
            vec!["base-0", "base-1"]
        );
        let closed: Vec<pb::Channel> = answer
            .iter()
            .map(|c| pb::Channel {
                status: pb::ChannelStatus::Close as i32,
                ..c.clone()
            })
            .collect();
        let answer = t.heartbeat("a", &closed, 2).unwrap();
        assert_eq!(held(&answer, pb::ChannelStatus::Open).len(), 4);

        t.add_partition(4, vec![0]);
        assert!(!t.available(&t.channels["stream-4"]));
        t.checkpoint("a", "stream-0", FINISH_TAG.into(), 1).unwrap();
        assert!(t.available(&t.channels["stream-4"]));
    }

    #[test]
    fn channels_spread_evenly_and_move_when_a_client_dies() {
        let mut t = tunnel(TunnelKind::Stream);
        t.connect("a".into(), "a".into(), 1000, 0);
        assert_eq!(t.heartbeat("a", &[], 0).unwrap().len(), 4);
        t.connect("b".into(), "b".into(), 1000, 10);
        let answer = t.heartbeat("b", &[], 10).unwrap();
        assert!(answer.is_empty(), "nothing free until a closes some");
        let answer = t.heartbeat("a", &[], 20).unwrap();
        let revoked = held(&answer, pb::ChannelStatus::Closing);
        assert_eq!(revoked.len(), 2);
        let closed: Vec<pb::Channel> = answer
            .iter()
            .filter(|c| revoked.contains(&c.channel_id))
            .map(|c| pb::Channel {
                status: pb::ChannelStatus::Close as i32,
                ..c.clone()
            })
            .collect();
        t.heartbeat("a", &closed, 30).unwrap();
        assert_eq!(
            held(&t.heartbeat("b", &[], 40).unwrap(), pb::ChannelStatus::Open).len(),
            2
        );

        // a stops heartbeating: after its timeout b gets everything.
        let answer = t.heartbeat("b", &[], 1035).unwrap();
        assert_eq!(held(&answer, pb::ChannelStatus::Open).len(), 4);
        assert!(t.heartbeat("a", &[], 1035).is_err());
    }

    #[test]
    fn stale_and_foreign_checkpoints_are_rejected() {
        let mut t = tunnel(TunnelKind::Stream);
        t.connect("a".into(), "a".into(), 1000, 0);
        t.connect("b".into(), "b".into(), 1000, 0);
        t.heartbeat("a", &[], 0).unwrap();
        let owner = t.channels["stream-0"].owner.clone().unwrap();
        let other = if owner == "a" { "b" } else { "a" };
        t.checkpoint(&owner, "stream-0", "5".into(), 1).unwrap();
        let stale = t.checkpoint(&owner, "stream-0", "3".into(), 1).unwrap_err();
        assert_eq!(stale.code, ErrorCode::SequenceNumberNotMatch);
        let foreign = t.checkpoint(other, "stream-0", "9".into(), 2).unwrap_err();
        assert_eq!(foreign.code, ErrorCode::ResourceGone);
        assert_eq!(t.channels["stream-0"].checkpoint, "5");
    }
}
