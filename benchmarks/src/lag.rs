//! `lag`: writes new rows to a source table at a steady rate while the replicator runs, and
//! measures per row the time from the source write's acknowledgement to (a) the record
//! reaching the replicator's processor and (b) the row being visible in the destination, found
//! by a poller that scans the destination continuously from the oldest row not yet seen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ots_client::Client;
use ots_client::rows::{RangeQuery, ReadOptions};
use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange};
use ots_replicator::config::ProcessorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::processor::{Processor, load as load_processor};
use ots_testkit::local_config;
use tokio::task::JoinSet;

use crate::processor::{NativePassthrough, Timed};
use crate::server::{CpuMark, start_server};
use crate::table::{self, now_millis};

const SOURCE: &str = "lag_source";
const DESTINATION: &str = "lag_copy";

/// Arguments of `lag`.
#[derive(Debug, Args)]
pub struct LagArgs {
    /// Rows written per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds of writing.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Rows per BatchWriteRow of the writer.
    #[arg(long, default_value_t = 50)]
    batch: u64,
    /// The processor the replicator runs.
    #[arg(long, alias = "transform", value_enum, default_value_t = ProcessorKind::Wasm)]
    processor: ProcessorKind,
    /// Keep the server's database here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write every row's instants (ms since the start: ack, at the processor, visible) here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Which processor the replicator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProcessorKind {
    /// The built-in `replicate` wasm guest.
    Wasm,
    /// The native passthrough.
    Native,
}

/// Per-row instants, as nanoseconds since the run's origin plus one (0: not yet).
struct Marks {
    origin: Instant,
    slots: Vec<AtomicU64>,
}

