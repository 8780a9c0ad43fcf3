//! Tenant isolation end to end against the local server, under write load: tenants with their
//! own chains and destinations, one of which starts trapping mid-run, is quarantined alone, and
//! converges once a fixed guest is dropped in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ots_client::Client;
use ots_e2e::LocalServer;
use ots_protocol::model::{PrimaryKeyValue, Row, RowExistence};
use ots_replicator::config::{
    ProcessorConfig, ProcessorSource, ReplicatorConfig, TenantMatch, TenantRule, TenantsConfig,
};
use ots_replicator::metrics::Metrics;
use ots_replicator::pipeline::StopReason;
use ots_replicator::tenants::{Backlog, Status};
use ots_replicator::verify::RowView;

const SOURCE: &str = "src";
const ROWS: i64 = 1500;
/// The row whose `misbehave` column makes the third tenant's guest trap.
const TRIGGER: i64 = 3000;

fn the_id(row: &Row) -> i64 {
    match row.primary_key.0[0].value {
        PrimaryKeyValue::Integer(id) => id,
        _ => unreachable!("the workload's key is an integer"),
    }
}

/// Whether `row` is the tenant's whose ids start with `prefix` (the rules below).
fn tenant_is(row: &Row, prefix: char) -> bool {
    the_id(row).to_string().starts_with(prefix)
}

fn builtin(name: &str, options: serde_json::Value) -> ProcessorConfig {
    ProcessorConfig {
        source: ProcessorSource::Builtin(name.into()),
        options,
        ..ProcessorConfig::default()
    }
}

fn rule(name: &str, prefix: &str, processor: ProcessorConfig, destination: &str) -> TenantRule {
    TenantRule {
        name: name.into(),
        matcher: TenantMatch::Prefix(prefix.into()),
        processors: Some(vec![processor]),
        destination: Some(destination.into()),
    }
}

fn components(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-processors")
        .join(dir)
}

async fn assert_copy(client: &Client, destination: &str, view: &RowView) {
    let report = ots_e2e::compare(client, SOURCE, destination, view).await;
    ots_e2e::assert_matches(destination, &report);
    assert!(report.destination_rows() > 50, "{destination}: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapping_tenant_is_quarantined_alone_and_converges_after_its_guest_is_replaced() {
    let server = LocalServer::start().await;
    let client = ots_e2e::source_with_rows(&server, SOURCE, ROWS).await;
    let guests = tempfile::tempdir().unwrap();
    let threes = guests.path().join("threes.wasm");
    std::fs::copy(
        components("test-components").join("misbehave.wasm"),
        &threes,
    )
    .unwrap();

    let mut config: ReplicatorConfig = server.config(
        SOURCE,
        "tenant_tunnel",
        "rest_copy",
        builtin("replicate", serde_json::json!({})),
    );
    config.tenants = Some(TenantsConfig {
        key_column: "id".into(),
        backlog_table: "backlog".into(),
        rules: vec![
            rule(
                "ones",
                "1",
                builtin("filter", serde_json::json!({"exclude_columns": ["blob"]})),
                "ones_copy",
            ),
            rule(
                "twos",
                "2",
                builtin("rename", serde_json::json!({"columns": {"name": "title"}})),
                "twos_copy",
            ),
            rule(
                "threes",
                "3",
                ProcessorConfig {
                    source: ProcessorSource::File("threes.wasm".into()),
                    guest_dir: Some(guests.path().to_owned()),
                    ..ProcessorConfig::default()
                },
                "threes_copy",
            ),
        ],
    });
    let end = chrono::Utc::now() + chrono::Duration::seconds(16);
    config.end_time = Some(end);
    let metrics = Arc::new(Metrics::default());
    let replication = tokio::spawn({
        let config = config.clone();
        let metrics = metrics.clone();
        async move { ots_e2e::run_replication(&config, metrics, std::future::pending()).await }
    });
    let load = tokio::spawn({
        let client = client.clone();
        async move { ots_e2e::write_until(&client, SOURCE, ROWS, end, Duration::from_secs(1)).await }
    });

    // Mid-run, a record makes the third tenant's guest trap.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let trigger = ots_testkit::workload::misbehaving_row(
        TRIGGER,
        chrono::Utc::now().timestamp_millis(),
        "trap",
    );
    client
        .write_row(SOURCE, &trigger, RowExistence::Ignore)
        .await
        .unwrap();
    let backlog = Backlog::new(client.clone(), "backlog".into());
    ots_e2e::wait_until(
        "the third tenant's quarantine",
        Duration::from_secs(20),
        || async {
            matches!(backlog.state("threes").await, Ok(Some(s)) if s.status == Status::Quarantined)
        },
    )
    .await;
    let state = backlog.state("threes").await.unwrap().unwrap();
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("trapped")),
        "{state:?}"
    );
    // While it is quarantined its records, and only its, pile up in order in the backlog.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = backlog.entries("threes", 10_000).await.unwrap();
    assert!(
        waiting.len() > 1,
        "the load's changes of the third tenant wait: {}",
        waiting.len()
    );
    assert!(waiting.windows(2).all(|w| w[0].position < w[1].position));
    assert!(waiting.iter().all(|e| {
        let PrimaryKeyValue::Integer(id) = e.record.change.primary_key().0[0].value else {
            return false;
        };
        id.to_string().starts_with('3')
    }));
    for other in ["ones", "twos", "default"] {
        assert_eq!(
            backlog.count(other).await.unwrap(),
            0,
            "{other} is not held back"
        );
        assert!(
            backlog.state(other).await.unwrap().is_none(),
            "{other} was never quarantined"
        );
    }

    // The fixed guest is dropped in: the tenant resumes and its backlog replays first.
    let fixed = guests.path().join("fixed.tmp");
    std::fs::copy(components("components").join("replicate.wasm"), &fixed).unwrap();
    std::fs::rename(&fixed, &threes).unwrap();

    load.await.unwrap();
    let summary = replication.await.unwrap().unwrap();
    assert_eq!(summary.reason, StopReason::EndTime);
    assert_eq!(
        backlog.count("threes").await.unwrap(),
        0,
        "the backlog is replayed"
    );
    let state = backlog.state("threes").await.unwrap().unwrap();
    assert_eq!(state.status, Status::Active);

    assert_copy(&client, "ones_copy", &|mut row: Row| {
        row.cells.retain(|c| c.name != "blob");
        tenant_is(&row, '1').then_some(row)
    })
    .await;
    assert_copy(&client, "twos_copy", &|mut row: Row| {
        for cell in &mut row.cells {
            if cell.name == "name" {
                cell.name = "title".into();
            }
        }
        tenant_is(&row, '2').then_some(row)
    })
    .await;
    assert_copy(&client, "threes_copy", &|row: Row| {
        tenant_is(&row, '3').then_some(row)
    })
    .await;
    assert_copy(&client, "rest_copy", &|row: Row| {
        (!['1', '2', '3'].iter().any(|&p| tenant_is(&row, p))).then_some(row)
    })
    .await;
}
