//! Consumes the tunnel: one heartbeat loop that takes the channels the tunnel assigns to this
//! process, and one task per channel that reads records from the checkpoint, applies them and
//! checkpoints only after the rows are durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ots_client::{Client, ClientError};
use ots_protocol::pb::tunnel::{Channel, ChannelStatus, FINISH_TAG};
use tokio::sync::{Mutex, Notify, watch};

use crate::apply::{ApplyError, BatchApplier, BatchOutcome};
use crate::config::Tuning;

/// Write failures in a row after which a channel gives up and fails the run.
const MAX_APPLY_ATTEMPTS: u32 = 8;
/// How often the worker heartbeats.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Pause before polling a channel that had nothing new.
const IDLE_PAUSE: Duration = Duration::from_millis(200);

/// Why the worker stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerError {
    /// A tunnel call failed for good.
    #[error("{action}: {source}")]
    Tunnel {
        /// What was being done, naming the tunnel or channel.
        action: String,
        /// The failure.
        source: ClientError,
    },
    /// A channel's records could not be applied.
    #[error("channel {channel}: {reason}")]
    Apply {
        /// The channel.
        channel: String,
        /// The last failure.
        reason: String,
    },
}

struct Shared {
    client: Client,
    tunnel_id: String,
    client_id: String,
    applier: Arc<BatchApplier>,
    failure: Mutex<Option<WorkerError>>,
    failed: Notify,
}

impl Shared {
    async fn fail(&self, error: WorkerError) {
        let mut failure = self.failure.lock().await;
        if failure.is_none() {
            tracing::error!(%error, "tunnel worker failed");
            *failure = Some(error);
        }
        self.failed.notify_waiters();
        self.failed.notify_one();
    }
}

struct LocalChannel {
    version: i64,
    status: ChannelStatus,
    finished: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A running worker.
pub struct WorkerHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// Connects to the tunnel and starts consuming the channels it assigns.
pub async fn start(
    client: Client,
    tunnel_id: String,
    applier: Arc<BatchApplier>,
    tuning: &Tuning,
) -> Result<WorkerHandle, WorkerError> {
    let tag = tuning
        .client_tag
        .clone()
        .unwrap_or_else(|| format!("otsrep-{}", std::process::id()));
    let client_id = client
        .connect_tunnel(&tunnel_id, tuning.heartbeat_timeout.as_secs() as i64, &tag)
        .await
        .map_err(|source| WorkerError::Tunnel {
            action: format!("connecting to tunnel {tunnel_id}"),
            source,
        })?;
    tracing::info!(%tunnel_id, %client_id, %tag, "connected to the tunnel");
    let shared = Arc::new(Shared {
        client,
        tunnel_id,
        client_id,
        applier,
        failure: Mutex::new(None),
        failed: Notify::new(),
    });
    let (stop, stopped) = watch::channel(false);
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), stopped));
    Ok(WorkerHandle {
        shared,
        stop,
        heartbeat,
    })
}

impl WorkerHandle {
    /// Resolves when the worker fails for good.
    pub async fn failed(&self) -> WorkerError {
        loop {
            let notified = self.shared.failed.notified();
            if let Some(error) = self.shared.failure.lock().await.clone() {
                return error;
            }
            notified.await;
        }
    }

    /// Stops every channel after its batch in flight and leaves the tunnel, so its channels
    /// go to other workers at once.
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
}

