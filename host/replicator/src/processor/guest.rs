//! The guest processor: a sandboxed WebAssembly component chosen by the config's
//! `[processor]` section, over one source table's records.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use md5::{Digest, Md5};

use ots_protocol::record::TunnelRecord;
use ots_sandbox::{GuestSource, Limits, Sandbox, SandboxError};

use super::{Changes, Processor, ProcessorError, Skipped, StageReport, StageStats};
use crate::config::{DeadLetter, ProcessorConfig, ProcessorSource};

/// A guest running in the sandbox over one source table's records; what it skips is returned
/// for its dead-letter sink.
pub struct GuestProcessor {
    sandbox: Sandbox,
    source_table: String,
    dead_letter: DeadLetter,
    tables: Vec<String>,
    stats: StageStats,
}

impl Processor for GuestProcessor {
    fn name(&self) -> &str {
        self.sandbox.name()
    }

    fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError> {
        let started = Instant::now();
        let result = self.sandbox.process(&self.source_table, records);
        self.stats.called(records.len(), started.elapsed());
        let processed = result.inspect_err(|e| self.stats.failed(e.kind.label()))?;
        self.stats
            .produced(processed.changes.len(), processed.skipped.len());
        let skipped = processed
            .skipped
            .into_iter()
            .map(|s| Skipped {
                sink: self.dead_letter.clone(),
                guest: self.sandbox.name().to_owned(),
                table: self.source_table.clone(),
                record: records[s.index].clone(),
                reason: s.message,
            })
            .collect();
        Ok(Changes {
            rows: processed.changes,
            origins: processed.origins,
            tables: processed.tables,
            skipped,
        })
    }

    fn target_table(&self) -> Option<&str> {
        self.sandbox.target_table()
    }

    fn routed_tables(&self) -> Vec<String> {
        self.tables.clone()
    }

    fn fingerprint(&self) -> Option<String> {
        let bytes = self.sandbox.source_bytes().ok()?;
        Some(format!("{:x}", Md5::digest(bytes)))
    }

    fn stages(&self) -> Vec<StageReport> {
        vec![StageReport {
            tenant: None,
            stage: 0,
            name: self.sandbox.name().to_owned(),
            stats: self.stats.snapshot(),
        }]
    }
}

/// Why the configured guest could not be loaded. Each names the config's `[processor]` choice.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `processor.name` names no built-in guest.
    #[error("no built-in processor {name:?}; built-ins: {builtins}")]
    UnknownBuiltin {
        /// The configured name.
        name: String,
        /// The names there are.
        builtins: String,
    },
    /// The guest directory or file could not be opened.
    #[error("opening guest {file}")]
    Open {
        /// The file, relative to the guest directory.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `processor.file` names a directory, not a file.
    #[error("processor file {} has no file name", .path.display())]
    NoFileName {
        /// The configured path.
        path: PathBuf,
    },
    /// The component is not a valid guest, or its `init` rejected the options.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// Loads the guest the config selects: a built-in component, or — with `guest_dir` — the
/// built-in's name or the configured `file`, from that directory (watched for changes).
pub fn load(
    config: &ProcessorConfig,
    source_table: &str,
) -> Result<Arc<GuestProcessor>, LoadError> {
    Ok(Arc::new(GuestProcessor {
        sandbox: load_sandbox(config)?,
        source_table: source_table.to_owned(),
        dead_letter: config.dead_letter.clone(),
        tables: config.tables.clone(),
        stats: StageStats::default(),
    }))
}

/// The sandbox of the guest the config selects, under the config's limits, its `init` run
/// with the config's options: what [`load`] wraps, and what the dev kit runs directly.
pub fn load_sandbox(config: &ProcessorConfig) -> Result<Sandbox, LoadError> {
    let source = guest_source(config)?;
    let limits = Limits {
        call_timeout: config.call_timeout,
        memory_bytes: config.memory_limit,
        ..Limits::default()
    };
    Ok(Sandbox::load(source, &config.options, limits)?.route_to(config.tables.iter().cloned()))
}

fn guest_source(config: &ProcessorConfig) -> Result<GuestSource, LoadError> {
    let from_dir = |dir: &Path, file: &str| {
        GuestSource::file(dir, file).map_err(|source| LoadError::Open {
            file: file.to_owned(),
            source,
        })
    };
    match (&config.source, &config.guest_dir) {
        (ProcessorSource::Builtin(name), None) => {
            GuestSource::builtin(name).ok_or_else(|| LoadError::UnknownBuiltin {
                name: name.clone(),
                builtins: GuestSource::builtin_names().collect::<Vec<_>>().join(", "),
            })
        }
        (ProcessorSource::Builtin(name), Some(dir)) => from_dir(dir, &format!("{name}.wasm")),
        (ProcessorSource::File(file), Some(dir)) => from_dir(dir, &file.to_string_lossy()),
        (ProcessorSource::File(file), None) => {
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = file
                .file_name()
                .ok_or_else(|| LoadError::NoFileName { path: file.clone() })?;
            from_dir(dir, &name.to_string_lossy())
        }
    }
}
