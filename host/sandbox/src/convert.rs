//! Between the host's model and the WIT types: records are lowered into a batch (names
//! interned, only what the guest reads), and the guest's output is lifted back into row changes
//! after validation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use ots_protocol::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value,
};
use ots_protocol::record::TunnelRecord;

use crate::bindings as wit;

/// The largest string or binary value a guest may write (the service's cell limit).
pub const MAX_VALUE_BYTES: usize = 2 << 20;
/// The longest column name the service accepts.
pub const MAX_NAME_BYTES: usize = 255;

/// A failure tied to one record of the batch (by index) or to the batch as a whole.
pub type Blame = (Option<usize>, String);

/// Interns column names, expecting each record to repeat the previous one's names in order.
#[derive(Default)]
struct Interner {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    previous: Vec<u32>,
}

impl Interner {
    fn id(&mut self, position: usize, name: &str) -> u32 {
        if let Some(&id) = self.previous.get(position)
            && self.names[id as usize] == name
        {
            return id;
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(name.to_owned());
                self.ids.insert(name.to_owned(), id);
                id
            }
        };
        if position < self.previous.len() {
            self.previous[position] = id;
        } else {
            self.previous.push(id);
        }
        id
    }
}

/// What the guest declared it reads.
pub struct Reads {
    /// Whether records carry their key.
    pub primary_key: bool,
    /// `None`: every column; `Some(list)`: only these (empty: none).
    pub columns: Option<Vec<String>>,
}

impl From<&wit::Interest> for Reads {
    fn from(interest: &wit::Interest) -> Self {
        Reads {
            primary_key: interest.primary_key,
            columns: match &interest.columns {
                wit::ColumnInterest::All => None,
                wit::ColumnInterest::None => Some(Vec::new()),
                wit::ColumnInterest::Named(names) => Some(names.clone()),
            },
        }
    }
}

/// Builds the batch the guest sees.
pub fn lower(table: &str, records: &[TunnelRecord], reads: &Reads) -> Result<wit::Batch, Blame> {
    let mut interner = Interner::default();
    let mut wanted: Vec<bool> = Vec::new();
    let mut is_wanted = |interner: &Interner, id: u32| -> bool {
        let id = id as usize;
        while wanted.len() <= id {
            let name = &interner.names[wanted.len()];
            wanted.push(
                reads
                    .columns
                    .as_ref()
                    .is_none_or(|list| list.contains(name)),
            );
        }
        wanted[id]
    };
    let key_names = records
        .first()
        .map(|r| {
            let key = &r.change.primary_key().0;
            key.iter()
                .enumerate()
                .map(|(i, k)| interner.id(i, &k.name))
                .collect()
        })
        .unwrap_or_default();
    let mut lowered = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let key = &record.change.primary_key().0;
        let mut primary_key = Vec::new();
        for (i, column) in key.iter().enumerate() {
            let name = interner.id(i, &column.name);
            if reads.primary_key {
                let value = key_value(&column.value).ok_or_else(|| {
                    (
                        Some(index),
                        format!("key column `{}` holds a range marker", column.name),
                    )
                })?;
                primary_key.push(wit::KeyColumn { name, value });
            }
        }
        let primary_key = reads.primary_key.then_some(primary_key);
        let offset = key.len();
        let mut columns = Vec::new();
        let kind = match &record.change {
            RowChange::Put { cells, .. } => {
                for (i, cell) in cells.iter().enumerate() {
                    let name = interner.id(offset + i, &cell.name);
                    if is_wanted(&interner, name) {
                        columns.push(wit::Column {
                            name,
                            op: wit::ColumnOp::Put(value(&cell.value)),
                            timestamp: cell.timestamp,
                        });
                    }
                }
                wit::ChangeKind::Put
            }
            RowChange::Update { updates, .. } => {
                for (i, update) in updates.iter().enumerate() {
                    let name = interner.id(offset + i, &update.name);
                    if is_wanted(&interner, name) {
                        columns.push(column(name, &update.op));
                    }
                }
                wit::ChangeKind::Update
            }
            RowChange::Delete { .. } => wit::ChangeKind::Delete,
        };
        lowered.push(wit::StreamRecord {
            kind,
            primary_key,
            columns: (!columns.is_empty()).then_some(columns),
            sequence: record.sequence_info.map(|s| wit::SequenceInfo {
                epoch: s.epoch,
                timestamp: s.timestamp,
                row_index: s.row_index,
            }),
        });
    }
    Ok(wit::Batch {
        table: table.to_owned(),
        names: interner.names,
        key_names,
        records: lowered,
    })
}

