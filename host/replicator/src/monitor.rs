//! Watches the tunnel with DescribeTunnel: reports its stage and lag, and asks the end-time
//! policy ([`crate::end_time`]) whether a run with an end time, or a BaseData copy, is over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ots_client::Client;

use ots_protocol::pb::tunnel::TunnelType;

use crate::end_time::{EndTracker, copy_finished, end_reached};
use crate::metrics::Metrics;
use crate::pipeline::StopReason;

/// What the monitor watches and where it reports.
pub struct Watch<'a> {
    /// Client of the source instance.
    pub client: Client,
    /// Source table.
    pub table: String,
    /// Tunnel name.
    pub tunnel: String,
    /// What the tunnel delivers.
    pub tunnel_type: TunnelType,
    /// The run's end time, if any.
    pub end_time: Option<DateTime<Utc>>,
    /// Time between DescribeTunnel calls.
    pub interval: Duration,
    /// Where the lag goes.
    pub metrics: Arc<Metrics>,
    /// Channels held at the end time in this process.
    pub ends: Arc<EndTracker>,
    /// This process's client id on the tunnel (replaced when the worker reconnects).
    pub me: &'a Mutex<String>,
}

/// Polls DescribeTunnel every `interval`, updating the lag metric and logging stage changes.
/// Returns once a BaseData tunnel's copy is done ([`copy_finished`]) or, with an end time,
/// once [`end_reached`] holds; otherwise runs until dropped.
pub async fn monitor(watch: Watch<'_>) -> StopReason {
    let Watch {
        client,
        table,
        tunnel,
        tunnel_type,
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
        if let Some(rpo) = description.consume_point_millis() {
            metrics.set_tunnel_lag(Utc::now().timestamp_millis() - rpo);
        }
        if tunnel_type == TunnelType::BaseData && copy_finished(&description) {
            tracing::info!(%tunnel, "every base-data channel is copied");
            return StopReason::Copied;
        }
        let me = me.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(end) = end_time
            && end_reached(&description, end, &ends, &me)
        {
            tracing::info!(%tunnel, end_time = %end, "every channel is past the end time");
            return StopReason::EndTime;
        }
    }
}
