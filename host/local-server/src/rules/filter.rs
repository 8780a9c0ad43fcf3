//! Filters on reads and column conditions on writes, as the service evaluates them.
//!
//! The semantics come from the official SDKs' function tests, which run against the service:
//! `filter_if_missing` makes a row without the column fail (Java
//! `UnifiedFilterAdvanceTest.testFilterIfMissing`, Python
//! `filter_and_condition_update_unitttest.py`); `latest_version_only = false` lets any version
//! satisfy the comparison (Java `UnifiedConditionalUpdateTest.testLatestVersionOnly`); a value of
//! another type never matches (Java `testCompareWithDifferentType`); at most 32 nodes per tree
//! (Java `UnifiedFilterRestrictionAndParamCheckingTest`); NOT takes one sub-filter, AND and OR
//! more than one. A column is missing when the read did not select it or none of its versions
//! is in the read's version range.

use std::cmp::Ordering;

use ots_protocol::error::ErrorCode;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyValue, Value};
use ots_protocol::pb::filter as pb;
use ots_protocol::plainbuffer;
use prost::Message;

use super::validate_column_name;
use crate::error::ApiError;

/// Most nodes (conditions and combinators) one filter may have.
pub const MAX_FILTER_NODES: usize = 32;

/// A comparison of a single-column condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `==`.
    Equal,
    /// `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessEqual,
    /// The column has a version.
    Exist,
    /// The column has no version.
    NotExist,
}

/// A condition on one column (or primary key column) of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnCondition {
    /// The comparison.
    pub comparator: Comparator,
    /// The column.
    pub column: String,
    /// The constant compared with.
    pub value: Value,
    /// Whether a row without the column fails (true) or passes (false).
    pub filter_if_missing: bool,
    /// Whether only the newest version is compared (otherwise any version may satisfy it).
    pub latest_version_only: bool,
}

/// A tree of column conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// One column compared with a constant.
    Column(ColumnCondition),
    /// The sub-condition does not hold.
    Not(Box<Condition>),
    /// Every sub-condition holds.
    And(Vec<Condition>),
    /// Some sub-condition holds.
    Or(Vec<Condition>),
}

/// Which columns of a row a read returns: `limit` columns after skipping `offset`, counted
/// from `start_column` (Go SDK `TestPutGetRowWithFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    /// Columns to skip.
    pub offset: usize,
    /// Columns to return.
    pub limit: usize,
}

/// A read's filter: a condition rows must meet, or a column pagination.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadFilter {
    /// Rows must meet the condition.
    Condition(Condition),
    /// Rows return a page of their columns.
    Pagination(Pagination),
}

/// Parses the `filter` of a read.
pub fn parse_read_filter(bytes: &[u8]) -> Result<ReadFilter, ApiError> {
    let filter = decode_filter(bytes)?;
    if filter.r#type == pb::FilterType::FtColumnPagination as i32 {
        return parse_pagination(&filter.filter).map(ReadFilter::Pagination);
    }
    parse_condition_tree(&filter).map(ReadFilter::Condition)
}

/// Parses the `column_condition` of a write.
pub fn parse_condition(bytes: &[u8]) -> Result<Condition, ApiError> {
    parse_condition_tree(&decode_filter(bytes)?)
}

fn decode_filter(bytes: &[u8]) -> Result<pb::Filter, ApiError> {
    pb::Filter::decode(bytes).map_err(|e| ApiError::invalid(format!("Invalid filter: {e}.")))
}

fn parse_condition_tree(filter: &pb::Filter) -> Result<Condition, ApiError> {
    let mut nodes = 0;
    let condition = parse_node(filter, &mut nodes)?;
    Ok(condition)
}

