//! The Tunnel Service over HTTP with the client's tunnel calls: base data then stream,
//! parent-before-child order across a partition split, checkpoints that survive a restart,
//! consume points, rejected foreign checkpoints, tunnels over a time range, and tunnels that
//! expire when their records are trimmed.

use ots_client::Client;
use ots_local_server::api::{SplitPartitionRequest, SplitPartitionResponse};
use ots_protocol::error::ErrorCode;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, ReservedThroughput,
    StreamSpecification, TableMeta,
};
use ots_protocol::pb::tunnel::{
    Channel, ChannelStatus, FINISH_TAG, StartOffsetFlag, StreamTunnelConfig, TunnelType,
};
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
        .create_tunnel("src", "t1", TunnelType::BaseAndStream, None)
        .await
        .unwrap();
    let err = client
        .create_tunnel("src", "t1", TunnelType::BaseAndStream, None)
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
        .create_tunnel("src", "t", TunnelType::BaseAndStream, None)
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
async fn create_tunnel_enables_a_missing_stream() {
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
        .create_tunnel("plain", "t", TunnelType::Stream, None)
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

    server.shutdown().await;
}

/// The current time in nanoseconds, a few milliseconds away from any commit: commits land in
/// whole milliseconds, and an offset in the same millisecond as a commit would include it.
async fn instant_ns() -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let ms = chrono::Utc::now().timestamp_millis() as u64;
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    ms * 1_000_000
}

fn range(
    flag: Option<StartOffsetFlag>,
    start_offset: Option<u64>,
    end_offset: Option<u64>,
) -> Option<StreamTunnelConfig> {
    Some(StreamTunnelConfig {
        flag: flag.map(|f| f as i32),
        start_offset,
        end_offset,
    })
}

/// Connects a worker, takes the tunnel's one stream channel and drains it.
async fn drain_stream(client: &Client, tunnel: &str) -> (Vec<TunnelRecord>, bool) {
    let worker = client.connect_tunnel(tunnel, 30, "w").await.unwrap();
    let open = heartbeat(client, tunnel, &worker, &mut Vec::new()).await;
    assert_eq!(open, vec!["stream-0"]);
    drain(client, tunnel, &worker, "stream-0").await
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_configurations_deliver_a_window_of_the_log() {
    let server = LocalServer::start().await;
    let client = server.client();
    create_table(&client).await;
    write(&client, (1..=5).map(|i| put(i, 0)).collect()).await;
    let t_a = instant_ns().await;
    write(&client, (6..=10).map(|i| put(i, 0)).collect()).await;
    let t_b = instant_ns().await;
    write(&client, (11..=15).map(|i| put(i, 0)).collect()).await;

    let window = client
        .create_tunnel(
            "src",
            "window",
            TunnelType::Stream,
            range(None, Some(t_a), Some(t_b)),
        )
        .await
        .unwrap();
    let (records, finished) = drain_stream(&client, &window).await;
    assert_eq!(keys(&records), (6..=10).collect::<Vec<_>>());
    assert!(
        finished,
        "a record at or after the end offset ends the channel"
    );
    let info = client
        .describe_tunnel("src", "window")
        .await
        .unwrap()
        .tunnel;
    assert_eq!(info.stream_tunnel_config, range(None, Some(t_a), Some(t_b)));
    assert_eq!(info.expired, Some(false));

    let earliest = client
        .create_tunnel(
            "src",
            "earliest",
            TunnelType::Stream,
            range(Some(StartOffsetFlag::Earliest), None, None),
        )
        .await
        .unwrap();
    let (records, finished) = drain_stream(&client, &earliest).await;
    assert_eq!(keys(&records), (1..=15).collect::<Vec<_>>());
    assert!(!finished);

    // From now until a second from now: what is written before the end, then finished once
    // the end has passed and settled, though nothing was written after it.
    let end = chrono::Utc::now().timestamp_millis() as u64 * 1_000_000 + 1_000_000_000;
    let until = client
        .create_tunnel(
            "src",
            "until",
            TunnelType::Stream,
            range(Some(StartOffsetFlag::Latest), None, Some(end)),
        )
        .await
        .unwrap();
    write(&client, vec![put(16, 0)]).await;
    let worker = client.connect_tunnel(&until, 30, "w").await.unwrap();
    heartbeat(&client, &until, &worker, &mut Vec::new()).await;
    let (records, finished) = drain(&client, &until, &worker, "stream-0").await;
    assert_eq!(keys(&records), vec![16]);
    assert!(!finished, "the end has not passed");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (records, finished) = drain(&client, &until, &worker, "stream-0").await;
    assert!(records.is_empty());
    assert!(finished, "the end passed with nothing after it");

    let now_ns = chrono::Utc::now().timestamp_millis() as u64 * 1_000_000;
    for (name, kind, config, says) in [
        (
            "future",
            TunnelType::Stream,
            range(None, Some(now_ns + 60_000_000_000), None),
            "outside the valid range",
        ),
        (
            "ancient",
            TunnelType::Stream,
            range(None, Some(1_000_000_000), None),
            "outside the valid range",
        ),
        (
            "backwards",
            TunnelType::Stream,
            range(None, Some(t_b), Some(t_a)),
            "is not after the start",
        ),
        (
            "both",
            TunnelType::Stream,
            range(Some(StartOffsetFlag::Earliest), Some(t_a), None),
            "not both",
        ),
        (
            "base",
            TunnelType::BaseData,
            range(None, Some(t_a), None),
            "takes no stream configuration",
        ),
    ] {
        let error = client
            .create_tunnel("src", name, kind, config)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(&ErrorCode::ParameterInvalid), "{name}");
        assert!(error.to_string().contains(says), "{name}: {error}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_whose_records_were_trimmed_expires() {
    // An hour lasts 100 ms: the table's 24-hour stream keeps records 2.4 s.
    let server = LocalServer::start_with_stream_hour(std::time::Duration::from_millis(100)).await;
    let client = server.client();
    create_table(&client).await;
    let tunnel = client
        .create_tunnel("src", "slow", TunnelType::Stream, None)
        .await
        .unwrap();
    write(&client, vec![put(1, 0), put(2, 0)]).await;
    // 3 is written before 1 and 2 expire, so one trim takes both (the newest record of a
    // partition stays, to keep its sequence going).
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    write(&client, vec![put(3, 0)]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client
        .describe_tunnel("src", "slow")
        .await
        .unwrap()
        .tunnel
        .expired
        != Some(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "records 1 and 2 were never trimmed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let worker = client.connect_tunnel(&tunnel, 30, "w").await.unwrap();
    heartbeat(&client, &tunnel, &worker, &mut Vec::new()).await;
    let checkpoint = client
        .get_checkpoint(&tunnel, &worker, "stream-0")
        .await
        .unwrap();
    let error = client
        .read_records(&tunnel, &worker, "stream-0", &checkpoint.checkpoint)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::TunnelExpired), "{error}");

    // A tunnel from EARLIEST starts at what the stream still keeps.
    let earliest = client
        .create_tunnel(
            "src",
            "late",
            TunnelType::Stream,
            range(Some(StartOffsetFlag::Earliest), None, None),
        )
        .await
        .unwrap();
    let (records, _) = drain_stream(&client, &earliest).await;
    assert_eq!(keys(&records), vec![3]);
    server.shutdown().await;
}
