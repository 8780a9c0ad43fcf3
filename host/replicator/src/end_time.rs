//! The end-time policy, in one place: a batch is cut at the first record committed after the
//! end time, the channel that met it is held (not checkpointed past it), and the run is over
//! once every live stream channel is past the end. Pure functions and a small shared set; the
//! applier and the monitor call them.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ots_protocol::pb::tunnel::{ChannelInfo, ChannelStatus, ChannelType, DescribeTunnelResponse};
use ots_protocol::record::TunnelRecord;

/// How many leading records of `records` were committed at or before `end_time`. Records
/// without a commit time (the base data) always count.
pub fn records_before(records: &[TunnelRecord], end_time: Option<DateTime<Utc>>) -> usize {
    let Some(end) = end_time else {
        return records.len();
    };
    let end_micros = end.timestamp_micros();
    records
        .iter()
        .position(|r| r.sequence_info.is_some_and(|s| s.timestamp > end_micros))
        .unwrap_or(records.len())
}

/// The channels that met a record committed after the end time, shared by the applier and
/// the monitor of one process.
#[derive(Debug, Default)]
pub struct EndTracker {
    reached: Mutex<BTreeSet<String>>,
}

impl EndTracker {
    /// Notes that `channel` reached the end time.
    pub fn mark(&self, channel: &str) {
        if let Ok(mut reached) = self.reached.lock() {
            reached.insert(channel.to_owned());
        }
    }

    /// Whether `channel` reached the end time in this process.
    pub fn has_reached(&self, channel: &str) -> bool {
        self.reached
            .lock()
            .map(|r| r.contains(channel))
            .unwrap_or(false)
    }
}

/// Whether a BaseData tunnel's copy is done: it has channels and every one terminated.
pub fn copy_finished(description: &DescribeTunnelResponse) -> bool {
    !description.channels.is_empty()
        && description
            .channels
            .iter()
            .all(|c| c.status() == Some(ChannelStatus::Terminated))
}

