//! The local server for tests: in this process on a free port ([`LocalServer`]), or as a child
//! process that can be killed with SIGKILL and started again on the same data
//! ([`ServerProcess`]).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ots_client::Client;
use ots_local_server::serve::listening_endpoint;
use ots_local_server::{FaultConfig, RunningServer, ServerConfig, StartError};
#[cfg(feature = "replication")]
use ots_replicator::config::{ProcessorConfig, ReplicatorConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE, server_config};

/// Where a server keeps its data: a temporary directory it owns, or a given one.
enum DataDir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            Self::Temporary(dir) => dir.path(),
            Self::Given(path) => path,
        }
    }
}

/// A local server in this process on a free loopback port, with the local credentials.
pub struct LocalServer {
    server: RunningServer,
    data: DataDir,
}

impl LocalServer {
    /// Starts a server with its data in a new temporary directory.
    pub async fn start() -> Self {
        Self::start_with_faults(FaultConfig::default()).await
    }

    /// Starts a server that injects `faults`, its data in a new temporary directory.
    pub async fn start_with_faults(faults: FaultConfig) -> Self {
        Self::start_configured(|config| config.faults = faults).await
    }

    /// Starts a server whose streams count `stream_hour` as an hour, so that records expire
    /// and are trimmed within seconds.
    pub async fn start_with_stream_hour(stream_hour: Duration) -> Self {
        Self::start_configured(|config| config.stream_hour = stream_hour).await
    }

    async fn start_configured(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = server_config(dir.path(), FaultConfig::default());
        configure(&mut config);
        Self::open(DataDir::Temporary(dir), config)
            .await
            .expect("local server starts")
    }

    /// Starts a server over the data in `dir` (created if missing), e.g. to restart one.
    pub async fn start_in(dir: &Path, faults: FaultConfig) -> Result<Self, StartError> {
        Self::open(DataDir::Given(dir.to_owned()), server_config(dir, faults)).await
    }

    async fn open(data: DataDir, config: ServerConfig) -> Result<Self, StartError> {
        let server = ots_local_server::start(config).await?;
        Ok(Self { server, data })
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        self.server.endpoint()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// A client of this server.
    pub fn client(&self) -> Client {
        crate::client(&self.url())
    }

    /// A config replicating `source` into `destination` through `tunnel` on this server.
    #[cfg(feature = "replication")]
    pub fn config(
        &self,
        source: &str,
        tunnel: &str,
        destination: &str,
        processor: ProcessorConfig,
    ) -> ReplicatorConfig {
        crate::local_config(&self.url(), source, tunnel, destination, processor)
    }

    /// Stops the server and closes its database (the data directory stays while `self`
    /// would have kept it: a temporary one goes now).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A free loopback port (bound, then released for a server to take), for a server that must
/// come back on the same address after a restart.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A local server in a child process: `program` with the server's flags (those of
/// `ots-local-server` and `otsrep serve`). Killed when dropped.
pub struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    /// Starts `program leading_args.. --data-dir D --listen L --instance .. --access-key-id ..
    /// --access-key-secret .. extra..` and waits for the line saying where it listens. The
    /// child's stderr goes to `stderr`.
    pub async fn spawn(
        program: impl AsRef<OsStr>,
        leading_args: &[&str],
        data_dir: &Path,
        listen: SocketAddr,
        extra: &[String],
        stderr: Stdio,
    ) -> std::io::Result<Self> {
        let mut child = Command::new(program)
            .args(leading_args)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &listen.to_string()])
            .args(["--instance", INSTANCE])
            .args(["--access-key-id", ACCESS_KEY_ID])
            .args(["--access-key-secret", ACCESS_KEY_SECRET])
            .args(extra)
            .env_remove("OTS_LOCAL_ACCESS_KEY_ID")
            .env_remove("OTS_LOCAL_ACCESS_KEY_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let read = tokio::time::timeout(
            Duration::from_secs(60),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await;
        let url = match read {
            Ok(Ok(_)) => listening_endpoint(line.trim()).map(str::to_owned),
            _ => None,
        };
        match url {
            Some(url) => Ok(Self { child, url }),
            None => {
                let _ = child.start_kill();
                Err(std::io::Error::other(format!(
                    "the server did not say where it listens; it printed {line:?}"
                )))
            }
        }
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of this server.
    pub fn client(&self) -> Client {
        crate::client(&self.url)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    pub async fn kill9(mut self) {
        let _ = self.child.kill().await;
    }
}
