//! The Tunnel Service over HTTP with the client's tunnel calls: base data then stream,
//! parent-before-child order across a partition split, checkpoints that survive a restart,
//! consume points, and rejected foreign checkpoints.

use ots_client::Client;
use ots_local_server::api::{SplitPartitionRequest, SplitPartitionResponse};
use ots_protocol::error::ErrorCode;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, ReservedThroughput,
    StreamSpecification, TableMeta,
};
use ots_protocol::pb::tunnel::{Channel, ChannelStatus, FINISH_TAG, TunnelType};
use ots_protocol::plainbuffer;
use ots_protocol::record::TunnelRecord;
use ots_testkit::LocalServer;

fn id(i: i64) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: "id".into(),
        value: PrimaryKeyValue::Integer(i),
    }])
}

fn put(i: i64, v: i64) -> RowChange {
    RowChange::Put {
        primary_key: id(i),
        cells: vec![Cell {
            name: "v".into(),
            value: Value::Integer(v),
            timestamp: None,
        }],
    }
}

async fn create_table(client: &Client) {
    client
        .create_table(&CreateTableRequest {
            table_meta: TableMeta {
                table_name: "src".into(),
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
            stream_spec: Some(StreamSpecification {
                enable_stream: true,
                expiration_time: Some(24),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn write(client: &Client, changes: Vec<RowChange>) {
    for chunk in changes.chunks(200) {
        let outcomes = client.batch_write_row("src", chunk).await.unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
    }
}

/// A worker's view of one channel: drains it from its checkpoint, checkpointing each page.
async fn drain(
    client: &Client,
    tunnel: &str,
    worker: &str,
    channel: &str,
) -> (Vec<TunnelRecord>, bool) {
    let checkpoint = client
        .get_checkpoint(tunnel, worker, channel)
        .await
        .unwrap();
    let (mut token, mut seq) = (checkpoint.checkpoint, checkpoint.sequence_number);
    let mut records = Vec::new();
    loop {
        if token == FINISH_TAG {
            return (records, true);
        }
        let page = client
            .read_records(tunnel, worker, channel, &token)
            .await
            .unwrap();
        if page.records.is_empty() && page.next_token == token {
            return (records, false);
        }
        records.extend(page.records);
        seq += 1;
        client
            .checkpoint(tunnel, worker, channel, &page.next_token, seq)
            .await
            .unwrap();
        token = page.next_token;
    }
}

/// Heartbeats, closing the channels the server revokes; returns the open channel ids.
async fn heartbeat(
    client: &Client,
    tunnel: &str,
    worker: &str,
    held: &mut Vec<Channel>,
) -> Vec<String> {
    let answer = client
        .heartbeat(tunnel, worker, held.clone())
        .await
        .unwrap();
    held.clear();
    let mut open = Vec::new();
    for channel in answer {
        match ChannelStatus::try_from(channel.status).unwrap() {
            ChannelStatus::Open => {
                open.push(channel.channel_id.clone());
                held.push(channel);
            }
            ChannelStatus::Closing => held.push(Channel {
                status: ChannelStatus::Close as i32,
                ..channel
            }),
            _ => {}
        }
    }
    open
}

fn keys(records: &[TunnelRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| match r.change.primary_key().0[0].value {
            PrimaryKeyValue::Integer(i) => i,
            _ => unreachable!(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn base_then_stream_in_order_across_splits_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = LocalServer::start_in(dir.path(), Default::default())
        .await
        .unwrap();
    let client = server.client();
    create_table(&client).await;
    write(&client, (0..300).map(|i| put(i, 0)).collect()).await;

    let tunnel = client
        .create_tunnel("src", "t1", TunnelType::BaseAndStream)
        .await
        .unwrap();
    let err = client
        .create_tunnel("src", "t1", TunnelType::BaseAndStream)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::TunnelExist));
    // Changes after creation: they must come through the stream, in commit order.
    write(
        &client,
        vec![
            put(5, 1),
            RowChange::Delete { primary_key: id(6) },
            put(1000, 1),
        ],
    )
    .await;

    let worker = client.connect_tunnel(&tunnel, 30, "w1").await.unwrap();
    let mut held = Vec::new();
    let open = heartbeat(&client, &tunnel, &worker, &mut held).await;
    assert!(open.iter().all(|c| c.starts_with("base-")), "{open:?}");
    let described = client.describe_tunnel("src", "t1").await.unwrap();
    assert_eq!(described.tunnel.stage, "ProcessBaseData");

    let mut base = Vec::new();
    for channel in &open {
        let (records, finished) = drain(&client, &tunnel, &worker, channel).await;
        assert!(finished);
        base.extend(records);
    }
    let mut base_keys = keys(&base);
    base_keys.sort();
    let mut expected: Vec<i64> = (0..300).filter(|i| *i != 6).collect();
    expected.push(1000);
    assert_eq!(base_keys, expected, "base data is the table's rows");

    // Finished base channels are revoked, then the stream channel opens.
    heartbeat(&client, &tunnel, &worker, &mut held).await;
    let open = heartbeat(&client, &tunnel, &worker, &mut held).await;
    assert_eq!(open, vec!["stream-0"]);
    let (stream, finished) = drain(&client, &tunnel, &worker, "stream-0").await;
    assert!(!finished);
    assert_eq!(keys(&stream), vec![5, 6, 1000]);
    assert!(matches!(stream[1].change, RowChange::Delete { .. }));
    assert!(stream.iter().all(|r| r.sequence_info.is_some()));
    let described = client.describe_tunnel("src", "t1").await.unwrap();
    assert_eq!(described.tunnel.stage, "ProcessStream");
    // The consume point is in nanoseconds, as the SDKs read it.
    let caught_up = described.consume_point_millis().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        caught_up >= now - 5_000 && caught_up <= now,
        "{caught_up} vs {now}"
    );

    // Split: the parent's remaining records come before any child's.
    write(&client, vec![put(10, 2), put(500, 2)]).await;
    let split: SplitPartitionResponse = client
        .call(
            "/admin/SplitPartition",
            &SplitPartitionRequest {
                table_name: "src".into(),
                partition_id: 0,
                split_point: plainbuffer::encode_primary_key(&id(100)),
            },
            false,
        )
        .await
        .unwrap();
    write(&client, vec![put(11, 3), put(501, 3)]).await;
    let open = heartbeat(&client, &tunnel, &worker, &mut held).await;
    assert_eq!(open, vec!["stream-0"], "children wait for their parent");

    // Restart the server mid-consumption: checkpoints and ownership are durable.
    server.shutdown().await;
    server = LocalServer::start_in(dir.path(), Default::default())
        .await
        .unwrap();
    let client = server.client();
    let (rest, finished) = drain(&client, &tunnel, &worker, "stream-0").await;
    assert!(finished);
    assert_eq!(
        keys(&rest),
        vec![10, 500],
        "nothing replayed from before the checkpoint"
    );

    heartbeat(&client, &tunnel, &worker, &mut held).await;
    let mut open = heartbeat(&client, &tunnel, &worker, &mut held).await;
    open.sort();
    let mut children = vec![
        format!("stream-{}", split.left),
        format!("stream-{}", split.right),
    ];
    children.sort();
    assert_eq!(open, children);
    let (left, _) = drain(&client, &tunnel, &worker, &format!("stream-{}", split.left)).await;
    let (right, _) = drain(
        &client,
        &tunnel,
        &worker,
        &format!("stream-{}", split.right),
    )
    .await;
    assert_eq!(keys(&left), vec![11]);
    assert_eq!(keys(&right), vec![501]);

    // A second worker may not checkpoint a channel it does not hold.
    let other = client.connect_tunnel(&tunnel, 30, "w2").await.unwrap();
    let err = client
        .checkpoint(&tunnel, &other, &children[0], "1", 99)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ResourceGone));
    client
        .shutdown_tunnel_client(&tunnel, &worker)
        .await
        .unwrap();
    client
        .shutdown_tunnel_client(&tunnel, &other)
        .await
        .unwrap();
    assert_eq!(client.list_tunnel(Some("src")).await.unwrap().len(), 1);
    client.delete_tunnel("src", "t1").await.unwrap();
    assert!(client.list_tunnel(Some("src")).await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_tunnel_reports_what_the_sdks_read() {
    let server = LocalServer::start().await;
    let client = server.client();
    create_table(&client).await;
    write(&client, (0..3).map(|i| put(i, 0)).collect()).await;
    let tunnel = client
        .create_tunnel("src", "t", TunnelType::BaseAndStream)
        .await
        .unwrap();
    let described = client.describe_tunnel("src", "t").await.unwrap();
    let info = &described.tunnel;
    // Times are nanoseconds: the Go SDK reads create_time with time.Unix(0, t), Java divides
    // channel_rpo by 1e6 (tunnel/api.go, ResponseFactory.java).
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let created = info.create_time.unwrap();
    assert!(
        (now_ns - created).abs() < 60_000_000_000,
        "{created} ns vs {now_ns}"
    );
    assert_eq!(info.instance_name, "local");
    assert_eq!(info.tunnel_type, "BaseAndStream");
    assert_eq!(info.stage, "ProcessBaseData");
    assert!(
        described
            .channels
            .iter()
            .all(|c| c.channel_status.as_deref() == Some("WAIT") && c.channel_count == Some(0)),
        "channels nobody holds wait: {:?}",
        described.channels
    );

    let worker = client.connect_tunnel(&tunnel, 30, "w").await.unwrap();
    let mut held = Vec::new();
    heartbeat(&client, &tunnel, &worker, &mut held).await;
    let (base, finished) = drain(&client, &tunnel, &worker, "base-0").await;
    assert!(finished);
    assert_eq!(keys(&base), vec![0, 1, 2]);
    let described = client.describe_tunnel("src", "t").await.unwrap();
    let channel = |id: &str| {
        described
            .channels
            .iter()
            .find(|c| c.channel_id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        channel("base-0").channel_status.as_deref(),
        Some("TERMINATED")
    );
    assert_eq!(
        channel("base-0").channel_count,
        Some(3),
        "channel_count is rows synchronized"
    );

    // GetRpo (Go SDK only) answers JSON the SDK unmarshals into maps of RpoLatency.
    let rpo: ots_protocol::pb::tunnel::GetRpoResponse = client
        .call(
            ots_protocol::pb::tunnel::paths::GET_RPO,
            &ots_protocol::pb::tunnel::GetRpoRequest {
                tunnel_id: Some(tunnel.clone()),
                limit: None,
            },
            true,
        )
        .await
        .unwrap();
    let infos: serde_json::Value = serde_json::from_slice(&rpo.rpo_infos.unwrap()).unwrap();
    let base_rpo = infos["base-0"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(base_rpo["TotalCount"], 3);
    assert_eq!(base_rpo["ChannelTyp"], "BaseData");
    let tunnels: serde_json::Value =
        serde_json::from_slice(&rpo.tunnel_rpo_infos.unwrap()).unwrap();
    assert_eq!(tunnels[&tunnel]["TotalCount"], 3);

    // Schedule suspends a channel: it shows CLOSING and is handed to nobody.
    let _: ots_protocol::pb::tunnel::ScheduleResponse = client
        .call(
            ots_protocol::pb::tunnel::paths::SCHEDULE,
            &ots_protocol::pb::tunnel::ScheduleRequest {
                tunnel_id: tunnel.clone(),
                channels: vec![Channel {
                    channel_id: "stream-0".into(),
                    version: 0,
                    status: ChannelStatus::Closing as i32,
                    detail: None,
                }],
            },
            false,
        )
        .await
        .unwrap();
    let described = client.describe_tunnel("src", "t").await.unwrap();
    let stream = described
        .channels
        .iter()
        .find(|c| c.channel_id == "stream-0")
        .unwrap();
    assert_eq!(stream.channel_status.as_deref(), Some("CLOSING"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn create_tunnel_enables_a_missing_stream_and_refuses_what_it_cannot_do() {
    let server = LocalServer::start().await;
    let client = server.client();
    client
        .create_table(&CreateTableRequest {
            table_meta: TableMeta {
                table_name: "plain".into(),
                primary_key: vec![PrimaryKeySchema {
                    name: "id".into(),
                    r#type: PrimaryKeyType::Integer as i32,
                    option: None,
                }],
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    // The service enables the stream, keeping records 7 days (the Java SDK's "Create a tunnel").
    client
        .create_tunnel("plain", "t", TunnelType::Stream)
        .await
        .unwrap();
    let details = client
        .describe_table("plain")
        .await
        .unwrap()
        .stream_details
        .unwrap();
    assert!(details.enable_stream);
    assert_eq!(details.expiration_time, Some(168));
    assert!(details.last_enable_time.is_some());

    let from_earliest = ots_protocol::pb::tunnel::CreateTunnelRequest {
        tunnel: ots_protocol::pb::tunnel::Tunnel {
            table_name: "plain".into(),
            tunnel_name: "earliest".into(),
            tunnel_type: TunnelType::Stream as i32,
            stream_tunnel_config: Some(ots_protocol::pb::tunnel::StreamTunnelConfig {
                flag: Some(ots_protocol::pb::tunnel::StartOffsetFlag::Earliest as i32),
                start_offset: None,
                end_offset: None,
            }),
            need_all_time_series_columns: None,
        },
    };
    let err = client
        .call::<_, ots_protocol::pb::tunnel::CreateTunnelResponse>(
            ots_protocol::pb::tunnel::paths::CREATE_TUNNEL,
            &from_earliest,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::UnsupportOperation));
    server.shutdown().await;
}
