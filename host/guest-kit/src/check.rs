//! Running one guest over a list of records, and comparing what it produced with what was
//! expected: the pure half of `otsrep processor test`.

use ots_protocol::record::TunnelRecord;
use ots_sandbox::{Processed, Sandbox};
use serde_json::{Value as Json, json};

use ots_protocol::json::change_json;

/// Runs `sandbox` over `records` of `table` as one batch and returns the output lines in
/// record order. If the batch fails, each record is run on its own so the failing ones are
/// named; a guest that keeps state across records may then behave differently, which the
/// second value says.
pub fn run(
    sandbox: &Sandbox,
    table: &str,
    records: &[TunnelRecord],
) -> (Vec<Json>, Option<String>) {
    match sandbox.process(table, records) {
        Ok(processed) => {
            let mut lines: Vec<(usize, Json)> = output_lines(&processed, |i| i).collect();
            lines.sort_by_key(|(i, _)| *i);
            (lines.into_iter().map(|(_, line)| line).collect(), None)
        }
        Err(batch_error) => {
            let mut lines = Vec::new();
            for (i, record) in records.iter().enumerate() {
                match sandbox.process(table, std::slice::from_ref(record)) {
                    Ok(processed) => lines.extend(output_lines(&processed, |_| i).map(|(_, l)| l)),
                    Err(e) => lines.push(json!({"record": i, "error": e.kind.to_string()})),
                }
            }
            let note = format!(
                "the batch of {} records failed ({batch_error}); each record was then run on its own",
                records.len()
            );
            (lines, Some(note))
        }
    }
}

/// The lines of `processed`, changes then skips, each beside the index (through `record`) of
/// the record it came from. A routed change names its table.
fn output_lines(
    processed: &Processed,
    record: impl Fn(usize) -> usize + Copy,
) -> impl Iterator<Item = (usize, Json)> {
    let changes = processed
        .origins
        .iter()
        .zip(&processed.changes)
        .zip(&processed.tables)
        .map(move |((&origin, change), table)| {
            let i = record(origin);
            let mut line = json!({"record": i, "change": change_json(change)});
            if let Some(table) = table {
                line["table"] = json!(&**table);
            }
            (i, line)
        });
    let skips = processed.skipped.iter().map(move |s| {
        let i = record(s.index);
        (i, json!({"record": i, "skipped": s.message}))
    });
    changes.chain(skips)
}

/// The differences between produced and expected lines, one message each, naming the line.
pub fn differences(actual: &[Json], expected: &[Json]) -> Vec<String> {
    let mut out = Vec::new();
    for (n, pair) in actual.iter().zip(expected).enumerate() {
        if pair.0 != pair.1 {
            out.push(format!(
                "line {}: expected {} but got {}",
                n + 1,
                pair.1,
                pair.0
            ));
        }
    }
    for (n, line) in expected.iter().enumerate().skip(actual.len()) {
        out.push(format!("line {}: expected {line} but got nothing", n + 1));
    }
    for (n, line) in actual.iter().enumerate().skip(expected.len()) {
        out.push(format!("line {}: got {line}, not expected", n + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_line() {
        let a = [json!({"record": 0}), json!({"record": 1})];
        let e = [
            json!({"record": 0}),
            json!({"record": 2}),
            json!({"record": 3}),
        ];
        assert_eq!(
            differences(&a, &e),
            [
                "line 2: expected {\"record\":2} but got {\"record\":1}",
                "line 3: expected {\"record\":3} but got nothing",
            ]
        );
        assert_eq!(
            differences(&e[..1], &[]),
            ["line 1: got {\"record\":0}, not expected"]
        );
        assert!(differences(&a, &a).is_empty());
    }
}
