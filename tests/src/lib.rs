//! Shared helpers for the end-to-end tests: a local server in a temporary directory, configs
//! pointing at it, and polling.

use std::future::Future;
use std::time::{Duration, Instant};

use ots_cli::demo::{ACCESS_ID, ACCESS_KEY, INSTANCE, local_config};
use ots_client::Client;
use ots_local_server::api::{SplitPartitionRequest, SplitPartitionResponse};
use ots_local_server::{FaultConfig, RunningServer, ServerConfig};
use ots_protocol::plainbuffer;
use ots_replicator::config::{ProcessorConfig, ReplicatorConfig};

/// A local server on a free port with its data in a temporary directory.
pub struct LocalServer {
    server: RunningServer,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    /// Starts a server with the demo's instance and access key.
    pub async fn start() -> Self {
        Self::start_with_faults(FaultConfig::default()).await
    }

    /// Starts a server that injects `faults`.
    pub async fn start_with_faults(faults: FaultConfig) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let server = ots_local_server::start(ServerConfig {
            data_dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().expect("address"),
            instance_name: INSTANCE.to_owned(),
            access_keys: vec![(ACCESS_ID.to_owned(), ACCESS_KEY.to_owned())],
            faults,
        })
        .await
        .expect("local server starts");
        Self { server, _dir: dir }
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        self.server.endpoint()
    }

    /// A config replicating `source` into `destination` through `tunnel` on this server.
    pub fn config(
        &self,
        source: &str,
        tunnel: &str,
        destination: &str,
        processor: ProcessorConfig,
    ) -> ReplicatorConfig {
        local_config(&self.url(), source, tunnel, destination, processor)
    }

    /// A client of this server.
    pub fn client(&self) -> Client {
        self.config("x", "x", "x", ProcessorConfig::default())
            .source
            .client()
            .expect("client")
    }
}

/// Splits partition `partition` of `table` at integer key `id` (the local server's admin
/// call), so the table's stream has more channels; returns the children's ids.
pub async fn split_partition(client: &Client, table: &str, partition: u32, id: i64) -> (u32, u32) {
    let request = SplitPartitionRequest {
        table_name: table.to_owned(),
        partition_id: partition,
        split_point: plainbuffer::encode_primary_key(&ots_cli::workload::key(id)),
    };
    let response: SplitPartitionResponse = client
        .call("/admin/SplitPartition", &request, false)
        .await
        .expect("partition split");
    (response.left, response.right)
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
    ots_cli::workload::create_source_table(&client, table)
        .await
        .expect("creating the source table");
    ots_cli::workload::fill(&client, table, rows, 4, |_| {})
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
    let load = ots_cli::workload::WriteLoad::start(
        client.clone(),
        table.to_owned(),
        rows + rows / 10,
        40,
        Duration::from_millis(50),
    );
    let until = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until.saturating_sub(margin)).await;
    let written = load.stop().await.expect("the write load");
    assert!(
        chrono::Utc::now() < end,
        "the load's last batch committed before the end time"
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
    ots_cli::workload::touch_and_remove(client, table, &markers)
        .await
        .expect("writing the end markers");
}
