//! Tenant isolation across `otsrep` processes: two replicators share a tunnel and a tenant
//! backlog; one is killed with SIGKILL while a tenant is quarantined; the tenant's guest is
//! replaced, the surviving process resumes and replays it, and every tenant's destination ends
//! an exact copy of its rows.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ots_client::Client;
use ots_protocol::model::{PrimaryKeyValue, Row, RowExistence};
use ots_replicator::tenants::{Backlog, Status};
use ots_replicator::verify::{RowView, VerifyOptions, verify_view};
use ots_testkit::workload::{self, WriteLoad};
use ots_testkit::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE, LocalServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SOURCE: &str = "src";
const ROWS: i64 = 1500;
const TRIGGER: i64 = 3000;

/// A running `otsrep replicate`, its log kept for failure messages; killed when dropped.
struct Replicator {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replicator {
    fn spawn(config: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otsrep"))
            .env_remove("OTSREP_LOG")
            .args(["replicate", "--config"])
            .arg(config)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("otsrep replicate starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line);
                }
            }
        });
        Self { child, log }
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(30)..].join("\n")
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{what}: the replicator exited ({status}):\n{}",
                self.log_tail()
            );
        }
    }
}

fn config(dir: &Path, url: &str, guests: &Path) -> PathBuf {
    let path = dir.join("tenants.toml");
    let text = format!(
        r#"
[ots-reader]
endpoint = "{url}"
instanceName = "{INSTANCE}"
tableName = "{SOURCE}"
accessId = "{ACCESS_KEY_ID}"
accessKey = "{ACCESS_KEY_SECRET}"
tunnelName = "t1"

[ots-writer]
endpoint = "{url}"
instanceName = "{INSTANCE}"
tableName = "rest_copy"
accessId = "{ACCESS_KEY_ID}"
accessKey = "{ACCESS_KEY_SECRET}"

[replicator]
monitorIntervalSecs = 1
heartbeatTimeoutSecs = 3

[tenants]
keyColumn = "id"
backlogTable = "backlog"

[[tenants.rules]]
name = "ones"
prefix = "1"
destination = "ones_copy"

[[tenants.rules]]
name = "threes"
prefix = "3"
destination = "threes_copy"

[[tenants.rules.processors]]
file = "threes.wasm"
guestDir = "{}"
"#,
        guests.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn components(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-processors")
        .join(dir)
}

async fn wait_for<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
    processes: &mut [&mut Replicator],
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        for p in processes.iter_mut() {
            p.assert_running(what);
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn assert_copy(client: &Client, destination: &str, view: &RowView) {
    let options = VerifyOptions {
        rows_per_range: 500,
        page_size: 500,
    };
    let report = verify_view(client, SOURCE, client, destination, options, view)
        .await
        .unwrap();
    assert!(
        report.is_match(),
        "{destination} differs in {:?}",
        report.differing().collect::<Vec<_>>()
    );
    assert!(report.destination_rows() > 50, "{destination}: {report}");
}

fn starts_with(row: &Row, prefix: char) -> bool {
    match row.primary_key.0[0].value {
        PrimaryKeyValue::Integer(id) => id.to_string().starts_with(prefix),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_and_a_kill_9_while_a_tenant_is_quarantined_end_in_exact_copies() {
    let started = Instant::now();
    let server = LocalServer::start().await;
    let client = server.client();
    workload::create_source_table(&client, SOURCE)
        .await
        .unwrap();
    workload::fill(&client, SOURCE, ROWS, 2, |_| {})
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let guests = dir.path().join("guests");
    std::fs::create_dir(&guests).unwrap();
    let threes = guests.join("threes.wasm");
    std::fs::copy(
        components("test-components").join("misbehave.wasm"),
        &threes,
    )
    .unwrap();
    let config = config(dir.path(), &server.url(), &guests);

    let load = WriteLoad::start(
        client.clone(),
        SOURCE.into(),
        ROWS + ROWS / 10,
        20,
        Duration::from_millis(50),
    );
    let mut first = Replicator::spawn(&config, &[]);
    let mut second = Replicator::spawn(&config, &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // A record makes the third tenant's guest trap.
    let trigger = workload::misbehaving_row(TRIGGER, chrono::Utc::now().timestamp_millis(), "trap");
    client
        .write_row(SOURCE, &trigger, RowExistence::Ignore)
        .await
        .unwrap();
    let backlog = Backlog::new(client.clone(), "backlog".into());
    wait_for(
        "the third tenant's quarantine",
        Duration::from_secs(30),
        || async {
            matches!(backlog.state("threes").await, Ok(Some(s)) if s.status == Status::Quarantined)
        },
        &mut [&mut first, &mut second],
    )
    .await;

    // One process dies while the tenant is quarantined; its channels move to the other, which
    // keeps setting the tenant's records aside.
    first.child.kill().await.unwrap();
    let held = backlog.count("threes").await.unwrap();
    wait_for(
        "the backlog to grow after the kill",
        Duration::from_secs(30),
        || async { backlog.count("threes").await.unwrap() > held + 5 },
        &mut [&mut second],
    )
    .await;
    let otsrep_tenants = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_otsrep"));
        command
            .arg("tenants")
            .args(args)
            .arg("--config")
            .arg(&config);
        command.output()
    };
    let status = otsrep_tenants(&["list"]).await.unwrap();
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{listing}");
    let threes_line = listing.lines().find(|l| l.starts_with("threes")).unwrap();
    assert!(
        threes_line.contains("quarantined") && threes_line.contains("trapped"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("ones") && l.contains("active")),
        "{listing}"
    );

    // An operator resuming it without fixing the guest: the replay fails on the same record
    // and the tenant is quarantined again, its backlog kept.
    let unknown = otsrep_tenants(&["resume", "nobody"]).await.unwrap();
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        message
            .contains("no tenant \"nobody\" in the config; its tenants are ones, threes, default"),
        "{message}"
    );
    let active = otsrep_tenants(&["resume", "ones"]).await.unwrap();
    assert!(String::from_utf8_lossy(&active.stdout).contains("tenant ones is not quarantined"));
    let resumed = otsrep_tenants(&["resume", "threes"]).await.unwrap();
    assert!(
        String::from_utf8_lossy(&resumed.stdout).contains("resumed tenant threes"),
        "{resumed:?}"
    );
    wait_for(
        "the failed replay to quarantine the tenant again",
        Duration::from_secs(30),
        || async {
            matches!(backlog.state("threes").await, Ok(Some(s))
                if s.status == Status::Quarantined
                    && s.last_error.as_deref().is_some_and(|e| e.contains("replaying its backlog")))
        },
        &mut [&mut second],
    )
    .await;
    assert!(
        backlog.count("threes").await.unwrap() >= held,
        "nothing of the backlog is lost"
    );

    // The fixed guest is dropped in and the killed process comes back: the tenant resumes and
    // its backlog replays in order before its new records.
    let fixed = guests.join("fixed.tmp");
    std::fs::copy(components("components").join("replicate.wasm"), &fixed).unwrap();
    std::fs::rename(&fixed, &threes).unwrap();
    let mut restarted = Replicator::spawn(&config, &[]);
    wait_for(
        "the replay of the backlog",
        Duration::from_secs(60),
        || async {
            backlog.count("threes").await.unwrap() == 0
                && matches!(backlog.state("threes").await, Ok(Some(s)) if s.status == Status::Active)
        },
        &mut [&mut second, &mut restarted],
    )
    .await;

    // Finish: stop the processes, then one bounded run to an end time after the load.
    drop((second, restarted));
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    let end_arg = end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let last = Replicator::spawn(&config, &["--end-time", &end_arg]);
    tokio::time::sleep((end - chrono::Utc::now()).to_std().unwrap() - Duration::from_secs(3)).await;
    let written = load.stop().await.unwrap();
    assert!(
        chrono::Utc::now() < end,
        "the load stopped before the end time"
    );
    tokio::time::sleep(
        (end - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100),
    )
    .await;
    workload::touch_and_remove(&client, SOURCE, &[-1, -2, -3, -4, -5, -6, -7, -8])
        .await
        .unwrap();
    let log = last.log.clone();
    let output = tokio::time::timeout(Duration::from_secs(90), last.child.wait_with_output())
        .await
        .expect("the bounded run ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("reached the end time"),
        "{stdout}\n{}",
        log.lock().unwrap().join("\n")
    );
    assert_eq!(backlog.count("threes").await.unwrap(), 0);

    assert_copy(&client, "ones_copy", &|row: Row| {
        starts_with(&row, '1').then_some(row)
    })
    .await;
    assert_copy(&client, "threes_copy", &|row: Row| {
        starts_with(&row, '3').then_some(row)
    })
    .await;
    assert_copy(&client, "rest_copy", &|row: Row| {
        (!starts_with(&row, '1') && !starts_with(&row, '3')).then_some(row)
    })
    .await;
    println!(
        "{written} changes under load, {held} records held back at the kill, all copies exact in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
