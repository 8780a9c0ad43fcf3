//! One replication run: set up the destination and the tunnel, consume the tunnel through the
//! processor, write durably, and stop at the end time or on shutdown.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ots_client::ClientError;
use ots_tunnel::{Session, WorkerConfig, WorkerError};

use crate::apply::BatchApplier;
use crate::config::ReplicatorConfig;
use crate::end_time::EndTracker;
use crate::metrics::{self, Metrics, MetricsSnapshot};
use crate::monitor;
use crate::processor::{self, DeadLetters, Processor};
use crate::setup::{self, SetupError};
use crate::tenants::{Tenants, TenantsError, render_tenants};
use crate::writer::RowWriter;

/// How often each process looks for tenants to resume and backlogs to replay.
const DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A client could not be built from the config.
    #[error("cannot build a client for the {side} endpoint: {error}")]
    Client {
        /// "source" or "destination".
        side: &'static str,
        /// The failure.
        error: ClientError,
    },
    /// An endpoint does not answer at all (refused, unresolvable, timed out).
    #[error("cannot reach the {side} endpoint {endpoint}")]
    Unreachable {
        /// "source" or "destination".
        side: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The transport failure.
        #[source]
        error: ClientError,
    },
    /// Table or tunnel set-up failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The metrics endpoint could not listen.
    #[error("cannot serve metrics on {listen}: {error}")]
    Metrics {
        /// The address.
        listen: std::net::SocketAddr,
        /// The failure.
        error: std::io::Error,
    },
    /// The tunnel worker failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A tenant's chain or the backlog could not be set up.
    #[error(transparent)]
    Tenants(#[from] TenantsError),
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every channel passed the end time.
    EndTime,
    /// A BaseData tunnel's copy is done.
    Copied,
    /// The caller asked to stop.
    Shutdown,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The tunnel consumed.
    pub tunnel_name: String,
    /// The table written to.
    pub destination_table: String,
    /// Its id.
    pub tunnel_id: String,
    /// Why the run ended.
    pub reason: StopReason,
    /// Counters at the end.
    pub metrics: MetricsSnapshot,
    /// How long the run took.
    pub elapsed: Duration,
    /// Where metrics were served, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.metrics;
        write!(
            f,
            "tunnel {} {} after {:.1}s: {} full-copy rows, {} records read, {} dropped by the processor, {} rows written ({} retried) in {} batches",
            self.tunnel_name,
            match self.reason {
                StopReason::EndTime => "reached the end time",
                StopReason::Copied => "copied the table",
                StopReason::Shutdown => "stopped on request",
            },
            self.elapsed.as_secs_f64(),
            m.base_records_applied,
            m.records_read,
            m.records_dropped,
            m.rows_written,
            m.rows_retried,
            m.batches_written,
        )
    }
}

/// The table a run writes to: the processor's own target table if it chose one, else the
/// configured destination.
pub fn destination_table<'a>(
    config: &'a ReplicatorConfig,
    processor: &'a dyn Processor,
) -> &'a str {
    processor
        .target_table()
        .unwrap_or(&config.destination.table_name)
}

