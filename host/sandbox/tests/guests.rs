//! The shipped guests and the sandbox's containment, run against the committed components in
//! `guest-processors/components` (CI rebuilds those from source first and checks they match).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ots_protocol::model::{Cell, ColumnOp, ColumnUpdate, RowChange, Value};
use ots_protocol::record::TunnelRecord;
use ots_sandbox::{GuestSource, Limits, Sandbox, SandboxErrorKind};
use serde_json::json;

mod common;
use common::{changes, key, owned, seq};

fn components() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-processors/components")
}

/// The directory holding guest `name`'s component: the shipped ones, or the test-only
/// `misbehave` and the frozen 0.2.0 build of `filter`.
fn dir_of(name: &str) -> PathBuf {
    if name == "misbehave" || name.ends_with("-0.2.0") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-processors/test-components")
    } else {
        components()
    }
}

fn guest(name: &str, options: serde_json::Value) -> Sandbox {
    guest_with(name, options, Limits::default())
}

fn guest_with(name: &str, options: serde_json::Value, limits: Limits) -> Sandbox {
    let source = GuestSource::file(&dir_of(name), &format!("{name}.wasm")).unwrap();
    Sandbox::load(source, &options, limits).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

fn put(id: i64, active: bool, stream: bool) -> TunnelRecord {
    TunnelRecord {
        change: RowChange::Put {
            primary_key: key(id),
            cells: vec![
                Cell {
                    name: "name".into(),
                    value: Value::String(format!("row {id}")),
                    timestamp: Some(1000 + id),
                },
                Cell {
                    name: "active".into(),
                    value: Value::Boolean(active),
                    timestamp: Some(1000 + id),
                },
                Cell {
                    name: "score".into(),
                    value: Value::Double(id as f64 / 2.0),
                    timestamp: Some(1000 + id),
                },
                Cell {
                    name: "blob".into(),
                    value: Value::Binary(vec![id as u8, 0, 255]),
                    timestamp: Some(1000 + id),
                },
            ],
        },
        sequence_info: if stream { seq(id as i32) } else { None },
    }
}

/// One record of every kind and column op.
fn mixed() -> Vec<TunnelRecord> {
    vec![
        put(1, true, false),
        put(2, false, true),
        TunnelRecord {
            change: RowChange::Update {
                primary_key: key(3),
                updates: vec![
                    ColumnUpdate {
                        name: "name".into(),
                        op: ColumnOp::Put {
                            value: Value::String("renamed".into()),
                            timestamp: Some(5000),
                        },
                    },
                    ColumnUpdate {
                        name: "score".into(),
                        op: ColumnOp::DeleteOneVersion { timestamp: 1003 },
                    },
                    ColumnUpdate {
                        name: "blob".into(),
                        op: ColumnOp::DeleteAllVersions,
                    },
                    ColumnUpdate {
                        name: "count".into(),
                        op: ColumnOp::Put {
                            value: Value::Integer(-7),
                            timestamp: Some(5000),
                        },
                    },
                ],
            },
            sequence_info: seq(3),
        },
        TunnelRecord {
            change: RowChange::Delete {
                primary_key: key(4),
            },
            sequence_info: seq(4),
        },
    ]
}

#[test]
fn replicate_passes_every_record_type_op_and_timestamp_through_unchanged() {
    let records = mixed();
    for options in [json!({}), json!({"verify": true})] {
        let out = guest("replicate", options.clone())
            .process("src", &records)
            .unwrap();
        assert_eq!(out.changes, changes(&records), "options {options}");
        assert!(
            borrow(&out.changes, &records.iter().collect::<Vec<_>>()),
            "kept records are not copied"
        );
        assert!(out.skipped.is_empty());
    }
    let out = guest("replicate", json!({"skip_deletes": true}))
        .process("src", &records)
        .unwrap();
    assert_eq!(out.changes, changes(&records[..3]));
}

#[test]
fn replicate_verify_stops_on_a_malformed_record() {
    let mut records = mixed();
    records[1] = TunnelRecord {
        change: RowChange::Put {
            primary_key: key(2),
            cells: vec![Cell {
                name: "name".into(),
                value: Value::Integer(1),
                timestamp: None,
            }],
        },
        sequence_info: seq(2),
    };
    let err = guest("replicate", json!({"verify": true}))
        .process("src", &records)
        .unwrap_err();
    assert!(!err.is_retriable());
    let text = err.to_string();
    assert!(text.starts_with("guest `replicate.wasm`: failed (asks to stop): malformed put record: a put op with no timestamp"), "{text}");
    assert!(
        text.contains("record 1 of the batch, key (region=\"eu\", id=2)"),
        "{text}"
    );
}

#[test]
fn filter_keeps_matching_rows_and_removes_rows_that_stop_matching() {
    let sandbox = guest("filter", json!({"column": "active", "equals": true}));
    let records = vec![
        put(1, true, false),  // base, matches: kept
        put(2, false, false), // base, does not match: not copied
        put(3, false, true),  // stream put that does not match: the row leaves the destination
        put(4, true, true),   // stream put that matches: kept
    ];
    let out = sandbox.process("src", &records).unwrap();
    assert_eq!(
        owned(out.changes),
        vec![
            records[0].change.clone(),
            RowChange::Delete {
                primary_key: key(3)
            },
            records[3].change.clone(),
        ]
    );
    // Updates that do not touch `active` and deletes are applied as they are.
    let mixed = mixed();
    let out = sandbox.process("src", &mixed[2..]).unwrap();
    assert_eq!(out.changes, changes(&mixed[2..]));
}

#[test]
fn filter_by_key_and_columns() {
    let sandbox = guest(
        "filter",
        json!({
            "where": [{"column": "id", "at_least": 2}, {"column": "region", "one_of": ["eu", "us"]}],
            "exclude_columns": ["blob"],
            "include_columns": ["name", "blob", "count"],
        }),
    );
    let records = mixed();
    let out = sandbox.process("src", &records).unwrap();
    let expected = vec![
        RowChange::Put {
            primary_key: key(2),
            cells: vec![Cell {
                name: "name".into(),
                value: Value::String("row 2".into()),
                timestamp: Some(1002),
            }],
        },
        RowChange::Update {
            primary_key: key(3),
            updates: vec![
                ColumnUpdate {
                    name: "name".into(),
                    op: ColumnOp::Put {
                        value: Value::String("renamed".into()),
                        timestamp: Some(5000),
                    },
                },
                ColumnUpdate {
                    name: "count".into(),
                    op: ColumnOp::Put {
                        value: Value::Integer(-7),
                        timestamp: Some(5000),
                    },
                },
            ],
        },
        RowChange::Delete {
            primary_key: key(4),
        },
    ];
    assert_eq!(
        owned(out.changes),
        expected,
        "id 1 is filtered out by key; blob, active and score removed"
    );
}

#[test]
fn bad_options_are_refused_at_load_with_the_key_named() {
    let cases = [
        (
            "filter",
            json!({"where": [{"column": "a", "like": "x"}]}),
            "option `where[0].like`: unknown test",
        ),
        ("filter", json!({"colum": "a"}), "unknown option `colum`"),
        (
            "rename",
            json!({"columns": {"a": 1}}),
            "option `columns.a` must be a string",
        ),
        (
            "replicate",
            json!({"skip_deletes": "yes"}),
            "option `skip_deletes` must be true or false",
        ),
    ];
    for (name, options, expected) in cases {
        let source = GuestSource::file(&dir_of(name), &format!("{name}.wasm")).unwrap();
        let err = Sandbox::load(source, &options, Limits::default())
            .err()
            .expect("refused");
        assert!(matches!(err.kind, SandboxErrorKind::Init(_)), "{err}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
}

#[test]
fn rename_renames_columns_and_the_target_table() {
    let sandbox = guest(
        "rename",
        json!({"columns": {"name": "title", "count": "n"}, "table": "dest2"}),
    );
    assert_eq!(sandbox.target_table(), Some("dest2"));
    let records = mixed();
    let out = sandbox.process("src", &records).unwrap();
    assert!(
        out.changes.iter().all(|c| matches!(c, Cow::Owned(_))),
        "renamed changes are new rows"
    );
    let rename = |n: &str| match n {
        "name" => "title".to_owned(),
        "count" => "n".to_owned(),
        other => other.to_owned(),
    };
    let expected: Vec<RowChange> = owned(changes(&records))
        .into_iter()
        .map(|c| match c {
            RowChange::Put { primary_key, cells } => RowChange::Put {
                primary_key,
                cells: cells
                    .into_iter()
                    .map(|c| Cell {
                        name: rename(&c.name),
                        ..c
                    })
                    .collect(),
            },
            RowChange::Update {
                primary_key,
                updates,
            } => RowChange::Update {
                primary_key,
                updates: updates
                    .into_iter()
                    .map(|u| ColumnUpdate {
                        name: rename(&u.name),
                        ..u
                    })
                    .collect(),
            },
            delete => delete,
        })
        .collect();
    assert_eq!(owned(out.changes), expected);

    let err = guest("rename", json!({"columns": {"id": "key"}}))
        .process("src", &records)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot rename primary key column `id`"),
        "{err}"
    );
}

fn misbehave(mode: &str, limits: Limits) -> Sandbox {
    guest_with("misbehave", json!({"mode": mode, "key": 2}), limits)
}

/// A batch the misbehaving guest leaves alone, to show the host still works after a failure.
fn harmless() -> Vec<TunnelRecord> {
    vec![put(7, true, true), put(8, false, true)]
}

#[test]
fn a_trap_is_contained_and_the_instance_replaced() {
    let sandbox = misbehave("trap", Limits::default());
    let err = sandbox.process("src", &mixed()).unwrap_err();
    assert!(matches!(err.kind, SandboxErrorKind::Trap(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("guest `misbehave.wasm`: trapped"),
        "{text}"
    );
    assert!(
        text.contains("a batch of 4 records, keys (region=\"eu\", id=1) to (region=\"eu\", id=4)"),
        "{text}"
    );
    assert_eq!(
        sandbox.process("src", &harmless()).unwrap().changes,
        changes(&harmless())
    );
    assert!(
        sandbox.process("src", &mixed()).is_err(),
        "the same batch fails the same way again"
    );
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let limits = Limits {
        call_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let sandbox = misbehave("loop", limits);
    let started = Instant::now();
    let err = sandbox.process("src", &mixed()).unwrap_err();
    assert_eq!(err.kind, SandboxErrorKind::Timeout { millis: 200 });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        sandbox.process("src", &harmless()).unwrap().changes,
        changes(&harmless())
    );
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let sandbox = misbehave("allocate", limits);
    let err = sandbox.process("src", &mixed()).unwrap_err();
    assert_eq!(err.kind, SandboxErrorKind::MemoryLimit { bytes: 16 << 20 });
    assert!(
        err.to_string()
            .contains("more than its 16 MiB memory limit"),
        "{err}"
    );
    assert_eq!(
        sandbox.process("src", &harmless()).unwrap().changes,
        changes(&harmless())
    );
}

#[test]
fn invalid_row_changes_are_refused_naming_the_record() {
    let err = misbehave("bad-key", Limits::default())
        .process("src", &mixed())
        .unwrap_err();
    assert!(
        matches!(err.kind, SandboxErrorKind::InvalidOutput(_)),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("primary key column `region` holds a boolean, not an integer"),
        "{text}"
    );
    assert!(
        text.contains("record 1 of the batch, key (region=\"eu\", id=2)"),
        "{text}"
    );

    let err = misbehave("long-name", Limits::default())
        .process("src", &mixed())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("column name of 300 bytes (at most 255)"),
        "{err}"
    );
}

#[test]
fn guest_failures_retry_skip_or_stop() {
    let records = mixed();
    let err = misbehave("retry", Limits::default())
        .process("src", &records)
        .unwrap_err();
    assert!(err.is_retriable(), "{err}");
    let err = misbehave("stop", Limits::default())
        .process("src", &records)
        .unwrap_err();
    assert!(!err.is_retriable(), "{err}");
    assert!(
        err.to_string().contains(
            "refusing record 1 on purpose (at record 1 of the batch, key (region=\"eu\", id=2))"
        ),
        "{err}"
    );

    let out = misbehave("skip", Limits::default())
        .process("src", &records)
        .unwrap();
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].index, 1);
    assert_eq!(out.skipped[0].message, "refusing record 1 on purpose");
    let mut expected = changes(&records);
    expected.remove(1);
    assert_eq!(out.changes, expected, "the other records are processed");
    assert!(
        borrow(
            &out.changes,
            &records[..1].iter().chain(&records[2..]).collect::<Vec<_>>()
        ),
        "after a skip the batch is passed again as a copy, but the kept changes are the \
         caller's records"
    );

    let out = misbehave("log-flood", Limits::default())
        .process("src", &records)
        .unwrap();
    assert_eq!(
        out.changes,
        changes(&records),
        "a log flood is rate-limited, not fatal"
    );
}

#[test]
fn a_changed_guest_file_takes_over_at_the_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("current.wasm");
    std::fs::copy(components().join("replicate.wasm"), &file).unwrap();
    let source = GuestSource::file(dir.path(), "current.wasm").unwrap();
    let sandbox = Sandbox::load(source, &json!({}), Limits::default()).unwrap();
    // With no options, misbehave does as a record's `misbehave` column says.
    let mut records = harmless();
    let RowChange::Put { cells, .. } = &mut records[0].change else {
        unreachable!()
    };
    cells.push(Cell {
        name: "misbehave".into(),
        value: Value::String("drop".into()),
        timestamp: Some(1),
    });
    assert_eq!(
        sandbox.process("src", &records).unwrap().changes,
        changes(&records)
    );

    // A broken file is refused and the running version kept: nothing is lost.
    std::fs::write(&file, b"not a component").unwrap();
    assert_eq!(
        sandbox.process("src", &records).unwrap().changes,
        changes(&records)
    );

    // A valid new version takes over at the next batch.
    std::fs::copy(dir_of("misbehave").join("misbehave.wasm"), &file).unwrap();
    let out = sandbox.process("src", &records).unwrap();
    assert!(
        out.changes.is_empty(),
        "the new version drops every record: {out:?}"
    );
}

