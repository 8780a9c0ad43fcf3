//! The otsrep command line: replicate, serve, status, verify, demo.
//!
//! `main.rs` only parses arguments, sets up logging and the runtime; every command lives here
//! so the end-to-end tests can reuse the pieces (the demo workload, the embedded guests).

pub mod demo;
pub mod guests;
pub mod progress;
pub mod status;
pub mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ots_replicator::config::ReplicatorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::RunSummary;
use ots_replicator::verify::{VerifyOptions, verify};

/// Replicate Alibaba Cloud Tablestore tables through the Tunnel Service, with sandboxed
/// WebAssembly processors.
#[derive(Debug, Parser)]
#[command(name = "otsrep", version)]
pub struct Cli {
    /// Log line format (stderr). The level comes from OTSREP_LOG (e.g. `debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replicate the source table into the destination as the config says.
    Replicate(ReplicateArgs),
    /// Run the local Tablestore-compatible server.
    Serve(ServeArgs),
    /// Show the tunnel's stage, channels and per-channel lag.
    Status(ConfigArgs),
    /// Compare source and destination: row counts and checksums per key range.
    Verify(VerifyArgs),
    /// Run a self-contained demonstration on a local server (no options needed).
    Demo(demo::DemoArgs),
}

/// A config file argument.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The config: the guide's JSON (`.json`) or the TOML form (`.toml`).
    #[arg(short, long)]
    pub config: PathBuf,
}

/// Arguments of `replicate`.
#[derive(Debug, Args)]
pub struct ReplicateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Load guest processors from this directory instead of the built-in ones.
    #[arg(long)]
    guest_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (overrides `[metrics] listen`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Stop at this time instead of the config's `endTime` (`yyyy-MM-dd HH:mm:ss` local time,
    /// or RFC 3339).
    #[arg(long, value_parser = parse_end_time_arg)]
    end_time: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_end_time_arg(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    ots_replicator::config::parse_end_time(text)
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8800")]
    listen: SocketAddr,
    /// Directory of the database (created if missing).
    #[arg(long, default_value = "otsrep-data")]
    data_dir: PathBuf,
    /// Instance name clients must use.
    #[arg(long, default_value = demo::INSTANCE)]
    instance: String,
    /// Accepted access key id.
    #[arg(long, env = "OTS_LOCAL_ACCESS_ID", default_value = demo::ACCESS_ID)]
    access_id: String,
    /// Accepted access key secret.
    #[arg(long, env = "OTS_LOCAL_ACCESS_KEY", default_value = demo::ACCESS_KEY)]
    access_key: String,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Source rows per compared range.
    #[arg(long, default_value_t = 1000)]
    rows_per_range: usize,
}

/// Runs a parsed command line; the exit code says success, differences (verify) or failure.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replicate(args) => replicate(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Status(args) => {
            let config = load_config(&args)?;
            status::print_status(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify_command(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<ReplicatorConfig> {
    ReplicatorConfig::load(&args.config)
        .with_context(|| format!("invalid config {}", args.config.display()))
}

async fn replicate(args: ReplicateArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if let Some(dir) = args.guest_dir {
        config.processor.guest_dir = Some(dir);
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics_listen = Some(listen);
    }
    if let Some(end) = args.end_time {
        config.end_time = Some(end);
    }
    let metrics = Arc::new(Metrics::default());
    let summary = run_replication(&config, metrics, shutdown_signal(), None).await?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Runs one replication with its processor and progress reporting until it reaches the end
/// time or `shutdown` resolves; `expected_rows` sizes the full-copy progress bar.
pub async fn run_replication(
    config: &ReplicatorConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send,
    expected_rows: Option<u64>,
) -> anyhow::Result<RunSummary> {
    let transform = guests::load_transform(&config.processor, &config.source.table_name)
        .with_context(|| format!("loading the processor {}", config.processor.source))?;
    let retargeted;
    let config = match transform.target_table() {
        Some(table) if table != config.destination.table_name => {
            tracing::info!(table, "the processor writes to its own target table");
            retargeted = ReplicatorConfig {
                destination: ots_replicator::config::TableEndpoint {
                    table_name: table.to_owned(),
                    ..config.destination.clone()
                },
                ..config.clone()
            };
            &retargeted
        }
        _ => config,
    };
    let progress = progress::Progress::start(
        config.destination.table_name.clone(),
        metrics.clone(),
        expected_rows,
    );
    let result = ots_replicator::pipeline::replicate(config, transform, metrics, shutdown).await;
    progress.finish().await;
    result.with_context(|| {
        format!(
            "replicating {} into {}",
            config.source.table_name, config.destination.table_name
        )
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let server = ots_local_server::start(ots_local_server::ServerConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        instance_name: args.instance.clone(),
        access_keys: vec![(args.access_id.clone(), args.access_key)],
        faults: Default::default(),
    })
    .await
    .context("starting the local server")?;
    println!(
        "local Tablestore server: endpoint {} instance {} access id {} data {}",
        server.endpoint(),
        args.instance,
        args.access_id,
        args.data_dir.display()
    );
    shutdown_signal().await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn verify_command(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let source = config.source.client().context("source client")?;
    let destination = config.destination.client().context("destination client")?;
    let report = verify(
        &source,
        &config.source.table_name,
        &destination,
        &config.destination.table_name,
        VerifyOptions {
            rows_per_range: args.rows_per_range,
            ..VerifyOptions::default()
        },
    )
    .await?;
    print!("{}", demo::describe_report(&report));
    Ok(if report.is_match() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