fn parse_node(filter: &pb::Filter, nodes: &mut usize) -> Result<Condition, ApiError> {
    *nodes += 1;
    if *nodes > MAX_FILTER_NODES {
        return Err(ApiError::invalid(format!(
            "The count of filter exceeds the max: {MAX_FILTER_NODES}."
        )));
    }
    match pb::FilterType::try_from(filter.r#type) {
        Ok(pb::FilterType::FtSingleColumnValue) => {
            parse_single(&filter.filter).map(Condition::Column)
        }
        Ok(pb::FilterType::FtCompositeColumnValue) => {
            let composite = pb::CompositeColumnValueFilter::decode(filter.filter.as_slice())
                .map_err(|e| ApiError::invalid(format!("Invalid composite filter: {e}.")))?;
            let children = composite
                .sub_filters
                .iter()
                .map(|f| parse_node(f, nodes))
                .collect::<Result<Vec<_>, _>>()?;
            match pb::LogicalOperator::try_from(composite.combinator) {
                Ok(pb::LogicalOperator::LoNot) => {
                    let [child] = <[Condition; 1]>::try_from(children).map_err(|_| {
                        ApiError::invalid(
                            "Invalid NOT operator: the number of sub-filters must be 1.",
                        )
                    })?;
                    Ok(Condition::Not(Box::new(child)))
                }
                Ok(op @ (pb::LogicalOperator::LoAnd | pb::LogicalOperator::LoOr)) => {
                    if children.len() < 2 {
                        return Err(ApiError::invalid(
                            "Invalid AND/OR operator: the number of sub-filters must be more than 1.",
                        ));
                    }
                    Ok(match op {
                        pb::LogicalOperator::LoAnd => Condition::And(children),
                        _ => Condition::Or(children),
                    })
                }
                Err(_) => Err(ApiError::invalid(format!(
                    "Invalid logical operator: {}.",
                    composite.combinator
                ))),
            }
        }
        Ok(pb::FilterType::FtColumnPagination) => Err(ApiError::invalid(
            "A column pagination filter cannot be part of a condition.",
        )),
        Err(_) => Err(ApiError::invalid(format!(
            "Invalid filter type: {}.",
            filter.r#type
        ))),
    }
}

fn parse_single(bytes: &[u8]) -> Result<ColumnCondition, ApiError> {
    let single = pb::SingleColumnValueFilter::decode(bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid single column filter: {e}.")))?;
    if single.value_trans_rule.is_some() {
        return Err(ApiError::new(
            ErrorCode::UnsupportOperation,
            "Value transfer rules (regex filters) are not supported by the local server.",
        ));
    }
    validate_column_name(&single.column_name)?;
    use pb::ComparatorType as C;
    let comparator = match C::try_from(single.comparator) {
        Ok(C::CtEqual) => Comparator::Equal,
        Ok(C::CtNotEqual) => Comparator::NotEqual,
        Ok(C::CtGreaterThan) => Comparator::Greater,
        Ok(C::CtGreaterEqual) => Comparator::GreaterEqual,
        Ok(C::CtLessThan) => Comparator::Less,
        Ok(C::CtLessEqual) => Comparator::LessEqual,
        Ok(C::CtExist) => Comparator::Exist,
        Ok(C::CtNotExist) => Comparator::NotExist,
        Err(_) => {
            return Err(ApiError::invalid(format!(
                "Invalid comparator: {}.",
                single.comparator
            )));
        }
    };
    let value = plainbuffer::decode_column_value(&single.column_value).map_err(|e| {
        ApiError::invalid(format!(
            "Invalid value of the filter on column '{}': {e}.",
            single.column_name
        ))
    })?;
    if let Value::String(s) = &value
        && s.len() > super::MAX_VALUE_LEN
    {
        return Err(ApiError::invalid(format!(
            "The length of attribute column: '{}' exceeds the MaxLength:{} with CurrentLength:{}.",
            single.column_name,
            super::MAX_VALUE_LEN,
            s.len()
        )));
    }
    Ok(ColumnCondition {
        comparator,
        column: single.column_name,
        value,
        filter_if_missing: single.filter_if_missing,
        latest_version_only: single.latest_version_only,
    })
}

fn parse_pagination(bytes: &[u8]) -> Result<Pagination, ApiError> {
    let page = pb::ColumnPaginationFilter::decode(bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid column pagination filter: {e}.")))?;
    let offset = usize::try_from(page.offset).map_err(|_| {
        ApiError::invalid(format!(
            "The offset of a column pagination filter must not be negative, got {}.",
            page.offset
        ))
    })?;
    let limit = usize::try_from(page.limit)
        .ok()
        .filter(|&l| l > 0)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "The limit of a column pagination filter must be greater than 0, got {}.",
                page.limit
            ))
        })?;
    Ok(Pagination { offset, limit })
}

impl Condition {
    /// Whether a row with this key and these cells (sorted by name, newest version first)
    /// meets the condition.
    pub fn matches(&self, primary_key: &PrimaryKey, cells: &[Cell]) -> bool {
        match self {
            Self::Column(condition) => condition.matches(primary_key, cells),
            Self::Not(child) => !child.matches(primary_key, cells),
            Self::And(children) => children.iter().all(|c| c.matches(primary_key, cells)),
            Self::Or(children) => children.iter().any(|c| c.matches(primary_key, cells)),
        }
    }

