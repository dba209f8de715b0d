//! The `grpc_code` label: the closed set of the 17 gRPC status codes, by their canonical names.
//!
//! A gRPC call's own result is the `grpc-status` of its trailers, not the HTTP status (almost
//! always 200). The sidecar reads it on the live path, so parsing is allocation-free.

/// Whether these headers carry `content-type: application/grpc` (or `application/grpc+proto`,
/// `application/grpc;…`): a gRPC call. gRPC-Web (`application/grpc-web…`) is not: its trailers
/// travel inside the body. One header lookup and a byte comparison; no allocation.
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let b = ct.as_bytes();
    const PREFIX: &[u8] = b"application/grpc";
    b.len() >= PREFIX.len()
        && b[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && matches!(b.get(PREFIX.len()), None | Some(b'+') | Some(b';'))
}

/// A gRPC status code (`grpc-status`), as defined by gRPC's `statuscodes.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl GrpcCode {
    pub const COUNT: usize = 17;

    pub const ALL: [GrpcCode; GrpcCode::COUNT] = [
        GrpcCode::Ok,
        GrpcCode::Cancelled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code for a numeric `grpc-status`. gRPC clients read a number outside 0..=16 as
    /// UNKNOWN, and so does the label, which keeps the set closed.
    pub fn from_number(n: u32) -> Self {
        Self::ALL
            .get(n as usize)
            .copied()
            .unwrap_or(GrpcCode::Unknown)
    }

    /// Parse a `grpc-status` header value (ASCII decimal). Garbage is UNKNOWN, as a client
    /// would read it; `None` only for an empty value.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let value = value.trim_ascii();
        if value.is_empty() {
            return None;
        }
        let mut n: u32 = 0;
        for &b in value {
            if !b.is_ascii_digit() || n > 1000 {
                return Some(GrpcCode::Unknown);
            }
            n = n * 10 + u32::from(b - b'0');
        }
        Some(Self::from_number(n))
    }

    pub fn number(self) -> u32 {
        self as u32
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The `grpc-status` header value for this code.
    pub fn header_value(self) -> &'static str {
        const NUMBERS: [&str; GrpcCode::COUNT] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        NUMBERS[self.index()]
    }

    /// The label value: the canonical upper-case name gRPC libraries print.
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_out_of_range_is_unknown() {
        for (i, c) in GrpcCode::ALL.iter().enumerate() {
            assert_eq!(c.number() as usize, i);
            assert_eq!(GrpcCode::parse(c.header_value().as_bytes()), Some(*c));
        }
        assert_eq!(GrpcCode::parse(b"17"), Some(GrpcCode::Unknown));
        assert_eq!(GrpcCode::parse(b"99999999999999"), Some(GrpcCode::Unknown));
        assert_eq!(GrpcCode::parse(b"x"), Some(GrpcCode::Unknown));
        assert_eq!(GrpcCode::parse(b" 5 "), Some(GrpcCode::NotFound));
        assert_eq!(GrpcCode::parse(b""), None);
        assert_eq!(GrpcCode::Unavailable.as_str(), "UNAVAILABLE");
    }
}
