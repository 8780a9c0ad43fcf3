//! Async Tablestore client: table, row and tunnel APIs with signing and retries.
