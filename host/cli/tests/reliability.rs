//! Reliability of the `otsrep` binary, on loopback only and bounded in time: a replicator
//! killed with SIGKILL twenty times under write load, the server process killed and restarted
//! mid-run, injected server faults, wrong credentials and malformed configs. Every replication
//! ends with `otsrep verify` finding the destination equal to the source.
//!
//! Kill points come from a seeded RNG; the seed is printed, and `OTSREP_RELIABILITY_SEED`
//! replays it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ots_client::Client;
use ots_local_server::FaultConfig;
use ots_testkit::workload::{self, WriteLoad};
use ots_testkit::{
    ACCESS_KEY_ID as ACCESS_ID, ACCESS_KEY_SECRET as ACCESS_KEY, INSTANCE, LocalServer,
    ServerProcess,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const SOURCE: &str = "src";
const DESTINATION: &str = "dst";
/// The demo's credentials, which every server here accepts.
const GOOD_KEY: (&str, &str) = (ACCESS_ID, ACCESS_KEY);

/// `otsrep` with no credentials from the test's environment; killed if the test drops it.
fn otsrep() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otsrep"));
    for var in [
        "OTS_READER_ACCESS_ID",
        "OTS_READER_ACCESS_KEY",
        "OTS_WRITER_ACCESS_ID",
        "OTS_WRITER_ACCESS_KEY",
        "OTS_LOCAL_ACCESS_KEY_ID",
        "OTS_LOCAL_ACCESS_KEY_SECRET",
        "OTSREP_LOG",
    ] {
        command.env_remove(var);
    }
    command.kill_on_drop(true);
    command
}

