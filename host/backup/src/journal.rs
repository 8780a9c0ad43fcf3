//! The journal: the backup store and its manifest, changed by one task at a time. Every change
//! writes its objects first, then the manifest that lists them, and only then counts as made;
//! an object written but not listed when the process dies is garbage, collected at the next
//! start ([`Journal::collect_garbage`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::manifest::{Manifest, SegmentRef};
use crate::metrics::BackupMetrics;
use crate::segment::{Entry, SegmentKind};
use crate::store::{BackupStore, StoreError};

/// The object path of log segment `number`.
fn log_path(number: u64) -> String {
    format!("log/{number:012}.seg")
}

/// The object path of snapshot `id`'s segment `number`.
pub(crate) fn snapshot_path(id: u64, number: u64) -> String {
    format!("snapshots/{id:06}/{number:012}.seg")
}

/// The segment number in a log segment's path.
fn log_number(path: &str) -> Option<u64> {
    path.strip_prefix("log/")?
        .strip_suffix(".seg")?
        .parse()
        .ok()
}

/// The store and the manifest, changed under one lock.
pub(crate) struct Journal {
    pub(crate) store: BackupStore,
    manifest: Mutex<Manifest>,
    /// Log segments in the manifest's open tail before they are sealed into an index.
    seal_after: usize,
    pub(crate) metrics: Arc<BackupMetrics>,
}

impl Journal {
    pub(crate) fn new(
        store: BackupStore,
        manifest: Manifest,
        seal_after: usize,
        metrics: Arc<BackupMetrics>,
    ) -> Self {
        Self {
            store,
            manifest: Mutex::new(manifest),
            seal_after: seal_after.max(1),
            metrics,
        }
    }

    /// A copy of the manifest as last stored.
    pub(crate) async fn manifest(&self) -> Manifest {
        self.manifest.lock().await.clone()
    }

    /// Lets `change` edit a copy of the manifest, stores the copy and keeps it; nothing
    /// changes when storing fails.
    pub(crate) async fn update<T>(
        &self,
        change: impl FnOnce(&mut Manifest) -> T,
    ) -> Result<T, StoreError> {
        let mut manifest = self.manifest.lock().await;
        let mut next = manifest.clone();
        let result = change(&mut next);
        if next != *manifest {
            self.store.save_manifest(&next).await?;
            *manifest = next;
        }
        Ok(result)
    }

    /// Writes `entries` as the log's next segment and lists it; seals the open tail into an
    /// index once it is long enough.
    pub(crate) async fn append_log(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let mut manifest = self.manifest.lock().await;
        let number = manifest.next_segment;
        let segment = self
            .store
            .write_segment(log_path(number), SegmentKind::Log, entries)
            .await?;
        let mut next = manifest.clone();
        next.next_segment = number + 1;
        next.log.push(segment);
        if next.log.len() >= self.seal_after {
            let numbers: Vec<u64> = next
                .log
                .iter()
                .filter_map(|s| log_number(&s.path))
                .collect();
            let first = numbers.iter().copied().min().unwrap_or(number);
            let index = self
                .store
                .write_index(
                    format!("log-index/{first:012}-{number:012}.json"),
                    (first, number),
                    &next.log,
                )
                .await?;
            next.log_indexes.push(index);
            next.log.clear();
        }
        self.store.save_manifest(&next).await?;
        *manifest = next;
        self.metrics.logged(entries.len());
        Ok(())
    }

    /// Writes `entries` as the next segment of the running snapshot and lists it with the
    /// rows and the scan's new position (`finished_us` once it read its last row).
    pub(crate) async fn append_snapshot(
        &self,
        entries: &[Entry],
        resume_from: Option<String>,
        finished_us: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut manifest = self.manifest.lock().await;
        let number = manifest.next_segment;
        let mut next = manifest.clone();
        let snapshot = next
            .snapshots
            .iter_mut()
            .find(|s| !s.finished())
            .expect("a snapshot runs");
        if !entries.is_empty() {
            let segment: SegmentRef = self
                .store
                .write_segment(
                    snapshot_path(snapshot.id, number),
                    SegmentKind::Snapshot,
                    entries,
                )
                .await?;
            snapshot.segments.push(segment);
            snapshot.rows += entries.len() as u64;
            next.next_segment = number + 1;
        }
        snapshot.resume_from = resume_from;
        snapshot.finished_us = finished_us;
        self.store.save_manifest(&next).await?;
        *manifest = next;
        self.metrics.snapshot_rows(entries.len());
        Ok(())
    }

    /// Applies retention at `now_ms` and deletes what it drops, after the manifest without it
    /// is stored.
    pub(crate) async fn apply_retention(
        &self,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<usize, StoreError> {
        let gone = self
            .update(|m| m.apply_retention(now_ms, retention_ms))
            .await?;
        for path in &gone {
            self.store.delete(path).await?;
        }
        self.metrics.deleted(gone.len());
        Ok(gone.len())
    }

    /// Deletes the objects the manifest does not list: written by a process that died before
    /// listing them, or dropped by retention and not yet deleted. Log segments inside sealed
    /// indexes are known by their numbers, so no index is read.
    pub(crate) async fn collect_garbage(&self) -> Result<usize, StoreError> {
        let manifest = self.manifest().await;
        let referenced: BTreeSet<&str> = manifest.referenced().collect();
        let sealed = |number: u64| {
            manifest
                .log_indexes
                .iter()
                .any(|i| (i.first_segment..=i.last_segment).contains(&number))
        };
        let mut deleted = 0;
        for prefix in ["log/", "log-index/", "snapshots/"] {
            for path in self.store.list(prefix).await? {
                let keep = referenced.contains(path.as_str())
                    || log_number(&path).is_some_and(|n| n < manifest.next_segment && sealed(n));
                if !keep {
                    tracing::debug!(%path, "deleting an object the manifest does not list");
                    self.store.delete(&path).await?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}
