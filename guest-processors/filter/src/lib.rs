//! `filter`: keeps the rows that match predicates and the columns that are wanted.
//!
//! Options:
//! - `where` (list): predicates that must all hold, each `{ "column": NAME, OP: VALUE }` with
//!   OP one of `equals`, `not_equals`, `less_than`, `at_most`, `greater_than`, `at_least`,
//!   `one_of` (a list) or `present` (true/false). A single predicate may also be written at
//!   the top level: `{ "column": "active", "equals": true }`.
//! - `include_columns` / `exclude_columns` (lists): attribute columns to keep / remove.
//!
//! Key predicates decide every record. Column predicates are decided on the value a record
//! writes: a put or update that writes a non-matching value (or deletes the column) removes the
//! row from the destination; an update that does not touch the column is applied as is; a
//! full-data row that does not match is not copied.

use ots_guest_sdk::serde_json::Value as Json;
use ots_guest_sdk::*;

enum Test {
    Equals(Json),
    NotEquals(Json),
    LessThan(Json),
    AtMost(Json),
    GreaterThan(Json),
    AtLeast(Json),
    OneOf(Vec<Json>),
    Present(bool),
}

struct Predicate {
    column: String,
    test: Test,
}

const OPS: [&str; 8] = [
    "equals",
    "not_equals",
    "less_than",
    "at_most",
    "greater_than",
    "at_least",
    "one_of",
    "present",
];

struct Filter {
    predicates: Vec<Predicate>,
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl Processor for Filter {
    fn init(options: Options) -> Result<(Self, ProcessorInfo), String> {
        let mut known = vec!["where", "include_columns", "exclude_columns", "column"];
        known.extend(OPS);
        options.only(&known)?;
        let mut predicates = Vec::new();
        if options.get("column").is_some() {
            predicates.push(predicate("", &Json::Object(top_level(&options)))?);
        }
        match options.get("where") {
            None | Some(Json::Null) => {}
            Some(Json::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    predicates.push(predicate(&format!("where[{i}]"), item)?);
                }
            }
            Some(other) => return Err(format!("option `where` must be a list, got {other}")),
        }
        let include = options
            .get("include_columns")
            .map(|_| options.strings("include_columns"))
            .transpose()?;
        let exclude = options.strings("exclude_columns")?;
        let columns = predicates.iter().map(|p| p.column.clone()).collect();
        let info = ProcessorInfo::reads(!predicates.is_empty(), ColumnInterest::Named(columns));
        Ok((
            Filter {
                predicates,
                include,
                exclude,
            },
            info,
        ))
    }

    fn process(&mut self, batch: Batch) -> Result<BatchOutput, ProcessorError> {
        let removed = self.removed_columns(&batch);
        if self.predicates.is_empty() {
            return Ok(BatchOutput::all_kept().with_name_changes(removed));
        }
        let ids: Vec<Option<NameId>> = self
            .predicates
            .iter()
            .map(|p| batch.name_id(&p.column))
            .collect();
        let actions = batch
            .records
            .iter()
            .map(|record| self.decide(&batch, &ids, record))
            .collect();
        Ok(BatchOutput::actions(actions).with_name_changes(removed))
    }
}

impl Filter {
    fn removed_columns(&self, batch: &Batch) -> Vec<NameChange> {
        (0..batch.names.len() as NameId)
            .filter(|id| !batch.key_names.contains(id))
            .filter(|&id| {
                let name = batch.name(id);
                let included = self
                    .include
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|n| n == name));
                !included || self.exclude.iter().any(|n| n == name)
            })
            .map(|name| NameChange {
                name,
                new_name: None,
            })
            .collect()
    }

    fn decide(&self, batch: &Batch, ids: &[Option<NameId>], record: &StreamRecord) -> Action {
        let mut matches = true;
        for (predicate, id) in self.predicates.iter().zip(ids) {
            let verdict = match id {
                Some(id) if batch.key_names.contains(id) => {
                    Some(predicate.test.holds(record.key(*id)))
                }
                Some(id) => column_verdict(record, *id, &predicate.test),
                None if record.kind == ChangeKind::Put => Some(predicate.test.holds(None)),
                None => None,
            };
            if verdict == Some(false) {
                matches = false;
                break;
            }
        }
        if matches || record.kind == ChangeKind::Delete {
            Action::Keep
        } else if record.sequence.is_none() {
            Action::Drop
        } else {
            Action::replace(vec![RowChange {
                kind: ChangeKind::Delete,
                primary_key: record.keys().to_vec(),
                columns: Vec::new(),
            }])
        }
    }
}

