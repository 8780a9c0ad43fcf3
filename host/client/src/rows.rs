//! Row APIs: single-row reads and writes, paged range reads, batch reads and batch writes.

use std::borrow::Borrow;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{PrimaryKey, PrimaryKeyValue, Row, RowChange, RowExistence, Value};
use ots_protocol::pb::table::*;
use ots_protocol::plainbuffer;

use crate::{Client, ClientError};

/// The most rows one BatchWriteRow request may carry.
pub const MAX_BATCH_WRITE_ROWS: usize = 200;
/// The most rows one BatchGetRow request may carry.
pub const MAX_BATCH_GET_ROWS: usize = 100;

/// Which columns and versions a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Columns to return; empty means all.
    pub columns_to_get: Vec<String>,
    /// Newest versions per column to return.
    pub max_versions: i32,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            columns_to_get: Vec::new(),
            max_versions: 1,
        }
    }
}

/// A range read: `[start, end)` forward, or `(end, start]` backward as the service defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// Table to read.
    pub table: String,
    /// Inclusive start key (may use `InfMin`/`InfMax`).
    pub start: PrimaryKey,
    /// Exclusive end key.
    pub end: PrimaryKey,
    /// Read backward (from `start` down to `end`).
    pub backward: bool,
    /// Stop after this many rows in total.
    pub limit: Option<usize>,
    /// Rows per request (the service caps pages by size too).
    pub page_size: Option<i32>,
    /// Columns and versions.
    pub options: ReadOptions,
}

impl RangeQuery {
    /// Every row of the table `meta` describes, forward, in one read with `options`; callers
    /// set a limit or a page size on the result.
    pub fn whole_table(meta: &TableMeta, options: ReadOptions) -> Self {
        Self {
            table: meta.table_name.clone(),
            start: meta.bound(PrimaryKeyValue::InfMin),
            end: meta.bound(PrimaryKeyValue::InfMax),
            backward: false,
            limit: None,
            page_size: None,
            options,
        }
    }
}

/// Reads a range page by page, following the service's next start key.
#[derive(Debug)]
pub struct RangeReader {
    client: Client,
    query: RangeQuery,
    next_start: Option<PrimaryKey>,
    returned: usize,
}

impl RangeReader {
    /// The next page of rows, or `None` when the range is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Row>>, ClientError> {
        let Some(start) = self.next_start.take() else {
            return Ok(None);
        };
        let remaining = self.query.limit.map(|l| l.saturating_sub(self.returned));
        if remaining == Some(0) {
            return Ok(None);
        }
        let page_limit = match (self.query.page_size, remaining) {
            (Some(p), Some(r)) => Some(p.min(i32::try_from(r).unwrap_or(i32::MAX))),
            (Some(p), None) => Some(p),
            (None, Some(r)) => Some(i32::try_from(r).unwrap_or(i32::MAX)),
            (None, None) => None,
        };
        let request = GetRangeRequest {
            table_name: self.query.table.clone(),
            direction: if self.query.backward {
                Direction::Backward
            } else {
                Direction::Forward
            } as i32,
            columns_to_get: self.query.options.columns_to_get.clone(),
            max_versions: Some(self.query.options.max_versions),
            limit: page_limit,
            inclusive_start_primary_key: plainbuffer::encode_primary_key(&start),
            exclusive_end_primary_key: plainbuffer::encode_primary_key(&self.query.end),
            ..Default::default()
        };
        let response: GetRangeResponse = self.client.call("/GetRange", &request, true).await?;
        let rows = plainbuffer::decode_rows(&response.rows)?;
        self.returned += rows.len();
        self.next_start = match response.next_start_primary_key {
            Some(bytes) if !bytes.is_empty() => Some(plainbuffer::decode_primary_key(&bytes)?),
            _ => None,
        };
        Ok(Some(rows))
    }

    /// Where the next page starts; `None` once the range is exhausted. A reader started
    /// there later reads the rest of the range.
    pub fn next_start(&self) -> Option<&PrimaryKey> {
        self.next_start.as_ref()
    }

    /// Reads every remaining page.
    pub async fn collect_all(mut self) -> Result<Vec<Row>, ClientError> {
        let mut rows = Vec::new();
        while let Some(page) = self.next_page().await? {
            rows.extend(page);
        }
        Ok(rows)
    }
}

/// A write's condition beyond the row's existence: a column's current value. Writers that
/// share a row (a lease, a state machine) use it as compare-and-set; a failed check is
/// `OTSConditionCheckFail`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnEquals {
    /// The column.
    pub column: String,
    /// The value its newest version must hold; a row without the column fails.
    pub value: Value,
}

