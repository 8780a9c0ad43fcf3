//! `full-copy`: fills a source table, then copies it into one destination table per variant —
//! the replicator with the `replicate` wasm guest, the same pipeline with a native passthrough
//! processor or with the Python or JavaScript guest, and the official Python SDK's GetRange +
//! BatchWriteRow copy — timing each and verifying each destination against the source.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ots_client::Client;
use ots_replicator::config::ProcessorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::processor::{Processor, load as load_processor};
use ots_replicator::verify::{VerifyOptions, verify};
use ots_testkit::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE, ServerProcess, local_config};

use crate::processor::{NativePassthrough, Timed};
use crate::server::{CpuMark, start_server};
use crate::table;

const SOURCE: &str = "bench_source";

/// Arguments of `full-copy`.
#[derive(Debug, Args)]
pub struct FullCopyArgs {
    /// Rows in the source table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// Variants to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "wasm,native,python"
    )]
    variants: Vec<Variant>,
    /// Worker processes of the Python copy (each copies one slice of the key range).
    #[arg(long, default_value_t = 2)]
    python_workers: usize,
    /// The Python interpreter with the `tablestore` SDK.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Concurrent writers filling the source table.
    #[arg(long, default_value_t = 4)]
    fill_parallel: usize,
    /// Compare only row counts, also for the first copy of each variant (repeats are always
    /// counted only).
    #[arg(long)]
    count_only: bool,
    /// Keep the server's database here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The replicator's memory budget (`replicator.memoryBudgetMb`), MiB.
    #[arg(long)]
    memory_budget_mb: Option<usize>,
}

/// One way of copying the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Variant {
    /// The replicator with the built-in `replicate` wasm guest (what `otsrep` runs).
    Wasm,
    /// The replicator with a native passthrough processor (no sandbox).
    Native,
    /// `benchmarks/datax_copy.py`: GetRange + BatchWriteRow with the official Python SDK.
    Python,
    /// The replicator with the Python guest `mask`, reading every column and keeping every row
    /// (it masks a column the table lacks). `cargo xtask build-py-js-guests` builds it.
    PyGuest,
    /// The replicator with the JavaScript guest `compute`, reading every column and keeping
    /// every row (its expression reads a column the table lacks).
    JsGuest,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Wasm => "replicator + replicate wasm guest",
            Self::Native => "replicator + native passthrough",
            Self::Python => "Python SDK GetRange + BatchWriteRow",
            Self::PyGuest => "replicator + mask Python guest",
            Self::JsGuest => "replicator + compute JavaScript guest",
        }
    }

    /// The destination table of copy number `run`.
    fn destination(self, run: usize) -> String {
        let name = match self {
            Self::Wasm => "wasm",
            Self::Native => "native",
            Self::Python => "python",
            Self::PyGuest => "py_guest",
            Self::JsGuest => "js_guest",
        };
        format!("bench_copy_{name}_{run}")
    }
}

/// A Python or JavaScript guest from `guest-processors/target/components`.
fn py_js_guest(file: &str, options: serde_json::Value) -> anyhow::Result<Arc<dyn Processor>> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-processors/target/components");
    let config = ProcessorConfig {
        source: ots_replicator::config::ProcessorSource::File(file.into()),
        guest_dir: Some(dir),
        options,
        ..ProcessorConfig::default()
    };
    let guest = load_processor(&config, SOURCE)
        .with_context(|| format!("loading {file} (built by `cargo xtask build-py-js-guests`)"))?;
    Ok(guest)
}

/// What one variant measured.
struct Outcome {
    variant: Variant,
    destination: String,
    elapsed: Duration,
    /// CPU seconds of the copier (this process, or the Python processes) and of the server.
    copier_cpu: f64,
    server_cpu: f64,
    /// Replicator only: time in the processor, summed BatchWriteRow latency, batches, channels.
    stages: Option<Stages>,
    verified: String,
}

struct Stages {
    processor: Duration,
    processor_calls: u64,
    write: Duration,
    batches: u64,
    channels: usize,
    /// The most this process held (its peak RSS) during the copy, MiB.
    peak_rss_mib: Option<f64>,
}

/// Runs the benchmark and prints a results table.
pub async fn run(args: FullCopyArgs) -> anyhow::Result<()> {
    let (_temp, server) = start_server(args.data_dir.as_deref()).await?;
    let client = local_config(server.url(), SOURCE, "", "", ProcessorConfig::default())
        .source
        .client()?;

    ots_testkit::workload::create_source_table(&client, SOURCE).await?;
    let started = Instant::now();
    let cpu = CpuMark::now(&server);
    table::fill(&client, SOURCE, args.rows, args.fill_parallel).await?;
    let fill = started.elapsed();
    let (own, srv) = cpu.since(&server);
    println!(
        "fill: {} rows in {:.1}s = {:.0} rows/s (cpu: writer {own:.1}s, server {srv:.1}s)",
        args.rows,
        fill.as_secs_f64(),
        args.rows as f64 / fill.as_secs_f64()
    );

    let mut outcomes: Vec<Outcome> = Vec::new();
    for (run, &variant) in args.variants.iter().enumerate() {
        let destination = variant.destination(run);
        let mut outcome = match variant {
            Variant::Wasm | Variant::Native | Variant::PyGuest | Variant::JsGuest => {
                replicate(&server, variant, &destination, &args).await?
            }
            Variant::Python => python_copy(&server, &client, &destination, &args).await?,
        };
        let repeat = outcomes.iter().any(|o| o.variant == variant);
        let started = Instant::now();
        outcome.verified = check(&client, &destination, args.rows, args.count_only || repeat)
            .await
            .with_context(|| format!("verifying {destination}"))?;
        println!(
            "{} -> {destination}: {:.0} rows/s; {} ({:.1}s)",
            variant.name(),
            args.rows as f64 / outcome.elapsed.as_secs_f64(),
            outcome.verified,
            started.elapsed().as_secs_f64()
        );
        outcomes.push(outcome);
    }
    print_results(&outcomes, args.rows, args.python_workers);
    drop(server);
    Ok(())
}

