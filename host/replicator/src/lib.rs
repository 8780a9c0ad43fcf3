//! The replication pipeline: config, table setup, tunnel consumption, batched writes, progress.

pub mod config;
