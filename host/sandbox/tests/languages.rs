//! Guests written in Python and JavaScript: the shipped `mask` (Python) and `compute`
//! (JavaScript), and the containment of the WASI components those tools build, run against the
//! components `cargo xtask build-py-js-guests` writes to `guest-processors/target/components`
//! (`scripts/test.sh` builds them first).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ots_protocol::model::{Cell, ColumnOp, ColumnUpdate, RowChange, Value};
use ots_protocol::record::TunnelRecord;
use ots_sandbox::{GuestSource, Limits, Sandbox, SandboxErrorKind};
use serde_json::json;

mod common;
use common::{changes, key, owned, seq};
use sha2::{Digest, Sha256};

fn components() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-processors/target/components")
}

fn try_load(name: &str, options: serde_json::Value, limits: Limits) -> Result<Sandbox, String> {
    let file = components().join(format!("{name}.wasm"));
    assert!(
        file.is_file(),
        "{} is missing: run `cargo xtask build-py-js-guests` first",
        file.display()
    );
    let source = GuestSource::file(&components(), &format!("{name}.wasm")).unwrap();
    Sandbox::load(source, &options, limits).map_err(|e| {
        assert!(matches!(e.kind, SandboxErrorKind::Init(_)), "{e}");
        e.to_string()
    })
}

fn guest(name: &str, options: serde_json::Value, limits: Limits) -> Sandbox {
    try_load(name, options, limits).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

fn cell(name: &str, value: Value, timestamp: i64) -> Cell {
    Cell {
        name: name.into(),
        value,
        timestamp: Some(timestamp),
    }
}

fn put(id: i64, cells: Vec<Cell>) -> TunnelRecord {
    TunnelRecord {
        change: RowChange::Put {
            primary_key: key(id),
            cells,
        },
        sequence_info: seq(id as i32),
    }
}

fn update(id: i64, updates: Vec<ColumnUpdate>) -> TunnelRecord {
    TunnelRecord {
        change: RowChange::Update {
            primary_key: key(id),
            updates,
        },
        sequence_info: None,
    }
}

fn delete(id: i64) -> TunnelRecord {
    TunnelRecord {
        change: RowChange::Delete {
            primary_key: key(id),
        },
        sequence_info: None,
    }
}

fn string(s: &str) -> Value {
    Value::String(s.into())
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A person, with an email and a phone to hide and a name to keep.
fn person(id: i64, email: &str) -> TunnelRecord {
    put(
        id,
        vec![
            cell("name", string("Ada"), 10),
            cell("email", string(email), 11),
            cell("phone", Value::Integer(5_550_123), 12),
        ],
    )
}

#[test]
fn mask_hashes_the_named_columns_with_the_salt_and_keeps_the_rest() {
    let sandbox = guest(
        "mask",
        json!({"columns": ["email", "phone"], "salt": "pepper"}),
        Limits::default(),
    );
    let records = vec![
        person(1, "ada@example.com"),
        put(2, vec![cell("name", string("Bob"), 20)]),
        update(
            3,
            vec![
                ColumnUpdate {
                    name: "email".into(),
                    op: ColumnOp::Put {
                        value: string("x@y.z"),
                        timestamp: Some(30),
                    },
                },
                ColumnUpdate {
                    name: "phone".into(),
                    op: ColumnOp::DeleteAllVersions,
                },
            ],
        ),
        delete(4),
    ];
    let out = sandbox.process("people", &records).unwrap();
    let expected = vec![
        RowChange::Put {
            primary_key: key(1),
            cells: vec![
                cell("name", string("Ada"), 10),
                cell("email", string(&hex_sha256(b"pepperada@example.com")), 11),
                // A number is hashed as its decimal text.
                cell("phone", string(&hex_sha256(b"pepper5550123")), 12),
            ],
        },
        records[1].change.clone(),
        RowChange::Update {
            primary_key: key(3),
            updates: vec![
                ColumnUpdate {
                    name: "email".into(),
                    op: ColumnOp::Put {
                        value: string(&hex_sha256(b"pepperx@y.z")),
                        timestamp: Some(30),
                    },
                },
                ColumnUpdate {
                    name: "phone".into(),
                    op: ColumnOp::DeleteAllVersions,
                },
            ],
        },
        records[3].change.clone(),
    ];
    assert_eq!(owned(out.changes), expected);
    assert_eq!(out.origins, vec![0, 1, 2, 3]);

    // A batch without the columns is kept whole.
    let plain = vec![put(5, vec![cell("name", string("Cy"), 50)]), delete(6)];
    assert_eq!(
        sandbox.process("people", &plain).unwrap().changes,
        changes(&plain)
    );
}

#[test]
fn mask_masks_strings_skips_other_types_and_removes_columns() {
    let sandbox = guest(
        "mask",
        json!({"columns": ["email", "phone"], "mode": "mask", "keep": 4}),
        Limits::default(),
    );
    let records = vec![
        put(1, vec![cell("email", string("ada@example.com"), 11)]),
        person(2, "bob@example.com"),
    ];
    let out = sandbox.process("people", &records).unwrap();
    assert_eq!(
        owned(out.changes),
        vec![RowChange::Put {
            primary_key: key(1),
            cells: vec![cell("email", string("***********.com"), 11)],
        }]
    );
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].index, 1);
    assert_eq!(
        out.skipped[0].message,
        "column `phone` holds a int, and mode `mask` only masks strings"
    );

    let sandbox = guest(
        "mask",
        json!({"columns": ["email", "phone"], "mode": "remove"}),
        Limits::default(),
    );
    let records = [person(3, "c@d.e")];
    let out = sandbox.process("people", &records).unwrap();
    assert_eq!(
        owned(out.changes),
        vec![RowChange::Put {
            primary_key: key(3),
            cells: vec![cell("name", string("Ada"), 10)],
        }]
    );
}

