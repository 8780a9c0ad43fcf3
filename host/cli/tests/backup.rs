//! `otsrep backup` and `otsrep restore` as a user runs them: a backup killed with SIGKILL
//! several times under write load (once while its first snapshot may still run) resumes each
//! time, and a restore to an instant after the last kill equals the source then; `backup
//! list` shows the restorable window, and a restore outside it fails naming it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ots_backup::BackupStore;
use ots_testkit::workload::{self, WriteLoad};
use ots_testkit::{LocalServer, table_contents};
use tokio::process::Command;

const SOURCE: &str = "src";

/// `otsrep` with no credentials from the test's environment; killed if the test drops it.
fn otsrep() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otsrep"));
    for var in [
        "OTS_READER_ACCESS_ID",
        "OTS_READER_ACCESS_KEY",
        "OTS_WRITER_ACCESS_ID",
        "OTS_WRITER_ACCESS_KEY",
        "OTSREP_LOG",
    ] {
        command.env_remove(var);
    }
    command.kill_on_drop(true);
    command
}

/// The config: the source on `url`, restores on the same instance; a dead backup's channels
/// move after 2 s.
fn write_config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("backup.toml");
    let text = ots_testkit::config_toml(url, SOURCE, "unused", "unused")
        + "\n[replicator]\nheartbeatTimeoutSecs = 2\n";
    std::fs::write(&path, text).unwrap();
    path
}

/// A local server with the source table of `rows` rows, a directory and the config in it.
async fn source(rows: i64) -> (LocalServer, ots_client::Client, tempfile::TempDir, PathBuf) {
    let server = LocalServer::start().await;
    let client = server.client();
    workload::create_source_table(&client, SOURCE)
        .await
        .unwrap();
    workload::fill(&client, SOURCE, rows, 2, |_| {})
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.url());
    (server, client, dir, config)
}

/// The current instant to the millisecond, a few milliseconds away from any commit.
async fn instant() -> chrono::DateTime<chrono::Utc> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let at =
        chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis()).unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    at
}

