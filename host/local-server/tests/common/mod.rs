//! Shared set-up of the server tests.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use ots_client::{Client, ClientConfig};
use ots_local_server::{FaultConfig, RunningServer, ServerConfig};
use ots_protocol::auth::Credentials;

pub const INSTANCE: &str = "local";
pub const ACCESS_ID: &str = "test-id";
pub const ACCESS_SECRET: &str = "test-secret";

pub fn config(data_dir: &std::path::Path, faults: FaultConfig) -> ServerConfig {
    ServerConfig {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        instance_name: INSTANCE.into(),
        access_keys: vec![(ACCESS_ID.into(), ACCESS_SECRET.into())],
        faults,
    }
}

pub async fn start(data_dir: &std::path::Path) -> RunningServer {
    ots_local_server::start(config(data_dir, FaultConfig::default()))
        .await
        .unwrap()
}

pub fn client(endpoint: String) -> Client {
    Client::new(ClientConfig::new(
        endpoint,
        INSTANCE,
        Credentials {
            access_key_id: ACCESS_ID.into(),
            access_key_secret: ACCESS_SECRET.into(),
            security_token: None,
        },
    ))
    .unwrap()
}
