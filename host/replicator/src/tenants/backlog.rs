//! The backlog table: each tenant's state, and the records of quarantined tenants in replay
//! order. It lives on the destination instance, where every worker process reaches it, so a
//! channel that moves to another process finds its tenant's backlog and state there.
//!
//! Rows are keyed by tenant and a binary position. The state row's position is `[0]`, so a
//! range read from it returns the state and then the first record: one request tells whether a
//! tenant's records may be applied directly. Records sort by full-data before stream, then (for
//! stream records) by commit time, so a row's changes replay in the order they were made, even
//! across a partition split; a position depends only on the record and its channel, so a batch
//! delivered twice is set aside once.
//!
//! The state row changes by compare-and-set on its `version` column (a conditional write):
//! processes quarantine, resume and lease the replay of a tenant without stepping on each other.

use std::time::Duration;

use ots_client::rows::{ColumnEquals, RangeQuery, ReadOptions};
use ots_client::{Client, ClientError};
use ots_protocol::error::ErrorCode;
use ots_protocol::json::{parse_record, record_json};
use ots_protocol::model::{
    Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, Row, RowChange, RowExistence, Value,
};
use ots_protocol::pb::table::PrimaryKeyType;
use ots_protocol::plainbuffer;
use ots_protocol::record::TunnelRecord;

/// The state row's position.
const STATE: [u8; 1] = [0];
const BASE: u8 = 1;
const STREAM: u8 = 2;

/// What a head read returns: the state row's columns, and of a record row only its channel
/// (a range read leaves out rows holding none of the columns asked for).
const HEAD_COLUMNS: &[&str] = &[
    "state",
    "version",
    "last_error",
    "quarantined_at",
    "fingerprint",
    "drainer",
    "lease_until",
    "channel",
];

/// How long a replay lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(60);

/// Why the backlog could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    /// A request to the backlog table failed.
    #[error("backlog table {table}: {action}")]
    Call {
        /// The table.
        table: String,
        /// What was being done.
        action: String,
        /// Why it failed.
        #[source]
        source: Box<ClientError>,
    },
    /// A row of the backlog table is not one this tool wrote.
    #[error("backlog table {table}: tenant {tenant}: {problem}")]
    Corrupt {
        /// The table.
        table: String,
        /// The tenant.
        tenant: String,
        /// What is wrong.
        problem: String,
    },
}

impl BacklogError {
    /// Whether trying again may succeed: a busy or unreachable destination, not a row the
    /// table refuses or one this tool cannot read.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Call { source, .. } => {
                source.retriability() != ots_protocol::error::Retriability::Never
            }
            Self::Corrupt { .. } => false,
        }
    }
}

/// Whether a tenant's records are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its records are applied (once its backlog is replayed).
    Active,
    /// Its records go to the backlog.
    Quarantined,
}

impl Status {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Quarantined => "quarantined",
        }
    }
}

/// A tenant's state row.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantState {
    /// Applied or quarantined.
    pub status: Status,
    /// The failure that quarantined the tenant last (kept after a resume).
    pub last_error: Option<String>,
    /// When it was last quarantined, in ms since the epoch.
    pub quarantined_at: Option<i64>,
    /// The digest of the tenant's guests when it was quarantined: a process seeing other
    /// guests resumes it.
    pub fingerprint: Option<String>,
    /// The process replaying the backlog, and until when (ms since the epoch) its lease runs.
    pub drainer: Option<(String, i64)>,
    /// Bumped by every write; the compare-and-set column.
    pub version: i64,
}

impl TenantState {
    fn active() -> Self {
        Self {
            status: Status::Active,
            last_error: None,
            quarantined_at: None,
            fingerprint: None,
            drainer: None,
            version: 0,
        }
    }
}

/// What one read of a tenant's head says.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The state row, if the tenant ever had one.
    pub state: Option<TenantState>,
    /// Whether records wait in the backlog.
    pub has_records: bool,
}

impl Head {
    /// Whether the tenant's new records must go to the backlog: it is quarantined, or older
    /// records of it wait there (applying newer ones first would reorder its rows' changes).
    pub fn blocks(&self) -> bool {
        self.has_records || self.status() == Status::Quarantined
    }

