//! A tunnel's durable state and the rules that change it: channel availability, assignment
//! and rebalancing across clients, heartbeat expiry, checkpoint validation and scheduling.
//! Pure logic; [`super::TunnelService`] loads and stores it around every call.
//!
//! Channel versions follow the official tunnel workers: a client reports a channel it closed
//! or finished with the version it was given plus one (Go `tunnel/channel.go`
//! `closeAndUpdate`, Java `ChannelConnect.java`), so the server frees a channel on a report of
//! its version or later, keeps the later one, and gives a reassigned channel a version above
//! it (a client ignores an answer older than what it reported).

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
    /// The wire type of this kind.
    pub fn wire(self) -> pb::TunnelType {
        match self {
            Self::BaseData => pb::TunnelType::BaseData,
            Self::Stream => pb::TunnelType::Stream,
            Self::BaseAndStream => pb::TunnelType::BaseAndStream,
        }
    }
}

/// Where a tunnel's stream channels start reading a partition's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStart {
    /// At the log's end when the tunnel is created: changes from then on (the default).
    #[default]
    Latest,
    /// At the oldest record the stream still keeps.
    Earliest,
    /// At the first record committed at or after this instant, in nanoseconds.
    At(u64),
}

/// The part of the table's change log a tunnel's stream channels deliver: CreateTunnel's
/// stream configuration, validated. Offsets are nanoseconds since the epoch, as the SDKs send
/// them (Java multiplies its milliseconds by 10⁶ in `TunnelProtocolBuilder`, Go passes
/// `UnixNano` values through in `tunnel/util.go`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRange {
    /// Where the channels start.
    pub start: StreamStart,
    /// Records committed at or after this instant (ns) are not delivered; a channel
    /// terminates once its log reaches it.
    pub end: Option<u64>,
}

/// How long after a channel's end offset the server waits for commits stamped before it
/// before it terminates a channel whose log has not reached the end: a commit takes its time
/// when it begins, so one in flight can still land just before the end.
pub const END_SETTLE_MS: i64 = 1000;

const NANOS_PER_MS: u64 = 1_000_000;