/// The RNG of kill points and outages, from `OTSREP_RELIABILITY_SEED` or a fresh seed.
fn seeded_rng(test: &str) -> StdRng {
    let seed = std::env::var("OTSREP_RELIABILITY_SEED")
        .ok()
        .map(|s| s.parse().expect("OTSREP_RELIABILITY_SEED is a u64"))
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (replay with OTSREP_RELIABILITY_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// A TOML config replicating `src` into `dst` through tunnel `t1` on `url`, with the given
/// reader and writer access keys, heartbeat timeout and rows per BatchWriteRow.
fn config_text(
    url: &str,
    reader: (&str, &str),
    writer: (&str, &str),
    heartbeat_timeout_secs: u32,
    batch_write_count: u32,
) -> String {
    format!(
        r#"
[ots-reader]
endpoint = "{url}"
instanceName = "{INSTANCE}"
tableName = "{SOURCE}"
accessId = "{}"
accessKey = "{}"
tunnelName = "t1"

[ots-writer]
endpoint = "{url}"
instanceName = "{INSTANCE}"
tableName = "{DESTINATION}"
accessId = "{}"
accessKey = "{}"
batchWriteCount = {batch_write_count}

[replicator]
monitorIntervalSecs = 1
heartbeatTimeoutSecs = {heartbeat_timeout_secs}
"#,
        reader.0, reader.1, writer.0, writer.1
    )
}

/// Writes the config with the demo's keys; a dead replicator's channels move after
/// `heartbeat_timeout_secs`.
fn write_config(
    dir: &Path,
    url: &str,
    heartbeat_timeout_secs: u32,
    batch_write_count: u32,
) -> PathBuf {
    let path = dir.join("replicate.toml");
    let text = config_text(
        url,
        GOOD_KEY,
        GOOD_KEY,
        heartbeat_timeout_secs,
        batch_write_count,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A client of the server at `url` with the demo's keys.
fn client(url: &str) -> Client {
    ots_testkit::client(url)
}

/// Creates the stream-enabled source table with `rows` rows.
async fn fill_source(client: &Client, rows: i64) {
    workload::create_source_table(client, SOURCE).await.unwrap();
    workload::fill(client, SOURCE, rows, 2, |_| {})
        .await
        .unwrap();
}

/// A load of 20 random changes every 50 ms over the source's ids and a tenth more.
fn write_load(client: &Client, rows: i64) -> WriteLoad {
    WriteLoad::start(
        client.clone(),
        SOURCE.into(),
        rows + rows / 10,
        20,
        Duration::from_millis(50),
    )
}

/// A local server in this process on a free port, its data in `data`.
async fn start_server(data: &Path, faults: FaultConfig) -> LocalServer {
    LocalServer::start_in(data, faults).await.unwrap()
}

/// Counters a running replicator serves on `/metrics`.
#[derive(Debug, Clone, Copy)]
struct Counters {
    base_applied: u64,
    stream_applied: u64,
    rows_written: u64,
}

impl Counters {
    /// Where in the replication these counters say the process was. The applied counts
    /// move once a whole read batch (up to 1000 records) is written, rows_written per
    /// BatchWriteRow.
    fn phase(&self) -> &'static str {
        match (self.base_applied, self.stream_applied) {
            _ if self.rows_written == 0 => "nothing written yet",
            (0, 0) => "writing its first batch",
            (_, 0) => "full copy",
            (0, _) => "incremental",
            _ => "full copy, then incremental",
        }
    }
}

/// A running `otsrep replicate` serving metrics on a free port; its JSON log lines are kept
/// for failure messages and for finding the metrics address.
struct Replicator {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replicator {
    /// Starts `otsrep replicate --config config` with `extra_args`.
    fn spawn(config: &Path, extra_args: &[&str]) -> Self {
        let mut child = otsrep()
            .args(["--log-format", "json", "replicate", "--config"])
            .arg(config)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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

    /// The last lines the process logged.
    fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Panics with the log when the process has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{what}: the replicator exited ({status}):\n{}",
                self.log_tail()
            );
        }
    }

    /// Where the process serves metrics, from its log line saying so.
    fn metrics_addr(&self) -> Option<SocketAddr> {
        self.log.lock().unwrap().iter().find_map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = entry.get("fields")?;
            if fields.get("message")?.as_str()? != "serving Prometheus metrics on /metrics" {
                return None;
            }
            fields.get("addr")?.as_str()?.parse().ok()
        })
    }

    /// The counters, once the process serves them.
    async fn counters(&self) -> Option<Counters> {
        let addr = self.metrics_addr()?;
        let text = tokio::time::timeout(Duration::from_secs(2), async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: otsrep\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await.ok()?;
            Some(text)
        })
        .await
        .ok()??;
        let counter = |name: &str| -> Option<u64> {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        };
        Some(Counters {
            base_applied: counter("replicator_base_records_applied_total")?,
            stream_applied: counter("replicator_stream_records_applied_total")?,
            rows_written: counter("replicator_rows_written_total")?,
        })
    }

    /// Polls the counters until `done` holds; panics with the log after `timeout`.
    async fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&Counters) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running(what);
            if let Some(counters) = self.counters().await
                && done(&counters)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash or an OOM kill would end it.
    async fn kill9(mut self) {
        self.child.kill().await.expect("SIGKILL the replicator");
    }

    /// SIGTERM: the process finishes its batches in flight, leaves the tunnel and exits.
    async fn terminate(self, timeout: Duration) -> (ExitStatus, String) {
        let pid = self.child.id().expect("the replicator runs").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.exit(timeout).await
    }

    /// Waits for the process to exit by itself; returns its status and stdout.
    async fn exit(self, timeout: Duration) -> (ExitStatus, String) {
        let log = self.log;
        match tokio::time::timeout(timeout, self.child.wait_with_output()).await {
            Ok(output) => {
                let output = output.unwrap();
                (
                    output.status,
                    String::from_utf8_lossy(&output.stdout).into_owned(),
                )
            }
            Err(_) => panic!(
                "the replicator did not exit within {timeout:?}:\n{}",
                tail(&log)
            ),
        }
    }
}

/// The last 30 lines of a log.
fn tail(log: &Mutex<Vec<String>>) -> String {
    let log = log.lock().unwrap();
    log[log.len().saturating_sub(30)..].join("\n")
}

/// Ends a replication exactly: starts a replicator bounded by an end time (taking over from
/// whatever ran before), stops `load` 3 s before the end (room for its last batch's retries),
/// gives every channel a record past the end, and checks that the run reaches the end time
/// and `otsrep verify` finds the copy exact. Returns the number of rows compared and the
/// run's summary line.
async fn finish_and_verify(config: &Path, client: &Client, load: WriteLoad) -> (u64, String) {
    let end = chrono::Utc::now() + chrono::Duration::seconds(5);
    let end_arg = end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let last = Replicator::spawn(config, &["--end-time", &end_arg]);
    let until = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until.saturating_sub(Duration::from_secs(3))).await;
    let written = load.stop().await.unwrap();
    assert!(
        chrono::Utc::now() < end,
        "the load's last batch committed after the end time"
    );
    println!("write load: {written} changes");
    let rest = (end - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(rest + Duration::from_millis(100)).await;
    let markers: Vec<i64> = (1..=8).map(|i| -i).collect();
    workload::touch_and_remove(client, SOURCE, &markers)
        .await
        .unwrap();
    let (status, stdout) = last.exit(Duration::from_secs(90)).await;
    assert!(status.success(), "the bounded run failed ({status})");
    assert!(stdout.contains("reached the end time"), "{stdout}");
    (verify_equal(config).await, stdout.trim().to_owned())
}