impl Marks {
    fn new(origin: Instant, rows: usize) -> Self {
        Self {
            origin,
            slots: (0..rows).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Marks row `id` now unless it is already marked or out of range.
    fn mark(&self, id: i64, at: Instant) {
        if let Some(slot) = usize::try_from(id).ok().and_then(|i| self.slots.get(i)) {
            let nanos = at.duration_since(self.origin).as_nanos() as u64 + 1;
            let _ = slot.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn get(&self, i: usize) -> Option<u64> {
        Some(self.slots[i].load(Ordering::Relaxed)).filter(|&n| n != 0)
    }
}

fn id_of(primary_key: &PrimaryKey) -> Option<i64> {
    match primary_key.0.first()?.value {
        PrimaryKeyValue::Integer(id) => Some(id),
        _ => None,
    }
}

/// Runs the benchmark and prints the lag percentiles.
pub async fn run(args: LagArgs) -> anyhow::Result<()> {
    let (_temp, server) = start_server(args.data_dir.as_deref()).await?;
    let config = local_config(
        server.url(),
        SOURCE,
        "lag_tunnel",
        DESTINATION,
        ProcessorConfig::default(),
    );
    let client = config.source.client()?;
    ots_testkit::workload::create_source_table(&client, SOURCE).await?;

    let batch = args.batch.max(1);
    let batches = (args.rate * args.secs).div_ceil(batch);
    let rows = (batches * batch) as usize;
    let origin = Instant::now();
    let acked = Arc::new(Marks::new(origin, rows));
    let reached = Arc::new(Marks::new(origin, rows));
    let visible = Arc::new(Marks::new(origin, rows));

    let inner: Arc<dyn Processor> = match args.processor {
        ProcessorKind::Wasm => load_processor(&ProcessorConfig::default(), SOURCE)?,
        ProcessorKind::Native => Arc::new(NativePassthrough),
    };
    let observer = {
        let reached = reached.clone();
        Box::new(move |records: &[ots_protocol::record::TunnelRecord]| {
            let now = Instant::now();
            for record in records {
                if let Some(id) = id_of(record.change.primary_key()) {
                    reached.mark(id, now);
                }
            }
        })
    };
    let timed = Arc::new(Timed::new(inner, Some(observer)));
    let stop = Arc::new(tokio::sync::Notify::new());
    let metrics = Arc::new(Metrics::default());
    let replicator = tokio::spawn({
        let (config, timed, stop, metrics) =
            (config.clone(), timed.clone(), stop.clone(), metrics.clone());
        async move {
            ots_replicator::pipeline::replicate(&config, timed, metrics, stop.notified()).await
        }
    });

    // Warm up: rows outside the measured ids (negative) until one came through the stream,
    // so the base-data channel is done and the stream channel is being read.
    let warm = Instant::now();
    let mut warm_id = -1;
    while metrics.snapshot().stream_records_applied == 0 {
        anyhow::ensure!(
            !replicator.is_finished(),
            "the replicator stopped: {:?}",
            replicator.await
        );
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(120),
            "no stream record was replicated in 120s"
        );
        ots_testkit::workload::write_all(&client, SOURCE, &[table::row(warm_id, 0, now_millis())])
            .await?;
        warm_id -= 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "warm-up: a stream record replicated after {:.2}s",
        warm.elapsed().as_secs_f64()
    );

    let polling = Arc::new(AtomicBool::new(true));
    let poller = tokio::spawn(poll(client.clone(), visible.clone(), polling.clone()));
    let cpu = CpuMark::now(&server);
    let write_started = Instant::now();
    write_load(&client, &acked, batch, batches, args.rate).await?;
    let write_secs = write_started.elapsed().as_secs_f64();
    let (own_cpu, server_cpu) = cpu.since(&server);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..rows).any(|i| visible.get(i).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    polling.store(false, Ordering::Relaxed);
    let (polls, poll_time) = poller.await.context("poller panicked")??;
    stop.notify_one();
    let summary = replicator.await.context("replicator panicked")??;
    println!("replicator: {summary}");

    println!(
        "wrote {rows} rows in {write_secs:.1}s = {:.0} rows/s ({} processor: {:?}); destination polled {polls} times, {:.1} ms per poll",
        rows as f64 / write_secs,
        match args.processor {
            ProcessorKind::Wasm => "replicate wasm guest",
            ProcessorKind::Native => "native passthrough",
        },
        args.processor,
        poll_time.as_secs_f64() * 1e3 / polls.max(1) as f64,
    );
    println!(
        "CPU during the writes: this process (writer, replicator, poller) {own_cpu:.1}s = {:.0} % of one core, server {server_cpu:.1}s = {:.0} %",
        100.0 * own_cpu / write_secs,
        100.0 * server_cpu / write_secs
    );
    report(
        "source ack -> record at the processor",
        &acked,
        &reached,
        rows,
    );
    report(
        "source ack -> visible in the destination",
        &acked,
        &visible,
        rows,
    );
    if let Some(path) = &args.csv {
        write_csv(path, [&acked, &reached, &visible], rows)?;
    }
    Ok(())
}

/// Writes `batches` batches of new rows `0..`, one batch every `batch / rate` seconds (several
/// in flight if the server is slow), marking each row's acknowledgement.
async fn write_load(
    client: &Client,
    acked: &Arc<Marks>,
    batch: u64,
    batches: u64,
    rate: u64,
) -> anyhow::Result<()> {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(batch as f64 / rate as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = JoinSet::new();
    for n in 0..batches {
        ticks.tick().await;
        while writes.len() >= 16 {
            writes.join_next().await.context("a write task")???;
        }
        let ids = (n * batch) as i64..((n + 1) * batch) as i64;
        let (client, acked) = (client.clone(), acked.clone());
        writes.spawn(async move {
            let stamp = now_millis();
            let changes: Vec<RowChange> =
                ids.clone().map(|id| table::row(id, stamp, stamp)).collect();
            ots_testkit::workload::write_all(&client, SOURCE, &changes).await?;
            let now = Instant::now();
            for id in ids {
                acked.mark(id, now);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writes.join_next().await {
        done.context("a write task")??;
    }
    Ok(())
}

/// Scans the destination from the oldest row not yet seen, over and over, marking each row
/// when a scan first returns it. Returns how many scans ran and their total time.
async fn poll(
    client: Client,
    visible: Arc<Marks>,
    running: Arc<AtomicBool>,
) -> anyhow::Result<(u64, Duration)> {
    let bound = |value| {
        PrimaryKey(vec![PrimaryKeyColumn {
            name: "id".into(),
            value,
        }])
    };
    let (mut next, mut polls, mut spent) = (0usize, 0u64, Duration::ZERO);
    while running.load(Ordering::Relaxed) && next < visible.slots.len() {
        let started = Instant::now();
        let page = client
            .get_range(RangeQuery {
                table: DESTINATION.to_owned(),
                start: bound(PrimaryKeyValue::Integer(next as i64)),
                end: bound(PrimaryKeyValue::InfMax),
                backward: false,
                limit: Some(5_000),
                page_size: Some(5_000),
                options: ReadOptions {
                    columns_to_get: vec!["level".into()],
                    max_versions: 1,
                },
            })
            .next_page()
            .await?
            .unwrap_or_default();
        let now = Instant::now();
        polls += 1;
        spent += now - started;
        for row in &page {
            if let Some(id) = id_of(&row.primary_key) {
                visible.mark(id, now);
            }
        }
        let before = next;
        while next < visible.slots.len() && visible.get(next).is_some() {
            next += 1;
        }
        if next == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok((polls, spent))
}

/// Prints percentiles of `to - from` over the rows both marked.
fn report(what: &str, from: &Marks, to: &Marks, rows: usize) {
    let mut lags: Vec<f64> = (0..rows)
        .filter_map(|i| Some((to.get(i)? as f64 - from.get(i)? as f64) / 1e6))
        .collect();
    let missing = rows - lags.len();
    if lags.is_empty() {
        println!("{what}: no rows");
        return;
    }
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    let negative = lags.iter().filter(|&&l| l < 0.0).count();
    println!(
        "{what}: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms over {} rows ({missing} not seen, {negative} before the ack arrived)",
        at(0.5),
        at(0.95),
        at(0.99),
        lags[lags.len() - 1],
        lags.iter().sum::<f64>() / lags.len() as f64,
        lags.len()
    );
}

/// Writes each row's instants (ms since the origin) as CSV.
fn write_csv(path: &Path, marks: [&Marks; 3], rows: usize) -> anyhow::Result<()> {
    let mut text = String::from("id,acked_ms,processor_ms,visible_ms\n");
    for i in 0..rows {
        text.push_str(&i.to_string());
        for m in marks {
            text.push(',');
            if let Some(nanos) = m.get(i) {
                text.push_str(&format!("{:.3}", nanos as f64 / 1e6));
            }
        }
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