fn key_value(value: &PrimaryKeyValue) -> Option<wit::Value> {
    match value {
        PrimaryKeyValue::Integer(i) => Some(wit::Value::Integer(*i)),
        PrimaryKeyValue::String(s) => Some(wit::Value::String(s.clone())),
        PrimaryKeyValue::Binary(b) => Some(wit::Value::Binary(b.clone())),
        PrimaryKeyValue::InfMin | PrimaryKeyValue::InfMax | PrimaryKeyValue::AutoIncrement => None,
    }
}

fn value(value: &Value) -> wit::Value {
    match value {
        Value::Integer(i) => wit::Value::Integer(*i),
        Value::String(s) => wit::Value::String(s.clone()),
        Value::Binary(b) => wit::Value::Binary(b.clone()),
        Value::Boolean(b) => wit::Value::Boolean(*b),
        Value::Double(d) => wit::Value::Double(*d),
    }
}

fn column(name: u32, op: &ColumnOp) -> wit::Column {
    let (op, timestamp) = match op {
        ColumnOp::Put {
            value: v,
            timestamp,
        } => (wit::ColumnOp::Put(value(v)), *timestamp),
        ColumnOp::DeleteOneVersion { timestamp } => {
            (wit::ColumnOp::DeleteOneVersion, Some(*timestamp))
        }
        ColumnOp::DeleteAllVersions => (wit::ColumnOp::DeleteAllVersions, None),
        ColumnOp::Increment { delta } => (wit::ColumnOp::Increment(*delta), None),
    };
    wit::Column {
        name,
        op,
        timestamp,
    }
}

/// Whether `name` is a valid Tablestore column name.
pub fn valid_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "column name of {} bytes (at most {MAX_NAME_BYTES})",
            name.len()
        ));
    }
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "column name {name:?} (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok(())
}

/// The final names of the batch's name ids after the guest's renames and removals.
struct Names {
    /// By id: the name written, or `None` when the column is removed.
    finals: Vec<Option<String>>,
    /// The source names that changed, and what they became.
    changed: HashMap<String, Option<String>>,
}

impl Names {
    fn resolve(
        batch: &wit::Batch,
        added: Vec<String>,
        changes: Vec<wit::NameChange>,
    ) -> Result<Self, String> {
        for name in &added {
            valid_name(name)?;
        }
        let mut finals: Vec<Option<String>> =
            batch.names.iter().cloned().chain(added).map(Some).collect();
        let mut changed = HashMap::new();
        for change in changes {
            let id = change.name as usize;
            let Some(slot) = finals.get_mut(id) else {
                return Err(format!("name change refers to unknown name id {id}"));
            };
            if batch.key_names.contains(&change.name) {
                return Err(format!(
                    "renames or removes primary key column `{}`",
                    batch.names[id]
                ));
            }
            if let Some(new) = &change.new_name {
                valid_name(new)?;
            }
            if let Some(old) = batch.names.get(id) {
                changed.insert(old.clone(), change.new_name.clone());
            }
            *slot = change.new_name;
        }
        Ok(Names { finals, changed })
    }

    fn get(&self, id: u32) -> Result<Option<&str>, String> {
        self.finals
            .get(id as usize)
            .map(|n| n.as_deref())
            .ok_or_else(|| format!("unknown name id {id}"))
    }

