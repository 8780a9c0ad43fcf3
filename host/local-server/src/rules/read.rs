//! What a read returns of a stored row: cells past the TTL dropped, then the versions asked for
//! (the newest N, a time range, or one timestamp), the columns asked for, the column range, the
//! filter's condition, and the filter's column page.

use ots_protocol::model::{Cell, Row};
use ots_protocol::pb::table::TimeRange;

use super::TableInfo;
use super::filter::{Condition, Pagination, ReadFilter, parse_read_filter};
use super::{MAX_COLUMNS_PER_ROW, validate_column_name};
use crate::error::ApiError;

/// Which versions of each column a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// The newest `n`.
    Newest(usize),
    /// Those with a timestamp in `[start, end)`, at most `max` of them (newest first).
    Range {
        /// Inclusive start, ms.
        start: i64,
        /// Exclusive end, ms.
        end: i64,
        /// The most versions per column, if limited.
        max: Option<usize>,
    },
    /// The one with this timestamp.
    At(i64),
}

/// What a read returns of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpec {
    /// Columns to return; empty means all. Primary key columns may be named; they are always
    /// returned.
    pub columns: Vec<String>,
    /// Versions per column.
    pub versions: Versions,
    /// First column (by name) to return, inclusive.
    pub start_column: Option<String>,
    /// Column (by name) to stop before.
    pub end_column: Option<String>,
    /// A condition rows must meet.
    pub condition: Option<Condition>,
    /// A page of each row's columns.
    pub pagination: Option<Pagination>,
}

/// The parts of a read request that decide what each row returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRequest<'a> {
    /// `columns_to_get`.
    pub columns: &'a [String],
    /// `max_versions`.
    pub max_versions: Option<i32>,
    /// `time_range`.
    pub time_range: Option<&'a TimeRange>,
    /// `start_column`.
    pub start_column: Option<&'a str>,
    /// `end_column`.
    pub end_column: Option<&'a str>,
    /// `filter`, serialized.
    pub filter: Option<&'a [u8]>,
}

impl ReadSpec {
    /// Every version of every column, as a tunnel copies the base data.
    pub fn everything() -> Self {
        Self {
            columns: Vec::new(),
            versions: Versions::Newest(usize::MAX),
            start_column: None,
            end_column: None,
            condition: None,
            pagination: None,
        }
    }

    /// The spec a read request asks for, checked as the service checks it. `context` ends the
    /// missing-version message (BatchGetRow says "while querying row").
    pub fn parse(request: ReadRequest<'_>, context: &str) -> Result<Self, ApiError> {
        if request.columns.len() > MAX_COLUMNS_PER_ROW {
            return Err(ApiError::invalid(format!(
                "The number of columns from the request exceeds the limit, limit count: {MAX_COLUMNS_PER_ROW}, column count: {}.",
                request.columns.len()
            )));
        }
        for column in request.columns {
            validate_column_name(column)?;
        }
        let max = match request.max_versions {
            Some(v) if v > 0 => Some(v as usize),
            Some(v) => return Err(ApiError::invalid(format!("Invalid max_versions: {v}."))),
            None => None,
        };
        let versions = match (request.time_range, max) {
            (None, None) => {
                return Err(ApiError::invalid(format!(
                    "No version condition is specified{context}."
                )));
            }
            (None, Some(n)) => Versions::Newest(n),
            (Some(range), max) => match (range.start_time, range.end_time, range.specific_time) {
                (None, None, Some(_)) if max.is_some() => {
                    return Err(ApiError::invalid(
                        "Specific tiemstamp and max versions cannot be given at the same time.",
                    ));
                }
                (None, None, Some(at)) => Versions::At(at),
                (Some(start), Some(end), None) if start < end => {
                    Versions::Range { start, end, max }
                }
                (Some(start), Some(end), None) => {
                    return Err(ApiError::invalid(format!(
                        "The start time must be less than the end time, got [{start}, {end})."
                    )));
                }
                (Some(_), None, None) | (None, Some(_), None) => {
                    return Err(ApiError::invalid(
                        "Start and end time must be given at the same time.",
                    ));
                }
                (None, None, None) => {
                    return Err(ApiError::invalid("The time range is empty."));
                }
                _ => {
                    return Err(ApiError::invalid(
                        "A time range takes either start and end time or a specific time.",
                    ));
                }
            },
        };
        for column in [request.start_column, request.end_column]
            .into_iter()
            .flatten()
        {
            validate_column_name(column)?;
        }
        let (condition, pagination) = match request.filter.map(parse_read_filter).transpose()? {
            None => (None, None),
            Some(ReadFilter::Condition(c)) => (Some(c), None),
            Some(ReadFilter::Pagination(p)) => (None, Some(p)),
        };
        Ok(Self {
            columns: request.columns.to_vec(),
            versions,
            start_column: request.start_column.map(str::to_owned),
            end_column: request.end_column.map(str::to_owned),
            condition,
            pagination,
        })
    }
}

