//! A chain of processors (`[[processors]]`): each batch goes through them in order, each in
//! its own sandbox with its own limits, options and dead-letter file.
//!
//! What one stage returns is what the next one reads: every row change becomes a record with
//! the sequence of the source record it came from, so name changes, drops and replacements
//! compose and a later stage still tells stream records from base data. A failing stage fails
//! the whole batch (nothing of it is written), with the stage's guest named in the error;
//! records any stage skips are returned for that stage's dead-letter sink.

use std::borrow::Cow;
use std::sync::Arc;

use ots_protocol::record::TunnelRecord;

use super::{Changes, LoadError, Processor, ProcessorError, StageReport, load};
use crate::config::ProcessorConfig;

/// Processors run one after another over each batch.
pub struct Chain {
    stages: Vec<Arc<dyn Processor>>,
    name: String,
}

impl Chain {
    /// A chain of `stages`, run in order; at least one.
    pub fn new(stages: Vec<Arc<dyn Processor>>) -> Self {
        assert!(!stages.is_empty(), "a chain has at least one processor");
        let name = stages
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" → ");
        Self { stages, name }
    }
}

impl Processor for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError> {
        let (first, rest) = self.stages.split_first().expect("never empty");
        let mut changes = first.process(records)?;
        for stage in rest {
            if changes.rows.is_empty() {
                break;
            }
            let inputs: Vec<TunnelRecord> = changes
                .rows
                .into_iter()
                .zip(&changes.origins)
                .map(|(change, &origin)| TunnelRecord {
                    change: change.into_owned(),
                    sequence_info: records[origin].sequence_info,
                })
                .collect();
            let mut next = stage.process(&inputs)?;
            changes.skipped.append(&mut next.skipped);
            // A change keeps the table an earlier stage routed it to unless this one routes it
            // elsewhere: to a later stage, `none` is where the record it reads was going.
            let tables = next
                .tables
                .into_iter()
                .zip(&next.origins)
                .map(|(table, &i)| table.or_else(|| changes.tables[i].clone()))
                .collect();
            changes = Changes {
                origins: next.origins.iter().map(|&i| changes.origins[i]).collect(),
                // A later stage's kept changes borrow `inputs`, which end with this stage.
                rows: next
                    .rows
                    .into_iter()
                    .map(|row| Cow::Owned(row.into_owned()))
                    .collect(),
                tables,
                skipped: changes.skipped,
            };
        }
        Ok(changes)
    }

    /// The last stage that names a target table decides it.
    fn target_table(&self) -> Option<&str> {
        self.stages.iter().rev().find_map(|s| s.target_table())
    }

    fn fingerprint(&self) -> Option<String> {
        let parts = self
            .stages
            .iter()
            .map(|s| s.fingerprint())
            .collect::<Option<Vec<_>>>()?;
        Some(parts.join("+"))
    }

    fn routed_tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = Vec::new();
        for table in self.stages.iter().flat_map(|s| s.routed_tables()) {
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
        tables
    }

    fn stages(&self) -> Vec<StageReport> {
        self.stages
            .iter()
            .flat_map(|s| s.stages())
            .enumerate()
            .map(|(stage, report)| StageReport { stage, ..report })
            .collect()
    }
}

/// Why a processor of the configured list could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("loading the processor {processor}")]
pub struct ChainLoadError {
    /// The processor's choice as the config spells it (`processors[1].file = "mask.wasm"`).
    pub processor: String,
    /// What went wrong.
    #[source]
    pub source: LoadError,
}

