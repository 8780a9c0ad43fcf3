//! The manifest: what a backup holds and the rules over it — which instants it can restore,
//! which snapshot and which log segments a restore to an instant needs, and what retention
//! may drop. Pure; [`crate::store`] reads and writes it, [`crate::run`] and
//! [`crate::restore`] act on it.
//!
//! A backup is a chain of snapshots and one change log. A snapshot is a scan of the table that
//! starts at `started_us` and ends at `finished_us`; each row is read at some instant in
//! between, so the scan is not one consistent state. The log holds every change committed
//! from `log_from_us` on, complete up to `covered_until_ms`. Replaying the log from
//! `started_us − margin` over the snapshot gives the table as it was at any instant after the
//! snapshot finished: every row operation sets or removes cells, so replaying a change the
//! row already reflects, then all later ones in order, ends in the same row (see
//! [`crate::restore`]); the margin covers writes still in flight when the scan began and the
//! clocks of the service and of the backup disagreeing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ots_protocol::pb::table::DescribeTableResponse;
use prost::Message;
use serde::{Deserialize, Serialize};

/// The manifest format this build reads and writes.
pub const FORMAT: u32 = 1;

/// One segment as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// Object path inside the backup store.
    pub path: String,
    /// SHA-256 of the object, hex.
    pub sha256: String,
    /// Object size.
    pub bytes: u64,
    /// Entries (rows or records) in it.
    pub entries: u64,
    /// Oldest commit time among its records, µs (0 for snapshot rows).
    pub first_us: i64,
    /// Newest commit time among its records, µs (0 for snapshot rows).
    pub last_us: i64,
}

/// A sealed run of log segments, listed in an index object of its own so that the manifest
/// stays small however long the log grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRef {
    /// Object path of the index (a JSON list of [`SegmentRef`]).
    pub path: String,
    /// Number of its first segment.
    pub first_segment: u64,
    /// Number of its last segment.
    pub last_segment: u64,
    /// SHA-256 of the index object, hex.
    pub sha256: String,
    /// Segments it lists.
    pub segments: u64,
    /// Oldest commit time among its segments, µs.
    pub first_us: i64,
    /// Newest commit time among its segments, µs.
    pub last_us: i64,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Number, increasing.
    pub id: u64,
    /// When the scan started (µs, the backup's clock).
    pub started_us: i64,
    /// When the scan read its last row (µs); `None` while it runs.
    pub finished_us: Option<i64>,
    /// Rows so far.
    pub rows: u64,
    /// Its segments so far, in key order.
    pub segments: Vec<SegmentRef>,
    /// Where an interrupted scan goes on: the PlainBuffer key of the next row, base64;
    /// `None` before the first segment and once finished.
    pub resume_from: Option<String>,
}

impl Snapshot {
    /// Whether the scan completed.
    pub fn finished(&self) -> bool {
        self.finished_us.is_some()
    }
}

/// The manifest of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Source endpoint, instance and table.
    pub endpoint: String,
    /// Source instance.
    pub instance: String,
    /// Source table.
    pub table: String,
    /// The source's DescribeTable answer (protobuf, base64): the restored table's schema.
    pub schema: String,
    /// The Stream tunnel the log is read from.
    pub tunnel_name: String,
    /// Its id.
    pub tunnel_id: String,
    /// Changes committed from this instant on are in the log (µs): the tunnel's creation.
    pub log_from_us: i64,
    /// Every change committed up to the end of this millisecond is in the log; `None` until
    /// the tunnel first reports a consume point.
    pub covered_until_ms: Option<i64>,
    /// How far before a snapshot's start its replay begins, ms.
    pub margin_ms: i64,
    /// The next segment number.
    pub next_segment: u64,
    /// Snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// Sealed runs of the log, oldest first.
    pub log_indexes: Vec<IndexRef>,
    /// The log's open tail, oldest first.
    pub log: Vec<SegmentRef>,
}

