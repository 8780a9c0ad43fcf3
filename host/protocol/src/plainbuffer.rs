//! PlainBuffer: the row encoding Tablestore carries inside protobuf `bytes` fields.
//!
//! A buffer is a little-endian `u32` header (`0x75`) followed by rows. A row is a primary key
//! section, an optional data section of attribute cells, an optional delete marker and a row
//! checksum. Each cell carries a name, an optional value, an optional operation (delete one
//! version, delete all versions, increment), an optional timestamp and a cell checksum.
//!
//! [`PlainRow`] is the lossless view of one encoded row; the functions at the bottom convert
//! between it and the model's [`Row`] and [`RowChange`]. Decoding never panics: every length is
//! checked against what remains before anything is allocated.

use std::borrow::Cow;

use crate::crc8::{crc_bytes, crc_u8, crc_u32, crc_u64};
use crate::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, Row, RowChange,
    Value,
};

const HEADER: u32 = 0x75;

const TAG_ROW_PK: u8 = 0x01;
const TAG_ROW_DATA: u8 = 0x02;
const TAG_CELL: u8 = 0x03;
const TAG_CELL_NAME: u8 = 0x04;
const TAG_CELL_VALUE: u8 = 0x05;
const TAG_CELL_TYPE: u8 = 0x06;
const TAG_CELL_TIMESTAMP: u8 = 0x07;
const TAG_DELETE_ROW_MARKER: u8 = 0x08;
const TAG_ROW_CHECKSUM: u8 = 0x09;
const TAG_CELL_CHECKSUM: u8 = 0x0A;
const TAG_EXTENSION: u8 = 0x0B;
const TAG_SEQ_INFO: u8 = 0x0C;
const TAG_SEQ_INFO_EPOCH: u8 = 0x0D;
const TAG_SEQ_INFO_TS: u8 = 0x0E;
const TAG_SEQ_INFO_ROW_INDEX: u8 = 0x0F;
/// Bytes of a sequence-info body: epoch, timestamp and row index, each with its tag.
const SEQ_INFO_LEN: u32 = 1 + 4 + 1 + 8 + 1 + 4;

const VT_INTEGER: u8 = 0x00;
const VT_DOUBLE: u8 = 0x01;
const VT_BOOLEAN: u8 = 0x02;
const VT_STRING: u8 = 0x03;
const VT_BLOB: u8 = 0x07;
const VT_INF_MIN: u8 = 0x09;
const VT_INF_MAX: u8 = 0x0A;
const VT_AUTO_INCREMENT: u8 = 0x0B;

/// The operation a cell carries (the `TAG_CELL_TYPE` byte). A cell without one is a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellOp {
    /// Delete every version of the column.
    DeleteAllVersions,
    /// Delete the version named by the cell's timestamp.
    DeleteOneVersion,
    /// Add the cell's integer value to the column.
    Increment,
}

impl CellOp {
    fn code(self) -> u8 {
        match self {
            Self::DeleteAllVersions => 0x01,
            Self::DeleteOneVersion => 0x03,
            Self::Increment => 0x04,
        }
    }

    fn from_code(code: u8, offset: usize) -> Result<Self, PlainBufferError> {
        match code {
            0x01 => Ok(Self::DeleteAllVersions),
            0x03 => Ok(Self::DeleteOneVersion),
            0x04 => Ok(Self::Increment),
            _ => Err(PlainBufferError::UnknownCellOp { code, offset }),
        }
    }
}

/// One encoded attribute cell, exactly as it appears on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainCell {
    /// Column name.
    pub name: String,
    /// Cell value (absent for deletes).
    pub value: Option<Value>,
    /// Operation; `None` means put.
    pub op: Option<CellOp>,
    /// Version timestamp in milliseconds.
    pub timestamp: Option<i64>,
}

/// Where a stream record sits in its partition's log (the row extension of tunnel records).
///
/// Only stream (incremental) records carry it; full-data (base) records do not. The SDKs
/// report its `timestamp` as the record's timestamp. Field order gives the log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SequenceInfo {
    /// Log epoch.
    pub epoch: i32,
    /// Commit time of the write, in microseconds since the epoch.
    pub timestamp: i64,
    /// Index of the row within its write.
    pub row_index: i32,
}

/// One encoded row, exactly as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlainRow {
    /// Primary key columns in order.
    pub primary_key: PrimaryKey,
    /// Attribute cells in order.
    pub cells: Vec<PlainCell>,
    /// Whether the row carries the delete-row marker.
    pub delete_marker: bool,
    /// Sequence info of a stream record (not covered by the row checksum).
    pub sequence_info: Option<SequenceInfo>,
}

