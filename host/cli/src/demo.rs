//! `otsrep demo`: everything on one machine with no options. Starts the local server in a
//! temporary directory, creates and fills a source table, keeps writing to it while two
//! replications run (the faithful `replicate` guest, and a `filter` guest), stops them at an
//! end time, verifies the copy and prints a summary.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use ots_protocol::auth::Credentials;
use ots_replicator::config::{
    ProcessorConfig, ProcessorSource, ReplicatorConfig, TableEndpoint, Tuning,
};
use ots_replicator::metrics::Metrics;
use ots_replicator::verify::{VerifyOptions, VerifyReport, verify};

use crate::workload::{self, WriteLoad};

/// Instance name of the local server (demo and `serve`).
pub const INSTANCE: &str = "local";
/// Access key id of the local server (demo and `serve`).
pub const ACCESS_ID: &str = "otsrep-local-id";
/// Access key secret of the local server (demo and `serve`).
pub const ACCESS_KEY: &str = "otsrep-local-secret";

/// Arguments of `demo`; every one has a default.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Rows in the source table before replication starts.
    #[arg(long, default_value_t = 20_000)]
    pub rows: i64,
    /// Seconds of concurrent writes before the end time.
    #[arg(long, default_value_t = 15)]
    pub write_secs: u64,
    /// Keep the server's data directory here instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

fn endpoint(url: &str, table: &str) -> TableEndpoint {
    TableEndpoint {
        endpoint: url.to_owned(),
        instance_name: INSTANCE.to_owned(),
        table_name: table.to_owned(),
        credentials: Credentials {
            access_key_id: ACCESS_ID.to_owned(),
            access_key_secret: ACCESS_KEY.to_owned(),
            security_token: None,
        },
    }
}

/// A config replicating `source` into `destination` on the local server at `url`.
pub fn local_config(
    url: &str,
    source: &str,
    tunnel: &str,
    destination: &str,
    processor: ProcessorConfig,
) -> ReplicatorConfig {
    ReplicatorConfig {
        source: endpoint(url, source),
        tunnel_name: tunnel.to_owned(),
        end_time: None,
        destination: endpoint(url, destination),
        batch_write_count: 200,
        processor,
        metrics_listen: None,
        tuning: Tuning {
            monitor_interval: Duration::from_secs(1),
            ..Tuning::default()
        },
    }
}

/// Verification output: totals, then each differing range.
pub fn describe_report(report: &VerifyReport) -> String {
    let mut out = String::new();
    let differing: Vec<_> = report.differing().collect();
    let _ = writeln!(
        out,
        "verify: {} ranges, source {} rows, destination {} rows, {} differing range(s)",
        report.ranges.len(),
        report.source_rows(),
        report.destination_rows(),
        differing.len()
    );
    for range in differing {
        let _ = writeln!(out, "  differs: {range}");
    }
    out
}

/// Runs the demo; exits non-zero if the copy does not verify.
pub async fn run(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let started = Instant::now();
    let temp = tempfile::tempdir().context("creating a temporary data directory")?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    let server = ots_local_server::start(ots_local_server::ServerConfig {
        data_dir: data_dir.clone(),
        listen: "127.0.0.1:0".parse().context("listen address")?,
        instance_name: INSTANCE.to_owned(),
        access_keys: vec![(ACCESS_ID.to_owned(), ACCESS_KEY.to_owned())],
        faults: Default::default(),
    })
    .await
    .context("starting the local server")?;
    let url = server.endpoint();
    println!(
        "demo: local Tablestore server at {url} (data in {})",
        data_dir.display()
    );

    let source_table = "demo_source";
    let config = local_config(
        &url,
        source_table,
        "demo_tunnel",
        "demo_copy",
        ProcessorConfig::default(),
    );
    let client = config.source.client().context("local client")?;
    workload::create_source_table(&client, source_table).await?;
    let fill_started = Instant::now();
    workload::fill(&client, source_table, args.rows, 4, |_| {}).await?;
    println!(
        "demo: filled {source_table} with {} rows in {:.1}s",
        args.rows,
        fill_started.elapsed().as_secs_f64()
    );

    let load = WriteLoad::start(
        client.clone(),
        source_table.to_owned(),
        args.rows + args.rows / 10,
        50,
        Duration::from_millis(100),
    );
    let end_time = chrono::Utc::now() + chrono::Duration::seconds(args.write_secs as i64);
    println!(
        "demo: writing to {source_table} continuously; replicating until {} (in {}s)",
        end_time.format("%Y-%m-%d %H:%M:%S UTC"),
        args.write_secs
    );

    let mut copy = config;
    copy.end_time = Some(end_time);
    let mut filtered = local_config(
        &url,
        source_table,
        "demo_filter_tunnel",
        "demo_filtered",
        ProcessorConfig {
            source: ProcessorSource::Builtin("filter".into()),
            options: crate::guests::demo_filter_options(),
            guest_dir: None,
        },
    );
    filtered.end_time = Some(end_time);

    let copy_metrics = Arc::new(Metrics::default());
    let filtered_metrics = Arc::new(Metrics::default());
    let expected = Some(args.rows as u64);
    let copy_run = tokio::spawn({
        let metrics = copy_metrics.clone();
        async move { crate::run_replication(&copy, metrics, std::future::pending(), expected).await }
    });
    let filtered_run = tokio::spawn({
        let metrics = filtered_metrics.clone();
        async move { crate::run_replication(&filtered, metrics, std::future::pending(), None).await }
    });

    // Stop writing just before the end time, then give every channel a record past it
    // (a row written and deleted again, so the table's contents stay as of the end time).
    let until_end = (end_time - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_end.saturating_sub(Duration::from_millis(500))).await;
    let written = load.stop().await?;
    tokio::time::sleep(
        (end_time - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100),
    )
    .await;
    let markers: Vec<i64> = (1..=16).map(|i| -i).collect();
    workload::touch_and_remove(&client, source_table, &markers).await?;
    crate::progress::say(&format!(
        "demo: stopped the write load after {written} changes"
    ));

    let copy_summary = copy_run.await.context("replication task panicked")??;
    println!("demo: replicate processor: {copy_summary}");
    // The filter example is shown, not checked: its outcome depends on the guest's options.
    match filtered_run.await.context("replication task panicked")? {
        Ok(summary) => println!("demo: filter processor:    {summary}"),
        Err(error) => println!("demo: filter processor:    not run: {error:#}"),
    }

    let report = verify(
        &client,
        source_table,
        &client,
        "demo_copy",
        VerifyOptions::default(),
    )
    .await?;
    print!("{}", describe_report(&report));
    if filtered_metrics.snapshot().rows_written > 0 {
        let filtered_rows = verify(
            &client,
            source_table,
            &client,
            "demo_filtered",
            VerifyOptions::default(),
        )
        .await?
        .destination_rows();
        println!(
            "demo: demo_filtered holds {filtered_rows} of {} rows ({})",
            report.source_rows(),
            crate::guests::DEMO_FILTER_DESCRIPTION
        );
    }
    server.shutdown().await;
    println!(
        "demo: {} in {:.1}s",
        if report.is_match() {
            "copy verified"
        } else {
            "COPY DIFFERS"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(if report.is_match() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    })
}