async fn heartbeat_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut channels: HashMap<String, LocalChannel> = HashMap::new();
    let mut failures = 0u32;
    loop {
        // A status the client changes is reported with the next version, as the SDKs do.
        for channel in channels.values_mut() {
            if channel.status == ChannelStatus::Open && channel.finished.load(Ordering::Relaxed) {
                channel.status = ChannelStatus::Terminated;
                channel.version += 1;
            }
            if channel.status == ChannelStatus::Closing && channel.task.is_finished() {
                channel.status = ChannelStatus::Close;
                channel.version += 1;
            }
        }
        let report: Vec<Channel> = channels
            .iter()
            .map(|(id, c)| Channel {
                channel_id: id.clone(),
                version: c.version,
                status: c.status as i32,
                detail: None,
            })
            .collect();
        match shared
            .client
            .heartbeat(&shared.tunnel_id, &shared.client_id, report)
            .await
        {
            Ok(assigned) => {
                failures = 0;
                reconcile(&shared, &mut channels, assigned).await;
            }
            Err(source) => {
                failures += 1;
                tracing::warn!(error = %source, failures, "heartbeat failed");
                if failures >= 5 {
                    shared
                        .fail(WorkerError::Tunnel {
                            action: format!("heartbeat on tunnel {}", shared.tunnel_id),
                            source,
                        })
                        .await;
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
            _ = stopped.changed() => break,
        }
    }
    for (_, channel) in channels.drain() {
        let _ = channel.stop.send(true);
        let _ = channel.task.await;
    }
}

async fn reconcile(
    shared: &Arc<Shared>,
    channels: &mut HashMap<String, LocalChannel>,
    assigned: Vec<Channel>,
) {
    let mut seen = Vec::with_capacity(assigned.len());
    for channel in assigned {
        seen.push(channel.channel_id.clone());
        let status = ChannelStatus::try_from(channel.status).unwrap_or(ChannelStatus::Close);
        match status {
            ChannelStatus::Open => {
                let id = channel.channel_id.clone();
                // A channel task that ended without finishing (a checkpoint could not be read
                // or written) starts again from the stored checkpoint.
                let alive = channels.get(&id).is_some_and(|c| {
                    c.status != ChannelStatus::Open
                        || !c.task.is_finished()
                        || c.finished.load(Ordering::Relaxed)
                });
                if alive {
                    if let Some(local) = channels.get_mut(&id)
                        && local.status == ChannelStatus::Open
                    {
                        local.version = channel.version;
                    }
                    continue;
                }
                let finished = Arc::new(AtomicBool::new(false));
                let (stop, stopped) = watch::channel(false);
                let task = tokio::spawn(consume(
                    shared.clone(),
                    id.clone(),
                    finished.clone(),
                    stopped,
                ));
                tracing::debug!(channel = %id, "channel assigned");
                channels.insert(
                    id,
                    LocalChannel {
                        version: channel.version,
                        status: ChannelStatus::Open,
                        finished,
                        stop,
                        task,
                    },
                );
            }
            ChannelStatus::Closing => {
                if let Some(local) = channels.get_mut(&channel.channel_id) {
                    // Reported as CLOSE only once its batch in flight is done, so the next
                    // owner never races a stale write.
                    let _ = local.stop.send(true);
                    if local.status == ChannelStatus::Open {
                        local.version = channel.version;
                        local.status = ChannelStatus::Closing;
                    }
                }
            }
            ChannelStatus::Close | ChannelStatus::Terminated => {
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

async fn consume(
    shared: Arc<Shared>,
    channel: String,
    finished: Arc<AtomicBool>,
    mut stopped: watch::Receiver<bool>,
) {
    let checkpoint = match shared
        .client
        .get_checkpoint(&shared.tunnel_id, &shared.client_id, &channel)
        .await
    {
        Ok(checkpoint) => checkpoint,
        Err(source) => {
            tracing::warn!(%channel, error = %source, "reading the checkpoint failed; the channel will be retried");
            return;
        }
    };
    let mut token = checkpoint.checkpoint;
    let mut sequence = checkpoint.sequence_number;
    while token != FINISH_TAG && !*stopped.borrow() {
        let page = match shared
            .client
            .read_records(&shared.tunnel_id, &shared.client_id, &channel, &token)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%channel, %error, "ReadRecords failed; retrying");
                tokio::time::sleep(IDLE_PAUSE * 5).await;
                continue;
            }
        };
        let records = page.records.len();
        let mut attempt = 0;
        let outcome = loop {
            match shared.applier.apply(&channel, &page.records).await {
                Ok(outcome) => break outcome,
                Err(ApplyError::Write(error)) if attempt + 1 < MAX_APPLY_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(%channel, %error, attempt, "writing a batch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                }
                Err(error) => {
                    shared
                        .fail(WorkerError::Apply {
                            channel: channel.clone(),
                            reason: error.to_string(),
                        })
                        .await;
                    return;
                }
            }
        };
        if outcome == BatchOutcome::ReachedEnd {
            // Hold the channel without checkpointing past the end time until told to stop.
            let _ = stopped.wait_for(|stop| *stop).await;
            return;
        }
        sequence += 1;
        if let Err(error) = shared
            .client
            .checkpoint(
                &shared.tunnel_id,
                &shared.client_id,
                &channel,
                &page.next_token,
                sequence,
            )
            .await
        {
            tracing::warn!(%channel, %error, "checkpoint failed; the channel will be re-read from the last checkpoint");
            return;
        }
        token = page.next_token;
        if records == 0 && !page.may_more_record {
            tokio::select! {
                _ = tokio::time::sleep(IDLE_PAUSE) => {}
                _ = stopped.changed() => {}
            }
        }
    }
    if token == FINISH_TAG {
        tracing::debug!(%channel, "channel finished");
        finished.store(true, Ordering::Relaxed);
    }
}
