//! The backup process: a Stream tunnel of its own feeds the change log, snapshots are taken
//! at start and then periodically, the log's coverage is read from the tunnel's consume
//! point, and retention drops what no restore in the retention period needs. Resumable after
//! kill -9: the tunnel's checkpoints only move past records whose segment is listed in the
//! stored manifest, and a snapshot goes on from its last listed segment.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use ots_client::{Client, ClientError};
use ots_protocol::pb::table::DescribeTableResponse;
use ots_protocol::pb::tunnel::{NANOS_PER_MILLI, TunnelStage, TunnelType};
use ots_replicator::config::TableEndpoint;
use ots_replicator::setup::{self, SetupError, TunnelWanted};
use ots_tunnel::{Session, WorkerConfig, WorkerError};
use prost::Message;

use crate::Progress;
use crate::journal::Journal;
use crate::log::LogSink;
use crate::manifest::{FORMAT, Manifest};
use crate::metrics::BackupMetrics;
use crate::snapshot;
use crate::store::{BackupStore, StoreError};

/// How the backup runs.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The table to back up.
    pub source: TableEndpoint,
    /// Whether the source's stream may be enabled when it is off.
    pub enable_stream: bool,
    /// The Stream tunnel the log is read from (created by the first run).
    pub tunnel_name: String,
    /// Time between the starts of snapshots.
    pub snapshot_interval: Duration,
    /// Every instant of this past period stays restorable.
    pub retention: Duration,
    /// How far before a snapshot's start its replay begins: longer than a write may take
    /// between its commit time and its commit, plus the clock difference between the service
    /// and this machine.
    pub margin: Duration,
    /// Time between reads of the tunnel's consume point (the log's coverage).
    pub coverage_interval: Duration,
    /// Rows per snapshot segment (cut at page boundaries).
    pub rows_per_segment: usize,
    /// Log segments listed in the manifest before they are sealed into an index.
    pub seal_after: usize,
    /// The tunnel worker's settings.
    pub worker: WorkerConfig,
}

impl BackupOptions {
    /// Options with the defaults: a snapshot a day, 35 days of retention (DynamoDB's
    /// point-in-time recovery window), a minute of margin.
    pub fn new(source: TableEndpoint, tunnel_name: String) -> Self {
        Self {
            source,
            enable_stream: false,
            tunnel_name,
            snapshot_interval: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(35 * 24 * 3600),
            margin: Duration::from_secs(60),
            coverage_interval: Duration::from_secs(5),
            rows_per_segment: 10_000,
            seal_after: 256,
            worker: WorkerConfig::default(),
        }
    }
}

/// Why the backup stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A call to the source failed.
    #[error("{action}: {error}")]
    Source {
        /// What was being done.
        action: String,
        /// The failure.
        error: ClientError,
    },
    /// Setting up the source's stream or the tunnel failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The backup store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tunnel worker failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The store holds a backup of another table.
    #[error(
        "backup store {store} holds a backup of table {found} (instance {instance}), not {wanted}; use another store"
    )]
    OtherTable {
        /// The store.
        store: String,
        /// The table backed up there.
        found: String,
        /// Its instance.
        instance: String,
        /// The table asked for.
        wanted: String,
    },
    /// The backup's tunnel is gone or is another one: the log has a gap.
    #[error(
        "the backup's tunnel {tunnel} (id {expected}) {problem}; the log would have a gap, so this backup cannot go on: start a new one in another store"
    )]
    TunnelChanged {
        /// The tunnel name.
        tunnel: String,
        /// The id the manifest records.
        expected: String,
        /// What happened to it.
        problem: String,
    },
    /// A tunnel of the name exists and delivered records to someone else.
    #[error(
        "tunnel {tunnel} already delivered records, which a new backup would miss; choose another tunnel name (--tunnel)"
    )]
    TunnelUsed {
        /// The tunnel name.
        tunnel: String,
    },
    /// The tunnel expired: records were trimmed before the backup read them.
    #[error(
        "tunnel {tunnel} expired: the backup was stopped longer than the stream keeps records, so changes were lost; start a new backup in another store"
    )]
    TunnelExpired {
        /// The tunnel name.
        tunnel: String,
    },
    /// A snapshot's resume position does not decode.
    #[error("snapshot {snapshot} cannot resume from {position:?}: not a primary key")]
    Resume {
        /// The snapshot.
        snapshot: u64,
        /// The stored position.
        position: String,
    },
}

/// What a backup run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The counters at the end.
    pub counts: crate::metrics::BackupCounts,
    /// The restorable window at the end, if any.
    pub window: Option<crate::Window>,
}

