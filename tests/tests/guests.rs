//! Replication through the non-default guests against the local server: the `filter` and
//! `rename` guests configured from the replication config, a guest that sets records aside
//! (dead-letter file), and a guest that traps (the run stops, nothing is checkpointed past
//! the failure, and the next run with a working guest makes the copy exact).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ots_client::Client;
use ots_e2e::LocalServer;
use ots_protocol::model::{PrimaryKeyValue, Row};
use ots_replicator::config::{DeadLetter, ProcessorConfig, ProcessorSource, ReplicatorConfig};
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::{RunSummary, StopReason};
use ots_replicator::verify::{RowView, VerifyReport};

const SOURCE: &str = "src";
const ROWS: i64 = 1500;

async fn source_with_rows(server: &LocalServer) -> Client {
    ots_e2e::source_with_rows(server, SOURCE, ROWS).await
}

fn the_id(row: &Row) -> Option<i64> {
    row.primary_key.0.iter().find_map(|k| match k.value {
        PrimaryKeyValue::Integer(id) if k.name == "id" => Some(id),
        _ => None,
    })
}

async fn compare(client: &Client, destination: &str, view: &RowView) -> VerifyReport {
    ots_e2e::compare(client, SOURCE, destination, view).await
}

fn assert_matches(report: &VerifyReport) {
    ots_e2e::assert_matches("the destination", report);
}

fn guest(name: &str, options: serde_json::Value) -> ProcessorConfig {
    ProcessorConfig {
        source: ProcessorSource::Builtin(name.into()),
        options,
        ..ProcessorConfig::default()
    }
}

/// The committed test guest `misbehave.wasm`, loaded from the components directory.
fn misbehave(options: serde_json::Value, dead_letter: PathBuf) -> ProcessorConfig {
    ProcessorConfig {
        source: ProcessorSource::File("misbehave.wasm".into()),
        options,
        guest_dir: Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-processors/test-components"),
        ),
        dead_letter: DeadLetter::File(dead_letter),
        ..ProcessorConfig::default()
    }
}

async fn replicate(config: &ReplicatorConfig) -> anyhow::Result<RunSummary> {
    let run =
        ots_e2e::run_replication(config, Arc::new(Metrics::default()), std::future::pending());
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the replication ends within 90 s")
}

