//! Table APIs: create, describe, list, update, delete, and split points.

use ots_protocol::model::PrimaryKey;
use ots_protocol::pb::table::*;
use ots_protocol::plainbuffer;

use crate::{Client, ClientError};

/// Split points of a table, as ComputeSplitPointsBySize returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPoints {
    /// The table's primary key schema.
    pub schema: Vec<PrimaryKeySchema>,
    /// Primary keys (possibly shorter than the schema) where ranges split, ascending.
    pub points: Vec<PrimaryKey>,
}

impl Client {
    /// Creates a table.
    pub async fn create_table(&self, request: &CreateTableRequest) -> Result<(), ClientError> {
        self.call::<_, CreateTableResponse>("/CreateTable", request, false)
            .await
            .map(drop)
    }

    /// Describes a table: schema, options, stream details, partition splits.
    pub async fn describe_table(&self, table: &str) -> Result<DescribeTableResponse, ClientError> {
        let request = DescribeTableRequest {
            table_name: table.to_owned(),
        };
        self.call("/DescribeTable", &request, true).await
    }

    /// Lists the instance's tables.
    pub async fn list_table(&self) -> Result<Vec<String>, ClientError> {
        let response: ListTableResponse =
            self.call("/ListTable", &ListTableRequest {}, true).await?;
        Ok(response.table_names)
    }

    /// Changes a table's options, throughput or stream.
    pub async fn update_table(
        &self,
        request: &UpdateTableRequest,
    ) -> Result<UpdateTableResponse, ClientError> {
        self.call("/UpdateTable", request, false).await
    }

    /// Turns a table's stream on, keeping records `expiration_hours`.
    pub async fn enable_stream(
        &self,
        table: &str,
        expiration_hours: i32,
    ) -> Result<(), ClientError> {
        let request = UpdateTableRequest {
            table_name: table.to_owned(),
            reserved_throughput: None,
            table_options: None,
            stream_spec: Some(StreamSpecification {
                enable_stream: true,
                expiration_time: Some(expiration_hours),
                columns_to_get: Vec::new(),
            }),
        };
        self.update_table(&request).await.map(drop)
    }

    /// Deletes a table.
    pub async fn delete_table(&self, table: &str) -> Result<(), ClientError> {
        let request = DeleteTableRequest {
            table_name: table.to_owned(),
        };
        self.call::<_, DeleteTableResponse>("/DeleteTable", &request, false)
            .await
            .map(drop)
    }

    /// Splits a table's key space into ranges of about `split_size_bytes` each, rounded up to
    /// whole MiB (the service's smallest split unit).
    pub async fn compute_split_points_by_size(
        &self,
        table: &str,
        split_size_bytes: i64,
    ) -> Result<SplitPoints, ClientError> {
        const MIB: i64 = 1024 * 1024;
        let request = ComputeSplitPointsBySizeRequest {
            table_name: table.to_owned(),
            split_size: (split_size_bytes.max(1) + MIB - 1) / MIB,
            split_size_unit_in_byte: Some(MIB),
            split_point_limit: None,
        };
        let response: ComputeSplitPointsBySizeResponse = self
            .call("/ComputeSplitPointsBySize", &request, true)
            .await?;
        let points = response
            .split_points
            .iter()
            .map(|p| plainbuffer::decode_primary_key(p))
            .collect::<Result<_, _>>()?;
        Ok(SplitPoints {
            schema: response.schema,
            points,
        })
    }
}
