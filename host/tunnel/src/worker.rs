//! The worker: connect, heartbeat, start and stop channel pipelines as the server assigns and
//! revokes channels, report their states, and leave the tunnel cleanly.
//!
//! It follows the official tunnel workers (Go `tunnel/worker.go`, `tunnel/state.go`,
//! `tunnel/channel.go`; Java `TunnelWorker.java`, `TunnelStateMachine.java`,
//! `ChannelConnect.java`): an OPEN channel is reported back with the version it was given; one
//! this worker stopped is reported CLOSE, and one it consumed to the end TERMINATED, both at
//! that version plus one; an answer with an older version than what is known is ignored, and a
//! newer OPEN for a channel already running keeps its pipeline. Where it differs, on purpose:
//!
//! - Heartbeats every second with a 30 s timeout by default (the SDKs: 30 s and 300 s), so a
//!   dead worker's channels move, and a new one gets its share, within seconds.
//! - A heartbeat error the server will not take back (any code that is not retriable) fails
//!   the worker at once, like Go; transport errors and busy answers are tried
//!   `max_failed_heartbeats` times. Whether to connect again is the caller's call
//!   ([`WorkerError::is_disconnection`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ots_client::{Client, ClientError};
use ots_protocol::error::{ErrorCode, Retriability};
use ots_protocol::pb::tunnel::{Channel, ChannelStatus};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::budget::ReadBudget;
use crate::channel::{self, ChannelEnd};
use crate::{RecordSink, SinkError};

/// The default [`WorkerConfig::read_budget`]: 32 first guesses of a page (a channel reserves
/// the largest page it has read before it reads again).
pub const DEFAULT_READ_BUDGET: usize = 8 << 20;

/// How a worker paces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Tag the server shows for this worker.
    pub client_tag: String,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// After this long without a heartbeat the server gives the worker's channels to others.
    pub heartbeat_timeout: Duration,
    /// Heartbeats in a row that may fail before the worker gives up.
    pub max_failed_heartbeats: u32,
    /// Longest pause before polling a channel that had nothing new (the pause starts short
    /// and doubles while the channel stays idle).
    pub idle_pause: Duration,
    /// First delay after a failed call or batch; doubles up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// Bytes of records (their size on the wire) the worker's channels hold at once, read
    /// ahead, waiting or being taken by the sink, summed over every channel.
    pub read_budget: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            client_tag: format!("ots-tunnel-{}", std::process::id()),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(30),
            max_failed_heartbeats: 10,
            idle_pause: Duration::from_millis(200),
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            read_budget: DEFAULT_READ_BUDGET,
        }
    }
}

impl WorkerConfig {
    /// The delay before retry `attempt` (1-based), with jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let bound = self
            .base_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        bound.mul_f64(0.5 + 0.5 * rand::random::<f64>())
    }
}

/// Why a worker stopped for good.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerError {
    /// A tunnel call kept failing.
    #[error("{action} on tunnel {tunnel_id}: {source}")]
    Tunnel {
        /// What was being done.
        action: &'static str,
        /// The tunnel.
        tunnel_id: String,
        /// The last failure.
        source: ClientError,
    },
    /// The sink failed on a batch in a way retrying cannot fix.
    #[error("channel {channel}")]
    Sink {
        /// The channel of the batch.
        channel: String,
        /// The sink's error.
        #[source]
        source: SinkError,
    },
}

impl WorkerError {
    /// Whether the worker lost its session rather than failed: the server expired it (an
    /// outage longer than the heartbeat timeout) or could not be reached or was busy. A new
    /// worker may then connect and resume from the checkpoints.
    pub fn is_disconnection(&self) -> bool {
        match self {
            Self::Tunnel { source, .. } => {
                source.is(ErrorCode::ResourceGone) || source.retriability() != Retriability::Never
            }
            Self::Sink { .. } => false,
        }
    }
}

/// What the channel pipelines share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) tunnel_id: String,
    pub(crate) client_id: String,
    pub(crate) config: WorkerConfig,
    /// What the channels' pages may hold, shared by all of them.
    pub(crate) budget: Arc<ReadBudget>,
    failure: Mutex<Option<WorkerError>>,
    failed: Notify,
}

impl Shared {
    /// Records the first fatal error and wakes whoever waits in [`TunnelWorker::failed`].
    pub(crate) fn fail(&self, error: WorkerError) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            tracing::error!(tunnel_id = %self.tunnel_id, %error, "tunnel worker failed");
            *failure = Some(error);
            self.failed.notify_waiters();
        }
    }

    fn failure(&self) -> Option<WorkerError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A channel this worker was given, and what it reports of it.
