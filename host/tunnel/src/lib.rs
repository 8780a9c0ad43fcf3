//! Tunnel worker framework: heartbeats, channel state machine, read-ahead pipelines and checkpoints.
