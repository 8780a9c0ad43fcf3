//! `rename`: renames attribute columns and, optionally, the destination table.
//!
//! Options:
//! - `columns` (object): `{ "old_name": "new_name", ... }`.
//! - `table` (string): write to this table instead of the configured destination.
//!
//! Renames are expressed once per batch on its name table, so records are not read or copied.
//! Primary key columns cannot be renamed (the destination's key must match the source's).

use ots_guest_sdk::*;

struct Rename {
    columns: Vec<(String, String)>,
}

impl Processor for Rename {
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String> {
        options.only(&["columns", "table"])?;
        let columns = options.string_map("columns")?;
        if let Some((old, _)) = columns.iter().find(|(_, new)| new.is_empty()) {
            return Err(format!("option `columns.{old}`: the new name is empty"));
        }
        let info = ProcessorInfo::reads(false, ColumnInterest::None)
            .with_target_table(options.string("table")?);
        Ok((Rename { columns }, info))
    }

    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {
        if let Some(&key) = batch.key_names.iter().find(|&&k| {
            let name = batch.name(k);
            self.columns.iter().any(|(old, _)| old == name)
        }) {
            let message = format!("cannot rename primary key column `{}`", batch.name(key));
            return Err(ProcessorError {
                record: None,
                action: FailureAction::Stop,
                message,
            });
        }
        let changes = self
            .columns
            .iter()
            .filter_map(|(old, new)| {
                batch.name_id(old).map(|name| NameChange {
                    name,
                    new_name: Some(new.clone()),
                })
            })
            .collect();
        Ok(BatchOutput::all_kept().with_name_changes(changes))
    }
}

processor!(Rename);
