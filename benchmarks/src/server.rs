//! The local server as a child process (so its CPU time is accounted apart from the
//! replicator's), and CPU-time readings from /proc.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use clap::Args;
use ots_cli::demo::{ACCESS_ID, ACCESS_KEY, INSTANCE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of the database.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Runs the server until stdin closes (the parent exited or dropped its handle); prints
/// `endpoint URL` once listening.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let server = ots_local_server::start(ots_local_server::ServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        instance_name: INSTANCE.to_owned(),
        access_keys: vec![(ACCESS_ID.to_owned(), ACCESS_KEY.to_owned())],
        faults: Default::default(),
    })
    .await?;
    println!("endpoint {}", server.endpoint());
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    server.shutdown().await;
    Ok(())
}

/// The server child process; killed when dropped.
pub struct ChildServer {
    child: Child,
    /// The endpoint URL.
    pub url: String,
}

impl ChildServer {
    /// Starts the server with its database in `data_dir`, or in a temporary directory (returned
    /// so that it lives as long as the caller needs it), and says where it listens.
    pub async fn start_in(
        data_dir: Option<&Path>,
    ) -> anyhow::Result<(Option<tempfile::TempDir>, Self)> {
        let (dir, temp) = match data_dir {
            Some(dir) => (dir.to_owned(), None),
            None => {
                let temp = tempfile::tempdir()?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        std::fs::create_dir_all(&dir)?;
        let server = Self::start(&dir).await?;
        println!("server: {} (pid {})", server.url, server.pid());
        Ok((temp, server))
    }

    /// Starts `ots-benchmarks serve` on a free port with its database in `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating this executable")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server process")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let url = line
            .trim()
            .strip_prefix("endpoint ")
            .with_context(|| format!("unexpected server output {line:?}"))?
            .to_owned();
        Ok(Self { child, url })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// User plus system CPU seconds `pid` (or `self`) has used so far.
pub fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th
    // fields of the line, in clock ticks (USER_HZ, 100 on Linux).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of this process and of the server between two points.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    own: f64,
    server: f64,
}

impl CpuMark {
    /// Reads both counters now.
    pub fn now(server: &ChildServer) -> Self {
        Self {
            own: cpu_secs("self"),
            server: cpu_secs(&server.pid().to_string()),
        }
    }

    /// `(own, server)` CPU seconds since `self`.
    pub fn since(&self, server: &ChildServer) -> (f64, f64) {
        self.between(&Self::now(server))
    }

    /// `(own, server)` CPU seconds from `self` to `later`.
    pub fn between(&self, later: &Self) -> (f64, f64) {
        (later.own - self.own, later.server - self.server)
    }
}
