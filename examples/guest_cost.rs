//! Benchmark: what a guest processor adds per record, against a native Rust passthrough.
//!
//! Runs batches of 200 stream records with 10 attribute columns (a mix of strings, integers,
//! doubles, booleans and a small binary) through the built-in guests, a chain of three of them,
//! and a native passthrough (each record becomes its own row change, borrowed as the pipeline
//! borrows a kept record: [`Changes::of_records`]), and prints the nanoseconds per record each
//! adds over the passthrough.
//! The Python `mask` and JavaScript `compute` guests run too, from
//! `guest-processors/target/components` (`cargo xtask build-py-js-guests` builds them).
//! Guests run as the pipeline runs them: [`ots_replicator::processor::load_chain`] over the
//! config's processors.
//!
//! ```sh
//! cargo run --release -p ots-replicator --example guest_cost [-- SECONDS_PER_CASE [CASE]]
//! ```
//!
//! `CASE` runs only the cases whose label starts with it (for profiling one guest).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ots_protocol::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value,
};
use ots_protocol::plainbuffer::SequenceInfo;
use ots_protocol::record::TunnelRecord;
use ots_replicator::config::{ProcessorConfig, ProcessorSource};
use ots_replicator::processor::{Changes, load_chain};
use serde_json::json;

/// The allocator the replicator's binary (`otsrep`) runs with, so that the figures are the
/// pipeline's: the host's side of a guest call allocates per record, and under glibc's malloc
/// the passthrough alone took 2.4 times as long (674 against 281 ns) when it cloned each change.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 200;
const COLUMNS: usize = 10;

fn value(column: usize, id: i64) -> Value {
    match column % 5 {
        0 => Value::String(format!("value {id} of column {column}")),
        1 => Value::Integer(id * 31 + column as i64),
        2 => Value::Double(id as f64 / 7.0),
        3 => Value::Boolean(id % 2 == 0),
        _ => Value::Binary(vec![column as u8; 24]),
    }
}

/// A batch of stream records: 70% puts, 25% updates (including a column deletion), 5%
/// deletes, every cell with its timestamp.
fn batch(first: i64) -> Vec<TunnelRecord> {
    (first..first + BATCH as i64)
        .map(|id| {
            let primary_key = PrimaryKey(vec![
                PrimaryKeyColumn {
                    name: "region".into(),
                    value: PrimaryKeyValue::String(format!("r{}", id % 8)),
                },
                PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::Integer(id),
                },
            ]);
            let timestamp = Some(1_700_000_000_000 + id);
            let change = match id % 20 {
                0 => RowChange::Delete { primary_key },
                1..=5 => RowChange::Update {
                    primary_key,
                    updates: (0..COLUMNS)
                        .map(|c| ColumnUpdate {
                            name: format!("col{c}"),
                            op: if c == 9 {
                                ColumnOp::DeleteAllVersions
                            } else {
                                ColumnOp::Put {
                                    value: value(c, id),
                                    timestamp,
                                }
                            },
                        })
                        .collect(),
                },
                _ => RowChange::Put {
                    primary_key,
                    cells: (0..COLUMNS)
                        .map(|c| Cell {
                            name: format!("col{c}"),
                            value: value(c, id),
                            timestamp,
                        })
                        .collect(),
                },
            };
            TunnelRecord {
                change,
                sequence_info: Some(SequenceInfo {
                    epoch: 1,
                    timestamp: 1_700_000_000_000_000 + id,
                    row_index: (id % 1000) as i32,
                }),
            }
        })
        .collect()
}

/// Nanoseconds per record of `run` over `batches`, measured for about `budget`.
fn per_record(
    batches: &[Vec<TunnelRecord>],
    budget: Duration,
    mut run: impl FnMut(&[TunnelRecord]),
) -> f64 {
    for b in batches {
        run(b); // warm-up: compilation caches, instance pool, allocator
    }
    let started = Instant::now();
    let mut records = 0u64;
    while started.elapsed() < budget {
        for b in batches {
            run(b);
            records += b.len() as u64;
        }
    }
    started.elapsed().as_nanos() as f64 / records as f64
}

