//! The replication pipeline: config, table setup, tunnel consumption, batched writes, progress.
//!
//! - [`config`]: the guide's JSON or the TOML form, validated into [`config::ReplicatorConfig`].
//! - [`setup`]: the destination table and the tunnel, created when missing.
//! - [`writer`]: batched, ordered, retried writes of row changes.
//! - [`verify`]: per-range counts and checksums of source and destination.
//! - [`metrics`]: counters and the Prometheus endpoint.

pub mod apply;
pub mod config;
pub mod metrics;
pub mod monitor;
pub mod pipeline;
pub mod setup;
pub mod verify;
pub mod writer;
