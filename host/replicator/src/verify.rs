//! Source-versus-destination comparison: row counts and checksums per primary key range.
//!
//! Both tables are scanned once, in key order, side by side. Ranges are cut every
//! `rows_per_range` source rows (the boundary is the key of the next source row), so a
//! difference is reported as a small key range rather than "the tables differ". Checksums
//! cover every version of every cell, timestamps included.

use std::collections::VecDeque;
use std::fmt;

use md5::{Digest, Md5};

use ots_client::rows::{RangeQuery, RangeReader, ReadOptions};
use ots_client::{Client, ClientError};
use ots_protocol::model::{PrimaryKey, PrimaryKeyValue, Row};
use ots_protocol::plainbuffer;

/// Why a verification could not run (differences are a result, not an error).
#[derive(Debug, thiserror::Error)]
#[error("{action}: {error}")]
pub struct VerifyError {
    /// What was being done, naming the table.
    pub action: String,
    /// The failure.
    pub error: ClientError,
}

/// How to cut and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Source rows per compared range.
    pub rows_per_range: usize,
    /// Rows per GetRange request.
    pub page_size: i32,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            rows_per_range: 1000,
            page_size: 1000,
        }
    }
}

/// Count and checksum of one side of one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDigest {
    /// Rows in the range.
    pub rows: u64,
    /// MD5 (hex) over the rows' canonical encoding, in key order.
    pub checksum: String,
}

/// One compared key range `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeComparison {
    /// Inclusive start key.
    pub start: PrimaryKey,
    /// Exclusive end key.
    pub end: PrimaryKey,
    /// The source side.
    pub source: RangeDigest,
    /// The destination side.
    pub destination: RangeDigest,
}

impl RangeComparison {
    /// Whether both sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.source == self.destination
    }
}

impl fmt::Display for RangeComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {}): source {} rows ({}), destination {} rows ({})",
            KeyDisplay(&self.start),
            KeyDisplay(&self.end),
            self.source.rows,
            &self.source.checksum[..12],
            self.destination.rows,
            &self.destination.checksum[..12],
        )
    }
}

/// Shows a primary key as `(name=value, ...)`.
pub struct KeyDisplay<'a>(pub &'a PrimaryKey);

impl fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, column) in self.0.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=", column.name)?;
            match &column.value {
                PrimaryKeyValue::Integer(v) => write!(f, "{v}")?,
                PrimaryKeyValue::String(v) => write!(f, "{v:?}")?,
                PrimaryKeyValue::Binary(v) => write!(f, "0x{}", hex(v))?,
                PrimaryKeyValue::InfMin => f.write_str("-inf")?,
                PrimaryKeyValue::InfMax => f.write_str("+inf")?,
                PrimaryKeyValue::AutoIncrement => f.write_str("auto")?,
            }
        }
        f.write_str(")")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every compared range, in key order.
    pub ranges: Vec<RangeComparison>,
}

impl VerifyReport {
    /// Total source rows.
    pub fn source_rows(&self) -> u64 {
        self.ranges.iter().map(|r| r.source.rows).sum()
    }

    /// Total destination rows.
    pub fn destination_rows(&self) -> u64 {
        self.ranges.iter().map(|r| r.destination.rows).sum()
    }

    /// The ranges whose sides differ.
    pub fn differing(&self) -> impl Iterator<Item = &RangeComparison> {
        self.ranges.iter().filter(|r| !r.matches())
    }

    /// Whether the tables hold the same rows.
    pub fn is_match(&self) -> bool {
        self.differing().next().is_none()
    }
}

/// Totals, then each differing range, one per line.
impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let differing: Vec<_> = self.differing().collect();
        writeln!(
            f,
            "verify: {} ranges, source {} rows, destination {} rows, {} differing range(s)",
            self.ranges.len(),
            self.source_rows(),
            self.destination_rows(),
            differing.len()
        )?;
        for range in differing {
            writeln!(f, "  differs: {range}")?;
        }
        Ok(())
    }
}

/// A key-ordered stream of rows over a paged range read.
struct RowStream {
    reader: RangeReader,
    buffer: VecDeque<Row>,
    done: bool,
    table: String,
}

impl RowStream {
    fn new(
        client: &Client,
        table: &str,
        bounds: [PrimaryKey; 2],
        max_versions: i32,
        page: i32,
    ) -> Self {
        let [start, end] = bounds;
        let reader = client.get_range(RangeQuery {
            table: table.to_owned(),
            start,
            end,
            backward: false,
            limit: None,
            page_size: Some(page),
            options: ReadOptions {
                columns_to_get: Vec::new(),
                max_versions,
            },
        });
        Self {
            reader,
            buffer: VecDeque::new(),
            done: false,
            table: table.to_owned(),
        }
    }

