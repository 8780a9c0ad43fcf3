//! Tunnel workers against the local server over HTTP: several workers share the channels,
//! a worker that dies loses its channels to the others after the heartbeat timeout, failing
//! batches are retried (never skipped), and nothing is lost.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ots_client::Client;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, ReservedThroughput,
    StreamSpecification, TableMeta,
};
use ots_protocol::pb::tunnel::TunnelType;
use ots_testkit::LocalServer;
use ots_tunnel::{Flow, RecordBatch, RecordSink, SinkError, TunnelWorker, WorkerConfig};

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

async fn source_table(client: &Client, splits: &[(u32, i64)]) {
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
    for (partition, at) in splits {
        ots_testkit::split_partition(client, "src", *partition, *at).await;
    }
}

async fn write(client: &Client, changes: &[RowChange]) {
    for chunk in changes.chunks(200) {
        assert!(
            client
                .batch_write_row("src", chunk)
                .await
                .unwrap()
                .iter()
                .all(Result::is_ok)
        );
    }
}

/// Applies batches to an in-memory table (key → value), failing the first attempts of some.
#[derive(Default)]
struct MemoryTable {
    rows: Mutex<BTreeMap<i64, Option<i64>>>,
    seen: Mutex<HashSet<(i64, i64)>>,
    channels: Mutex<HashSet<String>>,
    fail_first: AtomicUsize,
}

impl RecordSink for MemoryTable {
    async fn take(&self, batch: &RecordBatch) -> Result<Flow, SinkError> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError::new(
                true,
                std::io::Error::other("injected failure"),
            ));
        }
        self.channels
            .lock()
            .unwrap()
            .insert(batch.channel_id.clone());
        // Taking a batch takes a little while, so the next page is read ahead meanwhile.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut rows = self.rows.lock().unwrap();
        for record in &batch.records {
            let PrimaryKeyValue::Integer(key) = record.change.primary_key().0[0].value else {
                unreachable!()
            };
            match &record.change {
                RowChange::Put { cells, .. } => {
                    let Value::Integer(v) = cells[0].value else {
                        unreachable!()
                    };
                    rows.insert(key, Some(v));
                    self.seen.lock().unwrap().insert((key, v));
                }
                RowChange::Delete { .. } => {
                    rows.insert(key, None);
                }
                RowChange::Update { .. } => unreachable!("the test writes puts and deletes"),
            }
        }
        Ok(Flow::Continue)
    }
}

/// One worker's view of the shared table, counting the batches it processed.
struct Counted {
    table: Arc<MemoryTable>,
    batches: AtomicUsize,
}

impl RecordSink for Counted {
    async fn take(&self, batch: &RecordBatch) -> Result<Flow, SinkError> {
        let flow = self.table.take(batch).await?;
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(flow)
    }
}

fn counted(table: &Arc<MemoryTable>) -> Arc<Counted> {
    Arc::new(Counted {
        table: table.clone(),
        batches: AtomicUsize::new(0),
    })
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(1),
        idle_pause: Duration::from_millis(20),
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        ..WorkerConfig::default()
    }
}

