//! The transforms under test: the native passthrough, and a wrapper timing whichever transform
//! it holds (and optionally observing every record as it reaches the transform).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ots_client::tunnel::TunnelRecord;
use ots_protocol::model::RowChange;
use ots_replicator::apply::{RecordTransform, TransformError};

/// Every record becomes the row change it carries, with no sandbox: the baseline the `replicate`
/// guest is compared with.
pub struct NativePassthrough;

impl RecordTransform for NativePassthrough {
    fn transform(&self, records: &[TunnelRecord]) -> Result<Vec<RowChange>, TransformError> {
        Ok(records.iter().map(|r| r.change.clone()).collect())
    }
}

/// Called with each batch of records before it is transformed.
pub type Observer = Box<dyn Fn(&[TunnelRecord]) + Send + Sync>;

/// Wraps a transform, adding up the time spent in it.
pub struct Timed {
    inner: Arc<dyn RecordTransform>,
    observer: Option<Observer>,
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl Timed {
    /// Times `inner`; `observer` sees every batch first.
    pub fn new(inner: Arc<dyn RecordTransform>, observer: Option<Observer>) -> Self {
        Self {
            inner,
            observer,
            nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Total time spent in the inner transform, and how many calls.
    pub fn spent(&self) -> (Duration, u64) {
        (
            Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
            self.calls.load(Ordering::Relaxed),
        )
    }
}

impl RecordTransform for Timed {
    fn transform(&self, records: &[TunnelRecord]) -> Result<Vec<RowChange>, TransformError> {
        if let Some(observe) = &self.observer {
            observe(records);
        }
        let started = Instant::now();
        let result = self.inner.transform(records);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        result
    }
}
