//! Protobuf messages of the Tablestore APIs, written by hand with `prost` derives so a build
//! needs no `protoc`. Field numbers, labels and enum values follow the service's proto2
//! definitions (`com.aliyun.tablestore.protocol` and the tunnel service).

pub mod filter;
pub mod stream;
pub mod table;
pub mod tunnel;
