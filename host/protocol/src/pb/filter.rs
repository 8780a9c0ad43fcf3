//! Column filters and column conditions (`table_store_filter.proto`). A [`Filter`] is sent
//! serialized: in the `filter` field of reads and in `Condition.column_condition` of writes.
//! Comparison values are single PlainBuffer cell values (the SDKs' "SQLVariant").

/// How a single-column filter converts a regex capture before comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum VariantType {
    /// 64-bit integer.
    VtInteger = 0,
    /// Double.
    VtDouble = 1,
    /// String.
    VtString = 3,
    /// Null.
    VtNull = 6,
    /// Binary.
    VtBlob = 7,
}

/// Extracts the compared value from a string column with a regex and casts it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueTransferRule {
    /// The regex whose first capture group is compared.
    #[prost(string, required, tag = "1")]
    pub regex: String,
    /// The type the capture is cast to.
    #[prost(enumeration = "VariantType", optional, tag = "2")]
    pub cast_type: Option<i32>,
}

/// Which message [`Filter::filter`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FilterType {
    /// [`SingleColumnValueFilter`].
    FtSingleColumnValue = 1,
    /// [`CompositeColumnValueFilter`].
    FtCompositeColumnValue = 2,
    /// [`ColumnPaginationFilter`].
    FtColumnPagination = 3,
}

/// The comparison of a single-column filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ComparatorType {
    /// `==`.
    CtEqual = 1,
    /// `!=`.
    CtNotEqual = 2,
    /// `>`.
    CtGreaterThan = 3,
    /// `>=`.
    CtGreaterEqual = 4,
    /// `<`.
    CtLessThan = 5,
    /// `<=`.
    CtLessEqual = 6,
    /// The column exists.
    CtExist = 7,
    /// The column does not exist.
    CtNotExist = 8,
}

/// Compares one column with a constant.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SingleColumnValueFilter {
    /// The comparison.
    #[prost(enumeration = "ComparatorType", required, tag = "1")]
    pub comparator: i32,
    /// The compared column.
    #[prost(string, required, tag = "2")]
    pub column_name: String,
    /// The constant, as a serialized PlainBuffer cell value.
    #[prost(bytes = "vec", required, tag = "3")]
    pub column_value: Vec<u8>,
    /// Whether a row lacking the column fails the filter.
    #[prost(bool, required, tag = "4")]
    pub filter_if_missing: bool,
    /// Whether only the newest version of the column is compared.
    #[prost(bool, required, tag = "5")]
    pub latest_version_only: bool,
    /// Optional regex extraction before comparing.
    #[prost(message, optional, tag = "6")]
    pub value_trans_rule: Option<ValueTransferRule>,
}

/// How a composite filter combines its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LogicalOperator {
    /// Negates its single sub-filter.
    LoNot = 1,
    /// All sub-filters pass.
    LoAnd = 2,
    /// Any sub-filter passes.
    LoOr = 3,
}

/// Combines filters with NOT, AND or OR.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompositeColumnValueFilter {
    /// The combination.
    #[prost(enumeration = "LogicalOperator", required, tag = "1")]
    pub combinator: i32,
    /// The combined filters.
    #[prost(message, repeated, tag = "2")]
    pub sub_filters: Vec<Filter>,
}

/// Returns a window of a wide row's columns.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ColumnPaginationFilter {
    /// Columns to skip.
    #[prost(int32, required, tag = "1")]
    pub offset: i32,
    /// Columns to return.
    #[prost(int32, required, tag = "2")]
    pub limit: i32,
}

/// A filter of any kind: its type and the serialized message of that type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Filter {
    /// Which message `filter` holds.
    #[prost(enumeration = "FilterType", required, tag = "1")]
    pub r#type: i32,
    /// The serialized [`SingleColumnValueFilter`], [`CompositeColumnValueFilter`] or
    /// [`ColumnPaginationFilter`].
    #[prost(bytes = "vec", required, tag = "2")]
    pub filter: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn nested_filters_roundtrip() {
        let single = SingleColumnValueFilter {
            comparator: ComparatorType::CtGreaterEqual as i32,
            column_name: "age".into(),
            column_value: vec![0x00, 0x2a],
            filter_if_missing: true,
            latest_version_only: true,
            value_trans_rule: None,
        };
        let composite = CompositeColumnValueFilter {
            combinator: LogicalOperator::LoNot as i32,
            sub_filters: vec![Filter {
                r#type: FilterType::FtSingleColumnValue as i32,
                filter: single.encode_to_vec(),
            }],
        };
        let decoded = CompositeColumnValueFilter::decode(composite.encode_to_vec().as_slice())
            .expect("a filter we encoded decodes");
        assert_eq!(decoded, composite);
        let inner = SingleColumnValueFilter::decode(decoded.sub_filters[0].filter.as_slice())
            .expect("the nested filter decodes");
        assert_eq!(inner, single);
    }
}
