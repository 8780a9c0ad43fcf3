//! Watches the tunnel with DescribeTunnel: reports its stage and lag, and decides when a run
//! with an end time is over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ots_client::Client;
use ots_protocol::pb::tunnel::{ChannelInfo, DescribeTunnelResponse};

use crate::apply::EndTracker;
use crate::metrics::Metrics;

/// Tunnel stages during which the full copy (base data) is still running.
const BASE_STAGES: [&str; 2] = ["InitBaseDataAndStreamShard", "ProcessBaseData"];

/// Whether this process is done with `end`. Every unfinished stream channel must be past it:
/// its consume point is after the end time, or a processor of this process met a record
/// committed after it (a held channel: everything before the end is applied, but only the
/// holder knows, since the batch that crossed the end is not checkpointed).
///
/// A channel another worker (`client_id` differs from `me`) owns also counts once this process
/// holds a channel of its own: otherwise two processes each holding a channel would wait for
/// each other forever. When this one leaves, its held channels move to the other, which
/// re-applies them up to the end and stops too. False while the full copy runs or before any
/// stream channel exists.
pub fn end_reached(
    description: &DescribeTunnelResponse,
    end: DateTime<Utc>,
    ends: &EndTracker,
    me: &str,
) -> bool {
    if BASE_STAGES.contains(&description.tunnel.stage.as_str()) {
        return false;
    }
    let end_millis = end.timestamp_millis();
    let unfinished: Vec<_> = description
        .channels
        .iter()
        .filter(|c| c.channel_type.as_deref() != Some("BaseData"))
        // A CLOSE channel is only unowned for now; it still has to be consumed.
        .filter(|c| c.channel_status.as_deref() != Some("TERMINATED"))
        .collect();
    if unfinished.is_empty() {
        return false;
    }
    let past = |c: &&ChannelInfo| {
        c.channel_rpo.is_some_and(|rpo| rpo > end_millis) || ends.has_reached(&c.channel_id)
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

/// What the monitor watches and where it reports.
pub struct Watch {
    /// Client of the source instance.
    pub client: Client,
    /// Source table.
    pub table: String,
    /// Tunnel name.
    pub tunnel: String,
    /// The run's end time, if any.
    pub end_time: Option<DateTime<Utc>>,
    /// Time between DescribeTunnel calls.
    pub interval: Duration,
    /// Where the lag goes.
    pub metrics: Arc<Metrics>,
    /// Channels held at the end time in this process.
    pub ends: Arc<EndTracker>,
    /// This process's client id on the tunnel (replaced when the worker reconnects).
    pub me: Arc<Mutex<String>>,
}

/// Polls DescribeTunnel every `interval`, updating the lag metric and logging stage changes.
/// With an end time, returns once [`end_reached`] holds; without one, runs until dropped.
pub async fn monitor(watch: Watch) {
    let Watch {
        client,
        table,
        tunnel,
        end_time,
        interval,
        metrics,
        ends,
        me,
    } = watch;
    let mut stage = String::new();
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let description = match client.describe_tunnel(&table, &tunnel).await {
            Ok(description) => description,
            Err(error) => {
                tracing::warn!(%table, %tunnel, %error, "DescribeTunnel failed; will retry");
                continue;
            }
        };
        if description.tunnel.stage != stage {
            stage.clone_from(&description.tunnel.stage);
            tracing::info!(%tunnel, %stage, channels = description.channels.len(), "tunnel stage");
        }
        if let Some(rpo) = description.tunnel_rpo.filter(|&r| r > 0) {
            metrics.set_tunnel_lag(Utc::now().timestamp_millis() - rpo);
        }
        let me = me.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(end) = end_time
            && end_reached(&description, end, &ends, &me)
        {
            tracing::info!(%tunnel, end_time = %end, "every channel is past the end time");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::pb::tunnel::{ChannelInfo, TunnelInfo};

    fn channel(id: &str, kind: &str, status: &str, rpo: Option<i64>) -> ChannelInfo {
        ChannelInfo {
            channel_id: id.into(),
            channel_type: Some(kind.into()),
            channel_status: Some(status.into()),
            client_id: (status == "OPEN").then(|| "me".into()),
            channel_rpo: rpo,
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
                channel("c", "Stream", "CLOSE", Some(2000)),
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
        stream.channels[0].channel_rpo = Some(1000);
        assert!(
            !end_reached(&stream, end, &ends, "me"),
            "a consume point at the end is not past it"
        );
        stream.channels[0].channel_rpo = Some(1001);
        stream.channels[3].channel_rpo = Some(900);
        assert!(
            !end_reached(&stream, end, &ends, "me"),
            "an unowned (CLOSE) channel still counts"
        );
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
        unowned.channels[1].channel_status = Some("CLOSE".into());
        assert!(
            !end_reached(&unowned, end, &ends, "me"),
            "an unowned channel needs this process"
        );
    }
}