    /// `change` with the renames and removals applied: `change` itself, not a copy, when the
    /// guest changed no name, so a kept record is written from the record without cloning it.
    ///
    /// An update that touched only removed columns still creates the row where the source's
    /// update did (an update creates a missing row), so it becomes deletions of those columns:
    /// it writes none of their data, and the destination stays the source without them.
    /// `None` in the one case that cannot be expressed: when every removed column's name is
    /// also another column's new name.
    fn apply<'a>(&self, change: &'a RowChange) -> Option<Cow<'a, RowChange>> {
        if self.changed.is_empty() {
            return Some(Cow::Borrowed(change));
        }
        let rename = |name: &str| -> Option<String> {
            match self.changed.get(name) {
                Some(new) => new.clone(),
                None => Some(name.to_owned()),
            }
        };
        Some(Cow::Owned(match change {
            RowChange::Put { primary_key, cells } => RowChange::Put {
                primary_key: primary_key.clone(),
                cells: cells
                    .iter()
                    .filter_map(|c| {
                        rename(&c.name).map(|name| Cell {
                            name,
                            value: c.value.clone(),
                            timestamp: c.timestamp,
                        })
                    })
                    .collect(),
            },
            RowChange::Update {
                primary_key,
                updates: change_updates,
            } => {
                let updates: Vec<ColumnUpdate> = change_updates
                    .iter()
                    .filter_map(|u| {
                        rename(&u.name).map(|name| ColumnUpdate {
                            name,
                            op: u.op.clone(),
                        })
                    })
                    .collect();
                if updates.is_empty() {
                    return self.touch(primary_key, change_updates).map(Cow::Owned);
                }
                RowChange::Update {
                    primary_key: primary_key.clone(),
                    updates,
                }
            }
            RowChange::Delete { .. } => change.clone(),
        }))
    }

    /// An update of `primary_key` deleting the removed columns `updates` touched, skipping
    /// names that other columns are renamed to.
    fn touch(&self, primary_key: &PrimaryKey, updates: &[ColumnUpdate]) -> Option<RowChange> {
        let taken = |name: &str| {
            self.changed
                .values()
                .any(|new| new.as_deref() == Some(name))
        };
        let mut names: Vec<&str> = updates
            .iter()
            .map(|u| u.name.as_str())
            .filter(|name| !taken(name))
            .collect();
        names.sort_unstable();
        names.dedup();
        (!names.is_empty()).then(|| RowChange::Update {
            primary_key: primary_key.clone(),
            updates: names
                .into_iter()
                .map(|name| ColumnUpdate {
                    name: name.to_owned(),
                    op: ColumnOp::DeleteAllVersions,
                })
                .collect(),
        })
    }
}

/// A validated row change of the guest's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifted<'a> {
    /// The index in the batch of the record it came from (a later stage of a chain needs the
    /// record's sequence).
    pub origin: usize,
    /// The table it was routed to, one of the processor's `tables`; `None` for the
    /// replication's destination.
    pub table: Option<Arc<str>>,
    /// The change: borrowed when it is a kept record's own change, as it came.
    pub change: Cow<'a, RowChange>,
}

/// Turns the guest's output for `records` into the row changes to write, validating it: every
/// routed change must name one of `tables`.
pub fn lift<'a>(
    records: &'a [TunnelRecord],
    batch: &wit::Batch,
    output: wit::RoutedOutput,
    tables: &[Arc<str>],
) -> Result<Vec<Lifted<'a>>, Blame> {
    let names =
        Names::resolve(batch, output.added_names, output.name_changes).map_err(|m| (None, m))?;
    let kept = |origin: usize, record: &'a TunnelRecord| {
        names.apply(&record.change).map(|change| Lifted {
            origin,
            table: None,
            change,
        })
    };
    match output.outcome {
        wit::RoutedOutcome::AllKept => Ok(records
            .iter()
            .enumerate()
            .filter_map(|(index, r)| kept(index, r))
            .collect()),
        wit::RoutedOutcome::Actions(actions) => {
            if actions.len() != records.len() {
                return Err((
                    None,
                    format!(
                        "{} actions for a batch of {} records",
                        actions.len(),
                        records.len()
                    ),
                ));
            }
            let mut changes = Vec::with_capacity(records.len());
            for (index, (record, action)) in records.iter().zip(actions).enumerate() {
                match action {
                    wit::RoutedAction::Keep => changes.extend(kept(index, record)),
                    wit::RoutedAction::KeepIn(targets) => {
                        for target in targets {
                            let table = route(tables, target).map_err(|m| (Some(index), m))?;
                            changes.extend(kept(index, record).map(|c| Lifted { table, ..c }));
                        }
                    }
                    wit::RoutedAction::Drop => {}
                    wit::RoutedAction::Replace(list) => {
                        for routed in list {
                            let table =
                                route(tables, routed.table).map_err(|m| (Some(index), m))?;
                            let change =
                                row_change(&names, record.change.primary_key(), routed.change)
                                    .map_err(|m| (Some(index), m))?;
                            if writes_something(&change) {
                                changes.push(Lifted {
                                    origin: index,
                                    table,
                                    change: Cow::Owned(change),
                                });
                            }
                        }
                    }
                }
            }
            Ok(changes)
        }
    }
}

