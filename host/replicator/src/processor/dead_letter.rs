//! The dead-letter sink: an append-only JSON-lines file of the records a guest skipped, synced
//! before the batch they came in is checkpointed, so a skipped record is set aside, not lost.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ots_protocol::record::TunnelRecord;
use ots_sandbox::Skipped;

/// The dead-letter file of one processor.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    /// Channels run concurrently: one append at a time keeps lines whole.
    lock: Mutex<()>,
}

impl DeadLetter {
    /// A sink appending to `path` (created on first use).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per skipped record of `records` and syncs the file.
    pub fn append(
        &self,
        guest: &str,
        table: &str,
        records: &[TunnelRecord],
        skipped: &[Skipped],
    ) -> std::io::Result<()> {
        let mut text = String::new();
        for skip in skipped {
            let record = &records[skip.index];
            let line = serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339(),
                "guest": guest,
                "table": table,
                "reason": skip.message,
                "sequence": record.sequence_info.map(|s| serde_json::json!({
                    "epoch": s.epoch, "timestamp": s.timestamp, "row_index": s.row_index
                })),
                "change": format!("{:?}", record.change),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}