#[test]
fn bad_options_of_python_and_javascript_guests_are_refused_naming_them() {
    let cases = [
        ("mask", json!({"colums": ["a"]}), "unknown option `colums`"),
        (
            "mask",
            json!({"columns": []}),
            "option `columns` must name at least one column",
        ),
        (
            "mask",
            json!({"columns": ["a"], "mode": "blur"}),
            "option `mode` must be one of hash, mask, remove, not 'blur'",
        ),
        (
            "mask",
            json!({"columns": "email"}),
            "option `columns` must be a list of strings",
        ),
        ("compute", json!({"column": {}}), "unknown option `column`"),
        (
            "compute",
            json!({"columns": {"total": "price *"}}),
            "computed column `total`: ",
        ),
        (
            "compute",
            json!({"columns": {"total": 3}}),
            "option `columns` must be an object of strings",
        ),
    ];
    for (name, options, expected) in cases {
        let err = try_load(name, options.clone(), Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{name} accepted {options}"));
        assert!(err.contains(expected), "{name} {options}: {err}");
    }
}

#[test]
fn compute_adds_computed_columns_at_the_records_latest_timestamp() {
    let sandbox = guest(
        "compute",
        json!({"columns": {
            "total": "price * quantity",
            "label": "`${name} x${quantity}`",
            "heavy": "weight > 10.5",
            "root": "Math.sqrt(weight)",
            "bytes": "blob instanceof Uint8Array && blob[1] === 2",
        }}),
        Limits::default(),
    );
    let records = vec![
        put(
            1,
            vec![
                cell("name", string("bolt"), 100),
                cell("price", Value::Integer(7), 300),
                cell("quantity", Value::Integer(6), 200),
                cell("weight", Value::Double(16.0), 100),
                cell("blob", Value::Binary(vec![1, 2, 3]), 100),
            ],
        ),
        // An update of none of the inputs computes nothing and is kept.
        update(
            2,
            vec![ColumnUpdate {
                name: "note".into(),
                op: ColumnOp::Put {
                    value: string("n"),
                    timestamp: Some(5),
                },
            }],
        ),
        delete(3),
    ];
    let out = sandbox.process("orders", &records).unwrap();
    let mut cells = match &records[0].change {
        RowChange::Put { cells, .. } => cells.clone(),
        _ => unreachable!(),
    };
    // Computed in name order.
    cells.extend([
        cell("bytes", Value::Boolean(true), 300),
        cell("heavy", Value::Boolean(true), 300),
        cell("label", string("bolt x6"), 300),
        cell("root", Value::Double(4.0), 300),
        cell("total", Value::Integer(42), 300),
    ]);
    let mut expected = vec![RowChange::Put {
        primary_key: key(1),
        cells,
    }];
    expected.extend(owned(changes(&records[1..])));
    assert_eq!(owned(out.changes), expected);

    // A replayed record computes the same columns at the same versions.
    assert_eq!(
        owned(sandbox.process("orders", &records).unwrap().changes),
        expected
    );
}

#[test]
fn a_compute_expression_that_fails_skips_its_record_naming_the_column() {
    let sandbox = guest(
        "compute",
        json!({"columns": {"total": "price * quantity"}}),
        Limits::default(),
    );
    let records = vec![
        put(
            1,
            vec![
                cell("price", Value::Double(1.5), 1),
                cell("quantity", Value::Integer(2), 1),
            ],
        ),
        put(2, vec![cell("other", Value::Integer(1), 1)]),
    ];
    let out = sandbox.process("orders", &records).unwrap();
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].index, 0);
    assert!(
        out.skipped[0]
            .message
            .starts_with("computed column `total`: TypeError"),
        "{}",
        out.skipped[0].message
    );
    // The other record does not write the inputs: nothing is computed, the record is kept.
    assert_eq!(out.changes, changes(&records[1..]));
}

/// A batch the misbehaving guests leave alone, to show the host works after a failure.
fn harmless() -> Vec<TunnelRecord> {
    vec![put(7, vec![cell("a", Value::Integer(1), 1)])]
}

/// A batch holding the key the misbehaving guests act on.
fn trigger() -> Vec<TunnelRecord> {
    vec![put(1, vec![]), put(2, vec![])]
}

