//! The replicator's counters and a Prometheus text endpoint serving them.
//!
//! Metrics are plain atomics updated on the data path and rendered on demand; names follow
//! `<area>_<what>_<unit>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the batch latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters of one replicator process.
#[derive(Debug, Default)]
pub struct Metrics {
    records_read: AtomicU64,
    records_dropped: AtomicU64,
    base_records_applied: AtomicU64,
    stream_records_applied: AtomicU64,
    rows_written: AtomicU64,
    rows_retried: AtomicU64,
    batches_written: AtomicU64,
    batch_latency_micros_sum: AtomicU64,
    batch_latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    channel_lag_millis: Mutex<BTreeMap<String, i64>>,
    tunnel_lag_millis: AtomicU64,
    processor_failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts records handed over by the tunnel.
    pub fn records_read(&self, n: usize) {
        self.records_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts records the processor dropped.
    pub fn records_dropped(&self, n: usize) {
        self.records_dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts base-data (full copy) records applied.
    pub fn base_rows_written(&self, n: usize) {
        self.base_records_applied
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts stream (incremental) records applied.
    pub fn stream_records_applied(&self, n: usize) {
        self.stream_records_applied
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts rows durably written to the destination.
    pub fn rows_written(&self, n: usize) {
        self.rows_written.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts rows that failed in a batch and were sent again.
    pub fn rows_retried(&self, n: usize) {
        self.rows_retried.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records one BatchWriteRow round (with its retries) and how long it took.
    pub fn batch_written(&self, latency: Duration) {
        self.batches_written.fetch_add(1, Ordering::Relaxed);
        self.batch_latency_micros_sum
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.batch_latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets how far behind the newest applied record of a channel is (ms).
    pub fn set_channel_lag(&self, channel: &str, lag_millis: i64) {
        if let Ok(mut lags) = self.channel_lag_millis.lock() {
            lags.insert(channel.to_owned(), lag_millis.max(0));
        }
    }

    /// Counts a batch the processor failed on, by the kind of failure (trap, deadline, ...).
    pub fn processor_failed(&self, kind: &'static str) {
        if let Ok(mut failures) = self.processor_failures.lock() {
            *failures.entry(kind).or_default() += 1;
        }
    }

    /// Sets the tunnel's lag as DescribeTunnel reports it (ms).
    pub fn set_tunnel_lag(&self, lag_millis: i64) {
        self.tunnel_lag_millis
            .store(lag_millis.max(0) as u64, Ordering::Relaxed);
    }

    /// Totals so far, for summaries and tests.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            records_read: self.records_read.load(Ordering::Relaxed),
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            base_records_applied: self.base_records_applied.load(Ordering::Relaxed),
            stream_records_applied: self.stream_records_applied.load(Ordering::Relaxed),
            rows_written: self.rows_written.load(Ordering::Relaxed),
            rows_retried: self.rows_retried.load(Ordering::Relaxed),
            batches_written: self.batches_written.load(Ordering::Relaxed),
        }
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "replicator_records_read_total",
            "Records read from the tunnel.",
            s.records_read,
        );
        counter(
            "replicator_records_dropped_total",
            "Records the processor dropped.",
            s.records_dropped,
        );
        counter(
            "replicator_base_records_applied_total",
            "Records of the full copy (base data) applied.",
            s.base_records_applied,
        );
        counter(
            "replicator_stream_records_applied_total",
            "Incremental (stream) records applied.",
            s.stream_records_applied,
        );
        counter(
            "replicator_rows_written_total",
            "Row changes durably written to the destination.",
            s.rows_written,
        );
        counter(
            "replicator_rows_retried_total",
            "Row changes sent again after failing in a batch.",
            s.rows_retried,
        );

        let name = "replicator_batch_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to write one batch durably, retries included.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.batch_latency_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            s.batches_written,
            self.batch_latency_micros_sum.load(Ordering::Relaxed) as f64 / 1e6,
            s.batches_written
        );

        let name = "replicator_processor_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Batches the processor failed on, by kind of failure.\n# TYPE {name} counter"
        );
        if let Ok(failures) = self.processor_failures.lock() {
            for (kind, count) in failures.iter() {
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {count}");
            }
        }

        let name = "replicator_channel_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Age of the newest record applied per channel.\n# TYPE {name} gauge"
        );
        if let Ok(lags) = self.channel_lag_millis.lock() {
            for (channel, lag) in lags.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{channel=\"{}\"}} {}",
                    channel.replace('\\', "\\\\").replace('"', "\\\""),
                    *lag as f64 / 1e3
                );
            }
        }
        let name = "replicator_tunnel_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How far the tunnel's consume point is behind now.\n# TYPE {name} gauge\n{name} {}",
            self.tunnel_lag_millis.load(Ordering::Relaxed) as f64 / 1e3
        );
        out
    }
}

/// Totals of a [`Metrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Records read from the tunnel.
    pub records_read: u64,
    /// Records the processor dropped.
    pub records_dropped: u64,
    /// Base-data (full copy) records applied.
    pub base_records_applied: u64,
    /// Stream (incremental) records applied.
    pub stream_records_applied: u64,
    /// Row changes written to the destination.
    pub rows_written: u64,
    /// Row changes sent again.
    pub rows_retried: u64,
    /// Batches written.
    pub batches_written: u64,
}

/// Serves `GET /metrics` on `listen`, the body from `render` (Prometheus text), until the task
/// is dropped; returns the bound address (useful with port 0) and the server task. Shared by
/// every long-running command.
pub async fn serve(
    listen: SocketAddr,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = render();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "metrics endpoint stopped");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_counters_histogram_and_lags() {
        let m = Metrics::default();
        m.records_read(10);
        m.records_dropped(2);
        m.rows_written(8);
        m.rows_retried(1);
        m.batch_written(Duration::from_millis(20));
        m.batch_written(Duration::from_millis(300));
        m.set_channel_lag("ch\"1", 1500);
        m.set_tunnel_lag(2500);
        m.processor_failed("trap");
        m.processor_failed("trap");
        m.processor_failed("deadline");
        let text = m.render();
        assert!(text.contains("replicator_records_read_total 10\n"));
        assert!(text.contains("replicator_records_dropped_total 2\n"));
        assert!(text.contains("replicator_rows_written_total 8\n"));
        assert!(text.contains("replicator_rows_retried_total 1\n"));
        assert!(text.contains("replicator_batch_latency_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("replicator_batch_latency_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("replicator_batch_latency_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("replicator_batch_latency_seconds_count 2\n"));
        assert!(text.contains("replicator_batch_latency_seconds_sum 0.32\n"));
        assert!(text.contains("replicator_channel_lag_seconds{channel=\"ch\\\"1\"} 1.5\n"));
        assert!(text.contains("replicator_tunnel_lag_seconds 2.5\n"));
        assert!(text.contains("replicator_processor_failures_total{kind=\"trap\"} 2\n"));
        assert!(text.contains("replicator_processor_failures_total{kind=\"deadline\"} 1\n"));
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_text() {
        let m = std::sync::Arc::new(Metrics::default());
        m.rows_written(3);
        let served = m.clone();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), move || served.render())
            .await
            .unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"));
        assert!(response.contains("replicator_rows_written_total 3"));
        task.abort();
    }
}
