//! The server's state, shared by every request handler: the store, the tunnel service, who may
//! call, and the failures to inject.

use std::collections::HashMap;
use std::time::Duration;

use crate::ServerConfig;
use crate::error::ApiError;
use crate::store::{self, Store};
use crate::tunnel::TunnelService;

/// Injected failures for reliability tests. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Probability that a request fails whole with `OTSServerBusy` before it is applied.
    pub error_rate: f64,
    /// Extra latency added to every request.
    pub latency: Duration,
    /// Probability that a row of a BatchWriteRow fails with `OTSServerBusy` (not applied).
    pub row_failure_rate: f64,
}

/// Shared state of the request handlers.
pub struct ServerState {
    /// The tables and rows.
    pub store: Store,
    /// The tunnel service.
    pub tunnels: TunnelService,
    /// Instance name clients must address.
    pub instance_name: String,
    /// Access key secrets by access key id.
    pub access_keys: HashMap<String, String>,
    /// Injected failures.
    pub faults: FaultConfig,
    /// Dropped after every field above (fields drop in order), so the receiver
    /// [`ServerState::closed`] gave learns when the database is closed, not merely when the
    /// last handler let the state go: the count of an `Arc` reaches zero before its value's
    /// drop (which joins the writer thread and closes redb) has run.
    closing: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ServerState {
    /// Opens the database in `config.data_dir` and the services on it.
    pub fn open(config: &ServerConfig) -> Result<Self, ApiError> {
        let db = store::open_database(&config.data_dir)?;
        Ok(Self {
            store: Store::new(db.clone(), config.stream_hour)?,
            tunnels: TunnelService::new(db, &config.instance_name)?,
            instance_name: config.instance_name.clone(),
            access_keys: config.access_keys.iter().cloned().collect(),
            faults: config.faults.clone(),
            closing: None,
        })
    }

    /// Resolves (with an error: its sender is dropped, never used) once this state is dropped
    /// and its database closed.
    pub fn closed(&mut self) -> tokio::sync::oneshot::Receiver<()> {
        let (closing, closed) = tokio::sync::oneshot::channel();
        self.closing = Some(closing);
        closed
    }
}