fn source_error(action: impl Into<String>) -> impl FnOnce(ClientError) -> BackupError {
    let action = action.into();
    move |error| BackupError::Source { action, error }
}

/// Runs the backup into `store` until `shutdown` resolves or it fails for good.
pub async fn run(
    options: &BackupOptions,
    store: BackupStore,
    metrics: Arc<BackupMetrics>,
    progress: Arc<dyn Progress>,
    shutdown: impl Future<Output = ()>,
) -> Result<BackupSummary, BackupError> {
    let client = options
        .source
        .client()
        .map_err(source_error("building the source client"))?;
    let table = options.source.table_name.clone();
    setup::ensure_source_stream(&client, &table, options.enable_stream).await?;
    let manifest = open(options, &client, &store).await?;
    let schema = store.schema(&manifest)?;
    let tunnel_id = manifest.tunnel_id.clone();
    let journal = Arc::new(Journal::new(
        store,
        manifest,
        options.seal_after,
        metrics.clone(),
    ));
    let collected = journal.collect_garbage().await?;
    if collected > 0 {
        tracing::info!(
            objects = collected,
            "deleted objects a previous run left unlisted"
        );
    }
    tracing::info!(%table, tunnel = %options.tunnel_name, %tunnel_id, store = journal.store.name(), "backup starting");

    let sink = Arc::new(LogSink::default());
    let client_id = Mutex::new(String::new());
    let session = Session {
        client: &client,
        tunnel_id: &tunnel_id,
        config: &options.worker,
        sink: &sink,
        client_id: &client_id,
    };
    let worker = session.start().await?;
    let work = async {
        tokio::select! {
            () = sink.write_loop(&journal) => unreachable!("the log writer runs until dropped"),
            result = snapshots(options, &client, &schema, &journal, &*progress) => result,
            result = coverage(options, &client, &journal) => result,
        }
    };
    match session.run(worker, work, shutdown).await? {
        Some(Err(error)) => Err(error),
        Some(Ok(())) | None => Ok(BackupSummary {
            counts: metrics.counts(),
            window: journal.manifest().await.window(),
        }),
    }
}

/// Loads the store's manifest and checks it belongs to this table and tunnel, or starts a
/// backup: creates the Stream tunnel and stores the first manifest.
async fn open(
    options: &BackupOptions,
    client: &Client,
    store: &BackupStore,
) -> Result<Manifest, BackupError> {
    let source = &options.source;
    let table = &source.table_name;
    if store.has_manifest().await? {
        let manifest = store.load_manifest().await?;
        if manifest.table != *table || manifest.instance != source.instance_name {
            return Err(BackupError::OtherTable {
                store: store.name().to_owned(),
                found: manifest.table,
                instance: manifest.instance,
                wanted: table.clone(),
            });
        }
        let changed = |problem: String| BackupError::TunnelChanged {
            tunnel: manifest.tunnel_name.clone(),
            expected: manifest.tunnel_id.clone(),
            problem,
        };
        let description = match client.describe_tunnel(table, &manifest.tunnel_name).await {
            Ok(description) => description,
            Err(e) if e.is(ots_protocol::error::ErrorCode::ObjectNotExist) => {
                return Err(changed("no longer exists".into()));
            }
            Err(e) => {
                return Err(source_error(format!(
                    "describing tunnel {}",
                    manifest.tunnel_name
                ))(e));
            }
        };
        if description.tunnel.tunnel_id != manifest.tunnel_id {
            return Err(changed(format!(
                "was deleted and created again (now id {})",
                description.tunnel.tunnel_id
            )));
        }
        if description.tunnel.expired == Some(true) {
            return Err(BackupError::TunnelExpired {
                tunnel: manifest.tunnel_name.clone(),
            });
        }
        return Ok(manifest);
    }
    let schema = client
        .describe_table(table)
        .await
        .map_err(source_error(format!("describing table {table}")))?;
    let tunnel_id = setup::ensure_tunnel(
        client,
        table,
        &options.tunnel_name,
        TunnelWanted {
            tunnel_type: TunnelType::Stream,
            start_time: None,
            end_time: None,
        },
    )
    .await?;
    let description = client
        .describe_tunnel(table, &options.tunnel_name)
        .await
        .map_err(source_error(format!(
            "describing tunnel {}",
            options.tunnel_name
        )))?;
    if description
        .channels
        .iter()
        .any(|c| c.channel_count.unwrap_or(0) > 0)
    {
        return Err(BackupError::TunnelUsed {
            tunnel: options.tunnel_name.clone(),
        });
    }
    let created_us = description
        .tunnel
        .create_time
        .map_or_else(|| Utc::now().timestamp_micros(), |ns| ns / 1000);
    let manifest = Manifest {
        format: FORMAT,
        endpoint: source.endpoint.clone(),
        instance: source.instance_name.clone(),
        table: table.clone(),
        schema: BASE64.encode(schema.encode_to_vec()),
        tunnel_name: options.tunnel_name.clone(),
        tunnel_id,
        log_from_us: created_us,
        covered_until_ms: None,
        margin_ms: options.margin.as_millis() as i64,
        next_segment: 0,
        snapshots: Vec::new(),
        log_indexes: Vec::new(),
        log: Vec::new(),
    };
    store.save_manifest(&manifest).await?;
    tracing::info!(%table, tunnel = %options.tunnel_name, "started a new backup");
    Ok(manifest)
}