/// Runs `otsrep verify`; asserts success, no differing range and equal row counts. Returns
/// the row count.
async fn verify_equal(config: &Path) -> u64 {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        otsrep()
            .args(["verify", "--rows-per-range", "500", "--config"])
            .arg(config)
            .output(),
    )
    .await
    .expect("verify finishes within 60 s")
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let summary = report.lines().next().unwrap_or_default();
    // "verify: R ranges, source S rows, destination D rows, K differing range(s)"
    let numbers: Vec<u64> = summary
        .split([' ', ','])
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        output.status.success() && numbers.len() == 4,
        "verify failed ({}): {report}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (source_rows, destination_rows, differing) = (numbers[1], numbers[2], numbers[3]);
    assert_eq!(differing, 0, "{report}");
    assert_eq!(source_rows, destination_rows, "{report}");
    assert!(source_rows > 0, "{report}");
    println!("{summary}");
    source_rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_9s_of_the_replicator_under_write_load_end_in_an_exact_copy() {
    const KILLS: usize = 20;
    const ROWS: i64 = 5000;
    let started = Instant::now();
    let mut rng = seeded_rng("replicator kill -9");
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), FaultConfig::default()).await;
    let client = client(&server.url());
    fill_source(&client, ROWS).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.url(), 2, 50);
    let load = write_load(&client, ROWS);

    // A quarter of the kills land anywhere in start-up (guest compilation, table and tunnel
    // set-up, connecting, waiting for channels); the rest once the process writes rows, the
    // first of them early enough to interrupt the full copy.
    for kill in 1..=KILLS {
        let mut replicator = Replicator::spawn(&config, &[]);
        let during_start_up = kill > 1 && rng.random_ratio(1, 4);
        let delay = if during_start_up {
            Duration::from_millis(rng.random_range(0..=3500))
        } else {
            replicator
                .wait_for(
                    &format!("rows written before kill {kill}"),
                    Duration::from_secs(30),
                    |c| c.rows_written > 0,
                )
                .await;
            Duration::from_millis(rng.random_range(0..=if kill == 1 { 200 } else { 1200 }))
        };
        tokio::time::sleep(delay).await;
        replicator.assert_running(&format!("before kill {kill}"));
        let counters = replicator.counters().await;
        replicator.kill9().await;
        let phase = counters.map_or("starting up", |c| c.phase());
        println!(
            "kill {kill}, {delay:?} after {}: {phase} {counters:?}",
            if during_start_up {
                "spawn"
            } else {
                "its first write"
            }
        );
        if kill == 1 {
            let base = counters.map_or(0, |c| c.base_applied);
            assert!(
                base < ROWS as u64,
                "the first kill came after the full copy ({base} rows applied)"
            );
        }
    }
    let (rows, _) = finish_and_verify(&config, &client, load).await;
    println!(
        "{KILLS} kills, {rows} rows verified in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    server.shutdown().await;
}

/// `otsrep serve` on `listen` over `data`.
async fn spawn_server(data: &Path, listen: SocketAddr) -> ServerProcess {
    ServerProcess::spawn(
        env!("CARGO_BIN_EXE_otsrep"),
        &["serve"],
        data,
        listen,
        &[],
        Stdio::null(),
    )
    .await
    .expect("otsrep serve starts")
}

/// `WriteLoad` gives up when an outage outlasts the client's retries of a batch, so a load
/// that ran into the outage is replaced by a fresh one.
async fn restart_load(load: WriteLoad, client: &Client, rows: i64) -> WriteLoad {
    if let Err(error) = load.stop().await {
        let chain = format!("{error:#}");
        assert!(
            chain.contains("transport error"),
            "the write load failed: {chain}"
        );
    }
    write_load(client, rows)
}

