//! A worker that outlives its sessions: when the server expires a worker's session (an outage
//! longer than the heartbeat timeout) or cannot be reached, the old worker stops once its
//! channels have and a new one joins, retrying with backoff; the channels resume from their
//! checkpoints. Used by every long-running consumer of a tunnel.

use std::future::Future;
use std::sync::{Arc, Mutex};

use ots_client::Client;

use crate::{RecordSink, TunnelWorker, WorkerConfig, WorkerError};

/// What a worker needs to join the tunnel again.
pub struct Session<'a, S> {
    /// Client of the tunnel's instance.
    pub client: &'a Client,
    /// The tunnel.
    pub tunnel_id: &'a str,
    /// The worker's configuration.
    pub config: &'a WorkerConfig,
    /// Where batches go.
    pub sink: &'a Arc<S>,
    /// The current worker's client id, for whoever needs to tell its channels from others'
    /// (replaced at every reconnection).
    pub client_id: &'a Mutex<String>,
}

impl<S: RecordSink> Session<'_, S> {
    /// Connects the first worker, failing as [`TunnelWorker::start`] does.
    pub async fn start(&self) -> Result<TunnelWorker, WorkerError> {
        let worker = TunnelWorker::start(
            self.client.clone(),
            self.tunnel_id,
            self.config.clone(),
            self.sink.clone(),
        )
        .await?;
        self.note(&worker);
        Ok(worker)
    }

    fn note(&self, worker: &TunnelWorker) {
        *self.client_id.lock().unwrap_or_else(|p| p.into_inner()) = worker.client_id().to_owned();
    }

    /// Runs `worker` until `until` resolves (`Some` of its output) or `shutdown` does
    /// (`None`), reconnecting after lost sessions; fails when the worker fails in a way a new
    /// session cannot fix. The worker leaves the tunnel in every case.
    pub async fn run<T>(
        &self,
        mut worker: TunnelWorker,
        until: impl Future<Output = T>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<T>, WorkerError> {
        tokio::pin!(until, shutdown);
        let outcome = loop {
            let failure = tokio::select! {
                outcome = &mut until => break outcome,
                _ = &mut shutdown => {
                    worker.stop().await;
                    return Ok(None);
                }
                failure = worker.failed() => failure,
            };
            worker.stop().await;
            if !failure.is_disconnection() {
                return Err(failure);
            }
            tracing::warn!(error = %failure, "lost the tunnel session; reconnecting");
            worker = tokio::select! {
                result = self.reconnect() => result?,
                _ = &mut shutdown => return Ok(None),
            };
            self.note(&worker);
            tracing::info!(client_id = worker.client_id(), "reconnected to the tunnel");
        };
        worker.stop().await;
        Ok(Some(outcome))
    }

    /// Connects a new worker, retrying with the worker's backoff while the server is
    /// unreachable or busy; fails at once on an error retrying cannot fix (credentials, a
    /// deleted tunnel).
    async fn reconnect(&self) -> Result<TunnelWorker, WorkerError> {
        let mut attempt = 0;
        loop {
            let started = TunnelWorker::start(
                self.client.clone(),
                self.tunnel_id,
                self.config.clone(),
                self.sink.clone(),
            )
            .await;
            match started {
                Err(error) if error.is_disconnection() => {
                    attempt += 1;
                    let delay = self.config.backoff(attempt);
                    tracing::warn!(%error, ?delay, "reconnecting to the tunnel failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}