async fn wait_caught_up(client: &Client, since_ms: i64) {
    for _ in 0..300 {
        let described = client.describe_tunnel("src", "t").await.unwrap();
        if described.tunnel.stage == "ProcessStream"
            && described.consume_point_millis().unwrap_or(0) > since_ms
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the tunnel did not catch up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_share_channels_and_take_over_from_a_dead_one() {
    let server = LocalServer::start().await;
    let client = server.client();
    source_table(&client, &[(0, 200), (1, 100)]).await;
    let base: Vec<RowChange> = (0..300).map(|i| put(i, 0)).collect();
    write(&client, &base).await;
    client
        .create_tunnel("src", "t", TunnelType::BaseAndStream, None)
        .await
        .unwrap();

    let table = Arc::new(MemoryTable::default());
    let (a_view, b_view) = (counted(&table), counted(&table));
    let a = TunnelWorker::start(
        client.clone(),
        &tunnel_id(&client).await,
        fast(),
        a_view.clone(),
    )
    .await
    .unwrap();
    let mut b = Some(
        TunnelWorker::start(
            client.clone(),
            &tunnel_id(&client).await,
            fast(),
            b_view.clone(),
        )
        .await
        .unwrap(),
    );

    for round in 1..=20i64 {
        let changes: Vec<RowChange> = (0..300)
            .filter(|i| i % 7 != round % 7)
            .map(|i| put(i, round))
            .chain([RowChange::Delete {
                primary_key: id(round),
            }])
            .collect();
        write(&client, &changes).await;
        if round == 8 {
            b.take().unwrap().abandon(); // crashes: its channels move to `a` after the heartbeat timeout
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let done = chrono::Utc::now().timestamp_millis();
    wait_caught_up(&client, done).await;
    a.stop().await;
    let (by_a, by_b) = (
        a_view.batches.load(Ordering::SeqCst),
        b_view.batches.load(Ordering::SeqCst),
    );
    assert!(
        by_a > 0 && by_b > 0,
        "both workers held channels: {by_a} / {by_b}"
    );

    // The in-memory copy equals the source table.
    let mut expected = BTreeMap::new();
    for i in 0..300i64 {
        let last = (1..=20i64).rev().find(|r| i % 7 != r % 7).unwrap_or(0);
        expected.insert(i, Some(last));
    }
    for round in 1..=20i64 {
        let put_after = (round + 1..=20).any(|r| round % 7 != r % 7);
        if !put_after {
            expected.insert(round, None);
        }
    }
    let rows = table.rows.lock().unwrap().clone();
    assert_eq!(rows, expected);
    let channels = table.channels.lock().unwrap().clone();
    assert!(
        channels.len() >= 4,
        "base and three stream channels: {channels:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_batches_are_retried_not_skipped() {
    let server = LocalServer::start().await;
    let client = server.client();
    source_table(&client, &[]).await;
    write(&client, &(0..50).map(|i| put(i, 1)).collect::<Vec<_>>()).await;
    client
        .create_tunnel("src", "t", TunnelType::BaseAndStream, None)
        .await
        .unwrap();
    let table = Arc::new(MemoryTable {
        fail_first: AtomicUsize::new(5),
        ..MemoryTable::default()
    });
    let worker = TunnelWorker::start(
        client.clone(),
        &tunnel_id(&client).await,
        fast(),
        table.clone(),
    )
    .await
    .unwrap();
    write(&client, &(0..50).map(|i| put(i, 2)).collect::<Vec<_>>()).await;
    wait_caught_up(&client, chrono::Utc::now().timestamp_millis()).await;
    worker.stop().await;
    assert_eq!(table.fail_first.load(Ordering::SeqCst), 0);
    let seen = table.seen.lock().unwrap().clone();
    // Every stream record arrives despite the failures (base data is read when its channel
    // runs, so it may already show the later values).
    assert!((0..50).all(|i| seen.contains(&(i, 2))));
    assert!(table.rows.lock().unwrap().values().all(|v| *v == Some(2)));
    server.shutdown().await;
}

async fn tunnel_id(client: &Client) -> String {
    client
        .describe_tunnel("src", "t")
        .await
        .unwrap()
        .tunnel
        .tunnel_id
}

/// A source table of four partitions (keys split at 100, 200 and 300) and a Stream tunnel
/// `t` over it, one channel per partition; returns the tunnel's id.
async fn four_partition_stream(client: &Client) -> String {
    source_table(client, &[]).await;
    let (_, right) = ots_testkit::split_partition(client, "src", 0, 100).await;
    let (_, right) = ots_testkit::split_partition(client, "src", right, 200).await;
    ots_testkit::split_partition(client, "src", right, 300).await;
    client
        .create_tunnel("src", "t", TunnelType::Stream, None)
        .await
        .unwrap();
    tunnel_id(client).await
}

/// A sink that counts how many batches are being taken at once, and the most ever.
#[derive(Default)]
struct Overlap {
    table: MemoryTable,
    taking: AtomicUsize,
    most: AtomicUsize,
}

impl RecordSink for Overlap {
    async fn take(&self, batch: &RecordBatch) -> Result<Flow, SinkError> {
        let now = self.taking.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let flow = self.table.take(batch).await;
        self.taking.fetch_sub(1, Ordering::SeqCst);
        flow
    }
}

/// Four partitions' channels, all with records, taken by a slow sink: with room for many
/// pages they are taken side by side; with a read budget smaller than one page, one page at a
/// time is held in the whole worker, so the channels take turns. Every change arrives either
/// way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_read_budget_bounds_the_pages_all_channels_hold() {
    let server = LocalServer::start().await;
    let client = server.client();
    let tunnel = four_partition_stream(&client).await;
    let mut most = Vec::new();
    for (round, read_budget) in [(1, usize::MAX), (2, 1)] {
        let sink = Arc::new(Overlap::default());
        let config = WorkerConfig {
            read_budget,
            ..fast()
        };
        let worker = TunnelWorker::start(client.clone(), &tunnel, config, sink.clone())
            .await
            .unwrap();
        for _ in 0..5 {
            write(
                &client,
                &(0..400).map(|i| put(i, round)).collect::<Vec<_>>(),
            )
            .await;
        }
        let arrived = || {
            let seen = sink.table.seen.lock().unwrap();
            (0..400).filter(|&i| seen.contains(&(i, round))).count()
        };
        for _ in 0..400 {
            if arrived() == 400 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.stop().await;
        assert_eq!(arrived(), 400, "budget {read_budget}: changes missing");
        assert_eq!(
            sink.table.channels.lock().unwrap().len(),
            4,
            "one per partition"
        );
        most.push(sink.most.load(Ordering::SeqCst));
    }
    assert!(most[0] > 1, "without a limit, channels overlap: {most:?}");
    assert_eq!(
        most[1], 1,
        "within a one-byte budget, pages go one at a time"
    );
    server.shutdown().await;
}

/// Holds every channel at its first batch, as an end time does.
#[derive(Default)]
struct HoldAll {
    channels: Mutex<HashSet<String>>,
}

impl RecordSink for HoldAll {
    async fn take(&self, batch: &RecordBatch) -> Result<Flow, SinkError> {
        self.channels
            .lock()
            .unwrap()
            .insert(batch.channel_id.clone());
        Ok(Flow::Hold)
    }
}

/// A channel held at the end time reads no further and gives its pages' share of the read
/// budget back, so that, within a budget of one page, every other channel still gets to its
/// end time instead of waiting forever for the first held one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channels_held_at_the_end_time_give_their_read_budget_back() {
    let server = LocalServer::start().await;
    let client = server.client();
    let tunnel = four_partition_stream(&client).await;
    let sink = Arc::new(HoldAll::default());
    let config = WorkerConfig {
        read_budget: 1,
        ..fast()
    };
    let worker = TunnelWorker::start(client.clone(), &tunnel, config, sink.clone())
        .await
        .unwrap();
    write(&client, &(0..400).map(|i| put(i, 1)).collect::<Vec<_>>()).await;
    let held = || sink.channels.lock().unwrap().len();
    for _ in 0..200 {
        if held() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held(), 4, "channels that reached their first batch");
    worker.stop().await;
    server.shutdown().await;
}
