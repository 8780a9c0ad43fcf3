//! Progress of a replication: an indicatif bar for the full copy when stderr is a terminal,
//! periodic log lines otherwise.

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ots_replicator::metrics::Metrics;
use tokio::sync::watch;

/// A running progress reporter; stop it with [`Progress::finish`].
pub(crate) struct Progress {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting `metrics` of the replication named `label`; `expected_rows` is the
    /// size of the full copy when known (it makes the bar a bar instead of a counter).
    pub(crate) fn start(label: String, metrics: Arc<Metrics>, expected_rows: Option<u64>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let tty = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let bar = tty.then(|| new_bar(&label, expected_rows));
            let period = if tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = stopped.changed() => break,
                }
                let s = metrics.snapshot();
                match &bar {
                    Some(bar) => {
                        bar.set_position(s.base_records_applied);
                        bar.set_message(format!(
                            "| stream {} records | {} rows written",
                            s.stream_records_applied, s.rows_written
                        ));
                    }
                    None => tracing::info!(
                        replication = %label,
                        full_copy_rows = s.base_records_applied,
                        stream_records = s.stream_records_applied,
                        rows_written = s.rows_written,
                        records_dropped = s.records_dropped,
                        rows_retried = s.rows_retried,
                        "progress"
                    ),
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Self { stop, task }
    }

    /// Stops reporting.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The one set of progress lines of the process.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Prints a line to stdout above any progress bars instead of through them.
pub(crate) fn say(line: &str) {
    match BARS.get() {
        Some(bars) if !bars.is_hidden() => {
            let _ = bars.println(line);
        }
        _ => println!("{line}"),
    }
}

fn new_bar(label: &str, expected_rows: Option<u64>) -> ProgressBar {
    let bar = match expected_rows {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{prefix:>14} full copy [{bar:30}] {pos}/{len} rows {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(
                "{prefix:>14} {spinner} full copy {pos} rows {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(label.to_owned());
    // One shared set of lines, so concurrent replications (the demo) do not overwrite
    // each other's bar.
    BARS.get_or_init(MultiProgress::new).add(bar)
}

/// Progress of the phases of a backup or a restore: a bar per phase when stderr is a
/// terminal (a counter when the phase's size is unknown), a log line at each phase's start
/// and end otherwise.
#[derive(Default)]
pub(crate) struct PhaseBars {
    current: std::sync::Mutex<Option<Phase>>,
}

struct Phase {
    name: String,
    done: u64,
    bar: Option<ProgressBar>,
}

impl ots_backup::Progress for PhaseBars {
    fn begin(&self, phase: &str, total: Option<u64>) {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{prefix} {spinner} {pos} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            bar.set_prefix(phase.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            BARS.get_or_init(MultiProgress::new).add(bar)
        });
        if bar.is_none() {
            tracing::info!(phase, total, "started");
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Phase {
            name: phase.to_owned(),
            done: 0,
            bar,
        });
    }

    fn advance(&self, n: u64) {
        if let Some(phase) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            phase.done += n;
            if let Some(bar) = &phase.bar {
                bar.inc(n);
            }
        }
    }

    fn end(&self) {
        if let Some(phase) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            match phase.bar {
                Some(bar) => bar.finish_and_clear(),
                None => tracing::info!(phase = %phase.name, done = phase.done, "finished"),
            }
        }
    }
}
