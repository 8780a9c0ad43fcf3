//! Whole-system replication against the local server over HTTP: full and incremental copy
//! under concurrent writes, the end time, resuming from checkpoints, several workers on one
//! tunnel.

use std::sync::Arc;
use std::time::Duration;

use ots_client::rows::ReadOptions;
use ots_e2e::LocalServer;
use ots_replicator::config::{ProcessorConfig, ReplicatorConfig};
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::{RunSummary, StopReason};
use ots_replicator::verify::{VerifyReport, verify};
use ots_testkit::workload;

const SOURCE: &str = "src";

async fn source_with_rows(server: &LocalServer, rows: i64) -> ots_client::Client {
    ots_e2e::source_with_rows(server, SOURCE, rows).await
}

async fn compare(client: &ots_client::Client, destination: &str) -> VerifyReport {
    verify(client, SOURCE, client, destination, ots_e2e::VERIFY_OPTIONS)
        .await
        .unwrap()
}

async fn replicate_until_end(config: ReplicatorConfig, metrics: Arc<Metrics>) -> RunSummary {
    let run = ots_e2e::run_replication(&config, metrics, std::future::pending());
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the replication reaches its end time within 90 s")
        .expect("the replication succeeds")
}

/// Waits until one of the replications applied a full-copy record: the tunnel, and so the
/// snapshot of the base data, exists from then on.
async fn full_copy_started(metrics: &[&Arc<Metrics>]) {
    ots_e2e::wait_until(
        "the full copy to start",
        Duration::from_secs(30),
        || async {
            metrics
                .iter()
                .any(|m| m.snapshot().base_records_applied > 0)
        },
    )
    .await;
}

async fn write_until(
    client: &ots_client::Client,
    rows: i64,
    end: chrono::DateTime<chrono::Utc>,
    margin: Duration,
) -> u64 {
    ots_e2e::write_until(client, SOURCE, rows, end, margin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_and_incremental_copy_under_concurrent_writes_stops_at_the_end_time() {
    let server = LocalServer::start().await;
    let rows = 3000;
    let client = source_with_rows(&server, rows).await;
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    let mut config = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());
    config.end_time = Some(end);

    let metrics = Arc::new(Metrics::default());
    let replication = tokio::spawn(replicate_until_end(config, metrics.clone()));
    full_copy_started(&[&metrics]).await;
    let written = write_until(&client, rows, end, Duration::from_secs(1)).await;
    assert!(written > 0, "the write load wrote while replicating");

    // A row committed after the end time must not reach the destination.
    let late = workload::initial_row(-100, chrono::Utc::now().timestamp_millis());
    client
        .write_row(SOURCE, &late, Default::default())
        .await
        .unwrap();

    let summary = replication.await.unwrap();
    assert_eq!(summary.reason, StopReason::EndTime);
    // The full copy reads the live table, so rows the load deletes meanwhile may be missing
    // from it (their deletion comes through the stream); the verify below is the real check.
    assert!(
        summary.metrics.base_records_applied > rows as u64 / 2,
        "the full copy ran: {:?}",
        summary.metrics
    );
    assert!(
        summary.metrics.records_read > rows as u64,
        "incremental records were applied"
    );

    let report = compare(&client, "dst").await;
    let differing: Vec<_> = report.differing().collect();
    assert_eq!(
        differing.len(),
        1,
        "only the late row differs: {differing:?}"
    );
    assert_eq!(report.source_rows(), report.destination_rows() + 1);
    assert_eq!(
        client
            .get_row("dst", &workload::key(-100), &ReadOptions::default())
            .await
            .unwrap(),
        None,
        "the row written after the end time was not applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_run_resumes_from_the_checkpoints() {
    let server = LocalServer::start().await;
    let rows = 2000;
    let client = source_with_rows(&server, rows).await;
    let config = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());

    // First run: no end time; stop it once the full copy is in.
    let metrics = Arc::new(Metrics::default());
    let stop_when_copied = {
        let metrics = metrics.clone();
        async move {
            while metrics.snapshot().base_records_applied < rows as u64 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first = tokio::time::timeout(
        Duration::from_secs(60),
        ots_e2e::run_replication(&config, metrics, stop_when_copied),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(first.reason, StopReason::Shutdown);

    // Changes while no replicator runs, then a second run with an end time.
    let end = chrono::Utc::now() + chrono::Duration::seconds(4);
    let mut second_config = config.clone();
    second_config.end_time = Some(end);
    write_until(&client, rows, end, Duration::from_secs(1)).await;
    let second = replicate_until_end(second_config, Arc::new(Metrics::default())).await;
    assert!(
        second.metrics.base_records_applied < rows as u64 / 2,
        "the second run did not redo the full copy ({} base rows)",
        second.metrics.base_records_applied
    );
    let report = compare(&client, "dst").await;
    assert!(
        report.is_match(),
        "{:?}",
        report.differing().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_one_tunnel() {
    let server = LocalServer::start().await;
    let rows = 3000;
    let client = source_with_rows(&server, rows).await;
    // Four partitions, so there are channels for both workers in both phases.
    let (left, right) = ots_e2e::split_partition(&client, SOURCE, 0, rows / 2).await;
    ots_e2e::split_partition(&client, SOURCE, left, rows / 4).await;
    ots_e2e::split_partition(&client, SOURCE, right, rows * 3 / 4).await;
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    let mut config = server.config(SOURCE, "shared", "dst", ProcessorConfig::default());
    config.end_time = Some(end);
    let mut other = config.clone();
    other.tuning.client_tag = Some("second".into());

    let (first_metrics, second_metrics) = (Arc::default(), Arc::default());
    let first = tokio::spawn(replicate_until_end(config, Arc::clone(&first_metrics)));
    let second = tokio::spawn(replicate_until_end(other, Arc::clone(&second_metrics)));
    full_copy_started(&[&first_metrics, &second_metrics]).await;
    write_until(&client, rows, end, Duration::from_secs(1)).await;
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(
        first.tunnel_id, second.tunnel_id,
        "both used the same tunnel"
    );
    assert!(
        first.metrics.records_read > 0 && second.metrics.records_read > 0,
        "both workers consumed channels: {} and {} records",
        first.metrics.records_read,
        second.metrics.records_read
    );
    let report = compare(&client, "dst").await;
    assert!(
        report.is_match(),
        "{:?}",
        report.differing().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_rows_and_requests_are_retried_until_the_copy_is_exact() {
    let server = LocalServer::start_with_faults(ots_local_server::FaultConfig {
        error_rate: 0.02,
        row_failure_rate: 0.05,
        ..Default::default()
    })
    .await;
    let rows = 2000;
    let client = source_with_rows(&server, rows).await;
    // Every request may fail here, so the replication takes longer to start and the load's
    // last batch may be resent for a few seconds (a row failing five times in a row waits
    // 1.5-3 s before its sixth try): both get more room than in the tests without faults.
    let end = chrono::Utc::now() + chrono::Duration::seconds(10);
    let mut config = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());
    config.end_time = Some(end);
    let metrics = Arc::new(Metrics::default());
    let replication = tokio::spawn(replicate_until_end(config, metrics.clone()));
    full_copy_started(&[&metrics]).await;
    write_until(&client, rows, end, Duration::from_secs(4)).await;
    let summary = replication.await.unwrap();
    assert!(
        summary.metrics.rows_retried > 0,
        "rows failed in batches and were resent: {:?}",
        summary.metrics
    );
    let report = compare(&client, "dst").await;
    assert!(
        report.is_match(),
        "{:?}",
        report.differing().collect::<Vec<_>>()
    );
}
