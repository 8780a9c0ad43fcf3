//! A local Tablestore-compatible server: the table and row APIs over the real wire protocol
//! (protobuf over HTTP, PlainBuffer rows, signed requests) on durable redb storage.
//!
//! [`start`] runs it inside the caller's tokio runtime (tests, the demo); [`serve`] is the
//! command line of both the `ots-local-server` binary and `otsrep serve`.
//!
//! Layers, outside in: [`http`] (authentication, signed answers, fault injection), [`api`]
//! and [`tunnel`] (decode a call, run it, encode the answer), [`store`] and [`stream`] (redb
//! I/O) around [`rules`] (the data model as pure functions) and [`tunnel::state`] (the tunnel
//! state machine); [`error`] is the wire error they all answer with.

pub mod api;
pub mod commit;
pub mod error;
pub mod http;
pub mod keys;
pub mod rules;
pub mod serve;
pub mod state;
pub mod store;
pub mod stream;
pub mod tunnel;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use error::ApiError;
pub use state::{FaultConfig, ServerState};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database lives; created if missing.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The instance name clients must address.
    pub instance_name: String,
    /// Accepted access keys: `(id, secret)`.
    pub access_keys: Vec<(String, String)>,
    /// Injected failures (none by default).
    pub faults: FaultConfig,
    /// How long one hour of a stream's expiration lasts: an hour, shorter in tests so that
    /// records expire and are trimmed within seconds.
    pub stream_hour: std::time::Duration,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error("cannot open the database in {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// What went wrong.
        source: ApiError,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A running server; stops when [`RunningServer::shutdown`] is called or it is dropped.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Resolves (with an error: its sender is dropped, never used) once the handlers' state
    /// is dropped and the database closed, which happens when the last handler lets it go.
    closed: tokio::sync::oneshot::Receiver<()>,
}

impl RunningServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL clients use, e.g. `http://127.0.0.1:8800`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, waits for the server task and closes the database: it
    /// returns once the last holder of the state (a connection task axum has not finished
    /// dropping, a request whose client went away) has let it go and the database is closed,
    /// so another server may open the same data at once.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let waited = std::time::Duration::from_secs(30);
        if tokio::time::timeout(waited, &mut self.closed)
            .await
            .is_err()
        {
            tracing::warn!(?waited, "a request still holds the database after shutdown");
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Trims expired stream records every sixtieth of a stream hour (between 100 ms and a minute)
/// until the server stops.
async fn trim_streams(state: std::sync::Weak<ServerState>, stream_hour: std::time::Duration) {
    let period = (stream_hour / 60).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    );
    loop {
        tokio::time::sleep(period).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let now = chrono::Utc::now().timestamp_millis();
        match tokio::task::spawn_blocking(move || state.store.trim_streams(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(trimmed)) => tracing::debug!(trimmed, "trimmed expired stream records"),
            Ok(Err(error)) => tracing::warn!(%error, "trimming streams failed"),
            Err(error) => tracing::warn!(%error, "trimming streams panicked"),
        }
    }
}

/// Opens the store and starts serving on `config.listen`.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let mut state = ServerState::open(&config).map_err(|source| StartError::Storage {
        dir: config.data_dir.clone(),
        source,
    })?;
    let closed = state.closed();
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(trim_streams(Arc::downgrade(&state), config.stream_hour));
    let app = http::router(state);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "local server stopped");
        }
    });
    tracing::info!(%addr, "local Tablestore server listening");
    Ok(RunningServer {
        addr,
        stop: Some(stop),
        task: Some(task),
        closed,
    })
}