fn misbehave(language: &str, mode: &str, limits: Limits) -> Sandbox {
    guest(
        &format!("misbehave-{language}"),
        json!({"mode": mode, "key": 2}),
        limits,
    )
}

fn assert_recovers(sandbox: &Sandbox) {
    assert_eq!(
        sandbox.process("src", &harmless()).unwrap().changes,
        changes(&harmless()),
        "the replaced instance processes the next batch"
    );
}

#[test]
fn endless_loops_in_python_and_javascript_hit_the_deadline() {
    let limits = Limits {
        call_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    for language in ["py", "js"] {
        let sandbox = misbehave(language, "loop", limits);
        let started = Instant::now();
        let err = sandbox.process("src", &trigger()).unwrap_err();
        assert_eq!(
            err.kind,
            SandboxErrorKind::Timeout { millis: 300 },
            "{language}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{language}");
        assert_recovers(&sandbox);
    }
}

#[test]
fn a_python_sleep_cannot_outlast_the_deadline() {
    let limits = Limits {
        call_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let sandbox = misbehave("py", "sleep", limits);
    let started = Instant::now();
    let err = sandbox.process("src", &trigger()).unwrap_err();
    assert_eq!(err.kind, SandboxErrorKind::Timeout { millis: 300 });
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_recovers(&sandbox);
}

#[test]
fn unbounded_allocation_in_python_and_javascript_hits_the_memory_limit() {
    for language in ["py", "js"] {
        let sandbox = misbehave(language, "allocate", Limits::default());
        let err = sandbox.process("src", &trigger()).unwrap_err();
        assert_eq!(
            err.kind,
            SandboxErrorKind::MemoryLimit { bytes: 64 << 20 },
            "{language}: {err}"
        );
        assert_recovers(&sandbox);
    }
}

#[test]
fn an_uncaught_exception_traps_and_the_instance_is_replaced() {
    for (language, mode, exception) in [
        ("py", "raise", "RuntimeError: misbehave: raising on purpose"),
        ("js", "throw", "Error: misbehave: throwing on purpose"),
    ] {
        let sandbox = misbehave(language, mode, Limits::default());
        let err = sandbox.process("src", &trigger()).unwrap_err();
        // The message carries the end of the guest's stderr: the traceback or the exception.
        assert!(err.to_string().contains(exception), "{language}: {err}");
        assert!(
            matches!(err.kind, SandboxErrorKind::Trap(_)),
            "{language}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("guest `misbehave-{language}.wasm`: trapped")),
            "{err}"
        );
        assert_recovers(&sandbox);
    }
}

#[test]
fn a_python_guest_finds_no_files_and_no_network() {
    // A port something listens on: the guest must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for (mode, expected) in [
        ("open-file", "open-file failed: FileNotFoundError"),
        ("socket", "socket failed: PermissionError"),
    ] {
        let sandbox = guest(
            "misbehave-py",
            json!({"mode": mode, "key": 2, "port": port}),
            Limits::default(),
        );
        let err = sandbox.process("src", &trigger()).unwrap_err();
        assert!(
            matches!(err.kind, SandboxErrorKind::Failed { retry: false, .. }),
            "{mode}: {err}"
        );
        assert!(err.to_string().contains(expected), "{mode}: {err}");
        assert!(!err.to_string().contains("succeeded"), "{mode}: {err}");
    }
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the guest's connection attempt reached the host's network"
    );
}

#[test]
fn a_print_flood_is_capped_not_fatal() {
    for (language, mode) in [("py", "print"), ("js", "log")] {
        let sandbox = misbehave(language, mode, Limits::default());
        assert_eq!(
            sandbox.process("src", &trigger()).unwrap().changes,
            changes(&trigger()),
            "{language}"
        );
    }
}

/// A component importing an interface the sandbox does not provide, written byte by byte: an
/// empty instance type, imported as `ots:processor/types@0.3.0` and as `wasi:http/types@0.2.0`.
fn component_importing_http() -> Vec<u8> {
    fn name(out: &mut Vec<u8>, name: &str) {
        out.push(0x00);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    // Type section: one instance type with no declarations.
    bytes.extend_from_slice(&[0x07, 0x03, 0x01, 0x42, 0x00]);
    let mut imports = vec![0x02];
    for import in ["ots:processor/types@0.3.0", "wasi:http/types@0.2.0"] {
        name(&mut imports, import);
        imports.extend_from_slice(&[0x05, 0x00]);
    }
    bytes.push(0x0a);
    bytes.push(imports.len() as u8);
    bytes.extend_from_slice(&imports);
    bytes
}

#[test]
fn a_guest_importing_what_the_sandbox_does_not_provide_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("http.wasm"), component_importing_http()).unwrap();
    let source = GuestSource::file(dir.path(), "http.wasm").unwrap();
    let err = Sandbox::load(source, &json!({}), Limits::default())
        .err()
        .expect("refused");
    assert!(matches!(err.kind, SandboxErrorKind::Load(_)), "{err}");
    assert!(
        err.to_string()
            .contains("it imports wasi:http/types@0.2.0, which the sandbox does not provide"),
        "{err}"
    );
}
