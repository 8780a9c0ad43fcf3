//! The service's error codes, their HTTP statuses, and which of them are worth retrying.

/// When a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retriability {
    /// The request did not take effect (throttling, conflicts): retry any request.
    Always,
    /// The outcome is unknown (timeouts, internal errors): retry only idempotent requests.
    IfIdempotent,
    /// The request is wrong or forbidden: retrying cannot help.
    Never,
}

impl Retriability {
    /// Whether a request may be sent again; `idempotent` says whether sending it twice is
    /// harmless (reads, or writes whose every cell carries an explicit timestamp).
    pub fn allows_retry(self, idempotent: bool) -> bool {
        match self {
            Self::Always => true,
            Self::IfIdempotent => idempotent,
            Self::Never => false,
        }
    }
}

/// A Tablestore error code as carried in the protobuf `Error` body.
///
/// Codes this crate does not know arrive as [`ErrorCode::Unknown`] with the service's spelling,
/// so a newer service never makes an answer unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Signature, access key or date check failed.
    AuthFailed,
    /// A request parameter is invalid.
    ParameterInvalid,
    /// The table or another object does not exist.
    ObjectNotExist,
    /// The table or another object already exists.
    ObjectAlreadyExist,
    /// A conditional write's expectation does not hold.
    ConditionCheckFail,
    /// A row is larger than the service allows.
    OutOfRowSizeLimit,
    /// A row has more columns than the service allows.
    OutOfColumnCountLimit,
    /// The request is larger than allowed.
    RequestTooLarge,
    /// The request used an API the server does not know.
    UnsupportOperation,
    /// A quota is exhausted (retriable only for "Too frequent table operations.").
    QuotaExhausted,
    /// The server is overloaded.
    ServerBusy,
    /// A partition cannot serve right now.
    PartitionUnavailable,
    /// Another write to the same row is in progress.
    RowOperationConflict,
    /// Another table operation is in progress.
    OperationConflict,
    /// The table is not ready yet.
    TableNotReady,
    /// Reserved capacity is exhausted.
    NotEnoughCapacityUnit,
    /// Throttled.
    OperationThrottled,
    /// The request timed out on the server; it may or may not have taken effect.
    Timeout,
    /// An internal error; the request may or may not have taken effect.
    InternalServerError,
    /// The service is unavailable.
    ServerUnavailable,
    /// A primary key does not match the table's schema.
    InvalidPk,
    /// A tunnel resource (client, channel version) is gone, e.g. after a heartbeat timeout.
    ResourceGone,
    /// The tunnel service cannot serve right now.
    TunnelServerUnavailable,
    /// A checkpoint's sequence number disagrees with the stored one.
    SequenceNumberNotMatch,
    /// The tunnel's log data has expired.
    TunnelExpired,
    /// The caller may not access this tunnel resource.
    PermissionDenied,
    /// A tunnel with this name already exists.
    TunnelExist,
    /// A stream position whose records were trimmed (past the stream's expiration).
    TrimmedDataAccess,
    /// A code not in this list, as the service spelled it (empty when the answer carried none).
    Unknown(String),
}

const TABLE: &[(ErrorCode, &str, u16, Retriability)] = {
    use ErrorCode::*;
    use Retriability::*;
    &[
        (AuthFailed, "OTSAuthFailed", 403, Never),
        (ParameterInvalid, "OTSParameterInvalid", 400, Never),
        (ObjectNotExist, "OTSObjectNotExist", 404, Never),
        (ObjectAlreadyExist, "OTSObjectAlreadyExist", 409, Never),
        (ConditionCheckFail, "OTSConditionCheckFail", 403, Never),
        (OutOfRowSizeLimit, "OTSOutOfRowSizeLimit", 400, Never),
        (
            OutOfColumnCountLimit,
            "OTSOutOfColumnCountLimit",
            400,
            Never,
        ),
        (RequestTooLarge, "OTSRequestBodyTooLarge", 413, Never),
        (UnsupportOperation, "OTSUnsupportOperation", 400, Never),
        (QuotaExhausted, "OTSQuotaExhausted", 403, Never),
        (ServerBusy, "OTSServerBusy", 503, Always),
        (PartitionUnavailable, "OTSPartitionUnavailable", 503, Always),
        (RowOperationConflict, "OTSRowOperationConflict", 409, Always),
        (OperationConflict, "OTSOperationConflict", 409, Always),
        (TableNotReady, "OTSTableNotReady", 404, Always),
        (
            NotEnoughCapacityUnit,
            "OTSNotEnoughCapacityUnit",
            403,
            Always,
        ),
        (OperationThrottled, "OTSOperationThrottled", 403, Always),
        (Timeout, "OTSTimeout", 503, IfIdempotent),
        (
            InternalServerError,
            "OTSInternalServerError",
            500,
            IfIdempotent,
        ),
        (ServerUnavailable, "OTSServerUnavailable", 503, IfIdempotent),
        (InvalidPk, "OTSInvalidPK", 400, Never),
        (ResourceGone, "OTSResourceGone", 410, Never),
        (
            TunnelServerUnavailable,
            "OTSTunnelServerUnavailable",
            503,
            Always,
        ),
        (
            SequenceNumberNotMatch,
            "OTSSequenceNumberNotMatch",
            400,
            Never,
        ),
        (TunnelExpired, "OTSTunnelExpired", 410, Never),
        (PermissionDenied, "OTSPermissionDenied", 403, Never),
        (TunnelExist, "OTSTunnelExist", 409, Never),
        (TrimmedDataAccess, "OTSTrimmedDataAccess", 400, Never),
    ]
};