/// Copies the source with the replicator; timed until every base row is written.
async fn replicate(
    server: &ServerProcess,
    variant: Variant,
    destination: &str,
    args: &FullCopyArgs,
) -> anyhow::Result<Outcome> {
    let rows = args.rows;
    let inner: Arc<dyn Processor> = match variant {
        Variant::Wasm => load_processor(&ProcessorConfig::default(), SOURCE)?,
        Variant::PyGuest => py_js_guest("mask.wasm", serde_json::json!({"columns": ["absent"]}))?,
        Variant::JsGuest => py_js_guest(
            "compute.wasm",
            serde_json::json!({"columns": {"c": "absent * 2n"}}),
        )?,
        _ => Arc::new(NativePassthrough),
    };
    let timed = Arc::new(Timed::new(inner, None));
    let tunnel = format!("{destination}_tunnel");
    let mut config = local_config(
        server.url(),
        SOURCE,
        &tunnel,
        destination,
        ProcessorConfig::default(),
    );
    if let Some(mb) = args.memory_budget_mb {
        config.tuning.memory_budget = mb << 20;
    }
    let metrics = Arc::new(Metrics::default());
    reset_peak_rss();
    let done = Arc::new(OnceLock::new());
    let started = Instant::now();
    let cpu = CpuMark::now(server);
    let all_written = {
        let (metrics, done) = (metrics.clone(), done.clone());
        async move {
            while metrics.snapshot().base_records_applied < rows as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = done.set((started.elapsed(), CpuMark::now(server)));
        }
    };
    let summary =
        ots_replicator::pipeline::replicate(&config, timed.clone(), metrics.clone(), all_written)
            .await?;
    let (elapsed, at_end) = *done.get().context("the copy stopped before every row")?;
    let (copier_cpu, server_cpu) = cpu.between(&at_end);
    let (processor, processor_calls) = timed.spent();
    let channels = config
        .source
        .client()?
        .describe_tunnel(SOURCE, &tunnel)
        .await?
        .channels
        .len();
    println!("{}: {summary}", variant.name());
    Ok(Outcome {
        variant,
        destination: destination.to_owned(),
        elapsed,
        copier_cpu,
        server_cpu,
        stages: Some(Stages {
            processor,
            processor_calls,
            write: Duration::from_secs_f64(batch_latency_sum(&metrics)),
            batches: summary.metrics.batches_written,
            channels,
            peak_rss_mib: peak_rss_mib(),
        }),
        verified: String::new(),
    })
}

/// Starts this process's peak RSS afresh from what it holds now (Linux: `clear_refs` 5).
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak RSS ({e}); it covers the whole run");
    }
}

