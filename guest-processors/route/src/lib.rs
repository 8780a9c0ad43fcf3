//! `route`: writes records to other tables, by content or as copies (fan-out).
//!
//! Options (each table must also be listed in the processor's `tables` config):
//! - `copies` (list of tables): every record is also written, unchanged, to each of them.
//! - `column` (string) and `tables` (object `{ "value": "table", ... }`): a record goes to the
//!   table its `column` value names (a string, or an integer in decimal) instead of the
//!   replication's destination. A record whose value names no table, or that does not carry the
//!   column (an update leaving it alone, a delete of a row routed by an attribute), goes to the
//!   destination; route by a primary key column to keep each row's changes in one table.
//!
//! Name changes by earlier processors of a chain apply to every copy.

use ots_guest_sdk::*;

struct Route {
    copies: Vec<String>,
    by: Option<(String, Vec<(String, String)>)>,
}

impl Processor for Route {
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String> {
        options.only(&["copies", "column", "tables"])?;
        let copies = options.strings("copies")?;
        let by = match (options.string("column")?, options.string_map("tables")?) {
            (Some(column), tables) if !tables.is_empty() => Some((column, tables)),
            (Some(_), _) => return Err("option `column` needs `tables` to route to".into()),
            (None, tables) if !tables.is_empty() => {
                return Err(
                    "option `tables` needs `column`, the column whose value picks the table".into(),
                );
            }
            (None, _) => None,
        };
        if copies.is_empty() && by.is_none() {
            return Err(
                "set `copies` (tables every record is copied to) or `column` and `tables`".into(),
            );
        }
        // Copies are the record's own change written to more tables: nothing is read for
        // them. Routing by a column reads the key and that column only.
        let info = match &by {
            None => ProcessorInfo::reads(false, ColumnInterest::None),
            Some((column, _)) => {
                ProcessorInfo::reads(true, ColumnInterest::Named(vec![column.clone()]))
            }
        };
        Ok((Route { copies, by }, info))
    }

    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {
        let by = self
            .by
            .as_ref()
            .map(|(column, tables)| (batch.name_id(column), tables));
        let actions = batch
            .records
            .iter()
            .map(|record| {
                let home = by.as_ref().and_then(|(id, tables)| {
                    let value = id.and_then(|id| record.key(id).or_else(|| record.written(id)))?;
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Integer(i) => i.to_string(),
                        _ => return None,
                    };
                    tables
                        .iter()
                        .find(|(v, _)| *v == text)
                        .map(|(_, t)| t.clone())
                });
                if home.is_none() && self.copies.is_empty() {
                    return Action::Keep;
                }
                let copies = self.copies.iter().cloned().map(Some);
                Action::KeepIn(std::iter::once(home).chain(copies).collect())
            })
            .collect();
        Ok(BatchOutput::actions(actions))
    }
}

processor!(Route);