/// Rounds per case: the passthrough and the guest are timed alternately, so that a change in
/// the machine's load hits both, and the median difference is reported.
const ROUNDS: usize = 7;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| anyhow::anyhow!("seconds per case must be a number, got {s:?}"))?,
        None => 3.0,
    };
    let round = Duration::from_secs_f64(seconds / (2 * ROUNDS) as f64);
    let batches: Vec<Vec<TunnelRecord>> = (0..16).map(|i| batch(i * BATCH as i64)).collect();
    let native = |records: &[TunnelRecord]| {
        black_box(Changes::of_records(records));
    };
    println!(
        "{BATCH} records per batch, {COLUMNS} columns per record, {seconds} s per case in {ROUNDS} alternating rounds (medians)"
    );

    let keep_all = json!({"where": [{"column": "id", "at_least": 0}]});
    let rename_two = json!({"columns": {"col1": "one", "col2": "two"}});
    let cases = [
        ("replicate", vec![("replicate", json!({}))]),
        (
            "replicate (verify: true)",
            vec![("replicate", json!({"verify": true}))],
        ),
        (
            "filter (keeps 1 in 2 rows, drops a column)",
            vec![(
                "filter",
                json!({"where": [{"column": "id", "less_than": 1600}], "exclude_columns": ["col3"]}),
            )],
        ),
        (
            "filter (keeps every row)",
            vec![("filter", keep_all.clone())],
        ),
        ("rename (two columns)", vec![("rename", rename_two.clone())]),
        (
            "route (fan-out: each record to 2 tables)",
            vec![("route", json!({"copies": ["copy_a"]}))],
        ),
        (
            "route (fan-out: each record to 3 tables)",
            vec![("route", json!({"copies": ["copy_a", "copy_b"]}))],
        ),
        (
            "chain: filter (all) > rename > replicate",
            vec![
                ("filter", keep_all),
                ("rename", rename_two),
                ("replicate", json!({})),
            ],
        ),
    ];
    // The Python and JavaScript guests (`cargo xtask build-py-js-guests` builds them): each
    // reading every column and keeping every record (a column the batch lacks), then at work.
    let py_js_cases = [
        (
            "python mask (reads all, keeps all)",
            ("mask.wasm", json!({"columns": ["absent"]})),
        ),
        (
            "python mask (hashes 2 string columns)",
            ("mask.wasm", json!({"columns": ["col0", "col5"]})),
        ),
        (
            "javascript compute (reads all, keeps all)",
            ("compute.wasm", json!({"columns": {"c": "absent * 2n"}})),
        ),
        (
            "javascript compute (adds 1 column)",
            ("compute.wasm", json!({"columns": {"c": "col1 * 2n"}})),
        ),
    ];
    let py_js_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guest-processors/target/components");
    let py_js = py_js_cases.into_iter().map(|(label, (file, options))| {
        let config = ProcessorConfig {
            source: ProcessorSource::File(file.into()),
            guest_dir: Some(py_js_dir.clone()),
            options,
            ..ProcessorConfig::default()
        };
        (label, vec![config])
    });
    let only = std::env::args().nth(2).unwrap_or_default();
    let cases = cases.into_iter().map(|(label, stages)| {
        let configs: Vec<ProcessorConfig> = stages
            .into_iter()
            .map(|(name, options)| ProcessorConfig {
                source: ProcessorSource::Builtin(name.into()),
                // A routing guest may write to the tables it copies to.
                tables: options["copies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect(),
                options,
                ..ProcessorConfig::default()
            })
            .collect();
        (label, configs)
    });
    for (label, configs) in cases.chain(py_js) {
        if !label.starts_with(&only) {
            continue;
        }
        let processor = load_chain(&configs, "bench")?;
        let mut failure = None;
        let mut guest_run = |records: &[TunnelRecord]| match processor.process(records) {
            Ok(processed) => {
                black_box(processed);
            }
            Err(e) => failure = Some(e),
        };
        let (mut natives, mut guests) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            natives.push(per_record(&batches, round, native));
            guests.push(per_record(&batches, round, &mut guest_run));
        }
        if let Some(e) = failure {
            anyhow::bail!("{label}: {e}");
        }
        let added = median(guests.iter().zip(&natives).map(|(g, n)| g - n).collect());
        println!(
            "{label:<44} {:>6.0} ns/record, native passthrough {:>6.0}: {added:+.0} ns/record added",
            median(guests),
            median(natives),
        );
    }
    Ok(())
}
