//! Any byte string either decodes or is rejected with an error, never a panic; a decoded buffer
//! re-encodes to bytes that decode to the same rows. The typed decoders (read rows, row
//! changes, tunnel records) run on the same input so their shape checks are fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ots_protocol::pb::tunnel::{ActionType, Record};
use ots_protocol::plainbuffer::{self, RowChangeKind};
use ots_protocol::record::TunnelRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = plainbuffer::decode(data) {
        let again =
            plainbuffer::decode(&plainbuffer::encode(&rows)).expect("re-encoded rows decode");
        assert_eq!(format!("{again:?}"), format!("{rows:?}"));
    }
    let _ = plainbuffer::decode_rows(data);
    let _ = plainbuffer::decode_primary_key(data);
    for (kind, action) in [
        (RowChangeKind::Put, ActionType::PutRow),
        (RowChangeKind::Update, ActionType::UpdateRow),
        (RowChangeKind::Delete, ActionType::DeleteRow),
    ] {
        let _ = plainbuffer::decode_row_change(data, kind);
        let _ = TunnelRecord::decode(&Record {
            action_type: action as i32,
            record: data.to_vec(),
            origin_record: None,
        });
    }
});