fn column_condition(equals: &ColumnEquals) -> Vec<u8> {
    use ots_protocol::pb::filter::{ComparatorType, Filter, FilterType, SingleColumnValueFilter};
    use prost::Message;
    let single = SingleColumnValueFilter {
        comparator: ComparatorType::CtEqual as i32,
        column_name: equals.column.clone(),
        column_value: plainbuffer::encode_column_value(&equals.value),
        filter_if_missing: true,
        latest_version_only: true,
        value_trans_rule: None,
    };
    Filter {
        r#type: FilterType::FtSingleColumnValue as i32,
        filter: single.encode_to_vec(),
    }
    .encode_to_vec()
}

fn condition(existence: RowExistence) -> Condition {
    Condition {
        row_existence: match existence {
            RowExistence::Ignore => RowExistenceExpectation::Ignore,
            RowExistence::ExpectExist => RowExistenceExpectation::ExpectExist,
            RowExistence::ExpectNotExist => RowExistenceExpectation::ExpectNotExist,
        } as i32,
        column_condition: None,
    }
}

fn operation(change: &RowChange) -> OperationType {
    match change {
        RowChange::Put { .. } => OperationType::Put,
        RowChange::Update { .. } => OperationType::Update,
        RowChange::Delete { .. } => OperationType::Delete,
    }
}

impl Client {
    /// Applies one row change with PutRow, UpdateRow or DeleteRow.
    pub async fn write_row(
        &self,
        table: &str,
        change: &RowChange,
        existence: RowExistence,
    ) -> Result<(), ClientError> {
        self.write_row_if(table, change, existence, None).await
    }

    /// [`write_row`](Self::write_row), applied only if the row's column holds the value
    /// `equals` gives.
    pub async fn write_row_if(
        &self,
        table: &str,
        change: &RowChange,
        existence: RowExistence,
        equals: Option<&ColumnEquals>,
    ) -> Result<(), ClientError> {
        let table_name = table.to_owned();
        let row = plainbuffer::encode_row_change(change);
        let mut condition = condition(existence);
        condition.column_condition = equals.map(column_condition);
        let _: WriteRowResponse = match change {
            RowChange::Put { .. } => {
                let request = PutRowRequest {
                    table_name,
                    row,
                    condition,
                    return_content: None,
                    transaction_id: None,
                };
                self.call("/PutRow", &request, false).await?
            }
            RowChange::Update { .. } => {
                let request = UpdateRowRequest {
                    table_name,
                    row_change: row,
                    condition,
                    return_content: None,
                    transaction_id: None,
                };
                self.call("/UpdateRow", &request, false).await?
            }
            RowChange::Delete { .. } => {
                let request = DeleteRowRequest {
                    table_name,
                    primary_key: row,
                    condition,
                    return_content: None,
                    transaction_id: None,
                };
                self.call("/DeleteRow", &request, false).await?
            }
        };
        Ok(())
    }

    /// Reads one row; `None` if it does not exist.
    pub async fn get_row(
        &self,
        table: &str,
        primary_key: &PrimaryKey,
        options: &ReadOptions,
    ) -> Result<Option<Row>, ClientError> {
        let request = GetRowRequest {
            table_name: table.to_owned(),
            primary_key: plainbuffer::encode_primary_key(primary_key),
            columns_to_get: options.columns_to_get.clone(),
            max_versions: Some(options.max_versions),
            ..Default::default()
        };
        let response: GetRowResponse = self.call("/GetRow", &request, true).await?;
        Ok(plainbuffer::decode_rows(&response.row)?.into_iter().next())
    }

    /// Starts a paged range read.
    pub fn get_range(&self, query: RangeQuery) -> RangeReader {
        RangeReader {
            client: self.clone(),
            next_start: Some(query.start.clone()),
            query,
            returned: 0,
        }
    }

    /// Reads up to [`MAX_BATCH_GET_ROWS`] rows of one table; one result per key, in order.
    pub async fn batch_get_row(
        &self,
        table: &str,
        keys: &[PrimaryKey],
        options: &ReadOptions,
    ) -> Result<Vec<Result<Option<Row>, ClientError>>, ClientError> {
        check_batch_size("BatchGetRow", keys.len(), MAX_BATCH_GET_ROWS)?;
        let request = BatchGetRowRequest {
            tables: vec![TableInBatchGetRowRequest {
                table_name: table.to_owned(),
                primary_key: keys.iter().map(plainbuffer::encode_primary_key).collect(),
                columns_to_get: options.columns_to_get.clone(),
                max_versions: Some(options.max_versions),
                ..Default::default()
            }],
        };
        let response: BatchGetRowResponse = self.call("/BatchGetRow", &request, true).await?;
        let rows = single_table(response.tables.into_iter().map(|t| t.rows), keys.len())?;
        Ok(rows
            .into_iter()
            .map(|r| {
                if r.is_ok {
                    let rows = plainbuffer::decode_rows(r.row.as_deref().unwrap_or_default())?;
                    Ok(rows.into_iter().next())
                } else {
                    Err(row_error(r.error))
                }
            })
            .collect())
    }