/// The allowed table a routed change names, if it names one.
fn route(tables: &[Arc<str>], table: Option<String>) -> Result<Option<Arc<str>>, String> {
    let Some(table) = table else {
        return Ok(None);
    };
    match tables.iter().find(|t| ***t == *table) {
        Some(allowed) => Ok(Some(allowed.clone())),
        None if tables.is_empty() => Err(format!(
            "routes a change to table `{table}`, but its config lists no `tables` to route to"
        )),
        None => Err(format!(
            "routes a change to table `{table}`, which is not among its `tables` ({})",
            tables
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn row_change(
    names: &Names,
    source_key: &PrimaryKey,
    change: wit::RowChange,
) -> Result<RowChange, String> {
    if change.primary_key.len() != source_key.0.len() {
        return Err(format!(
            "primary key has {} columns, the table's has {}",
            change.primary_key.len(),
            source_key.0.len()
        ));
    }
    let mut key = Vec::with_capacity(change.primary_key.len());
    for (column, expected) in change.primary_key.into_iter().zip(&source_key.0) {
        let name = names.get(column.name)?.unwrap_or_default();
        if name != expected.name {
            return Err(format!(
                "primary key column `{name}` where the table has `{}`",
                expected.name
            ));
        }
        let value = match column.value {
            wit::Value::Integer(i) => PrimaryKeyValue::Integer(i),
            wit::Value::String(s) => PrimaryKeyValue::String(s),
            wit::Value::Binary(b) => PrimaryKeyValue::Binary(b),
            wit::Value::Double(_) | wit::Value::Boolean(_) => {
                return Err(format!(
                    "primary key column `{name}` holds a {}, not an integer, string or binary",
                    if matches!(column.value, wit::Value::Double(_)) {
                        "double"
                    } else {
                        "boolean"
                    }
                ));
            }
        };
        if value.key_type() != expected.value.key_type() {
            return Err(format!(
                "primary key column `{name}` is {:?}, the table's is {:?}",
                value.key_type(),
                expected.value.key_type()
            ));
        }
        key.push(PrimaryKeyColumn {
            name: name.to_owned(),
            value,
        });
    }
    let primary_key = PrimaryKey(key);
    let mut columns = Vec::with_capacity(change.columns.len());
    for column in change.columns {
        if let Some(name) = names.get(column.name)? {
            columns.push((name.to_owned(), column.op, column.timestamp));
        }
    }
    match change.kind {
        wit::ChangeKind::Delete if columns.is_empty() => Ok(RowChange::Delete { primary_key }),
        wit::ChangeKind::Delete => Err("a delete with columns".into()),
        wit::ChangeKind::Put => {
            let cells = columns
                .into_iter()
                .map(|(name, op, timestamp)| match op {
                    wit::ColumnOp::Put(v) => Ok(Cell {
                        name,
                        value: model_value(v)?,
                        timestamp,
                    }),
                    other => Err(format!("a put with a {other:?} op on column `{name}`")),
                })
                .collect::<Result<_, String>>()?;
            Ok(RowChange::Put { primary_key, cells })
        }
        wit::ChangeKind::Update => {
            let updates = columns
                .into_iter()
                .map(|(name, op, timestamp)| {
                    let op = match (op, timestamp) {
                        (wit::ColumnOp::Put(v), timestamp) => ColumnOp::Put {
                            value: model_value(v)?,
                            timestamp,
                        },
                        (wit::ColumnOp::DeleteOneVersion, Some(timestamp)) => {
                            ColumnOp::DeleteOneVersion { timestamp }
                        }
                        (wit::ColumnOp::DeleteOneVersion, None) => {
                            return Err(format!(
                                "delete-one-version of column `{name}` without a timestamp"
                            ));
                        }
                        (wit::ColumnOp::DeleteAllVersions, _) => ColumnOp::DeleteAllVersions,
                        (wit::ColumnOp::Increment(delta), _) => ColumnOp::Increment { delta },
                    };
                    Ok(ColumnUpdate { name, op })
                })
                .collect::<Result<_, String>>()?;
            Ok(RowChange::Update {
                primary_key,
                updates,
            })
        }
    }
}

/// Whether `change` writes something: an update must name at least one column.
fn writes_something(change: &RowChange) -> bool {
    !matches!(change, RowChange::Update { updates, .. } if updates.is_empty())
}

fn model_value(value: wit::Value) -> Result<Value, String> {
    let too_big = |len: usize| {
        Err(format!(
            "a value of {len} bytes (at most {MAX_VALUE_BYTES})"
        ))
    };
    Ok(match value {
        wit::Value::Integer(i) => Value::Integer(i),
        wit::Value::Double(d) => Value::Double(d),
        wit::Value::Boolean(b) => Value::Boolean(b),
        wit::Value::String(s) if s.len() > MAX_VALUE_BYTES => return too_big(s.len()),
        wit::Value::String(s) => Value::String(s),
        wit::Value::Binary(b) if b.len() > MAX_VALUE_BYTES => return too_big(b.len()),
        wit::Value::Binary(b) => Value::Binary(b),
    })
}
