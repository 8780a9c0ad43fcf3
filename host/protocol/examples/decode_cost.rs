//! Benchmark: what decoding a row costs, the replicator's side (a tunnel record of a ReadRecords
//! answer) and the server's (a row of a BatchWriteRow), each decoded into row changes and
//! dropped, as the pipeline does with every copied row.
//!
//! The rows are shaped like the `full-copy` benchmark's: an integer key and 10 attribute columns
//! (four strings, a binary, two doubles, two integers, a boolean), every cell with its timestamp.
//! Wall time is noisy on a shared machine; the instruction count is not:
//!
//! ```sh
//! cargo build --release -p ots-protocol --example decode_cost
//! valgrind --tool=callgrind target/release/examples/decode_cost 20000
//! valgrind --tool=callgrind target/release/examples/decode_cost 0   # the set-up alone
//! ```
//!
//! (instructions of the first run − the second) ÷ (2 × ROWS) is the cost of one decode.

use std::hint::black_box;
use std::time::Instant;

use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::plainbuffer::{self, RowChangeKind};
use ots_protocol::record::TunnelRecord;

/// The allocator of `otsrep` and the local server: a decoded row is a dozen small allocations,
/// so the allocator is a large part of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Distinct rows encoded up front; the decodes cycle through them.
const DISTINCT: usize = 1000;

/// Row `id`: its key and, for each column of [`COLUMNS`], a value of the column's type, every
/// cell with its timestamp; cells by name, as the server stores them and hands them out.
fn row(id: i64) -> RowChange {
    let value = |kind: &str, i: i64| match kind {
        "string" => Value::String(format!("value {i} of row {id:08}")),
        "binary" => Value::Binary(id.to_be_bytes().repeat(2)),
        "double" => Value::Double(id as f64 / (i + 1) as f64),
        "integer" => Value::Integer(id * i),
        _ => Value::Boolean((id + i) % 3 != 0),
    };
    let mut cells: Vec<Cell> = COLUMNS
        .iter()
        .zip(0..)
        .map(|(&(name, kind), i)| Cell {
            name: name.into(),
            value: value(kind, i),
            timestamp: Some(1_700_000_000_000 + id),
        })
        .collect();
    cells.sort_by(|a, b| a.name.cmp(&b.name));
    RowChange::Put {
        primary_key: PrimaryKey(vec![PrimaryKeyColumn {
            name: "id".into(),
            value: PrimaryKeyValue::Integer(id),
        }]),
        cells,
    }
}

/// The `full-copy` benchmark's columns (`benchmarks/src/table.rs`) and their types.
const COLUMNS: [(&str, &str); 10] = [
    ("name", "string"),
    ("email", "string"),
    ("city", "string"),
    ("note", "string"),
    ("score", "double"),
    ("balance", "double"),
    ("level", "integer"),
    ("written_at", "integer"),
    ("active", "boolean"),
    ("blob", "binary"),
];

fn main() {
    let rows: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().expect("ROWS must be a whole number"),
        None => 200_000,
    };
    let records: Vec<_> = (0..DISTINCT as i64)
        .map(|id| {
            TunnelRecord {
                change: row(id),
                sequence_info: None,
            }
            .encode()
        })
        .collect();
    let writes: Vec<_> = (0..DISTINCT as i64)
        .map(|id| plainbuffer::encode_row_change(&row(id)))
        .collect();
    let started = Instant::now();
    for i in 0..rows {
        let record = TunnelRecord::decode(&records[i % DISTINCT]).expect("a valid record");
        black_box(record);
        let write = plainbuffer::decode_row_change(&writes[i % DISTINCT], RowChangeKind::Put)
            .expect("a valid row");
        black_box(write);
    }
    let elapsed = started.elapsed();
    if rows > 0 {
        println!(
            "{rows} rows, each decoded twice (tunnel record, BatchWriteRow row): {:.0} ns per decode",
            elapsed.as_nanos() as f64 / (2 * rows) as f64
        );
    }
}
