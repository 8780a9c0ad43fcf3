//! Replication over time ranges: a BaseData tunnel copies the table and ends; a windowed
//! backfill (a Stream tunnel from a start time to an end time) applies exactly the changes of
//! its window and ends by itself; a tunnel that exists with another type or range is an
//! error, not a silent reuse.

use std::sync::Arc;
use std::time::Duration;

use ots_e2e::{LocalServer, run_replication};
use ots_protocol::pb::tunnel::TunnelType;
use ots_replicator::config::ProcessorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::{PipelineError, StopReason};
use ots_replicator::setup::SetupError;
use ots_testkit::table_contents;
use ots_testkit::workload::WriteLoad;

const SOURCE: &str = "src";
const ROWS: i64 = 800;

fn load(client: &ots_client::Client) -> WriteLoad {
    ots_e2e::write_load(client, SOURCE, ROWS, Duration::from_millis(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_windowed_backfill_applies_exactly_the_changes_of_its_window() {
    let server = LocalServer::start().await;
    let client = ots_e2e::source_with_rows(&server, SOURCE, ROWS).await;
    // The table as it is at t1, by a BaseData tunnel, which ends once copied.
    let t1 = ots_e2e::instant().await;
    let mut copy = server.config(SOURCE, "copy", "dst", ProcessorConfig::default());
    copy.tunnel_type = TunnelType::BaseData;
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        run_replication(&copy, Arc::new(Metrics::default()), std::future::pending()),
    )
    .await
    .expect("the copy ends by itself")
    .unwrap();
    assert_eq!(summary.reason, StopReason::Copied);
    let at_t1 = table_contents(&client, SOURCE).await;
    assert!(table_contents(&client, "dst").await == at_t1);

    // Changes in [t1, t2], then more after t2 that the backfill must leave out.
    let writers = load(&client);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    writers.stop().await.unwrap();
    let t2 = ots_e2e::instant().await;
    let at_t2 = table_contents(&client, SOURCE).await;
    let writers = load(&client);
    tokio::time::sleep(Duration::from_millis(800)).await;
    writers.stop().await.unwrap();
    assert!(
        table_contents(&client, SOURCE).await != at_t2,
        "changes after t2"
    );

    let mut backfill = server.config(SOURCE, "backfill", "dst", ProcessorConfig::default());
    backfill.tunnel_type = TunnelType::Stream;
    backfill.start_time = Some(t1);
    backfill.end_time = Some(t2);
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        run_replication(
            &backfill,
            Arc::new(Metrics::default()),
            std::future::pending(),
        ),
    )
    .await
    .expect("the backfill ends by itself: the tunnel's end offset terminates its channels")
    .unwrap();
    assert_eq!(summary.reason, StopReason::EndTime);
    assert!(summary.metrics.stream_records_applied > 0);
    let found = table_contents(&client, "dst").await;
    assert_eq!(found.len(), at_t2.len());
    assert!(
        found == at_t2,
        "t1's table plus the window's changes is t2's table"
    );
    let info = client.describe_tunnel(SOURCE, "backfill").await.unwrap();
    assert!(
        info.channels
            .iter()
            .all(|c| c.channel_status.as_deref() == Some("TERMINATED")),
        "{:?}",
        info.channels
    );

    // The same tunnel name with another window is refused, naming both.
    let mut other = backfill.clone();
    other.end_time = Some(t2 + chrono::Duration::seconds(1));
    let error = run_replication(&other, Arc::new(Metrics::default()), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<PipelineError>(),
            Some(PipelineError::Setup(SetupError::TunnelMismatch { .. }))
        ),
        "{error:#}"
    );
    let message = format!("{error:#}");
    assert!(
        message.contains("exists as a Stream tunnel from") && message.contains("choose another"),
        "{message}"
    );
    let mut base_and_stream = backfill.clone();
    base_and_stream.tunnel_name = "copy".into();
    base_and_stream.tunnel_type = TunnelType::BaseAndStream;
    base_and_stream.start_time = None;
    base_and_stream.end_time = None;
    let error = run_replication(
        &base_and_stream,
        Arc::new(Metrics::default()),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("exists as a BaseData tunnel"),
        "{error:#}"
    );
    server.shutdown().await;
}