impl ErrorCode {
    fn entry(&self) -> Option<&'static (ErrorCode, &'static str, u16, Retriability)> {
        TABLE.iter().find(|e| e.0 == *self)
    }

    /// The code as the service spells it, e.g. `"OTSServerBusy"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(code) => code,
            known => known.entry().map_or("", |e| e.1),
        }
    }

    /// The HTTP status the service answers with for this code (400 for unknown codes).
    pub fn http_status(&self) -> u16 {
        self.entry().map_or(400, |e| e.2)
    }

    /// Parses a code as the service spells it; unknown spellings become [`ErrorCode::Unknown`].
    pub fn parse(code: &str) -> Self {
        TABLE
            .iter()
            .find(|e| e.1 == code)
            .map_or_else(|| Self::Unknown(code.to_owned()), |e| e.0.clone())
    }

    /// Classifies an error answer (this code, its message and HTTP status) the way the official
    /// SDKs' default retry policy does. Like the SDKs, any answer with status 500, 502 or 503
    /// counts as "outcome unknown" at least, whatever its code.
    pub fn retriability(&self, message: &str, http_status: u16) -> Retriability {
        let by_code = match self {
            Self::QuotaExhausted if message == TOO_FREQUENT_TABLE_OPERATIONS => {
                Retriability::Always
            }
            code => code.entry().map_or(Retriability::Never, |e| e.3),
        };
        match by_code {
            Retriability::Never if matches!(http_status, 500 | 502 | 503) => {
                Retriability::IfIdempotent
            }
            other => other,
        }
    }

    /// Whether the error means the server is shedding load (the SDKs back off longer for these).
    pub fn is_throttling(&self, message: &str) -> bool {
        match self {
            Self::ServerBusy | Self::NotEnoughCapacityUnit | Self::OperationThrottled => true,
            Self::QuotaExhausted => message == TOO_FREQUENT_TABLE_OPERATIONS,
            _ => false,
        }
    }
}

/// The message with which `OTSQuotaExhausted` means throttling rather than a hard quota.
const TOO_FREQUENT_TABLE_OPERATIONS: &str = "Too frequent table operations.";

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retriability(code: &str, message: &str, http_status: u16) -> Retriability {
        ErrorCode::parse(code).retriability(message, http_status)
    }

    fn is_throttling(code: &str, message: &str) -> bool {
        ErrorCode::parse(code).is_throttling(message)
    }

    #[test]
    fn codes_roundtrip_through_their_spelling() {
        for (code, name, _, _) in TABLE {
            assert_eq!(ErrorCode::parse(name), *code);
            assert_eq!(code.as_str(), *name);
        }
        assert_eq!(
            ErrorCode::parse("OTSNoSuchThing"),
            ErrorCode::Unknown("OTSNoSuchThing".into())
        );
        assert_eq!(
            ErrorCode::parse("OTSNoSuchThing").as_str(),
            "OTSNoSuchThing"
        );
    }

    #[test]
    fn retriability_follows_the_sdk_policy() {
        assert_eq!(retriability("OTSServerBusy", "", 503), Retriability::Always);
        assert_eq!(
            retriability("OTSRowOperationConflict", "", 409),
            Retriability::Always
        );
        assert_eq!(
            retriability("OTSTimeout", "", 503),
            Retriability::IfIdempotent
        );
        assert_eq!(
            retriability("OTSInternalServerError", "", 500),
            Retriability::IfIdempotent
        );
        assert_eq!(
            retriability("OTSParameterInvalid", "", 400),
            Retriability::Never
        );
        assert_eq!(retriability("OTSAuthFailed", "", 403), Retriability::Never);
        assert_eq!(
            retriability("OTSQuotaExhausted", "Too frequent table operations.", 403),
            Retriability::Always
        );
        assert_eq!(
            retriability("OTSQuotaExhausted", "Other quota.", 403),
            Retriability::Never
        );
        assert_eq!(retriability("Unknown", "", 502), Retriability::IfIdempotent);
        assert_eq!(retriability("Unknown", "", 400), Retriability::Never);
        assert_eq!(
            retriability("OTSParameterInvalid", "", 503),
            Retriability::IfIdempotent
        );
    }

    #[test]
    fn throttling_is_recognised() {
        assert!(is_throttling("OTSServerBusy", ""));
        assert!(is_throttling(
            "OTSQuotaExhausted",
            "Too frequent table operations."
        ));
        assert!(!is_throttling("OTSTimeout", ""));
    }
}
