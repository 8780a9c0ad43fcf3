//! A local Tablestore-compatible server: the table and row APIs over the real wire protocol
//! (protobuf over HTTP, PlainBuffer rows, signed requests) on durable redb storage.

pub mod keys;
pub mod store;
