//! `ots-local-server`: the local Tablestore-compatible server as a process of its own. Takes
//! the same flags as `otsrep serve` ([`ots_local_server::serve::ServeArgs`]).

use anyhow::Context;
use clap::Parser;
use ots_local_server::serve::{ServeArgs, serve};

/// mimalloc rather than glibc's malloc: a copy allocates and frees a few small strings per
/// cell on every thread, and the copy measured ~15 % faster with it, for more memory held
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A local Tablestore-compatible server (table, row, stream and tunnel APIs; real wire
/// protocol).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    serve(&cli.serve, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .with_context(|| format!("starting the server on {}", cli.serve.listen))
}
