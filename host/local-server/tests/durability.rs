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

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], ots_testkit::free_port()));
    let server = spawn_server(dir.path(), listen).await;
    let client = server.client();
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
    let now = chrono::Utc::now().timestamp_millis();
    let mut acknowledged = 0;
    for batch in 0..5 {
        let changes: Vec<RowChange> = (0..200)
            .map(|i| RowChange::Put {
                primary_key: key(batch * 200 + i),
                cells: vec![Cell {
                    name: "v".into(),
                    value: Value::Integer(i),
                    timestamp: Some(now),
                }],
            })
            .collect();
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
