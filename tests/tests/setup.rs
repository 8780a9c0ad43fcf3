//! Set-up a user can follow: a source without a stream is found before anything is created and
//! enabled only when the config says so; an endpoint that refuses connections fails the run
//! within seconds, naming it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ots_e2e::LocalServer;
use ots_protocol::pb::table::{CreateTableRequest, StreamSpecification};
use ots_replicator::config::ProcessorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::{PipelineError, StopReason};
use ots_replicator::setup::SetupError;
use ots_testkit::workload;

const SOURCE: &str = "no_stream";

/// The workload's source table, but without a stream.
async fn source_without_stream(server: &LocalServer) -> ots_client::Client {
    let client = server.client();
    let mut request: CreateTableRequest = workload::source_table_request(SOURCE);
    request.stream_spec = Some(StreamSpecification {
        enable_stream: false,
        ..Default::default()
    });
    client.create_table(&request).await.unwrap();
    workload::fill(&client, SOURCE, 500, 2, |_| {})
        .await
        .unwrap();
    client
}

/// One run of the pipeline with the config's processor, to its first error.
async fn replicate_until_error(config: &ots_replicator::config::ReplicatorConfig) -> PipelineError {
    let processor = ots_replicator::processor::load_chain(&config.processors, SOURCE).unwrap();
    ots_replicator::pipeline::replicate(
        config,
        processor,
        Arc::new(Metrics::default()),
        std::future::pending(),
    )
    .await
    .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_a_stream_is_refused_before_anything_is_created() {
    let server = LocalServer::start().await;
    let client = source_without_stream(&server).await;
    let config = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());
    let error = replicate_until_error(&config).await;
    assert!(
        matches!(error, PipelineError::Setup(SetupError::NoStream { .. })),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("ots-reader.enableStream") && message.contains(SOURCE),
        "the error names the table and the option: {message}"
    );
    assert_eq!(
        client.list_table().await.unwrap(),
        vec![SOURCE.to_owned()],
        "no destination table was created"
    );
    assert!(
        client.list_tunnel(Some(SOURCE)).await.unwrap().is_empty(),
        "no tunnel was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enable_stream_lets_set_up_enable_it_and_the_copy_runs() {
    let server = LocalServer::start().await;
    let client = source_without_stream(&server).await;
    let mut config = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());
    config.enable_stream = true;
    let metrics = Arc::new(Metrics::default());
    let copied = {
        let metrics = metrics.clone();
        async move {
            while metrics.snapshot().base_records_applied < 500 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        ots_e2e::run_replication(&config, metrics, copied),
    )
    .await
    .expect("the copy ends within 60 s")
    .expect("the replication succeeds");
    assert_eq!(summary.reason, StopReason::Shutdown);
    let details = client
        .describe_table(SOURCE)
        .await
        .unwrap()
        .stream_details
        .unwrap();
    assert!(details.enable_stream, "set-up enabled the stream");
    assert_eq!(
        details.expiration_time,
        Some(ots_replicator::setup::ENABLED_STREAM_HOURS)
    );
    let report =
        ots_replicator::verify::verify(&client, SOURCE, &client, "dst", ots_e2e::VERIFY_OPTIONS)
            .await
            .unwrap();
    assert!(report.is_match(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_refusing_connections_fails_within_seconds_naming_it() {
    let server = LocalServer::start().await;
    let mut config = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());
    // A port nothing listens on.
    let closed = format!("http://127.0.0.1:{}", ots_testkit::free_port());
    config.destination.endpoint = closed.clone();
    let started = Instant::now();
    let error = replicate_until_error(&config).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "failed after {took:?}");
    let chain = anyhow::Error::from(error);
    let message = format!("{chain:#}");
    assert!(
        message.contains(&format!("cannot reach the destination endpoint {closed}"))
            && message.contains("Connection refused"),
        "the error names the endpoint and the cause: {message}"
    );
}
