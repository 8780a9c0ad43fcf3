//! `ots-local-server`: the local Tablestore-compatible server as a process of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ots_local_server::{FaultConfig, ServerConfig};

/// A local Tablestore-compatible server (table and row APIs, real wire protocol).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory of the database (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8800")]
    listen: SocketAddr,
    /// Instance name clients address.
    #[arg(long, default_value = "local")]
    instance: String,
    /// Accepted access key id.
    #[arg(
        long,
        env = "OTS_LOCAL_ACCESS_KEY_ID",
        default_value = "local-access-id"
    )]
    access_key_id: String,
    /// Accepted access key secret.
    #[arg(
        long,
        env = "OTS_LOCAL_ACCESS_KEY_SECRET",
        default_value = "local-access-secret"
    )]
    access_key_secret: String,
    /// Probability that a request fails with OTSServerBusy (fault injection).
    #[arg(long, default_value_t = 0.0)]
    fault_error_rate: f64,
    /// Probability that one row of a batch write fails (fault injection).
    #[arg(long, default_value_t = 0.0)]
    fault_row_failure_rate: f64,
    /// Latency added to every request, in milliseconds (fault injection).
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    for (name, rate) in [
        ("--fault-error-rate", args.fault_error_rate),
        ("--fault-row-failure-rate", args.fault_row_failure_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{name} must be within [0, 1], got {rate}"
        );
    }
    let server = ots_local_server::start(ServerConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        instance_name: args.instance,
        access_keys: vec![(args.access_key_id, args.access_key_secret)],
        faults: FaultConfig {
            error_rate: args.fault_error_rate,
            latency: Duration::from_millis(args.fault_latency_ms),
            row_failure_rate: args.fault_row_failure_rate,
        },
    })
    .await
    .with_context(|| format!("starting the server on {}", args.listen))?;
    println!("listening on {}", server.endpoint());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    server.shutdown().await;
    Ok(())
}
