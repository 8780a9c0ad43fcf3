//! Host bindings of the `ots:processor` worlds: 0.3.0, the current one, and 0.2.0, whose
//! guests keep loading.
//!
//! 0.3.0's `types` interface is 0.2.0's plus the routed output types, so 0.2.0's bindings reuse
//! 0.3.0's Rust types (`with`): a batch is lowered once for either kind of guest, and only a
//! 0.2.0 guest's output is converted ([`into_routed`]).

/// The current world (`wit/processor.wit`).
pub mod v0_3 {
    wasmtime::component::bindgen!({
        world: "processor",
        path: "../../wit",
    });
}

/// The world guests built against 0.2.0 export (`wit/0.2.0/processor.wit`).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "processor",
        path: "../../wit/0.2.0",
        with: {
            "ots:processor/types@0.2.0": super::v0_3::ots::processor::types,
        },
    });
}

pub use v0_3::ots::processor::types::*;

/// The name a guest of each version imports the `types` interface under.
pub const TYPES_V0_3: &str = "ots:processor/types@0.3.0";
/// See [`TYPES_V0_3`].
pub const TYPES_V0_2: &str = "ots:processor/types@0.2.0";

/// A 0.2.0 guest's output in 0.3.0's terms: every change goes to the replication's destination.
pub fn into_routed(output: BatchOutput) -> RoutedOutput {
    let outcome = match output.outcome {
        Outcome::AllKept => RoutedOutcome::AllKept,
        Outcome::Actions(actions) => RoutedOutcome::Actions(
            actions
                .into_iter()
                .map(|action| match action {
                    Action::Keep => RoutedAction::Keep,
                    Action::Drop => RoutedAction::Drop,
                    Action::Replace(changes) => RoutedAction::Replace(
                        changes
                            .into_iter()
                            .map(|change| RoutedChange {
                                table: None,
                                change,
                            })
                            .collect(),
                    ),
                })
                .collect(),
        ),
    };
    RoutedOutput {
        outcome,
        name_changes: output.name_changes,
        added_names: output.added_names,
    }
}
