//! The guest dev kit: what a guest author needs outside this repository.
//!
//! - [`scaffold`]: a new guest crate with its own copy of the SDK and the WIT package.
//! - [`toolchain`]: building a guest crate for wasm32 and turning it into a component (also
//!   what `cargo xtask build-guests` uses for the shipped guests).
//! - [`check`]: running a guest over records (in the JSON form of [`ots_protocol::json`]) and
//!   comparing with expected output.
//!
//! `otsrep processor new|build|test` is the command line around it.

pub mod check;
pub mod scaffold;
pub mod toolchain;