/// The replicator rides out each outage. Its heartbeat timeout (1 s) is shorter than every
/// outage (1.5 to 2.5 s), so the restarted server has expired its session each time and the
/// same process must reconnect and resume from the checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_and_restarted_mid_run_loses_nothing() {
    const ROWS: i64 = 3000;
    let started = Instant::now();
    let mut rng = seeded_rng("server kill -9");
    let data = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], ots_testkit::free_port()));
    let mut server = spawn_server(data.path(), listen).await;
    let url = server.url().to_owned();
    let client = client(&url);
    fill_source(&client, ROWS).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, 1, 50);
    let mut load = write_load(&client, ROWS);
    let mut replicator = Replicator::spawn(&config, &[]);

    // First during the full copy, then twice once stream records flow.
    for kill in 1..=3 {
        let (what, trigger): (&str, fn(&Counters) -> bool) = if kill == 1 {
            ("the full copy", |c| c.base_applied > 0)
        } else {
            ("the incremental copy", |c| c.stream_applied > 0)
        };
        replicator
            .wait_for(what, Duration::from_secs(60), trigger)
            .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=1000))).await;
        let at = replicator.counters().await;
        server.kill9().await;
        let outage = Duration::from_millis(rng.random_range(1500..=2500));
        tokio::time::sleep(outage).await;
        server = spawn_server(data.path(), listen).await;
        load = restart_load(load, &client, ROWS).await;
        println!("server kill {kill} during {what} ({at:?}), down {outage:?}");
        // The same process carries on once the server is back.
        let written = replicator.counters().await.map_or(0, |c| c.rows_written);
        replicator
            .wait_for(
                "rows written after the restart",
                Duration::from_secs(60),
                |c| c.rows_written > written,
            )
            .await;
    }
    let reconnects = replicator
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("reconnected to the tunnel"))
        .count();
    assert!(
        reconnects >= 1,
        "the expired session was replaced by a new one:\n{}",
        replicator.log_tail()
    );
    // A graceful stop hands the channels over at once.
    let (status, stdout) = replicator.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "the replicator failed on SIGTERM ({status})"
    );
    assert!(stdout.contains("stopped on request"), "{stdout}");
    let (rows, _) = finish_and_verify(&config, &client, load).await;
    println!(
        "3 server kills, {rows} rows verified in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    server.kill9().await;
}

/// The source is filled without faults, then the server restarts on the same data with 5 %
/// of requests failing whole, 5 % of batch rows failing and 5 ms more per request. A
/// replicator is killed in the full copy; its successor ends the copy exactly, having resent
/// rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_latency_and_partial_batch_failures_end_in_an_exact_copy() {
    const ROWS: i64 = 2000;
    let started = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), FaultConfig::default()).await;
    fill_source(&client(&server.url()), ROWS).await;
    server.shutdown().await;
    let faults = FaultConfig {
        error_rate: 0.05,
        latency: Duration::from_millis(5),
        row_failure_rate: 0.05,
    };
    let server = start_server(data.path(), faults).await;
    let client = client(&server.url());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server.url(), 2, 200);
    let load = write_load(&client, ROWS);
    let mut first = Replicator::spawn(&config, &[]);
    first
        .wait_for("rows written under faults", Duration::from_secs(60), |c| {
            c.rows_written > 0
        })
        .await;
    first.kill9().await;
    let (rows, summary) = finish_and_verify(&config, &client, load).await;
    // "... N rows written (M retried) in B batches"
    let retried: u64 = summary
        .split_once(" retried)")
        .and_then(|(head, _)| head.rsplit('(').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no retry count in {summary:?}"));
    assert!(retried > 0, "no row was retried under faults: {summary}");
    println!(
        "faults: {rows} rows verified in {:.1}s; {summary}",
        started.elapsed().as_secs_f64()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_fast_naming_the_problem_and_write_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), FaultConfig::default()).await;
    let url = server.url();
    let client = client(&url);
    fill_source(&client, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wrong reader secret",
            config_text(&url, (ACCESS_ID, "not-the-secret"), GOOD_KEY, 2, 50),
            "describing source table src",
        ),
        (
            "unknown writer access id",
            config_text(&url, GOOD_KEY, ("nobody", ACCESS_KEY), 2, 50),
            "describing destination table dst",
        ),
    ];
    for (what, text, action) in cases {
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, text).unwrap();
        let started = Instant::now();
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            otsrep().args(["replicate", "--config"]).arg(&path).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: the replicator still runs after 30 s"))
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: failing took {:?}",
            started.elapsed()
        );
        assert!(
            stderr.contains("OTSAuthFailed") && stderr.contains(action),
            "{what}: stderr {stderr:?} lacks OTSAuthFailed or {action:?}"
        );
    }
    assert_eq!(client.list_table().await.unwrap(), vec![SOURCE.to_owned()]);
    assert!(client.list_tunnel(Some(SOURCE)).await.unwrap().is_empty());
    server.shutdown().await;
}