/// Takes snapshots forever: resumes one left running, takes the first once the log covers
/// its margin, then one every `snapshot_interval`; applies retention after each. A failed
/// scan is retried after a pause (the log goes on meanwhile).
async fn snapshots(
    options: &BackupOptions,
    client: &Client,
    schema: &DescribeTableResponse,
    journal: &Journal,
    progress: &dyn Progress,
) -> Result<(), BackupError> {
    let interval_us = options.snapshot_interval.as_micros() as i64;
    loop {
        let manifest = journal.manifest().await;
        let now_us = Utc::now().timestamp_micros();
        let due_us = if manifest.snapshots.iter().any(|s| !s.finished()) {
            now_us
        } else {
            let earliest = manifest.log_from_us + manifest.margin_ms * 1000;
            let next = manifest
                .snapshots
                .iter()
                .map(|s| s.started_us + interval_us)
                .max()
                .unwrap_or(earliest);
            next.max(earliest)
        };
        if due_us > now_us {
            tokio::time::sleep(Duration::from_micros((due_us - now_us) as u64)).await;
            continue;
        }
        let running = snapshot::begin(journal, now_us).await?;
        match snapshot::scan(
            journal,
            client,
            schema,
            &running,
            options.rows_per_segment,
            progress,
        )
        .await
        {
            Ok(rows) => {
                tracing::info!(snapshot = running.id, rows, "snapshot finished");
                let now_ms = Utc::now().timestamp_millis();
                let deleted = journal
                    .apply_retention(now_ms, options.retention.as_millis() as i64)
                    .await?;
                if deleted > 0 {
                    tracing::info!(objects = deleted, "retention deleted old snapshots and log");
                }
            }
            Err(error @ (BackupError::Source { .. } | BackupError::Store(_))) => {
                progress.end();
                tracing::warn!(%error, snapshot = running.id, "snapshot failed; retrying in a while");
                tokio::time::sleep(options.coverage_interval.max(Duration::from_secs(1))).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// How long after a caught-up consume point writes may still land with an earlier commit
/// time: the coverage stays this far behind now.
const SETTLE_MS: i64 = 1000;

/// Reads the tunnel's consume point every `coverage_interval` and stores the log's coverage:
/// every change committed up to it is in a listed segment, since a channel's checkpoint moves
/// only past stored batches. Fails when the tunnel expired.
async fn coverage(
    options: &BackupOptions,
    client: &Client,
    journal: &Journal,
) -> Result<(), BackupError> {
    let table = &options.source.table_name;
    let tunnel = &options.tunnel_name;
    let mut ticker = tokio::time::interval(options.coverage_interval);
    loop {
        ticker.tick().await;
        let asked_ms = Utc::now().timestamp_millis();
        let description = match client.describe_tunnel(table, tunnel).await {
            Ok(description) => description,
            Err(error) => {
                tracing::warn!(%error, %tunnel, "DescribeTunnel failed; the coverage waits");
                continue;
            }
        };
        if description.tunnel.expired == Some(true) {
            return Err(BackupError::TunnelExpired {
                tunnel: tunnel.clone(),
            });
        }
        if description.tunnel.stage() != Some(TunnelStage::ProcessStream) {
            continue;
        }
        let Some(consumed_ms) = description
            .tunnel_rpo
            .filter(|&ns| ns > 0)
            .map(|ns| ns / NANOS_PER_MILLI)
        else {
            continue;
        };
        let covered_ms = consumed_ms.min(asked_ms - SETTLE_MS);
        journal
            .update(|m| {
                if m.covered_until_ms.is_none_or(|c| covered_ms > c) {
                    m.covered_until_ms = Some(covered_ms);
                }
            })
            .await?;
        journal.metrics.covered_until(covered_ms);
    }
}