    /// Every column the condition names.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Self::Column(condition) => vec![condition.column.as_str()],
            Self::Not(child) => child.columns(),
            Self::And(children) | Self::Or(children) => {
                children.iter().flat_map(Condition::columns).collect()
            }
        }
    }
}

impl ColumnCondition {
    fn matches(&self, primary_key: &PrimaryKey, cells: &[Cell]) -> bool {
        let key_value = primary_key
            .0
            .iter()
            .find(|c| c.name == self.column)
            .and_then(|c| match &c.value {
                PrimaryKeyValue::Integer(i) => Some(Value::Integer(*i)),
                PrimaryKeyValue::String(s) => Some(Value::String(s.clone())),
                PrimaryKeyValue::Binary(b) => Some(Value::Binary(b.clone())),
                _ => None,
            });
        let versions: Vec<&Value> = match &key_value {
            Some(value) => vec![value],
            None => cells
                .iter()
                .filter(|c| c.name == self.column)
                .map(|c| &c.value)
                .collect(),
        };
        match self.comparator {
            Comparator::Exist => return !versions.is_empty(),
            Comparator::NotExist => return versions.is_empty(),
            _ => {}
        }
        if versions.is_empty() {
            return !self.filter_if_missing;
        }
        let compared = if self.latest_version_only {
            &versions[..1]
        } else {
            &versions[..]
        };
        compared.iter().any(|v| self.holds_for(v))
    }

    fn holds_for(&self, value: &Value) -> bool {
        let Some(order) = compare(value, &self.value) else {
            return false;
        };
        match self.comparator {
            Comparator::Equal => order == Ordering::Equal,
            Comparator::NotEqual => order != Ordering::Equal,
            Comparator::Greater => order == Ordering::Greater,
            Comparator::GreaterEqual => order != Ordering::Less,
            Comparator::Less => order == Ordering::Less,
            Comparator::LessEqual => order != Ordering::Greater,
            Comparator::Exist | Comparator::NotExist => unreachable!("decided before"),
        }
    }
}

