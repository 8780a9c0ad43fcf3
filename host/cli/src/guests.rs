//! Processor selection: turns the config's `[processor]` into the transform the pipeline runs.
//!
//! Interim state, until the `ots-sandbox` crate and the committed guest components land:
//! `replicate` is applied natively (it is the identity: each record becomes the row change it
//! carries, timestamps included, which is exactly what the `replicate` guest does), and the
//! other processors are refused with an error that says so.

use std::sync::Arc;

use anyhow::bail;
use ots_client::tunnel::TunnelRecord;
use ots_protocol::model::RowChange;
use ots_replicator::apply::{RecordTransform, TransformError};
use ots_replicator::config::{ProcessorConfig, ProcessorSource};

/// What the demo's filter example keeps.
pub const DEMO_FILTER_DESCRIPTION: &str = "rows whose `active` is true";

/// Options of the demo's filter example.
pub fn demo_filter_options() -> serde_json::Value {
    serde_json::json!({ "column": "active", "equals": true })
}

/// The faithful transformation: every record becomes its own row change.
struct Replicate;

impl RecordTransform for Replicate {
    fn transform(&self, records: &[TunnelRecord]) -> Result<Vec<RowChange>, TransformError> {
        Ok(records.iter().map(|r| r.change.clone()).collect())
    }
}

/// Loads the processor the config selects.
pub fn load_transform(config: &ProcessorConfig) -> anyhow::Result<Arc<dyn RecordTransform>> {
    match &config.source {
        ProcessorSource::Builtin(name) if name == "replicate" && config.guest_dir.is_none() => {
            Ok(Arc::new(Replicate))
        }
        other => bail!(
            "processor {other:?} runs in the WebAssembly sandbox, which this build does not include yet"
        ),
    }
}