    /// Writes up to [`MAX_BATCH_WRITE_ROWS`] row changes to one table in one request. A row
    /// that fails is reported in its slot; only a failure of the whole request is an `Err`.
    /// The changes must name distinct primary keys, as the service requires.
    pub async fn batch_write_row(
        &self,
        table: &str,
        changes: &[impl Borrow<RowChange>],
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        check_batch_size("BatchWriteRow", changes.len(), MAX_BATCH_WRITE_ROWS)?;
        let request = BatchWriteRowRequest {
            tables: vec![TableInBatchWriteRowRequest {
                table_name: table.to_owned(),
                rows: changes
                    .iter()
                    .map(Borrow::borrow)
                    .map(|c| RowInBatchWriteRowRequest {
                        r#type: operation(c) as i32,
                        row_change: plainbuffer::encode_row_change(c),
                        condition: condition(RowExistence::Ignore),
                        return_content: None,
                    })
                    .collect(),
            }],
            transaction_id: None,
            is_atomic: None,
        };
        let response: BatchWriteRowResponse = self.call("/BatchWriteRow", &request, false).await?;
        let rows = single_table(response.tables.into_iter().map(|t| t.rows), changes.len())?;
        Ok(rows
            .into_iter()
            .map(|r| {
                if r.is_ok {
                    Ok(())
                } else {
                    Err(row_error(r.error))
                }
            })
            .collect())
    }

    /// Writes a batch and sends again only the rows that failed retriably, with the client's
    /// backoff, until every row succeeded, failed for good, or retries ran out. `idempotent`
    /// says whether rows whose outcome is unknown may be written again (true when every cell
    /// carries an explicit timestamp). A first request that fails as a whole (a dropped
    /// connection, a busy server) is retried like a failure of all its rows. Returns the final
    /// outcome of every row, in order; only a first request that fails for good (bad
    /// credentials, a missing table) is an `Err`.
    pub async fn write_rows_with_retry(
        &self,
        table: &str,
        changes: &[impl Borrow<RowChange>],
        idempotent: bool,
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let mut outcomes = match self.batch_write_row(table, changes).await {
            Ok(outcomes) => outcomes,
            Err(e) if e.retriability().allows_retry(idempotent) => vec![Err(e); changes.len()],
            Err(e) => return Err(e),
        };
        let mut attempt = 0u32;
        loop {
            let pending: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter_map(|(i, o)| match o {
                    Err(e) if e.retriability().allows_retry(idempotent) => Some(i),
                    _ => None,
                })
                .collect();
            let Some(first) = pending.first() else {
                return Ok(outcomes);
            };
            let Some(delay) = self
                .config
                .retry
                .delay(attempt, outcomes[*first].as_ref().unwrap_err())
            else {
                return Ok(outcomes);
            };
            tracing::debug!(
                table,
                rows = pending.len(),
                attempt,
                ?delay,
                "retrying failed rows"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
            let retry: Vec<&RowChange> = pending.iter().map(|&i| changes[i].borrow()).collect();
            // Some rows are already written, so a failure of the whole resend is reported on
            // the rows it carried (and retried like a row failure) instead of discarding what
            // is known about the others.
            let results = match self.batch_write_row(table, &retry).await {
                Ok(results) => results,
                Err(err) => vec![Err(err); retry.len()],
            };
            for (i, result) in pending.into_iter().zip(results) {
                outcomes[i] = result;
            }
        }
    }
}

fn check_batch_size(api: &str, len: usize, max: usize) -> Result<(), ClientError> {
    if len == 0 || len > max {
        return Err(ClientError::InvalidArgument(format!(
            "{api} takes 1 to {max} rows, got {len}"
        )));
    }
    Ok(())
}

fn single_table<T>(
    mut tables: impl Iterator<Item = Vec<T>>,
    expected: usize,
) -> Result<Vec<T>, ClientError> {
    let rows = tables.next().unwrap_or_default();
    if rows.len() != expected || tables.next().is_some() {
        return Err(ClientError::InvalidResponse(format!(
            "expected {expected} row results for one table, got {}",
            rows.len()
        )));
    }
    Ok(rows)
}

fn row_error(error: Option<Error>) -> ClientError {
    let error = error.unwrap_or_else(|| Error {
        code: String::new(),
        message: Some("row failed without an error".into()),
    });
    let code = ErrorCode::parse(&error.code);
    // A row result has no HTTP status of its own; an unknown code counts as "outcome unknown".
    let http_status = match &code {
        ErrorCode::Unknown(_) => 500,
        known => known.http_status(),
    };
    ClientError::Service {
        code,
        message: error.message.unwrap_or_default(),
        request_id: None,
        http_status,
    }
}