fn ns_to_text(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns.min(i64::MAX as u64) as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl StreamRange {
    /// Validates a CreateTunnel stream configuration at `now_ms` against a stream that keeps
    /// `retention_ms` of records. The first start offset accepted lies `margin_ms` after the
    /// oldest instant the stream keeps (five minutes on the service: the Java SDK's
    /// `StreamTunnelConfig` gives the valid range as "[CurrentSystemTime - StreamExpiration +
    /// 5 minute, CurrentSystemTime)").
    pub fn from_wire(
        config: &pb::StreamTunnelConfig,
        now_ms: i64,
        retention_ms: i64,
        margin_ms: i64,
    ) -> Result<Self, ApiError> {
        let flag = match config.flag {
            None => pb::StartOffsetFlag::Latest,
            Some(flag) => pb::StartOffsetFlag::try_from(flag).map_err(|_| {
                ApiError::invalid(format!("Invalid stream start offset flag: {flag}."))
            })?,
        };
        let now_ns = now_ms.max(0) as u64 * NANOS_PER_MS;
        let start = match (config.start_offset.filter(|&s| s != 0), flag) {
            (Some(_), pb::StartOffsetFlag::Earliest) => {
                return Err(ApiError::invalid(
                    "A stream configuration gives a start offset or the EARLIEST flag, not both.",
                ));
            }
            (Some(offset), _) => {
                let oldest = (now_ms - retention_ms + margin_ms).max(0) as u64 * NANOS_PER_MS;
                if offset < oldest || offset >= now_ns {
                    return Err(ApiError::invalid(format!(
                        "The start offset {offset} ns ({}) is outside the valid range [{oldest}, {now_ns}) ns ([{}, {})): from the stream's expiration less 5 minutes ago to now.",
                        ns_to_text(offset),
                        ns_to_text(oldest),
                        ns_to_text(now_ns),
                    )));
                }
                StreamStart::At(offset)
            }
            (None, pb::StartOffsetFlag::Earliest) => StreamStart::Earliest,
            (None, pb::StartOffsetFlag::Latest) => StreamStart::Latest,
        };
        let end = config.end_offset.filter(|&e| e != 0);
        if let Some(end) = end {
            let after = match start {
                StreamStart::At(offset) => offset,
                StreamStart::Latest => now_ns,
                StreamStart::Earliest => 0,
            };
            if end <= after {
                return Err(ApiError::invalid(format!(
                    "The end offset {end} ns ({}) is not after the start {after} ns ({}).",
                    ns_to_text(end),
                    ns_to_text(after),
                )));
            }
        }
        Ok(Self { start, end })
    }

    /// The configuration as DescribeTunnel and ListTunnel echo it.
    pub fn wire(&self) -> pb::StreamTunnelConfig {
        let (flag, start_offset) = match self.start {
            StreamStart::Latest => (Some(pb::StartOffsetFlag::Latest as i32), None),
            StreamStart::Earliest => (Some(pb::StartOffsetFlag::Earliest as i32), None),
            StreamStart::At(offset) => (None, Some(offset)),
        };
        pb::StreamTunnelConfig {
            flag,
            start_offset,
            end_offset: self.end,
        }
    }

    /// Whether a record committed at `timestamp_us` lies before the end offset.
    pub fn before_end(&self, timestamp_us: i64) -> bool {
        self.end
            .is_none_or(|end| (timestamp_us.max(0) as u64).saturating_mul(1000) < end)
    }

    /// Whether, at `now_ms`, no more records before the end offset can be committed.
    pub fn ended(&self, now_ms: i64) -> bool {
        self.end
            .is_some_and(|end| (now_ms - END_SETTLE_MS).max(0) as u64 * NANOS_PER_MS >= end)
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
    /// Bumped at every change of owner, and at least the last version a client reported.
    pub version: i64,
    /// Being taken from its owner: the owner is asked to close it.
    pub revoking: bool,
    /// Rows synchronized: records delivered up to the stored checkpoint.
    #[serde(default)]
    pub rows: i64,
    /// Suspended by Schedule: taken from its owner and not handed out until resumed.
    #[serde(default)]
    pub suspended: bool,
}

impl Channel {
    /// Whether every record was consumed and checkpointed.
    pub fn finished(&self) -> bool {
        self.checkpoint == FINISH_TAG
    }

    /// What the channel delivers.
    pub fn kind(&self) -> pb::ChannelType {
        match self.source {
            Source::Base { .. } => pb::ChannelType::BaseData,
            Source::Stream { .. } => pb::ChannelType::Stream,
        }
    }

    /// A new channel over `source`, unowned, at its start `checkpoint`.
    pub fn new(source: Source, checkpoint: String) -> Self {
        Self {
            source,
            checkpoint,
            sequence: 0,
            owner: None,
            version: 0,
            revoking: false,
            rows: 0,
            suspended: false,
        }
    }

    /// The status DescribeTunnel reports: the heartbeat's OPEN, CLOSING and TERMINATED, or
    /// WAIT for a channel no client holds (the Java SDK's `ChannelStatus.WAIT`; the Go SDK's
    /// schedule sample waits for it). A suspended channel stays CLOSING until resumed.
    pub fn described_status(&self) -> &'static str {
        if self.finished() {
            "TERMINATED"
        } else if self.suspended || (self.owner.is_some() && self.revoking) {
            "CLOSING"
        } else if self.owner.is_some() {
            "OPEN"
        } else {
            "WAIT"
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
    /// The part of the change log its stream channels deliver (tunnels stored before
    /// stream configurations existed start at creation and never end).
    #[serde(default)]
    pub range: StreamRange,
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
    /// The processing stage DescribeTunnel reports. A BaseData tunnel stays in
    /// ProcessBaseData when done: the SDKs know no other stage; its channels say it is done.
    pub fn stage(&self) -> pb::TunnelStage {
        match self.kind {
            TunnelKind::Stream => pb::TunnelStage::ProcessStream,
            TunnelKind::BaseAndStream if self.base_finished() => pb::TunnelStage::ProcessStream,
            TunnelKind::BaseData | TunnelKind::BaseAndStream => pb::TunnelStage::ProcessBaseData,
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
        if channel.finished() || channel.suspended {
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

    /// Adds a channel for a partition the tunnel does not know yet (born from a split, or
    /// there at creation), starting at checkpoint `start`.
    pub fn add_partition(&mut self, partition: u32, parents: Vec<u32>, start: String) {
        if self.kind == TunnelKind::BaseData || self.stream_channel_of(partition).is_some() {
            return;
        }
        self.channels.insert(
            format!("stream-{partition}"),
            Channel::new(Source::Stream { partition, parents }, start),
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

    /// Stores a checkpoint after checking the owner and that the sequence number moves on;
    /// `rows` is how many records the channel delivered up to `token`.
    pub fn checkpoint(
        &mut self,
        client_id: &str,
        channel_id: &str,
        token: String,
        sequence: i64,
        rows: i64,
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
        channel.rows = rows;
        Ok(())
    }

    /// Schedule: suspends (CLOSING), resumes (OPEN) or terminates (TERMINATED) channels. A
    /// suspended channel is taken from its owner and handed to nobody until resumed; a
    /// terminated one counts as consumed.
    pub fn schedule(&mut self, channels: &[pb::Channel]) -> Result<(), ApiError> {
        for wanted in channels {
            if !self.channels.contains_key(&wanted.channel_id) {
                return Err(ApiError::invalid(format!(
                    "No channel {} in the tunnel.",
                    wanted.channel_id
                )));
            }
            if pb::ChannelStatus::try_from(wanted.status).is_err() {
                return Err(ApiError::invalid(format!(
                    "Invalid channel status: {}.",
                    wanted.status
                )));
            }
        }
        for wanted in channels {
            let channel = self
                .channels
                .get_mut(&wanted.channel_id)
                .expect("checked above");
            match pb::ChannelStatus::try_from(wanted.status).expect("checked above") {
                pb::ChannelStatus::Open => channel.suspended = false,
                pb::ChannelStatus::Closing | pb::ChannelStatus::Close => {
                    channel.suspended = wanted.status == pb::ChannelStatus::Closing as i32;
                    channel.revoking = channel.owner.is_some();
                }
                pb::ChannelStatus::Terminated => {
                    channel.checkpoint = FINISH_TAG.to_owned();
                    channel.suspended = false;
                }
            }
        }
        self.rebalance();
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
                && report.version >= channel.version
            {
                channel.owner = None;
                channel.revoking = false;
                channel.version = report.version;
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
            range: StreamRange::default(),
            created_ms: 0,
            channels: BTreeMap::new(),
            clients: BTreeMap::new(),
        };
        let shards = if kind == TunnelKind::Stream { 0 } else { 2 };
        for i in 0..shards {
            t.channels.insert(
                format!("base-{i}"),
                Channel::new(
                    Source::Base {
                        begin: vec![],
                        end: vec![],
                    },
                    String::new(),
                ),
            );
        }
        for p in 0..4 {
            t.add_partition(p, vec![], String::new());
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
            t.checkpoint("a", id, FINISH_TAG.into(), 1, 0).unwrap();
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

        t.add_partition(4, vec![0], String::new());
        assert!(!t.available(&t.channels["stream-4"]));
        t.checkpoint("a", "stream-0", FINISH_TAG.into(), 1, 0)
            .unwrap();
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
        t.checkpoint(&owner, "stream-0", "5".into(), 1, 0).unwrap();
        let stale = t
            .checkpoint(&owner, "stream-0", "3".into(), 1, 0)
            .unwrap_err();
        assert_eq!(stale.code, ErrorCode::SequenceNumberNotMatch);
        let foreign = t
            .checkpoint(other, "stream-0", "9".into(), 2, 0)
            .unwrap_err();
        assert_eq!(foreign.code, ErrorCode::ResourceGone);
        assert_eq!(t.channels["stream-0"].checkpoint, "5");
    }

    /// The answer a client reports back for a channel it stops: CLOSE or TERMINATED at the
    /// version it was given plus one, as the Go and Java tunnel workers do.
    fn sdk_report(channel: &pb::Channel, status: pb::ChannelStatus) -> pb::Channel {
        pb::Channel {
            version: channel.version + 1,
            status: status as i32,
            ..channel.clone()
        }
    }

    #[test]
    fn a_channel_closed_at_version_plus_one_moves_to_another_client() {
        let mut t = tunnel(TunnelKind::Stream);
        t.connect("a".into(), "a".into(), 1000, 0);
        t.heartbeat("a", &[], 0).unwrap();
        t.connect("b".into(), "b".into(), 1000, 0);
        let answer = t.heartbeat("a", &[], 1).unwrap();
        let revoked: Vec<pb::Channel> = answer
            .iter()
            .filter(|c| c.status == pb::ChannelStatus::Closing as i32)
            .cloned()
            .collect();
        assert_eq!(revoked.len(), 2);
        let reports: Vec<pb::Channel> = revoked
            .iter()
            .map(|c| sdk_report(c, pb::ChannelStatus::Close))
            .collect();
        t.heartbeat("a", &reports, 2).unwrap();
        let given = t.heartbeat("b", &[], 3).unwrap();
        assert_eq!(held(&given, pb::ChannelStatus::Open).len(), 2);
        for channel in &given {
            let reported = reports
                .iter()
                .find(|r| r.channel_id == channel.channel_id)
                .unwrap();
            assert!(
                channel.version > reported.version,
                "the new owner's version is above the last report, or the SDK ignores it"
            );
        }
    }

    #[test]
    fn a_finished_channel_is_freed_by_a_terminated_report() {
        let mut t = tunnel(TunnelKind::BaseData);
        t.connect("a".into(), "a".into(), 1000, 0);
        let answer = t.heartbeat("a", &[], 0).unwrap();
        t.checkpoint("a", "base-0", FINISH_TAG.into(), 1, 10)
            .unwrap();
        let answer_after = t.heartbeat("a", &answer, 1).unwrap();
        let finished = answer_after
            .iter()
            .find(|c| c.channel_id == "base-0")
            .unwrap();
        assert_eq!(finished.status, pb::ChannelStatus::Closing as i32);
        t.heartbeat(
            "a",
            &[sdk_report(finished, pb::ChannelStatus::Terminated)],
            2,
        )
        .unwrap();
        assert_eq!(t.channels["base-0"].owner, None);
        assert_eq!(t.channels["base-0"].described_status(), "TERMINATED");
        assert_eq!(t.channels["base-0"].rows, 10);
    }

    #[test]
    fn an_older_report_frees_nothing() {
        let mut t = tunnel(TunnelKind::Stream);
        t.connect("a".into(), "a".into(), 1000, 0);
        let answer = t.heartbeat("a", &[], 0).unwrap();
        let stale = pb::Channel {
            version: answer[0].version - 1,
            status: pb::ChannelStatus::Close as i32,
            ..answer[0].clone()
        };
        t.heartbeat("a", &[stale], 1).unwrap();
        assert_eq!(
            t.channels[&answer[0].channel_id].owner.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn schedule_suspends_resumes_and_terminates_channels() {
        let mut t = tunnel(TunnelKind::Stream);
        t.connect("a".into(), "a".into(), 1000, 0);
        let answer = t.heartbeat("a", &[], 0).unwrap();
        let channel = |id: &str, status: pb::ChannelStatus| pb::Channel {
            channel_id: id.into(),
            version: 0,
            status: status as i32,
            detail: None,
        };
        t.schedule(&[channel("stream-0", pb::ChannelStatus::Closing)])
            .unwrap();
        assert_eq!(t.channels["stream-0"].described_status(), "CLOSING");
        let reports: Vec<pb::Channel> = answer
            .iter()
            .filter(|c| c.channel_id == "stream-0")
            .map(|c| sdk_report(c, pb::ChannelStatus::Close))
            .collect();
        let answer = t.heartbeat("a", &reports, 1).unwrap();
        assert!(
            !held(&answer, pb::ChannelStatus::Open).contains(&"stream-0".to_owned()),
            "a suspended channel is handed to nobody"
        );
        assert_eq!(t.channels["stream-0"].described_status(), "CLOSING");
        t.schedule(&[channel("stream-0", pb::ChannelStatus::Open)])
            .unwrap();
        let answer = t.heartbeat("a", &[], 2).unwrap();
        assert!(held(&answer, pb::ChannelStatus::Open).contains(&"stream-0".to_owned()));
        t.schedule(&[channel("stream-1", pb::ChannelStatus::Terminated)])
            .unwrap();
        assert!(t.channels["stream-1"].finished());
        assert!(
            t.schedule(&[channel("nope", pb::ChannelStatus::Open)])
                .is_err()
        );
    }

    #[test]
    fn stream_ranges_are_validated_as_the_service_does() {
        let now_ms = 1_000_000_000;
        let hour_ms = 3_600_000;
        let config =
            |flag: Option<pb::StartOffsetFlag>, start_ms: Option<i64>, end_ms: Option<i64>| {
                pb::StreamTunnelConfig {
                    flag: flag.map(|f| f as i32),
                    start_offset: start_ms.map(|ms| ms as u64 * 1_000_000),
                    end_offset: end_ms.map(|ms| ms as u64 * 1_000_000),
                }
            };
        let check =
            |c: pb::StreamTunnelConfig| StreamRange::from_wire(&c, now_ms, 24 * hour_ms, 300_000);
        assert_eq!(
            check(config(Some(pb::StartOffsetFlag::Earliest), None, None))
                .unwrap()
                .start,
            StreamStart::Earliest
        );
        assert_eq!(
            check(config(None, None, None)).unwrap(),
            StreamRange::default()
        );
        let window = check(config(None, Some(now_ms - hour_ms), Some(now_ms - 1000))).unwrap();
        assert_eq!(
            window.start,
            StreamStart::At((now_ms - hour_ms) as u64 * 1_000_000)
        );
        // A record at the end offset is past it; one a microsecond before is not.
        assert!(window.before_end((now_ms - 1000) * 1000 - 1));
        assert!(!window.before_end((now_ms - 1000) * 1000));
        assert!(!window.ended(now_ms - 1000), "the end settles for a second");
        assert!(window.ended(now_ms));

        for (bad, why) in [
            (config(None, Some(now_ms), None), "now is not in the past"),
            (
                config(None, Some(now_ms - 24 * hour_ms), None),
                "older than expiration less 5 minutes",
            ),
            (
                config(None, Some(now_ms - hour_ms), Some(now_ms - hour_ms)),
                "end not after start",
            ),
            (
                config(None, None, Some(now_ms - 1)),
                "an end before a LATEST start",
            ),
            (
                config(
                    Some(pb::StartOffsetFlag::Earliest),
                    Some(now_ms - hour_ms),
                    None,
                ),
                "both a flag and an offset",
            ),
        ] {
            let error = check(bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::ParameterInvalid, "{why}");
        }
        assert!(check(config(None, Some(now_ms - 24 * hour_ms + 300_000), None)).is_ok());
        assert_eq!(
            check(config(None, None, Some(now_ms + 1))).unwrap().wire(),
            config(Some(pb::StartOffsetFlag::Latest), None, Some(now_ms + 1))
        );
    }

    #[test]
    fn unowned_channels_wait() {
        let t = tunnel(TunnelKind::Stream);
        assert_eq!(t.channels["stream-0"].described_status(), "WAIT");
        assert_eq!(t.stage(), pb::TunnelStage::ProcessStream);
        assert_eq!(
            tunnel(TunnelKind::BaseData).stage(),
            pb::TunnelStage::ProcessBaseData
        );
    }
}
