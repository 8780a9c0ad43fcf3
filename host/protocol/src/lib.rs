//! The Tablestore (OTS) wire protocol, shared by the client and the local server.
//!
//! - [`model`]: rows, primary keys, cell values and column operations as plain Rust values.
//! - [`plainbuffer`]: the PlainBuffer row encoding with its [`crc8`] checksums.
//! - [`pb`]: the protobuf messages of the table, row and tunnel APIs.
//! - [`record`]: tunnel records, the one type both the server and the client encode and decode.
//! - [`json`]: the JSON form of records and row changes (the guest dev kit's, the dead letters').
//! - [`auth`]: request signing and the `x-ots-*` headers.
//! - [`error`]: the service's error codes and which of them are retriable.

pub mod auth;
pub mod crc8;
pub mod error;
pub mod json;
pub mod model;
pub mod pb;
pub mod plainbuffer;
pub mod record;