/// Why a PlainBuffer could not be decoded or a decoded row does not fit the expected shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlainBufferError {
    /// The buffer does not start with the PlainBuffer header.
    #[error("bad PlainBuffer header {found:#x} (expected {HEADER:#x})")]
    BadHeader {
        /// The header found.
        found: u32,
    },
    /// The buffer ends in the middle of an element.
    #[error("PlainBuffer truncated at offset {offset}: {needed} more byte(s) needed")]
    Truncated {
        /// Where the missing bytes should start.
        offset: usize,
        /// How many bytes were needed.
        needed: usize,
    },
    /// A tag that is not valid at this position.
    #[error("unexpected PlainBuffer tag {tag:#04x} at offset {offset} (expected {expected})")]
    UnexpectedTag {
        /// The tag found.
        tag: u8,
        /// Where it was found.
        offset: usize,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A length prefix larger than the bytes that remain.
    #[error("PlainBuffer length {length} at offset {offset} exceeds the {remaining} byte(s) left")]
    OversizedLength {
        /// The declared length.
        length: u64,
        /// Where the length was read.
        offset: usize,
        /// Bytes left after the length.
        remaining: usize,
    },
    /// A cell or row checksum that does not match the content.
    #[error(
        "PlainBuffer {what} checksum mismatch at offset {offset}: stored {stored:#04x}, computed {computed:#04x}"
    )]
    BadChecksum {
        /// `"cell"` or `"row"`.
        what: &'static str,
        /// Where the stored checksum was read.
        offset: usize,
        /// The checksum in the buffer.
        stored: u8,
        /// The checksum of the content.
        computed: u8,
    },
    /// A value type code that is unknown or not allowed here.
    #[error("unsupported PlainBuffer value type {code:#04x} at offset {offset} ({context})")]
    UnsupportedValueType {
        /// The type code.
        code: u8,
        /// Where it was read.
        offset: usize,
        /// `"primary key"` or `"attribute"`.
        context: &'static str,
    },
    /// A cell operation code that is unknown.
    #[error("unknown PlainBuffer cell operation {code:#04x} at offset {offset}")]
    UnknownCellOp {
        /// The operation code.
        code: u8,
        /// Where it was read.
        offset: usize,
    },
    /// A name or string value that is not UTF-8.
    #[error("invalid UTF-8 in PlainBuffer string at offset {offset}")]
    InvalidUtf8 {
        /// Where the string starts.
        offset: usize,
    },
    /// A value's declared size disagrees with its type.
    #[error(
        "PlainBuffer value at offset {offset} declares {declared} byte(s) but its type needs {actual}"
    )]
    ValueSizeMismatch {
        /// Where the value starts.
        offset: usize,
        /// Size from the prefix.
        declared: u32,
        /// Size the type implies.
        actual: u32,
    },
    /// The rows decode but do not form what the caller asked for.
    #[error("PlainBuffer row is not a valid {expected}: {reason}")]
    InvalidShape {
        /// What was expected, e.g. `"update row"`.
        expected: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes rows behind one header.
pub fn encode(rows: &[PlainRow]) -> Vec<u8> {
    let mut w = Writer::new();
    for row in rows {
        let cells = row.cells.iter().map(|c| CellRef {
            name: &c.name,
            value: c.value.as_ref().map(Cow::Borrowed),
            op: c.op,
            timestamp: c.timestamp,
        });
        w.row(
            &row.primary_key,
            cells,
            row.delete_marker,
            row.sequence_info,
        );
    }
    w.buf
}

/// Decodes a buffer into rows. An empty buffer holds no rows.
pub fn decode(buf: &[u8]) -> Result<Vec<PlainRow>, PlainBufferError> {
    let mut r = Reader::start(buf)?;
    let mut rows = Vec::new();
    while r.more_rows() {
        rows.push(PlainRow::from(r.row(Ok)?));
    }
    Ok(rows)
}

/// Encodes a primary key alone (GetRow, BatchGetRow and GetRange bounds).
pub fn encode_primary_key(primary_key: &PrimaryKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.row(primary_key, std::iter::empty(), false, None);
    w.buf
}

/// Decodes a buffer that holds exactly one primary key.
pub fn decode_primary_key(buf: &[u8]) -> Result<PrimaryKey, PlainBufferError> {
    let row = decode_single(buf, "primary key")?;
    if !row.cells.is_empty() || row.delete_marker {
        return Err(shape(
            "primary key",
            "row has attribute cells or a delete marker",
        ));
    }
    Ok(row.primary_key)
}

/// Encodes a row change the way the SDKs send PutRow, UpdateRow and DeleteRow payloads.
pub fn encode_row_change(change: &RowChange) -> Vec<u8> {
    encode_logged_change(change, None)
}

/// Encodes a row change with the sequence info of a stream record in the row's extension (a
/// tunnel record's row, [`crate::record::TunnelRecord`]).
pub fn encode_logged_change(change: &RowChange, sequence_info: Option<SequenceInfo>) -> Vec<u8> {
    let mut w = Writer::new();
    match change {
        RowChange::Put { primary_key, cells } => {
            w.row(
                primary_key,
                cells.iter().map(CellRef::put),
                false,
                sequence_info,
            );
        }
        RowChange::Update {
            primary_key,
            updates,
        } => w.row(
            primary_key,
            updates.iter().map(CellRef::update),
            false,
            sequence_info,
        ),
        RowChange::Delete { primary_key } => {
            w.row(primary_key, std::iter::empty(), true, sequence_info);
        }
    }
    w.buf
}

/// What kind of row change a payload is expected to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowChangeKind {
    /// PutRow: cells without operations.
    Put,
    /// UpdateRow: cells with operations.
    Update,
    /// DeleteRow: primary key and delete marker.
    Delete,
}

/// Decodes a PutRow/UpdateRow/DeleteRow payload (server side).
pub fn decode_row_change(buf: &[u8], kind: RowChangeKind) -> Result<RowChange, PlainBufferError> {
    let expected = match kind {
        RowChangeKind::Put => "put row",
        RowChangeKind::Update => "update row",
        RowChangeKind::Delete => "delete row",
    };
    Ok(decode_change(buf, kind, expected)?.0)
}

/// Decodes a buffer that must hold exactly one row, as a change of `kind`, with the row's
/// sequence info; `expected` names the buffer in errors. Each cell is read straight into the
/// change's type, with no intermediate row.
pub(crate) fn decode_change(
    buf: &[u8],
    kind: RowChangeKind,
    expected: &'static str,
) -> Result<(RowChange, Option<SequenceInfo>), PlainBufferError> {
    Ok(match kind {
        RowChangeKind::Put => {
            let row = decode_one(buf, expected, put_cell)?;
            let sequence_info = row.sequence_info;
            let Row { primary_key, cells } = row.into_row()?;
            (RowChange::Put { primary_key, cells }, sequence_info)
        }
        RowChangeKind::Update => {
            let row = decode_one(buf, expected, cell_update)?;
            if row.delete_marker {
                return Err(shape("update row", "row carries a delete marker"));
            }
            let change = RowChange::Update {
                primary_key: row.primary_key,
                updates: row.cells,
            };
            (change, row.sequence_info)
        }
        RowChangeKind::Delete => {
            let row = decode_one(buf, expected, |_| -> Result<(), _> {
                Err(shape("delete row", "row has attribute cells"))
            })?;
            let change = RowChange::Delete {
                primary_key: row.primary_key,
            };
            (change, row.sequence_info)
        }
    })
}

/// Encodes one row given as its key and cells: [`encode_rows`] of one row, without the row.
pub fn encode_row(primary_key: &PrimaryKey, cells: &[Cell]) -> Vec<u8> {
    let mut w = Writer::new();
    w.row(primary_key, cells.iter().map(CellRef::put), false, None);
    w.buf
}

