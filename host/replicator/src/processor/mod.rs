//! The processor stage of the pipeline: what each record becomes before it is written.
//!
//! In production the processor is a sandboxed WebAssembly guest ([`GuestProcessor`], loaded by
//! [`load`] from the config's `[processor]` section), or a [`Chain`] of them from its
//! `[[processors]]` list. Records a guest skips come back with the batch's changes
//! ([`Skipped`]); the apply stage sets them aside in their [`DeadLetters`] sink before the
//! batch counts as done. A processor may name its own target table, which replaces the configured
//! destination ([`crate::pipeline::destination_table`]). Each guest keeps its own
//! [`StageStats`] for the metrics endpoint.

mod chain;
mod dead_letter;
mod guest;
mod stats;

use std::borrow::Cow;
use std::sync::Arc;

use ots_protocol::model::RowChange;
use ots_protocol::record::TunnelRecord;
use ots_sandbox::SandboxError;

pub use chain::{Chain, ChainLoadError, load_chain};
pub use dead_letter::{DeadLetterError, DeadLetters, Skipped};
pub use guest::{GuestProcessor, LoadError, load, load_sandbox};
pub use stats::{StageReport, StageSnapshot, StageStats, render_stages};

/// What a processor made of a batch of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes<'a> {
    /// The row changes to write, in record order. A record kept as it came is borrowed from
    /// the batch: the writer encodes it from the record, without copying its cells.
    pub rows: Vec<Cow<'a, RowChange>>,
    /// For each row change, the index of the record it came from: the next processor of a
    /// chain sees a change as a record with that record's sequence.
    pub origins: Vec<usize>,
    /// For each row change, the table a guest routed it to; `None` for the destination.
    pub tables: Vec<Option<Arc<str>>>,
    /// Records a guest set aside instead.
    pub skipped: Vec<Skipped>,
}

impl<'a> Changes<'a> {
    /// Every record becomes the change it carries.
    pub fn of_records(records: &'a [TunnelRecord]) -> Self {
        Self {
            rows: records.iter().map(|r| Cow::Borrowed(&r.change)).collect(),
            origins: (0..records.len()).collect(),
            tables: vec![None; records.len()],
            skipped: Vec::new(),
        }
    }
}

/// Decides each record's fate: the row changes a batch of records becomes.
pub trait Processor: Send + Sync {
    /// The processor's name, for logs and errors.
    fn name(&self) -> &str;

    /// The row changes for `records`, in the records' order. A record may become no change
    /// (dropped), one, or several.
    fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError>;

    /// The table this processor writes to instead of the configured destination, if it chose
    /// one.
    fn target_table(&self) -> Option<&str> {
        None
    }

    /// A digest of the guests this processor runs, as their files are now: processes compare
    /// it to tell that a quarantined tenant's guest was replaced. `None` while a guest file
    /// cannot be read (a file being replaced is not yet a replacement).
    fn fingerprint(&self) -> Option<String> {
        Some(String::new())
    }

    /// The tables besides the destination this processor may route row changes to.
    fn routed_tables(&self) -> Vec<String> {
        Vec::new()
    }

    /// The statistics of each guest this processor runs, in chain order.
    fn stages(&self) -> Vec<StageReport> {
        Vec::new()
    }
}

/// Why a processor could not process a batch.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The guest failed or misbehaved: a trap, a deadline, the memory limit, invalid output,
    /// or its own request to retry the batch or to stop.
    #[error(transparent)]
    Guest(#[from] SandboxError),
}

impl ProcessorError {
    /// Whether processing the same batch again may succeed: the guest asked for a retry.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Guest(error) => error.is_retriable(),
        }
    }

    /// A short, stable name of the failure, for metric labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Guest(error) => error.kind.label(),
        }
    }
}
