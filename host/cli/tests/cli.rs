//! The `otsrep` binary as a user runs it: config errors, and a replicator killed with SIGKILL
//! whose successor resumes from the checkpoints.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ots_client::rows::{RangeQuery, ReadOptions};
use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue};
use ots_testkit::LocalServer;
use ots_testkit::workload::{self, WriteLoad};

fn otsrep() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otsrep"));
    command.env_remove("OTS_READER_ACCESS_ID");
    command.env_remove("OTS_READER_ACCESS_KEY");
    command.env_remove("OTS_WRITER_ACCESS_ID");
    command.env_remove("OTS_WRITER_ACCESS_KEY");
    command
}

fn run_with_config(dir: &Path, name: &str, text: &str) -> (i32, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let output = otsrep()
        .args(["replicate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const GUIDE: &str = r#"{
  "ots-reader": {"endpoint": "http://127.0.0.1:9", "instanceName": "i", "tableName": "s",
                 "accessId": "a", "accessKey": "b", "tunnelName": "t", "endTime": "2026-11-24 20:00:00"},
  "ots-writer": {"endpoint": "http://127.0.0.1:9", "instanceName": "i", "tableName": "d",
                 "accessId": "a", "accessKey": "b", "batchWriteCount": 100}
}"#;

#[test]
fn bad_configs_fail_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            GUIDE.replace("\"batchWriteCount\": 100", "\"batchWriteCount\": 201"),
            "config key `ots-writer.batchWriteCount`: must be between 1 and 200, got 201",
        ),
        (
            GUIDE.replace("\"tunnelName\"", "\"tunnel\""),
            "config key `ots-reader.tunnel`: is not a known key",
        ),
        (
            GUIDE.replace("2026-11-24 20:00:00", "tomorrow"),
            "config key `ots-reader.endTime`: \"tomorrow\" is not a time",
        ),
        (
            GUIDE.replace(
                r#""accessId": "a", "accessKey": "b", "tunnelName""#,
                r#""tunnelName""#,
            ),
            "config key `ots-reader.accessId`: is required",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let (code, stderr) = run_with_config(dir.path(), &format!("c{i}.json"), text);
        assert_ne!(code, 0, "config {i} must be rejected");
        assert!(
            stderr.contains(expected),
            "config {i}: stderr {stderr:?} lacks {expected:?}"
        );
    }
    let (code, stderr) = run_with_config(dir.path(), "bad.toml", "[ots-reader\n");
    assert_ne!(code, 0);
    assert!(stderr.contains("config is not valid TOML"), "{stderr}");

    let output = otsrep()
        .args(["replicate", "--config", "/nonexistent/otsrep.json"])
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read config file"));
}

async fn count_rows(client: &ots_client::Client, table: &str) -> usize {
    let bound = |v: PrimaryKeyValue| {
        PrimaryKey(vec![PrimaryKeyColumn {
            name: "id".into(),
            value: v,
        }])
    };
    match client
        .get_range(RangeQuery {
            table: table.into(),
            start: bound(PrimaryKeyValue::InfMin),
            end: bound(PrimaryKeyValue::InfMax),
            backward: false,
            limit: None,
            page_size: Some(5000),
            options: ReadOptions {
                columns_to_get: vec!["level".into()],
                max_versions: 1,
            },
        })
        .collect_all()
        .await
    {
        Ok(rows) => rows.len(),
        Err(_) => 0,
    }
}

fn toml_config(url: &str, end_time: Option<&str>) -> String {
    let mut text = ots_testkit::config_toml(url, "src", "t1", "dst");
    if let Some(end) = end_time {
        text = text.replace(
            "tunnelName = \"t1\"",
            &format!("tunnelName = \"t1\"\nendTime = \"{end}\""),
        );
    }
    text + "batchWriteCount = 50\n\n[replicator]\nmonitorIntervalSecs = 1\nheartbeatTimeoutSecs = 3\n"
}

/// `otsrep COMMAND --config CONFIG`, run to its end off the async runtime.
async fn with_config(command: &'static str, config: &Path) -> std::process::Output {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        otsrep()
            .args([command, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replicator_is_resumed_by_the_next_one() {
    let server = LocalServer::start().await;
    let url = server.url();
    let client = server.client();
    let rows = 20_000;
    workload::create_source_table(&client, "src").await.unwrap();
    workload::fill(&client, "src", rows, 4, |_| {})
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let continuous = dir.path().join("continuous.toml");
    let metrics_port = ots_testkit::free_port();
    std::fs::write(
        &continuous,
        toml_config(&url, None) + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    )
    .unwrap();
    let mut child = otsrep()
        .args(["replicate", "--config"])
        .arg(&continuous)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let load = WriteLoad::start(
        client.clone(),
        "src".into(),
        rows,
        40,
        Duration::from_millis(50),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_rows(&client, "dst").await < 1000 {
        assert!(
            Instant::now() < deadline,
            "the first replicator made no progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // While it runs, `status` shows its processor's counters from its metrics endpoint.
    let running = with_config("status", &continuous).await;
    let running = String::from_utf8_lossy(&running.stdout);
    let stage = running
        .lines()
        .find(|l| l.starts_with("0 ") && l.contains("replicate"))
        .unwrap_or_else(|| panic!("status lists the replicate stage: {running}"));
    let columns: Vec<&str> = stage.split_whitespace().collect();
    let records_in: u64 = columns[3].parse().unwrap();
    assert!(records_in >= 1000, "{stage}");
    assert_eq!(
        columns[4], columns[3],
        "replicate keeps every record: {stage}"
    );
    assert_eq!(columns.last(), Some(&"-"), "no failures: {stage}");
    child.kill().unwrap();
    child.wait().unwrap();

    // More writes while nobody replicates, then a successor with an end time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = chrono::Local::now() + chrono::Duration::seconds(4);
    let end_text = end.format("%Y-%m-%d %H:%M:%S").to_string();
    let end_utc = ots_replicator::config::parse_time(&end_text).unwrap();
    let bounded = dir.path().join("bounded.toml");
    std::fs::write(&bounded, toml_config(&url, Some(&end_text))).unwrap();
    let successor = tokio::task::spawn_blocking({
        let bounded = bounded.clone();
        move || {
            otsrep()
                .args(["replicate", "--config"])
                .arg(&bounded)
                .output()
                .unwrap()
        }
    });
    let until = (end_utc - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until.saturating_sub(Duration::from_millis(1500))).await;
    load.stop().await.unwrap();
    assert!(
        chrono::Utc::now() < end_utc,
        "the load's last batch committed before the end time"
    );
    tokio::time::sleep(
        (end_utc - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100),
    )
    .await;
    let markers: Vec<i64> = (1..=8).map(|i| -i).collect();
    workload::touch_and_remove(&client, "src", &markers)
        .await
        .unwrap();

    let output = tokio::time::timeout(Duration::from_secs(120), successor)
        .await
        .expect("the successor reaches the end time")
        .unwrap();
    assert!(
        output.status.success(),
        "successor failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("reached the end time"), "{stdout}");

    let status = with_config("status", &bounded).await;
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "status failed: {status_text}");
    assert!(
        status_text.contains("stage ProcessStream") && status_text.contains("Stream "),
        "status shows the stage and the stream channels: {status_text}"
    );

    let verify = with_config("verify", &bounded).await;
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "verify found differences: {report}"
    );
    assert!(report.contains(" 0 differing range(s)"), "{report}");
    server.shutdown().await;
}