/// Why a manifest cannot serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No snapshot has finished yet.
    #[error("the backup has no finished snapshot yet, so nothing can be restored")]
    NoSnapshot,
    /// The log does not reach the instant yet (or ever did not).
    #[error(
        "{to} is outside the restorable window {window}; pick an instant inside it (`otsrep backup list` shows it)"
    )]
    OutsideWindow {
        /// The requested instant.
        to: String,
        /// The window, in words.
        window: String,
    },
    /// The snapshot's replay would start before the log does (a manifest not made by this
    /// tool, or edited).
    #[error(
        "snapshot {snapshot} needs the log from {needed_us} µs but the log starts at {log_from_us} µs"
    )]
    LogMissing {
        /// The snapshot.
        snapshot: u64,
        /// Where its replay starts.
        needed_us: i64,
        /// Where the log starts.
        log_from_us: i64,
    },
}

/// The instants a backup can restore: every millisecond in `[from_ms, until_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The earliest: the end of the oldest finished snapshot.
    pub from_ms: i64,
    /// The latest: the end of the log's coverage.
    pub until_ms: i64,
}

/// An instant (ms) as RFC 3339, for messages.
pub fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", ms_text(self.from_ms), ms_text(self.until_ms))
    }
}

/// What a restore to one instant reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// The snapshot loaded first.
    pub snapshot: Snapshot,
    /// Changes committed in `[replay_from_us, replay_until_us]` are replayed over it.
    pub replay_from_us: i64,
    /// The last commit time replayed: the end of the requested millisecond.
    pub replay_until_us: i64,
    /// Sealed log runs that may hold such changes.
    pub indexes: Vec<IndexRef>,
    /// Segments of the open tail that may hold such changes.
    pub segments: Vec<SegmentRef>,
}

/// Whether a log range `[first, last]` meets `[from, until]`.
fn overlaps(first: i64, last: i64, from: i64, until: i64) -> bool {
    first <= until && last >= from
}

impl Manifest {
    /// The restorable window; `None` until a snapshot finished and the log reports coverage
    /// past it.
    pub fn window(&self) -> Option<Window> {
        let from_ms = self
            .snapshots
            .iter()
            .filter_map(|s| s.finished_us)
            .min()?
            .div_euclid(1000);
        let until_ms = self.covered_until_ms?;
        (until_ms >= from_ms).then_some(Window { from_ms, until_ms })
    }

    /// What a restore to the end of millisecond `to_ms` needs: the newest snapshot finished at
    /// or before it, and the log from that snapshot's start (less the margin) to `to_ms`.
    pub fn plan(&self, to_ms: i64) -> Result<RestorePlan, PlanError> {
        if !self.snapshots.iter().any(Snapshot::finished) {
            return Err(PlanError::NoSnapshot);
        }
        let outside = || PlanError::OutsideWindow {
            to: ms_text(to_ms),
            window: match self.window() {
                Some(window) => window.to_string(),
                None => "(empty: the log does not yet reach past the first snapshot)".to_owned(),
            },
        };
        let window = self.window().ok_or_else(outside)?;
        if to_ms < window.from_ms || to_ms > window.until_ms {
            return Err(outside());
        }
        let replay_until_us = to_ms * 1000 + 999;
        let snapshot = self
            .snapshots
            .iter()
            .filter(|s| s.finished_us.is_some_and(|f| f <= replay_until_us))
            .max_by_key(|s| s.finished_us)
            .ok_or_else(outside)?
            .clone();
        let replay_from_us = snapshot.started_us - self.margin_ms * 1000;
        if replay_from_us < self.log_from_us {
            return Err(PlanError::LogMissing {
                snapshot: snapshot.id,
                needed_us: replay_from_us,
                log_from_us: self.log_from_us,
            });
        }
        Ok(RestorePlan {
            replay_from_us,
            replay_until_us,
            indexes: self
                .log_indexes
                .iter()
                .filter(|i| overlaps(i.first_us, i.last_us, replay_from_us, replay_until_us))
                .cloned()
                .collect(),
            segments: self
                .log
                .iter()
                .filter(|s| overlaps(s.first_us, s.last_us, replay_from_us, replay_until_us))
                .cloned()
                .collect(),
            snapshot,
        })
    }