    /// The tenant's status (active when it has no state row).
    pub fn status(&self) -> Status {
        self.state.as_ref().map_or(Status::Active, |s| s.status)
    }
}

/// A record waiting in the backlog.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its position (key).
    pub position: Vec<u8>,
    /// The record.
    pub record: TunnelRecord,
}

/// The backlog table, through the destination instance's client.
#[derive(Debug, Clone)]
pub struct Backlog {
    client: Client,
    table: String,
}

/// The position of `record`, read from `channel`, in its tenant's backlog.
pub fn position(channel: &str, record: &TunnelRecord) -> Vec<u8> {
    // Signed integers as big-endian with the sign bit flipped sort as the numbers do.
    let ordered = |v: i64| (v as u64 ^ (1 << 63)).to_be_bytes();
    let mut out = Vec::with_capacity(64);
    match record.sequence_info {
        Some(s) => {
            out.push(STREAM);
            out.extend(ordered(s.timestamp));
            out.extend(ordered(i64::from(s.epoch)));
            out.extend(ordered(i64::from(s.row_index)));
            out.extend(channel.as_bytes());
        }
        None => {
            out.push(BASE);
            out.extend(channel.as_bytes());
            out.push(0);
            out.extend(plainbuffer::encode_primary_key(record.change.primary_key()));
        }
    }
    out
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Backlog {
    /// The backlog in `table`, through `client`.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn error(&self, action: impl Into<String>) -> impl FnOnce(ClientError) -> BacklogError {
        let table = self.table.clone();
        let action = action.into();
        move |source| BacklogError::Call {
            table,
            action,
            source: Box::new(source),
        }
    }

    fn key(tenant: &str, position: Vec<u8>) -> PrimaryKey {
        PrimaryKey(vec![
            PrimaryKeyColumn {
                name: "tenant".into(),
                value: PrimaryKeyValue::String(tenant.to_owned()),
            },
            PrimaryKeyColumn {
                name: "position".into(),
                value: PrimaryKeyValue::Binary(position),
            },
        ])
    }

    /// Creates the table if it is missing.
    pub async fn ensure_table(&self) -> Result<(), BacklogError> {
        let key = [
            ("tenant", PrimaryKeyType::String),
            ("position", PrimaryKeyType::Binary),
        ];
        let created = crate::setup::ensure_own_table(&self.client, &self.table, &key)
            .await
            .map_err(self.error("creating it"))?;
        if created {
            tracing::info!(table = %self.table, "created the tenant backlog table");
        }
        Ok(())
    }

    fn range(&self, tenant: &str, from: Vec<u8>, limit: usize, columns: &[&str]) -> RangeQuery {
        let mut end = Self::key(tenant, Vec::new());
        end.0[1].value = PrimaryKeyValue::InfMax;
        RangeQuery {
            table: self.table.clone(),
            start: Self::key(tenant, from),
            end,
            backward: false,
            limit: Some(limit),
            page_size: Some(limit.min(1000) as i32),
            options: ReadOptions {
                columns_to_get: columns.iter().map(|c| (*c).to_owned()).collect(),
                max_versions: 1,
            },
        }
    }

    /// The tenant's state and whether records wait: one range read.
    pub async fn head(&self, tenant: &str) -> Result<Head, BacklogError> {
        let rows = self
            .client
            .get_range(self.range(tenant, STATE.to_vec(), 2, HEAD_COLUMNS))
            .collect_all()
            .await
            .map_err(self.error(format!("reading tenant {tenant}'s state")))?;
        let mut head = Head {
            state: None,
            has_records: false,
        };
        for row in &rows {
            if position_of(row) == Some(&STATE[..]) {
                head.state = Some(self.parse_state(tenant, row)?);
            } else {
                head.has_records = true;
            }
        }
        Ok(head)
    }

    /// Sets `records`, read from `channel`, aside in `tenant`'s backlog; returns once durable.
    pub async fn append(
        &self,
        tenant: &str,
        channel: &str,
        records: &[TunnelRecord],
    ) -> Result<(), BacklogError> {
        let time = chrono::Utc::now().to_rfc3339();
        let rows: Vec<RowChange> = records
            .iter()
            .map(|record| RowChange::Put {
                primary_key: Self::key(tenant, position(channel, record)),
                cells: vec![
                    text("record", record_json(record).to_string()),
                    text("channel", channel.to_owned()),
                    text("time", time.clone()),
                ],
            })
            .collect();
        self.write_all(&rows, &format!("setting tenant {tenant}'s records aside"))
            .await
    }

    async fn write_all(&self, rows: &[RowChange], action: &str) -> Result<(), BacklogError> {
        for chunk in chunks(rows) {
            // Rows are keyed by what they hold: writing or deleting one again changes nothing.
            let outcomes = self
                .client
                .write_rows_with_retry(&self.table, chunk, true)
                .await
                .map_err(self.error(action))?;
            if let Some(e) = outcomes.into_iter().find_map(Result::err) {
                return Err(self.error(action)(e));
            }
        }
        Ok(())
    }

    /// The first `limit` records waiting in `tenant`'s backlog, in replay order.
    pub async fn entries(&self, tenant: &str, limit: usize) -> Result<Vec<Entry>, BacklogError> {
        let rows = self
            .client
            .get_range(self.range(tenant, vec![BASE], limit, &["record"]))
            .collect_all()
            .await
            .map_err(self.error(format!("reading tenant {tenant}'s backlog")))?;
        rows.iter()
            .map(|row| {
                let corrupt = |problem: String| BacklogError::Corrupt {
                    table: self.table.clone(),
                    tenant: tenant.to_owned(),
                    problem,
                };
                let position = position_of(row)
                    .ok_or_else(|| corrupt("a row without a binary position".into()))?
                    .to_vec();
                let json = string_cell(row, "record")
                    .ok_or_else(|| corrupt("a record row without its `record` column".into()))?;
                let record = parse_record(json).map_err(|e| corrupt(format!("a record: {e}")))?;
                Ok(Entry { position, record })
            })
            .collect()
    }

    /// Removes replayed records.
    pub async fn remove(&self, tenant: &str, positions: &[Vec<u8>]) -> Result<(), BacklogError> {
        let rows: Vec<RowChange> = positions
            .iter()
            .map(|p| RowChange::Delete {
                primary_key: Self::key(tenant, p.clone()),
            })
            .collect();
        self.write_all(
            &rows,
            &format!("removing tenant {tenant}'s replayed records"),
        )
        .await
    }

    /// How many records wait in `tenant`'s backlog (reads their keys).
    pub async fn count(&self, tenant: &str) -> Result<u64, BacklogError> {
        let mut reader =
            self.client
                .get_range(self.range(tenant, vec![BASE], usize::MAX, &["channel"]));
        let mut count = 0;
        while let Some(page) = reader
            .next_page()
            .await
            .map_err(self.error(format!("counting tenant {tenant}'s backlog")))?
        {
            count += page.len() as u64;
        }
        Ok(count)
    }

    /// Reads `tenant`'s state row.
    pub async fn state(&self, tenant: &str) -> Result<Option<TenantState>, BacklogError> {
        let row = self
            .client
            .get_row(
                &self.table,
                &Self::key(tenant, STATE.to_vec()),
                &ReadOptions::default(),
            )
            .await
            .map_err(self.error(format!("reading tenant {tenant}'s state")))?;
        row.map(|r| self.parse_state(tenant, &r)).transpose()
    }

    /// Changes `tenant`'s state by compare-and-set: `change` gets the current state (active if
    /// there is none) and returns the new one, or `None` to leave it. Retries when another
    /// process wrote in between. Returns the state written, if any.
    pub async fn update(
        &self,
        tenant: &str,
        change: impl Fn(&TenantState) -> Option<TenantState>,
    ) -> Result<Option<TenantState>, BacklogError> {
        loop {
            let current = self.state(tenant).await?;
            let Some(mut next) = change(current.as_ref().unwrap_or(&TenantState::active())) else {
                return Ok(None);
            };
            next.version = current.as_ref().map_or(0, |s| s.version) + 1;
            let row = self.state_row(tenant, &next);
            let (existence, equals) = match &current {
                None => (RowExistence::ExpectNotExist, None),
                Some(s) => (
                    RowExistence::ExpectExist,
                    Some(ColumnEquals {
                        column: "version".into(),
                        value: Value::Integer(s.version),
                    }),
                ),
            };
            match self
                .client
                .write_row_if(&self.table, &row, existence, equals.as_ref())
                .await
            {
                Ok(()) => return Ok(Some(next)),
                Err(e) if e.is(ErrorCode::ConditionCheckFail) => continue,
                Err(e) => return Err(self.error(format!("writing tenant {tenant}'s state"))(e)),
            }
        }
    }

    /// Quarantines `tenant` after `error`, recording its guests' `fingerprint`.
    pub async fn quarantine(
        &self,
        tenant: &str,
        error: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), BacklogError> {
        self.update(tenant, |s| {
            Some(TenantState {
                status: Status::Quarantined,
                last_error: Some(error.to_owned()),
                quarantined_at: Some(now_ms()),
                fingerprint: fingerprint.map(str::to_owned),
                drainer: None,
                ..s.clone()
            })
        })
        .await
        .map(drop)
    }

    /// Resumes a quarantined `tenant`: its backlog is then replayed before its new records.
    /// Returns whether it was quarantined.
    pub async fn resume(&self, tenant: &str) -> Result<bool, BacklogError> {
        let resumed = self
            .update(tenant, |s| {
                (s.status == Status::Quarantined).then(|| TenantState {
                    status: Status::Active,
                    ..s.clone()
                })
            })
            .await?;
        Ok(resumed.is_some())
    }

    /// Takes (or renews) the lease on replaying `tenant`'s backlog for `me`; false if another
    /// process holds it, or the tenant is quarantined.
    pub async fn lease(&self, tenant: &str, me: &str) -> Result<bool, BacklogError> {
        let now = now_ms();
        let taken = self
            .update(tenant, |s| {
                let free = match &s.drainer {
                    None => true,
                    Some((holder, until)) => holder == me || *until < now,
                };
                (free && s.status == Status::Active).then(|| TenantState {
                    drainer: Some((me.to_owned(), now + LEASE.as_millis() as i64)),
                    ..s.clone()
                })
            })
            .await?;
        Ok(taken.is_some())
    }

    /// Gives up `me`'s lease on `tenant`'s replay.
    pub async fn release(&self, tenant: &str, me: &str) -> Result<(), BacklogError> {
        self.update(tenant, |s| {
            matches!(&s.drainer, Some((holder, _)) if holder == me).then(|| TenantState {
                drainer: None,
                ..s.clone()
            })
        })
        .await
        .map(drop)
    }

    fn state_row(&self, tenant: &str, state: &TenantState) -> RowChange {
        let mut cells = vec![
            text("state", state.status.as_str().to_owned()),
            integer("version", state.version),
        ];
        if let Some(e) = &state.last_error {
            cells.push(text("last_error", e.clone()));
        }
        if let Some(t) = state.quarantined_at {
            cells.push(integer("quarantined_at", t));
        }
        if let Some(f) = &state.fingerprint {
            cells.push(text("fingerprint", f.clone()));
        }
        if let Some((holder, until)) = &state.drainer {
            cells.push(text("drainer", holder.clone()));
            cells.push(integer("lease_until", *until));
        }
        // A put replaces the row, so a column left out is gone.
        RowChange::Put {
            primary_key: Self::key(tenant, STATE.to_vec()),
            cells,
        }
    }

    fn parse_state(&self, tenant: &str, row: &Row) -> Result<TenantState, BacklogError> {
        let corrupt = |problem: &str| BacklogError::Corrupt {
            table: self.table.clone(),
            tenant: tenant.to_owned(),
            problem: problem.to_owned(),
        };
        let status = match string_cell(row, "state") {
            Some("active") => Status::Active,
            Some("quarantined") => Status::Quarantined,
            _ => return Err(corrupt("the state row has no valid `state`")),
        };
        let version = integer_cell(row, "version")
            .ok_or_else(|| corrupt("the state row has no `version`"))?;
        Ok(TenantState {
            status,
            last_error: string_cell(row, "last_error").map(str::to_owned),
            quarantined_at: integer_cell(row, "quarantined_at"),
            fingerprint: string_cell(row, "fingerprint").map(str::to_owned),
            drainer: string_cell(row, "drainer")
                .zip(integer_cell(row, "lease_until"))
                .map(|(h, u)| (h.to_owned(), u)),
            version,
        })
    }
}

