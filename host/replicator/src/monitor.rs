//! Watches the tunnel with DescribeTunnel: reports its stage and lag, and decides when a run
//! with an end time is over.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ots_client::Client;
use ots_protocol::pb::tunnel::DescribeTunnelResponse;

use crate::apply::EndTracker;
use crate::metrics::Metrics;

/// Tunnel stages during which the full copy (base data) is still running.
const BASE_STAGES: [&str; 2] = ["InitBaseDataAndStreamShard", "ProcessBaseData"];

/// Whether every unfinished stream channel of the tunnel is past `end`: its consume point is after
/// the end time, or a processor of this process met a record committed after it. False while
/// the full copy runs or before any stream channel exists.
pub fn end_reached(
    description: &DescribeTunnelResponse,
    end: DateTime<Utc>,
    ends: &EndTracker,
) -> bool {
    if BASE_STAGES.contains(&description.tunnel.stage.as_str()) {
        return false;
    }
    let end_millis = end.timestamp_millis();
    let mut stream_channels = description
        .channels
        .iter()
        .filter(|c| c.channel_type.as_deref() != Some("BaseData"))
        // A CLOSE channel is only unowned for now; it still has to be consumed.
        .filter(|c| c.channel_status.as_deref() != Some("TERMINATED"))
        .peekable();
    if stream_channels.peek().is_none() {
        return false;
    }
    stream_channels.all(|c| {
        c.channel_rpo.is_some_and(|rpo| rpo > end_millis) || ends.has_reached(&c.channel_id)
    })
}

/// Polls DescribeTunnel every `interval`, updating the lag metric and logging stage changes.
/// With an end time, returns once [`end_reached`] holds; without one, runs until dropped.
pub async fn monitor(
    client: Client,
    table: String,
    tunnel: String,
    end_time: Option<DateTime<Utc>>,
    interval: Duration,
    metrics: Arc<Metrics>,
    ends: Arc<EndTracker>,
) {
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
        if let Some(end) = end_time
            && end_reached(&description, end, &ends)
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
            client_id: None,
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
            !end_reached(&base, end, &ends),
            "the full copy is still running"
        );
        assert!(!end_reached(&tunnel("ProcessStream", vec![]), end, &ends));

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
        assert!(!end_reached(&stream, end, &ends), "channel b is behind");
        ends.mark("b");
        assert!(
            end_reached(&stream, end, &ends),
            "b met a record after the end"
        );
        stream.channels[0].channel_rpo = Some(1000);
        assert!(
            !end_reached(&stream, end, &ends),
            "a consume point at the end is not past it"
        );
    }
}
