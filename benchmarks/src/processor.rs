//! The processors under test: the native passthrough, and a wrapper timing whichever processor
//! it holds (and optionally observing every record as it reaches the processor).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ots_protocol::record::TunnelRecord;
use ots_replicator::processor::{Changes, Processor, ProcessorError, StageReport};

/// Every record becomes the row change it carries, with no sandbox: the baseline the `replicate`
/// guest is compared with.
pub struct NativePassthrough;

impl Processor for NativePassthrough {
    fn name(&self) -> &str {
        "native passthrough"
    }

    fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError> {
        Ok(Changes::of_records(records))
    }
}

/// Called with each batch of records before it is processed.
pub type Observer = Box<dyn Fn(&[TunnelRecord]) + Send + Sync>;

/// Wraps a processor, adding up the time spent in it.
pub struct Timed {
    inner: Arc<dyn Processor>,
    observer: Option<Observer>,
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl Timed {
    /// Times `inner`; `observer` sees every batch first.
    pub fn new(inner: Arc<dyn Processor>, observer: Option<Observer>) -> Self {
        Self {
            inner,
            observer,
            nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Total time spent in the inner processor, and how many calls.
    pub fn spent(&self) -> (Duration, u64) {
        (
            Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
            self.calls.load(Ordering::Relaxed),
        )
    }
}

impl Processor for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError> {
        if let Some(observe) = &self.observer {
            observe(records);
        }
        let started = Instant::now();
        let result = self.inner.process(records);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn target_table(&self) -> Option<&str> {
        self.inner.target_table()
    }

    fn stages(&self) -> Vec<StageReport> {
        self.inner.stages()
    }
}
