//! The JSON form of records and row changes: what `otsrep processor test` reads and prints,
//! and what the dead-letter sinks keep of a skipped record (so it can be fed back to a guest).
//!
//! A record is one JSON object per line:
//!
//! ```json
//! {"kind": "update", "key": [{"id": 7}], "columns": [{"name": "a", "value": 1, "timestamp": 1700000000000},
//!   {"name": "b", "delete_version": 1700000000000}, {"name": "c", "delete_all": true}],
//!  "sequence": {"epoch": 0, "timestamp": 1700000000000000, "row_index": 0}}
//! ```
//!
//! `kind` is `put`, `update` or `delete`; `key` lists the primary key columns in schema order,
//! one `{name: value}` object each; a column writes a `value` (with an optional `timestamp` in
//! ms), or deletes one version (`delete_version`), all versions (`delete_all`), or adds
//! (`increment`, output only). Values are JSON integers, floats (written with a decimal point),
//! strings, booleans, or `{"binary": "<hex>"}`. Without `sequence` a record is a full-data row.
//! A row change has the same form without `sequence`. Each output line is
//! `{"record": i, "change": ...}`, `{"record": i, "skipped": reason}` or
//! `{"record": i, "error": message}`, in record order, so an expected-output file is the same
//! lines.

use crate::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value,
};
use crate::plainbuffer::SequenceInfo;
use crate::record::TunnelRecord;
use serde_json::{Map, Value as Json, json};

/// Parses one record line; the error says what is wrong with it.
pub fn parse_record(line: &str) -> Result<TunnelRecord, String> {
    let json: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(mut object) = json else {
        return Err("must be a JSON object".into());
    };
    let sequence = match object.remove("sequence") {
        None | Some(Json::Null) => None,
        Some(value) => Some(sequence(value)?),
    };
    let change = change_from(object)?;
    Ok(TunnelRecord {
        change,
        sequence_info: sequence,
    })
}

fn sequence(value: Json) -> Result<SequenceInfo, String> {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Json::as_i64)
            .ok_or_else(|| format!("`sequence.{name}` must be an integer"))
    };
    let small = |name: &str| {
        field(name).and_then(|v| {
            i32::try_from(v).map_err(|_| format!("`sequence.{name}` is out of range"))
        })
    };
    Ok(SequenceInfo {
        epoch: small("epoch")?,
        timestamp: field("timestamp")?,
        row_index: small("row_index")?,
    })
}

