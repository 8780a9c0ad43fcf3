//! `otsrep`: replicate Tablestore tables through the Tunnel Service, with sandboxed
//! WebAssembly processors. A thin binary over the libraries: `replicate`, `serve`, `status`,
//! `verify`, `backup`, `restore`, `processor` (the guest dev kit) and `demo`.

mod backup;
mod demo;
mod processor;
mod progress;
mod status;
mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ots_local_server::serve::ServeArgs;
use ots_protocol::pb::tunnel::TunnelType;
use ots_replicator::config::ReplicatorConfig;
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::{self, RunSummary};
use ots_replicator::processor::load_chain;
use ots_replicator::verify::{VerifyOptions, verify};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: a copy allocates and frees a few small strings per
/// cell on every thread, and the copy measured ~15 % faster with it, for more memory held
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Replicate Alibaba Cloud Tablestore tables through the Tunnel Service, with sandboxed
/// WebAssembly processors.
#[derive(Debug, Parser)]
#[command(name = "otsrep", version)]
struct Cli {
    /// Log line format (stderr). The level comes from OTSREP_LOG (e.g. `debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Replicate the source table into the destination as the config says.
    Replicate(ReplicateArgs),
    /// Run the local Tablestore-compatible server (the same flags as `ots-local-server`).
    Serve(ServeArgs),
    /// Show the tunnel's stage, channels and per-channel lag.
    Status(ConfigArgs),
    /// Compare source and destination: row counts and checksums per key range.
    Verify(VerifyArgs),
    /// Continuous backup of the source table into a backup store, and what a store holds.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Create a table equal to the backed-up source as it was at an instant.
    Restore(backup::RestoreArgs),
    /// The guest dev kit: run a guest over records and check what it produces.
    #[command(subcommand)]
    Processor(processor::ProcessorCommand),
    /// The tenants of a `[tenants]` config: their state and backlog, and resuming one.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Run a self-contained demonstration on a local server (no options needed).
    Demo(demo::DemoArgs),
}

/// A config file argument.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// The config: the guide's JSON (`.json`) or the TOML form (`.toml`).
    #[arg(short, long)]
    config: PathBuf,
}

/// Arguments of `replicate`.
#[derive(Debug, Args)]
struct ReplicateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Load guest processors from this directory instead of the built-in ones.
    #[arg(long)]
    guest_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (overrides `[metrics] listen`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Consume this tunnel instead of the config's `tunnelName` (a backfill wants its own).
    #[arg(long)]
    tunnel_name: Option<String>,
    /// Replicate the changes committed since this time instead of the config's `startTime`
    /// (`yyyy-MM-dd HH:mm:ss` local time, or RFC 3339); the tunnel is then a Stream tunnel
    /// unless `--tunnel-type` says otherwise. With `--end-time`, a backfill of that window.
    #[arg(long, value_parser = parse_time_arg)]
    start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop at this time instead of the config's `endTime` (`yyyy-MM-dd HH:mm:ss` local time,
    /// or RFC 3339).
    #[arg(long, value_parser = parse_time_arg)]
    end_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The tunnel type instead of the config's `tunnelType`: BaseAndStream, Stream or BaseData.
    #[arg(long, value_parser = parse_tunnel_type)]
    tunnel_type: Option<TunnelType>,
}

fn parse_time_arg(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    ots_replicator::config::parse_time(text)
}

fn parse_tunnel_type(text: &str) -> Result<TunnelType, String> {
    TunnelType::from_name(text)
        .ok_or_else(|| format!("{text:?} is not BaseAndStream, Stream or BaseData"))
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Source rows per compared range.
    #[arg(long, default_value_t = 1000)]
    rows_per_range: usize,
}

/// Runs a parsed command line; the exit code says success, differences (verify) or failure.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replicate(args) => replicate(args).await,
        Command::Serve(args) => {
            ots_local_server::serve::serve(&args, shutdown_signal())
                .await
                .context("starting the local server")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            let config = load_config(&args)?;
            status::print_status(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify_command(args).await,
        Command::Backup(command) => backup::backup(command).await,
        Command::Restore(args) => backup::restore_command(args).await,
        Command::Processor(command) => processor::processor(command).await,
        Command::Tenants(command) => {
            tenants::tenants(command).await?;
            Ok(ExitCode::SUCCESS)
        }
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
        for processor in &mut config.processors {
            processor.guest_dir = Some(dir.clone());
        }
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics_listen = Some(listen);
    }
    if let Some(name) = args.tunnel_name {
        config.tunnel_name = name;
    }
    if let Some(start) = args.start_time {
        config.start_time = Some(start);
        config.tunnel_type = ots_replicator::config::default_tunnel_type(Some(start));
    }
    if let Some(end) = args.end_time {
        config.end_time = Some(end);
    }
    if let Some(tunnel_type) = args.tunnel_type {
        config.tunnel_type = tunnel_type;
    }
    ots_replicator::config::check_time_range(
        config.tunnel_type,
        config.start_time,
        config.end_time,
    )
    .map_err(|(key, problem)| anyhow::anyhow!("`{key}` (or its flag): {problem}"))?;
    let metrics = Arc::new(Metrics::default());
    let summary = run_replication(&config, metrics, shutdown_signal(), None).await?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Runs one replication with its processor and progress reporting until it reaches the end
/// time or `shutdown` resolves; `expected_rows` sizes the full-copy progress bar.
async fn run_replication(
    config: &ReplicatorConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send,
    expected_rows: Option<u64>,
) -> anyhow::Result<RunSummary> {
    let processor = load_chain(&config.processors, &config.source.table_name)?;
    let destination = pipeline::destination_table(config, &*processor).to_owned();
    let progress = progress::Progress::start(destination.clone(), metrics.clone(), expected_rows);
    let result = pipeline::replicate(config, processor, metrics, shutdown).await;
    progress.finish().await;
    result.with_context(|| {
        format!(
            "replicating {} into {destination}",
            config.source.table_name
        )
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
    print!("{report}");
    Ok(if report.is_match() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_env("OTSREP_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story; its components' logs are there with OTSREP_LOG=info.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn",
        // The worker's per-channel chatter stays out; its sessions (reconnections) do not.
        _ => "info,ots_local_server=warn,ots_tunnel=warn,ots_tunnel::session=info",
    };
    init_logging(cli.log_format, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