/// Orders two values of the same type (strings and binaries bytewise); values of different
/// types, and NaN, have no order.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Binary(a), Value::Binary(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ots_protocol::model::PrimaryKeyColumn;

    fn single(column: &str, comparator: pb::ComparatorType, value: Value) -> pb::Filter {
        single_with(column, comparator, value, false, true)
    }

    fn single_with(
        column: &str,
        comparator: pb::ComparatorType,
        value: Value,
        filter_if_missing: bool,
        latest_version_only: bool,
    ) -> pb::Filter {
        pb::Filter {
            r#type: pb::FilterType::FtSingleColumnValue as i32,
            filter: pb::SingleColumnValueFilter {
                comparator: comparator as i32,
                column_name: column.into(),
                column_value: plainbuffer::encode_column_value(&value),
                filter_if_missing,
                latest_version_only,
                value_trans_rule: None,
            }
            .encode_to_vec(),
        }
    }

    fn composite(op: pb::LogicalOperator, children: Vec<pb::Filter>) -> pb::Filter {
        pb::Filter {
            r#type: pb::FilterType::FtCompositeColumnValue as i32,
            filter: pb::CompositeColumnValueFilter {
                combinator: op as i32,
                sub_filters: children,
            }
            .encode_to_vec(),
        }
    }

    fn condition(filter: pb::Filter) -> Condition {
        parse_condition(&filter.encode_to_vec()).unwrap()
    }

    fn error(filter: pb::Filter) -> ApiError {
        parse_condition(&filter.encode_to_vec()).unwrap_err()
    }

    fn key() -> PrimaryKey {
        PrimaryKey(vec![PrimaryKeyColumn {
            name: "pk".into(),
            value: PrimaryKeyValue::String("k1".into()),
        }])
    }

    fn cell(name: &str, value: Value, ts: i64) -> Cell {
        Cell {
            name: name.into(),
            value,
            timestamp: Some(ts),
        }
    }

    use pb::ComparatorType as C;
    use pb::LogicalOperator as L;

    #[test]
    fn comparisons_need_a_value_of_the_same_type() {
        let cells = [cell("n", Value::Integer(5), 1)];
        let holds = |c, v| condition(single("n", c, v)).matches(&key(), &cells);
        assert!(holds(C::CtEqual, Value::Integer(5)));
        assert!(holds(C::CtGreaterThan, Value::Integer(4)));
        assert!(holds(C::CtLessEqual, Value::Integer(5)));
        assert!(!holds(C::CtLessThan, Value::Integer(5)));
        assert!(
            !holds(C::CtEqual, Value::Double(5.0)),
            "an integer never equals a double"
        );
        assert!(
            !holds(C::CtNotEqual, Value::String("5".into())),
            "nor compares with a string at all"
        );
        let strings = [cell("s", Value::String("Value2".into()), 1)];
        let text = condition(single("s", C::CtLessThan, Value::String("Value1".into())));
        assert!(!text.matches(&key(), &strings), "strings compare bytewise");
    }

    #[test]
    fn a_missing_column_passes_unless_filter_if_missing() {
        let cells = [cell("other", Value::Integer(1), 1)];
        let pass = condition(single_with("n", C::CtEqual, Value::Integer(1), false, true));
        let fail = condition(single_with("n", C::CtEqual, Value::Integer(1), true, true));
        assert!(pass.matches(&key(), &cells));
        assert!(!fail.matches(&key(), &cells));
        assert!(!condition(single("n", C::CtExist, Value::Integer(0))).matches(&key(), &cells));
        assert!(condition(single("n", C::CtNotExist, Value::Integer(0))).matches(&key(), &cells));
    }

    #[test]
    fn any_version_may_match_unless_latest_version_only() {
        // Newest first: 9 at ts 9 down to 0 at ts 0.
        let cells: Vec<Cell> = (0..10)
            .rev()
            .map(|v| cell("c", Value::Integer(v), v))
            .collect();
        let latest = condition(single_with("c", C::CtEqual, Value::Integer(1), true, true));
        let any = condition(single_with("c", C::CtEqual, Value::Integer(1), true, false));
        assert!(!latest.matches(&key(), &cells));
        assert!(any.matches(&key(), &cells));
    }

    #[test]
    fn primary_key_columns_can_be_compared() {
        let on_key = condition(single("pk", C::CtEqual, Value::String("k1".into())));
        assert!(on_key.matches(&key(), &[]));
    }

    #[test]
    fn composites_combine_and_their_arity_and_size_are_checked() {
        let cells = [
            cell("a", Value::Integer(1), 1),
            cell("b", Value::Integer(2), 1),
        ];
        let a = || single("a", C::CtEqual, Value::Integer(1));
        let b_is_3 = || single("b", C::CtEqual, Value::Integer(3));
        assert!(!condition(composite(L::LoAnd, vec![a(), b_is_3()])).matches(&key(), &cells));
        assert!(condition(composite(L::LoOr, vec![a(), b_is_3()])).matches(&key(), &cells));
        assert!(condition(composite(L::LoNot, vec![b_is_3()])).matches(&key(), &cells));
        assert_eq!(
            error(composite(L::LoNot, vec![a(), a()])).message,
            "Invalid NOT operator: the number of sub-filters must be 1."
        );
        assert_eq!(
            error(composite(L::LoAnd, vec![a()])).message,
            "Invalid AND/OR operator: the number of sub-filters must be more than 1."
        );
        let or_of = |n| composite(L::LoOr, (0..n).map(|_| a()).collect());
        assert!(
            parse_condition(&or_of(31).encode_to_vec()).is_ok(),
            "32 nodes"
        );
        assert_eq!(
            error(or_of(32)).message,
            "The count of filter exceeds the max: 32."
        );
    }

    #[test]
    fn pagination_is_a_read_filter_only() {
        let page = pb::Filter {
            r#type: pb::FilterType::FtColumnPagination as i32,
            filter: pb::ColumnPaginationFilter {
                offset: 1,
                limit: 3,
            }
            .encode_to_vec(),
        };
        assert_eq!(
            parse_read_filter(&page.encode_to_vec()).unwrap(),
            ReadFilter::Pagination(Pagination {
                offset: 1,
                limit: 3
            })
        );
        assert!(parse_condition(&page.encode_to_vec()).is_err());
        let zero = pb::Filter {
            filter: pb::ColumnPaginationFilter {
                offset: 0,
                limit: 0,
            }
            .encode_to_vec(),
            ..page
        };
        assert!(parse_read_filter(&zero.encode_to_vec()).is_err());
    }

    #[test]
    fn regex_rules_are_refused_as_unsupported() {
        let mut filter = pb::SingleColumnValueFilter::decode(
            single("a", C::CtEqual, Value::Integer(1)).filter.as_slice(),
        )
        .unwrap();
        filter.value_trans_rule = Some(pb::ValueTransferRule {
            regex: "(.*)".into(),
            cast_type: None,
        });
        let wrapped = pb::Filter {
            r#type: pb::FilterType::FtSingleColumnValue as i32,
            filter: filter.encode_to_vec(),
        };
        assert_eq!(error(wrapped).code, ErrorCode::UnsupportOperation);
    }
}