    /// Applies retention at `now_ms`, keeping every instant of the last `retention_ms`
    /// restorable: the newest snapshot finished before that horizon stays (restores just
    /// after the horizon start from it), older ones go, and so do log segments and sealed
    /// runs that end before its replay starts. Returns the objects no longer referenced, to
    /// delete once the manifest without them is stored.
    pub fn apply_retention(&mut self, now_ms: i64, retention_ms: i64) -> Vec<String> {
        let horizon_us = (now_ms - retention_ms) * 1000;
        let Some(base) = self
            .snapshots
            .iter()
            .filter(|s| s.finished_us.is_some_and(|f| f <= horizon_us))
            .max_by_key(|s| s.finished_us)
            .map(|s| (s.id, s.started_us))
        else {
            return Vec::new();
        };
        let (base_id, base_started) = base;
        let mut gone = Vec::new();
        self.snapshots.retain(|s| {
            let keep = s.id >= base_id || !s.finished();
            if !keep {
                gone.extend(s.segments.iter().map(|g| g.path.clone()));
            }
            keep
        });
        let cutoff_us = base_started - self.margin_ms * 1000;
        self.log_indexes.retain(|i| {
            let keep = i.last_us >= cutoff_us;
            if !keep {
                gone.push(i.path.clone());
            }
            keep
        });
        self.log.retain(|s| {
            let keep = s.last_us >= cutoff_us;
            if !keep {
                gone.push(s.path.clone());
            }
            keep
        });
        // What went held only changes from before the cutoff.
        self.log_from_us = self.log_from_us.max(cutoff_us);
        gone
    }

    /// Every object path the manifest references (sealed runs' own segments not included:
    /// they are listed in the index objects).
    pub fn referenced(&self) -> impl Iterator<Item = &str> {
        self.snapshots
            .iter()
            .flat_map(|s| s.segments.iter().map(|g| g.path.as_str()))
            .chain(self.log_indexes.iter().map(|i| i.path.as_str()))
            .chain(self.log.iter().map(|s| s.path.as_str()))
    }

    /// The source's DescribeTable answer the manifest keeps: the restored table's schema.
    pub fn schema(&self) -> Result<DescribeTableResponse, String> {
        let bytes = BASE64
            .decode(&self.schema)
            .map_err(|e| format!("the schema is not base64: {e}"))?;
        DescribeTableResponse::decode(bytes.as_slice())
            .map_err(|e| format!("the schema does not decode: {e}"))
    }

