//! The Tablestore data model as plain Rust values.
//!
//! These types are what PlainBuffer rows decode into and encode from; the client, the local
//! server, the tunnel worker and the sandbox all speak them.

use std::cmp::Ordering;

/// The type of a primary key column, as declared in a table schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimaryKeyType {
    /// 64-bit signed integer.
    Integer,
    /// UTF-8 string.
    String,
    /// Raw bytes.
    Binary,
}

/// The value of one primary key column.
///
/// `InfMin`/`InfMax` only appear in range bounds; `AutoIncrement` only in writes to a table
/// whose column is declared auto-increment (the server fills it in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PrimaryKeyValue {
    /// 64-bit signed integer.
    Integer(i64),
    /// UTF-8 string.
    String(String),
    /// Raw bytes.
    Binary(Vec<u8>),
    /// Smaller than every value (range bounds only).
    InfMin,
    /// Larger than every value (range bounds only).
    InfMax,
    /// Placeholder the server replaces with the next auto-increment value.
    AutoIncrement,
}

impl PrimaryKeyValue {
    /// The schema type of this value, or `None` for the special markers.
    pub fn key_type(&self) -> Option<PrimaryKeyType> {
        match self {
            Self::Integer(_) => Some(PrimaryKeyType::Integer),
            Self::String(_) => Some(PrimaryKeyType::String),
            Self::Binary(_) => Some(PrimaryKeyType::Binary),
            Self::InfMin | Self::InfMax | Self::AutoIncrement => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::InfMin => 0,
            Self::Integer(_) | Self::String(_) | Self::Binary(_) | Self::AutoIncrement => 1,
            Self::InfMax => 2,
        }
    }
}

/// Tablestore's ordering: `InfMin` < any value < `InfMax`; integers numerically, strings and
/// binaries bytewise. Values of different concrete types compare by type (they never meet in
/// one well-formed table).
impl Ord for PrimaryKeyValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use PrimaryKeyValue::*;
        match (self, other) {
            (Integer(a), Integer(b)) => a.cmp(b),
            (String(a), String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Binary(a), Binary(b)) => a.cmp(b),
            _ => self
                .rank()
                .cmp(&other.rank())
                .then_with(|| type_order(self).cmp(&type_order(other))),
        }
    }
}

fn type_order(v: &PrimaryKeyValue) -> u8 {
    match v {
        PrimaryKeyValue::Integer(_) => 0,
        PrimaryKeyValue::String(_) => 1,
        PrimaryKeyValue::Binary(_) => 2,
        PrimaryKeyValue::AutoIncrement => 3,
        PrimaryKeyValue::InfMin | PrimaryKeyValue::InfMax => 4,
    }
}

impl PartialOrd for PrimaryKeyValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One named primary key column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrimaryKeyColumn {
    /// Column name.
    pub name: String,
    /// Column value.
    pub value: PrimaryKeyValue,
}

/// A full primary key: its columns in schema order. Ordered column by column by value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PrimaryKey(pub Vec<PrimaryKeyColumn>);

impl Ord for PrimaryKey {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            match a.value.cmp(&b.value) {
                Ordering::Equal => continue,
                ord => return ord,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for PrimaryKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The value of an attribute cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 64-bit signed integer.
    Integer(i64),
    /// UTF-8 string.
    String(String),
    /// Raw bytes.
    Binary(Vec<u8>),
    /// Boolean.
    Boolean(bool),
    /// IEEE-754 double.
    Double(f64),
}

/// One version of an attribute column as stored or read.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Column name.
    pub name: String,
    /// Cell value.
    pub value: Value,
    /// Version timestamp in milliseconds since the epoch; `None` lets the server assign one.
    pub timestamp: Option<i64>,
}

/// A row as read: its primary key and attribute cells (several versions of one column may
/// appear, newest first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// The row's primary key.
    pub primary_key: PrimaryKey,
    /// Attribute cells.
    pub cells: Vec<Cell>,
}

/// What an update does to one attribute column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnOp {
    /// Write a version (`timestamp: None` lets the server assign it).
    Put {
        /// New value.
        value: Value,
        /// Version timestamp in ms, or `None` for server time.
        timestamp: Option<i64>,
    },
    /// Delete the one version with this timestamp.
    DeleteOneVersion {
        /// The version to delete, in ms.
        timestamp: i64,
    },
    /// Delete every version of the column.
    DeleteAllVersions,
    /// Atomically add to an integer column (server-side increment).
    Increment {
        /// The amount to add.
        delta: i64,
    },
}

/// One column operation of an update.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnUpdate {
    /// Column name.
    pub name: String,
    /// What to do with it.
    pub op: ColumnOp,
}

/// A change to one row: the unit of PutRow/UpdateRow/DeleteRow, of BatchWriteRow entries and
/// of stream records.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    /// Replace the whole row with these cells.
    Put {
        /// Target row.
        primary_key: PrimaryKey,
        /// Cells of the new row.
        cells: Vec<Cell>,
    },
    /// Apply column operations to the row (creating it if absent).
    Update {
        /// Target row.
        primary_key: PrimaryKey,
        /// Operations in order.
        updates: Vec<ColumnUpdate>,
    },
    /// Delete the whole row.
    Delete {
        /// Target row.
        primary_key: PrimaryKey,
    },
}

impl RowChange {
    /// The primary key of the changed row.
    pub fn primary_key(&self) -> &PrimaryKey {
        match self {
            Self::Put { primary_key, .. }
            | Self::Update { primary_key, .. }
            | Self::Delete { primary_key } => primary_key,
        }
    }
}

/// The row existence expectation of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowExistence {
    /// Write regardless.
    #[default]
    Ignore,
    /// Fail unless the row exists.
    ExpectExist,
    /// Fail if the row exists.
    ExpectNotExist,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(values: &[PrimaryKeyValue]) -> PrimaryKey {
        PrimaryKey(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| PrimaryKeyColumn {
                    name: format!("pk{i}"),
                    value: v.clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn primary_keys_order_like_the_service() {
        use PrimaryKeyValue::*;
        let mut keys = vec![
            pk(&[Integer(2), String("a".into())]),
            pk(&[InfMax, InfMax]),
            pk(&[Integer(-5), InfMax]),
            pk(&[Integer(2), InfMin]),
            pk(&[Integer(2), String("B".into())]),
            pk(&[InfMin, InfMin]),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                pk(&[InfMin, InfMin]),
                pk(&[Integer(-5), InfMax]),
                pk(&[Integer(2), InfMin]),
                pk(&[Integer(2), String("B".into())]),
                pk(&[Integer(2), String("a".into())]),
                pk(&[InfMax, InfMax]),
            ]
        );
    }
}
