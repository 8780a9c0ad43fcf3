//! Records the sandbox test binaries build their batches from.

use std::borrow::Cow;

use ots_protocol::model::{PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange};
use ots_protocol::plainbuffer::SequenceInfo;
use ots_protocol::record::TunnelRecord;

/// The key `(region="eu", id=id)`.
pub fn key(id: i64) -> PrimaryKey {
    PrimaryKey(vec![
        PrimaryKeyColumn {
            name: "region".into(),
            value: PrimaryKeyValue::String("eu".into()),
        },
        PrimaryKeyColumn {
            name: "id".into(),
            value: PrimaryKeyValue::Integer(id),
        },
    ])
}

/// Stream position `n` of epoch 1.
pub fn seq(n: i32) -> Option<SequenceInfo> {
    Some(SequenceInfo {
        epoch: 1,
        timestamp: 1_700_000_000_000_000 + i64::from(n),
        row_index: n,
    })
}

/// The records' own changes: what a guest that keeps them all gives.
pub fn changes(records: &[TunnelRecord]) -> Vec<Cow<'_, RowChange>> {
    records.iter().map(|r| Cow::Borrowed(&r.change)).collect()
}

/// Row changes a batch gave, owned, to compare with changes built by a test.
pub fn owned(changes: Vec<Cow<'_, RowChange>>) -> Vec<RowChange> {
    changes.into_iter().map(Cow::into_owned).collect()
}
