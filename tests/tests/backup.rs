//! Continuous backup and point-in-time restore against the local server. Under a write load,
//! the source's exact contents (every version of every row) are captured at instants when the
//! writers are paused; a restore to each instant must equal what was captured, across two
//! snapshots and partition splits. Bad inputs — an instant outside the window, a damaged or
//! missing segment, a missing or edited manifest — are refused and no table is created.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ots_backup::metrics::BackupMetrics;
use ots_backup::restore::{RestoreError, RestoreOptions, RestoreSummary, restore};
use ots_backup::run::{BackupOptions, BackupSummary, run};
use ots_backup::{BackupStore, Manifest, NoProgress, StoreError};
use ots_client::Client;
use ots_e2e::{LocalServer, split_partition, wait_until};
use ots_protocol::model::Row;
use ots_replicator::config::ProcessorConfig;
use ots_testkit::table_contents;
use ots_testkit::workload::WriteLoad;
use tokio::sync::oneshot;

const SOURCE: &str = "src";
const ROWS: i64 = 1500;

/// Backup options scaled down for a test: snapshots every 4 s, coverage read every 200 ms.
fn options(server: &LocalServer) -> BackupOptions {
    let config = server.config(SOURCE, "unused", "unused", ProcessorConfig::default());
    let mut options = BackupOptions::new(config.source, "backup".into());
    options.snapshot_interval = Duration::from_secs(4);
    options.margin = Duration::from_millis(500);
    options.coverage_interval = Duration::from_millis(200);
    options.rows_per_segment = 300;
    options.seal_after = 3;
    options.worker.idle_pause = Duration::from_millis(50);
    options
}

/// A backup running in the background until [`Backup::stop`].
struct Backup {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<BackupSummary, ots_backup::run::BackupError>>,
}

impl Backup {
    fn start(options: BackupOptions, store: BackupStore) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(
                &options,
                store,
                Arc::new(BackupMetrics::default()),
                Arc::new(NoProgress),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        Self { stop, task }
    }

    async fn stop(self) -> BackupSummary {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap()
            .expect("the backup ran without error")
    }
}

fn load(client: &Client) -> WriteLoad {
    ots_e2e::write_load(client, SOURCE, ROWS, Duration::from_millis(30))
}

/// Pauses the writers, notes the instant and reads the source's exact contents, then
/// restarts the writers.
async fn capture(writers: WriteLoad, client: &Client) -> (WriteLoad, DateTime<Utc>, Vec<Row>) {
    writers.stop().await.expect("the write load");
    let at = ots_e2e::instant().await;
    let rows = table_contents(client, SOURCE).await;
    (load(client), at, rows)
}

async fn manifest_where(store: &BackupStore, what: &str, check: impl Fn(&Manifest) -> bool) {
    wait_until(what, Duration::from_secs(60), || async {
        match store.load_manifest().await {
            Ok(manifest) => check(&manifest),
            Err(_) => false,
        }
    })
    .await;
}

async fn covered(store: &BackupStore, at: DateTime<Utc>) {
    let ms = at.timestamp_millis();
    manifest_where(store, "the log's coverage to reach the instant", |m| {
        m.covered_until_ms.is_some_and(|c| c >= ms)
    })
    .await;
}

