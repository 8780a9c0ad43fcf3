//! The one definition of the server's command-line flags, shared by the `ots-local-server`
//! binary and `otsrep serve`, and running the server until a shutdown signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::{FaultConfig, ServerConfig, StartError};

/// Instance name the local server serves unless told otherwise.
pub const LOCAL_INSTANCE: &str = "local";
/// Access key id the local server accepts unless told otherwise.
pub const LOCAL_ACCESS_KEY_ID: &str = "otsrep-local-id";
/// Access key secret the local server accepts unless told otherwise.
pub const LOCAL_ACCESS_KEY_SECRET: &str = "otsrep-local-secret";

/// Where and how the local server runs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory of the database (created if missing).
    #[arg(long, default_value = "otsrep-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the line printed at start names it).
    #[arg(long, default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// Instance name clients must address.
    #[arg(long, default_value = LOCAL_INSTANCE)]
    pub instance: String,
    /// Accepted access key id.
    #[arg(long, alias = "access-id", env = "OTS_LOCAL_ACCESS_KEY_ID", default_value = LOCAL_ACCESS_KEY_ID)]
    pub access_key_id: String,
    /// Accepted access key secret.
    #[arg(long, alias = "access-key", env = "OTS_LOCAL_ACCESS_KEY_SECRET", default_value = LOCAL_ACCESS_KEY_SECRET)]
    pub access_key_secret: String,
    /// Probability that a request fails with OTSServerBusy (fault injection), 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub fault_error_rate: f64,
    /// Probability that one row of a batch write fails (fault injection), 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub fault_row_failure_rate: f64,
    /// Latency added to every request, in milliseconds (fault injection).
    #[arg(long, default_value_t = 0)]
    pub fault_latency_ms: u64,
    /// Length in seconds of one hour of a stream's expiration: streams keep records their
    /// table's expiration times this (3600 serves real hours; less makes records expire
    /// sooner, to try what happens when they do).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_hour_secs: u64,
}

fn probability(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|e| format!("{text:?} is not a number: {e}"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("must be within [0, 1], got {rate}"));
    }
    Ok(rate)
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            instance_name: self.instance.clone(),
            access_keys: vec![(self.access_key_id.clone(), self.access_key_secret.clone())],
            faults: FaultConfig {
                error_rate: self.fault_error_rate,
                latency: Duration::from_millis(self.fault_latency_ms),
                row_failure_rate: self.fault_row_failure_rate,
            },
            stream_hour: Duration::from_secs(self.stream_hour_secs),
        }
    }
}

/// The line printed once the server listens; [`listening_endpoint`] reads it back.
const LISTENING: &str = "ots-local-server listening on ";

/// Reads the endpoint URL from the line a server prints once it listens.
pub fn listening_endpoint(line: &str) -> Option<&str> {
    line.strip_prefix(LISTENING)?.split_whitespace().next()
}

/// Starts the server, prints where it listens (one line on stdout), and serves until
/// `shutdown` resolves.
pub async fn serve(
    args: &ServeArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let server = crate::start(args.config()).await?;
    println!(
        "{LISTENING}{} (instance {}, access key id {}, data in {})",
        server.endpoint(),
        args.instance,
        args.access_key_id,
        args.data_dir.display()
    );
    shutdown.await;
    server.shutdown().await;
    Ok(())
}
