//! The backup's counters and its lag, rendered as Prometheus text (served by
//! `otsrep backup run --metrics-listen`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one backup process.
#[derive(Debug, Default)]
pub struct BackupMetrics {
    records_logged: AtomicU64,
    log_segments: AtomicU64,
    snapshot_rows: AtomicU64,
    snapshots_finished: AtomicU64,
    objects_deleted: AtomicU64,
    /// The end of the log's coverage, ms since the epoch (0 until known).
    covered_until_ms: AtomicI64,
}

/// Totals of a [`BackupMetrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackupCounts {
    /// Change records written to the log.
    pub records_logged: u64,
    /// Log segments written.
    pub log_segments: u64,
    /// Snapshot rows written.
    pub snapshot_rows: u64,
    /// Snapshots completed.
    pub snapshots_finished: u64,
    /// Objects retention deleted.
    pub objects_deleted: u64,
    /// The end of the log's coverage, ms (0 until known).
    pub covered_until_ms: i64,
}

impl BackupMetrics {
    /// Counts a log segment of `records` records.
    pub fn logged(&self, records: usize) {
        self.records_logged
            .fetch_add(records as u64, Ordering::Relaxed);
        self.log_segments.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts snapshot rows written.
    pub fn snapshot_rows(&self, rows: usize) {
        self.snapshot_rows.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Counts a completed snapshot.
    pub fn snapshot_finished(&self) {
        self.snapshots_finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts objects retention deleted.
    pub fn deleted(&self, objects: usize) {
        self.objects_deleted
            .fetch_add(objects as u64, Ordering::Relaxed);
    }

    /// Notes the end of the log's coverage.
    pub fn covered_until(&self, ms: i64) {
        self.covered_until_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Totals so far.
    pub fn counts(&self) -> BackupCounts {
        BackupCounts {
            records_logged: self.records_logged.load(Ordering::Relaxed),
            log_segments: self.log_segments.load(Ordering::Relaxed),
            snapshot_rows: self.snapshot_rows.load(Ordering::Relaxed),
            snapshots_finished: self.snapshots_finished.load(Ordering::Relaxed),
            objects_deleted: self.objects_deleted.load(Ordering::Relaxed),
            covered_until_ms: self.covered_until_ms.load(Ordering::Relaxed),
        }
    }

    /// The metrics in the Prometheus text format at `now_ms`; the lag is how far the end of
    /// the restorable window is behind now.
    pub fn render(&self, now_ms: i64) -> String {
        let c = self.counts();
        let mut out = String::new();
        for (name, help, value) in [
            (
                "backup_records_logged_total",
                "Change records written to the backup's log.",
                c.records_logged,
            ),
            (
                "backup_log_segments_total",
                "Log segments written.",
                c.log_segments,
            ),
            (
                "backup_snapshot_rows_total",
                "Snapshot rows written.",
                c.snapshot_rows,
            ),
            (
                "backup_snapshots_total",
                "Snapshots completed.",
                c.snapshots_finished,
            ),
            (
                "backup_objects_deleted_total",
                "Objects deleted by retention.",
                c.objects_deleted,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let name = "backup_lag_seconds";
        let lag = match c.covered_until_ms {
            0 => f64::NAN,
            covered => (now_ms - covered).max(0) as f64 / 1e3,
        };
        let _ = writeln!(
            out,
            "# HELP {name} How far the latest restorable instant is behind now (NaN until known).\n# TYPE {name} gauge\n{name} {lag}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_and_lag() {
        let metrics = BackupMetrics::default();
        assert!(metrics.render(0).contains("backup_lag_seconds NaN"));
        metrics.logged(10);
        metrics.logged(5);
        metrics.snapshot_rows(7);
        metrics.covered_until(1_000);
        metrics.covered_until(900);
        let text = metrics.render(3_500);
        assert!(text.contains("backup_records_logged_total 15"));
        assert!(text.contains("backup_log_segments_total 2"));
        assert!(text.contains("backup_snapshot_rows_total 7"));
        assert!(text.contains("backup_lag_seconds 2.5"), "{text}");
    }
}
