//! `misbehave`: a guest that breaks the rules on purpose, for the sandbox's containment tests.
//!
//! Options: `mode` and `key` (optional integer: misbehave only on batches holding a record with
//! an integer key column equal to it; other batches are kept as they are). Without `mode` the
//! data decides: a record writing a string column `misbehave` triggers the mode it names, and
//! batches without one are kept; so a replica of the guest with the same (empty) options, such
//! as `replicate`, can replace it.
//! Modes: `drop` (drops every record: a visibly different guest for hot-swap tests), `trap` (panics), `loop` (never returns), `allocate` (grows memory without bound),
//! `bad-key` (replaces records with changes whose key has the wrong type), `long-name`
//! (renames a column to a 300-byte name), `retry` / `skip` / `stop` (fail the matching record
//! with that failure action), `log-flood` (logs 10,000 messages).

use ots_guest_sdk::*;

struct Misbehave {
    mode: Option<String>,
    key: Option<i64>,
}

impl Processor for Misbehave {
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String> {
        options.only(&["mode", "key"])?;
        let mode = options.string("mode")?;
        let key = match options.get("key") {
            None => None,
            Some(v) => Some(v.as_i64().ok_or("option `key` must be an integer")?),
        };
        Ok((
            Misbehave { mode, key },
            ProcessorInfo::reads(true, ColumnInterest::All),
        ))
    }

    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {
        let (at, mode) = match &self.mode {
            Some(mode) => {
                let hit = batch.records.iter().position(|r| match self.key {
                    None => true,
                    Some(k) => r
                        .keys()
                        .iter()
                        .any(|c| matches!(c.value, Value::Integer(v) if v == k)),
                });
                let Some(at) = hit else {
                    return Ok(BatchOutput::all_kept());
                };
                (at, mode.clone())
            }
            None => {
                let column = batch.name_id("misbehave");
                let hit = batch.records.iter().enumerate().find_map(|(i, r)| {
                    match column.and_then(|id| r.written(id)) {
                        Some(Value::String(mode)) => Some((i, mode.clone())),
                        _ => None,
                    }
                });
                let Some(hit) = hit else {
                    return Ok(BatchOutput::all_kept());
                };
                hit
            }
        };
        let fail = |action| {
            Err(ProcessorError::at(
                at,
                action,
                format!("refusing record {at} on purpose"),
            ))
        };
        match mode.as_str() {
            "drop" => Ok(BatchOutput::actions(vec![
                Action::Drop;
                batch.records.len()
            ])),
            "trap" => panic!("misbehave: trapping on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "bad-key" => {
                let record = &batch.records[at];
                let key = record
                    .keys()
                    .iter()
                    .map(|k| KeyColumn {
                        name: k.name,
                        value: Value::Boolean(true),
                    })
                    .collect();
                let mut actions = vec![Action::Keep; batch.records.len()];
                actions[at] = Action::replace(vec![RowChange {
                    kind: ChangeKind::Delete,
                    primary_key: key,
                    columns: Vec::new(),
                }]);
                Ok(BatchOutput::actions(actions))
            }
            "long-name" => {
                let changes = (0..batch.names.len() as NameId)
                    .filter(|id| !batch.key_names.contains(id))
                    .map(|name| NameChange {
                        name,
                        new_name: Some("x".repeat(300)),
                    })
                    .collect();
                Ok(BatchOutput::all_kept().with_name_changes(changes))
            }
            "log-flood" => {
                for i in 0..10_000 {
                    log(LogLevel::Info, &format!("message {i}"));
                }
                Ok(BatchOutput::all_kept())
            }
            "retry" => fail(FailureAction::Retry),
            "skip" => fail(FailureAction::Skip),
            "stop" => fail(FailureAction::Stop),
            other => Err(ProcessorError::at(
                at,
                FailureAction::Stop,
                format!("unknown mode {other:?}"),
            )),
        }
    }
}

processor!(Misbehave);