async fn write_load_until(client: &Client, end: chrono::DateTime<chrono::Utc>) {
    let written = ots_e2e::write_until(client, SOURCE, ROWS, end, Duration::from_secs(1)).await;
    assert!(written > 0, "the load wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_filter_guest_copies_the_matching_rows_without_the_excluded_column() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let half = ROWS / 2;
    let mut config = server.config(
        SOURCE,
        "filter_tunnel",
        "filtered",
        guest(
            "filter",
            serde_json::json!({
                "where": [{"column": "id", "less_than": half}],
                "exclude_columns": ["blob"],
            }),
        ),
    );
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    config.end_time = Some(end);
    let replication = tokio::spawn(async move { replicate(&config).await });
    write_load_until(&client, end).await;
    let summary = replication.await.unwrap().unwrap();
    assert_eq!(summary.reason, StopReason::EndTime);
    assert!(
        summary.metrics.records_dropped > 0,
        "the guest dropped the rows outside the filter: {:?}",
        summary.metrics
    );

    let report = compare(&client, "filtered", &move |mut row: Row| {
        let id = the_id(&row)?;
        row.cells.retain(|c| c.name != "blob");
        (id < half).then_some(row)
    })
    .await;
    assert_matches(&report);
    // The view counts only the source rows the filter keeps.
    assert!(
        report.destination_rows() > 0 && report.destination_rows() < ROWS as u64 * 3 / 4,
        "{} rows copied",
        report.destination_rows()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rename_guest_renames_columns_and_writes_to_its_target_table() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let mut config = server.config(
        SOURCE,
        "rename_tunnel",
        "configured_destination",
        guest(
            "rename",
            serde_json::json!({"columns": {"name": "title", "score": "rating"}, "table": "renamed"}),
        ),
    );
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    config.end_time = Some(end);
    let replication = tokio::spawn(async move { replicate(&config).await });
    write_load_until(&client, end).await;
    assert_eq!(
        replication.await.unwrap().unwrap().reason,
        StopReason::EndTime
    );

    let report = compare(&client, "renamed", &|mut row: Row| {
        for cell in &mut row.cells {
            match cell.name.as_str() {
                "name" => cell.name = "title".into(),
                "score" => cell.name = "rating".into(),
                _ => {}
            }
        }
        Some(row)
    })
    .await;
    assert_matches(&report);
    let tables = client.list_table().await.unwrap();
    assert!(
        !tables.iter().any(|t| t == "configured_destination"),
        "the guest's target table replaced the configured one: {tables:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_the_guest_skips_go_to_the_dead_letter_file_and_the_rest_is_copied() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    let mut config = server.config(
        SOURCE,
        "skip_tunnel",
        "dst",
        misbehave(
            serde_json::json!({"mode": "skip", "key": 7}),
            dead_letter.clone(),
        ),
    );
    let end = chrono::Utc::now() + chrono::Duration::seconds(3);
    config.end_time = Some(end);
    let replication = tokio::spawn(async move { replicate(&config).await });
    ots_e2e::pass_the_end(&client, SOURCE, end).await;
    replication.await.unwrap().unwrap();

    let text = std::fs::read_to_string(&dead_letter).expect("the dead-letter file exists");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "one record set aside: {text}");
    assert_eq!(lines[0]["guest"], "misbehave.wasm");
    assert_eq!(lines[0]["table"], SOURCE);
    assert_eq!(
        lines[0]["record"]["key"],
        serde_json::json!([{"id": 7}]),
        "the skipped record is row 7: {text}"
    );
    let report = compare(&client, "dst", &|row: Row| {
        (the_id(&row) != Some(7)).then_some(row)
    })
    .await;
    assert_matches(&report);
    assert_eq!(report.destination_rows(), ROWS as u64 - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapping_guest_stops_the_run_and_a_working_guest_then_completes_the_copy() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let trapping = server.config(
        SOURCE,
        "t1",
        "dst",
        misbehave(
            serde_json::json!({"mode": "trap", "key": 700}),
            dir.path().join("dead.jsonl"),
        ),
    );
    let error = replicate(&trapping)
        .await
        .expect_err("a guest that traps stops the run");
    let message = format!("{error:#}");
    assert!(
        message.contains("misbehave.wasm") && message.contains("trap"),
        "the error names the guest and the trap: {message}"
    );
    let copied = compare(&client, "dst", &Some).await.destination_rows();
    assert!(
        copied < ROWS as u64,
        "the batch holding row 700 was not written ({copied} rows)"
    );

    // The same tunnel with the faithful guest picks up from the checkpoints.
    let mut fixed = server.config(SOURCE, "t1", "dst", ProcessorConfig::default());
    let end = chrono::Utc::now() + chrono::Duration::seconds(2);
    fixed.end_time = Some(end);
    let replication = tokio::spawn(async move { replicate(&fixed).await });
    ots_e2e::pass_the_end(&client, SOURCE, end).await;
    replication.await.unwrap().unwrap();
    assert_matches(&compare(&client, "dst", &Some).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_of_three_guests_composes_their_changes_and_counts_each_stage() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    let half = ROWS / 2;
    let mut config = server.config(
        SOURCE,
        "chain_tunnel",
        "configured",
        guest("replicate", serde_json::json!({})),
    );
    config.processors = vec![
        guest(
            "filter",
            serde_json::json!({
                "where": [{"column": "id", "less_than": half}],
                "exclude_columns": ["blob"],
            }),
        ),
        guest(
            "rename",
            serde_json::json!({"columns": {"name": "title"}, "table": "chained"}),
        ),
        misbehave(
            serde_json::json!({"mode": "skip", "key": 7}),
            dead_letter.clone(),
        ),
    ];
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    config.end_time = Some(end);
    let processor = ots_replicator::processor::load_chain(&config.processors, SOURCE).unwrap();
    assert_eq!(processor.name(), "filter → rename → misbehave.wasm");
    let replication = tokio::spawn({
        let processor = processor.clone();
        async move {
            ots_replicator::pipeline::replicate(
                &config,
                processor,
                Arc::new(Metrics::default()),
                std::future::pending(),
            )
            .await
        }
    });
    write_load_until(&client, end).await;
    assert_eq!(
        replication.await.unwrap().unwrap().reason,
        StopReason::EndTime
    );

    let report = compare(&client, "chained", &move |mut row: Row| {
        let id = the_id(&row)?;
        row.cells.retain(|c| c.name != "blob");
        for cell in &mut row.cells {
            if cell.name == "name" {
                cell.name = "title".into();
            }
        }
        (id < half && id != 7).then_some(row)
    })
    .await;
    assert_matches(&report);
    assert!(report.destination_rows() > 0);

    let stages = processor.stages();
    let names: Vec<(usize, &str)> = stages.iter().map(|s| (s.stage, s.name.as_str())).collect();
    assert_eq!(names, [(0, "filter"), (1, "rename"), (2, "misbehave.wasm")]);
    let (filter, rename, last) = (&stages[0].stats, &stages[1].stats, &stages[2].stats);
    assert!(
        filter.records_out < filter.records_in,
        "the filter dropped rows: {filter:?}"
    );
    assert_eq!(
        rename.records_in, filter.records_out,
        "the rename stage read what the filter kept"
    );
    assert_eq!(last.records_in, rename.records_out);
    let skipped_lines = std::fs::read_to_string(&dead_letter)
        .expect("the last stage set row 7 aside")
        .lines()
        .count() as u64;
    assert!(skipped_lines >= 1);
    assert_eq!(
        last.skipped, skipped_lines,
        "every skip is counted: {last:?}"
    );
    assert_eq!(last.records_out, last.records_in - last.skipped);
    assert!(
        stages
            .iter()
            .all(|s| s.stats.failures.is_empty() && s.stats.calls > 0)
    );
    let tables = client.list_table().await.unwrap();
    assert!(!tables.iter().any(|t| t == "configured"), "{tables:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skipped_records_go_to_the_dead_letter_table_by_default() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let skipping = ProcessorConfig {
        dead_letter: ProcessorConfig::default().dead_letter,
        ..misbehave(
            serde_json::json!({"mode": "skip", "key": 7}),
            PathBuf::new(),
        )
    };
    assert_eq!(
        skipping.dead_letter,
        DeadLetter::Table("otsrep_dead_letter".into())
    );
    let mut config = server.config(SOURCE, "skip_table_tunnel", "dst", skipping);
    let end = chrono::Utc::now() + chrono::Duration::seconds(3);
    config.end_time = Some(end);
    let replication = tokio::spawn(async move { replicate(&config).await });
    ots_e2e::pass_the_end(&client, SOURCE, end).await;
    replication.await.unwrap().unwrap();

    let rows = ots_testkit::table_contents(&client, "otsrep_dead_letter").await;
    assert_eq!(rows.len(), 1, "row 7 set aside once: {rows:?}");
    let cell = |name: &str| {
        rows[0]
            .cells
            .iter()
            .find(|c| c.name == name)
            .map(|c| match &c.value {
                ots_protocol::model::Value::String(s) => s.clone(),
                other => panic!("{name} is {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {name} in {:?}", rows[0]))
    };
    assert_eq!(cell("guest"), "misbehave.wasm");
    assert_eq!(cell("source_table"), SOURCE);
    assert!(cell("reason").contains("on purpose"), "{}", cell("reason"));
    // The record is kept in the dev kit's JSON form: it can be fed back to a guest.
    let record = ots_protocol::json::parse_record(&cell("record")).unwrap();
    assert_eq!(
        record.change.primary_key().0[0].value,
        PrimaryKeyValue::Integer(7)
    );
    assert!(
        record.sequence_info.is_none(),
        "row 7 came with the full copy"
    );
    let report = compare(&client, "dst", &|row: Row| {
        (the_id(&row) != Some(7)).then_some(row)
    })
    .await;
    assert_matches(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_out_guest_copies_every_record_to_two_tables_exactly() {
    let server = LocalServer::start().await;
    let client = source_with_rows(&server).await;
    let mut config = server.config(
        SOURCE,
        "fan_out_tunnel",
        "main_copy",
        ProcessorConfig {
            tables: vec!["audit_copy".into(), "archive_copy".into()],
            ..guest(
                "route",
                serde_json::json!({"copies": ["audit_copy", "archive_copy"]}),
            )
        },
    );
    let end = chrono::Utc::now() + chrono::Duration::seconds(6);
    config.end_time = Some(end);
    let replication = tokio::spawn(async move { replicate(&config).await });
    write_load_until(&client, end).await;
    let summary = replication.await.unwrap().unwrap();
    assert_eq!(summary.reason, StopReason::EndTime);
    assert!(summary.metrics.stream_records_applied > 0, "{summary}");
    for table in ["main_copy", "audit_copy", "archive_copy"] {
        let report = compare(&client, table, &Some).await;
        assert_matches(&report);
        assert!(
            report.destination_rows() > ROWS as u64 / 2,
            "{table}: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_routing_to_an_unlisted_table_stops_the_run_naming_the_table() {
    let server = LocalServer::start().await;
    let _client = source_with_rows(&server).await;
    let config = server.config(
        SOURCE,
        "unlisted_tunnel",
        "main_copy",
        guest("route", serde_json::json!({"copies": ["elsewhere"]})),
    );
    let error = replicate(&config).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("routes a change to table `elsewhere`, but its config lists no `tables`"),
        "{text}"
    );
}
