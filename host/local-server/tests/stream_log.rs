//! The stream log: one record per changed row, in commit order per partition, in the write's
//! transaction; partition splits close the parent and route new writes to the children.

use ots_local_server::rules::Expectation;
use ots_local_server::store::{Store, WriteOp};
use ots_protocol::model::{
    Cell, ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange,
    RowExistence, Value,
};
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, ReservedThroughput,
    StreamSpecification, TableMeta,
};
use ots_protocol::pb::tunnel::ActionType;
use ots_protocol::plainbuffer::{self, RowChangeKind};

fn id(i: i64) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: "id".into(),
        value: PrimaryKeyValue::Integer(i),
    }])
}

fn table(stream: bool) -> CreateTableRequest {
    CreateTableRequest {
        table_meta: TableMeta {
            table_name: "src".into(),
            primary_key: vec![PrimaryKeySchema {
                name: "id".into(),
                r#type: PrimaryKeyType::Integer as i32,
                option: None,
            }],
            defined_column: vec![],
            ..Default::default()
        },
        reserved_throughput: ReservedThroughput {
            capacity_unit: CapacityUnit::default(),
        },
        table_options: None,
        partitions: vec![],
        stream_spec: Some(StreamSpecification {
            enable_stream: stream,
            expiration_time: Some(24),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn op(change: RowChange, existence: RowExistence) -> WriteOp {
    WriteOp {
        change,
        expectation: Expectation {
            existence,
            condition: None,
        },
    }
}

fn put(i: i64, ts: Option<i64>) -> WriteOp {
    op(
        RowChange::Put {
            primary_key: id(i),
            cells: vec![Cell {
                name: "v".into(),
                value: Value::Integer(i),
                timestamp: ts,
            }],
        },
        RowExistence::Ignore,
    )
}

fn decode(record: &ots_protocol::pb::tunnel::Record) -> RowChange {
    let kind = match ActionType::try_from(record.action_type).unwrap() {
        ActionType::PutRow => RowChangeKind::Put,
        ActionType::UpdateRow => RowChangeKind::Update,
        ActionType::DeleteRow => RowChangeKind::Delete,
    };
    plainbuffer::decode_row_change(&record.record, kind).unwrap()
}

#[test]
fn every_acknowledged_change_is_logged_in_order_with_server_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    store.create_table(table(true), now).unwrap();
    let update = RowChange::Update {
        primary_key: id(1),
        updates: vec![
            ColumnUpdate {
                name: "v".into(),
                op: ColumnOp::DeleteOneVersion { timestamp: now - 5 },
            },
            ColumnUpdate {
                name: "n".into(),
                op: ColumnOp::Increment { delta: 2 },
            },
        ],
    };
    let results = store
        .write_rows(
            "src",
            vec![
                put(1, None),
                put(2, Some(now - 10)),
                op(update, RowExistence::Ignore),
                op(
                    RowChange::Delete { primary_key: id(2) },
                    RowExistence::Ignore,
                ),
                // Fails its condition: not applied, not logged.
                op(
                    RowChange::Delete { primary_key: id(9) },
                    RowExistence::ExpectExist,
                ),
            ],
            move || now,
        )
        .unwrap();
    assert!(results[..4].iter().all(Result::is_ok));
    assert!(results[4].is_err());

    let (records, head) = store.read_log("src", 0, 0, 100).unwrap();
    assert_eq!(head, 4);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let changes: Vec<RowChange> = records.iter().map(|r| decode(&r.record)).collect();
    // The server-assigned timestamp and the increment's result are what the log carries.
    assert_eq!(changes[0], put(1, Some(now)).change);
    assert_eq!(changes[1], put(2, Some(now - 10)).change);
    assert_eq!(
        changes[2],
        RowChange::Update {
            primary_key: id(1),
            updates: vec![
                ColumnUpdate {
                    name: "v".into(),
                    op: ColumnOp::DeleteOneVersion { timestamp: now - 5 },
                },
                ColumnUpdate {
                    name: "n".into(),
                    op: ColumnOp::Put {
                        value: Value::Integer(2),
                        timestamp: Some(now),
                    },
                },
            ],
        }
    );
    assert_eq!(changes[3], RowChange::Delete { primary_key: id(2) });
    assert!(records.iter().all(|r| r.timestamp_us == now * 1000));

    let (after_two, _) = store.read_log("src", 0, 2, 1).unwrap();
    assert_eq!(after_two.len(), 1);
    assert_eq!(after_two[0].seq, 3);
}

#[test]
fn tables_without_a_stream_log_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    store.create_table(table(false), now).unwrap();
    store
        .write_rows("src", vec![put(1, None)], move || now)
        .unwrap();
    assert_eq!(store.read_log("src", 0, 0, 10).unwrap().1, 0);
}

#[test]
fn splits_close_the_parent_and_route_writes_to_children() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    store.create_table(table(true), now).unwrap();
    store
        .write_rows("src", vec![put(1, None), put(100, None)], move || now)
        .unwrap();
    let (left, right) = store.split_partition("src", 0, &id(50)).unwrap();
    assert!(
        store.split_partition("src", 0, &id(60)).is_err(),
        "parent is closed"
    );
    assert!(
        store.split_partition("src", left, &id(70)).is_err(),
        "70 is not inside [-inf, 50)"
    );
    store
        .write_rows(
            "src",
            vec![put(2, None), put(200, None), put(50, None)],
            move || now,
        )
        .unwrap();

    let partitions = store.partitions("src").unwrap();
    assert_eq!(partitions.len(), 3);
    assert!(partitions[0].closed);
    assert_eq!(partitions[1].parents, vec![0]);
    assert_eq!(partitions[2].parents, vec![0]);
    let keys = |p| -> Vec<PrimaryKey> {
        store
            .read_log("src", p, 0, 10)
            .unwrap()
            .0
            .iter()
            .map(|r| decode(&r.record).primary_key().clone())
            .collect()
    };
    assert_eq!(keys(0), vec![id(1), id(100)]);
    assert_eq!(keys(left), vec![id(2)]);
    assert_eq!(keys(right), vec![id(200), id(50)]);

    // The log and the partitions survive reopening the database.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.partitions("src").unwrap(), partitions);
    assert_eq!(store.read_log("src", right, 0, 10).unwrap().1, 2);
}