struct LocalChannel {
    /// The version of the server's latest answer for it.
    version: i64,
    /// OPEN while running, CLOSING once asked to stop; CLOSE or TERMINATED once the pipeline
    /// ended (then reported at `version + 1`).
    status: ChannelStatus,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// How the pipeline ended, once it has.
    end: Arc<OnceLock<ChannelEnd>>,
}

impl LocalChannel {
    /// The channel as the next heartbeat reports it.
    fn report(&self, id: &str) -> Channel {
        let version = match self.status {
            ChannelStatus::Open | ChannelStatus::Closing => self.version,
            ChannelStatus::Close | ChannelStatus::Terminated => self.version + 1,
        };
        Channel {
            channel_id: id.to_owned(),
            version,
            status: self.status as i32,
            detail: None,
        }
    }

    /// Once the pipeline ended: TERMINATED if it consumed the channel to its end, CLOSE
    /// otherwise (stopped, lost, or held at an end time).
    fn settle(&mut self) {
        if matches!(self.status, ChannelStatus::Open | ChannelStatus::Closing)
            && let Some(end) = self.end.get()
        {
            self.status = match end {
                ChannelEnd::Finished => ChannelStatus::Terminated,
                ChannelEnd::Stopped => ChannelStatus::Close,
            };
        }
    }
}

/// A running tunnel worker.
pub struct TunnelWorker {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    heartbeat: JoinHandle<()>,
}

impl TunnelWorker {
    /// Connects to the tunnel and starts consuming the channels the server assigns.
    pub async fn start<S: RecordSink>(
        client: Client,
        tunnel_id: &str,
        config: WorkerConfig,
        sink: Arc<S>,
    ) -> Result<Self, WorkerError> {
        let timeout_secs = config.heartbeat_timeout.as_secs().max(1) as i64;
        let client_id = client
            .connect_tunnel(tunnel_id, timeout_secs, &config.client_tag)
            .await
            .map_err(|source| WorkerError::Tunnel {
                action: "Connect",
                tunnel_id: tunnel_id.to_owned(),
                source,
            })?;
        tracing::info!(tunnel_id, %client_id, tag = %config.client_tag, "connected to the tunnel");
        let shared = Arc::new(Shared {
            client,
            tunnel_id: tunnel_id.to_owned(),
            client_id,
            budget: ReadBudget::new(config.read_budget),
            config,
            failure: Mutex::new(None),
            failed: Notify::new(),
        });
        let (stop, stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), sink, stopped));
        Ok(Self {
            shared,
            stop,
            heartbeat,
        })
    }

    /// This worker's client id on the tunnel.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// Resolves when the worker fails for good.
    pub async fn failed(&self) -> WorkerError {
        loop {
            let notified = self.shared.failed.notified();
            if let Some(error) = self.shared.failure() {
                return error;
            }
            notified.await;
        }
    }

    /// Stops every channel after its batch in flight (nothing half-processed is
    /// checkpointed) and leaves the tunnel, so its channels go to other workers at once.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.heartbeat.await;
        if let Err(error) = self
            .shared
            .client
            .shutdown_tunnel_client(&self.shared.tunnel_id, &self.shared.client_id)
            .await
        {
            tracing::warn!(%error, "leaving the tunnel failed; its channels move after the heartbeat timeout");
        }
    }

    /// Stops without telling the server, as a crash would (tests of channel takeover).
    pub fn abandon(self) {
        self.heartbeat.abort();
        let _ = self.stop.send(true);
    }
}

