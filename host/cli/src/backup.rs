//! `otsrep backup run|list` and `otsrep restore`: continuous backup of the config's source
//! table into a backup store, and point-in-time restore from it into a new table.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ots_backup::metrics::BackupMetrics;
use ots_backup::restore::{RestoreOptions, restore};
use ots_backup::run::{BackupOptions, run};
use ots_backup::{BackupStore, manifest};

use crate::progress::PhaseBars;
use crate::{ConfigArgs, load_config, parse_time_arg, shutdown_signal};

/// The `backup` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Back the config's source table (`ots-reader`) up into a backup store, continuously,
    /// until Ctrl-C or SIGTERM; a later run resumes where it stopped.
    Run(RunArgs),
    /// Show what a backup store holds and the window of instants it can restore.
    List(StoreArgs),
}

/// Where the backup is.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The backup store: a directory (created if missing) or `s3://bucket/prefix`
    /// (credentials, region and endpoint from the `AWS_*` variables).
    #[arg(long)]
    store: String,
}

/// Arguments of `backup run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The Stream tunnel the backup reads the change log from (created by the first run).
    #[arg(long, default_value = "otsrep-backup")]
    tunnel: String,
    /// Time between snapshots (e.g. 24h, 90m): a restore replays at most this much log.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    snapshot_every: Duration,
    /// How far back every instant stays restorable (e.g. 35d).
    #[arg(long, default_value = "35d", value_parser = parse_duration)]
    retention: Duration,
    /// How far before a snapshot's start its replay begins: more than a write takes to commit
    /// plus the clock difference between the service and this machine.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    margin: Duration,
    /// Time between updates of the restorable window (the tunnel's consume point).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    coverage_every: Duration,
    /// Serve Prometheus metrics (backup lag, records, segments) on this address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

/// Arguments of `restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The instant to restore (`yyyy-MM-dd HH:mm:ss` local time, or RFC 3339 with
    /// milliseconds); every write committed up to the end of its millisecond is in.
    #[arg(long, value_parser = parse_time_arg)]
    to: chrono::DateTime<chrono::Utc>,
    /// The table to create, on the config's destination instance (`ots-writer`).
    #[arg(long)]
    table: String,
}

/// Parses `500ms`, `90s`, `10m`, `24h` or `35d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 90s, 10m, 24h or 35d"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (ms, s, m, h or d)"
            ));
        }
    };
    match number.checked_mul(unit_ms) {
        Some(0) => Err(format!("{text:?} must be more than zero")),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(format!("{text:?} is too long")),
    }
}

fn open_store(args: &StoreArgs) -> anyhow::Result<BackupStore> {
    Ok(BackupStore::open(&args.store)?)
}

/// Runs a `backup` subcommand.
pub(crate) async fn backup(command: BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::Run(args) => backup_run(args).await,
        BackupCommand::List(args) => {
            let store = open_store(&args)?;
            let manifest = store.load_manifest().await?;
            print!(
                "{}",
                describe(&manifest, chrono::Utc::now().timestamp_millis())
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn backup_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let store = open_store(&args.store)?;
    let mut options = BackupOptions::new(config.source.clone(), args.tunnel);
    options.enable_stream = config.enable_stream;
    options.snapshot_interval = args.snapshot_every;
    options.retention = args.retention;
    options.margin = args.margin;
    options.coverage_interval = args.coverage_every;
    options.worker.heartbeat_timeout = config.tuning.heartbeat_timeout;
    options.worker.client_tag = config
        .tuning
        .client_tag
        .clone()
        .unwrap_or_else(|| format!("otsrep-backup-{}", std::process::id()));
    let metrics = Arc::new(BackupMetrics::default());
    let metrics_server = match args.metrics_listen {
        Some(listen) => {
            let served = metrics.clone();
            let (addr, task) = ots_replicator::metrics::serve(listen, move || {
                served.render(chrono::Utc::now().timestamp_millis())
            })
            .await
            .with_context(|| format!("serving metrics on {listen}"))?;
            tracing::info!(%addr, "serving Prometheus metrics on /metrics");
            Some(task)
        }
        None => None,
    };
    let summary = run(
        &options,
        store,
        metrics,
        Arc::new(PhaseBars::default()),
        shutdown_signal(),
    )
    .await
    .with_context(|| format!("backing up table {}", config.source.table_name))?;
    if let Some(task) = metrics_server {
        task.abort();
    }
    let c = summary.counts;
    println!(
        "backup stopped: {} change records in {} log segments, {} snapshot rows, {} snapshots finished; restorable {}",
        c.records_logged,
        c.log_segments,
        c.snapshot_rows,
        c.snapshots_finished,
        summary
            .window
            .map_or_else(|| "nothing yet".to_owned(), |w| w.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `restore`.
pub(crate) async fn restore_command(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let store = open_store(&args.store)?;
    let destination = config.destination.client().context("destination client")?;
    let options = RestoreOptions {
        to: args.to,
        table: args.table,
        batch_write_count: config.batch_write_count,
    };
    let summary = restore(&store, &destination, &options, &PhaseBars::default())
        .await
        .with_context(|| format!("restoring {} from {}", options.table, store.name()))?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// What `backup list` prints.
fn describe(manifest: &manifest::Manifest, now_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "backup of table {} (instance {} at {}) through tunnel {}",
        manifest.table, manifest.instance, manifest.endpoint, manifest.tunnel_name
    );
    match manifest.window() {
        Some(window) => {
            let _ = writeln!(
                out,
                "restorable: {window} (the latest is {:.1}s behind now)",
                (now_ms - window.until_ms) as f64 / 1e3
            );
        }
        None => {
            let _ = writeln!(
                out,
                "restorable: nothing yet (the first snapshot has not finished, or the log does not reach past it)"
            );
        }
    }
    let _ = writeln!(out, "snapshots:");
    for s in &manifest.snapshots {
        let _ = writeln!(
            out,
            "  {:>4}  started {}  {}  {} rows in {} segments",
            s.id,
            manifest::ms_text(s.started_us / 1000),
            match s.finished_us {
                Some(f) => format!("finished {}", manifest::ms_text(f / 1000)),
                None => "running".to_owned(),
            },
            s.rows,
            s.segments.len()
        );
    }
    let sealed: u64 = manifest.log_indexes.iter().map(|i| i.segments).sum();
    let tail: u64 = manifest.log.iter().map(|s| s.entries).sum();
    let _ = writeln!(
        out,
        "log: from {}, {} sealed segments in {} indexes, {} open segments holding {} records",
        manifest::ms_text(manifest.log_from_us / 1000),
        sealed,
        manifest.log_indexes.len(),
        manifest.log.len(),
        tail
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("35d"), Ok(Duration::from_secs(35 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
    }
}