/// Runs a replication until every channel passes the config's end time, or — without an end
/// time, or earlier — until `shutdown` resolves. Checkpoints are written only after the rows
/// they cover are durable, so a later run resumes where this one stopped.
pub async fn replicate(
    config: &ReplicatorConfig,
    processor: Arc<dyn Processor>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let destination_table = destination_table(config, &*processor).to_owned();
    if destination_table != config.destination.table_name {
        tracing::info!(
            processor = processor.name(),
            table = %destination_table,
            "the processor writes to its own target table"
        );
    }
    let source = config
        .source
        .client()
        .map_err(|error| PipelineError::Client {
            side: "source",
            error,
        })?;
    let destination = config
        .destination
        .client()
        .map_err(|error| PipelineError::Client {
            side: "destination",
            error,
        })?;
    for (side, client) in [("source", &source), ("destination", &destination)] {
        reachable(side, client).await?;
    }
    setup::ensure_source_stream(&source, &config.source.table_name, config.enable_stream).await?;
    let writer = RowWriter::new(
        destination.clone(),
        destination_table.clone(),
        config.batch_write_count,
        metrics.clone(),
    );
    let dead_letters = Arc::new(DeadLetters::new(destination.clone()));
    let client_tag = config
        .tuning
        .client_tag
        .clone()
        .unwrap_or_else(|| format!("otsrep-{}", std::process::id()));
    // The replay lease needs a holder no other process shares, whatever its client tag.
    let lease_holder = format!(
        "{client_tag}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let tenants = Tenants::load(
        config,
        processor.clone(),
        &destination_table,
        &writer,
        dead_letters.clone(),
        destination.clone(),
        lease_holder,
    )?
    .map(Arc::new);
    let mut tables = vec![destination_table.clone()];
    tables.extend(processor.routed_tables());
    for tenant in tenants.iter().flat_map(|t| t.tenants()) {
        tables.push(tenant.destination.clone());
        tables.extend(tenant.processor.routed_tables());
    }
    let mut created: Vec<&String> = Vec::new();
    for table in &tables {
        if created.contains(&table) {
            continue;
        }
        created.push(table);
        setup::ensure_destination_table(&source, &config.source.table_name, &destination, table)
            .await?;
    }
    if let Some(tenants) = &tenants {
        tenants
            .backlog()
            .ensure_table()
            .await
            .map_err(TenantsError::from)?;
    }
    let tunnel_id = setup::ensure_tunnel(
        &source,
        &config.source.table_name,
        &config.tunnel_name,
        setup::TunnelWanted::of(config),
    )
    .await?;
    tracing::info!(
        source = %config.source.table_name,
        destination = %destination_table,
        tunnel = %config.tunnel_name,
        %tunnel_id,
        tunnel_type = config.tunnel_type.as_str(),
        start_time = ?config.start_time,
        end_time = ?config.end_time,
        "replication starting"
    );

    let metrics_server = match config.metrics_listen {
        Some(listen) => Some(
            metrics::serve(listen, {
                let metrics = metrics.clone();
                let processor = processor.clone();
                let tenants = tenants.clone();
                move || match &tenants {
                    None => metrics.render() + &processor::render_stages(&processor.stages()),
                    Some(t) => {
                        metrics.render()
                            + &processor::render_stages(&t.stages())
                            + &render_tenants(&t.snapshots())
                    }
                }
            })
            .await
            .map_err(|error| PipelineError::Metrics { listen, error })?,
        ),
        None => None,
    };
    let metrics_addr = metrics_server.as_ref().map(|(addr, _)| *addr);
    if let Some(addr) = metrics_addr {
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    }

    let ends = Arc::new(EndTracker::default());
    let drainer = tenants.clone().map(|tenants| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DRAIN_INTERVAL).await;
                tenants.drain().await;
            }
        })
    });
    let applier = Arc::new(BatchApplier::new(
        processor,
        dead_letters,
        writer,
        tenants.clone(),
        config.end_time,
        metrics.clone(),
        ends.clone(),
    ));
    let worker_config = WorkerConfig {
        client_tag,
        heartbeat_timeout: config.tuning.heartbeat_timeout,
        read_budget: config.tuning.read_budget(),
        ..WorkerConfig::default()
    };
    let me = Mutex::new(String::new());
    let session = Session {
        client: &source,
        tunnel_id: &tunnel_id,
        config: &worker_config,
        sink: &applier,
        client_id: &me,
    };
    let worker = session.start().await?;
    let watch = monitor::monitor(monitor::Watch {
        client: source.clone(),
        table: config.source.table_name.clone(),
        tunnel: config.tunnel_name.clone(),
        tunnel_type: config.tunnel_type,
        end_time: config.end_time,
        interval: config.tuning.monitor_interval,
        metrics: metrics.clone(),
        ends,
        me: &me,
    });
    let outcome = session
        .run(worker, watch, shutdown)
        .await
        .map(|reason| reason.unwrap_or(StopReason::Shutdown));
    if let Some(task) = drainer {
        task.abort();
        // Aborted at an await point: no page of it is replayed alongside the final pass.
        let _ = task.await;
    }
    if let (Some(tenants), Ok(StopReason::EndTime | StopReason::Copied)) = (&tenants, &outcome) {
        // What a resumed tenant still has in its backlog is applied before the run ends.
        tenants.drain().await;
    }
    if let Some((_, task)) = metrics_server {
        task.abort();
    }
    let summary = RunSummary {
        tunnel_name: config.tunnel_name.clone(),
        destination_table,
        tunnel_id,
        reason: outcome?,
        metrics: metrics.snapshot(),
        elapsed: started.elapsed(),
        metrics_addr,
    };
    tracing::info!(%summary, "replication finished");
    Ok(summary)
}

/// Fails within about a second when `client`'s endpoint does not answer at all, naming it, rather
/// than after the default retry policy's minute. Any answer, even an error, counts as reachable:
/// the set-up calls that follow report those.
pub async fn reachable(
    side: &'static str,
    client: &ots_client::Client,
) -> Result<(), PipelineError> {
    match client
        .with_retry(ots_client::RetryPolicy::probe())
        .list_table()
        .await
    {
        Err(error @ ClientError::Transport(_)) => Err(PipelineError::Unreachable {
            side,
            endpoint: client.config().endpoint.clone(),
            error,
        }),
        _ => Ok(()),
    }
}