fn change_from(mut object: Map<String, Json>) -> Result<RowChange, String> {
    let kind = match object.remove("kind") {
        Some(Json::String(kind)) => kind,
        _ => return Err("`kind` must be \"put\", \"update\" or \"delete\"".into()),
    };
    let primary_key = match object.remove("key") {
        Some(Json::Array(columns)) if !columns.is_empty() => PrimaryKey(
            columns
                .into_iter()
                .map(key_column)
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err("`key` must be a non-empty list of {name: value} objects".into()),
    };
    let columns = match object.remove("columns") {
        None => Vec::new(),
        Some(Json::Array(columns)) => columns,
        Some(_) => return Err("`columns` must be a list".into()),
    };
    if let Some(unknown) = object.keys().next() {
        return Err(format!(
            "unknown field `{unknown}` (known: kind, key, columns, sequence)"
        ));
    }
    let updates = columns
        .into_iter()
        .map(column)
        .collect::<Result<Vec<_>, _>>()?;
    match kind.as_str() {
        "put" => Ok(RowChange::Put {
            primary_key,
            cells: updates
                .into_iter()
                .map(|u| match u.op {
                    ColumnOp::Put { value, timestamp } => Ok(Cell {
                        name: u.name,
                        value,
                        timestamp,
                    }),
                    _ => Err(format!("column `{}`: a put only writes values", u.name)),
                })
                .collect::<Result<_, _>>()?,
        }),
        "update" => Ok(RowChange::Update {
            primary_key,
            updates,
        }),
        "delete" if updates.is_empty() => Ok(RowChange::Delete { primary_key }),
        "delete" => Err("a delete has no columns".into()),
        other => Err(format!(
            "`kind` {other:?} is not \"put\", \"update\" or \"delete\""
        )),
    }
}

fn key_column(value: Json) -> Result<PrimaryKeyColumn, String> {
    let Json::Object(object) = value else {
        return Err("each `key` entry must be a {name: value} object".into());
    };
    let mut entries = object.into_iter();
    let (Some((name, value)), None) = (entries.next(), entries.next()) else {
        return Err("each `key` entry must have exactly one name".into());
    };
    let value = match cell_value(value).map_err(|e| format!("key `{name}`: {e}"))? {
        Value::Integer(i) => PrimaryKeyValue::Integer(i),
        Value::String(s) => PrimaryKeyValue::String(s),
        Value::Binary(b) => PrimaryKeyValue::Binary(b),
        _ => {
            return Err(format!(
                "key `{name}` must be an integer, a string or binary"
            ));
        }
    };
    Ok(PrimaryKeyColumn { name, value })
}

fn column(value: Json) -> Result<ColumnUpdate, String> {
    let Json::Object(mut object) = value else {
        return Err("each column must be an object with a `name`".into());
    };
    let name = match object.remove("name") {
        Some(Json::String(name)) => name,
        _ => return Err("each column needs a string `name`".into()),
    };
    let context = |e: String| format!("column `{name}`: {e}");
    let timestamp = match object.remove("timestamp") {
        None | Some(Json::Null) => None,
        Some(t) => Some(
            t.as_i64()
                .ok_or_else(|| context("`timestamp` must be an integer (ms)".into()))?,
        ),
    };
    let op = match (
        object.remove("value"),
        object.remove("delete_version"),
        object.remove("delete_all"),
        object.remove("increment"),
    ) {
        (Some(value), None, None, None) => ColumnOp::Put {
            value: cell_value(value).map_err(context)?,
            timestamp,
        },
        (None, Some(version), None, None) => ColumnOp::DeleteOneVersion {
            timestamp: version
                .as_i64()
                .ok_or_else(|| context("`delete_version` must be an integer (ms)".into()))?,
        },
        (None, None, Some(Json::Bool(true)), None) => ColumnOp::DeleteAllVersions,
        (None, None, None, Some(delta)) => ColumnOp::Increment {
            delta: delta
                .as_i64()
                .ok_or_else(|| context("`increment` must be an integer".into()))?,
        },
        _ => {
            return Err(context(
                "needs exactly one of `value`, `delete_version`, `delete_all: true`, `increment`"
                    .into(),
            ));
        }
    };
    if let Some(unknown) = object.keys().next() {
        return Err(context(format!("unknown field `{unknown}`")));
    }
    Ok(ColumnUpdate { name, op })
}

fn cell_value(value: Json) -> Result<Value, String> {
    match value {
        Json::Bool(b) => Ok(Value::Boolean(b)),
        Json::String(s) => Ok(Value::String(s)),
        Json::Number(n) if n.is_i64() => Ok(Value::Integer(n.as_i64().unwrap_or_default())),
        Json::Number(n) if n.is_f64() => Ok(Value::Double(n.as_f64().unwrap_or_default())),
        Json::Object(o) if o.len() == 1 && o.contains_key("binary") => match &o["binary"] {
            Json::String(hex) => from_hex(hex),
            _ => Err("`binary` must be a hex string".into()),
        },
        other => Err(format!(
            "{other} is not an integer, float, string, boolean or {{\"binary\": hex}}"
        )),
    }
}

fn from_hex(hex: &str) -> Result<Value, String> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hex:?} is not an even number of hex digits"));
    }
    Ok(Value::Binary(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex digits"))
            .collect(),
    ))
}

/// The JSON form of a row change.
pub fn change_json(change: &RowChange) -> Json {
    let key: Vec<Json> = change
        .primary_key()
        .0
        .iter()
        .map(|c| {
            let value = match &c.value {
                PrimaryKeyValue::Integer(i) => json!(i),
                PrimaryKeyValue::String(s) => json!(s),
                PrimaryKeyValue::Binary(b) => value_json(&Value::Binary(b.clone())),
                other => json!(format!("{other:?}")),
            };
            let mut entry = Map::new();
            entry.insert(c.name.clone(), value);
            Json::Object(entry)
        })
        .collect();
    let (kind, columns): (&str, Vec<Json>) = match change {
        RowChange::Put { cells, .. } => (
            "put",
            cells
                .iter()
                .map(|c| put_json(&c.name, &c.value, c.timestamp))
                .collect(),
        ),
        RowChange::Update { updates, .. } => (
            "update",
            updates
                .iter()
                .map(|u| match &u.op {
                    ColumnOp::Put { value, timestamp } => put_json(&u.name, value, *timestamp),
                    ColumnOp::DeleteOneVersion { timestamp } => {
                        json!({"name": u.name, "delete_version": timestamp})
                    }
                    ColumnOp::DeleteAllVersions => json!({"name": u.name, "delete_all": true}),
                    ColumnOp::Increment { delta } => json!({"name": u.name, "increment": delta}),
                })
                .collect(),
        ),
        RowChange::Delete { .. } => ("delete", Vec::new()),
    };
    let mut object = json!({"kind": kind, "key": key});
    if !columns.is_empty() {
        object["columns"] = Json::Array(columns);
    }
    object
}