    async fn fill(&mut self) -> Result<(), VerifyError> {
        while self.buffer.is_empty() && !self.done {
            match self.reader.next_page().await {
                Ok(Some(rows)) => self.buffer.extend(rows),
                Ok(None) => self.done = true,
                Err(error) => {
                    return Err(VerifyError {
                        action: format!("reading table {}", self.table),
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    async fn peek_key(&mut self) -> Result<Option<&PrimaryKey>, VerifyError> {
        self.fill().await?;
        Ok(self.buffer.front().map(|r| &r.primary_key))
    }

    async fn next(&mut self) -> Result<Option<Row>, VerifyError> {
        self.fill().await?;
        Ok(self.buffer.pop_front())
    }
}

/// Accumulates one side of a range.
struct Digester {
    rows: u64,
    context: Md5,
}

impl Digester {
    fn new() -> Self {
        Self {
            rows: 0,
            context: Md5::new(),
        }
    }

    fn add(&mut self, row: Row) {
        self.rows += 1;
        self.context.update(canonical_bytes(row));
    }

    fn finish(self) -> RangeDigest {
        RangeDigest {
            rows: self.rows,
            checksum: format!("{:x}", self.context.finalize()),
        }
    }
}

/// A row's bytes independent of the order cells were returned in: cells sorted by name, then
/// newest version first, PlainBuffer-encoded.
pub fn canonical_bytes(mut row: Row) -> Vec<u8> {
    row.cells.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| b.timestamp.cmp(&a.timestamp))
    });
    plainbuffer::encode_rows(&[row])
}

/// Compares `source_table` on `source` with `destination_table` on `destination`.
pub async fn verify(
    source: &Client,
    source_table: &str,
    destination: &Client,
    destination_table: &str,
    options: VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_view(
        source,
        source_table,
        destination,
        destination_table,
        options,
        &Some,
    )
    .await
}

/// What a processor should have made of a source row: the row as the destination should hold
/// it, or `None` when it should not be there.
pub type RowView = dyn Fn(Row) -> Option<Row> + Send + Sync;

/// Like [`verify`], but compares the destination with `view` of the source: how a filtering or
/// renaming processor is checked.
pub async fn verify_view(
    source: &Client,
    source_table: &str,
    destination: &Client,
    destination_table: &str,
    options: VerifyOptions,
    view: &RowView,
) -> Result<VerifyReport, VerifyError> {
    let description = source
        .describe_table(source_table)
        .await
        .map_err(|error| VerifyError {
            action: format!("describing source table {source_table}"),
            error,
        })?;
    let max_versions = description.table_options.max_versions.unwrap_or(1).max(1);
    let infinite = |value| description.table_meta.bound(value);
    let bounds = || {
        [
            infinite(PrimaryKeyValue::InfMin),
            infinite(PrimaryKeyValue::InfMax),
        ]
    };
    let mut src = RowStream::new(
        source,
        source_table,
        bounds(),
        max_versions,
        options.page_size,
    );
    let mut dst = RowStream::new(
        destination,
        destination_table,
        bounds(),
        max_versions,
        options.page_size,
    );

    let rows_per_range = options.rows_per_range.max(1);
    let mut ranges = Vec::new();
    let mut start = infinite(PrimaryKeyValue::InfMin);
    loop {
        let mut source_digest = Digester::new();
        while source_digest.rows < rows_per_range as u64 {
            match src.next().await? {
                Some(row) => {
                    if let Some(row) = view(row) {
                        source_digest.add(row);
                    }
                }
                None => break,
            }
        }
        let end = match src.peek_key().await? {
            Some(key) => key.clone(),
            None => infinite(PrimaryKeyValue::InfMax),
        };
        let last = end.0.iter().all(|c| c.value == PrimaryKeyValue::InfMax);
        let mut destination_digest = Digester::new();
        loop {
            match dst.peek_key().await? {
                Some(key) if last || *key < end => {}
                _ => break,
            }
            if let Some(row) = dst.next().await? {
                destination_digest.add(row);
            }
        }
        ranges.push(RangeComparison {
            start: std::mem::replace(&mut start, end.clone()),
            end,
            source: source_digest.finish(),
            destination: destination_digest.finish(),
        });
        if last {
            break;
        }
    }
    Ok(VerifyReport { ranges })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::{Cell, PrimaryKeyColumn, Value};

    fn row(cells: Vec<(&str, i64)>) -> Row {
        Row {
            primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                name: "id".into(),
                value: PrimaryKeyValue::Integer(1),
            }]),
            cells: cells
                .into_iter()
                .map(|(name, ts)| Cell {
                    name: name.into(),
                    value: Value::Integer(ts),
                    timestamp: Some(ts),
                })
                .collect(),
        }
    }

    #[test]
    fn canonical_bytes_ignore_cell_order_but_not_versions() {
        let a = row(vec![("b", 1), ("a", 2), ("a", 3)]);
        let b = row(vec![("a", 3), ("a", 2), ("b", 1)]);
        let c = row(vec![("a", 3), ("b", 1)]);
        assert_eq!(canonical_bytes(a.clone()), canonical_bytes(b));
        assert_ne!(canonical_bytes(a), canonical_bytes(c));
    }

    #[test]
    fn keys_display_readably() {
        let key = PrimaryKey(vec![
            PrimaryKeyColumn {
                name: "a".into(),
                value: PrimaryKeyValue::String("x".into()),
            },
            PrimaryKeyColumn {
                name: "b".into(),
                value: PrimaryKeyValue::InfMax,
            },
        ]);
        assert_eq!(KeyDisplay(&key).to_string(), "(a=\"x\", b=+inf)");
    }
}
