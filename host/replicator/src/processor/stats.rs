//! What each guest of a replication does, counted where it runs: calls, records in and out,
//! time spent in the guest, records it set aside, and its failures by kind (trap, deadline,
//! memory limit, invalid output, its own retry or stop). A chain reports one entry per guest,
//! so a slow or failing stage is visible on its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The counters of one guest, updated on the data path.
#[derive(Debug, Default)]
pub struct StageStats {
    calls: AtomicU64,
    records_in: AtomicU64,
    records_out: AtomicU64,
    skipped: AtomicU64,
    guest_nanos: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl StageStats {
    /// Counts one call over `records_in` records that took `spent`.
    pub fn called(&self, records_in: usize, spent: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.records_in
            .fetch_add(records_in as u64, Ordering::Relaxed);
        self.guest_nanos
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts what a successful call produced: row changes and records set aside.
    pub fn produced(&self, changes: usize, skipped: usize) {
        self.records_out
            .fetch_add(changes as u64, Ordering::Relaxed);
        self.skipped.fetch_add(skipped as u64, Ordering::Relaxed);
    }

    /// Counts a failed call by its kind ([`super::ProcessorError::kind`]).
    pub fn failed(&self, kind: &'static str) {
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry(kind).or_default() += 1;
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> StageSnapshot {
        StageSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            guest_time: Duration::from_nanos(self.guest_nanos.load(Ordering::Relaxed)),
            failures: self.failures.lock().map(|f| f.clone()).unwrap_or_default(),
        }
    }
}

/// The counters of one guest at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSnapshot {
    /// Calls made (`process`, retries after a skip included).
    pub calls: u64,
    /// Records passed in.
    pub records_in: u64,
    /// Row changes returned.
    pub records_out: u64,
    /// Records set aside in the dead-letter file.
    pub skipped: u64,
    /// Time spent in calls.
    pub guest_time: Duration,
    /// Failed calls by kind.
    pub failures: BTreeMap<&'static str, u64>,
}

/// One guest of a processor: its place in the chain, its name and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReport {
    /// The tenant whose chain the guest is in, when the replication has tenants.
    pub tenant: Option<String>,
    /// Position in the chain, from 0.
    pub stage: usize,
    /// The guest's name.
    pub name: String,
    /// Its counters.
    pub stats: StageSnapshot,
}

/// The stages' counters in the Prometheus text format, labelled by stage and guest.
pub fn render_stages(stages: &[StageReport]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&StageSnapshot) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for s in stages {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(s), value(&s.stats));
        }
    };
    family("processor_calls_total", "Calls into the guest.", &|s| {
        s.calls.to_string()
    });
    family(
        "processor_records_in_total",
        "Records passed to the guest.",
        &|s| s.records_in.to_string(),
    );
    family(
        "processor_records_out_total",
        "Row changes the guest returned.",
        &|s| s.records_out.to_string(),
    );
    family(
        "processor_records_skipped_total",
        "Records the guest set aside in its dead-letter file.",
        &|s| s.skipped.to_string(),
    );
    family(
        "processor_guest_seconds_total",
        "Time spent in calls into the guest.",
        &|s| s.guest_time.as_secs_f64().to_string(),
    );
    let name = "processor_failures_total";
    let _ = writeln!(
        out,
        "# HELP {name} Failed calls into the guest, by kind (trap, deadline, memory_limit, ...).\n# TYPE {name} counter"
    );
    for s in stages {
        for (kind, count) in &s.stats.failures {
            let _ = writeln!(out, "{name}{{{},kind=\"{kind}\"}} {count}", labels(s));
        }
    }
    out
}

fn labels(stage: &StageReport) -> String {
    let tenant = stage
        .tenant
        .as_ref()
        .map(|t| format!("tenant=\"{t}\","))
        .unwrap_or_default();
    format!(
        "{tenant}stage=\"{}\",processor=\"{}\"",
        stage.stage,
        stage.name.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_is_rendered_with_its_own_labels() {
        let filter = StageStats::default();
        filter.called(10, Duration::from_millis(3));
        filter.produced(4, 1);
        let mask = StageStats::default();
        mask.called(4, Duration::from_millis(1));
        mask.failed("deadline");
        mask.failed("deadline");
        mask.failed("trap");
        let reports = [
            StageReport {
                tenant: None,
                stage: 0,
                name: "filter".into(),
                stats: filter.snapshot(),
            },
            StageReport {
                tenant: None,
                stage: 1,
                name: "mask\"1\".wasm".into(),
                stats: mask.snapshot(),
            },
        ];
        let text = render_stages(&reports);
        for line in [
            "processor_calls_total{stage=\"0\",processor=\"filter\"} 1",
            "processor_records_in_total{stage=\"0\",processor=\"filter\"} 10",
            "processor_records_out_total{stage=\"0\",processor=\"filter\"} 4",
            "processor_records_skipped_total{stage=\"0\",processor=\"filter\"} 1",
            "processor_guest_seconds_total{stage=\"0\",processor=\"filter\"} 0.003",
            "processor_records_in_total{stage=\"1\",processor=\"mask\\\"1\\\".wasm\"} 4",
            "processor_failures_total{stage=\"1\",processor=\"mask\\\"1\\\".wasm\",kind=\"deadline\"} 2",
            "processor_failures_total{stage=\"1\",processor=\"mask\\\"1\\\".wasm\",kind=\"trap\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(!text.contains("stage=\"0\",processor=\"filter\",kind"));
    }
}
