//! The replication pipeline: config, table setup, tunnel consumption, processing, batched
//! writes, progress.
//!
//! - [`config`]: the guide's JSON or the TOML form, validated into [`config::ReplicatorConfig`].
//! - [`setup`]: the destination table and the tunnel, created when missing.
//! - [`pipeline`]: one run, from set-up to the end time or shutdown.
//! - [`apply`]: one batch of a channel: cut at the end time, processed, written.
//! - [`processor`]: the record-to-row-change stage (a sandboxed guest or a chain of them),
//!   its dead letters and per-guest statistics.
//! - [`end_time`]: when a channel and a run are past the end time.
//! - [`writer`]: batched, ordered, retried writes of row changes.
//! - [`monitor`]: DescribeTunnel polling for the stage, the lag and the end.
//! - [`verify`]: per-range counts and checksums of source and destination.
//! - [`metrics`]: counters and the Prometheus endpoint.

pub mod apply;
pub mod config;
pub mod end_time;
pub mod metrics;
pub mod monitor;
pub mod pipeline;
pub mod processor;
pub mod setup;
pub mod tenants;
pub mod verify;
pub mod writer;