#[test]
fn guest_files_cannot_escape_the_guest_directory() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("guests");
    std::fs::create_dir(&inner).unwrap();
    std::fs::copy(
        components().join("replicate.wasm"),
        dir.path().join("outside.wasm"),
    )
    .unwrap();
    for name in ["../outside.wasm", "/etc/passwd"] {
        let source = GuestSource::file(&inner, name).unwrap();
        let err = Sandbox::load(source, &json!({}), Limits::default())
            .err()
            .expect("refused");
        assert!(
            matches!(err.kind, SandboxErrorKind::Load(_)),
            "{name}: {err}"
        );
    }
    let err = GuestSource::file(&dir.path().join("missing"), "x.wasm").unwrap_err();
    assert!(err.to_string().contains("guest directory"), "{err}");
}

#[test]
fn builtin_guests_are_the_committed_components() {
    let names: Vec<&str> = GuestSource::builtin_names().collect();
    assert_eq!(names, ["replicate", "filter", "rename", "route"]);
    for name in names {
        let GuestSource::Builtin { bytes, .. } = GuestSource::builtin(name).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            bytes,
            std::fs::read(components().join(format!("{name}.wasm"))).unwrap()
        );
    }
}

#[test]
fn an_update_of_only_removed_columns_still_creates_the_row_without_their_data() {
    let sandbox = guest("filter", json!({"exclude_columns": ["blob", "extra"]}));
    let update = |updates: Vec<ColumnUpdate>| TunnelRecord {
        change: RowChange::Update {
            primary_key: key(9),
            updates,
        },
        sequence_info: seq(9),
    };
    let blob = |op| ColumnUpdate {
        name: "blob".into(),
        op,
    };
    let records = vec![update(vec![
        blob(ColumnOp::Put {
            value: Value::Binary(vec![1, 2, 3]),
            timestamp: Some(7),
        }),
        blob(ColumnOp::DeleteOneVersion { timestamp: 6 }),
        ColumnUpdate {
            name: "extra".into(),
            op: ColumnOp::DeleteAllVersions,
        },
    ])];
    let out = sandbox.process("src", &records).unwrap();
    assert_eq!(
        owned(out.changes),
        vec![RowChange::Update {
            primary_key: key(9),
            updates: vec![
                blob(ColumnOp::DeleteAllVersions),
                ColumnUpdate {
                    name: "extra".into(),
                    op: ColumnOp::DeleteAllVersions,
                },
            ],
        }],
        "the update writes no data of the removed columns but still reaches the row"
    );
}

