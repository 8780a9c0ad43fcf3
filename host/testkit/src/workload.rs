//! A source table and a write load for the demo and the end-to-end tests: a stream-enabled
//! table keyed by an integer `id`, filled in parallel batches, then changed by puts, updates
//! and deletes while replication runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ots_client::rows::MAX_BATCH_WRITE_ROWS;
use ots_client::{Client, ClientError};
use ots_protocol::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value,
};
use ots_protocol::pb::table::{
    CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, ReservedThroughput, StreamSpecification,
    TableMeta, TableOptions,
};

/// Why the workload could not write.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A call to the server failed.
    #[error("{action}")]
    Call {
        /// What was being done, naming the table.
        action: String,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// A row of a batch failed for good.
    #[error("a row of a batch to {table} failed")]
    Row {
        /// The table.
        table: String,
        /// The row's failure.
        #[source]
        source: ClientError,
    },
    /// A writer task panicked.
    #[error("a {0} task panicked")]
    Panicked(&'static str),
}

/// Versions the source table keeps per column.
pub const SOURCE_MAX_VERSIONS: i32 = 3;

/// The primary key of row `id`.
pub fn key(id: i64) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: "id".into(),
        value: PrimaryKeyValue::Integer(id),
    }])
}

/// Creates `table` with an integer key `id`, three versions per column and a stream.
pub async fn create_source_table(client: &Client, table: &str) -> Result<(), WorkloadError> {
    client
        .create_table(&source_table_request(table))
        .await
        .map_err(|source| WorkloadError::Call {
            action: format!("creating source table {table}"),
            source,
        })
}