/// The most bytes of cell values one backlog request carries, well under the service's 4 MB.
const REQUEST_BYTES: usize = 2 << 20;

/// `rows` cut into requests of at most 200 rows and about [`REQUEST_BYTES`].
fn chunks(rows: &[RowChange]) -> Vec<&[RowChange]> {
    let size = |row: &RowChange| match row {
        RowChange::Put { cells, .. } => cells
            .iter()
            .map(|c| match &c.value {
                Value::String(s) => s.len(),
                _ => 8,
            })
            .sum(),
        _ => 64,
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let n = size(row);
        if i > start
            && (i - start == crate::config::MAX_BATCH_WRITE_COUNT || bytes + n > REQUEST_BYTES)
        {
            out.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

fn position_of(row: &Row) -> Option<&[u8]> {
    row.primary_key.0.get(1).and_then(|c| match &c.value {
        PrimaryKeyValue::Binary(b) => Some(b.as_slice()),
        _ => None,
    })
}

fn string_cell<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
    row.cells
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| match &c.value {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        })
}

fn integer_cell(row: &Row, name: &str) -> Option<i64> {
    row.cells
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| match c.value {
            Value::Integer(i) => Some(i),
            _ => None,
        })
}

fn text(name: &str, value: String) -> Cell {
    Cell {
        name: name.into(),
        value: Value::String(value),
        timestamp: None,
    }
}