    /// Checks what a manifest must hold for a restore to trust it.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} is not the format {FORMAT} this build reads",
                self.format
            ));
        }
        self.schema()?;
        if self.margin_ms < 0 {
            return Err(format!("negative margin {}", self.margin_ms));
        }
        for snapshot in &self.snapshots {
            let entries: u64 = snapshot.segments.iter().map(|s| s.entries).sum();
            if entries != snapshot.rows {
                return Err(format!(
                    "snapshot {} counts {} rows but its segments hold {entries}",
                    snapshot.id, snapshot.rows
                ));
            }
            if let Some(finished) = snapshot.finished_us
                && finished < snapshot.started_us
            {
                return Err(format!(
                    "snapshot {} finished before it started",
                    snapshot.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(path: &str, first_us: i64, last_us: i64) -> SegmentRef {
        SegmentRef {
            path: path.into(),
            sha256: String::new(),
            bytes: 0,
            entries: 0,
            first_us,
            last_us,
        }
    }

    fn snapshot(id: u64, started_ms: i64, finished_ms: Option<i64>) -> Snapshot {
        Snapshot {
            id,
            started_us: started_ms * 1000,
            finished_us: finished_ms.map(|f| f * 1000),
            rows: 0,
            segments: vec![segment(&format!("snapshots/{id}/0"), 0, 0)],
            resume_from: None,
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            endpoint: "http://x".into(),
            instance: "i".into(),
            table: "t".into(),
            schema: String::new(),
            tunnel_name: "b".into(),
            tunnel_id: "id".into(),
            log_from_us: 1_000_000,
            covered_until_ms: Some(50_000),
            margin_ms: 1000,
            next_segment: 10,
            snapshots: vec![
                snapshot(0, 2_000, Some(5_000)),
                snapshot(1, 20_000, Some(22_000)),
                snapshot(2, 40_000, None),
            ],
            log_indexes: vec![IndexRef {
                path: "log-index/0".into(),
                first_segment: 0,
                last_segment: 2,
                sha256: String::new(),
                segments: 3,
                first_us: 1_000_000,
                last_us: 10_000_000,
            }],
            log: vec![
                segment("log/3", 10_000_001, 19_500_000),
                segment("log/4", 19_500_001, 30_000_000),
                segment("log/5", 30_000_001, 49_000_000),
            ],
        }
    }

    #[test]
    fn the_window_runs_from_the_first_snapshot_to_the_coverage() {
        let m = manifest();
        assert_eq!(
            m.window(),
            Some(Window {
                from_ms: 5_000,
                until_ms: 50_000
            })
        );
        let mut empty = m.clone();
        empty.covered_until_ms = Some(4_000);
        assert_eq!(
            empty.window(),
            None,
            "the log does not reach past the snapshot"
        );
        empty.snapshots.retain(|s| !s.finished());
        assert_eq!(empty.plan(4_000).unwrap_err(), PlanError::NoSnapshot);
    }

    #[test]
    fn a_plan_takes_the_newest_snapshot_before_the_instant_and_the_log_after_its_start() {
        let m = manifest();
        let plan = m.plan(25_000).unwrap();
        assert_eq!(plan.snapshot.id, 1);
        assert_eq!(plan.replay_from_us, 19_000_000, "the start less the margin");
        assert_eq!(plan.replay_until_us, 25_000_999, "the whole millisecond");
        assert!(plan.indexes.is_empty());
        let paths: Vec<&str> = plan.segments.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["log/3", "log/4"]);

        let plan = m.plan(6_000).unwrap();
        assert_eq!(plan.snapshot.id, 0);
        assert_eq!(plan.indexes.len(), 1);
        assert_eq!(
            m.plan(22_000).unwrap().snapshot.id,
            1,
            "a snapshot finished in the instant's millisecond serves it"
        );
        for outside in [4_999, 50_001] {
            assert!(matches!(
                m.plan(outside).unwrap_err(),
                PlanError::OutsideWindow { .. }
            ));
        }
        let mut broken = m.clone();
        broken.log_from_us = 19_500_000;
        assert!(matches!(
            broken.plan(25_000).unwrap_err(),
            PlanError::LogMissing { snapshot: 1, .. }
        ));
    }

    #[test]
    fn retention_keeps_the_horizon_restorable() {
        let mut m = manifest();
        assert!(
            m.apply_retention(10_000, 9_000).is_empty(),
            "no snapshot finished before the horizon at 1 s"
        );
        let gone = m.apply_retention(60_000, 30_000);
        assert_eq!(
            gone,
            ["snapshots/0/0", "log-index/0"],
            "snapshot 1 finished before the horizon at 30 s: it and the log from 19 s stay"
        );
        assert_eq!(m.snapshots.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(m.log_from_us, 19_000_000);
        assert_eq!(m.plan(30_000).unwrap().snapshot.id, 1);
        assert!(m.plan(21_000).is_err(), "before the kept snapshot finished");
        let referenced: Vec<&str> = m.referenced().collect();
        assert!(!referenced.contains(&"log-index/0"));
        assert!(
            referenced.contains(&"log/3"),
            "it holds changes after the cutoff"
        );
    }

    #[test]
    fn validation_catches_counts_and_formats() {
        let mut m = manifest();
        assert!(m.validate().is_ok());
        m.snapshots[0].rows = 5;
        assert!(m.validate().unwrap_err().contains("counts 5 rows"));
        m.snapshots[0].rows = 0;
        m.format = 9;
        assert!(m.validate().unwrap_err().contains("format 9"));
    }
}
