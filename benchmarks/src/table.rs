//! The benchmark rows: an integer key `id` and ten attribute columns of every value type
//! (about 150 bytes of values per row), written in parallel BatchWriteRow requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context as _;
use ots_client::Client;
use ots_client::rows::MAX_BATCH_WRITE_ROWS;
use ots_protocol::model::{Cell, RowChange, Value};
use ots_testkit::workload::key;

/// The put that creates row `id`; `stamp` goes into the `written_at` column and every cell's
/// version is `timestamp`.
pub fn row(id: i64, stamp: i64, timestamp: i64) -> RowChange {
    let cell = |name: &str, value| Cell {
        name: name.into(),
        value,
        timestamp: Some(timestamp),
    };
    RowChange::Put {
        primary_key: key(id),
        cells: vec![
            cell("name", Value::String(format!("user-{id:08}"))),
            cell("email", Value::String(format!("user{id}@example.com"))),
            cell(
                "city",
                Value::String(CITIES[id as usize % CITIES.len()].into()),
            ),
            cell(
                "note",
                Value::String(format!("row {id} of the benchmark table")),
            ),
            cell("score", Value::Double(id as f64 * 0.5)),
            cell("balance", Value::Double((id % 100_000) as f64 / 7.0)),
            cell("level", Value::Integer(id % 10)),
            cell("written_at", Value::Integer(stamp)),
            cell("active", Value::Boolean(id % 3 != 0)),
            cell("blob", Value::Binary(id.to_be_bytes().repeat(2))),
        ],
    }
}

const CITIES: [&str; 5] = ["Hangzhou", "Beijing", "Shanghai", "Shenzhen", "Chengdu"];

/// Milliseconds since the epoch.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes rows `0..rows` in 200-row batches from `parallel` concurrent writers.
pub async fn fill(client: &Client, table: &str, rows: i64, parallel: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicI64::new(0));
    let chunk = MAX_BATCH_WRITE_ROWS as i64;
    let mut tasks = Vec::new();
    for _ in 0..parallel.max(1) {
        let (client, table, next) = (client.clone(), table.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(chunk, Ordering::Relaxed);
                if start >= rows {
                    return anyhow::Ok(());
                }
                let ts = now_millis();
                let batch: Vec<RowChange> = (start..(start + chunk).min(rows))
                    .map(|id| row(id, ts, ts))
                    .collect();
                ots_testkit::workload::write_all(&client, &table, &batch).await?;
            }
        }));
    }
    for task in tasks {
        task.await.context("fill task panicked")??;
    }
    Ok(())
}
