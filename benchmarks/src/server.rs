//! The local server as a child process (so its CPU time is accounted apart from the
//! replicator's), and CPU-time readings from /proc.

use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use ots_testkit::ServerProcess;

/// Starts `ots-benchmarks serve` (this executable) on a free port with its database in
/// `data_dir`, or in a temporary directory (returned so that it lives as long as the caller
/// needs it).
pub async fn start_server(
    data_dir: Option<&Path>,
) -> anyhow::Result<(Option<tempfile::TempDir>, ServerProcess)> {
    let (dir, temp) = match data_dir {
        Some(dir) => (dir.to_owned(), None),
        None => {
            let temp = tempfile::tempdir()?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let listen = "127.0.0.1:0".parse().expect("address");
    let server = ServerProcess::spawn(exe, &["serve"], &dir, listen, &[], Stdio::inherit())
        .await
        .context("starting the server process")?;
    println!("server: {} (pid {})", server.url(), server.pid());
    Ok((temp, server))
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
    pub fn now(server: &ServerProcess) -> Self {
        Self {
            own: cpu_secs("self"),
            server: cpu_secs(&server.pid().to_string()),
        }
    }

    /// `(own, server)` CPU seconds since `self`.
    pub fn since(&self, server: &ServerProcess) -> (f64, f64) {
        self.between(&Self::now(server))
    }

    /// `(own, server)` CPU seconds from `self` to `later`.
    pub fn between(&self, later: &Self) -> (f64, f64) {
        (later.own - self.own, later.server - self.server)
    }
}
