//! The dead-letter sinks: where the records a guest skipped are set aside before their batch
//! counts as done, so a skipped record is kept, not lost.
//!
//! A table on the destination instance (the default) is reachable by every worker of the
//! replication, so a channel that moves to another process keeps its dead letters in the same
//! place; its rows are keyed by guest, source table and the record's position, so a batch
//! delivered twice sets its records aside once. A file is appended to and synced. Both keep
//! the record in the JSON form of [`ots_protocol::json`], which `otsrep processor test` reads.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use ots_client::{Client, ClientError};
use ots_protocol::json::record_json;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::table::PrimaryKeyType;
use ots_protocol::record::TunnelRecord;

use crate::config::DeadLetter;

/// A record a guest set aside, on its way to the guest's dead-letter sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The guest's sink.
    pub sink: DeadLetter,
    /// The guest's name.
    pub guest: String,
    /// The source table.
    pub table: String,
    /// The record as the guest saw it.
    pub record: TunnelRecord,
    /// The guest's reason.
    pub reason: String,
}

/// Why skipped records could not be set aside; the batch must not count as done.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The dead-letter file could not be written.
    #[error("cannot write skipped records to the dead-letter file {}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The dead-letter table could not be created or written.
    #[error("cannot write skipped records to the dead-letter table {table}")]
    Table {
        /// The table.
        table: String,
        /// Why.
        #[source]
        source: ClientError,
    },
}

/// Writes skipped records to their sinks, through the destination's client for tables.
pub struct DeadLetters {
    client: Client,
    /// Channels run concurrently: one file append at a time keeps lines whole.
    file_lock: Mutex<()>,
    /// Tables known to exist.
    ready: Mutex<HashSet<String>>,
}

/// The dead-letter table's key: one string column.
const KEY: &str = "id";

impl DeadLetters {
    /// Sinks writing tables through `client` (the destination instance's).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            file_lock: Mutex::new(()),
            ready: Mutex::new(HashSet::new()),
        }
    }

    /// Sets `skipped` aside, each in its own sink; returns once they are durable.
    pub async fn set_aside(&self, skipped: &[Skipped]) -> Result<(), DeadLetterError> {
        let mut tables: Vec<(&str, Vec<&Skipped>)> = Vec::new();
        let mut files: Vec<(&PathBuf, Vec<&Skipped>)> = Vec::new();
        for s in skipped {
            match &s.sink {
                DeadLetter::Table(t) => group(&mut tables, t.as_str(), s),
                DeadLetter::File(path) => group(&mut files, path, s),
            }
        }
        for (path, entries) in files {
            self.append(path, &entries)
                .map_err(|source| DeadLetterError::File {
                    path: path.clone(),
                    source,
                })?;
        }
        for (table, entries) in tables {
            self.write(table, &entries)
                .await
                .map_err(|source| DeadLetterError::Table {
                    table: table.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    fn append(&self, path: &PathBuf, entries: &[&Skipped]) -> std::io::Result<()> {
        let mut text = String::new();
        for s in entries {
            let line = serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339(),
                "guest": s.guest,
                "table": s.table,
                "reason": s.reason,
                "record": record_json(&s.record),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let _guard = self.file_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }

    async fn write(&self, table: &str, entries: &[&Skipped]) -> Result<(), ClientError> {
        self.ensure_table(table).await?;
        let rows: Vec<RowChange> = entries.iter().map(|s| row(s)).collect();
        for chunk in rows.chunks(crate::config::MAX_BATCH_WRITE_COUNT) {
            // Writing a record's row again only overwrites it: safe to resend.
            let outcomes = self
                .client
                .write_rows_with_retry(table, chunk, true)
                .await?;
            if let Some(error) = outcomes.into_iter().find_map(Result::err) {
                return Err(error);
            }
        }
        Ok(())
    }

    async fn ensure_table(&self, table: &str) -> Result<(), ClientError> {
        if self.ready.lock().is_ok_and(|r| r.contains(table)) {
            return Ok(());
        }
        if crate::setup::ensure_own_table(&self.client, table, &[(KEY, PrimaryKeyType::String)])
            .await?
        {
            tracing::info!(table, "created the dead-letter table");
        }
        if let Ok(mut ready) = self.ready.lock() {
            ready.insert(table.to_owned());
        }
        Ok(())
    }
}

fn group<'a, K: PartialEq>(groups: &mut Vec<(K, Vec<&'a Skipped>)>, key: K, skipped: &'a Skipped) {
    match groups.iter_mut().find(|(k, _)| *k == key) {
        Some((_, list)) => list.push(skipped),
        None => groups.push((key, vec![skipped])),
    }
}

/// A skipped record's row: keyed by guest, source table and the record's log position (or,
/// for a full-data row, its key), so setting the same record aside twice writes one row.
fn row(s: &Skipped) -> RowChange {
    let record = record_json(&s.record);
    let position = match s.record.sequence_info {
        Some(q) => format!("{}:{}:{}", q.epoch, q.timestamp, q.row_index),
        None => format!("base:{}", record["key"]),
    };
    let text = |name: &str, value: String| Cell {
        name: name.into(),
        value: Value::String(value),
        timestamp: None,
    };
    RowChange::Put {
        primary_key: PrimaryKey(vec![PrimaryKeyColumn {
            name: KEY.into(),
            value: PrimaryKeyValue::String(format!("{}/{}/{position}", s.guest, s.table)),
        }]),
        cells: vec![
            text("guest", s.guest.clone()),
            text("source_table", s.table.clone()),
            text("reason", s.reason.clone()),
            text("record", record.to_string()),
            text("time", chrono::Utc::now().to_rfc3339()),
        ],
    }
}