/// Filters a stored row (cells sorted by name, newest first) for a read. A row left with no
/// cells is not returned, unless it was written with its key only and the read named no
/// attribute column; the filter's condition sees what the read selected.
pub fn project(mut row: Row, info: &TableInfo, spec: &ReadSpec, now_ms: i64) -> Option<Row> {
    let had_cells = !row.cells.is_empty();
    if let Some(ttl) = info.ttl_ms() {
        row.cells
            .retain(|c| c.timestamp.unwrap_or(i64::MAX) >= now_ms - ttl);
    }
    let names_attribute = spec.columns.iter().any(|c| !info.is_key_column(c));
    if !spec.columns.is_empty() {
        row.cells.retain(|c| spec.columns.contains(&c.name));
    }
    row.cells = select_versions(row.cells, spec.versions);
    row.cells.retain(|c| {
        spec.start_column.as_ref().is_none_or(|s| c.name >= *s)
            && spec.end_column.as_ref().is_none_or(|e| c.name < *e)
    });
    if row.cells.is_empty() && (had_cells || names_attribute) {
        return None;
    }
    if let Some(condition) = &spec.condition
        && !condition.matches(&row.primary_key, &row.cells)
    {
        return None;
    }
    if let Some(page) = spec.pagination {
        row.cells = page_of(row.cells, page);
    }
    Some(row)
}

/// The versions of each column a read asks for; `cells` are sorted by name, newest first.
fn select_versions(cells: Vec<Cell>, versions: Versions) -> Vec<Cell> {
    let (in_range, max): (Box<dyn Fn(i64) -> bool>, usize) = match versions {
        Versions::Newest(n) => (Box::new(|_| true), n),
        Versions::Range { start, end, max } => (
            Box::new(move |ts| start <= ts && ts < end),
            max.unwrap_or(usize::MAX),
        ),
        Versions::At(at) => (Box::new(move |ts| ts == at), 1),
    };
    let mut kept: Vec<Cell> = Vec::with_capacity(cells.len());
    let mut run = 0;
    for cell in cells {
        if !in_range(cell.timestamp.unwrap_or(0)) {
            continue;
        }
        run = if kept.last().is_some_and(|p| p.name == cell.name) {
            run + 1
        } else {
            1
        };
        if run <= max {
            kept.push(cell);
        }
    }
    kept
}

