//! Tablestore's data model over HTTP: versions, max versions, TTL, max time deviation,
//! conditional writes, auto-increment keys, split points and service limits.

use ots_client::Client;
use ots_client::rows::{RangeQuery, ReadOptions};
use ots_protocol::error::ErrorCode;
use ots_protocol::model::{
    ColumnOp, ColumnUpdate, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, RowExistence,
    Value,
};
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, PrimaryKeyOption, PrimaryKeySchema, PrimaryKeyType,
    ReservedThroughput, TableMeta, TableOptions,
};
use ots_testkit::LocalServer;

fn key(name: &str, value: PrimaryKeyValue) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: name.into(),
        value,
    }])
}

fn id(i: i64) -> PrimaryKey {
    key("id", PrimaryKeyValue::Integer(i))
}

async fn create(client: &Client, name: &str, options: TableOptions, auto_increment: bool) {
    let mut primary_key = vec![PrimaryKeySchema {
        name: "id".into(),
        r#type: PrimaryKeyType::Integer as i32,
        option: None,
    }];
    if auto_increment {
        primary_key.push(PrimaryKeySchema {
            name: "seq".into(),
            r#type: PrimaryKeyType::Integer as i32,
            option: Some(PrimaryKeyOption::AutoIncrement as i32),
        });
    }
    client
        .create_table(&CreateTableRequest {
            table_meta: TableMeta {
                table_name: name.into(),
                primary_key,
                defined_column: vec![],
                ..Default::default()
            },
            reserved_throughput: ReservedThroughput {
                capacity_unit: CapacityUnit::default(),
            },
            table_options: Some(options),
            partitions: vec![],
            stream_spec: None,
            ..Default::default()
        })
        .await
        .unwrap();
}