#[test]
fn route_fans_each_record_out_to_its_copies_and_routes_by_key() {
    let copies = guest("route", json!({"copies": ["audit", "archive"]}))
        .route_to(["audit".to_owned(), "archive".to_owned()]);
    let records = mixed();
    let out = copies.process("src", &records).unwrap();
    let expected: Vec<RowChange> = owned(changes(&records))
        .into_iter()
        .flat_map(|c| [c.clone(), c.clone(), c])
        .collect();
    assert_eq!(
        owned(out.changes),
        expected,
        "each record, unchanged, three times"
    );
    let table = |t: &str| Some(Arc::<str>::from(t));
    let tables: Vec<_> = (0..records.len())
        .flat_map(|_| [None, table("audit"), table("archive")])
        .collect();
    assert_eq!(out.tables, tables);
    assert_eq!(
        out.origins,
        (0..records.len())
            .flat_map(|i| [i, i, i])
            .collect::<Vec<_>>()
    );

    // By a key column: every record's region is "eu".
    let by_region = guest(
        "route",
        json!({"column": "region", "tables": {"eu": "orders_eu"}}),
    )
    .route_to(["orders_eu".to_owned()]);
    let out = by_region.process("src", &records).unwrap();
    assert_eq!(out.changes, changes(&records));
    assert!(
        out.tables.iter().all(|t| *t == table("orders_eu")),
        "{:?}",
        out.tables
    );
}