/// Loads the configured processors: the one processor itself, or a [`Chain`] of several.
pub fn load_chain(
    configs: &[ProcessorConfig],
    source_table: &str,
) -> Result<Arc<dyn Processor>, ChainLoadError> {
    let mut stages = configs
        .iter()
        .map(|config| {
            load(config, source_table)
                .map(|p| p as Arc<dyn Processor>)
                .map_err(|source| ChainLoadError {
                    processor: config.to_string(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if stages.len() == 1 {
        return Ok(stages.remove(0));
    }
    Ok(Arc::new(Chain::new(stages)))
}

#[cfg(test)]
mod tests {
    use ots_protocol::model::{
        Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange,
        Value,
    };
    use ots_protocol::plainbuffer::SequenceInfo;

    use super::*;

    /// A native stage: drops records whose key is odd, and turns each even one into two
    /// changes (itself, and a copy at key + 1000 routed to the table `copies`).
    struct EvenTwice;

    /// A native stage: renames column `a` to `b` and records which sequences it saw.
    struct RenameA {
        seen: std::sync::Mutex<Vec<Option<SequenceInfo>>>,
    }

    fn key(change: &RowChange) -> i64 {
        match change.primary_key().0[0].value {
            PrimaryKeyValue::Integer(i) => i,
            _ => unreachable!(),
        }
    }

    fn put(id: i64) -> RowChange {
        RowChange::Put {
            primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::Integer(id),
            }]),
            cells: vec![Cell {
                name: "a".into(),
                value: Value::Integer(id),
                timestamp: Some(1),
            }],
        }
    }

    impl Processor for EvenTwice {
        fn name(&self) -> &str {
            "even-twice"
        }
        fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError> {
            let mut out = Changes::default();
            for (i, r) in records.iter().enumerate() {
                if key(&r.change) % 2 == 0 {
                    out.rows.push(Cow::Borrowed(&r.change));
                    out.rows.push(Cow::Owned(put(key(&r.change) + 1000)));
                    out.origins.extend([i, i]);
                    out.tables.extend([None, Some(Arc::from("copies"))]);
                }
            }
            Ok(out)
        }
        fn target_table(&self) -> Option<&str> {
            Some("first")
        }
    }

    impl Processor for RenameA {
        fn name(&self) -> &str {
            "rename-a"
        }
        fn process<'a>(&self, records: &'a [TunnelRecord]) -> Result<Changes<'a>, ProcessorError> {
            self.seen
                .lock()
                .unwrap()
                .extend(records.iter().map(|r| r.sequence_info));
            let mut out = Changes::of_records(records);
            for row in &mut out.rows {
                let RowChange::Put { cells, .. } = row.to_mut() else {
                    unreachable!()
                };
                for c in cells {
                    c.name = "b".into();
                }
            }
            Ok(out)
        }
    }

    fn sequence(row_index: i32) -> Option<SequenceInfo> {
        Some(SequenceInfo {
            epoch: 1,
            timestamp: 100,
            row_index,
        })
    }

    #[test]
    fn stages_compose_and_later_stages_see_the_source_sequence() {
        let rename = Arc::new(RenameA {
            seen: Default::default(),
        });
        let chain = Chain::new(vec![Arc::new(EvenTwice), rename.clone()]);
        assert_eq!(chain.name(), "even-twice → rename-a");
        let records: Vec<TunnelRecord> = (0..4)
            .map(|i| TunnelRecord {
                change: put(i),
                sequence_info: sequence(i as i32),
            })
            .collect();
        let out = chain.process(&records).unwrap();
        let keys: Vec<i64> = out.rows.iter().map(|r| key(r)).collect();
        assert_eq!(keys, [0, 1000, 2, 1002]);
        assert_eq!(out.origins, [0, 0, 2, 2], "origins index the chain's input");
        let copies = Some(Arc::from("copies"));
        assert_eq!(
            out.tables,
            [None, copies.clone(), None, copies],
            "a later stage that keeps a change keeps its table"
        );
        assert!(
            out.rows
                .iter()
                .all(|r| matches!(&**r, RowChange::Put { cells, .. } if cells[0].name == "b"))
        );
        assert_eq!(
            *rename.seen.lock().unwrap(),
            [sequence(0), sequence(0), sequence(2), sequence(2)]
        );
        assert_eq!(chain.target_table(), Some("first"));
    }

    #[test]
    fn a_stage_left_nothing_stops_the_chain_early() {
        let rename = Arc::new(RenameA {
            seen: Default::default(),
        });
        let chain = Chain::new(vec![Arc::new(EvenTwice), rename.clone()]);
        let odd = [TunnelRecord {
            change: RowChange::Update {
                primary_key: put(1).primary_key().clone(),
                updates: vec![ColumnUpdate {
                    name: "a".into(),
                    op: ColumnOp::DeleteAllVersions,
                }],
            },
            sequence_info: sequence(0),
        }];
        assert_eq!(chain.process(&odd).unwrap(), Changes::default());
        assert!(rename.seen.lock().unwrap().is_empty());
    }
}
