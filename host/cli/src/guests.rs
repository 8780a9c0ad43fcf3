//! Processor selection: turns the config's `[processor]` into a sandboxed guest, and adapts it
//! to the pipeline's transform seam (failures become transform errors; skipped records go to
//! the dead-letter file before the batch counts as processed).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use ots_client::tunnel::TunnelRecord;
use ots_protocol::model::RowChange;
use ots_replicator::apply::{RecordTransform, TransformError};
use ots_replicator::config::{ProcessorConfig, ProcessorSource};
use ots_sandbox::{GuestSource, Limits, Sandbox};

/// A guest processor running in the sandbox over one source table's records.
pub struct GuestTransform {
    sandbox: Sandbox,
    source_table: String,
    dead_letter: DeadLetter,
}

impl GuestTransform {
    /// The table the guest asked to write to instead of the configured destination.
    pub fn target_table(&self) -> Option<&str> {
        self.sandbox.target_table()
    }
}

impl RecordTransform for GuestTransform {
    fn transform(&self, records: &[TunnelRecord]) -> Result<Vec<RowChange>, TransformError> {
        let error = |reason: String, retriable| TransformError {
            processor: self.sandbox.name().to_owned(),
            reason,
            retriable,
        };
        let processed = self
            .sandbox
            .process(&self.source_table, records)
            .map_err(|e| {
                let retriable = e.is_retriable();
                error(e.to_string(), retriable)
            })?;
        if !processed.skipped.is_empty() {
            self.dead_letter
                .append(
                    self.sandbox.name(),
                    &self.source_table,
                    records,
                    &processed.skipped,
                )
                .map_err(|e| {
                    error(
                        format!(
                            "cannot write skipped records to the dead-letter file {}: {e:#}",
                            self.dead_letter.path.display()
                        ),
                        true,
                    )
                })?;
            tracing::warn!(
                guest = self.sandbox.name(),
                skipped = processed.skipped.len(),
                file = %self.dead_letter.path.display(),
                "records set aside in the dead-letter file"
            );
        }
        Ok(processed.changes)
    }
}

/// An append-only JSON-lines file of the records a guest skipped, synced before the batch they
/// came in is checkpointed.
struct DeadLetter {
    path: PathBuf,
    lock: Mutex<()>,
}

impl DeadLetter {
    fn append(
        &self,
        guest: &str,
        table: &str,
        records: &[TunnelRecord],
        skipped: &[ots_sandbox::Skipped],
    ) -> anyhow::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
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
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        Ok(())
    }
}

/// Loads the guest the config selects: a built-in component, or — with `guest_dir` — the
/// built-in's name or the configured `file`, from that directory (watched for changes).
pub fn load_transform(
    config: &ProcessorConfig,
    source_table: &str,
) -> anyhow::Result<Arc<GuestTransform>> {
    let source = guest_source(config)?;
    let limits = Limits {
        call_timeout: config.call_timeout,
        memory_bytes: config.memory_limit,
        ..Limits::default()
    };
    let sandbox = Sandbox::load(source, &config.options, limits)?;
    Ok(Arc::new(GuestTransform {
        sandbox,
        source_table: source_table.to_owned(),
        dead_letter: DeadLetter {
            path: config.dead_letter.clone(),
            lock: Mutex::new(()),
        },
    }))
}

fn guest_source(config: &ProcessorConfig) -> anyhow::Result<GuestSource> {
    let from_dir = |dir: &Path, file: &str| {
        GuestSource::file(dir, file).with_context(|| format!("opening guest {file}"))
    };
    match (&config.source, &config.guest_dir) {
        (ProcessorSource::Builtin(name), None) => match GuestSource::builtin(name) {
            Some(source) => Ok(source),
            None => bail!(
                "no built-in processor {name:?}; built-ins: {}",
                GuestSource::builtin_names().collect::<Vec<_>>().join(", ")
            ),
        },
        (ProcessorSource::Builtin(name), Some(dir)) => from_dir(dir, &format!("{name}.wasm")),
        (ProcessorSource::File(file), Some(dir)) => from_dir(dir, &file.to_string_lossy()),
        (ProcessorSource::File(file), None) => {
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = file
                .file_name()
                .with_context(|| format!("processor file {} has no file name", file.display()))?;
            from_dir(dir, &name.to_string_lossy())
        }
    }
}