/// Encodes rows as the service returns them from GetRow, GetRange and BatchGetRow.
pub fn encode_rows(rows: &[Row]) -> Vec<u8> {
    let mut w = Writer::new();
    for row in rows {
        w.row(
            &row.primary_key,
            row.cells.iter().map(CellRef::put),
            false,
            None,
        );
    }
    w.buf
}

/// Decodes rows as the service returns them (cells must be plain puts).
pub fn decode_rows(buf: &[u8]) -> Result<Vec<Row>, PlainBufferError> {
    let mut r = Reader::start(buf)?;
    let mut rows = Vec::new();
    while r.more_rows() {
        rows.push(r.row(put_cell)?.into_row()?);
    }
    Ok(rows)
}

/// Encodes a value as filters and conditions carry it: the type byte and the payload, without
/// the cell tag and length prefix of a row's cells.
pub fn encode_column_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Integer(i) => {
            out.push(VT_INTEGER);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(VT_DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Boolean(b) => {
            out.push(VT_BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::String(s) => {
            out.push(VT_STRING);
            out.extend_from_slice(&len32(s.len()).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Binary(b) => {
            out.push(VT_BLOB);
            out.extend_from_slice(&len32(b.len()).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
    out
}

/// Decodes a value in the form [`encode_column_value`] writes, which every SDK sends in a
/// `SingleColumnValueFilter` (Go `WriteCellValueWithoutLengthPrefix` in `tablestore/util.go`,
/// Python `PlainBufferBuilder.serialize_column_value`, Java
/// `buildColumnValueWithoutLengthPrefix`).
pub fn decode_column_value(buf: &[u8]) -> Result<Value, PlainBufferError> {
    let mut r = Reader { buf, pos: 0 };
    let value = match r.u8()? {
        VT_INTEGER => Value::Integer(r.i64()?),
        VT_DOUBLE => Value::Double(f64::from_bits(r.i64()? as u64)),
        VT_BOOLEAN => Value::Boolean(r.u8()? != 0),
        VT_STRING => {
            let len = r.length()?;
            Value::String(r.string(len)?)
        }
        VT_BLOB => {
            let len = r.length()?;
            Value::Binary(r.take(len)?.to_vec())
        }
        code => {
            return Err(PlainBufferError::UnsupportedValueType {
                code,
                offset: 0,
                context: "column value",
            });
        }
    };
    if r.pos != buf.len() {
        return Err(shape(
            "column value",
            format!("{} bytes after the value", buf.len() - r.pos),
        ));
    }
    Ok(value)
}

/// Decodes a buffer that must hold exactly one row; `expected` names it in errors.
pub(crate) fn decode_single(
    buf: &[u8],
    expected: &'static str,
) -> Result<PlainRow, PlainBufferError> {
    decode_one(buf, expected, Ok).map(PlainRow::from)
}

/// Reads the one row of `buf`, each cell made a `C` by `cell` as it is read.
fn decode_one<C>(
    buf: &[u8],
    expected: &'static str,
    cell: impl FnMut(PlainCell) -> Result<C, PlainBufferError>,
) -> Result<RowParts<C>, PlainBufferError> {
    let found = |rows: usize| shape(expected, format!("expected one row, found {rows}"));
    let mut r = Reader::start(buf)?;
    if !r.more_rows() {
        return Err(found(0));
    }
    let row = r.row(cell)?;
    if r.more_rows() {
        let mut rows = 1;
        while r.more_rows() {
            r.row(Ok)?;
            rows += 1;
        }
        return Err(found(rows));
    }
    Ok(row)
}

fn shape(expected: &'static str, reason: impl Into<String>) -> PlainBufferError {
    PlainBufferError::InvalidShape {
        expected,
        reason: reason.into(),
    }
}

/// A cell as the writer reads it, borrowed from a row, a change or a [`PlainCell`], so that
/// encoding copies bytes and allocates nothing per cell.
struct CellRef<'a> {
    name: &'a str,
    /// Borrowed, except an increment's delta, which the wire carries as an integer value.
    value: Option<Cow<'a, Value>>,
    op: Option<CellOp>,
    timestamp: Option<i64>,
}

impl<'a> CellRef<'a> {
    /// A stored version, or a cell of a PutRow.
    fn put(cell: &'a Cell) -> Self {
        CellRef {
            name: &cell.name,
            value: Some(Cow::Borrowed(&cell.value)),
            op: None,
            timestamp: cell.timestamp,
        }
    }

    /// A column operation of an UpdateRow.
    fn update(update: &'a ColumnUpdate) -> Self {
        let (value, op, timestamp) = match &update.op {
            ColumnOp::Put { value, timestamp } => (Some(Cow::Borrowed(value)), None, *timestamp),
            ColumnOp::DeleteOneVersion { timestamp } => {
                (None, Some(CellOp::DeleteOneVersion), Some(*timestamp))
            }
            ColumnOp::DeleteAllVersions => (None, Some(CellOp::DeleteAllVersions), None),
            ColumnOp::Increment { delta } => (
                Some(Cow::Owned(Value::Integer(*delta))),
                Some(CellOp::Increment),
                None,
            ),
        };
        CellRef {
            name: &update.name,
            value,
            op,
            timestamp,
        }
    }
}

impl From<RowParts<PlainCell>> for PlainRow {
    fn from(row: RowParts<PlainCell>) -> Self {
        PlainRow {
            primary_key: row.primary_key,
            cells: row.cells,
            delete_marker: row.delete_marker,
            sequence_info: row.sequence_info,
        }
    }
}

impl RowParts<Cell> {
    /// The row as reads return it and PutRow sends it: one without the delete marker.
    fn into_row(self) -> Result<Row, PlainBufferError> {
        if self.delete_marker {
            return Err(shape("row", "row carries a delete marker"));
        }
        Ok(Row {
            primary_key: self.primary_key,
            cells: self.cells,
        })
    }
}

/// A cell of a row as reads return it and PutRow sends it: a put with a value.
fn put_cell(cell: PlainCell) -> Result<Cell, PlainBufferError> {
    match (cell.op, cell.value) {
        (None, Some(value)) => Ok(Cell {
            name: cell.name,
            value,
            timestamp: cell.timestamp,
        }),
        (Some(op), _) => Err(shape(
            "row",
            format!("cell {:?} carries operation {op:?}", cell.name),
        )),
        (None, None) => Err(shape("row", format!("cell {:?} has no value", cell.name))),
    }
}

fn cell_update(cell: PlainCell) -> Result<ColumnUpdate, PlainBufferError> {
    let op = match (cell.op, cell.value, cell.timestamp) {
        (None, Some(value), timestamp) => ColumnOp::Put { value, timestamp },
        (Some(CellOp::DeleteOneVersion), _, Some(timestamp)) => {
            ColumnOp::DeleteOneVersion { timestamp }
        }
        (Some(CellOp::DeleteAllVersions), _, _) => ColumnOp::DeleteAllVersions,
        (Some(CellOp::Increment), Some(Value::Integer(delta)), _) => ColumnOp::Increment { delta },
        (op, value, timestamp) => {
            return Err(shape(
                "update row",
                format!(
                    "cell {:?}: operation {op:?} with value {value:?} and timestamp {timestamp:?}",
                    cell.name
                ),
            ));
        }
    };
    Ok(ColumnUpdate {
        name: cell.name,
        op,
    })
}

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A buffer that starts with the header.
    fn new() -> Self {
        Writer {
            buf: HEADER.to_le_bytes().to_vec(),
        }
    }

    fn row<'a>(
        &mut self,
        primary_key: &PrimaryKey,
        cells: impl Iterator<Item = CellRef<'a>>,
        delete_marker: bool,
        sequence_info: Option<SequenceInfo>,
    ) {
        let mut row_crc = 0u8;
        self.buf.push(TAG_ROW_PK);
        for column in &primary_key.0 {
            let crc = self.pk_cell(column);
            row_crc = crc_u8(row_crc, crc);
        }
        let mut cells = cells.peekable();
        if cells.peek().is_some() {
            self.buf.push(TAG_ROW_DATA);
            for cell in cells {
                let crc = self.cell(&cell);
                row_crc = crc_u8(row_crc, crc);
            }
        }
        if delete_marker {
            self.buf.push(TAG_DELETE_ROW_MARKER);
        }
        if let Some(seq) = sequence_info {
            self.buf.push(TAG_EXTENSION);
            self.buf
                .extend_from_slice(&(1 + 4 + SEQ_INFO_LEN).to_le_bytes());
            self.buf.push(TAG_SEQ_INFO);
            self.buf.extend_from_slice(&SEQ_INFO_LEN.to_le_bytes());
            self.buf.push(TAG_SEQ_INFO_EPOCH);
            self.buf.extend_from_slice(&seq.epoch.to_le_bytes());
            self.buf.push(TAG_SEQ_INFO_TS);
            self.buf.extend_from_slice(&seq.timestamp.to_le_bytes());
            self.buf.push(TAG_SEQ_INFO_ROW_INDEX);
            self.buf.extend_from_slice(&seq.row_index.to_le_bytes());
        }
        row_crc = crc_u8(row_crc, u8::from(delete_marker));
        self.buf.push(TAG_ROW_CHECKSUM);
        self.buf.push(row_crc);
    }

    fn name(&mut self, name: &str) -> u8 {
        self.buf.push(TAG_CELL);
        self.buf.push(TAG_CELL_NAME);
        self.buf.extend_from_slice(&len32(name.len()).to_le_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        crc_bytes(0, name.as_bytes())
    }

    fn pk_cell(&mut self, column: &PrimaryKeyColumn) -> u8 {
        let mut crc = self.name(&column.name);
        self.buf.push(TAG_CELL_VALUE);
        crc = match &column.value {
            PrimaryKeyValue::Integer(v) => self.integer(crc, *v),
            PrimaryKeyValue::String(s) => self.sized(crc, VT_STRING, s.as_bytes()),
            PrimaryKeyValue::Binary(b) => self.sized(crc, VT_BLOB, b),
            PrimaryKeyValue::InfMin => self.marker(crc, VT_INF_MIN),
            PrimaryKeyValue::InfMax => self.marker(crc, VT_INF_MAX),
            PrimaryKeyValue::AutoIncrement => self.marker(crc, VT_AUTO_INCREMENT),
        };
        self.buf.push(TAG_CELL_CHECKSUM);
        self.buf.push(crc);
        crc
    }

    fn cell(&mut self, cell: &CellRef<'_>) -> u8 {
        let mut crc = self.name(cell.name);
        if let Some(value) = &cell.value {
            self.buf.push(TAG_CELL_VALUE);
            crc = match value.as_ref() {
                Value::Integer(v) => self.integer(crc, *v),
                Value::String(s) => self.sized(crc, VT_STRING, s.as_bytes()),
                Value::Binary(b) => self.sized(crc, VT_BLOB, b),
                Value::Boolean(b) => {
                    self.buf.extend_from_slice(&2u32.to_le_bytes());
                    self.buf.push(VT_BOOLEAN);
                    self.buf.push(u8::from(*b));
                    crc_u8(crc_u8(crc, VT_BOOLEAN), u8::from(*b))
                }
                Value::Double(d) => {
                    let bits = d.to_bits();
                    self.buf.extend_from_slice(&9u32.to_le_bytes());
                    self.buf.push(VT_DOUBLE);
                    self.buf.extend_from_slice(&bits.to_le_bytes());
                    crc_u64(crc_u8(crc, VT_DOUBLE), bits)
                }
            };
        }
        // On the wire the operation precedes the timestamp; in the checksum it follows it.
        if let Some(op) = cell.op {
            self.buf.push(TAG_CELL_TYPE);
            self.buf.push(op.code());
        }
        if let Some(ts) = cell.timestamp {
            self.buf.push(TAG_CELL_TIMESTAMP);
            self.buf.extend_from_slice(&ts.to_le_bytes());
            crc = crc_u64(crc, ts as u64);
        }
        if let Some(op) = cell.op {
            crc = crc_u8(crc, op.code());
        }
        self.buf.push(TAG_CELL_CHECKSUM);
        self.buf.push(crc);
        crc
    }

    fn integer(&mut self, crc: u8, v: i64) -> u8 {
        self.buf.extend_from_slice(&9u32.to_le_bytes());
        self.buf.push(VT_INTEGER);
        self.buf.extend_from_slice(&v.to_le_bytes());
        crc_u64(crc_u8(crc, VT_INTEGER), v as u64)
    }

    fn sized(&mut self, crc: u8, vt: u8, bytes: &[u8]) -> u8 {
        let len = len32(bytes.len());
        self.buf.extend_from_slice(&(len + 5).to_le_bytes());
        self.buf.push(vt);
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(bytes);
        crc_bytes(crc_u32(crc_u8(crc, vt), len), bytes)
    }

    fn marker(&mut self, crc: u8, vt: u8) -> u8 {
        self.buf.extend_from_slice(&1u32.to_le_bytes());
        self.buf.push(vt);
        crc_u8(crc, vt)
    }
}

/// Lengths on the wire are 32-bit; the service limits keep every real value far below that,
/// and the encoder refuses to emit a silently wrong prefix.
fn len32(len: usize) -> u32 {
    u32::try_from(len).expect("PlainBuffer element longer than 4 GiB")
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A row as the reader reads it, its cells already in the caller's type.
struct RowParts<C> {
    primary_key: PrimaryKey,
    cells: Vec<C>,
    delete_marker: bool,
    sequence_info: Option<SequenceInfo>,
}

impl<'a> Reader<'a> {
    /// A reader past the header of `buf`; an empty buffer holds no rows.
    fn start(buf: &'a [u8]) -> Result<Self, PlainBufferError> {
        let mut r = Reader { buf, pos: 0 };
        if !buf.is_empty() {
            let header = r.u32()?;
            if header != HEADER {
                return Err(PlainBufferError::BadHeader { found: header });
            }
        }
        Ok(r)
    }

    /// Whether another row follows. The Node SDK sizes its buffer by an estimate and sends all
    /// of it, so zero bytes may follow the last row (aliyun-tablestore-nodejs-sdk
    /// `lib/protocol/plian_buffer_builder.js`: the stream is `new Buffer(capacity).fill(0)`).
    /// A row starts with a tag, never with 0x00.
    fn more_rows(&self) -> bool {
        self.pos < self.buf.len() && self.buf[self.pos..].iter().any(|&b| b != 0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PlainBufferError> {
        let remaining = self.buf.len() - self.pos;
        if n > remaining {
            return Err(PlainBufferError::Truncated {
                offset: self.pos,
                needed: n - remaining,
            });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, PlainBufferError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PlainBufferError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, PlainBufferError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn expect_tag(&mut self, tag: u8, expected: &'static str) -> Result<(), PlainBufferError> {
        let offset = self.pos;
        let found = self.u8()?;
        if found != tag {
            return Err(PlainBufferError::UnexpectedTag {
                tag: found,
                offset,
                expected,
            });
        }
        Ok(())
    }

    /// Reads a `u32` length and checks that many bytes remain.
    fn length(&mut self) -> Result<usize, PlainBufferError> {
        let offset = self.pos;
        let length = self.u32()?;
        let remaining = self.buf.len() - self.pos;
        if length as usize > remaining {
            return Err(PlainBufferError::OversizedLength {
                length: u64::from(length),
                offset,
                remaining,
            });
        }
        Ok(length as usize)
    }

    fn string(&mut self, len: usize) -> Result<String, PlainBufferError> {
        let offset = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| PlainBufferError::InvalidUtf8 { offset })
    }

    /// Reads a row, making each attribute cell a `C` with `cell` as it is read.
    fn row<C>(
        &mut self,
        mut cell: impl FnMut(PlainCell) -> Result<C, PlainBufferError>,
    ) -> Result<RowParts<C>, PlainBufferError> {
        self.expect_tag(TAG_ROW_PK, "row primary key tag")?;
        let mut row = RowParts {
            primary_key: PrimaryKey::default(),
            cells: Vec::new(),
            delete_marker: false,
            sequence_info: None,
        };
        let mut row_crc = 0u8;
        while self.peek() == Some(TAG_CELL) {
            let (column, crc) = self.pk_cell()?;
            row.primary_key.0.push(column);
            row_crc = crc_u8(row_crc, crc);
        }
        if self.peek() == Some(TAG_ROW_DATA) {
            self.pos += 1;
            while self.peek() == Some(TAG_CELL) {
                let (plain, crc) = self.cell()?;
                row.cells.push(cell(plain)?);
                row_crc = crc_u8(row_crc, crc);
            }
        }
        if self.peek() == Some(TAG_DELETE_ROW_MARKER) {
            self.pos += 1;
            row.delete_marker = true;
        }
        if self.peek() == Some(TAG_EXTENSION) {
            self.pos += 1;
            row.sequence_info = Some(self.extension()?);
        }
        row_crc = crc_u8(row_crc, u8::from(row.delete_marker));
        self.expect_tag(TAG_ROW_CHECKSUM, "row checksum tag")?;
        self.checksum("row", row_crc)?;
        Ok(row)
    }

    fn extension(&mut self) -> Result<SequenceInfo, PlainBufferError> {
        self.length()?;
        self.expect_tag(TAG_SEQ_INFO, "sequence info tag")?;
        self.length()?;
        self.expect_tag(TAG_SEQ_INFO_EPOCH, "sequence epoch tag")?;
        let epoch = self.u32()? as i32;
        self.expect_tag(TAG_SEQ_INFO_TS, "sequence timestamp tag")?;
        let timestamp = self.i64()?;
        self.expect_tag(TAG_SEQ_INFO_ROW_INDEX, "sequence row index tag")?;
        let row_index = self.u32()? as i32;
        Ok(SequenceInfo {
            epoch,
            timestamp,
            row_index,
        })
    }

    fn checksum(&mut self, what: &'static str, computed: u8) -> Result<(), PlainBufferError> {
        let offset = self.pos;
        let stored = self.u8()?;
        if stored != computed {
            return Err(PlainBufferError::BadChecksum {
                what,
                offset,
                stored,
                computed,
            });
        }
        Ok(())
    }

    fn name(&mut self) -> Result<(String, u8), PlainBufferError> {
        self.expect_tag(TAG_CELL, "cell tag")?;
        self.expect_tag(TAG_CELL_NAME, "cell name tag")?;
        let len = self.length()?;
        let name = self.string(len)?;
        let crc = crc_bytes(0, name.as_bytes());
        Ok((name, crc))
    }

    /// Reads the value header (size prefix and type code); returns the type, its offset and
    /// the declared payload size.
    fn value_header(&mut self) -> Result<(u8, usize, u32), PlainBufferError> {
        self.expect_tag(TAG_CELL_VALUE, "cell value tag")?;
        let declared = self.length()?;
        let offset = self.pos;
        let vt = self.u8()?;
        Ok((vt, offset, declared as u32))
    }

    fn check_size(offset: usize, declared: u32, actual: u32) -> Result<(), PlainBufferError> {
        if declared != actual {
            return Err(PlainBufferError::ValueSizeMismatch {
                offset,
                declared,
                actual,
            });
        }
        Ok(())
    }

    /// Reads a length-prefixed payload of a string or blob; returns the bytes and the crc.
    fn sized(
        &mut self,
        crc: u8,
        vt: u8,
        offset: usize,
        declared: u32,
    ) -> Result<(&'a [u8], u8), PlainBufferError> {
        let len = self.length()?;
        Self::check_size(offset, declared, len as u32 + 5)?;
        let bytes = self.take(len)?;
        Ok((
            bytes,
            crc_bytes(crc_u32(crc_u8(crc, vt), len as u32), bytes),
        ))
    }

    fn utf8(bytes: &[u8], offset: usize) -> Result<String, PlainBufferError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| PlainBufferError::InvalidUtf8 { offset })
    }

    fn pk_cell(&mut self) -> Result<(PrimaryKeyColumn, u8), PlainBufferError> {
        let (name, crc) = self.name()?;
        let (vt, offset, declared) = self.value_header()?;
        let (value, crc) = match vt {
            VT_INTEGER => {
                Self::check_size(offset, declared, 9)?;
                let v = self.i64()?;
                (
                    PrimaryKeyValue::Integer(v),
                    crc_u64(crc_u8(crc, vt), v as u64),
                )
            }
            VT_STRING => {
                let (bytes, crc) = self.sized(crc, vt, offset, declared)?;
                (PrimaryKeyValue::String(Self::utf8(bytes, offset)?), crc)
            }
            VT_BLOB => {
                let (bytes, crc) = self.sized(crc, vt, offset, declared)?;
                (PrimaryKeyValue::Binary(bytes.to_vec()), crc)
            }
            VT_INF_MIN | VT_INF_MAX | VT_AUTO_INCREMENT => {
                Self::check_size(offset, declared, 1)?;
                let value = match vt {
                    VT_INF_MIN => PrimaryKeyValue::InfMin,
                    VT_INF_MAX => PrimaryKeyValue::InfMax,
                    _ => PrimaryKeyValue::AutoIncrement,
                };
                (value, crc_u8(crc, vt))
            }
            code => {
                return Err(PlainBufferError::UnsupportedValueType {
                    code,
                    offset,
                    context: "primary key",
                });
            }
        };
        self.expect_tag(TAG_CELL_CHECKSUM, "cell checksum tag")?;
        self.checksum("cell", crc)?;
        Ok((PrimaryKeyColumn { name, value }, crc))
    }

    fn value(&mut self, crc: u8) -> Result<(Value, u8), PlainBufferError> {
        let (vt, offset, declared) = self.value_header()?;
        match vt {
            VT_INTEGER => {
                Self::check_size(offset, declared, 9)?;
                let v = self.i64()?;
                Ok((Value::Integer(v), crc_u64(crc_u8(crc, vt), v as u64)))
            }
            VT_DOUBLE => {
                Self::check_size(offset, declared, 9)?;
                let bits = self.i64()? as u64;
                Ok((
                    Value::Double(f64::from_bits(bits)),
                    crc_u64(crc_u8(crc, vt), bits),
                ))
            }
            VT_BOOLEAN => {
                Self::check_size(offset, declared, 2)?;
                let b = self.u8()?;
                Ok((Value::Boolean(b != 0), crc_u8(crc_u8(crc, vt), b)))
            }
            VT_STRING => {
                let (bytes, crc) = self.sized(crc, vt, offset, declared)?;
                Ok((Value::String(Self::utf8(bytes, offset)?), crc))
            }
            VT_BLOB => {
                let (bytes, crc) = self.sized(crc, vt, offset, declared)?;
                Ok((Value::Binary(bytes.to_vec()), crc))
            }
            code => Err(PlainBufferError::UnsupportedValueType {
                code,
                offset,
                context: "attribute",
            }),
        }
    }

    fn cell(&mut self) -> Result<(PlainCell, u8), PlainBufferError> {
        let (name, mut crc) = self.name()?;
        let mut cell = PlainCell {
            name,
            value: None,
            op: None,
            timestamp: None,
        };
        if self.peek() == Some(TAG_CELL_VALUE) {
            let (value, c) = self.value(crc)?;
            cell.value = Some(value);
            crc = c;
        }
        if self.peek() == Some(TAG_CELL_TYPE) {
            self.pos += 1;
            let offset = self.pos;
            cell.op = Some(CellOp::from_code(self.u8()?, offset)?);
        }
        if self.peek() == Some(TAG_CELL_TIMESTAMP) {
            self.pos += 1;
            let ts = self.i64()?;
            cell.timestamp = Some(ts);
            crc = crc_u64(crc, ts as u64);
        }
        if let Some(op) = cell.op {
            crc = crc_u8(crc, op.code());
        }
        self.expect_tag(TAG_CELL_CHECKSUM, "cell checksum tag")?;
        self.checksum("cell", crc)?;
        Ok((cell, crc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TunnelRecord;

    fn key(id: i64, name: &str) -> PrimaryKey {
        PrimaryKey(vec![
            PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::Integer(id),
            },
            PrimaryKeyColumn {
                name: "name".into(),
                value: PrimaryKeyValue::String(name.into()),
            },
        ])
    }

    fn every_change() -> Vec<(RowChange, RowChangeKind)> {
        vec![
            (
                RowChange::Put {
                    primary_key: key(1, "a"),
                    cells: vec![
                        Cell {
                            name: "i".into(),
                            value: Value::Integer(-7),
                            timestamp: Some(1_700_000_000_000),
                        },
                        Cell {
                            name: "s".into(),
                            value: Value::String("héllo".into()),
                            timestamp: None,
                        },
                        Cell {
                            name: "b".into(),
                            value: Value::Binary(vec![0, 255, 3]),
                            timestamp: Some(1),
                        },
                        Cell {
                            name: "t".into(),
                            value: Value::Boolean(true),
                            timestamp: None,
                        },
                        Cell {
                            name: "d".into(),
                            value: Value::Double(-2.5),
                            timestamp: Some(2),
                        },
                    ],
                },
                RowChangeKind::Put,
            ),
            (
                RowChange::Update {
                    primary_key: key(2, ""),
                    updates: vec![
                        ColumnUpdate {
                            name: "p".into(),
                            op: ColumnOp::Put {
                                value: Value::Integer(5),
                                timestamp: Some(10),
                            },
                        },
                        ColumnUpdate {
                            name: "one".into(),
                            op: ColumnOp::DeleteOneVersion { timestamp: 10 },
                        },
                        ColumnUpdate {
                            name: "all".into(),
                            op: ColumnOp::DeleteAllVersions,
                        },
                        ColumnUpdate {
                            name: "inc".into(),
                            op: ColumnOp::Increment { delta: 3 },
                        },
                    ],
                },
                RowChangeKind::Update,
            ),
            (
                RowChange::Delete {
                    primary_key: key(3, "z"),
                },
                RowChangeKind::Delete,
            ),
        ]
    }

    #[test]
    fn every_kind_of_row_change_roundtrips() {
        for (change, kind) in every_change() {
            let bytes = encode_row_change(&change);
            assert_eq!(decode_row_change(&bytes, kind).unwrap(), change);
        }
    }

    #[test]
    fn stream_records_carry_sequence_info_outside_the_checksum() {
        let (change, kind) = every_change().swap_remove(1);
        let plain = encode_row_change(&change);
        let sequence_info = SequenceInfo {
            epoch: 3,
            timestamp: 1_700_000_000_000_123,
            row_index: 7,
        };
        let with_seq = encode_logged_change(&change, Some(sequence_info));
        assert_eq!(
            plain.last(),
            with_seq.last(),
            "row checksum must not cover the extension"
        );
        assert_eq!(
            decode(&with_seq).unwrap()[0].sequence_info,
            Some(sequence_info)
        );
        assert_eq!(
            decode_change(&with_seq, kind, "stream record").unwrap(),
            (change, Some(sequence_info))
        );
    }

    #[test]
    fn range_bounds_roundtrip() {
        let pk = PrimaryKey(vec![
            PrimaryKeyColumn {
                name: "a".into(),
                value: PrimaryKeyValue::InfMin,
            },
            PrimaryKeyColumn {
                name: "b".into(),
                value: PrimaryKeyValue::InfMax,
            },
            PrimaryKeyColumn {
                name: "c".into(),
                value: PrimaryKeyValue::AutoIncrement,
            },
            PrimaryKeyColumn {
                name: "d".into(),
                value: PrimaryKeyValue::Binary(vec![1, 2]),
            },
        ]);
        assert_eq!(decode_primary_key(&encode_primary_key(&pk)).unwrap(), pk);
    }

    #[test]
    fn empty_buffer_holds_no_rows() {
        assert_eq!(decode_rows(&[]).unwrap(), vec![]);
        assert_eq!(decode_rows(&HEADER.to_le_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn every_corrupted_byte_is_an_error_or_a_different_valid_buffer() {
        for (change, _) in every_change() {
            let bytes = encode_row_change(&change);
            let original = decode(&bytes).unwrap();
            for i in 0..bytes.len() {
                for flip in [0x01u8, 0x80, 0xFF] {
                    let mut corrupted = bytes.clone();
                    corrupted[i] ^= flip;
                    if let Ok(rows) = decode(&corrupted) {
                        assert_ne!(rows, original, "flip at {i} went unnoticed");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_checksum_is_reported_with_both_values() {
        let mut bytes = encode_primary_key(&key(1, "a"));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x5A;
        assert!(matches!(
            decode(&bytes),
            Err(PlainBufferError::BadChecksum { what: "row", .. })
        ));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let (change, _) = &every_change()[0];
        let bytes = encode_row_change(change);
        // A bare header (4 bytes) is a valid buffer of zero rows; every other prefix is cut.
        for len in (1..bytes.len()).filter(|&len| len != 4) {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} decoded");
        }
    }

    #[test]
    fn unknown_tag_and_oversized_length_are_named() {
        let mut bytes = HEADER.to_le_bytes().to_vec();
        bytes.push(0x42);
        assert!(matches!(
            decode(&bytes),
            Err(PlainBufferError::UnexpectedTag {
                tag: 0x42,
                offset: 4,
                ..
            })
        ));

        let mut bytes = HEADER.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[TAG_ROW_PK, TAG_CELL, TAG_CELL_NAME]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(PlainBufferError::OversizedLength { length, .. }) if length == u64::from(u32::MAX)
        ));
    }

    #[test]
    fn zero_padding_after_the_last_row_is_ignored() {
        // The Node SDK sends its over-allocated buffer whole: the row, its checksum, then 0x00s
        // (aliyun-tablestore-nodejs-sdk lib/protocol/plian_buffer_builder.js).
        for (change, kind) in every_change() {
            let mut bytes = encode_row_change(&change);
            bytes.extend_from_slice(&[0; 24]);
            assert_eq!(decode_row_change(&bytes, kind).unwrap(), change);
        }
        let mut padded = encode_primary_key(&key(1, "a"));
        padded.push(0);
        assert_eq!(decode_primary_key(&padded).unwrap(), key(1, "a"));
        let mut garbage = encode_primary_key(&key(1, "a"));
        garbage.extend_from_slice(&[0, 0, 7]);
        assert!(
            decode(&garbage).is_err(),
            "only zeros may follow the last row"
        );
    }

    #[test]
    fn column_values_roundtrip_without_cell_framing() {
        for value in [
            Value::Integer(-7),
            Value::Double(2.5),
            Value::Boolean(true),
            Value::String("héllo".into()),
            Value::Binary(vec![0, 1, 2]),
        ] {
            let bytes = encode_column_value(&value);
            assert_eq!(decode_column_value(&bytes).unwrap(), value);
        }
        // What the Python SDK sends for the string "ab": type 0x03, u32 length, the bytes.
        assert_eq!(
            decode_column_value(&[3, 2, 0, 0, 0, b'a', b'b']).unwrap(),
            Value::String("ab".into())
        );
        assert!(decode_column_value(&[0, 1, 2]).is_err(), "short integer");
        assert!(decode_column_value(&[2, 1, 9]).is_err(), "trailing byte");
        assert!(
            decode_column_value(&[9]).is_err(),
            "INF_MIN is no column value"
        );
    }

    #[test]
    fn bad_header_is_rejected() {
        assert_eq!(
            decode(&[1, 0, 0, 0]),
            Err(PlainBufferError::BadHeader { found: 1 })
        );
    }

    #[test]
    fn shape_errors_name_the_problem() {
        let delete = encode_row_change(&RowChange::Delete {
            primary_key: key(1, "a"),
        });
        let err = decode_rows(&delete).unwrap_err();
        assert!(err.to_string().contains("delete marker"), "{err}");
    }

    #[test]
    fn stream_record_rows_roundtrip_for_every_record_type() {
        for (i, (change, _)) in every_change().into_iter().enumerate() {
            let record = TunnelRecord {
                change,
                sequence_info: (i % 2 == 0).then_some(SequenceInfo {
                    epoch: 1,
                    timestamp: 1_700_000_000_000_000,
                    row_index: i as i32,
                }),
            };
            assert_eq!(TunnelRecord::decode(&record.encode()).unwrap(), record);
        }
        let origin = PlainRow {
            primary_key: key(1, "a"),
            cells: vec![
                PlainCell {
                    name: "old".into(),
                    value: Some(Value::Integer(4)),
                    op: None,
                    timestamp: Some(8),
                },
                PlainCell {
                    name: "gone".into(),
                    value: None,
                    op: Some(CellOp::DeleteAllVersions),
                    timestamp: None,
                },
            ],
            ..PlainRow::default()
        };
        assert_eq!(
            decode_single(&encode(std::slice::from_ref(&origin)), "origin row")
                .unwrap()
                .cells,
            origin.cells
        );
        let two_rows = encode(&[PlainRow::default(), PlainRow::default()]);
        assert!(matches!(
            TunnelRecord::decode(&crate::pb::tunnel::Record {
                action_type: crate::pb::tunnel::ActionType::PutRow as i32,
                record: two_rows,
                origin_record: None,
            }),
            Err(PlainBufferError::InvalidShape { .. })
        ));
    }

    /// A xorshift64 generator: deterministic, so a failing case reproduces from the seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn string(&mut self) -> String {
            const ALPHABET: [char; 6] = ['a', 'Z', '0', 'é', '✓', '\0'];
            (0..self.below(6))
                .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
                .collect()
        }

        fn bytes(&mut self) -> Vec<u8> {
            (0..self.below(6)).map(|_| self.next() as u8).collect()
        }

        fn timestamp(&mut self) -> Option<i64> {
            (self.below(2) == 0).then(|| (self.next() >> 1) as i64)
        }

        fn primary_key(&mut self) -> PrimaryKey {
            PrimaryKey(
                (0..1 + self.below(4))
                    .map(|i| PrimaryKeyColumn {
                        name: format!("pk{i}{}", self.string()),
                        value: match self.below(6) {
                            0 => PrimaryKeyValue::Integer(self.next() as i64),
                            1 => PrimaryKeyValue::String(self.string()),
                            2 => PrimaryKeyValue::Binary(self.bytes()),
                            3 => PrimaryKeyValue::InfMin,
                            4 => PrimaryKeyValue::InfMax,
                            _ => PrimaryKeyValue::AutoIncrement,
                        },
                    })
                    .collect(),
            )
        }

        fn value(&mut self) -> Value {
            match self.below(5) {
                0 => Value::Integer(self.next() as i64),
                1 => Value::String(self.string()),
                2 => Value::Binary(self.bytes()),
                3 => Value::Boolean(self.below(2) == 0),
                _ => {
                    // NaN never equals itself; every other bit pattern roundtrips by value.
                    let d = f64::from_bits(self.next());
                    Value::Double(if d.is_nan() { -0.0 } else { d })
                }
            }
        }

        fn cells(&mut self) -> Vec<Cell> {
            (0..self.below(5))
                .map(|_| Cell {
                    name: self.string(),
                    value: self.value(),
                    timestamp: self.timestamp(),
                })
                .collect()
        }

        fn change(&mut self) -> (RowChange, RowChangeKind) {
            let primary_key = self.primary_key();
            match self.below(3) {
                0 => (
                    RowChange::Put {
                        primary_key,
                        cells: self.cells(),
                    },
                    RowChangeKind::Put,
                ),
                1 => {
                    let updates = (0..self.below(5))
                        .map(|_| ColumnUpdate {
                            name: self.string(),
                            op: match self.below(4) {
                                0 => ColumnOp::Put {
                                    value: self.value(),
                                    timestamp: self.timestamp(),
                                },
                                1 => ColumnOp::DeleteOneVersion {
                                    timestamp: self.next() as i64,
                                },
                                2 => ColumnOp::DeleteAllVersions,
                                _ => ColumnOp::Increment {
                                    delta: self.next() as i64,
                                },
                            },
                        })
                        .collect();
                    (
                        RowChange::Update {
                            primary_key,
                            updates,
                        },
                        RowChangeKind::Update,
                    )
                }
                _ => (RowChange::Delete { primary_key }, RowChangeKind::Delete),
            }
        }
    }

    #[test]
    fn generated_rows_and_changes_roundtrip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let (change, kind) = rng.change();
            let bytes = encode_row_change(&change);
            assert_eq!(decode_row_change(&bytes, kind).unwrap(), change);
            assert_eq!(
                encode_row_change(&change),
                bytes,
                "encoding is deterministic"
            );

            let record = TunnelRecord {
                change,
                sequence_info: (rng.below(2) == 0).then(|| SequenceInfo {
                    epoch: rng.next() as i32,
                    timestamp: rng.next() as i64,
                    row_index: rng.next() as i32,
                }),
            };
            assert_eq!(TunnelRecord::decode(&record.encode()).unwrap(), record);

            let rows: Vec<Row> = (0..rng.below(4))
                .map(|_| Row {
                    primary_key: rng.primary_key(),
                    cells: rng.cells(),
                })
                .collect();
            let bytes = encode_rows(&rows);
            assert_eq!(decode_rows(&bytes).unwrap(), rows);
            let pk = rng.primary_key();
            assert_eq!(decode_primary_key(&encode_primary_key(&pk)).unwrap(), pk);
        }
    }
}