/// This process's peak RSS (`VmHWM`) in MiB, where /proc tells it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: f64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// The summed BatchWriteRow latency (seconds) from the Prometheus rendering of `metrics`.
fn batch_latency_sum(metrics: &Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("replicator_batch_latency_seconds_sum "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs `datax_copy.py` into its own destination (created like the replicator creates one).
async fn python_copy(
    server: &ServerProcess,
    client: &Client,
    destination: &str,
    args: &FullCopyArgs,
) -> anyhow::Result<Outcome> {
    ots_replicator::setup::ensure_destination_table(client, SOURCE, client, destination).await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/datax_copy.py");
    let cpu = CpuMark::now(server);
    let output = tokio::process::Command::new(&args.python)
        .args([
            script,
            server.url(),
            ACCESS_KEY_ID,
            ACCESS_KEY_SECRET,
            INSTANCE,
            SOURCE,
            destination,
        ])
        .args(["--rows", &args.rows.to_string()])
        .args(["--workers", &args.python_workers.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running the Python copy (scripts/setup.sh installs the tablestore SDK)")?;
    let (_, server_cpu) = cpu.since(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "the Python copy failed: {stdout}");
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("the Python copy printed no JSON report: {stdout}"))?;
    let number = |key: &str| report[key].as_f64().unwrap_or(0.0);
    anyhow::ensure!(
        number("rows") as i64 == args.rows,
        "the Python copy copied {} rows",
        report["rows"]
    );
    Ok(Outcome {
        variant: Variant::Python,
        destination: destination.to_owned(),
        elapsed: Duration::from_secs_f64(number("elapsed_secs")),
        copier_cpu: number("cpu_secs"),
        server_cpu,
        stages: None,
        verified: String::new(),
    })
}

/// Compares `destination` with the source: checksums per range (or counts only).
async fn check(
    client: &Client,
    destination: &str,
    rows: i64,
    count_only: bool,
) -> anyhow::Result<String> {
    if count_only {
        let count = count_rows(client, destination).await?;
        anyhow::ensure!(
            count == rows as u64,
            "{destination} holds {count} rows, not {rows}"
        );
        return Ok(format!("{count} rows (counts only)"));
    }
    let options = VerifyOptions {
        rows_per_range: 10_000,
        page_size: 5_000,
    };
    let report = verify(client, SOURCE, client, destination, options).await?;
    anyhow::ensure!(
        report.is_match() && report.source_rows() == rows as u64,
        "{destination} differs: {report}"
    );
    Ok(format!(
        "verified: {} rows, {} ranges, checksums match",
        report.destination_rows(),
        report.ranges.len()
    ))
}

async fn count_rows(client: &Client, table: &str) -> anyhow::Result<u64> {
    use ots_client::rows::{RangeQuery, ReadOptions};
    use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue};
    let bound = |value| {
        PrimaryKey(vec![PrimaryKeyColumn {
            name: "id".into(),
            value,
        }])
    };
    let mut reader = client.get_range(RangeQuery {
        table: table.to_owned(),
        start: bound(PrimaryKeyValue::InfMin),
        end: bound(PrimaryKeyValue::InfMax),
        backward: false,
        limit: None,
        page_size: Some(5_000),
        options: ReadOptions {
            columns_to_get: vec!["level".into()],
            max_versions: 1,
        },
    });
    let mut count = 0;
    while let Some(page) = reader.next_page().await? {
        count += page.len() as u64;
    }
    Ok(count)
}

fn print_results(outcomes: &[Outcome], rows: i64, python_workers: usize) {
    let rate = |o: &Outcome| rows as f64 / o.elapsed.as_secs_f64();
    println!(
        "\n| copy | variant | seconds | rows/s | copier CPU s | server CPU s | verification |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for o in outcomes {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {} |",
            o.destination,
            o.variant.name(),
            o.elapsed.as_secs_f64(),
            rate(o),
            o.copier_cpu,
            o.server_cpu,
            o.verified
        );
    }
    let median = |variant| {
        let mut rates: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.variant == variant)
            .map(rate)
            .collect();
        rates.sort_by(f64::total_cmp);
        Some((rates.get(rates.len() / 2).copied()?, rates.len()))
    };
    let python = median(Variant::Python).map(|m| m.0);
    let native = median(Variant::Native).map(|m| m.0);
    println!(
        "\n{rows} rows, median per variant:\n\n| variant | copies | rows/s | vs Python | vs native |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for variant in [
        Variant::Wasm,
        Variant::Native,
        Variant::PyGuest,
        Variant::JsGuest,
        Variant::Python,
    ] {
        let Some((rate, copies)) = median(variant) else {
            continue;
        };
        let versus = |base: Option<f64>, percent: bool| match base {
            Some(b) if percent => format!("{:.1} %", 100.0 * rate / b),
            Some(b) => format!("{:.1}x", rate / b),
            None => "-".into(),
        };
        let name = match variant {
            Variant::Python => format!("{} ({python_workers} processes)", variant.name()),
            _ => variant.name().to_owned(),
        };
        println!(
            "| {name} | {copies} | {rate:.0} | {} | {} |",
            versus(python, false),
            versus(native, true)
        );
    }
    println!();
    for o in outcomes {
        let Some(s) = &o.stages else { continue };
        let secs = o.elapsed.as_secs_f64();
        println!(
            "{}: {} channels, peak RSS {}; processor {:.2}s in {} calls ({:.2} us/row, {:.1} % of one core); BatchWriteRow {:.1}s summed over {} batches ({:.1} ms each, {:.1} in flight on average)",
            o.destination,
            s.channels,
            s.peak_rss_mib
                .map_or("unknown".to_owned(), |m| format!("{m:.0} MiB")),
            s.processor.as_secs_f64(),
            s.processor_calls,
            s.processor.as_secs_f64() * 1e6 / rows as f64,
            100.0 * s.processor.as_secs_f64() / secs,
            s.write.as_secs_f64(),
            s.batches,
            s.write.as_secs_f64() * 1e3 / s.batches.max(1) as f64,
            s.write.as_secs_f64() / secs,
        );
    }
    for o in outcomes {
        let secs = o.elapsed.as_secs_f64();
        println!(
            "{} CPU: copier {:.1}s ({:.1} us/row, {:.0} % of one core), server {:.1}s ({:.1} us/row, {:.0} % of one core)",
            o.destination,
            o.copier_cpu,
            o.copier_cpu * 1e6 / rows as f64,
            100.0 * o.copier_cpu / secs,
            o.server_cpu,
            o.server_cpu * 1e6 / rows as f64,
            100.0 * o.server_cpu / secs,
        );
    }
}