async fn heartbeat_loop<S: RecordSink>(
    shared: Arc<Shared>,
    sink: Arc<S>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut channels: HashMap<String, LocalChannel> = HashMap::new();
    let mut failures = 0u32;
    loop {
        for local in channels.values_mut() {
            local.settle();
        }
        let report: Vec<Channel> = channels
            .iter()
            .map(|(id, local)| local.report(id))
            .collect();
        match shared
            .client
            .heartbeat(&shared.tunnel_id, &shared.client_id, report)
            .await
        {
            Ok(assigned) => {
                failures = 0;
                reconcile(&shared, &sink, &mut channels, assigned);
            }
            Err(source) => {
                failures += 1;
                tracing::warn!(error = %source, failures, "heartbeat failed");
                let refused = matches!(source, ClientError::Service { .. })
                    && source.retriability() == Retriability::Never;
                if failures >= shared.config.max_failed_heartbeats || refused {
                    shared.fail(WorkerError::Tunnel {
                        action: "Heartbeat",
                        tunnel_id: shared.tunnel_id.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        if shared.failure().is_some() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.heartbeat_interval) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    for (_, local) in channels.drain() {
        let _ = local.stop.send(true);
        let _ = local.task.await;
    }
}

/// Applies the server's answer: starts pipelines for new assignments, stops those the server
/// revokes or no longer lists, and ignores answers older than what is known.
fn reconcile<S: RecordSink>(
    shared: &Arc<Shared>,
    sink: &Arc<S>,
    channels: &mut HashMap<String, LocalChannel>,
    assigned: Vec<Channel>,
) {
    let mut seen = Vec::with_capacity(assigned.len());
    for channel in assigned {
        seen.push(channel.channel_id.clone());
        let status = ChannelStatus::try_from(channel.status).unwrap_or(ChannelStatus::Close);
        let known = channels.get_mut(&channel.channel_id);
        if let Some(local) = &known
            && channel.version < local.version
        {
            continue;
        }
        match (status, known) {
            (ChannelStatus::Open, Some(local))
                if matches!(local.status, ChannelStatus::Open | ChannelStatus::Closing) =>
            {
                // The assignment already running (perhaps at a newer version): keep its
                // pipeline, as the SDKs keep the connection.
                local.version = channel.version;
                if local.status == ChannelStatus::Closing {
                    let _ = local.stop.send(true);
                }
            }
            (ChannelStatus::Open, Some(local)) if channel.version <= local.version => {
                // Our CLOSE or TERMINATED (at version + 1) is not seen yet: keep reporting it.
            }
            (ChannelStatus::Open, _) => {
                let (stop, stopped) = watch::channel(false);
                let end = Arc::new(OnceLock::new());
                let task = tokio::spawn({
                    let (shared, sink, id, end) = (
                        shared.clone(),
                        sink.clone(),
                        channel.channel_id.clone(),
                        end.clone(),
                    );
                    async move {
                        let _ = end.set(channel::run(shared, sink, id, stopped).await);
                    }
                });
                tracing::debug!(channel = %channel.channel_id, version = channel.version, "channel opened");
                if let Some(old) = channels.insert(
                    channel.channel_id,
                    LocalChannel {
                        version: channel.version,
                        status: ChannelStatus::Open,
                        stop,
                        task,
                        end,
                    },
                ) {
                    let _ = old.stop.send(true);
                }
            }
            (ChannelStatus::Closing, Some(local)) => {
                // Reported CLOSE only once the batch in flight is done, so the next owner
                // never races a write of ours.
                let _ = local.stop.send(true);
                local.version = channel.version;
                if local.status == ChannelStatus::Open {
                    local.status = ChannelStatus::Closing;
                }
            }
            (ChannelStatus::Closing, None) => {}
            (ChannelStatus::Close | ChannelStatus::Terminated, _) => {
                if let Some(local) = channels.remove(&channel.channel_id) {
                    let _ = local.stop.send(true);
                }
            }
        }
    }
    channels.retain(|id, local| {
        let keep = seen.contains(id);
        if !keep {
            let _ = local.stop.send(true);
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(status: ChannelStatus, end: Option<ChannelEnd>) -> LocalChannel {
        let (stop, _) = watch::channel(false);
        let cell = OnceLock::new();
        if let Some(end) = end {
            let _ = cell.set(end);
        }
        LocalChannel {
            version: 4,
            status,
            stop,
            task: tokio::spawn(async {}),
            end: Arc::new(cell),
        }
    }

    fn reported(local: &LocalChannel) -> (i64, ChannelStatus) {
        let report = local.report("c");
        (
            report.version,
            ChannelStatus::try_from(report.status).unwrap(),
        )
    }

    /// Go `tunnel/channel.go` closeAndUpdate and Java `ChannelConnect.java` report a channel
    /// they close or finish at the version they were given plus one; a running one is echoed.
    #[tokio::test]
    async fn a_stopped_channel_is_reported_at_its_version_plus_one() {
        let running = local(ChannelStatus::Open, None);
        assert_eq!(reported(&running), (4, ChannelStatus::Open));

        let mut finished = local(ChannelStatus::Open, Some(ChannelEnd::Finished));
        finished.settle();
        assert_eq!(reported(&finished), (5, ChannelStatus::Terminated));

        let mut revoked = local(ChannelStatus::Closing, None);
        revoked.settle();
        assert_eq!(
            reported(&revoked),
            (4, ChannelStatus::Closing),
            "CLOSING is echoed until the batch in flight is done"
        );
        let mut revoked = local(ChannelStatus::Closing, Some(ChannelEnd::Stopped));
        revoked.settle();
        assert_eq!(reported(&revoked), (5, ChannelStatus::Close));
    }
}
