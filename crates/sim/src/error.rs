//! Errors of the simulator: every variant renders as one line fit for a CLI.

use thiserror::Error;

/// Why a simulation could not be set up. Running a valid configuration never fails.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SimError {
    /// A `SimConfig` field is out of range (names the field and the rule).
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    /// A synthetic workload parameter is out of range.
    #[error("invalid workload: {0}")]
    InvalidWorkload(String),
    /// A trace row could not be used; `line` is 1-based and counts the header.
    #[error("{source_name} line {line}: {message}")]
    TraceRow {
        source_name: String,
        line: u64,
        message: String,
    },
    /// The trace as a whole is unusable (unreadable file, unknown format, no rows).
    #[error("{source_name}: {message}")]
    Trace {
        source_name: String,
        message: String,
    },
    /// An internal invariant broke (a bug): a stalled scheduler, or an audit failure when
    /// auditing is on.
    #[error("simulator invariant violated: {0}")]
    InvariantViolated(String),
    /// An allocator name that is not part of the CLI contract.
    #[error("unknown allocator `{0}` (expected contiguous-max, contiguous-pow2, contiguous-oracle, paged, paged-sharing or all)")]
    UnknownAllocator(String),
}