fn put_version(pk: PrimaryKey, ts: i64, v: i64) -> RowChange {
    RowChange::Update {
        primary_key: pk,
        updates: vec![ColumnUpdate {
            name: "c".into(),
            op: ColumnOp::Put {
                value: Value::Integer(v),
                timestamp: Some(ts),
            },
        }],
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_are_trimmed_to_max_versions_newest_first() {
    let server = LocalServer::start().await;
    let client = server.client();
    let options = TableOptions {
        max_versions: Some(2),
        ..Default::default()
    };
    create(&client, "versions", options, false).await;
    let t = now();
    for (i, ts) in [t - 3000, t - 1000, t - 2000].into_iter().enumerate() {
        client
            .write_row(
                "versions",
                &put_version(id(1), ts, i as i64),
                RowExistence::Ignore,
            )
            .await
            .unwrap();
    }
    let all = ReadOptions {
        max_versions: 10,
        ..Default::default()
    };
    let row = client
        .get_row("versions", &id(1), &all)
        .await
        .unwrap()
        .unwrap();
    let versions: Vec<_> = row.cells.iter().map(|c| c.timestamp.unwrap()).collect();
    assert_eq!(versions, vec![t - 1000, t - 2000]);
    let newest = client
        .get_row("versions", &id(1), &ReadOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newest.cells.len(), 1);
    assert_eq!(newest.cells[0].value, Value::Integer(1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_hides_expired_cells_and_deviation_rejects_old_writes() {
    let server = LocalServer::start().await;
    let client = server.client();
    // The shortest TTL the service takes is a day, so the expired cell is written with a
    // timestamp two days old, inside a week of max time deviation.
    const DAY_MS: i64 = 86_400_000;
    let options = TableOptions {
        time_to_live: Some(86_400),
        deviation_cell_version_in_sec: Some(7 * 86_400),
        ..Default::default()
    };
    create(&client, "ttl", options, false).await;
    let t = now();
    client
        .write_row(
            "ttl",
            &put_version(id(1), t - 2 * DAY_MS, 1),
            RowExistence::Ignore,
        )
        .await
        .unwrap();
    client
        .write_row("ttl", &put_version(id(2), t, 2), RowExistence::Ignore)
        .await
        .unwrap();
    let read = ReadOptions::default();
    assert_eq!(client.get_row("ttl", &id(1), &read).await.unwrap(), None);
    assert!(
        client
            .get_row("ttl", &id(2), &read)
            .await
            .unwrap()
            .is_some()
    );

    let err = client
        .write_row(
            "ttl",
            &put_version(id(3), t - 8 * DAY_MS, 3),
            RowExistence::Ignore,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ParameterInvalid));
    assert!(err.to_string().contains("max time deviation"), "{err}");

    // A TTL under a day is refused, at creation and by UpdateTable.
    let short = TableOptions {
        time_to_live: Some(3600),
        ..Default::default()
    };
    let err = client
        .create_table(&CreateTableRequest {
            table_meta: TableMeta {
                table_name: "short_ttl".into(),
                primary_key: vec![PrimaryKeySchema {
                    name: "id".into(),
                    r#type: PrimaryKeyType::Integer as i32,
                    option: None,
                }],
                ..Default::default()
            },
            table_options: Some(short),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ParameterInvalid));
    assert!(err.to_string().contains("at least 86400 seconds"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_and_auto_increment() {
    let server = LocalServer::start().await;
    let client = server.client();
    create(&client, "auto", TableOptions::default(), true).await;
    let auto_key = PrimaryKey(vec![
        PrimaryKeyColumn {
            name: "id".into(),
            value: PrimaryKeyValue::Integer(7),
        },
        PrimaryKeyColumn {
            name: "seq".into(),
            value: PrimaryKeyValue::AutoIncrement,
        },
    ]);
    let put = RowChange::Put {
        primary_key: auto_key,
        cells: vec![],
    };
    for _ in 0..3 {
        client
            .write_row("auto", &put, RowExistence::Ignore)
            .await
            .unwrap();
    }
    // Only unconditional writes take a placeholder (the service's "Invalid expect").
    let err = client
        .write_row("auto", &put, RowExistence::ExpectNotExist)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ParameterInvalid));
    assert!(
        err.to_string()
            .contains("Invalid expect:EXPECT_NOT_EXIST when modify row with pk auto increment."),
        "{err}"
    );
    let rows = client
        .get_range(RangeQuery {
            table: "auto".into(),
            start: PrimaryKey(vec![
                PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::InfMin,
                },
                PrimaryKeyColumn {
                    name: "seq".into(),
                    value: PrimaryKeyValue::InfMin,
                },
            ]),
            end: PrimaryKey(vec![
                PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::InfMax,
                },
                PrimaryKeyColumn {
                    name: "seq".into(),
                    value: PrimaryKeyValue::InfMax,
                },
            ]),
            backward: false,
            limit: None,
            page_size: None,
            options: ReadOptions::default(),
        })
        .collect_all()
        .await
        .unwrap();
    let seqs: Vec<_> = rows
        .iter()
        .map(|r| r.primary_key.0[1].value.clone())
        .collect();
    assert_eq!(
        seqs,
        (1..=3).map(PrimaryKeyValue::Integer).collect::<Vec<_>>()
    );

    let fixed = rows[0].primary_key.clone();
    let err = client
        .write_row(
            "auto",
            &RowChange::Delete {
                primary_key: PrimaryKey(vec![
                    fixed.0[0].clone(),
                    PrimaryKeyColumn {
                        name: "seq".into(),
                        value: PrimaryKeyValue::Integer(99),
                    },
                ]),
            },
            RowExistence::ExpectExist,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ConditionCheckFail));
    client
        .write_row(
            "auto",
            &RowChange::Delete { primary_key: fixed },
            RowExistence::ExpectExist,
        )
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_write_reports_rows_and_split_points_cover_the_table() {
    let server = LocalServer::start().await;
    let client = server.client();
    create(&client, "big", TableOptions::default(), false).await;
    let t = now();
    for batch in 0..10 {
        let changes: Vec<_> = (0..200)
            .map(|i| put_version(id(batch * 200 + i), t, i))
            .collect();
        let outcomes = client.batch_write_row("big", &changes).await.unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
    }
    // A bad row fails alone; the rest of the batch is applied.
    let mixed = vec![
        put_version(id(5000), t, 1),
        put_version(id(5001), t - 10_000_000_000, 1),
        put_version(id(5002), t, 1),
    ];
    let outcomes = client.batch_write_row("big", &mixed).await.unwrap();
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().code(),
        Some(&ErrorCode::ParameterInvalid)
    );

    // The same row twice in one request is applied in order, as the service does since its
    // fix of BUG#268767 (Python SDK test_batch_write_on_the_same_row).
    let dup = vec![put_version(id(1), t - 1, 1), put_version(id(1), t - 2, 2)];
    let outcomes = client.batch_write_row("big", &dup).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    let row = client
        .get_row(
            "big",
            &id(1),
            &ReadOptions {
                max_versions: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.cells[0].timestamp,
        Some(t),
        "the newest version is kept"
    );

    // Split points come in whole MiB (the service's smallest unit): about 3.5 MiB of rows.
    let blob = Value::Binary(vec![7; 8 * 1024]);
    for batch in 0..3 {
        let changes: Vec<_> = (0..150)
            .map(|i| RowChange::Put {
                primary_key: id(10_000 + batch * 150 + i),
                cells: vec![ots_protocol::model::Cell {
                    name: "blob".into(),
                    value: blob.clone(),
                    timestamp: Some(t),
                }],
            })
            .collect();
        let outcomes = client.batch_write_row("big", &changes).await.unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
    }
    let split = client
        .compute_split_points_by_size("big", 1024 * 1024)
        .await
        .unwrap();
    assert!(split.points.len() >= 3, "{} points", split.points.len());
    assert!(split.points.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(split.schema[0].name, "id");
    server.shutdown().await;
}
