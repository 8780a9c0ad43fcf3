//! Host bindings of the `ots:processor` world.

wasmtime::component::bindgen!({
    world: "processor",
    path: "../../wit",
});

pub use ots::processor::types::*;
