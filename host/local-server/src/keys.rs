//! Order-preserving byte encoding of primary keys, so that redb's byte order over the
//! encoded keys is Tablestore's row order.
//!
//! Each column is a type byte followed by its payload: `0x00` for -inf, `0x10` + sign-flipped
//! big-endian integer, `0x20`/`0x30` + escaped string/binary bytes (`0x00` becomes `0x00 0xFF`,
//! the end is `0x00 0x01`), `0xFF` for +inf. A table's keys are prefixed by its name and `0x00`.

use ots_protocol::model::{PrimaryKey, PrimaryKeyValue};

const INF_MIN: u8 = 0x00;
const INTEGER: u8 = 0x10;
const STRING: u8 = 0x20;
const BINARY: u8 = 0x30;
const INF_MAX: u8 = 0xFF;

/// The first byte string of a table's key space.
pub fn table_prefix(table: &str) -> Vec<u8> {
    let mut out = table.as_bytes().to_vec();
    out.push(0);
    out
}

/// The byte string just past a table's key space.
pub fn table_end(table: &str) -> Vec<u8> {
    let mut out = table.as_bytes().to_vec();
    out.push(1);
    out
}

/// Encodes a table's primary key into a storage key.
pub fn encode(table: &str, pk: &PrimaryKey) -> Vec<u8> {
    let mut out = table_prefix(table);
    for column in &pk.0 {
        match &column.value {
            PrimaryKeyValue::InfMin => out.push(INF_MIN),
            PrimaryKeyValue::InfMax => out.push(INF_MAX),
            PrimaryKeyValue::Integer(i) => {
                out.push(INTEGER);
                out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
            }
            PrimaryKeyValue::String(s) => escaped(&mut out, STRING, s.as_bytes()),
            PrimaryKeyValue::Binary(b) => escaped(&mut out, BINARY, b),
            // Replaced by a concrete value before a key is ever stored or compared.
            PrimaryKeyValue::AutoIncrement => out.push(INF_MAX),
        }
    }
    out
}

fn escaped(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::PrimaryKeyColumn;

    fn pk(values: Vec<PrimaryKeyValue>) -> PrimaryKey {
        PrimaryKey(
            values
                .into_iter()
                .map(|value| PrimaryKeyColumn {
                    name: "k".into(),
                    value,
                })
                .collect(),
        )
    }

    #[test]
    fn byte_order_is_row_order() {
        use PrimaryKeyValue::*;
        let keys = vec![
            pk(vec![InfMin, InfMin]),
            pk(vec![Integer(i64::MIN), String("".into())]),
            pk(vec![Integer(-1), String("a".into())]),
            pk(vec![Integer(-1), String("a\0".into())]),
            pk(vec![Integer(-1), String("a\0b".into())]),
            pk(vec![Integer(-1), String("ab".into())]),
            pk(vec![Integer(0), InfMax]),
            pk(vec![Integer(7), Binary(vec![])]),
            pk(vec![Integer(7), Binary(vec![0])]),
            pk(vec![Integer(i64::MAX), Binary(vec![255])]),
            pk(vec![InfMax, InfMax]),
        ];
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "model order {:?}", pair);
            assert!(
                encode("t", &pair[0]) < encode("t", &pair[1]),
                "byte order {:?}",
                pair
            );
        }
        assert!(table_prefix("t") <= encode("t", &keys[0]));
        assert!(encode("t", &keys[keys.len() - 1]) < table_end("t"));
    }
}