fn backup_run(config: &Path, store: &Path) -> tokio::process::Child {
    otsrep()
        .args(["backup", "run", "--config"])
        .arg(config)
        .arg("--store")
        .arg(store)
        .args([
            "--margin",
            "1s",
            "--coverage-every",
            "300ms",
            "--snapshot-every",
            "3s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_with_kill_9_resumes_and_restores_exactly() {
    let (server, client, dir, config) = source(1000).await;
    let store_dir = dir.path().join("store");
    let load = WriteLoad::start(
        client.clone(),
        SOURCE.into(),
        1100,
        20,
        Duration::from_millis(40),
    );

    for after in [900, 2500, 1700, 3000] {
        let mut child = backup_run(&config, &store_dir);
        tokio::time::sleep(Duration::from_millis(after)).await;
        child.kill().await.unwrap();
    }
    load.stop().await.unwrap();
    let store = BackupStore::open(store_dir.to_str().unwrap()).unwrap();
    let killed = store
        .load_manifest()
        .await
        .expect("the killed runs stored a manifest");
    let logged: u64 = killed.log.iter().map(|s| s.entries).sum::<u64>()
        + killed.log_indexes.iter().map(|i| i.segments).sum::<u64>();
    println!(
        "after the kills: {} snapshots ({} finished), {} log segments in the tail, {} sealed runs",
        killed.snapshots.len(),
        killed.snapshots.iter().filter(|s| s.finished()).count(),
        killed.log.len(),
        killed.log_indexes.len()
    );
    assert!(killed.snapshots.iter().any(|s| s.finished()) && logged > 0);
    let at = instant().await;
    let expected = table_contents(&client, SOURCE).await;

    let child = backup_run(&config, &store_dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let covered = store
            .load_manifest()
            .await
            .ok()
            .and_then(|m| m.covered_until_ms);
        if covered.is_some_and(|c| c >= at.timestamp_millis()) {
            break;
        }
        assert!(Instant::now() < deadline, "the backup never covered {at}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "backup run ended with {}",
        output.status
    );
    let stopped = String::from_utf8_lossy(&output.stdout);
    assert!(stopped.contains("backup stopped:"), "{stopped}");

    let list = otsrep()
        .args(["backup", "list", "--store"])
        .arg(&store_dir)
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success());
    assert!(
        listed.contains("backup of table src") && listed.contains("restorable: ["),
        "{listed}"
    );

    let to = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let restored = otsrep()
        .args(["restore", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store_dir)
        .args(["--to", &to, "--table", "restored"])
        .output()
        .await
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(String::from_utf8_lossy(&restored.stdout).contains("restored table restored as of"));
    let found = table_contents(&client, "restored").await;
    assert_eq!(found.len(), expected.len());
    assert!(found == expected, "the restore equals the source at {to}");

    let outside = otsrep()
        .args(["restore", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store_dir)
        .args(["--to", "2000-01-01T00:00:00Z", "--table", "never"])
        .output()
        .await
        .unwrap();
    assert!(!outside.status.success());
    let said = String::from_utf8_lossy(&outside.stderr);
    assert!(said.contains("outside the restorable window"), "{said}");
    assert!(
        !client
            .list_table()
            .await
            .unwrap()
            .contains(&"never".to_owned())
    );
    server.shutdown().await;
}

/// An S3-compatible server (moto, from PyPI) on a free port, with bucket `backups`; killed
/// when dropped.
struct S3Server {
    /// Held so the server is killed with the struct.
    _process: tokio::process::Child,
    endpoint: String,
}

impl S3Server {
    async fn start() -> Self {
        let port = ots_testkit::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 -m moto.server (scripts/setup.sh installs moto)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let create = format!(
            "import boto3; boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='backups')"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let made = Command::new("python3")
                .args(["-c", &create])
                .output()
                .await
                .unwrap();
            if made.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the S3 server did not come up: {}",
                String::from_utf8_lossy(&made.stderr)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Self {
            _process: child,
            endpoint,
        }
    }

    /// `otsrep` talking to this server for `s3://` stores.
    fn otsrep(&self) -> Command {
        let mut command = otsrep();
        command
            .env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        command
    }
}

/// The end of the restorable window `backup list` prints, if any.
fn window_end(listed: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let line = listed.lines().find(|l| l.starts_with("restorable: ["))?;
    let until = line.split(", ").nth(1)?.split(']').next()?;
    chrono::DateTime::parse_from_rfc3339(until)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_s3_compatible_storage_restores_exactly() {
    let s3 = S3Server::start().await;
    let (server, client, _dir, config) = source(500).await;
    let store = "s3://backups/tables/src";
    let mut backup = s3
        .otsrep()
        .args(["backup", "run", "--config"])
        .arg(&config)
        .args([
            "--store",
            store,
            "--margin",
            "1s",
            "--coverage-every",
            "300ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let load = WriteLoad::start(
        client.clone(),
        SOURCE.into(),
        550,
        20,
        Duration::from_millis(40),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    load.stop().await.unwrap();
    let at = instant().await;
    let expected = table_contents(&client, SOURCE).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = s3
            .otsrep()
            .args(["backup", "list", "--store", store])
            .output()
            .await
            .unwrap();
        let listed = String::from_utf8_lossy(&list.stdout).into_owned();
        if window_end(&listed).is_some_and(|end| end >= at) {
            break;
        }
        if Instant::now() > deadline {
            backup.kill().await.unwrap();
            let mut stderr = String::new();
            use tokio::io::AsyncReadExt as _;
            backup
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .await
                .unwrap();
            panic!("the backup never covered {at}: {listed}\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    backup.kill().await.unwrap();

    let to = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let restored = s3
        .otsrep()
        .args(["restore", "--config"])
        .arg(&config)
        .args(["--store", store, "--to", &to, "--table", "from_s3"])
        .output()
        .await
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(table_contents(&client, "from_s3").await == expected);
    drop(s3);
    server.shutdown().await;
}
