//! Snapshots: a scan of the whole table, every version of every row, written as segments in
//! key order. Each segment is listed with the position the scan goes on from, so a scan
//! interrupted by a crash resumes there (the rows read twice are harmless: the replay from
//! the scan's start fixes every row, whenever it was read).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ots_client::Client;
use ots_client::rows::{RangeQuery, ReadOptions};
use ots_protocol::model::{PrimaryKeyValue, RowChange};
use ots_protocol::pb::table::DescribeTableResponse;
use ots_protocol::plainbuffer;
use ots_protocol::record::TunnelRecord;

use crate::Progress;
use crate::journal::Journal;
use crate::manifest::Snapshot;
use crate::run::BackupError;
use crate::segment::Entry;

/// Starts a snapshot at `now_us` unless one is running (left by a previous process);
/// returns the running one.
pub(crate) async fn begin(journal: &Journal, now_us: i64) -> Result<Snapshot, BackupError> {
    let snapshot = journal
        .update(|m| {
            if let Some(running) = m.snapshots.iter().find(|s| !s.finished()) {
                return running.clone();
            }
            let snapshot = Snapshot {
                id: m.snapshots.iter().map(|s| s.id + 1).max().unwrap_or(0),
                started_us: now_us,
                finished_us: None,
                rows: 0,
                segments: Vec::new(),
                resume_from: None,
            };
            m.snapshots.push(snapshot.clone());
            snapshot
        })
        .await?;
    Ok(snapshot)
}

/// Scans the table from where `snapshot` stands to its end, `rows_per_segment` rows (at page
/// boundaries) per segment, and marks it finished.
pub(crate) async fn scan(
    journal: &Journal,
    client: &Client,
    schema: &DescribeTableResponse,
    snapshot: &Snapshot,
    rows_per_segment: usize,
    progress: &dyn Progress,
) -> Result<u64, BackupError> {
    let table = schema.table_meta.table_name.clone();
    let start = match &snapshot.resume_from {
        None => schema.table_meta.bound(PrimaryKeyValue::InfMin),
        Some(text) => BASE64
            .decode(text)
            .ok()
            .and_then(|bytes| plainbuffer::decode_primary_key(&bytes).ok())
            .ok_or_else(|| BackupError::Resume {
                snapshot: snapshot.id,
                position: text.clone(),
            })?,
    };
    let mut reader = client.get_range(RangeQuery {
        table: table.clone(),
        start,
        end: schema.table_meta.bound(PrimaryKeyValue::InfMax),
        backward: false,
        limit: None,
        page_size: None,
        options: ReadOptions {
            columns_to_get: Vec::new(),
            max_versions: schema.table_options.max_versions.unwrap_or(1).max(1),
        },
    });
    progress.begin(&format!("snapshot {} of {table}", snapshot.id), None);
    progress.advance(snapshot.rows);
    let mut rows = snapshot.rows;
    let mut entries = Vec::new();
    loop {
        let page = reader
            .next_page()
            .await
            .map_err(|error| BackupError::Source {
                action: format!("reading table {table} for snapshot {}", snapshot.id),
                error,
            })?;
        let done = page.is_none();
        for row in page.into_iter().flatten() {
            entries.push(Entry {
                channel: String::new(),
                record: TunnelRecord {
                    change: RowChange::Put {
                        primary_key: row.primary_key,
                        cells: row.cells,
                    },
                    sequence_info: None,
                },
            });
        }
        if done || entries.len() >= rows_per_segment {
            let resume_from = reader
                .next_start()
                .map(|key| BASE64.encode(plainbuffer::encode_primary_key(key)));
            let finished = done.then(|| chrono::Utc::now().timestamp_micros());
            journal
                .append_snapshot(&entries, resume_from, finished)
                .await?;
            rows += entries.len() as u64;
            progress.advance(entries.len() as u64);
            entries.clear();
        }
        if done {
            break;
        }
    }
    progress.end();
    journal.metrics.snapshot_finished();
    Ok(rows)
}
