//! Any request body to any API of the local server is answered with a result or a service
//! error, never a panic. The first input byte picks the API; the rest is the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ots_local_server::ServerState;
use ots_protocol::pb::table::{
    CapacityUnit, CreateTableRequest, PrimaryKeySchema, PrimaryKeyType, ReservedThroughput,
    StreamSpecification, TableMeta,
};

const APIS: &[&str] = &[
    "/CreateTable", "/DescribeTable", "/ListTable", "/DeleteTable", "/UpdateTable", "/PutRow",
    "/UpdateRow", "/DeleteRow", "/GetRow", "/GetRange", "/BatchGetRow", "/BatchWriteRow",
    "/ComputeSplitPointsBySize", "/admin/SplitPartition", "/tunnel/create", "/tunnel/list",
    "/tunnel/describe", "/tunnel/delete", "/tunnel/connect", "/tunnel/heartbeat",
    "/tunnel/shutdown", "/tunnel/getcheckpoint", "/tunnel/checkpoint", "/tunnel/readrecords",
    "/tunnel/getrpo", "/tunnel/getrpobyoffset", "/tunnel/schedule", "/ListStream",
    "/DescribeStream", "/GetShardIterator", "/GetStreamRecord",
];

fn state() -> &'static ServerState {
    static STATE: OnceLock<ServerState> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ots-fuzz-{}", std::process::id()));
        let state = ServerState::open(&ots_testkit::server_config(&dir, Default::default()))
            .expect("the server state opens");
        let table = CreateTableRequest {
            table_meta: TableMeta {
                table_name: "t".into(),
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
                enable_stream: true,
                expiration_time: None,
                ..Default::default()
            }),
            ..Default::default()
        };
        let _ = state.store.create_table(table, 0);
        state
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let path = APIS[pick as usize % APIS.len()];
    let _ = ots_local_server::api::dispatch(state(), path, body);
});
