//! `replicate`: the faithful default. Every record becomes the row change it carries — puts,
//! updates with every column op, deletes, and the source's cell timestamps — so the destination
//! is an exact copy.
//!
//! Options:
//! - `skip_deletes` (bool, default false): do not apply row deletes (keep an archive).
//! - `verify` (bool, default false): read every record in full and stop on one that is not a
//!   well-formed change (a put with a non-put column, a cell without a timestamp), instead of
//!   passing records through unread.

use ots_guest_sdk::*;

struct Replicate {
    skip_deletes: bool,
    verify: bool,
}

impl Processor for Replicate {
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String> {
        options.only(&["skip_deletes", "verify"])?;
        let this = Replicate {
            skip_deletes: options.bool("skip_deletes", false)?,
            verify: options.bool("verify", false)?,
        };
        let columns = if this.verify {
            ColumnInterest::All
        } else {
            ColumnInterest::None
        };
        Ok((
            this,
            ProcessorInfo::reads(this_reads_keys(&columns), columns),
        ))
    }

    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {
        if self.verify {
            for (i, record) in batch.records.iter().enumerate() {
                check(record).map_err(|m| ProcessorError::at(i, FailureAction::Stop, m))?;
            }
        }
        if !self.skip_deletes {
            return Ok(BatchOutput::all_kept());
        }
        let actions = batch
            .records
            .iter()
            .map(|r| match r.kind {
                ChangeKind::Delete => Action::Drop,
                ChangeKind::Put | ChangeKind::Update => Action::Keep,
            })
            .collect();
        Ok(BatchOutput::actions(actions))
    }
}

/// Verification reads the key along with the columns.
fn this_reads_keys(columns: &ColumnInterest) -> bool {
    matches!(columns, ColumnInterest::All)
}

fn check(record: &StreamRecord) -> Result<(), String> {
    if record.keys().is_empty() {
        return Err("record has no primary key".into());
    }
    for column in record.columns() {
        let ok = match (&record.kind, &column.op) {
            (ChangeKind::Put, ColumnOp::Put(_)) => column.timestamp.is_some(),
            (ChangeKind::Put, _) => false,
            (ChangeKind::Update, ColumnOp::Put(_) | ColumnOp::DeleteOneVersion) => {
                column.timestamp.is_some()
            }
            (ChangeKind::Update, _) => true,
            (ChangeKind::Delete, _) => false,
        };
        if !ok {
            let kind = match record.kind {
                ChangeKind::Put => "put",
                ChangeKind::Update => "update",
                ChangeKind::Delete => "delete",
            };
            let op = match column.op {
                ColumnOp::Put(_) => "put",
                ColumnOp::DeleteOneVersion => "delete-one-version",
                ColumnOp::DeleteAllVersions => "delete-all-versions",
                ColumnOp::Increment(_) => "increment",
            };
            let timestamp = column
                .timestamp
                .map_or("no timestamp".to_owned(), |t| format!("timestamp {t}"));
            return Err(format!(
                "malformed {kind} record: a {op} op with {timestamp}"
            ));
        }
    }
    Ok(())
}

processor!(Replicate);
