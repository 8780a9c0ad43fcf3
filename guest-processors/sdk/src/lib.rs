//! The guest SDK: write a Tablestore record processor as a WebAssembly component in a few
//! lines.
//!
//! Implement [`Processor`] for a type and register it with [`processor!`]:
//!
//! ```ignore
//! use ots_guest_sdk::*;
//!
//! struct DropDeletes;
//!
//! impl Processor for DropDeletes {
//!     fn init(_options: Options) -> Result<(Self, ProcessorInfo), String> {
//!         Ok((DropDeletes, ProcessorInfo::reads(false, ColumnInterest::None)))
//!     }
//!     fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {
//!         let actions = batch.records.iter().map(|r| match r.kind {
//!             ChangeKind::Delete => Action::Drop,
//!             _ => Action::Keep,
//!         });
//!         Ok(BatchOutput::actions(actions.collect()))
//!     }
//! }
//!
//! processor!(DropDeletes);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "processor",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_processor_world",
        default_bindings_module: "ots_guest_sdk::bindings",
    });
}

pub use bindings::log as host_log;
/// What becomes of one record: WIT 0.3.0's `routed-action` (0.2.0's `action` is not used by
/// guests built with this SDK).
pub use bindings::ots::processor::types::RoutedAction as Action;
/// The fate of a batch's records: WIT 0.3.0's `routed-outcome`.
pub use bindings::ots::processor::types::RoutedOutcome as Outcome;
/// The result of `process`: WIT 0.3.0's `routed-output`.
pub use bindings::ots::processor::types::RoutedOutput as BatchOutput;
pub use bindings::ots::processor::types::{
    Batch, ChangeKind, Column, ColumnInterest, ColumnOp, FailureAction, Interest, KeyColumn,
    LogLevel, NameChange, NameId, ProcessorError, ProcessorInfo, RoutedChange, RowChange,
    SequenceInfo, StreamRecord, Value,
};
#[doc(hidden)]
pub use bindings::{Guest, export_processor_world};

mod options;
pub use options::Options;
pub use serde_json;

/// A record processor's logic. One value lives per sandbox instance, created by `init`.
pub trait Processor: Sized + 'static {
    /// Builds the processor from the replication config's options and says what it reads.
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String>;

    /// Decides the fate of each record of a batch.
    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError>;
}

impl ProcessorInfo {
    /// Reads the primary key if `primary_key`, and the `columns` given.
    pub fn reads(primary_key: bool, columns: ColumnInterest) -> Self {
        Self {
            interest: Interest {
                primary_key,
                columns,
            },
            target_table: None,
        }
    }

    /// Writes to `table` instead of the configured destination table.
    pub fn with_target_table(mut self, table: Option<String>) -> Self {
        self.target_table = table;
        self
    }
}

impl BatchOutput {
    /// Every record kept, nothing renamed.
    pub fn all_kept() -> Self {
        Self {
            outcome: Outcome::AllKept,
            name_changes: Vec::new(),
            added_names: Vec::new(),
        }
    }

    /// One action per record.
    pub fn actions(actions: Vec<Action>) -> Self {
        Self {
            outcome: Outcome::Actions(actions),
            name_changes: Vec::new(),
            added_names: Vec::new(),
        }
    }

    /// Adds renames and removals of columns.
    pub fn with_name_changes(mut self, changes: Vec<NameChange>) -> Self {
        self.name_changes = changes;
        self
    }
}

impl Action {
    /// Write `changes` instead of the record, to the replication's destination.
    pub fn replace(changes: Vec<RowChange>) -> Self {
        Self::Replace(
            changes
                .into_iter()
                .map(|c| RoutedChange::to(None, c))
                .collect(),
        )
    }
}

impl RoutedChange {
    /// `change`, written to `table` (one the processor's config lists in `tables`), or to the
    /// replication's destination for `None`.
    pub fn to(table: Option<&str>, change: RowChange) -> Self {
        Self {
            table: table.map(str::to_owned),
            change,
        }
    }
}

impl RowChange {
    /// The change `record` carries: its kind, key and columns, as far as the guest reads them
    /// (a guest that writes copies of records reads the key and every column).
    pub fn of_record(record: &StreamRecord) -> Self {
        Self {
            kind: record.kind,
            primary_key: record.keys().to_vec(),
            columns: record.columns().to_vec(),
        }
    }
}

impl ProcessorError {
    /// A failure of the record at `index` with the given consequence.
    pub fn at(index: usize, action: FailureAction, message: impl Into<String>) -> Self {
        Self {
            record: u32::try_from(index).ok(),
            action,
            message: message.into(),
        }
    }
}

impl Batch {
    /// The id of `name` in this batch's name table.
    pub fn name_id(&self, name: &str) -> Option<NameId> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| NameId::try_from(i).ok())
    }

    /// The name behind `id`.
    pub fn name(&self, id: NameId) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

impl StreamRecord {
    /// The key columns (empty unless the guest reads keys).
    pub fn keys(&self) -> &[KeyColumn] {
        self.primary_key.as_deref().unwrap_or_default()
    }

    /// The columns the guest asked for (empty if none).
    pub fn columns(&self) -> &[Column] {
        self.columns.as_deref().unwrap_or_default()
    }

    /// The value of key column `name` (by id), if the record carries it.
    pub fn key(&self, name: NameId) -> Option<&Value> {
        self.keys()
            .iter()
            .find(|k| k.name == name)
            .map(|k| &k.value)
    }

    /// The value the record writes to column `name` (by id): the last `put` of it.
    pub fn written(&self, name: NameId) -> Option<&Value> {
        self.columns().iter().rev().find_map(|c| match &c.op {
            ColumnOp::Put(v) if c.name == name => Some(v),
            _ => None,
        })
    }
}

/// Logs through the host (rate-limited there).
pub fn log(level: LogLevel, message: &str) {
    host_log(level, message);
}

/// Registers `$ty` (a [`Processor`]) as the component's export.
#[macro_export]
macro_rules! processor {
    ($ty:ty) => {
        struct __OtsGuest;

        ::std::thread_local! {
            static __STATE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }

        impl $crate::Guest for __OtsGuest {
            fn init(options: ::std::string::String) -> ::core::result::Result<$crate::ProcessorInfo, ::std::string::String> {
                let options = $crate::Options::parse(&options)?;
                let (state, info) = <$ty as $crate::Processor>::init(options)?;
                __STATE.with(|s| *s.borrow_mut() = ::core::option::Option::Some(state));
                ::core::result::Result::Ok(info)
            }

            fn process(batch: $crate::Batch) -> ::core::result::Result<$crate::BatchOutput, $crate::ProcessorError> {
                __STATE.with(|s| match s.borrow_mut().as_mut() {
                    ::core::option::Option::Some(p) => $crate::Processor::process(p, batch),
                    ::core::option::Option::None => ::core::result::Result::Err($crate::ProcessorError {
                        record: ::core::option::Option::None,
                        action: $crate::FailureAction::Stop,
                        message: "process called before init".into(),
                    }),
                })
            }
        }

        $crate::export_processor_world!(__OtsGuest with_types_in $crate::bindings);
    };
}