/// The guide's JSON against an address nothing listens on: every case fails before a
/// connection.
const GUIDE: &str = r#"{
  "ots-reader": {"endpoint": "http://127.0.0.1:9", "instanceName": "i", "tableName": "s",
                 "accessId": "a", "accessKey": "b", "tunnelName": "t", "endTime": "2026-11-24 20:00:00"},
  "ots-writer": {"endpoint": "http://127.0.0.1:9", "instanceName": "i", "tableName": "d",
                 "accessId": "a", "accessKey": "b", "batchWriteCount": 100}
}"#;

#[tokio::test]
async fn malformed_configs_fail_naming_the_key() {
    let with_processor = |section: &str| GUIDE.replacen("{", &format!("{{{section},"), 1);
    let cases = [
        (
            GUIDE.replace("\"batchWriteCount\": 100", "\"batchWriteCount\": 0"),
            "config key `ots-writer.batchWriteCount`: must be between 1 and 200, got 0",
        ),
        (
            GUIDE.replace("\"batchWriteCount\": 100", "\"batchWriteCount\": \"lots\""),
            "config key `ots-writer.batchWriteCount`: must be an integer",
        ),
        (
            GUIDE.replace("2026-11-24 20:00:00", "2026-11-24T20:00:00"),
            "config key `ots-reader.endTime`: \"2026-11-24T20:00:00\" is not a time",
        ),
        (
            GUIDE.replace("2026-11-24 20:00:00", "2026-02-30 20:00:00"),
            "config key `ots-reader.endTime`: \"2026-02-30 20:00:00\" is not a time",
        ),
        (
            GUIDE.replacen("http://127.0.0.1:9", "127.0.0.1:9", 1),
            "config key `ots-reader.endpoint`: \"127.0.0.1:9\" must start with http:// or https://",
        ),
        (
            GUIDE.replacen("\"accessKey\": \"b\"", "\"accessKey\": \"\"", 1),
            "config key `ots-reader.accessKey`: must not be empty",
        ),
        (
            GUIDE.replace("\"tableName\": \"d\"", "\"tableName\": 7"),
            "config key `ots-writer.tableName`: must be a string, got a number",
        ),
        (
            with_processor(r#""processor": {"name": "upper"}"#),
            "config key `processor.name`: unknown processor \"upper\"",
        ),
        (
            with_processor(r#""processor": {"name": "filter", "file": "f.wasm"}"#),
            "config key `processor.file`: set either `name`",
        ),
        (
            with_processor(r#""processor": {"options": "--upper"}"#),
            "config key `processor.options`: must be a table/object, got a string",
        ),
        (
            with_processor(r#""metrics": {"listen": "localhost"}"#),
            "config key `metrics.listen`: \"localhost\" is not an address",
        ),
        (
            with_processor(r#""replicator": {"heartbeatTimeoutSecs": 0}"#),
            "config key `replicator.heartbeatTimeoutSecs`: must be a positive number of seconds, got 0",
        ),
        (
            with_processor(r#""ots-writter": {}"#),
            "config key `ots-writter`: is not a known key",
        ),
        (
            GUIDE
                .replace("\"ots-writer\": {", "\"ots-writer\": [{")
                .replace("100}", "100}]"),
            "config key `ots-writer`: must be an object, got an array",
        ),
        (
            GUIDE.replace("\"tableName\": \"s\",", "\"tableName\": \"s\""),
            "config is not valid JSON: expected `,` or `}` at line 3",
        ),
        (
            GUIDE[..GUIDE.len() / 2].to_owned(),
            "config is not valid JSON: EOF while parsing",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.json"));
        std::fs::write(&path, text).unwrap();
        let output = otsrep()
            .args(["replicate", "--config"])
            .arg(&path)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "config {i}: {stderr}");
        assert!(
            stderr.contains(expected),
            "config {i}: stderr {stderr:?} lacks {expected:?}"
        );
    }

    let missing_guest = dir.path().join("guest.toml");
    std::fs::write(
        &missing_guest,
        format!(
            "{}\n[processor]\nfile = \"{}/absent.wasm\"\n",
            config_text("http://127.0.0.1:9", GOOD_KEY, GOOD_KEY, 2, 50),
            dir.path().display()
        ),
    )
    .unwrap();
    let output = otsrep()
        .args(["replicate", "--config"])
        .arg(&missing_guest)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("loading the processor `processor.file` = ")
            && stderr.contains("absent.wasm"),
        "{stderr}"
    );

    let output = otsrep()
        .args(["replicate", "--end-time", "next friday", "--config"])
        .arg(dir.path().join("c0.json"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--end-time") && stderr.contains("is not a time"),
        "{stderr}"
    );
}