/// The source table's CreateTable: an integer key `id`, three versions per column, a stream
/// keeping records a day.
pub fn source_table_request(table: &str) -> CreateTableRequest {
    CreateTableRequest {
        table_meta: TableMeta {
            table_name: table.to_owned(),
            primary_key: vec![PrimaryKeySchema {
                name: "id".into(),
                r#type: PrimaryKeyType::Integer as i32,
                option: None,
            }],
            defined_column: Vec::new(),
            ..Default::default()
        },
        reserved_throughput: ReservedThroughput::none(),
        table_options: Some(TableOptions {
            time_to_live: Some(-1),
            max_versions: Some(SOURCE_MAX_VERSIONS),
            deviation_cell_version_in_sec: Some(86_400),
            allow_update: None,
            ..Default::default()
        }),
        partitions: Vec::new(),
        stream_spec: Some(StreamSpecification {
            enable_stream: true,
            expiration_time: Some(24),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The put that creates row `id` in the initial fill.
pub fn initial_row(id: i64, timestamp: i64) -> RowChange {
    RowChange::Put {
        primary_key: key(id),
        cells: vec![
            Cell {
                name: "name".into(),
                value: Value::String(format!("user-{id:06}")),
                timestamp: Some(timestamp),
            },
            Cell {
                name: "score".into(),
                value: Value::Double(id as f64 * 0.5),
                timestamp: Some(timestamp),
            },
            Cell {
                name: "level".into(),
                value: Value::Integer(id % 10),
                timestamp: Some(timestamp),
            },
            Cell {
                name: "active".into(),
                value: Value::Boolean(id % 3 != 0),
                timestamp: Some(timestamp),
            },
            Cell {
                name: "blob".into(),
                value: Value::Binary(id.to_be_bytes().to_vec()),
                timestamp: Some(timestamp),
            },
        ],
    }
}

/// Row `id` as the initial fill writes it at `timestamp`, plus a string column `misbehave`
/// naming `mode`: the test guest `misbehave`, run without options, misbehaves so on a batch
/// holding it.
pub fn misbehaving_row(id: i64, timestamp: i64, mode: &str) -> RowChange {
    let RowChange::Put {
        primary_key,
        mut cells,
    } = initial_row(id, timestamp)
    else {
        unreachable!("the initial row is a put")
    };
    cells.push(Cell {
        name: "misbehave".into(),
        value: Value::String(mode.into()),
        timestamp: Some(timestamp),
    });
    RowChange::Put { primary_key, cells }
}

/// Writes rows `0..rows` with `parallel` concurrent writers; `on_batch` sees each batch size.
pub async fn fill(
    client: &Client,
    table: &str,
    rows: i64,
    parallel: usize,
    on_batch: impl Fn(usize) + Send + Sync + 'static,
) -> Result<(), WorkloadError> {
    let on_batch = Arc::new(on_batch);
    let chunk = MAX_BATCH_WRITE_ROWS as i64;
    let parallel = parallel.max(1) as i64;
    let mut tasks = Vec::new();
    for worker in 0..parallel {
        let client = client.clone();
        let table = table.to_owned();
        let on_batch = on_batch.clone();
        tasks.push(tokio::spawn(async move {
            let mut start = worker * chunk;
            while start < rows {
                let end = (start + chunk).min(rows);
                let ts = now_millis();
                let batch: Vec<RowChange> = (start..end).map(|id| initial_row(id, ts)).collect();
                write_all(&client, &table, &batch).await?;
                on_batch(batch.len());
                start += chunk * parallel;
            }
            Ok::<_, WorkloadError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|_| WorkloadError::Panicked("fill"))??;
    }
    Ok(())
}

/// Writes `batch` to `table` with the client's retries (the rows carry their timestamps, so
/// resending is safe); a row that fails for good is an error.
pub async fn write_all(
    client: &Client,
    table: &str,
    batch: &[RowChange],
) -> Result<(), WorkloadError> {
    let outcomes = client
        .write_rows_with_retry(table, batch, true)
        .await
        .map_err(|source| WorkloadError::Call {
            action: format!("writing {} rows to {table}", batch.len()),
            source,
        })?;
    if let Some(source) = outcomes.into_iter().find_map(Result::err) {
        return Err(WorkloadError::Row {
            table: table.to_owned(),
            source,
        });
    }
    Ok(())
}

/// One random change among rows `0..id_space`: a new version of a column, a new row, a column
/// deletion or a row deletion.
pub fn random_change(rng: &mut impl rand::Rng, id_space: i64, timestamp: i64) -> RowChange {
    let id = rng.random_range(0..id_space);
    match rng.random_range(0..10) {
        0..=4 => RowChange::Update {
            primary_key: key(id),
            updates: vec![
                ColumnUpdate {
                    name: "score".into(),
                    op: ColumnOp::Put {
                        value: Value::Double(rng.random_range(0.0..1000.0)),
                        timestamp: Some(timestamp),
                    },
                },
                ColumnUpdate {
                    name: "level".into(),
                    op: ColumnOp::Put {
                        value: Value::Integer(rng.random_range(0..10)),
                        timestamp: Some(timestamp),
                    },
                },
            ],
        },
        5..=6 => initial_row(id, timestamp),
        7..=8 => RowChange::Update {
            primary_key: key(id),
            updates: vec![ColumnUpdate {
                name: "blob".into(),
                op: ColumnOp::DeleteAllVersions,
            }],
        },
        _ => RowChange::Delete {
            primary_key: key(id),
        },
    }
}

/// A background write load; stop it with [`WriteLoad::stop`].
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), WorkloadError>>,
}

impl WriteLoad {
    /// Starts writing batches of `batch` random changes among rows `0..id_space` every
    /// `pause`. Keys in one batch are distinct.
    pub fn start(
        client: Client,
        table: String,
        id_space: i64,
        batch: usize,
        pause: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let stop = stop.clone();
            let written = written.clone();
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let ts = now_millis();
                    let changes = {
                        let mut rng = rand::rng();
                        let mut seen = std::collections::HashSet::new();
                        let mut changes = Vec::new();
                        while changes.len() < batch {
                            let change = random_change(&mut rng, id_space, ts);
                            if seen.insert(change.primary_key().clone()) {
                                changes.push(change);
                            }
                        }
                        changes
                    };
                    write_all(&client, &table, &changes).await?;
                    written.fetch_add(changes.len() as u64, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                }
                Ok(())
            }
        });
        Self {
            stop,
            written,
            task,
        }
    }

    /// Stops after the batch in flight; returns how many changes were written in all.
    pub async fn stop(self) -> Result<u64, WorkloadError> {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .map_err(|_| WorkloadError::Panicked("write load"))??;
        Ok(self.written.load(Ordering::Relaxed))
    }
}

/// Writes and then deletes a marker row per key in `ids`, leaving the table's rows as they
/// were. Done after an end time, it gives every channel a record past the end without changing
/// what the destination should hold.
pub async fn touch_and_remove(
    client: &Client,
    table: &str,
    ids: &[i64],
) -> Result<(), WorkloadError> {
    let ts = now_millis();
    let puts: Vec<RowChange> = ids.iter().map(|&id| initial_row(id, ts)).collect();
    write_all(client, table, &puts).await?;
    let deletes: Vec<RowChange> = ids
        .iter()
        .map(|&id| RowChange::Delete {
            primary_key: key(id),
        })
        .collect();
    write_all(client, table, &deletes).await
}
