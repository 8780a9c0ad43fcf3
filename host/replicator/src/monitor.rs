//! Watches the tunnel with DescribeTunnel: reports its stage and lag, and asks the end-time
//! policy ([`crate::end_time`]) whether a run with an end time is over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ots_client::Client;

use crate::end_time::{EndTracker, end_reached};
use crate::metrics::Metrics;

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
        if let Some(rpo) = description.consume_point_millis() {
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
