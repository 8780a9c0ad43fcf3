//! `otsrep status`: the tunnel's stage, its channels and how far behind each one is.

use std::fmt::Write as _;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use ots_protocol::pb::tunnel::{ChannelStatus, DescribeTunnelResponse};
use ots_replicator::config::ReplicatorConfig;

/// Describes the config's tunnel and prints a table of its channels.
pub(crate) async fn print_status(config: &ReplicatorConfig) -> anyhow::Result<()> {
    let client = config.source.client().context("source client")?;
    let description = client
        .describe_tunnel(&config.source.table_name, &config.tunnel_name)
        .await
        .with_context(|| {
            format!(
                "describing tunnel {} of table {}",
                config.tunnel_name, config.source.table_name
            )
        })?;
    print!("{}", render_status(&description, Utc::now()));
    Ok(())
}

fn format_time(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| format!("{millis} ms"))
}

fn lag(now: DateTime<Utc>, rpo: Option<i64>) -> String {
    match rpo {
        Some(ms) if ms > 0 => {
            format!(
                "{:.1}s",
                (now.timestamp_millis() - ms).max(0) as f64 / 1000.0
            )
        }
        _ => "-".to_owned(),
    }
}

/// The status text of a DescribeTunnel answer as of `now`.
fn render_status(description: &DescribeTunnelResponse, now: DateTime<Utc>) -> String {
    let tunnel = &description.tunnel;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tunnel {} ({}) on table {}: type {}, stage {}",
        tunnel.tunnel_name.as_deref().unwrap_or("?"),
        tunnel.tunnel_id,
        tunnel.table_name,
        tunnel.tunnel_type,
        tunnel.stage
    );
    match description.consume_point_millis() {
        Some(rpo) => {
            let _ = writeln!(
                out,
                "consume point {} (lag {})",
                format_time(rpo),
                lag(now, Some(rpo))
            );
        }
        _ => {
            let _ = writeln!(out, "consume point: none yet");
        }
    }
    let _ = writeln!(
        out,
        "{:<40} {:<9} {:<10} {:<36} {:>10} {:>9}",
        "CHANNEL", "TYPE", "STATUS", "CLIENT", "LAG", "RECORDS"
    );
    for channel in &description.channels {
        let _ = writeln!(
            out,
            "{:<40} {:<9} {:<10} {:<36} {:>10} {:>9}",
            channel.channel_id,
            channel.channel_type.as_deref().unwrap_or("-"),
            channel.channel_status.as_deref().unwrap_or("-"),
            channel.client_id.as_deref().unwrap_or("-"),
            if channel.status() == Some(ChannelStatus::Terminated) {
                "done".to_owned()
            } else {
                lag(now, channel.consume_point_millis())
            },
            channel
                .channel_count
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::pb::tunnel::{ChannelInfo, NANOS_PER_MILLI, TunnelInfo};

    #[test]
    fn status_shows_stage_channels_and_lag() {
        let now = DateTime::<Utc>::from_timestamp_millis(1_000_000).unwrap();
        let description = DescribeTunnelResponse {
            tunnel: TunnelInfo {
                tunnel_id: "tid".into(),
                tunnel_type: "BaseAndStream".into(),
                table_name: "src".into(),
                instance_name: "local".into(),
                stream_id: "sid".into(),
                stage: "ProcessStream".into(),
                tunnel_name: Some("t1".into()),
                ..Default::default()
            },
            channels: vec![
                ChannelInfo {
                    channel_id: "ch-1".into(),
                    channel_type: Some("Stream".into()),
                    channel_status: Some("OPEN".into()),
                    client_id: Some("c1".into()),
                    channel_rpo: Some(997_500 * NANOS_PER_MILLI),
                    channel_count: Some(42),
                },
                ChannelInfo {
                    channel_id: "ch-2".into(),
                    ..Default::default()
                },
                ChannelInfo {
                    channel_id: "ch-3".into(),
                    channel_status: Some("TERMINATED".into()),
                    channel_rpo: Some(NANOS_PER_MILLI),
                    ..Default::default()
                },
            ],
            tunnel_rpo: Some(997_500 * NANOS_PER_MILLI),
        };
        let text = render_status(&description, now);
        assert!(text.starts_with(
            "tunnel t1 (tid) on table src: type BaseAndStream, stage ProcessStream\n"
        ));
        assert!(text.contains("consume point 1970-01-01 00:16:37.500 UTC (lag 2.5s)"));
        let ch1 = text.lines().find(|l| l.starts_with("ch-1")).unwrap();
        assert!(ch1.contains("Stream") && ch1.contains("OPEN") && ch1.contains("2.5s"));
        assert!(ch1.trim_end().ends_with("42"));
        let ch2 = text.lines().find(|l| l.starts_with("ch-2")).unwrap();
        assert!(ch2.contains(" - "));
        let ch3 = text.lines().find(|l| l.starts_with("ch-3")).unwrap();
        assert!(
            ch3.contains(" done "),
            "a finished channel has no lag: {ch3}"
        );
    }
}