/// The JSON form of a record (a row change with its sequence).
pub fn record_json(record: &TunnelRecord) -> Json {
    let mut object = change_json(&record.change);
    if let Some(s) = record.sequence_info {
        object["sequence"] =
            json!({"epoch": s.epoch, "timestamp": s.timestamp, "row_index": s.row_index});
    }
    object
}

fn put_json(name: &str, value: &Value, timestamp: Option<i64>) -> Json {
    let mut object = json!({"name": name, "value": value_json(value)});
    if let Some(t) = timestamp {
        object["timestamp"] = json!(t);
    }
    object
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Integer(i) => json!(i),
        Value::String(s) => json!(s),
        Value::Boolean(b) => json!(b),
        Value::Double(d) => json!(d),
        Value::Binary(b) => {
            json!({"binary": b.iter().map(|x| format!("{x:02x}")).collect::<String>()})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_json_form() {
        let lines = [
            r#"{"kind":"put","key":[{"id":7},{"sub":"a"}],"columns":[{"name":"a","value":1,"timestamp":5},{"name":"b","value":2.5},{"name":"c","value":{"binary":"00ff"}},{"name":"d","value":true}],"sequence":{"epoch":1,"timestamp":99,"row_index":2}}"#,
            r#"{"kind":"update","key":[{"id":{"binary":"0a"}}],"columns":[{"name":"a","value":"x","timestamp":5},{"name":"b","delete_version":4},{"name":"c","delete_all":true},{"name":"d","increment":-3}]}"#,
            r#"{"kind":"delete","key":[{"id":-1}]}"#,
        ];
        for line in lines {
            let record = parse_record(line).unwrap();
            let again: Json = serde_json::from_str(line).unwrap();
            assert_eq!(record_json(&record), again, "{line}");
        }
        let record = parse_record(lines[0]).unwrap();
        assert_eq!(
            record.sequence_info,
            Some(SequenceInfo {
                epoch: 1,
                timestamp: 99,
                row_index: 2
            })
        );
        let RowChange::Put { cells, .. } = &record.change else {
            panic!("a put")
        };
        assert_eq!(cells[1].value, Value::Double(2.5));
        assert_eq!(cells[2].value, Value::Binary(vec![0, 255]));

        // Doubles come back to the bit (a backlog replays records from this form).
        for value in [934.9329754852611, 0.1 + 0.2, f64::MIN_POSITIVE, -1e300] {
            let record = TunnelRecord {
                change: RowChange::Put {
                    primary_key: record.change.primary_key().clone(),
                    cells: vec![Cell {
                        name: "d".into(),
                        value: Value::Double(value),
                        timestamp: Some(1),
                    }],
                },
                sequence_info: None,
            };
            let again = parse_record(&record_json(&record).to_string()).unwrap();
            assert_eq!(again, record, "{value:e}");
        }
    }

    #[test]
    fn a_bad_record_says_what_is_wrong() {
        let cases = [
            ("[1]", "must be a JSON object"),
            (
                r#"{"kind":"upsert","key":[{"id":1}]}"#,
                "`kind` \"upsert\" is not",
            ),
            (
                r#"{"kind":"put","key":[]}"#,
                "`key` must be a non-empty list",
            ),
            (
                r#"{"kind":"put","key":[{"id":1.5}]}"#,
                "key `id` must be an integer, a string or binary",
            ),
            (
                r#"{"kind":"put","key":[{"id":1,"x":2}]}"#,
                "exactly one name",
            ),
            (
                r#"{"kind":"put","key":[{"id":1}],"columns":[{"name":"a","delete_all":true}]}"#,
                "column `a`: a put only writes values",
            ),
            (
                r#"{"kind":"update","key":[{"id":1}],"columns":[{"name":"a","value":1,"increment":1}]}"#,
                "column `a`: needs exactly one of",
            ),
            (
                r#"{"kind":"update","key":[{"id":1}],"columns":[{"name":"a","value":{"binary":"0"}}]}"#,
                "column `a`: \"0\" is not an even number of hex digits",
            ),
            (
                r#"{"kind":"delete","key":[{"id":1}],"columns":[{"name":"a","delete_all":true}]}"#,
                "a delete has no columns",
            ),
            (
                r#"{"kind":"delete","key":[{"id":1}],"sequence":{"epoch":1}}"#,
                "`sequence.timestamp` must be an integer",
            ),
            (
                r#"{"kind":"delete","key":[{"id":1}],"seq":1}"#,
                "unknown field `seq`",
            ),
        ];
        for (line, message) in cases {
            let error = parse_record(line).unwrap_err();
            assert!(error.contains(message), "{line}: {error}");
        }
    }
}
