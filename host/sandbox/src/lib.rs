//! WebAssembly processor sandbox: runs guest components (the `ots:processor` WIT world) that
//! turn tunnel records into row changes, without trusting them.
//!
//! - A guest is compiled once ([`Sandbox::load`]) and instantiated per concurrent caller; each
//!   instance gets the WIT's `log` import and, if it imports WASI (guests in Python or
//!   JavaScript do), a WASI 0.2 that grants nothing: no files, sockets, environment or stdin.
//! - Every call runs under a deadline (epoch interruption) and a memory limit; a trapped
//!   instance is thrown away and replaced on the next call.
//! - Everything a guest returns is validated before it becomes a [`RowChange`]: key columns
//!   and types, column names, ops and value sizes.
//! - Guest files come from a configured directory through `cap-std` (no path escapes) and are
//!   swapped in at the next batch boundary when the file changes.
//!
//! [`RowChange`]: ots_protocol::model::RowChange

mod bindings;
mod compiled;
mod convert;
mod engine;
mod error;
mod sandbox;
mod source;
mod wasi;

pub use compiled::CACHE_ENV as COMPILED_CACHE_ENV;
pub use error::{SandboxError, SandboxErrorKind};
pub use sandbox::{Limits, Processed, Sandbox, Skipped};
pub use source::GuestSource;
