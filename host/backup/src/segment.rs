//! Segments: the objects a backup writes its rows and changes in, each checksummed so that a
//! damaged, truncated or swapped object is refused before anything is restored from it.
//!
//! A segment is `OTSBKSEG` (8 bytes), its kind (1 byte: 1 snapshot rows, 2 change log), its
//! entry count (u32, big-endian), the entries, and the SHA-256 of everything before it (32
//! bytes). An entry is its channel (u16 length + UTF-8; empty in a snapshot) and its record
//! (u32 length + the Tunnel Service's protobuf `Record`, PlainBuffer inside): a snapshot row
//! is a Put of every version of the row, a change is the record as the tunnel delivered it,
//! its SequenceInfo included. Pure; the backup store moves the bytes.

use ots_protocol::pb::tunnel::Record;
use ots_protocol::record::TunnelRecord;
use prost::Message;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"OTSBKSEG";
const DIGEST_LEN: usize = 32;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Rows of a snapshot.
    Snapshot,
    /// Records of the change log.
    Log,
}

impl SegmentKind {
    fn byte(self) -> u8 {
        match self {
            Self::Snapshot => 1,
            Self::Log => 2,
        }
    }
}

/// One entry: a record and the channel it came from (empty for snapshot rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The tunnel channel of a change; empty for a snapshot row.
    pub channel: String,
    /// The row or change.
    pub record: TunnelRecord,
}

/// Why bytes are not a valid segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Shorter than the smallest segment, or an entry runs past the end.
    #[error("truncated: {0}")]
    Truncated(String),
    /// It does not start with the segment magic.
    #[error("not a backup segment (bad magic)")]
    BadMagic,
    /// The stored checksum does not match the contents.
    #[error("checksum mismatch: the contents hash to {found}, the segment says {stored}")]
    Checksum {
        /// The checksum stored in the segment.
        stored: String,
        /// The checksum of the contents.
        found: String,
    },
    /// A segment of the other kind.
    #[error("a {found:?} segment where a {expected:?} one was expected")]
    Kind {
        /// The kind asked for.
        expected: SegmentKind,
        /// The kind found.
        found: SegmentKind,
    },
    /// An entry that does not decode.
    #[error("entry {index}: {reason}")]
    Entry {
        /// Index of the entry.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The lowercase hex SHA-256 of `bytes`: a segment's identity in the manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes entries as a segment of `kind`.
pub fn encode(kind: SegmentKind, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 64);
    out.extend_from_slice(MAGIC);
    out.push(kind.byte());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for entry in entries {
        let channel = entry.channel.as_bytes();
        out.extend_from_slice(&(channel.len() as u16).to_be_bytes());
        out.extend_from_slice(channel);
        let record = entry.record.encode().encode_to_vec();
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(&record);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Reads bytes from a cursor, naming what ran short.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SegmentError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(SegmentError::Truncated(format!(
                "{what} needs {n} bytes at offset {}, {} left",
                self.at,
                self.bytes.len() - self.at
            )));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self, what: &str) -> Result<usize, SegmentError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn u32(&mut self, what: &str) -> Result<usize, SegmentError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
}

/// Decodes a segment of `kind`, checking its magic, checksum and every entry.
pub fn decode(kind: SegmentKind, bytes: &[u8]) -> Result<Vec<Entry>, SegmentError> {
    if bytes.len() < MAGIC.len() + 1 + 4 + DIGEST_LEN {
        return Err(SegmentError::Truncated(format!(
            "{} bytes is shorter than an empty segment",
            bytes.len()
        )));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    let (body, stored) = bytes.split_at(bytes.len() - DIGEST_LEN);
    let found = Sha256::digest(body);
    if found.as_slice() != stored {
        return Err(SegmentError::Checksum {
            stored: hex(stored),
            found: hex(&found),
        });
    }
    let mut cursor = Cursor {
        bytes: body,
        at: MAGIC.len(),
    };
    let found_kind = match cursor.take(1, "the kind")?[0] {
        1 => SegmentKind::Snapshot,
        2 => SegmentKind::Log,
        other => {
            return Err(SegmentError::Truncated(format!(
                "unknown kind byte {other}"
            )));
        }
    };
    if found_kind != kind {
        return Err(SegmentError::Kind {
            expected: kind,
            found: found_kind,
        });
    }
    let count = cursor.u32("the entry count")?;
    let mut entries = Vec::with_capacity(count.min(1 << 20));
    for index in 0..count {
        let entry_error = |reason: String| SegmentError::Entry { index, reason };
        let len = cursor.u16("a channel length")?;
        let channel = std::str::from_utf8(cursor.take(len, "a channel")?)
            .map_err(|e| entry_error(format!("channel is not UTF-8: {e}")))?
            .to_owned();
        let len = cursor.u32("a record length")?;
        let record = Record::decode(cursor.take(len, "a record")?)
            .map_err(|e| entry_error(format!("record: {e}")))?;
        let record =
            TunnelRecord::decode(&record).map_err(|e| entry_error(format!("record: {e}")))?;
        entries.push(Entry { channel, record });
    }
    if cursor.at != body.len() {
        return Err(SegmentError::Truncated(format!(
            "{} bytes after the last entry",
            body.len() - cursor.at
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::{
        Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value,
    };
    use ots_protocol::plainbuffer::SequenceInfo;

    fn entry(id: i64, channel: &str) -> Entry {
        Entry {
            channel: channel.into(),
            record: TunnelRecord {
                change: RowChange::Put {
                    primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                        name: "id".into(),
                        value: PrimaryKeyValue::Integer(id),
                    }]),
                    cells: vec![Cell {
                        name: "v".into(),
                        value: Value::String(format!("value {id}")),
                        timestamp: Some(1_700_000_000_000 + id),
                    }],
                },
                sequence_info: (!channel.is_empty()).then_some(SequenceInfo {
                    epoch: 0,
                    timestamp: 1_700_000_000_000_000 + id,
                    row_index: id as i32,
                }),
            },
        }
    }

    #[test]
    fn entries_round_trip_with_channels_and_sequence_infos() {
        let entries = vec![
            entry(1, "stream-0"),
            entry(2, "stream-3"),
            entry(3, "stream-0"),
        ];
        let bytes = encode(SegmentKind::Log, &entries);
        assert_eq!(decode(SegmentKind::Log, &bytes).unwrap(), entries);
        let rows = vec![entry(7, ""), entry(8, "")];
        let bytes = encode(SegmentKind::Snapshot, &rows);
        assert_eq!(decode(SegmentKind::Snapshot, &bytes).unwrap(), rows);
        assert!(
            decode(SegmentKind::Snapshot, &encode(SegmentKind::Snapshot, &[]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn damage_of_any_kind_is_refused() {
        let bytes = encode(
            SegmentKind::Log,
            &[entry(1, "stream-0"), entry(2, "stream-0")],
        );
        for at in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(
                decode(SegmentKind::Log, &flipped).is_err(),
                "a flipped bit at {at} is noticed"
            );
        }
        for len in [0, 10, bytes.len() - 1] {
            assert!(
                decode(SegmentKind::Log, &bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        assert_eq!(
            decode(SegmentKind::Snapshot, &bytes).unwrap_err(),
            SegmentError::Kind {
                expected: SegmentKind::Snapshot,
                found: SegmentKind::Log
            }
        );
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert_eq!(
            decode(SegmentKind::Log, &wrong).unwrap_err(),
            SegmentError::BadMagic
        );
    }
}