/// The columns `offset..offset + limit` (each with all its selected versions).
fn page_of(cells: Vec<Cell>, page: Pagination) -> Vec<Cell> {
    let mut column = 0;
    let mut previous: Option<String> = None;
    let mut kept = Vec::new();
    for cell in cells {
        if previous.as_deref() != Some(cell.name.as_str()) {
            if previous.is_some() {
                column += 1;
            }
            previous = Some(cell.name.clone());
        }
        if column >= page.offset && column < page.offset + page.limit {
            kept.push(cell);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::{NOW, cell, row, table};

    fn newest(columns: &[&str], n: usize) -> ReadSpec {
        ReadSpec {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            versions: Versions::Newest(n),
            ..ReadSpec::everything()
        }
    }

    fn parse(request: ReadRequest<'_>) -> Result<ReadSpec, String> {
        ReadSpec::parse(request, "").map_err(|e| e.message)
    }

    #[test]
    fn reads_drop_expired_cells_and_keep_the_requested_columns_and_versions() {
        let info = table(3, 10);
        let stored = row(vec![
            cell("a", 3, NOW),
            cell("a", 2, NOW - 1),
            cell("a", 1, NOW - 20_000),
            cell("b", 1, NOW),
        ]);
        assert_eq!(
            project(stored.clone(), &info, &newest(&[], 3), NOW)
                .unwrap()
                .cells,
            vec![cell("a", 3, NOW), cell("a", 2, NOW - 1), cell("b", 1, NOW)],
            "the 20 s old version is past the 10 s TTL"
        );
        assert_eq!(
            project(stored.clone(), &info, &newest(&["a"], 1), NOW)
                .unwrap()
                .cells,
            vec![cell("a", 3, NOW)]
        );
        assert_eq!(
            project(stored.clone(), &info, &newest(&["c"], 1), NOW),
            None
        );
        let expired = row(vec![cell("a", 1, NOW - 20_000)]);
        assert_eq!(project(expired, &info, &newest(&[], 1), NOW), None);
        let key_only = row(vec![]);
        assert_eq!(
            project(key_only.clone(), &info, &newest(&[], 1), NOW),
            Some(key_only.clone()),
            "a row written with its key only exists"
        );
        assert_eq!(
            project(key_only.clone(), &info, &newest(&["id"], 1), NOW),
            Some(key_only),
            "naming only key columns still returns it"
        );
    }

    #[test]
    fn time_ranges_are_half_open_and_take_max_versions_within() {
        let info = table(5, -1);
        let stored = row(vec![
            cell("a", 4, 40),
            cell("a", 3, 30),
            cell("a", 2, 20),
            cell("a", 1, 10),
        ]);
        let range = |start, end, max| ReadSpec {
            versions: Versions::Range { start, end, max },
            ..ReadSpec::everything()
        };
        let cells = |spec: &ReadSpec| project(stored.clone(), &info, spec, NOW).map(|r| r.cells);
        assert_eq!(
            cells(&range(20, 40, None)),
            Some(vec![cell("a", 3, 30), cell("a", 2, 20)])
        );
        assert_eq!(cells(&range(10, 41, Some(1))), Some(vec![cell("a", 4, 40)]));
        let at = ReadSpec {
            versions: Versions::At(20),
            ..ReadSpec::everything()
        };
        assert_eq!(cells(&at), Some(vec![cell("a", 2, 20)]));
        assert_eq!(cells(&range(41, 50, None)), None, "no version in range");
    }

    #[test]
    fn column_ranges_and_pages_count_columns_by_name() {
        let info = table(2, -1);
        let stored = row(vec![
            cell("c1", 1, 2),
            cell("c1", 0, 1),
            cell("c2", 2, 1),
            cell("c3", 3, 1),
            cell("c4", 4, 1),
        ]);
        let spec = ReadSpec {
            start_column: Some("c2".into()),
            end_column: Some("c4".into()),
            ..newest(&[], 2)
        };
        let names = |spec: &ReadSpec| {
            project(stored.clone(), &info, spec, NOW)
                .unwrap()
                .cells
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&spec), ["c2", "c3"], "start inclusive, end exclusive");
        let page = ReadSpec {
            pagination: Some(Pagination {
                offset: 0,
                limit: 2,
            }),
            ..newest(&[], 2)
        };
        assert_eq!(
            names(&page),
            ["c1", "c1", "c2"],
            "a page counts columns, each with its versions"
        );
        let after_start = ReadSpec {
            start_column: Some("c3".into()),
            pagination: Some(Pagination {
                offset: 1,
                limit: 3,
            }),
            ..newest(&[], 1)
        };
        assert_eq!(
            names(&after_start),
            ["c4"],
            "the offset counts from start_column"
        );
    }

    #[test]
    fn read_requests_are_checked() {
        let none = ReadRequest::default();
        assert_eq!(
            parse(none).unwrap_err(),
            "No version condition is specified."
        );
        assert_eq!(
            ReadSpec::parse(none, " while querying row")
                .unwrap_err()
                .message,
            "No version condition is specified while querying row."
        );
        let half = TimeRange {
            start_time: Some(1),
            end_time: None,
            specific_time: None,
        };
        let request = ReadRequest {
            time_range: Some(&half),
            ..none
        };
        assert_eq!(
            parse(request).unwrap_err(),
            "Start and end time must be given at the same time."
        );
        let specific = TimeRange {
            start_time: None,
            end_time: None,
            specific_time: Some(5),
        };
        let both = ReadRequest {
            time_range: Some(&specific),
            max_versions: Some(1),
            ..none
        };
        assert_eq!(
            parse(both).unwrap_err(),
            "Specific tiemstamp and max versions cannot be given at the same time."
        );
        let ranged = TimeRange {
            start_time: Some(1),
            end_time: Some(9),
            specific_time: None,
        };
        let ok = ReadRequest {
            time_range: Some(&ranged),
            max_versions: Some(2),
            ..none
        };
        assert_eq!(
            parse(ok).unwrap().versions,
            Versions::Range {
                start: 1,
                end: 9,
                max: Some(2)
            }
        );
        let bad_column = ["9c".to_owned()];
        let request = ReadRequest {
            columns: &bad_column,
            max_versions: Some(1),
            ..none
        };
        assert_eq!(parse(request).unwrap_err(), "Invalid column name: '9c'.");
    }
}