fn integer(name: &str, value: i64) -> Cell {
    Cell {
        name: name.into(),
        value: Value::Integer(value),
        timestamp: None,
    }
}

#[cfg(test)]
mod tests {
    use ots_protocol::plainbuffer::SequenceInfo;

    use super::*;

    fn record(id: i64, sequence: Option<(i32, i64, i32)>) -> TunnelRecord {
        TunnelRecord {
            change: RowChange::Delete {
                primary_key: PrimaryKey(vec![PrimaryKeyColumn {
                    name: "id".into(),
                    value: PrimaryKeyValue::Integer(id),
                }]),
            },
            sequence_info: sequence.map(|(epoch, timestamp, row_index)| SequenceInfo {
                epoch,
                timestamp,
                row_index,
            }),
        }
    }

    #[test]
    fn requests_are_cut_at_200_rows_and_at_about_2_mib() {
        let row = |bytes: usize| RowChange::Put {
            primary_key: Backlog::key("t", vec![1]),
            cells: vec![text("record", "x".repeat(bytes))],
        };
        let small: Vec<RowChange> = (0..450).map(|_| row(10)).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [200, 200, 50]);
        let large: Vec<RowChange> = (0..5).map(|_| row(900 << 10)).collect();
        let sizes: Vec<usize> = chunks(&large).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let huge = [row(3 << 20)];
        assert_eq!(
            chunks(&huge).len(),
            1,
            "a row over the limit still goes, alone"
        );
    }

    #[test]
    fn positions_put_full_data_first_then_stream_records_in_commit_order() {
        let ordered = [
            position("base-a", &record(5, None)),
            position("base-b", &record(1, None)),
            position("child", &record(1, Some((0, 100, 0)))),
            position("parent", &record(1, Some((0, 100, 1)))),
            position("child", &record(1, Some((0, 200, 0)))),
            position("child", &record(1, Some((0, 1 << 40, 0)))),
        ];
        for pair in ordered.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{:?} sorts before {:?}",
                pair[0],
                pair[1]
            );
        }
        assert!(
            ordered.iter().all(|p| p.as_slice() > &STATE[..]),
            "the state row sorts first"
        );
        assert_eq!(
            position("c", &record(1, Some((3, 7, 2)))),
            position("c", &record(9, Some((3, 7, 2)))),
            "a stream record's position is its place in the log"
        );
        assert_ne!(
            position("c", &record(1, None)),
            position("c", &record(2, None))
        );
    }
}