#[test]
fn a_change_routed_to_a_table_the_config_does_not_list_is_invalid_output() {
    let records = mixed();
    let unlisted = guest("route", json!({"copies": ["audit"]}));
    let err = unlisted.process("src", &records).unwrap_err();
    assert!(
        matches!(err.kind, SandboxErrorKind::InvalidOutput(_)),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("routes a change to table `audit`, but its config lists no `tables`")
            && text.contains("record 0 of the batch"),
        "{text}"
    );
    let other = guest("route", json!({"copies": ["audit"]})).route_to(["archive".to_owned()]);
    let text = other.process("src", &records).unwrap_err().to_string();
    assert!(
        text.contains("table `audit`, which is not among its `tables` (`archive`)"),
        "{text}"
    );
}

#[test]
fn a_guest_built_against_wit_0_2_0_keeps_loading_and_working() {
    let options = json!({"column": "active", "equals": true, "exclude_columns": ["blob"]});
    let old = guest("filter-0.2.0", options.clone());
    let new = guest("filter", options);
    let mut records = mixed();
    records.extend([
        put(1, true, false),
        put(2, false, false),
        put(3, false, true),
    ]);
    let (old, new) = (
        old.process("src", &records).unwrap(),
        new.process("src", &records).unwrap(),
    );
    assert!(
        old.changes
            .iter()
            .any(|c| matches!(&**c, RowChange::Delete { .. })),
        "the batch exercises replacements: {old:?}"
    );
    assert_eq!(
        old, new,
        "the 0.2.0 build and today's build of filter agree"
    );
    assert!(old.tables.iter().all(Option::is_none));
}

/// Whether `changes` are `records`' own changes themselves, not copies: how kept records come
/// back, so that they are written without copying their cells.
fn borrow(changes: &[Cow<'_, RowChange>], records: &[&TunnelRecord]) -> bool {
    changes.len() == records.len()
        && changes.iter().zip(records).all(
            |(change, record)| matches!(change, Cow::Borrowed(c) if std::ptr::eq(*c, &record.change)),
        )
}
