//! Continuous backup of a Tablestore table and point-in-time restore.
//!
//! `otsrep backup run` keeps, in a backup store (a local directory, or S3-compatible object
//! storage), periodic snapshots of a table and its complete change log, read from a Stream
//! tunnel of its own; `otsrep restore --to TIME` creates a table equal to the source as it
//! was at TIME, for any TIME in the window `otsrep backup list` shows.
//!
//! - [`segment`]: the checksummed objects rows and changes are stored in (pure).
//! - [`manifest`]: what a backup holds, the restorable window, restore plans and retention
//!   (pure).
//! - [`store`]: the backup store's objects and the manifest, through `object_store`.
//! - [`run`]: the backup process: the change log through the tunnel worker, snapshots,
//!   coverage, retention.
//! - [`restore`]: a restore to an instant.
//! - [`metrics`]: the backup's counters and lag, in Prometheus text.
//!
//! What "the table as it was at TIME" means: the state after every write whose commit time
//! is at or before the end of TIME's millisecond, and after no other write. Commit times are
//! those the stream stamps on its records (a write's rows share one); writes in TIME's
//! millisecond are all in, writes in the next one all out. `otsrep restore` takes TIME to the
//! millisecond.

pub mod manifest;
pub mod metrics;
pub mod restore;
pub mod run;
pub mod segment;
pub mod store;

mod journal;
mod log;
mod snapshot;

pub use manifest::{Manifest, Window};
pub use store::{BackupStore, StoreError};

/// Progress of a long step (a snapshot, a restore phase), for a progress bar.
pub trait Progress: Send + Sync {
    /// A phase starts; `total` is its size in rows or records when known.
    fn begin(&self, phase: &str, total: Option<u64>);
    /// `n` more rows or records are done.
    fn advance(&self, n: u64);
    /// The phase is over.
    fn end(&self);
}

/// Progress reported nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _phase: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn end(&self) {}
}
