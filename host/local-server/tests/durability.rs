//! Acknowledged writes survive `kill -9` of the server process, and requests that are not
//! properly signed are refused.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use ots_client::rows::{RangeQuery, ReadOptions};
use ots_protocol::error::ErrorCode;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::table::*;
use ots_testkit::{LocalServer, ServerProcess};

/// The `ots-local-server` binary over `dir` on `listen`.
async fn spawn_server(dir: &Path, listen: SocketAddr) -> ServerProcess {
    ServerProcess::spawn(
        env!("CARGO_BIN_EXE_ots-local-server"),
        &[],
        dir,
        listen,
        &[],
        Stdio::null(),
    )
    .await
    .unwrap()
}

fn key(i: i64) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: "id".into(),
        value: PrimaryKeyValue::Integer(i),
    }])
}

/// The put of row `id` writing `v = value` at version `timestamp`.
fn put(id: i64, value: i64, timestamp: i64) -> RowChange {
    RowChange::Put {
        primary_key: key(id),
        cells: vec![Cell {
            name: "v".into(),
            value: Value::Integer(value),
            timestamp: Some(timestamp),
        }],
    }
}

/// Creates the table `durable`, keyed by one integer `id`.
async fn create_durable_table(client: &ots_client::Client) {
    client
        .create_table(&CreateTableRequest {
            table_meta: TableMeta {
                table_name: "durable".into(),
                primary_key: vec![PrimaryKeySchema {
                    name: "id".into(),
                    r#type: PrimaryKeyType::Integer as i32,
                    option: None,
                }],
                defined_column: vec![],
                ..Default::default()
            },
            reserved_throughput: ReservedThroughput {
                capacity_unit: CapacityUnit::default(),
            },
            table_options: None,
            partitions: vec![],
            stream_spec: None,
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], ots_testkit::free_port()));
    let server = spawn_server(dir.path(), listen).await;
    let client = server.client();
    create_durable_table(&client).await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut acknowledged = 0;
    for batch in 0..5 {
        let changes: Vec<RowChange> = (0..200).map(|i| put(batch * 200 + i, i, now)).collect();
        let outcomes = client.batch_write_row("durable", &changes).await.unwrap();
        acknowledged += outcomes.iter().filter(|o| o.is_ok()).count();
    }
    assert_eq!(acknowledged, 1000);
    server.kill9().await; // No shutdown path runs.

    let server = spawn_server(dir.path(), listen).await;
    let rows = client
        .get_range(RangeQuery {
            table: "durable".into(),
            start: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::InfMin,
            }]),
            end: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::InfMax,
            }]),
            backward: false,
            limit: None,
            page_size: Some(300),
            options: ReadOptions::default(),
        })
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1000);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, r)| r.primary_key == key(i as i64))
    );
    server.kill9().await;
}

/// Writers that put batches of rows until their server goes away, each batch's keys taken
/// from `first` on; the keys acknowledged.
async fn write_until_refused(client: ots_client::Client, first: i64) -> Vec<i64> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut acknowledged = Vec::new();
    for batch in 0.. {
        let keys: Vec<i64> = (0..50).map(|i| first + batch * 50 + i).collect();
        let changes: Vec<RowChange> = keys.iter().map(|&k| put(k, k, now)).collect();
        let Ok(outcomes) = client.batch_write_row("durable", &changes).await else {
            break;
        };
        for (k, outcome) in keys.into_iter().zip(outcomes) {
            if outcome.is_ok() {
                acknowledged.push(k);
            }
        }
    }
    acknowledged
}

/// `shutdown` returns only once the database is closed (its writer thread joined), so a
/// server can be started over the same data at once, even while writes were arriving; and
/// every write it acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shut_down_under_writes_reopens_at_once_with_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let faults = ots_local_server::FaultConfig::default;
    let mut acknowledged = Vec::new();
    for round in 0..5 {
        let server = LocalServer::start_in(dir.path(), faults())
            .await
            .unwrap_or_else(|e| panic!("round {round}: the server does not reopen: {e}"));
        let client = server.client();
        if round == 0 {
            create_durable_table(&client).await;
        }
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let first = (round * 4 + w) * 1_000_000;
                tokio::spawn(write_until_refused(client.clone(), first))
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        server.shutdown().await;
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }
    }
    let server = LocalServer::start_in(dir.path(), faults()).await.unwrap();
    let stored: std::collections::HashSet<PrimaryKey> =
        ots_testkit::table_contents(&server.client(), "durable")
            .await
            .into_iter()
            .map(|row| row.primary_key)
            .collect();
    assert!(
        acknowledged.len() > 1000,
        "few writes: {}",
        acknowledged.len()
    );
    let lost: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|&k| !stored.contains(&key(k)))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_and_misaddressed_requests_are_refused() {
    let server = LocalServer::start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/ListTable", server.url()))
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = response.bytes().await.unwrap();
    let error = <ots_protocol::pb::table::Error as prost::Message>::decode(body.as_ref()).unwrap();
    assert_eq!(error.code, "OTSAuthFailed");
    assert!(error.message.unwrap().contains("missing header"));

    let mut config = server.client().config().clone();
    config.instance_name = "other".into();
    let err = ots_client::Client::new(config)
        .unwrap()
        .list_table()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::AuthFailed));
    server.shutdown().await;
}
