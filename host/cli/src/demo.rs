//! `otsrep demo`: everything on one machine with no options. Starts the local server in a
//! temporary directory, creates and fills a source table, keeps writing to it while three
//! replications run (the faithful `replicate` guest, a `filter` and a `rename` guest), stops
//! them at an end time, verifies each destination against what its guest should have made of
//! the source, and prints a summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use ots_protocol::model::{PrimaryKeyValue, Row};
use ots_replicator::config::{ProcessorConfig, ProcessorSource};
use ots_replicator::metrics::Metrics;
use ots_replicator::verify::{RowView, VerifyOptions, verify_view};
use ots_testkit::LocalServer;
use ots_testkit::workload::{self, WriteLoad};

/// Arguments of `demo`; every one has a default.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Rows in the source table before replication starts.
    #[arg(long, default_value_t = 20_000)]
    rows: i64,
    /// Seconds of concurrent writes before the end time.
    #[arg(long, default_value_t = 15)]
    write_secs: u64,
    /// Keep the server's data directory here instead of a temporary one.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

/// One replication the demo runs: a processor, where it writes, and what the destination
/// must then hold.
struct Example {
    label: &'static str,
    tunnel: &'static str,
    destination: &'static str,
    description: String,
    processor: ProcessorConfig,
    view: Box<RowView>,
}

/// The demo's replications: the faithful copy, a filter (a key range, one column left out)
/// and a rename (two columns).
fn examples(rows: i64) -> Vec<Example> {
    let half = rows / 2;
    vec![
        Example {
            label: "replicate",
            tunnel: "demo_tunnel",
            destination: "demo_copy",
            description: "exact copy".into(),
            processor: ProcessorConfig::default(),
            view: Box::new(Some),
        },
        Example {
            label: "filter   ",
            tunnel: "demo_filter_tunnel",
            destination: "demo_filtered",
            description: format!("rows with id < {half}, without `blob`"),
            processor: ProcessorConfig {
                source: ProcessorSource::Builtin("filter".into()),
                options: serde_json::json!({
                    "where": [{"column": "id", "less_than": half}],
                    "exclude_columns": ["blob"],
                }),
                ..ProcessorConfig::default()
            },
            view: Box::new(move |mut row: Row| {
                let id = row.primary_key.0.iter().find_map(|k| match k.value {
                    PrimaryKeyValue::Integer(id) if k.name == "id" => Some(id),
                    _ => None,
                })?;
                row.cells.retain(|c| c.name != "blob");
                (id < half).then_some(row)
            }),
        },
        Example {
            label: "rename   ",
            tunnel: "demo_rename_tunnel",
            destination: "demo_renamed",
            description: "`name` as `title`, `score` as `rating`".into(),
            processor: ProcessorConfig {
                source: ProcessorSource::Builtin("rename".into()),
                options: serde_json::json!({"columns": {"name": "title", "score": "rating"}}),
                ..ProcessorConfig::default()
            },
            view: Box::new(|mut row: Row| {
                for cell in &mut row.cells {
                    match cell.name.as_str() {
                        "name" => cell.name = "title".into(),
                        "score" => cell.name = "rating".into(),
                        _ => {}
                    }
                }
                Some(row)
            }),
        },
    ]
}

/// Runs the demo; exits non-zero if a copy does not verify.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let started = Instant::now();
    let server = match &args.data_dir {
        Some(dir) => LocalServer::start_in(dir, Default::default())
            .await
            .context("starting the local server")?,
        None => LocalServer::start().await,
    };
    let url = server.url();
    println!(
        "demo: local Tablestore server at {url} (data in {})",
        server.data_dir().display()
    );

    let source_table = "demo_source";
    let client = server.client();
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

    let mut runs = Vec::new();
    for example in examples(args.rows) {
        let mut config = server.config(
            source_table,
            example.tunnel,
            example.destination,
            example.processor.clone(),
        );
        config.end_time = Some(end_time);
        let metrics = Arc::new(Metrics::default());
        let expected = (example.tunnel == "demo_tunnel").then_some(args.rows as u64);
        let task = tokio::spawn({
            let metrics = metrics.clone();
            async move {
                crate::run_replication(&config, metrics, std::future::pending(), expected).await
            }
        });
        runs.push((example, task));
    }

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

    let mut all_match = true;
    for (example, task) in runs {
        let summary = task.await.context("replication task panicked")??;
        println!("demo: {} processor: {summary}", example.label);
        let report = verify_view(
            &client,
            source_table,
            &client,
            example.destination,
            VerifyOptions::default(),
            &*example.view,
        )
        .await?;
        println!(
            "demo: {} ({}) vs {source_table}: {}",
            example.destination,
            example.description,
            report.to_string().trim_end()
        );
        all_match &= report.is_match();
    }
    server.shutdown().await;
    println!(
        "demo: {} in {:.1}s",
        if all_match {
            "every copy verified"
        } else {
            "A COPY DIFFERS"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(if all_match {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    })
}
