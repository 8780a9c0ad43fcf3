//! Tunnel records: what a tunnel channel delivers, one row change each, in its wire form (a
//! protobuf [`pb::Record`] holding one PlainBuffer row) and as the model's [`RowChange`].
//!
//! The local server encodes them (its stream log and base-data reads) and the client decodes
//! them; both go through [`TunnelRecord`], so the two sides cannot drift apart.

use crate::model::RowChange;
use crate::pb::tunnel as pb;
use crate::plainbuffer::{self, PlainBufferError, RowChangeKind, SequenceInfo};

/// One record of a tunnel channel.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelRecord {
    /// The change, with the cell operations and timestamps of the source write.
    pub change: RowChange,
    /// Where the record sits in its partition's log; stream records only (base-data records,
    /// the table's rows at tunnel creation, have none).
    pub sequence_info: Option<SequenceInfo>,
}

impl TunnelRecord {
    /// The wire form: the action type beside the row, and the sequence info in the row's
    /// extension.
    pub fn encode(&self) -> pb::Record {
        Self::encode_parts(&self.change, self.sequence_info)
    }

    /// [`TunnelRecord::encode`] of a record not built: the change borrowed, not cloned.
    pub fn encode_parts(change: &RowChange, sequence_info: Option<SequenceInfo>) -> pb::Record {
        let action = match change {
            RowChange::Put { .. } => pb::ActionType::PutRow,
            RowChange::Update { .. } => pb::ActionType::UpdateRow,
            RowChange::Delete { .. } => pb::ActionType::DeleteRow,
        };
        pb::Record {
            action_type: action as i32,
            record: plainbuffer::encode_logged_change(change, sequence_info),
            origin_record: None,
        }
    }

    /// The wire form of a base-data record whose row is already PlainBuffer-encoded as reads
    /// return rows ([`plainbuffer::encode_rows`] of one row): those are the bytes of a put of
    /// the row without sequence info, so the record is what [`TunnelRecord::encode`] gives.
    pub fn encode_base_row(row: Vec<u8>) -> pb::Record {
        pb::Record {
            action_type: pb::ActionType::PutRow as i32,
            record: row,
            origin_record: None,
        }
    }

    /// Reads a record as a channel returns it. An UPDATE record's cells carry their operations
    /// (put, delete one version, delete all versions) and the timestamps of the source write.
    pub fn decode(record: &pb::Record) -> Result<Self, PlainBufferError> {
        let kind = match pb::ActionType::try_from(record.action_type) {
            Ok(pb::ActionType::PutRow) => RowChangeKind::Put,
            Ok(pb::ActionType::UpdateRow) => RowChangeKind::Update,
            Ok(pb::ActionType::DeleteRow) => RowChangeKind::Delete,
            Err(_) => {
                return Err(PlainBufferError::InvalidShape {
                    expected: "tunnel record",
                    reason: format!("unknown action type {}", record.action_type),
                });
            }
        };
        let (change, sequence_info) =
            plainbuffer::decode_change(&record.record, kind, "tunnel record")?;
        Ok(Self {
            change,
            sequence_info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue};
    use crate::plainbuffer::PlainRow;

    #[test]
    fn records_round_trip_with_their_sequence_info() {
        let record = TunnelRecord {
            change: RowChange::Update {
                primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::String("k".into()),
                }]),
                updates: vec![ColumnUpdate {
                    name: "c".into(),
                    op: ColumnOp::DeleteOneVersion { timestamp: 9 },
                }],
            },
            sequence_info: Some(SequenceInfo {
                epoch: 1,
                timestamp: 2,
                row_index: 3,
            }),
        };
        let wire = record.encode();
        assert_eq!(wire.action_type, pb::ActionType::UpdateRow as i32);
        assert_eq!(TunnelRecord::decode(&wire).unwrap(), record);

        let bad = pb::Record {
            action_type: 99,
            ..wire
        };
        assert!(
            TunnelRecord::decode(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown action type 99")
        );
    }

    #[test]
    fn a_base_row_encoded_as_reads_return_it_is_the_record_of_its_put() {
        let row = crate::model::Row {
            primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::Integer(7),
            }]),
            cells: vec![crate::model::Cell {
                name: "v".into(),
                value: crate::model::Value::String("x".into()),
                timestamp: Some(1_700_000_000_000),
            }],
        };
        let record = TunnelRecord {
            change: RowChange::Put {
                primary_key: row.primary_key.clone(),
                cells: row.cells.clone(),
            },
            sequence_info: None,
        };
        assert_eq!(
            TunnelRecord::encode_base_row(plainbuffer::encode_rows(&[row])),
            record.encode()
        );
    }

    #[test]
    fn a_record_holds_exactly_one_row() {
        let row = PlainRow {
            primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::Integer(1),
            }]),
            delete_marker: true,
            ..PlainRow::default()
        };
        let two = pb::Record {
            action_type: pb::ActionType::DeleteRow as i32,
            record: plainbuffer::encode(&[row.clone(), row]),
            origin_record: None,
        };
        let error = TunnelRecord::decode(&two).unwrap_err().to_string();
        assert!(error.contains("expected one row, found 2"), "{error}");
    }
}