/// Whether this process is done with `end`. Every unfinished stream channel must be past it:
/// its consume point is after the end time, or an applier of this process met a record
/// committed after it (a held channel: everything before the end is applied, but only the
/// holder knows, since the batch that crossed the end is not checkpointed).
///
/// A channel another worker (`client_id` differs from `me`) owns also counts once this process
/// holds a channel of its own: otherwise two processes each holding a channel would wait for
/// each other forever. When this one leaves, its held channels move to the other, which
/// re-applies them up to the end and stops too. True once every stream channel terminated
/// (the tunnel's end offset ends them); false while the full copy runs or before any stream
/// channel exists.
pub fn end_reached(
    description: &DescribeTunnelResponse,
    end: DateTime<Utc>,
    ends: &EndTracker,
    me: &str,
) -> bool {
    if description
        .tunnel
        .stage()
        .is_some_and(|stage| stage.copies_base_data())
    {
        return false;
    }
    let end_millis = end.timestamp_millis();
    let unfinished: Vec<_> = description
        .channels
        .iter()
        .filter(|c| c.kind() != Some(ChannelType::BaseData))
        // A WAIT (or CLOSE) channel is only unowned for now; it still has to be consumed.
        .filter(|c| c.status() != Some(ChannelStatus::Terminated))
        .collect();
    if unfinished.is_empty() {
        // Every stream channel terminated: the tunnel's end offset ended them.
        return description
            .channels
            .iter()
            .any(|c| c.kind() != Some(ChannelType::BaseData));
    }
    let past = |c: &&ChannelInfo| {
        c.consume_point_millis().is_some_and(|ms| ms > end_millis)
            || ends.has_reached(&c.channel_id)
    };
    fn owner(c: &ChannelInfo) -> Option<&str> {
        c.client_id.as_deref().filter(|id| !id.is_empty())
    }
    let holding = unfinished
        .iter()
        .any(|c| owner(c) == Some(me) && ends.has_reached(&c.channel_id));
    unfinished
        .iter()
        .all(|c| past(c) || (holding && owner(c).is_some_and(|id| id != me)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange};
    use ots_protocol::pb::tunnel::{NANOS_PER_MILLI, TunnelInfo};
    use ots_protocol::plainbuffer::SequenceInfo;

    fn record(commit_micros: Option<i64>) -> TunnelRecord {
        TunnelRecord {
            change: RowChange::Delete {
                primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::Integer(1),
                }]),
            },
            sequence_info: commit_micros.map(|timestamp| SequenceInfo {
                epoch: 0,
                timestamp,
                row_index: 0,
            }),
        }
    }

    #[test]
    fn records_after_the_end_time_are_cut_off() {
        let end = DateTime::<Utc>::from_timestamp_micros(2_000_000).unwrap();
        let records = vec![
            record(None),
            record(Some(1_000_000)),
            record(Some(2_000_000)),
            record(Some(2_000_001)),
            record(Some(1_500_000)),
        ];
        assert_eq!(
            records_before(&records, Some(end)),
            3,
            "the record at the end time is kept"
        );
        assert_eq!(records_before(&records, None), 5);
        assert_eq!(records_before(&records[3..], Some(end)), 0);
        assert_eq!(
            records_before(&[record(None)], Some(end)),
            1,
            "base data has no commit time"
        );
    }

    #[test]
    fn the_tracker_remembers_channels() {
        let tracker = EndTracker::default();
        tracker.mark("a");
        assert!(tracker.has_reached("a"));
        assert!(!tracker.has_reached("b"));
    }

    /// A channel with its consume point in ms (the wire carries ns).
    fn channel(id: &str, kind: &str, status: &str, rpo_ms: Option<i64>) -> ChannelInfo {
        ChannelInfo {
            channel_id: id.into(),
            channel_type: Some(kind.into()),
            channel_status: Some(status.into()),
            client_id: (status == "OPEN").then(|| "me".into()),
            channel_rpo: rpo_ms.map(|ms| ms * NANOS_PER_MILLI),
            channel_count: None,
        }
    }

    fn tunnel(stage: &str, channels: Vec<ChannelInfo>) -> DescribeTunnelResponse {
        DescribeTunnelResponse {
            tunnel: TunnelInfo {
                stage: stage.into(),
                ..Default::default()
            },
            channels,
            tunnel_rpo: None,
        }
    }

    #[test]
    fn the_end_needs_every_live_stream_channel_past_it() {
        let end = DateTime::<Utc>::from_timestamp_millis(1000).unwrap();
        let ends = EndTracker::default();
        let base = tunnel(
            "ProcessBaseData",
            vec![channel("a", "Stream", "OPEN", Some(5000))],
        );
        assert!(
            !end_reached(&base, end, &ends, "me"),
            "the full copy is still running"
        );
        assert!(!end_reached(
            &tunnel("ProcessStream", vec![]),
            end,
            &ends,
            "me"
        ));

        let mut stream = tunnel(
            "ProcessStream",
            vec![
                channel("a", "Stream", "OPEN", Some(1001)),
                channel("b", "Stream", "OPEN", Some(900)),
                channel("old", "Stream", "TERMINATED", Some(10)),
                channel("c", "Stream", "WAIT", Some(2000)),
                channel("base", "BaseData", "OPEN", None),
            ],
        );
        assert!(
            !end_reached(&stream, end, &ends, "me"),
            "channel b is behind"
        );
        ends.mark("b");
        assert!(
            end_reached(&stream, end, &ends, "me"),
            "b met a record after the end"
        );
        stream.channels[0].channel_rpo = Some(1000 * NANOS_PER_MILLI);
        assert!(
            !end_reached(&stream, end, &ends, "me"),
            "a consume point at the end is not past it"
        );
        stream.channels[0].channel_rpo = Some(1001 * NANOS_PER_MILLI);
        stream.channels[3].channel_rpo = Some(900 * NANOS_PER_MILLI);
        assert!(
            !end_reached(&stream, end, &ends, "me"),
            "an unowned (WAIT) channel still counts"
        );
    }

    #[test]
    fn terminated_channels_end_the_run() {
        let end = DateTime::<Utc>::from_timestamp_millis(1000).unwrap();
        let ends = EndTracker::default();
        let ended = tunnel(
            "ProcessStream",
            vec![
                channel("a", "Stream", "TERMINATED", Some(900)),
                channel("b", "Stream", "TERMINATED", Some(10)),
            ],
        );
        assert!(
            end_reached(&ended, end, &ends, "me"),
            "the tunnel's end offset terminated every stream channel"
        );
        let copying = tunnel(
            "ProcessBaseData",
            vec![
                channel("base-0", "BaseData", "TERMINATED", None),
                channel("base-1", "BaseData", "OPEN", None),
            ],
        );
        assert!(!copy_finished(&copying));
        let mut copied = copying.clone();
        copied.channels[1].channel_status = Some("TERMINATED".into());
        assert!(copy_finished(&copied));
        assert!(!copy_finished(&tunnel("ProcessBaseData", vec![])));
    }

    #[test]
    fn two_holders_do_not_wait_for_each_other() {
        let end = DateTime::<Utc>::from_timestamp_millis(1000).unwrap();
        let mut mine = channel("x", "Stream", "OPEN", Some(900));
        mine.client_id = Some("me".into());
        let mut theirs = channel("y", "Stream", "OPEN", Some(900));
        theirs.client_id = Some("other".into());
        let described = tunnel("ProcessStream", vec![mine, theirs]);
        let ends = EndTracker::default();
        assert!(
            !end_reached(&described, end, &ends, "me"),
            "before holding anything, another owner's channel is not enough"
        );
        ends.mark("x");
        assert!(
            end_reached(&described, end, &ends, "me"),
            "holding x, the other owner will take x over and finish both"
        );
        let mut unowned = described.clone();
        unowned.channels[1].client_id = None;
        unowned.channels[1].channel_status = Some("WAIT".into());
        assert!(
            !end_reached(&unowned, end, &ends, "me"),
            "an unowned channel needs this process"
        );
    }
}
