//! `ots-benchmarks`: full-copy throughput and incremental lag of the replicator against the local
//! server (run as a child process), with the official Python SDK's DataX-style copy alongside.
//! See BENCHMARKS.md at the repository root for the commands and the results.

mod full_copy;
mod lag;
mod processor;
mod server;
mod table;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: a copy allocates and frees a few small strings per
/// cell on every thread, and the copy measured ~15 % faster with it, for more memory held
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Replicator benchmarks against the local Tablestore-compatible server.
#[derive(Debug, Parser)]
#[command(name = "ots-benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time a full copy of a filled table: wasm guest, native passthrough, Python SDK.
    FullCopy(full_copy::FullCopyArgs),
    /// Measure source-write-to-destination-visible lag under a steady write rate.
    Lag(lag::LagArgs),
    /// Run the local server (the benchmarks start this as their child process).
    Serve(ots_local_server::serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OTSREP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::FullCopy(args) => full_copy::run(args).await,
            Command::Lag(args) => lag::run(args).await,
            Command::Serve(args) => Ok(ots_local_server::serve::serve(&args, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?),
        }
    })
}