/// A column predicate's verdict on a record: `None` when the record does not decide it (an
/// update that leaves the column alone, or a delete).
fn column_verdict(record: &StreamRecord, id: NameId, test: &Test) -> Option<bool> {
    match record.kind {
        ChangeKind::Delete => None,
        ChangeKind::Put => Some(test.holds(record.written(id))),
        ChangeKind::Update => {
            let last = record.columns().iter().rev().find(|c| c.name == id)?;
            Some(match &last.op {
                ColumnOp::Put(v) => test.holds(Some(v)),
                _ => test.holds(None),
            })
        }
    }
}

fn top_level(options: &Options) -> serde_json::Map<String, Json> {
    let mut map = serde_json::Map::new();
    for key in std::iter::once("column").chain(OPS) {
        if let Some(v) = options.get(key) {
            map.insert(key.to_owned(), v.clone());
        }
    }
    map
}

fn predicate(at: &str, item: &Json) -> Result<Predicate, String> {
    let key = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}.{k}")
        }
    };
    let Json::Object(map) = item else {
        return Err(format!(
            "option `{at}` must be an object like {{\"column\": \"c\", \"equals\": 1}}"
        ));
    };
    let column = match map.get("column") {
        Some(Json::String(c)) if !c.is_empty() => c.clone(),
        _ => return Err(format!("option `{}` must name a column", key("column"))),
    };
    let mut tests = map.iter().filter(|(k, _)| k.as_str() != "column");
    let (op, value) = match (tests.next(), tests.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(format!(
                "option `{at}` needs exactly one of: {}",
                OPS.join(", ")
            ));
        }
    };
    let test = match (op.as_str(), value) {
        ("equals", v) => Test::Equals(v.clone()),
        ("not_equals", v) => Test::NotEquals(v.clone()),
        ("less_than", v) => Test::LessThan(v.clone()),
        ("at_most", v) => Test::AtMost(v.clone()),
        ("greater_than", v) => Test::GreaterThan(v.clone()),
        ("at_least", v) => Test::AtLeast(v.clone()),
        ("one_of", Json::Array(list)) => Test::OneOf(list.clone()),
        ("present", Json::Bool(b)) => Test::Present(*b),
        ("one_of", _) => return Err(format!("option `{}` must be a list", key("one_of"))),
        ("present", _) => return Err(format!("option `{}` must be true or false", key("present"))),
        (other, _) => {
            return Err(format!(
                "option `{}`: unknown test; expected one of: {}",
                key(other),
                OPS.join(", ")
            ));
        }
    };
    Ok(Predicate { column, test })
}

impl Test {
    fn holds(&self, value: Option<&Value>) -> bool {
        use std::cmp::Ordering::*;
        match (self, value) {
            (Test::Present(p), v) => *p == v.is_some(),
            (_, None) => false,
            (Test::Equals(j), Some(v)) => compare(v, j) == Some(Equal),
            (Test::NotEquals(j), Some(v)) => compare(v, j) != Some(Equal),
            (Test::LessThan(j), Some(v)) => compare(v, j) == Some(Less),
            (Test::AtMost(j), Some(v)) => matches!(compare(v, j), Some(Less | Equal)),
            (Test::GreaterThan(j), Some(v)) => compare(v, j) == Some(Greater),
            (Test::AtLeast(j), Some(v)) => matches!(compare(v, j), Some(Greater | Equal)),
            (Test::OneOf(list), Some(v)) => list.iter().any(|j| compare(v, j) == Some(Equal)),
        }
    }
}

/// Orders a cell value against a JSON literal; `None` when they are of different kinds.
fn compare(value: &Value, json: &Json) -> Option<std::cmp::Ordering> {
    match (value, json) {
        (Value::Integer(a), Json::Number(n)) => match n.as_i64() {
            Some(b) => Some(a.cmp(&b)),
            None => (*a as f64).partial_cmp(&n.as_f64()?),
        },
        (Value::Double(a), Json::Number(n)) => a.partial_cmp(&n.as_f64()?),
        (Value::String(a), Json::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Boolean(a), Json::Bool(b)) => Some(a.cmp(b)),
        (Value::Binary(a), Json::String(b)) => Some(a.as_slice().cmp(b.as_bytes())),
        _ => None,
    }
}

processor!(Filter);