async fn restore_to(
    store: &BackupStore,
    client: &Client,
    at: DateTime<Utc>,
    table: &str,
) -> Result<RestoreSummary, RestoreError> {
    restore(
        store,
        client,
        &RestoreOptions {
            to: at,
            table: table.into(),
            batch_write_count: 200,
        },
        &NoProgress,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_to_instants_under_write_load_equal_the_source_then() {
    let server = LocalServer::start().await;
    let client = ots_e2e::source_with_rows(&server, SOURCE, ROWS).await;
    split_partition(&client, SOURCE, 0, ROWS / 2).await;
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(dir.path().to_str().unwrap()).unwrap();
    let backup = Backup::start(options(&server), store.clone());

    let writers = load(&client);
    manifest_where(&store, "the first snapshot", |m| m.window().is_some()).await;
    let mut captures = Vec::new();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (writers, at, rows) = capture(writers, &client).await;
    captures.push((at, rows));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // A split while backing up: the parent's changes come before its children's.
    let (left, _) = split_partition(&client, SOURCE, 1, ROWS / 4).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (writers, at, rows) = capture(writers, &client).await;
    captures.push((at, rows));
    manifest_where(&store, "a second snapshot", |m| {
        m.snapshots.iter().filter(|s| s.finished()).count() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (writers, at, rows) = capture(writers, &client).await;
    captures.push((at, rows));
    split_partition(&client, SOURCE, left, ROWS / 8).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = writers.stop().await.unwrap();
    covered(&store, captures.last().unwrap().0).await;
    let summary = backup.stop().await;
    assert!(summary.counts.records_logged > 0);

    assert!(
        captures[0].1 != captures[1].1 && captures[1].1 != captures[2].1,
        "the writers changed the table between captures"
    );
    let mut snapshots = Vec::new();
    for (i, (at, expected)) in captures.iter().enumerate() {
        let table = format!("restored_{i}");
        let restored = restore_to(&store, &client, *at, &table).await.unwrap();
        let found = table_contents(&client, &table).await;
        assert_eq!(
            found.len(),
            expected.len(),
            "restore {i} to {at}: row count ({restored})"
        );
        assert!(
            found == *expected,
            "restore {i} to {at} differs ({restored})"
        );
        assert!(restored.replayed > 0, "restore {i} replayed the log");
        snapshots.push(restored.snapshot);
    }
    assert_eq!(
        snapshots[0], 0,
        "the first instant comes before the second snapshot"
    );
    assert!(
        snapshots[2] >= 1,
        "the last instant starts from a later snapshot"
    );
    assert!(written > 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_are_refused_and_create_no_table() {
    let server = LocalServer::start().await;
    let client = ots_e2e::source_with_rows(&server, SOURCE, 400).await;
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(dir.path().to_str().unwrap()).unwrap();
    let mut options = options(&server);
    options.seal_after = 1000;
    let backup = Backup::start(options, store.clone());
    manifest_where(&store, "the first snapshot", |m| m.window().is_some()).await;
    let writers = load(&client);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (writers, at, expected) = capture(writers, &client).await;
    writers.stop().await.unwrap();
    covered(&store, at).await;
    backup.stop().await;
    let manifest = store.load_manifest().await.unwrap();
    let window = manifest.window().unwrap();
    let tables = || async { client.list_table().await.unwrap() };
    let before = tables().await;

    // Instants outside the window.
    for outside in [window.from_ms - 1, window.until_ms + 60_000] {
        let error = restore_to(
            &store,
            &client,
            DateTime::from_timestamp_millis(outside).unwrap(),
            "r",
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("outside the restorable window"),
            "{error}"
        );
    }

    // A damaged snapshot segment, then a missing log segment.
    let snapshot_segment = dir.path().join(&manifest.snapshots[0].segments[0].path);
    let original = std::fs::read(&snapshot_segment).unwrap();
    let mut damaged = original.clone();
    damaged[original.len() / 2] ^= 0x01;
    std::fs::write(&snapshot_segment, &damaged).unwrap();
    let error = restore_to(&store, &client, at, "r").await.unwrap_err();
    assert!(
        matches!(&error, RestoreError::Store(StoreError::Damaged { path, .. }) if *path == manifest.snapshots[0].segments[0].path),
        "{error}"
    );
    std::fs::write(&snapshot_segment, &original).unwrap();
    let plan = manifest.plan(at.timestamp_millis()).unwrap();
    let log_segment = plan.segments.last().expect("the plan replays the tail");
    let moved = dir.path().join("moved.seg");
    std::fs::rename(dir.path().join(&log_segment.path), &moved).unwrap();
    let error = restore_to(&store, &client, at, "r").await.unwrap_err();
    assert!(error.to_string().contains("is missing"), "{error}");
    std::fs::rename(&moved, dir.path().join(&log_segment.path)).unwrap();

    // An edited manifest, then none at all.
    let manifest_path = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let edited = text.replacen("\"margin_ms\": 500", "\"margin_ms\": 0", 1);
    assert_ne!(edited, text);
    std::fs::write(&manifest_path, &edited).unwrap();
    let error = restore_to(&store, &client, at, "r").await.unwrap_err();
    assert!(
        error.to_string().contains("manifest.json is damaged"),
        "{error}"
    );
    let empty = tempfile::tempdir().unwrap();
    let nothing = BackupStore::open(empty.path().to_str().unwrap()).unwrap();
    let error = restore_to(&nothing, &client, at, "r").await.unwrap_err();
    assert!(
        error.to_string().contains("has no manifest.json"),
        "{error}"
    );
    assert_eq!(tables().await, before, "no table was created");

    // With the manifest back, the same restore works; a second one into the same table is
    // refused.
    std::fs::write(&manifest_path, &text).unwrap();
    restore_to(&store, &client, at, "r").await.unwrap();
    assert!(table_contents(&client, "r").await == expected);
    let error = restore_to(&store, &client, at, "r").await.unwrap_err();
    assert!(matches!(error, RestoreError::TableExists(_)), "{error}");
    server.shutdown().await;
}

/// What "as it was at T" means for writes in the same millisecond: a restore to T holds every
/// write committed in T's millisecond and none of the next. Writes of three rows each (one
/// commit, whose rows the server stamps with its commit time) follow one another; restores to
/// a commit's millisecond and to the one before must hold exactly the rows stamped up to
/// then: all of that commit's rows, then none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_holds_every_write_of_its_millisecond_and_none_after() {
    use ots_protocol::model::{Cell, RowChange, Value};
    let server = LocalServer::start().await;
    let client = ots_e2e::source_with_rows(&server, SOURCE, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(dir.path().to_str().unwrap()).unwrap();
    let backup = Backup::start(options(&server), store.clone());
    manifest_where(&store, "the first snapshot", |m| m.window().is_some()).await;

    for commit in 0..100 {
        let puts: Vec<RowChange> = (0..3)
            .map(|i| RowChange::Put {
                primary_key: ots_testkit::workload::key(10_000 + commit * 3 + i),
                cells: vec![Cell {
                    name: "name".into(),
                    value: Value::String(format!("commit {commit}")),
                    timestamp: None,
                }],
            })
            .collect();
        let outcomes = client.batch_write_row(SOURCE, &puts).await.unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
    }
    let rows = table_contents(&client, SOURCE).await;
    let commits: Vec<(i64, i64)> = rows
        .iter()
        .filter_map(|row| match row.primary_key.0[0].value {
            ots_protocol::model::PrimaryKeyValue::Integer(id) if id >= 10_000 => {
                Some((id, row.cells[0].timestamp.unwrap()))
            }
            _ => None,
        })
        .collect();
    let stamp_of = |id: i64| commits.iter().find(|c| c.0 == id).unwrap().1;
    let middle = 10_000 + 50 * 3;
    let shared_ms = stamp_of(middle);
    assert!(
        (middle..middle + 3).all(|id| stamp_of(id) == shared_ms),
        "a write's rows share its commit time"
    );
    let last_ms = commits.iter().map(|c| c.1).max().unwrap();
    assert!(last_ms > shared_ms);
    covered(&store, DateTime::from_timestamp_millis(last_ms).unwrap()).await;
    backup.stop().await;

    for (to_ms, table) in [(shared_ms, "at_ms"), (shared_ms - 1, "before_ms")] {
        restore_to(
            &store,
            &client,
            DateTime::from_timestamp_millis(to_ms).unwrap(),
            table,
        )
        .await
        .unwrap();
        let restored: Vec<i64> = table_contents(&client, table)
            .await
            .iter()
            .filter_map(|row| match row.primary_key.0[0].value {
                ots_protocol::model::PrimaryKeyValue::Integer(id) if id >= 10_000 => Some(id),
                _ => None,
            })
            .collect();
        let expected: Vec<i64> = commits
            .iter()
            .filter(|&&(_, ms)| ms <= to_ms)
            .map(|&(id, _)| id)
            .collect();
        assert_eq!(restored, expected, "restored to {to_ms}");
        assert_eq!(
            (middle..middle + 3).all(|id| restored.contains(&id)),
            to_ms == shared_ms,
            "the commit of {shared_ms} is in whole at its millisecond and absent before"
        );
    }
    server.shutdown().await;
}
