//! The guest processor: a sandboxed WebAssembly component chosen by the config's
//! `[processor]` section, over one source table's records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ots_protocol::model::RowChange;
use ots_protocol::record::TunnelRecord;
use ots_sandbox::{GuestSource, Limits, Sandbox, SandboxError};

use super::{DeadLetter, Processor, ProcessorError};
use crate::config::{ProcessorConfig, ProcessorSource};

/// A guest running in the sandbox over one source table's records; what it skips goes to its
/// dead-letter file.
pub struct GuestProcessor {
    sandbox: Sandbox,
    source_table: String,
    dead_letter: DeadLetter,
}

impl Processor for GuestProcessor {
    fn name(&self) -> &str {
        self.sandbox.name()
    }

    fn process(&self, records: &[TunnelRecord]) -> Result<Vec<RowChange>, ProcessorError> {
        let processed = self.sandbox.process(&self.source_table, records)?;
        if !processed.skipped.is_empty() {
            self.dead_letter
                .append(
                    self.sandbox.name(),
                    &self.source_table,
                    records,
                    &processed.skipped,
                )
                .map_err(|source| ProcessorError::DeadLetter {
                    path: self.dead_letter.path().to_owned(),
                    source,
                })?;
            tracing::warn!(
                guest = self.sandbox.name(),
                skipped = processed.skipped.len(),
                file = %self.dead_letter.path().display(),
                "records set aside in the dead-letter file"
            );
        }
        Ok(processed.changes)
    }

    fn target_table(&self) -> Option<&str> {
        self.sandbox.target_table()
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
    let source = guest_source(config)?;
    let limits = Limits {
        call_timeout: config.call_timeout,
        memory_bytes: config.memory_limit,
        ..Limits::default()
    };
    let sandbox = Sandbox::load(source, &config.options, limits)?;
    Ok(Arc::new(GuestProcessor {
        sandbox,
        source_table: source_table.to_owned(),
        dead_letter: DeadLetter::new(config.dead_letter.clone()),
    }))
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
