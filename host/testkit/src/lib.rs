//! Test support shared by the `otsrep demo`, the tests, the benchmarks and the fuzz targets:
//! the local server's credentials, a server in this process or in a child process, configs
//! and clients pointing at it, and the demo's source table and write load.

pub mod server;
pub mod workload;

use std::path::Path;

use ots_client::{Client, ClientConfig};
use ots_local_server::api::{SplitPartitionRequest, SplitPartitionResponse};
use ots_local_server::{FaultConfig, ServerConfig};
use ots_protocol::auth::Credentials;
use ots_protocol::plainbuffer;
#[cfg(feature = "replication")]
use ots_replicator::config::{ProcessorConfig, ReplicatorConfig, TableEndpoint, Tuning};

pub use ots_local_server::serve::{
    LOCAL_ACCESS_KEY_ID as ACCESS_KEY_ID, LOCAL_ACCESS_KEY_SECRET as ACCESS_KEY_SECRET,
    LOCAL_INSTANCE as INSTANCE,
};
pub use server::{LocalServer, ServerProcess, free_port};

/// The access key every local server here accepts.
pub fn credentials() -> Credentials {
    Credentials {
        access_key_id: ACCESS_KEY_ID.to_owned(),
        access_key_secret: ACCESS_KEY_SECRET.to_owned(),
        security_token: None,
    }
}

/// A server over `data_dir` on a free loopback port, with the local instance and access key.
pub fn server_config(data_dir: &Path, faults: FaultConfig) -> ServerConfig {
    ServerConfig {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        instance_name: INSTANCE.to_owned(),
        access_keys: vec![(ACCESS_KEY_ID.to_owned(), ACCESS_KEY_SECRET.to_owned())],
        faults,
        stream_hour: std::time::Duration::from_secs(3600),
    }
}

/// The `ots-reader` and `ots-writer` sections of a TOML config replicating `source` into
/// `destination` through `tunnel` on the local server at `url`; a test appends what else it
/// needs.
pub fn config_toml(url: &str, source: &str, tunnel: &str, destination: &str) -> String {
    format!(
        r#"
[ots-reader]
endpoint = "{url}"
instanceName = "{INSTANCE}"
tableName = "{source}"
accessId = "{ACCESS_KEY_ID}"
accessKey = "{ACCESS_KEY_SECRET}"
tunnelName = "{tunnel}"

[ots-writer]
endpoint = "{url}"
instanceName = "{INSTANCE}"
tableName = "{destination}"
accessId = "{ACCESS_KEY_ID}"
accessKey = "{ACCESS_KEY_SECRET}"
"#
    )
}

/// A client of the local server at `url`.
pub fn client(url: &str) -> Client {
    Client::new(ClientConfig::new(url, INSTANCE, credentials())).expect("an http:// endpoint")
}

#[cfg(feature = "replication")]
fn endpoint(url: &str, table: &str) -> TableEndpoint {
    TableEndpoint {
        endpoint: url.to_owned(),
        instance_name: INSTANCE.to_owned(),
        table_name: table.to_owned(),
        credentials: credentials(),
    }
}

/// A config replicating `source` into `destination` through `tunnel` on the local server at
/// `url`: 200 rows per BatchWriteRow, the tunnel watched every second.
#[cfg(feature = "replication")]
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
        enable_stream: false,
        tunnel_type: ots_protocol::pb::tunnel::TunnelType::BaseAndStream,
        start_time: None,
        end_time: None,
        destination: endpoint(url, destination),
        batch_write_count: 200,
        processors: vec![processor],
        tenants: None,
        metrics_listen: None,
        tuning: Tuning {
            monitor_interval: std::time::Duration::from_secs(1),
            ..Tuning::default()
        },
    }
}

/// Every row of `table` with every version it keeps, in key order: the table's exact
/// contents, to compare a copy or a restore with.
pub async fn table_contents(client: &Client, table: &str) -> Vec<ots_protocol::model::Row> {
    let description = client
        .describe_table(table)
        .await
        .expect("the table exists");
    client
        .get_range(ots_client::rows::RangeQuery::whole_table(
            &description.table_meta,
            ots_client::rows::ReadOptions {
                columns_to_get: Vec::new(),
                max_versions: description.table_options.max_versions.unwrap_or(1),
            },
        ))
        .collect_all()
        .await
        .expect("reading the whole table")
}

/// Splits partition `partition` of `table` at integer key `id` (the local server's admin
/// call), so the table's stream has more channels; returns the children's ids.
pub async fn split_partition(client: &Client, table: &str, partition: u32, id: i64) -> (u32, u32) {
    let request = SplitPartitionRequest {
        table_name: table.to_owned(),
        partition_id: partition,
        split_point: plainbuffer::encode_primary_key(&workload::key(id)),
    };
    let response: SplitPartitionResponse = client
        .call("/admin/SplitPartition", &request, false)
        .await
        .expect("partition split");
    (response.left, response.right)
}
