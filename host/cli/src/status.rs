//! `otsrep status`: the tunnel's stage, its channels and how far behind each one is, and —
//! when the config names the replicator's metrics endpoint — what each of its processors did.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

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
    if config.tenants.is_some() {
        match crate::tenants::tenant_table(config).await {
            Ok(table) => print!("{table}"),
            Err(error) => println!("tenants: cannot read the backlog table: {error:#}"),
        }
    }
    if let Some(listen) = config.metrics_listen {
        let url = format!("http://{listen}/metrics");
        match fetch(&url).await {
            Ok(text) => print!("{}", render_processors(&text)),
            Err(error) => println!("processors: no answer from the replicator at {url}: {error:#}"),
        }
    }
    Ok(())
}

async fn fetch(url: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// One processor stage as its `processor_*` metrics describe it.
#[derive(Debug, Default)]
struct Stage {
    name: String,
    counters: BTreeMap<String, String>,
    failures: Vec<String>,
}

/// The processors table of a replicator's metrics text (the `processor_*` families).
fn render_processors(metrics: &str) -> String {
    let mut stages: BTreeMap<(String, u64), Stage> = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("processor_")) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((family, labels)) = series.split_once('{') else {
            continue;
        };
        let labels = parse_labels(labels.trim_end_matches('}'));
        let Some(stage) = labels.get("stage").and_then(|s| s.parse().ok()) else {
            continue;
        };
        let tenant = labels.get("tenant").cloned().unwrap_or_default();
        let entry = stages.entry((tenant, stage)).or_default();
        entry.name = labels.get("processor").cloned().unwrap_or_default();
        match (family, labels.get("kind")) {
            ("processor_failures_total", Some(kind)) => {
                entry.failures.push(format!("{kind} {value}"));
            }
            _ => {
                entry.counters.insert(family.to_owned(), value.to_owned());
            }
        }
    }
    if stages.is_empty() {
        return "processors: the replicator reports none\n".to_owned();
    }
    let mut out = String::new();
    let tenants = stages.keys().any(|(tenant, _)| !tenant.is_empty());
    let _ = writeln!(
        out,
        "{}{:<5} {:<28} {:>9} {:>11} {:>11} {:>8} {:>10}  FAILURES",
        if tenants { "TENANT           " } else { "" },
        "STAGE",
        "PROCESSOR",
        "CALLS",
        "RECORDS IN",
        "CHANGES",
        "SKIPPED",
        "GUEST S"
    );
    for ((tenant, stage), s) in &stages {
        if tenants {
            let _ = write!(out, "{tenant:<16} ");
        }
        let counter = |family: &str| s.counters.get(family).map_or("-", String::as_str);
        let seconds = counter("processor_guest_seconds_total")
            .parse::<f64>()
            .map_or_else(|_| "-".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "{:<5} {:<28} {:>9} {:>11} {:>11} {:>8} {:>10}  {}",
            stage,
            s.name,
            counter("processor_calls_total"),
            counter("processor_records_in_total"),
            counter("processor_records_out_total"),
            counter("processor_records_skipped_total"),
            seconds,
            if s.failures.is_empty() {
                "-".to_owned()
            } else {
                s.failures.join(", ")
            }
        );
    }
    out
}

/// `a="x",b="y \"q\""` as a map, escapes undone.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
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
    fn each_tenant_lists_its_own_stages() {
        let stage =
            |tenant: &str, stage: usize, name: &str| ots_replicator::processor::StageReport {
                tenant: Some(tenant.into()),
                stage,
                name: name.into(),
                stats: Default::default(),
            };
        let stages = [
            stage("acme", 0, "filter"),
            stage("acme", 1, "rename"),
            stage("default", 0, "replicate"),
        ];
        let text = render_processors(&ots_replicator::processor::render_stages(&stages));
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().take(3).collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec!["TENANT", "STAGE", "PROCESSOR"],
                vec!["acme", "0", "filter"],
                vec!["acme", "1", "rename"],
                vec!["default", "0", "replicate"],
            ]
        );
    }

    #[test]
    fn processors_are_listed_by_stage_with_their_failures() {
        let stages = [
            ots_replicator::processor::StageReport {
                tenant: None,
                stage: 0,
                name: "filter".into(),
                stats: Default::default(),
            },
            ots_replicator::processor::StageReport {
                tenant: None,
                stage: 1,
                name: "odd \"name\".wasm".into(),
                stats: ots_replicator::processor::StageSnapshot {
                    calls: 3,
                    records_in: 600,
                    records_out: 598,
                    skipped: 2,
                    guest_time: Duration::from_millis(1500),
                    failures: [("trap", 1), ("deadline", 4)].into_iter().collect(),
                },
            },
        ];
        let metrics = ots_replicator::processor::render_stages(&stages);
        let text = render_processors(&format!("replicator_rows_written_total 5\n{metrics}"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("STAGE"));
        let first: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(first, ["0", "filter", "0", "0", "0", "0", "0.000", "-"]);
        let second: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            second,
            [
                "1",
                "odd",
                "\"name\".wasm",
                "3",
                "600",
                "598",
                "2",
                "1.500",
                "deadline",
                "4,",
                "trap",
                "1"
            ]
        );
        assert_eq!(
            render_processors("replicator_rows_written_total 5\n"),
            "processors: the replicator reports none\n"
        );
    }

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
