//! Shared helpers of the end-to-end tests: polling, a filled source table, a write load up
//! to an end time. The server, its credentials and the workload come from `ots-testkit`.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ots_client::Client;
use ots_replicator::config::ReplicatorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::{self, RunSummary};
use ots_replicator::processor;
use ots_testkit::workload;
pub use ots_testkit::{LocalServer, split_partition};

/// Runs one replication with the processor its config selects, until its end time or
/// `shutdown`, as `otsrep replicate` does (without the progress output).
pub async fn run_replication(
    config: &ReplicatorConfig,
    metrics: std::sync::Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<RunSummary> {
    let processor = processor::load_chain(&config.processors, &config.source.table_name)?;
    pipeline::replicate(config, processor, metrics, shutdown)
        .await
        .with_context(|| format!("replicating {}", config.source.table_name))
}

/// The current instant to the millisecond, a few milliseconds away from any commit: commits
/// land in whole milliseconds, and an instant in a commit's millisecond would include it.
pub async fn instant() -> chrono::DateTime<chrono::Utc> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let at = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .expect("now is a valid instant");
    tokio::time::sleep(Duration::from_millis(3)).await;
    at
}

/// Polls `check` every 200 ms until it returns true; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the workload's source table `table` on `server` and fills it with `rows` rows;
/// returns a client of the server.
pub async fn source_with_rows(server: &LocalServer, table: &str, rows: i64) -> Client {
    let client = server.client();
    workload::create_source_table(&client, table)
        .await
        .expect("creating the source table");
    workload::fill(&client, table, rows, 4, |_| {})
        .await
        .expect("filling the source table");
    client
}

/// Verify options sized for the tests' small tables.
pub const VERIFY_OPTIONS: ots_replicator::verify::VerifyOptions =
    ots_replicator::verify::VerifyOptions {
        rows_per_range: 250,
        page_size: 500,
    };

/// Compares `destination` with the rows of `source` as `view` maps them (`None`: the row is not
/// expected in the destination), both tables on `client`.
pub async fn compare(
    client: &Client,
    source: &str,
    destination: &str,
    view: &ots_replicator::verify::RowView,
) -> ots_replicator::verify::VerifyReport {
    ots_replicator::verify::verify_view(client, source, client, destination, VERIFY_OPTIONS, view)
        .await
        .expect("verifying the copy")
}

/// Panics naming the differing ranges unless `report` found `destination` a match.
pub fn assert_matches(destination: &str, report: &ots_replicator::verify::VerifyReport) {
    assert!(
        report.is_match(),
        "{destination} differs in {:?}",
        report.differing().collect::<Vec<_>>()
    );
}

/// A write load of 40-row batches over `table`'s rows `0..rows` and a tenth more (so some
/// writes create rows), pausing `pause` between batches.
pub fn write_load(client: &Client, table: &str, rows: i64, pause: Duration) -> workload::WriteLoad {
    workload::WriteLoad::start(
        client.clone(),
        table.to_owned(),
        rows + rows / 10,
        40,
        pause,
    )
}

/// Runs a write load on `table` (rows `0..rows` and a tenth more) until `margin` before
/// `end`, then makes every channel see a record past the end without changing the table's
/// contents. The margin leaves room for the load's last batch to commit (with its retries)
/// before the end time. Returns how many changes the load wrote.
pub async fn write_until(
    client: &Client,
    table: &str,
    rows: i64,
    end: chrono::DateTime<chrono::Utc>,
    margin: Duration,
) -> u64 {
    let load = write_load(client, table, rows, Duration::from_millis(50));
    let until = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until.saturating_sub(margin)).await;
    let stopping = std::time::Instant::now();
    let written = load.stop().await.expect("the write load");
    let now = chrono::Utc::now();
    assert!(
        now < end,
        "the load's last batch committed before the end time: it committed {} ms after the end, \
         {} ms after the load was asked to stop (a margin of {} ms was given)",
        (now - end).num_milliseconds(),
        stopping.elapsed().as_millis(),
        margin.as_millis(),
    );
    pass_the_end(client, table, end).await;
    written
}

/// Waits until after `end`, then writes and removes marker rows (negative ids) so every
/// channel of `table` sees a record past the end while the contents stay as they were.
pub async fn pass_the_end(client: &Client, table: &str, end: chrono::DateTime<chrono::Utc>) {
    let rest = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(rest + Duration::from_millis(50)).await;
    let markers: Vec<i64> = (1..=8).map(|i| -i).collect();
    workload::touch_and_remove(client, table, &markers)
        .await
        .expect("writing the end markers");
}
