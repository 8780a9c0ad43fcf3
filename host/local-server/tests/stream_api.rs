//! The Stream API over HTTP (`/ListStream`, `/DescribeStream`, `/GetShardIterator`,
//! `/GetStreamRecord`) as DataX's otsstreamreader and the Go and Java SDKs use it: one shard per
//! partition, iterators that name a position (the same position gives the same iterator, which
//! the Go SDK's stream test relies on), times in microseconds, a closed shard ending without a
//! next iterator.

use ots_client::Client;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::stream::*;
use ots_protocol::pb::table::{
    CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, StreamSpecification, TableMeta,
};
use ots_protocol::pb::tunnel as tunnel_pb;
use ots_protocol::record::TunnelRecord;
use ots_testkit::LocalServer;

fn id(i: i64) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: "id".into(),
        value: PrimaryKeyValue::Integer(i),
    }])
}

fn put(i: i64) -> RowChange {
    RowChange::Put {
        primary_key: id(i),
        cells: vec![Cell {
            name: "v".into(),
            value: Value::Integer(i),
            timestamp: None,
        }],
    }
}

async fn table(client: &Client, name: &str, stream: bool) {
    client
        .create_table(&CreateTableRequest {
            table_meta: TableMeta {
                table_name: name.into(),
                primary_key: vec![PrimaryKeySchema {
                    name: "id".into(),
                    r#type: PrimaryKeyType::Integer as i32,
                    option: None,
                }],
                ..Default::default()
            },
            stream_spec: Some(StreamSpecification {
                enable_stream: stream,
                expiration_time: stream.then_some(24),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn write(client: &Client, table: &str, changes: &[RowChange]) {
    let outcomes = client.batch_write_row(table, changes).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
}

async fn records(client: &Client, iterator: &str, limit: Option<i32>) -> GetStreamRecordResponse {
    client
        .call(
            "/GetStreamRecord",
            &GetStreamRecordRequest {
                shard_iterator: iterator.into(),
                limit,
                table_name: None,
            },
            true,
        )
        .await
        .unwrap()
}

fn changes(response: &GetStreamRecordResponse) -> Vec<TunnelRecord> {
    response
        .stream_records
        .iter()
        .map(|r| {
            TunnelRecord::decode(&tunnel_pb::Record {
                action_type: r.action_type,
                record: r.record.clone(),
                origin_record: r.origin_record.clone(),
            })
            .unwrap()
        })
        .collect()
}

async fn iterator(client: &Client, stream: &str, shard: &str, timestamp: Option<i64>) -> String {
    let response: GetShardIteratorResponse = client
        .call(
            "/GetShardIterator",
            &GetShardIteratorRequest {
                stream_id: stream.into(),
                shard_id: shard.into(),
                timestamp,
                token: None,
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(response.next_token, None, "a seek finishes in one call");
    response.shard_iterator
}

async fn describe(client: &Client, stream: &str) -> DescribeStreamResponse {
    client
        .call(
            "/DescribeStream",
            &DescribeStreamRequest {
                stream_id: stream.into(),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_list_describe_and_read_in_order() {
    let server = LocalServer::start().await;
    let client = server.client();
    table(&client, "s", true).await;
    table(&client, "plain", false).await;

    let listed: ListStreamResponse = client
        .call("/ListStream", &ListStreamRequest { table_name: None }, true)
        .await
        .unwrap();
    assert_eq!(listed.streams.len(), 1, "only the table with a stream");
    let stream = &listed.streams[0];
    assert_eq!(stream.table_name, "s");
    let details = client
        .describe_table("s")
        .await
        .unwrap()
        .stream_details
        .unwrap();
    assert_eq!(
        details.stream_id.as_deref(),
        Some(stream.stream_id.as_str())
    );
    assert_eq!(details.last_enable_time, Some(stream.creation_time));
    let now_us = chrono::Utc::now().timestamp_micros();
    assert!(
        (now_us - stream.creation_time).abs() < 60_000_000,
        "creation time in microseconds"
    );

    let described = describe(&client, &stream.stream_id).await;
    assert_eq!(described.stream_status, StreamStatus::StreamActive as i32);
    assert_eq!(described.expiration_time, 24);
    assert_eq!(described.table_name, "s");
    assert_eq!(described.shards.len(), 1);
    let shard = described.shards[0].shard_id.clone();

    write(&client, "s", &(0..5).map(put).collect::<Vec<_>>()).await;
    let seek_after = chrono::Utc::now().timestamp_micros() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    write(
        &client,
        "s",
        &[put(10), RowChange::Delete { primary_key: id(0) }],
    )
    .await;

    let start = iterator(&client, &stream.stream_id, &shard, None).await;
    let first = records(&client, &start, Some(3)).await;
    assert_eq!(first.stream_records.len(), 3);
    assert_eq!(first.may_more_record, Some(true));
    let rest = records(&client, first.next_shard_iterator.as_deref().unwrap(), None).await;
    let all: Vec<TunnelRecord> = changes(&first).into_iter().chain(changes(&rest)).collect();
    assert_eq!(all.len(), 7);
    assert_eq!(all[6].change, RowChange::Delete { primary_key: id(0) });
    let infos: Vec<_> = all.iter().map(|r| r.sequence_info.unwrap()).collect();
    assert!(
        infos.windows(2).all(|w| w[0] < w[1]),
        "sequence infos strictly increase: {infos:?}"
    );

    // Nothing new: the same position comes back as the same iterator.
    let end = rest.next_shard_iterator.clone().unwrap();
    let idle = records(&client, &end, None).await;
    assert!(idle.stream_records.is_empty());
    assert_eq!(idle.next_shard_iterator.as_deref(), Some(end.as_str()));

    // A seek by time starts at the first record committed then or later.
    let later = iterator(&client, &stream.stream_id, &shard, Some(seek_after)).await;
    let seen = changes(&records(&client, &later, None).await);
    assert_eq!(seen.len(), 2, "the writes after the seek time");
    assert_eq!(seen[0].change.primary_key(), &id(10));

    // After a split the parent is closed: read to its end, it has no next iterator.
    ots_testkit::split_partition(&client, "s", 0, 100).await;
    let split = describe(&client, &stream.stream_id).await;
    assert_eq!(split.shards.len(), 3);
    assert!(
        split.shards[1..]
            .iter()
            .all(|s| s.parent_id.as_deref() == Some(shard.as_str()))
    );
    let closed = records(&client, &end, None).await;
    assert!(closed.stream_records.is_empty());
    assert_eq!(closed.next_shard_iterator, None, "a closed shard ends");

    let unknown = client
        .call::<_, DescribeStreamResponse>(
            "/DescribeStream",
            &DescribeStreamRequest {
                stream_id: "nope_1".into(),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(
        unknown.code(),
        Some(&ots_protocol::error::ErrorCode::ObjectNotExist)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_past_the_expiration_are_trimmed() {
    // An hour lasts 50 ms: the 24-hour stream keeps records 1.2 s.
    let server = LocalServer::start_with_stream_hour(std::time::Duration::from_millis(50)).await;
    let client = server.client();
    table(&client, "s", true).await;
    write(&client, "s", &[put(1), put(2)]).await;
    let listed: ListStreamResponse = client
        .call("/ListStream", &ListStreamRequest { table_name: None }, true)
        .await
        .unwrap();
    let stream = listed.streams[0].stream_id.clone();
    let shard = describe(&client, &stream).await.shards[0].shard_id.clone();
    let early = iterator(&client, &stream, &shard, None).await;
    assert_eq!(changes(&records(&client, &early, None).await).len(), 2);

    tokio::time::sleep(std::time::Duration::from_millis(1_400)).await;
    write(&client, "s", &[put(3)]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let error = loop {
        let read = client
            .call::<_, GetStreamRecordResponse>(
                "/GetStreamRecord",
                &GetStreamRecordRequest {
                    shard_iterator: early.clone(),
                    limit: None,
                    table_name: None,
                },
                true,
            )
            .await;
        match read {
            Err(error) => break error,
            Ok(_) => {
                assert!(std::time::Instant::now() < deadline, "never trimmed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(
        error.code(),
        Some(&ots_protocol::error::ErrorCode::TrimmedDataAccess),
        "{error}"
    );
    // TRIM_HORIZON starts at the oldest record kept: 3 once 2 (the newest of its time,
    // kept while it was the newest) went too.
    loop {
        let horizon = iterator(&client, &stream, &shard, None).await;
        let kept = changes(&records(&client, &horizon, None).await);
        assert_eq!(kept.last().unwrap().change.primary_key(), &id(3));
        if kept.len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "2 was never trimmed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}
